//! What replication costs and what a failover looks like to clients.
//!
//! With Redis under Sentinel, core acknowledges a write only once a replica
//! holds it (`INCR marker` + `WAIT 1 timeout`, batched per process:
//! `store/src/connection.rs`), so every accepted investment pays a round trip
//! to the replica on top of the primary's fsync. Measured in one run, one
//! system after the other (never both at once: the machine has 2 cores):
//!
//! 1. Accepted investments per second through core (HTTP) with the invest
//!    part's own load ([`crate::invest::load`]: same connections, same
//!    seconds), on a single redis-server and on a primary + two replicas
//!    with three Sentinels ([`HaSystem`]); each system runs one settlement
//!    worker (`HaSystem` always does), so what differs is the replicas (and
//!    the Sentinels).
//!    Goal: replicated ≥ 0.5× single. Also printed: how many `WAIT` rounds
//!    confirmed the replicated load's writes (the batch size), since a load
//!    of N connections is bounded by N / latency and each write waits for
//!    the round in flight to end and then for its own.
//! 2. The failover window: under the same kind of load, with each client
//!    retrying a 503 after [`RETRY_PAUSE`] with the same Idempotency-Key
//!    (and taking a new key only after a 201), as a well-behaved client
//!    does, the primary is killed (-9); once the Sentinels have promoted a
//!    replica the dead node is restarted, as its supervisor would
//!    (`LocalHa::heal`). Reported: kill to promotion, kill to the first 201
//!    for a request sent after the kill, the span from the first to the last
//!    503 clients saw and how many requests got one. Any other answer (or no
//!    answer) is unexpected and printed: there should be none.

use crate::Args;
use crate::invest::{LoadFigures, load};
use anyhow::Context;
use crowdgate_store::{RoundKeys, layout};
use crowdgate_tests::ha::HaSystem;
use crowdgate_tests::{ROUND, RoundOptions, System, pass_token};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a client waits before retrying a 503 (as the failover tests'
/// clients do; core's `Retry-After: 1` is an upper bound a client may use).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Load before the kill, so the kill hits a system in its steady state.
const BEFORE_KILL: Duration = Duration::from_secs(3);
/// Load after the first 201 that follows the kill, to catch late 503s.
const AFTER_RECOVERY: Duration = Duration::from_secs(3);
/// Longest wait for the promotion after the kill.
const PROMOTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the restarted node to be a synced replica.
const REPLICATING_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait from the kill for a 201 again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(90);
/// One request's longest wait for an answer; past it, the request counts
/// as unexpected (no answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let round = RoundOptions {
        cap_pence: 1_000_000_000_000,
        max_investment_pence: 1_000_000_000_000,
        ..Default::default()
    };
    let url = |core_url: &str| format!("{core_url}/v1/rounds/{ROUND}/investments");

    eprintln!(
        "starting the single-node system (redis-server, core, a settlement worker, the host)…"
    );
    let single = {
        let system = System::start_with(round.clone(), true).await;
        load(args, &url(&system.core_url), "single").await?
        // Dropped here: every process of it is killed before the next starts.
    };

    eprintln!(
        "starting the replicated system (primary + 2 replicas + 3 Sentinels, core, a settlement worker, the host)…"
    );
    let mut system = HaSystem::start(round).await;
    let before = Confirmations::read(&system).await?;
    let replicated = load(args, &url(&system.core_url), "replicated").await?;
    let confirmations = Confirmations::read(&system).await?.since(&before);
    let failover = failover(args, &mut system).await?;
    drop(system);

    print_throughput(args, &single, &replicated, &confirmations);
    print_failover(args, &failover);
    Ok(())
}

/// How core confirmed the writes of a load: counted on the primary, where
/// only core's confirmer sends `WAIT` (one per batch, after an `INCR` of
/// the marker), and the investments accepted by the round's count.
struct Confirmations {
    waits: u64,
    accepted: u64,
}

impl Confirmations {
    async fn read(system: &HaSystem) -> anyhow::Result<Confirmations> {
        let mut primary = system.primary().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut primary)
            .await?;
        // `cmdstat_wait:calls=12,usec=...`
        let waits = info
            .lines()
            .find_map(|line| line.trim().strip_prefix("cmdstat_wait:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(Ok(0), str::parse)?;
        let accepted: Option<u64> = redis::AsyncCommands::hget(
            &mut primary,
            RoundKeys::new(ROUND).round(),
            layout::round::ACCEPTED_COUNT,
        )
        .await?;
        Ok(Confirmations {
            waits,
            accepted: accepted.unwrap_or(0),
        })
    }

    fn since(&self, before: &Confirmations) -> Confirmations {
        Confirmations {
            waits: self.waits - before.waits,
            accepted: self.accepted - before.accepted,
        }
    }
}

fn print_throughput(
    args: &Args,
    single: &LoadFigures,
    replicated: &LoadFigures,
    confirmations: &Confirmations,
) {
    println!(
        "### Accepted investments per second through core: single Redis vs primary + 2 replicas \
         ({} connections, {} s each, one after the other; each system runs one settlement worker)\n",
        args.connections, args.seconds
    );
    println!("| Redis | accepted/s | p50 ms | p99 ms | refused |");
    println!("|---|---:|---:|---:|---:|");
    for (name, f) in [
        ("single node (appendfsync always)", single),
        (
            "primary + 2 replicas under Sentinel, core waits for 1 replica (WAIT)",
            replicated,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            f.accepted_per_s, f.p50_ms, f.p99_ms, f.refused
        );
    }
    println!();
    println!(
        "replicated / single: {:.2} (goal ≥ 0.5)",
        replicated.accepted_per_s / single.accepted_per_s
    );
    let waits = confirmations.waits.max(1);
    println!(
        "replicated: {} accepted investments confirmed by {} `WAIT` rounds ({:.1} per round, \
         one round every {:.1} ms)",
        confirmations.accepted,
        confirmations.waits,
        confirmations.accepted as f64 / waits as f64,
        f64::from(args.seconds) * 1000.0 / waits as f64
    );
    println!();
}

/// What one failover looked like to the clients.
struct FailoverFigures {
    /// The port of the killed primary and of the promoted replica.
    old: u16,
    new: u16,
    promoted_after: Duration,
    /// Kill to the dead node's restart (after the promotion).
    restarted_after: Duration,
    /// Kill to the restarted node being a synced replica of the new primary.
    replicating_after: Duration,
    /// Kill to the first 201 for a request sent after the kill.
    first_accepted_after: Option<Duration>,
    /// First and last 503, from the kill.
    unavailable_from: Option<(Duration, Duration)>,
    unavailable: usize,
    /// Of those, answered before the kill (there should be none).
    unavailable_before_kill: usize,
    /// Connections that met at least one 503.
    connections_hit: usize,
    accepted: usize,
    /// Answers other than 201 and 503 by status (0: no answer), with the
    /// first such body.
    unexpected: BTreeMap<u16, usize>,
    first_unexpected: Option<String>,
}

/// One answer the clients got.
struct Answer {
    sent: Instant,
    answered: Instant,
    /// 0: no answer (connection error or [`REQUEST_TIMEOUT`]).
    status: u16,
}

/// Counters shared with the clients, for progress and for knowing when
/// writes are accepted again.
#[derive(Default)]
struct Live {
    stop: AtomicBool,
    accepted: AtomicU64,
    unavailable: AtomicU64,
    unexpected: AtomicU64,
    killed_at: OnceLock<Instant>,
    /// A 201 came for a request sent after the kill.
    recovered: AtomicBool,
    first_unexpected: Mutex<Option<String>>,
}

async fn failover(args: &Args, system: &mut HaSystem) -> anyhow::Result<FailoverFigures> {
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let http = crowdgate_tests::core_http_builder()
        .pool_max_idle_per_host(args.connections as usize)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let live = Arc::new(Live::default());
    let clients: Vec<_> = (0..args.connections)
        .map(|c| tokio::spawn(client(http.clone(), url.clone(), c, live.clone())))
        .collect();

    let progress = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} failover: {msg} [{elapsed}]",
    )?);
    let phase = Arc::new(Mutex::new(String::from("steady load")));
    let ticker = {
        let (progress, phase, live) = (progress.clone(), phase.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                progress.set_message(format!(
                    "{}; 201: {}, 503: {}, unexpected: {}",
                    phase.lock().unwrap(),
                    live.accepted.load(Ordering::Relaxed),
                    live.unavailable.load(Ordering::Relaxed),
                    live.unexpected.load(Ordering::Relaxed)
                ));
                progress.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let set_phase = |text: &str| {
        progress.suspend(|| eprintln!("failover: {text}"));
        *phase.lock().unwrap() = text.to_string();
    };
    set_phase(&format!(
        "{} connections investing, retrying 503s after {} ms with the same key; kill -9 of the primary in {} s",
        args.connections,
        RETRY_PAUSE.as_millis(),
        BEFORE_KILL.as_secs()
    ));
    tokio::time::sleep(BEFORE_KILL).await;

    let outcome = async {
        let old = system
            .ha
            .primary_port()
            .await
            .context("the Sentinels name no primary")?;
        system
            .ha
            .node_on(old)
            .context("the primary is not one of the set's nodes")?
            .kill();
        let killed_at = Instant::now();
        let _ = live.killed_at.set(killed_at);
        set_phase(&format!(
            "killed the primary 127.0.0.1:{old}; waiting for the promotion"
        ));
        let new = system
            .ha
            .wait_for_primary_change(old, PROMOTION_TIMEOUT)
            .await?;
        let promoted_after = killed_at.elapsed();
        set_phase(&format!(
            "127.0.0.1:{new} promoted after {:.2} s; restarting 127.0.0.1:{old}",
            promoted_after.as_secs_f64()
        ));
        // As its supervisor would (`crowdgate up --ha`, a StatefulSet): back
        // as a replica of the promoted node.
        system.ha.restart_node(old).await?;
        let restarted_after = killed_at.elapsed();
        set_phase("waiting until the restarted node replicates");
        system
            .ha
            .wait_until_replicating(REPLICATING_TIMEOUT)
            .await?;
        let replicating_after = killed_at.elapsed();
        set_phase(&format!(
            "replicating after {:.2} s; waiting for a 201",
            replicating_after.as_secs_f64()
        ));
        while !live.recovered.load(Ordering::Relaxed) && killed_at.elapsed() < RECOVERY_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        set_phase(&format!(
            "accepting again; {} s more load",
            AFTER_RECOVERY.as_secs()
        ));
        tokio::time::sleep(AFTER_RECOVERY).await;
        anyhow::Ok((
            old,
            new,
            killed_at,
            promoted_after,
            restarted_after,
            replicating_after,
        ))
    }
    .await;

    live.stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.push(client.await?);
    }
    ticker.abort();
    progress.finish_and_clear();
    let (old, new, killed_at, promoted_after, restarted_after, replicating_after) = outcome?;

    let since_kill = |at: Instant| at.saturating_duration_since(killed_at);
    let all = || answers.iter().flatten();
    let first_accepted_after = all()
        .filter(|a| a.status == 201 && a.sent > killed_at)
        .map(|a| a.answered)
        .min()
        .map(since_kill);
    let unavailable_at: Vec<Instant> = all()
        .filter(|a| a.status == 503)
        .map(|a| a.answered)
        .collect();
    let unavailable_from = unavailable_at
        .iter()
        .min()
        .zip(unavailable_at.iter().max())
        .map(|(first, last)| (since_kill(*first), since_kill(*last)));
    let mut unexpected = BTreeMap::new();
    for answer in all().filter(|a| a.status != 201 && a.status != 503) {
        *unexpected.entry(answer.status).or_default() += 1;
    }
    let first_unexpected = live.first_unexpected.lock().unwrap().take();
    Ok(FailoverFigures {
        old,
        new,
        promoted_after,
        restarted_after,
        replicating_after,
        first_accepted_after,
        unavailable_from,
        unavailable: unavailable_at.len(),
        unavailable_before_kill: unavailable_at.iter().filter(|at| **at < killed_at).count(),
        connections_hit: answers
            .iter()
            .filter(|mine| mine.iter().any(|a| a.status == 503))
            .count(),
        accepted: all().filter(|a| a.status == 201).count(),
        unexpected,
        first_unexpected,
    })
}

/// One investor investing again and again until told to stop: a new
/// Idempotency-Key after each 201, the same one again after anything else
/// (following [`RETRY_PAUSE`]). Returns every answer.
async fn client(http: reqwest::Client, url: String, c: u32, live: Arc<Live>) -> Vec<Answer> {
    let investor = format!("failover-investor-{c}");
    let pass = pass_token(&format!("failover-ticket-{c}"), u64::from(c) + 1, &investor);
    let body = serde_json::json!({"investor_id": investor, "amount_pence": 1_000}).to_string();
    let mut answers = Vec::new();
    let mut n = 0u64;
    let mut key: Option<String> = None;
    while !live.stop.load(Ordering::Relaxed) {
        let idempotency_key = key
            .get_or_insert_with(|| {
                n += 1;
                format!("failover-{c}-{n}")
            })
            .clone();
        let sent = Instant::now();
        let response = http
            .post(&url)
            .bearer_auth(&pass)
            .header("idempotency-key", &idempotency_key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let (status, text) = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(err) => (0, format!("no answer: {err}")),
        };
        let answered = Instant::now();
        answers.push(Answer {
            sent,
            answered,
            status,
        });
        match status {
            201 => {
                key = None;
                live.accepted.fetch_add(1, Ordering::Relaxed);
                if live.killed_at.get().is_some_and(|killed| sent > *killed) {
                    live.recovered.store(true, Ordering::Relaxed);
                }
            }
            503 => {
                live.unavailable.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            _ => {
                live.unexpected.fetch_add(1, Ordering::Relaxed);
                live.first_unexpected
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("{status} {text}"));
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    answers
}

fn print_failover(args: &Args, f: &FailoverFigures) {
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "### Failover: kill -9 of the primary under load ({} connections investing through core, \
         each retrying a 503 after {} ms with the same Idempotency-Key)\n",
        args.connections,
        RETRY_PAUSE.as_millis()
    );
    println!(
        "| from the kill of the primary (127.0.0.1:{}) | figure |",
        f.old
    );
    println!("|---|---:|");
    println!(
        "| to the promotion of the replica (127.0.0.1:{}) | {} |",
        f.new,
        s(f.promoted_after)
    );
    println!(
        "| to the old primary's restart (after the promotion) | {} |",
        s(f.restarted_after)
    );
    println!(
        "| to the restarted node replicating the new primary | {} |",
        s(f.replicating_after)
    );
    println!(
        "| to the first 201 (request sent after the kill) | {} |",
        f.first_accepted_after.map_or("none".into(), s)
    );
    match f.unavailable_from {
        Some((first, last)) => {
            println!(
                "| 503s seen by clients, first to last | {} ({} to {}) |",
                s(last.saturating_sub(first)),
                s(first),
                s(last)
            );
        }
        None => println!("| 503s seen by clients, first to last | none |"),
    }
    println!(
        "| requests answered 503 (before the kill: {}) | {} |",
        f.unavailable_before_kill, f.unavailable
    );
    println!(
        "| connections that met a 503 | {} of {} |",
        f.connections_hit, args.connections
    );
    println!("| requests answered 201 (whole run) | {} |", f.accepted);
    println!(
        "| unexpected answers (not 201 or 503) | {} |",
        f.unexpected.values().sum::<usize>()
    );
    println!();
    if !f.unexpected.is_empty() {
        let counts: Vec<String> = f
            .unexpected
            .iter()
            .map(|(status, n)| match status {
                0 => format!("no answer: {n}"),
                status => format!("{status}: {n}"),
            })
            .collect();
        println!("unexpected answers: {}", counts.join(", "));
        if let Some(first) = &f.first_unexpected {
            println!("first unexpected answer: {first}");
        }
        println!();
    }
}
