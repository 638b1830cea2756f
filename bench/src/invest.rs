//! Accepted investments per second: through core, through edge + core, and
//! `redis-benchmark` running the same invest script against the same Redis
//! (same `appendfsync always`), all in one run.

use crate::Args;
use anyhow::{Context, bail};
use crowdgate_store::invest::invest_call;
use crowdgate_store::{NewInvestment, RoundKeys};
use crowdgate_tests::{ROUND, RoundOptions, System, pass_token};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One load's figures.
pub(crate) struct LoadFigures {
    pub(crate) accepted_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) refused: u64,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    crate::require("redis-benchmark", "sudo apt-get install redis-tools")?;
    let round = RoundOptions {
        cap_pence: 1_000_000_000_000,
        max_investment_pence: 1_000_000_000_000,
        ..Default::default()
    };
    let system = System::start_with(round, false).await;
    let core = load(
        args,
        &format!("{}/v1/rounds/{ROUND}/investments", system.core_url),
        "core",
    )
    .await?;
    let edge = load(
        args,
        &format!("{}/api/investments", system.edge_url),
        "edge",
    )
    .await?;
    let redis_rps = redis_benchmark(args, &system).await?;

    println!("### Accepted investments per second (appendfsync always)\n");
    println!("| path | accepted/s | p50 ms | p99 ms | refused |");
    println!("|---|---:|---:|---:|---:|");
    for (name, f) in [
        ("through core (HTTP)", &core),
        ("through edge (Wasm) + core", &edge),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            f.accepted_per_s, f.p50_ms, f.p99_ms, f.refused
        );
    }
    println!(
        "| redis-benchmark, same script, {} clients | {redis_rps:.0} | | | |",
        args.connections
    );
    println!();
    println!(
        "core / redis-benchmark: {:.2}; edge+core / redis-benchmark: {:.2}",
        core.accepted_per_s / redis_rps,
        edge.accepted_per_s / redis_rps
    );
    println!();
    Ok(())
}

/// `connections` investors, each investing again and again (new
/// Idempotency-Key each time) for `seconds`. `label` names the investors
/// and tickets, so loads on one system do not share them. Also used by the
/// `replicated` part.
pub(crate) async fn load(args: &Args, url: &str, label: &str) -> anyhow::Result<LoadFigures> {
    eprintln!("invest load through {label} for {} s…", args.seconds);
    let http = crowdgate_tests::core_http_builder()
        .pool_max_idle_per_host(args.connections as usize)
        .build()?;
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(args.seconds.into());
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|c| {
            let (http, url, accepted, refused) = (
                http.clone(),
                url.to_string(),
                accepted.clone(),
                refused.clone(),
            );
            let label = label.to_string();
            tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new(3).expect("histogram");
                let investor = format!("{label}-investor-{c}");
                // Signed in, as every investing pass is: the investment is
                // for this investor.
                let pass = pass_token(&format!("{label}-ticket-{c}"), u64::from(c) + 1, &investor);
                let body =
                    serde_json::json!({"investor_id": investor, "amount_pence": 1_000}).to_string();
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(&pass)
                        .header("idempotency-key", format!("{c}-{n}"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
                    let _ = histogram.record(sent.elapsed().as_micros() as u64);
                    if status == 201 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                histogram
            })
        })
        .collect();
    let mut histogram = Histogram::<u64>::new(3)?;
    for task in tasks {
        histogram.add(task.await?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadFigures {
        accepted_per_s: accepted.load(Ordering::Relaxed) as f64 / elapsed,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        refused: refused.load(Ordering::Relaxed),
    })
}

/// redis-benchmark calling the invest script by EVALSHA with random ids (one
/// new investment per call) against the system's own Redis. Its KEYS and
/// ARGV come from the store's own encoder, `__rand_int__` standing in for
/// the ids.
async fn redis_benchmark(args: &Args, system: &System) -> anyhow::Result<f64> {
    let mut redis = system.redis().await;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(crowdgate_store::scripts::INVEST)
        .query_async(&mut redis)
        .await?;
    let requests = (args.seconds as u64 * 5_000).to_string();
    let call = invest_call(
        &RoundKeys::new(ROUND),
        &NewInvestment {
            investment_id: "inv__rand_int__",
            ticket_id: "tk__rand_int__",
            investor_id: "rb-__rand_int__",
            amount_pence: 1_000,
            fingerprint: "fp",
            now_ms: 1_795_680_000_000,
            binding_ttl_s: 600,
            investor_max_pence: None,
        },
    );
    eprintln!("redis-benchmark EVALSHA invest.lua, {requests} calls…");
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &system.redis.port.to_string(),
            "-c",
            &args.connections.to_string(),
        ])
        .args(["-n", &requests, "-r", "1000000000", "-q"])
        .args(["EVALSHA", &sha, &call.keys.len().to_string()])
        .args(&call.keys)
        .args(&call.args)
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    // `-q` prints `EVALSHA ...: 12345.67 requests per second, p50=...`.
    let rps = text
        .split("requests per second")
        .next()
        .and_then(|head| head.rsplit(' ').nth(1))
        .and_then(|n| n.trim().parse::<f64>().ok());
    match rps {
        Some(rps) if output.status.success() => Ok(rps),
        _ => bail!("cannot read redis-benchmark output:\n{text}"),
    }
}
