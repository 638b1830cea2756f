//! Two rounds on one core and one edge: one mid-sale, the other opening a
//! large pre-queue. Does the opening round's stampede starve the mid-sale
//! round's investors?
//!
//! The mid-sale round (the test system's own) has a queue that never runs
//! empty and investors investing through the edge all along. A second
//! round, created through the ops API, holds `--tickets` (at most 20,000)
//! signed-in visitors in its pre-queue. The same measurement runs twice,
//! `--seconds` each: first alone, then while the second round opens and wrk
//! polls its pre-queue's statuses through the edge (each poll computing
//! the ticket's number from the draw). Reported for the mid-sale round each
//! time: investment latency (p50, p99) and accepted investments per second,
//! and the admission rate achieved against the rate ops set.

use crate::Args;
use crate::edge::join_many_in;
use crate::invest::{LoadFigures, load};
use crate::wrk::{WrkFigures, write_token_script, wrk};
use anyhow::bail;
use crowdgate_tests::{
    OPS_TOKEN, ROUND, RoundOptions, System, core_http, prequeue_ticket_token_for,
};
use std::time::Instant;

/// The opening round's id.
const OPENING: &str = "opening";
/// Pre-queue tickets wrk polls (a wrk script holds them all).
const MAX_POLLED: usize = 20_000;
/// The mid-sale round's admission rate, people per minute.
const MID_SALE_RATE: u64 = 6_000;

pub async fn run(args: &Args) -> anyhow::Result<()> {
    crate::require("wrk", "sudo apt-get install wrk")?;
    let system = System::start_with(
        RoundOptions {
            cap_pence: 1_000_000_000_000,
            max_investment_pence: 1_000_000_000_000,
            rate_per_minute: MID_SALE_RATE,
            batch_interval_ms: 1_000,
            max_active: 10_000_000,
            ..Default::default()
        },
        false,
    )
    .await;
    // Enough waiting that admission never runs out of people to admit.
    let waiting = (MID_SALE_RATE as usize / 60) * (2 * args.seconds as usize + 30);
    join_many_in(&system.core_url, ROUND, "mid-sale-visitor", waiting).await?;

    let opens = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3_600),
    );
    let (code, body) = system
        .create_round(serde_json::json!({
            "round": {
                "id": OPENING,
                "name": "Opening round",
                "cap_pence": 1_000_000_000,
                "min_investment_pence": 1_000,
                "max_investment_pence": 1_000_000,
                "share_price_pence": 100,
                "opens_at": opens.to_string(),
            },
            "admission": { "rate_per_minute": 60_000, "batch_interval_ms": 200 }
        }))
        .await;
    if code != 201 {
        bail!("creating the opening round failed: {code} {body}");
    }
    let count = args.tickets.min(MAX_POLLED);
    let places = join_many_in(&system.core_url, OPENING, "opening-investor", count).await?;
    let tokens: Vec<String> = places
        .iter()
        .map(|p| prequeue_ticket_token_for(OPENING, &p.ticket_id, p.entry, &p.investor))
        .collect();
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("opening-status.lua");
    write_token_script(&script, "GET", &tokens)?;

    let invest_url = format!("{}/api/investments", system.edge_url);
    let invest_args = Args {
        connections: 8,
        ..args.clone()
    };
    // 1. The mid-sale round alone.
    let (alone, alone_rate) = measure(&system, &invest_args, &invest_url, "alone").await?;
    // 2. The same, while the other round opens and its pre-queue polls.
    let opened = core_http()
        .post(format!("{}/ops/v1/rounds/{OPENING}/open", system.core_url))
        .bearer_auth(OPS_TOKEN)
        .send()
        .await?;
    if !opened.status().is_success() {
        bail!("opening the round failed: {}", opened.text().await?);
    }
    let polls_url = format!("{}/r/{OPENING}/api/status", system.edge_url);
    let polls_args = args.clone();
    let polls = tokio::task::spawn_blocking(move || -> anyhow::Result<WrkFigures> {
        wrk(&polls_args, &polls_url, Some(&script))
    });
    let (beside, beside_rate) = measure(&system, &invest_args, &invest_url, "beside").await?;
    let polls = polls.await??;

    println!(
        "### Two rounds on one core and edge: the mid-sale round while another opens a pre-queue of {count}\n"
    );
    println!(
        "| mid-sale round | invest p50 ms | invest p99 ms | accepted/s | admitted/min (set {MID_SALE_RATE}) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (what, f, rate) in [
        ("alone", &alone, alone_rate),
        ("while the other round opens", &beside, beside_rate),
    ] {
        println!(
            "| {what} | {:.2} | {:.2} | {:.0} | {rate:.0} |",
            f.p50_ms, f.p99_ms, f.accepted_per_s
        );
    }
    println!();
    println!(
        "The opening round meanwhile: {} status polls of pre-queue tickets in {} s ({:.0}/s; p50 {:.2} ms, p99 {:.2} ms; {} non-2xx).",
        polls.requests,
        args.seconds,
        polls.requests_per_s,
        polls.p50_ms,
        polls.p99_ms,
        polls.non_2xx
    );
    println!(
        "Ratios: invest p99 {:.2}×, accepted/s {:.2}×, admission {:.3}× of the mid-sale round alone.\n",
        beside.p99_ms / alone.p99_ms.max(0.001),
        beside.accepted_per_s / alone.accepted_per_s.max(0.001),
        beside_rate / alone_rate.max(0.001)
    );
    Ok(())
}

/// The invest load on the mid-sale round for `--seconds`, and the admission
/// rate (people per minute) it achieved meanwhile.
async fn measure(
    system: &System,
    args: &Args,
    invest_url: &str,
    label: &str,
) -> anyhow::Result<(LoadFigures, f64)> {
    let admitted_before = system.round_field("admitted_up_to").await;
    let started = Instant::now();
    let figures = load(args, invest_url, label).await?;
    let admitted = system.round_field("admitted_up_to").await - admitted_before;
    let per_minute = admitted as f64 * 60.0 / started.elapsed().as_secs_f64();
    Ok((figures, per_minute))
}
