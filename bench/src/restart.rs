//! Host start to first 200: compiling the components vs loading them from
//! the compile cache.
//!
//! Each start runs the real `crowdgate host` on the repository's `spin.toml`
//! (the waiting-room and edge components) and times from spawning the
//! process to the first 200 on `GET /` (the waiting-room page, which needs
//! no core). Starts with an empty cache, a warm cache and no cache are
//! interleaved so that machine noise hits them alike.

use crate::Args;
use anyhow::bail;
use crowdgate_tests::{Proc, SIGNING_KEYS, crowdgate_bin, free_port, workspace_root};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long one start may take before the benchmark gives up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let manifest = workspace_root().join("spin.toml");
    let dir = tempfile::tempdir()?;
    let warm = dir.path().join("warm");
    // Fill the warm cache (not measured).
    start_to_first_200(&manifest, Some(&warm), dir.path(), "fill").await?;

    let (mut empty, mut cached, mut uncached) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.restarts {
        eprintln!("start {}/{}…", i + 1, args.restarts);
        let fresh = dir.path().join(format!("empty-{i}"));
        empty.push(start_to_first_200(&manifest, Some(&fresh), dir.path(), "empty").await?);
        cached.push(start_to_first_200(&manifest, Some(&warm), dir.path(), "warm").await?);
        uncached.push(start_to_first_200(&manifest, None, dir.path(), "none").await?);
    }

    println!(
        "### Host start to first 200 (`crowdgate host`, spin.toml's two components, {} starts each)\n",
        args.restarts
    );
    println!("| compile cache | median ms | min ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (name, times) in [
        ("empty (compile, then store)", &mut empty),
        ("warm (load from disk)", &mut cached),
        ("disabled (`--no-compile-cache`)", &mut uncached),
    ] {
        times.sort();
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            ms(median(times)),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    println!();
    println!(
        "warm / empty: {:.3}",
        ms(median(&cached)) / ms(median(&empty))
    );
    println!();
    Ok(())
}

/// Starts the host with `cache` (`None`: `--no-compile-cache`) and returns
/// the time from spawning it to its first 200 on `GET /`; then stops it.
async fn start_to_first_200(
    manifest: &Path,
    cache: Option<&Path>,
    log_dir: &Path,
    name: &str,
) -> anyhow::Result<Duration> {
    let port = free_port();
    let mut command = Command::new(crowdgate_bin());
    command
        .arg("host")
        .arg("--manifest")
        .arg(manifest)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("SPIN_VARIABLE_SIGNING_KEYS", SIGNING_KEYS)
        .env("SPIN_VARIABLE_EDGE_TOKEN", "bench-edge-token");
    match cache {
        Some(dir) => command.arg("--compile-cache").arg(dir),
        None => command.arg("--no-compile-cache"),
    };
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut host = Proc::spawn(name, &mut command, log_dir);
    loop {
        if host.has_exited() {
            bail!("the host exited during startup:\n{}", host.log());
        }
        if let Ok(response) = client.get(&url).send().await
            && response.status() == 200
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "no 200 from {url} within {START_TIMEOUT:?}:\n{}",
                host.log()
            );
        }
        // Refused connections fail at once: poll finely.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
