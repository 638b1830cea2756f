//! `crowdgate-bench`: measures the edge and prints a Markdown table for
//! BENCHMARKS.md. Run with `./dev bench` (release builds, wrk installed).
//!
//! In one run, on the same machine, it measures with `wrk` over loopback:
//! 1. status polls through the Wasm host (waiting-room component, ticket
//!    verification, room state from the key-value cache), and how many of
//!    them reached core;
//! 2. a trivial component (`host-probe` `/hello`) through the same host, as
//!    the ceiling of the host itself.
//!
//! The machines are shared and noisy: compare the ratio within one run.

use anyhow::{Context, bail};
use clap::Parser;
use crowdgate_tests::{RoundOptions, System, Visitor, crowdgate_bin, free_port, wasm, wait_for, Proc};
use std::path::Path;
use std::process::Command;

#[derive(Parser)]
struct Args {
    /// wrk duration per measurement, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Distinct tickets the status load cycles through.
    #[arg(long, default_value_t = 1_000)]
    tickets: usize,
}

/// What wrk reported.
struct WrkFigures {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    which("wrk").context("wrk is not installed: `sudo apt-get install wrk` (./dev bench does this)")?;
    if std::env::var_os("CROWDGATE_BIN").is_none() {
        let release = crowdgate_tests::target_dir().join("release/crowdgate");
        // SAFETY: single-threaded at this point; set before any process spawns.
        unsafe { std::env::set_var("CROWDGATE_BIN", &release) };
    }
    eprintln!("using {}", crowdgate_bin().display());

    // 1. Status polls through the waiting-room component.
    let system = System::start(RoundOptions { rate_per_minute: 60, ..Default::default() }).await;
    eprintln!("issuing {} tickets…", args.tickets);
    let mut tokens = Vec::with_capacity(args.tickets);
    for _ in 0..args.tickets {
        let (code, body) = Visitor::new(&system.edge_url).join().await;
        if code != 201 {
            bail!("join failed: {code} {body}");
        }
        tokens.push(body["ticket"].as_str().unwrap().to_string());
    }
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("status.lua");
    write_token_script(&script, &tokens)?;
    let before = core_state_requests(&system.core_url).await?;
    let status = wrk(&args, &format!("{}/api/status", system.edge_url), Some(&script))?;
    let after = core_state_requests(&system.core_url).await?;
    let core_per_1000 = (after - before) as f64 * 1000.0 / status.requests.max(1) as f64;
    drop(system);

    // 2. A trivial component through the same host.
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"{}\"\n",
            wasm("host_probe").display()
        ),
    )?;
    let port = free_port();
    let mut host = Proc::spawn(
        "probe-host",
        Command::new(crowdgate_bin())
            .arg("host")
            .arg("--manifest")
            .arg(&manifest)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn"),
        dir.path(),
    );
    let hello = format!("http://127.0.0.1:{port}/hello");
    wait_for(&hello, &mut [&mut host]).await;
    let trivial = wrk(&args, &hello, None)?;
    drop(host);

    println!("| what | req/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|");
    for (name, f) in [("status poll (waiting-room component)", &status), ("trivial component (/hello)", &trivial)] {
        println!("| {name} | {:.0} | {:.2} | {:.2} | {} |", f.requests_per_s, f.p50_ms, f.p99_ms, f.non_2xx);
    }
    println!();
    println!("status polls / trivial: {:.2}", status.requests_per_s / trivial.requests_per_s);
    println!(
        "core room-state requests per 1,000 status polls: {core_per_1000:.2} ({} tickets, {} polls)",
        args.tickets, status.requests
    );
    println!(
        "wrk: {} threads, {} connections, {} s each; {} cores",
        args.threads,
        args.connections,
        args.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    Ok(())
}

/// A wrk script that sends each request with the next ticket as a bearer token.
fn write_token_script(path: &Path, tokens: &[String]) -> anyhow::Result<()> {
    let mut lua = String::from("local tokens = {\n");
    for token in tokens {
        lua.push_str(&format!("  \"{token}\",\n"));
    }
    lua.push_str(
        "}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  \
         return wrk.format(\"GET\", nil, { [\"Authorization\"] = \"Bearer \" .. tokens[i] })\nend\n",
    );
    std::fs::write(path, lua)?;
    Ok(())
}

fn wrk(args: &Args, url: &str, script: Option<&Path>) -> anyhow::Result<WrkFigures> {
    eprintln!("wrk {url} …");
    let mut command = Command::new("wrk");
    command
        .args(["-t", &args.threads.to_string(), "-c", &args.connections.to_string()])
        .args(["-d", &format!("{}s", args.seconds), "--latency"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<WrkFigures> {
    let mut figures = WrkFigures { requests_per_s: 0.0, p50_ms: 0.0, p99_ms: 0.0, requests: 0, non_2xx: 0 };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => figures.requests_per_s = value.parse().ok()?,
            ["50%", value] => figures.p50_ms = millis(value)?,
            ["99%", value] => figures.p99_ms = millis(value)?,
            [count, "requests", "in", ..] => figures.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => figures.non_2xx = count.parse().ok()?,
            _ => {}
        }
    }
    (figures.requests > 0).then_some(figures)
}

/// wrk prints latencies as `512.00us`, `1.25ms` or `2.01s`.
fn millis(value: &str) -> Option<f64> {
    if let Some(us) = value.strip_suffix("us") {
        return us.parse::<f64>().ok().map(|v| v / 1000.0);
    }
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.parse().ok();
    }
    value.strip_suffix('s')?.parse::<f64>().ok().map(|v| v * 1000.0)
}

/// core's count of room-state requests (from its Prometheus metrics).
async fn core_state_requests(core_url: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{core_url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("crowdgate_core_request_duration_seconds_count") && l.contains("endpoint=\"state\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

fn which(program: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false);
    if found { Ok(()) } else { bail!("{program} not found") }
}

