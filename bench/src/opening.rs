//! The opening of a large pre-queue: how many calls the edge makes to core
//! while the whole pre-queue polls for the number it drew.
//!
//! A round is scheduled with `--tickets` visitors (at most 20,000, the wrk
//! script's size) in its pre-queue, then opened by ops; wrk then polls
//! `/api/status` through the Wasm edge with their pre-queue tickets (each
//! poll of a ticket without a number computes its number from the
//! published draw). core's own per-route request counters give the calls
//! per 1,000 polls, which must not grow with the crowd.

use crate::Args;
use crate::edge::join_many;
use crate::wrk::{write_token_script, wrk};
use anyhow::bail;
use crowdgate_protocol::routes::route;
use crowdgate_tests::{
    OPS_TOKEN, ROUND, RoundOptions, System, core_http, core_requests, prequeue_ticket_token,
};

/// Pre-queue tickets the polls cycle through (a wrk script holds them all).
const MAX_POLLED: usize = 20_000;

pub async fn run(args: &Args) -> anyhow::Result<()> {
    crate::require("wrk", "sudo apt-get install wrk")?;
    let opens = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3_600),
    );
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(opens.to_string()),
            rate_per_minute: 60_000,
            ..Default::default()
        },
        false,
    )
    .await;
    let count = args.tickets.min(MAX_POLLED);
    let places = join_many(&system.core_url, "opening-investor", count).await?;
    let tokens: Vec<String> = places
        .iter()
        .map(|place| prequeue_ticket_token(&place.ticket_id, place.entry, &place.investor))
        .collect();
    let opened = core_http()
        .post(format!("{}/ops/v1/rounds/{ROUND}/open", system.core_url))
        .bearer_auth(OPS_TOKEN)
        .send()
        .await?;
    if !opened.status().is_success() {
        bail!("opening the round failed: {}", opened.text().await?);
    }
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("prequeue-status.lua");
    write_token_script(&script, "GET", &tokens)?;
    let before_all = core_requests(&system.core_url, None).await;
    let before_prequeue = core_requests(&system.core_url, Some(route::PREQUEUE)).await;
    let polls = wrk(
        args,
        &format!("{}/api/status", system.edge_url),
        Some(&script),
    )?;
    let calls = core_requests(&system.core_url, None).await - before_all;
    let prequeue_calls =
        core_requests(&system.core_url, Some(route::PREQUEUE)).await - before_prequeue;
    let per_1000 = calls as f64 * 1000.0 / polls.requests.max(1) as f64;
    println!("### Opening a pre-queue of {count}: calls from the edge to core\n");
    println!("| what | figure |");
    println!("|---|---:|");
    println!(
        "| status polls of pre-queue tickets after opening (wrk, {} s) | {} |",
        args.seconds, polls.requests
    );
    println!(
        "| polls per second; p50 / p99 ms | {:.0}; {:.2} / {:.2} |",
        polls.requests_per_s, polls.p50_ms, polls.p99_ms
    );
    println!("| non-2xx answers | {} |", polls.non_2xx);
    println!("| calls to core, all routes | {calls} |");
    println!("| of which pre-queue number look-ups | {prequeue_calls} |");
    println!("| **calls to core per 1,000 status polls** | **{per_1000:.2}** |");
    println!();
    Ok(())
}
