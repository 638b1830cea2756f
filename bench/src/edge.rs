//! Status polls through the Wasm edge vs a trivial component, with wrk.

use crate::Args;
use crate::wrk::{write_token_script, wrk};
use anyhow::{Context, bail};
use crowdgate_protocol::routes::route;
use crowdgate_tests::{
    Proc, ROUND, RoundOptions, System, Visitor, core_http, core_requests, crowdgate_bin, free_port,
    identity_token, ticket_token, wait_for, wasm,
};
use std::process::Command;

pub async fn run(args: &Args) -> anyhow::Result<()> {
    crate::require("wrk", "sudo apt-get install wrk")?;
    // 1. Status polls through the waiting-room component, with `tickets`
    // visitors queued (joined through core, as the edge would).
    let system = System::start(RoundOptions {
        rate_per_minute: 60,
        ..Default::default()
    })
    .await;
    let memory_before = used_memory(&system).await?;
    let places = join_many(&system.core_url, "bench-investor", args.tickets).await?;
    let per_visitor = (used_memory(&system).await? - memory_before) as f64 / args.tickets as f64;
    let tokens: Vec<String> = places
        .iter()
        .take(POLLED_TICKETS)
        .map(|place| ticket_token(&place.ticket_id, place.number, &place.investor))
        .collect();
    // The edge's own join path still works with this many queued.
    let (code, body) = Visitor::new(&system.edge_url).join().await;
    if code != 201 {
        bail!("join through the edge failed: {code} {body}");
    }
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("status.lua");
    write_token_script(&script, "GET", &tokens)?;
    let before = core_requests(&system.core_url, Some(route::STATE)).await;
    let status = wrk(
        args,
        &format!("{}/api/status", system.edge_url),
        Some(&script),
    )?;
    let after = core_requests(&system.core_url, Some(route::STATE)).await;
    let core_per_1000 = (after - before) as f64 * 1000.0 / status.requests.max(1) as f64;

    // Joins through the edge by signed-in investors: each verifies an
    // identity token (EdDSA, the platform's key) and asks core for the
    // investor's place (new the first time round, the same one after).
    eprintln!("minting {JOINING_INVESTORS} identity tokens…");
    let identities: Vec<String> = (0..JOINING_INVESTORS)
        .map(|n| identity_token(&format!("bench-signed-in-{n}")))
        .collect();
    let join_script = dir.path().join("join.lua");
    write_token_script(&join_script, "POST", &identities)?;
    let joins = wrk(
        args,
        &format!("{}/api/join", system.edge_url),
        Some(&join_script),
    )?;
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

    println!(
        "### Status polls through the Wasm edge (wrk, {} threads)\n",
        args.threads
    );
    println!("| what | req/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|");
    for (name, f) in [
        ("status poll (waiting-room component)", &status),
        ("join, signed in (identity check + core)", &joins),
        ("trivial component (/hello)", &trivial),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            f.requests_per_s, f.p50_ms, f.p99_ms, f.non_2xx
        );
    }
    println!();
    println!(
        "status polls / trivial: {:.2}",
        status.requests_per_s / trivial.requests_per_s
    );
    println!(
        "signed-in joins / status polls: {:.2} (a join verifies the identity token and calls core once; \
         {JOINING_INVESTORS} investors, each joining again after their first place)",
        joins.requests_per_s / status.requests_per_s
    );
    println!(
        "core room-state requests per 1,000 status polls: {core_per_1000:.2} ({} tickets queued, polls cycle through {}, {} polls)",
        args.tickets,
        tokens.len(),
        status.requests
    );
    let prequeue_per_visitor = prequeue_memory(args.tickets.min(20_000)).await?;
    println!(
        "Redis memory per queued visitor: {per_visitor:.1} bytes after opening (a number is one HINCRBY, plus the investor's \
         entry in one hash: no per-visitor key); {prequeue_per_visitor:.1} bytes in the pre-queue (one sorted-set entry and \
         the investor's hash entry)"
    );
    println!();
    Ok(())
}

/// Tickets the status load cycles through (a wrk script holds them all).
const POLLED_TICKETS: usize = 20_000;
/// Signed-in investors the join load cycles through.
const JOINING_INVESTORS: usize = 5_000;

/// A place taken by [`join_many`].
pub(crate) struct Place {
    pub(crate) ticket_id: String,
    /// 0 for a pre-queue place.
    pub(crate) number: u64,
    /// A pre-queue place's entry (join order), else 0.
    pub(crate) entry: u64,
    pub(crate) investor: String,
}

/// Joins `count` visitors through core, 32 at a time, each a different
/// signed-in investor `<prefix>-<n>` (as the edge sends them,
/// `{"investor_id": ..}`), so each takes a new place.
pub(crate) async fn join_many(
    core_url: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Place>> {
    join_many_in(core_url, ROUND, prefix, count).await
}

/// [`join_many`] in round `round`.
pub(crate) async fn join_many_in(
    core_url: &str,
    round: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Place>> {
    eprintln!("joining {count} visitors to round {round} through core…");
    let http = core_http();
    let url = format!("{core_url}/v1/rounds/{round}/queue");
    let mut places = Vec::with_capacity(count);
    while places.len() < count {
        let batch = (count - places.len()).min(32);
        let joins = (places.len()..places.len() + batch).map(|n| {
            let (http, url) = (http.clone(), url.clone());
            let investor = format!("{prefix}-{n}");
            async move {
                let response = http
                    .post(url)
                    .json(&serde_json::json!({ "investor_id": investor }))
                    .send()
                    .await?;
                let code = response.status().as_u16();
                let place = response.json::<serde_json::Value>().await?;
                if code != 201 {
                    bail!("join through core failed: {code} {place}");
                }
                Ok::<_, anyhow::Error>(Place {
                    ticket_id: place["ticket_id"].as_str().unwrap_or_default().to_string(),
                    number: place["queue_number"].as_u64().unwrap_or(0),
                    entry: place["prequeue_entry"].as_u64().unwrap_or(0),
                    investor,
                })
            }
        });
        for place in futures::future::join_all(joins).await {
            places.push(place?);
        }
    }
    Ok(places)
}

async fn used_memory(system: &System) -> anyhow::Result<i64> {
    let mut redis = system.redis().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut redis)
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// Redis bytes per pre-queue visitor, measured on a scheduled round.
async fn prequeue_memory(count: usize) -> anyhow::Result<f64> {
    let opens = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3_600),
    );
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(opens.to_string()),
            ..Default::default()
        },
        false,
    )
    .await;
    let before = used_memory(&system).await?;
    join_many(&system.core_url, "bench-investor", count).await?;
    Ok((used_memory(&system).await? - before) as f64 / count as f64)
}
