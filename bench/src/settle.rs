//! Settlement throughput: a burst of accepted investments (36,000 by default,
//! the reference round's investor count), then 1 or 2 workers drain it.
//! Reports settlements per second and the lag: from the end of the burst to
//! the last settlement.

use crate::Args;
use crowdgate_store::{InvestVerdict, NewInvestment, RoundStore};
use crowdgate_tests::{ROUND, RoundOptions, System};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for workers in [1, 2] {
        rows.push((workers, drain(args, workers).await?));
    }
    println!(
        "### Settlement after a burst of {} accepted investments\n",
        args.burst
    );
    println!("| workers | settlements/s | lag after burst (s) |");
    println!("|---:|---:|---:|");
    for (workers, (rate, lag)) in rows {
        println!("| {workers} | {rate:.0} | {lag:.2} |");
    }
    println!();
    Ok(())
}

/// Returns (settlements per second, seconds from burst end to last settled).
async fn drain(args: &Args, workers: usize) -> anyhow::Result<(f64, f64)> {
    let round = RoundOptions {
        cap_pence: 1_000_000_000_000,
        max_investment_pence: 1_000_000_000_000,
        ..Default::default()
    };
    let system = System::start_with(round, false).await;
    let investors = 1_000;
    let accounts: Vec<(String, i64)> = (0..investors)
        .map(|i| (format!("b-{i}"), 1_000_000_000))
        .collect();
    let refs: Vec<(&str, i64)> = accounts.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    system.fund(&refs).await;

    // The burst: accepted through the same invest script core runs.
    let redis =
        crowdgate_store::Redis::connect(&crowdgate_store::RedisConfig::single(&system.redis.url()))
            .await?;
    let store = RoundStore::new(ROUND, redis);
    let progress = ProgressBar::new(args.burst as u64).with_style(ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} ({per_sec})",
    )?);
    progress.set_message(format!("burst for {workers} worker(s)"));
    let chunks: Vec<Vec<usize>> = (0..args.burst)
        .collect::<Vec<_>>()
        .chunks(args.burst.div_ceil(32))
        .map(<[usize]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let (store, progress) = (store.clone(), progress.clone());
            tokio::spawn(async move {
                for n in chunk {
                    let id = format!("inv_burst{n:08}");
                    let investor = format!("b-{}", n % 1_000);
                    let verdict = store
                        .invest(&NewInvestment {
                            investment_id: &id,
                            ticket_id: &investor,
                            investor_id: &investor,
                            amount_pence: 1_000,
                            fingerprint: "bench",
                            now_ms: crowdgate_store::clock::now_ms(),
                            binding_ttl_s: 3_600,
                            investor_max_pence: None,
                        })
                        .await
                        .expect("invest script runs");
                    assert!(matches!(verdict, InvestVerdict::Accepted(_)), "{verdict:?}");
                    progress.inc(1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    progress.finish();
    let burst_end = Instant::now();

    let _workers: Vec<_> = (0..workers)
        .map(|w| system.spawn_worker(&format!("bench-{w}")))
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let settled = system.ledger_field("settled_count").await;
        if settled >= args.burst as i64 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {settled} settled in 600 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = started.elapsed().as_secs_f64();
    Ok((
        args.burst as f64 / drain_s,
        burst_end.elapsed().as_secs_f64(),
    ))
}
