//! Status polls through the Wasm edge vs a trivial component, with wrk.

use crate::Args;
use crate::wrk::{wrk, write_token_script};
use anyhow::bail;
use crowdgate_tests::{Proc, RoundOptions, System, Visitor, crowdgate_bin, free_port, wait_for, wasm};
use std::process::Command;

pub async fn run(args: &Args) -> anyhow::Result<()> {
    crate::require("wrk", "sudo apt-get install wrk")?;
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
    let status = wrk(args, &format!("{}/api/status", system.edge_url), Some(&script))?;
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
    let trivial = wrk(args, &hello, None)?;
    drop(host);

    println!("### Status polls through the Wasm edge (wrk, {} threads)\n", args.threads);
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
    println!();
    Ok(())
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

