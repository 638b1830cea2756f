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
//! 2. The failover windows, one fault at a time on the same set: kill -9
//!    of the primary (restarted as a replica once another is promoted, as
//!    its supervisor would: `LocalHa::heal`), a 10 s hang of the primary
//!    (SIGSTOP, then SIGCONT), and kill -9 of a replica (restarted 5 s
//!    later). Under the same kind of load, each client retries a 503 after
//!    [`RETRY_PAUSE`] with the same Idempotency-Key (and takes a new key
//!    only after a 201), as a well-behaved client does. Reported per fault:
//!    to the promotion, how long writes were unavailable (the fault to the
//!    first 201 for a request sent after it), the span of 503s and how many
//!    requests got one. Any other answer (or no answer) is unexpected and
//!    printed: there should be none.

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
    let mut failovers = Vec::new();
    let faults = [
        Fault::KillPrimary,
        Fault::HangPrimary(Duration::from_secs(10)),
        Fault::KillReplica,
    ];
    for (run, fault) in (0..).zip(faults) {
        failovers.push(failover(args, &mut system, fault, run).await?);
    }
    drop(system);

    print_throughput(args, &single, &replicated, &confirmations);
    print_failover(args, &failovers);
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

/// A fault done to the replicated set under load.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// kill -9 of the primary; once a replica is promoted, the dead node is
    /// restarted as a replica, as its supervisor would.
    KillPrimary,
    /// SIGSTOP of the primary for this long, then SIGCONT: a hung machine
    /// or a partition that heals. Sentinel demotes it when it wakes.
    HangPrimary(Duration),
    /// kill -9 of one replica, restarted after [`REPLICA_DOWN`].
    KillReplica,
}

/// How long a killed replica stays down.
const REPLICA_DOWN: Duration = Duration::from_secs(5);

impl Fault {
    fn describe(self) -> String {
        match self {
            Fault::KillPrimary => "kill -9 of the primary".into(),
            Fault::HangPrimary(d) => format!("the primary hung {} s (SIGSTOP)", d.as_secs()),
            Fault::KillReplica => format!(
                "kill -9 of a replica (restarted {} s later)",
                REPLICA_DOWN.as_secs()
            ),
        }
    }
}

/// What one fault looked like to the clients.
struct FailoverFigures {
    fault: Fault,
    /// The primary when the fault was done, and the one after it (the same
    /// when nothing was promoted).
    old: u16,
    new: u16,
    /// Fault to the Sentinels naming another primary, if they did.
    promoted_after: Option<Duration>,
    /// Fault to the set being whole again (every node a synced replica of
    /// the primary).
    whole_after: Duration,
    /// Fault to the first 201 for a request sent after the fault: how long
    /// writes were unavailable.
    first_accepted_after: Option<Duration>,
    /// First and last 503, from the fault.
    unavailable_from: Option<(Duration, Duration)>,
    unavailable: usize,
    /// Of those, answered before the fault (there should be none).
    unavailable_before_fault: usize,
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
    /// When the fault was done.
    fault_at: OnceLock<Instant>,
    /// A 201 came for a request sent after the fault.
    recovered: AtomicBool,
    first_unexpected: Mutex<Option<String>>,
}

/// Runs the clients' load, does `fault` after [`BEFORE_KILL`], waits until
/// the set is whole and writes are accepted again, and reports what the
/// clients saw. `run` names the clients' keys, so runs on one system never
/// share one.
async fn failover(
    args: &Args,
    system: &mut HaSystem,
    fault: Fault,
    run: u32,
) -> anyhow::Result<FailoverFigures> {
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let http = crowdgate_tests::core_http_builder()
        .pool_max_idle_per_host(args.connections as usize)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let live = Arc::new(Live::default());
    let clients: Vec<_> = (0..args.connections)
        .map(|c| tokio::spawn(client(http.clone(), url.clone(), c, run, live.clone())))
        .collect();

    let progress = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} fault: {msg} [{elapsed}]",
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
        progress.suspend(|| eprintln!("fault: {text}"));
        *phase.lock().unwrap() = text.to_string();
    };
    set_phase(&format!(
        "{} connections investing, retrying 503s after {} ms with the same key; {} in {} s",
        args.connections,
        RETRY_PAUSE.as_millis(),
        fault.describe(),
        BEFORE_KILL.as_secs()
    ));
    tokio::time::sleep(BEFORE_KILL).await;

    let outcome = async {
        let old = system
            .ha
            .primary_port()
            .await
            .context("the Sentinels name no primary")?;
        let replica = *system.ha.ports_except(old).first().context("no replica")?;
        let target = match fault {
            Fault::KillPrimary | Fault::HangPrimary(_) => old,
            Fault::KillReplica => replica,
        };
        let node = system
            .ha
            .node_on(target)
            .context("not one of the set's nodes")?;
        match fault {
            Fault::KillPrimary | Fault::KillReplica => node.kill(),
            Fault::HangPrimary(_) => node.stop(),
        }
        let fault_at = Instant::now();
        let _ = live.fault_at.set(fault_at);
        set_phase(&format!("{} (127.0.0.1:{target})", fault.describe()));
        let mut promoted_after = None;
        let mut new = old;
        match fault {
            Fault::KillPrimary => {
                new = system
                    .ha
                    .wait_for_primary_change(old, PROMOTION_TIMEOUT)
                    .await?;
                promoted_after = Some(fault_at.elapsed());
                // As its supervisor would (`crowdgate up --ha`, a
                // StatefulSet): back as a replica of the promoted node.
                system.ha.restart_node(old).await?;
            }
            Fault::HangPrimary(hang) => {
                new = system
                    .ha
                    .wait_for_primary_change(old, PROMOTION_TIMEOUT)
                    .await?;
                promoted_after = Some(fault_at.elapsed());
                tokio::time::sleep(hang.saturating_sub(fault_at.elapsed())).await;
                system
                    .ha
                    .node_on(old)
                    .context("not one of the set's nodes")?
                    .cont();
            }
            Fault::KillReplica => {
                tokio::time::sleep(REPLICA_DOWN).await;
                system.ha.restart_node(replica).await?;
            }
        }
        set_phase("waiting until the set is whole again");
        system
            .ha
            .wait_until_replicating(REPLICATING_TIMEOUT)
            .await?;
        let whole_after = fault_at.elapsed();
        while !live.recovered.load(Ordering::Relaxed) && fault_at.elapsed() < RECOVERY_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        set_phase(&format!(
            "accepting again; {} s more load",
            AFTER_RECOVERY.as_secs()
        ));
        tokio::time::sleep(AFTER_RECOVERY).await;
        anyhow::Ok((old, new, fault_at, promoted_after, whole_after))
    }
    .await;

    live.stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.push(client.await?);
    }
    ticker.abort();
    progress.finish_and_clear();
    let (old, new, fault_at, promoted_after, whole_after) = outcome?;

    let since_fault = |at: Instant| at.saturating_duration_since(fault_at);
    let all = || answers.iter().flatten();
    let first_accepted_after = all()
        .filter(|a| a.status == 201 && a.sent > fault_at)
        .map(|a| a.answered)
        .min()
        .map(since_fault);
    let unavailable_at: Vec<Instant> = all()
        .filter(|a| a.status == 503)
        .map(|a| a.answered)
        .collect();
    let unavailable_from = unavailable_at
        .iter()
        .min()
        .zip(unavailable_at.iter().max())
        .map(|(first, last)| (since_fault(*first), since_fault(*last)));
    let mut unexpected = BTreeMap::new();
    for answer in all().filter(|a| a.status != 201 && a.status != 503) {
        *unexpected.entry(answer.status).or_default() += 1;
    }
    let first_unexpected = live.first_unexpected.lock().unwrap().take();
    Ok(FailoverFigures {
        fault,
        old,
        new,
        promoted_after,
        whole_after,
        first_accepted_after,
        unavailable_from,
        unavailable: unavailable_at.len(),
        unavailable_before_fault: unavailable_at.iter().filter(|at| **at < fault_at).count(),
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
async fn client(
    http: reqwest::Client,
    url: String,
    c: u32,
    run: u32,
    live: Arc<Live>,
) -> Vec<Answer> {
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
                format!("failover-{run}-{c}-{n}")
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
                if live.fault_at.get().is_some_and(|fault| sent > *fault) {
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

fn print_failover(args: &Args, figures: &[FailoverFigures]) {
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "### Failover windows: one fault at a time under load ({} connections investing through \
         core, each retrying a 503 after {} ms with the same Idempotency-Key)\n",
        args.connections,
        RETRY_PAUSE.as_millis()
    );
    println!(
        "| fault | promotion after | writes unavailable (fault to first 201 sent after it) | 503s, first to last | requests answered 503 | unexpected answers | set whole again after |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for f in figures {
        let promotion = match f.promoted_after {
            Some(after) => format!("{} (127.0.0.1:{} → {})", s(after), f.old, f.new),
            None => "none".into(),
        };
        let span = match f.unavailable_from {
            Some((first, last)) => format!("{} to {}", s(first), s(last)),
            None => "none".into(),
        };
        println!(
            "| {} | {promotion} | {} | {span} | {} (before the fault: {}; connections hit: {} of {}) | {} | {} |",
            f.fault.describe(),
            f.first_accepted_after.map_or("none".into(), s),
            f.unavailable,
            f.unavailable_before_fault,
            f.connections_hit,
            args.connections,
            f.unexpected.values().sum::<usize>(),
            s(f.whole_after),
        );
    }
    println!();
    for f in figures.iter().filter(|f| !f.unexpected.is_empty()) {
        let counts: Vec<String> = f
            .unexpected
            .iter()
            .map(|(status, n)| match status {
                0 => format!("no answer: {n}"),
                status => format!("{status}: {n}"),
            })
            .collect();
        println!(
            "{}: unexpected answers: {}",
            f.fault.describe(),
            counts.join(", ")
        );
        if let Some(first) = &f.first_unexpected {
            println!("first unexpected answer: {first}");
        }
        println!();
    }
    let accepted: usize = figures.iter().map(|f| f.accepted).sum();
    println!("requests answered 201 over all the faults' runs: {accepted}");
    println!();
}
