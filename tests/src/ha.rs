//! The whole system on a replicated Redis: [`HaSystem`] runs core, a
//! settlement worker and the edge host against a [`LocalHa`] (primary,
//! two replicas, three Sentinels), for tests that kill or stop Redis nodes under
//! load. [`visit`] is an investor's whole visit as a well-behaved client
//! makes it, retrying every 503 (the investment with the same
//! Idempotency-Key); [`Load`] runs many at once and tells as it goes what
//! they see ([`Tally`]); and [`check_books`] holds the books against what
//! the clients were told (also for systems other than [`HaSystem`]:
//! [`check_books_with`]).

use crate::{
    Proc, ROUND, RoundOptions, Visitor, identity_env, json_of, run_crowdgate, start_services,
};
use crowdgate::local_ha::{HaOptions, LocalHa};
use crowdgate_store::Settlement;
use crowdgate_store::layout::{entry, investment, journal, status};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// core, a worker and the edge on a primary + two replicas under Sentinel.
pub struct HaSystem {
    pub ha: LocalHa,
    pub core: Proc,
    pub settle: Option<Proc>,
    pub host: Proc,
    pub edge_url: String,
    pub core_url: String,
    pub dir: TempDir,
}

impl HaSystem {
    /// Starts the set (ready to fail over), then the services, which find
    /// the primary through the Sentinels and wait for one replica per write.
    pub async fn start(round: RoundOptions) -> HaSystem {
        let dir = tempfile::tempdir().expect("temp dir");
        let ha = LocalHa::start(&dir.path().join("ha"), HaOptions::default())
            .await
            .expect("the Redis set starts");
        let env = ha.client_env();
        let (core, core_url, settle, host, edge_url) =
            start_services(&round, &env, dir.path(), true, identity_env()).await;
        HaSystem {
            ha,
            core,
            settle,
            host,
            edge_url,
            core_url,
            dir,
        }
    }

    /// A connection to the node the Sentinels name primary now.
    pub async fn primary(&self) -> redis::aio::MultiplexedConnection {
        let url = self.ha.primary_url().await.expect("a primary");
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Funds investor accounts on the primary.
    pub async fn fund(&self, accounts: &[(&str, i64)]) {
        crowdgate_store::inspect::set_balances(&mut self.primary().await, accounts)
            .await
            .unwrap();
    }

    /// Runs a `crowdgate` subcommand against this system's Redis (through
    /// the Sentinels); returns (success, stdout, stderr).
    pub fn crowdgate(&self, args: &[&str]) -> (bool, String, String) {
        run_crowdgate(&self.ha.client_env(), args)
    }
}

/// How one visit ended.
#[derive(Debug)]
pub struct Outcome {
    pub investor: String,
    pub amount_pence: i64,
    /// The investment the client was told was accepted (201, or 200 for a
    /// replay of the same key).
    pub investment: Value,
    /// When each 503 was answered, on any call.
    pub unavailable_at: Vec<Instant>,
    /// How many of those were status polls (served from the edge's cached
    /// room state, so they should not fail while Redis fails over).
    pub status_unavailable: usize,
    /// The queue number the acknowledged join gave (`None` in a pre-queue).
    pub queue_number: Option<u64>,
}

/// What the clients of a [`Load`] have seen so far, as it happens (an
/// [`Outcome`] is known only once its visit ends).
#[derive(Debug, Default)]
pub struct Tally {
    /// Visits that ended in an acknowledged investment.
    acknowledged: AtomicUsize,
    /// When each acknowledged investment's last request was sent, and when
    /// its answer came.
    investments: Mutex<Vec<(Instant, Instant)>>,
    /// When each 503 was answered, on any call.
    unavailable: Mutex<Vec<Instant>>,
}

impl Tally {
    /// Visits that ended in an acknowledged investment so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// When the first investment whose request was sent at or after `since`
    /// was acknowledged, if one has been.
    pub fn acknowledged_after(&self, since: Instant) -> Option<Instant> {
        let investments = self.investments.lock().unwrap();
        investments
            .iter()
            .filter(|(sent, _)| *sent >= since)
            .map(|(_, answered)| *answered)
            .min()
    }

    /// When the first 503 at or after `since` was answered, if one has been.
    pub fn unavailable_after(&self, since: Instant) -> Option<Instant> {
        let unavailable = self.unavailable.lock().unwrap();
        unavailable.iter().copied().filter(|at| *at >= since).min()
    }
}

/// Signs in as `investor`, joins, waits to be admitted, takes a pass and
/// invests `amount_pence`, retrying each call that answers 503 (after
/// 100 ms) until it gets a definitive answer; any other refusal fails the
/// test. Gives up (fails) after `give_up`.
/// Every 503 and the acknowledged investment are also counted in `tally`
/// as they come.
pub async fn visit(
    edge_url: &str,
    investor: &str,
    amount_pence: i64,
    give_up: Duration,
    tally: &Tally,
) -> Outcome {
    let deadline = Instant::now() + give_up;
    let visitor = Visitor::signed_in(edge_url, investor);
    let mut unavailable_at = Vec::new();
    let mut status_unavailable = 0;
    let mut retry = |what: &str, code: u16, body: &Value| {
        assert_eq!(code, 503, "{investor}: {what} answered {code}: {body}");
        assert!(
            Instant::now() < deadline,
            "{investor}: {what} still 503 after {give_up:?}: {body}"
        );
        unavailable_at.push(Instant::now());
        tally.unavailable.lock().unwrap().push(Instant::now());
    };
    let pause = || tokio::time::sleep(Duration::from_millis(100));

    let queue_number = loop {
        let (code, body) = visitor.join().await;
        if code == 200 || code == 201 {
            break body["status"]["queue_number"].as_u64();
        }
        retry("join", code, &body);
        pause().await;
    };
    loop {
        let (code, body) = visitor.status().await;
        if code == 200 && body["state"] == "admitted" {
            break;
        }
        if code == 200 {
            assert!(
                Instant::now() < deadline,
                "{investor}: not admitted: {body}"
            );
            let wait = body["poll_after_ms"].as_u64().unwrap_or(200).min(300);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            continue;
        }
        retry("status", code, &body);
        status_unavailable += 1;
        pause().await;
    }
    let pass = loop {
        let (code, body) = json_of(
            visitor
                .http
                .post(format!("{edge_url}/api/pass"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if code == 200 {
            break body["pass"].as_str().unwrap().to_string();
        }
        retry("pass", code, &body);
        pause().await;
    };
    let key = format!("{investor}-invest");
    let investment = loop {
        let sent = Instant::now();
        let (code, body) = visitor
            .invest(
                &pass,
                &key,
                serde_json::json!({"amount_pence": amount_pence}),
            )
            .await;
        if code == 201 || code == 200 {
            tally
                .investments
                .lock()
                .unwrap()
                .push((sent, Instant::now()));
            tally.acknowledged.fetch_add(1, Ordering::Relaxed);
            break body;
        }
        retry("invest", code, &body);
        pause().await;
    };
    Outcome {
        investor: investor.to_string(),
        amount_pence,
        investment,
        unavailable_at,
        status_unavailable,
        queue_number,
    }
}

/// Many investors' visits by a few concurrent clients, each investing
/// £10–£50, until every investor has invested or [`Load::stop`].
pub struct Load {
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
    /// What the clients have seen so far.
    pub tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Funds `investors` investors called `<name>-<i>` on `system` and
    /// starts `clients` clients visiting them, each giving up on a visit
    /// still refused after `give_up`.
    pub async fn start(
        system: &HaSystem,
        name: &str,
        investors: usize,
        clients: usize,
        give_up: Duration,
    ) -> Load {
        let names = investor_names(name, investors);
        let funded: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), 1_000_000)).collect();
        system.fund(&funded).await;
        Load::start_funded(&system.edge_url, names, clients, give_up)
    }

    /// Starts `clients` clients visiting the edge at `edge_url` as
    /// `investors` (already funded), each client taking every
    /// `clients`-th of them in turn.
    pub fn start_funded(
        edge_url: &str,
        investors: Vec<String>,
        clients: usize,
        give_up: Duration,
    ) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let edge_url = edge_url.to_string();
                let mine: Vec<String> = investors
                    .iter()
                    .skip(client)
                    .step_by(clients)
                    .cloned()
                    .collect();
                let (tally, stop) = (tally.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for (i, investor) in mine.iter().enumerate() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let amount = 1_000 + 1_000 * ((client + i) % 5) as i64;
                        outcomes.push(visit(&edge_url, investor, amount, give_up, &tally).await);
                    }
                    outcomes
                })
            })
            .collect();
        Load { tasks, tally, stop }
    }

    /// Visits that ended in an acknowledged investment so far.
    pub fn acknowledged(&self) -> usize {
        self.tally.acknowledged()
    }

    /// Waits until at least `n` visits ended in an acknowledged investment.
    pub async fn wait_for(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acknowledged() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} investments acknowledged within {within:?}",
                self.acknowledged()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// No client starts another visit; those under way go on.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for every client to end (after [`Load::stop`], or once its
    /// investors are done) and returns every visit's outcome.
    pub async fn finish(self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for task in self.tasks {
            outcomes.extend(task.await.expect("a client task panicked"));
        }
        outcomes
    }
}

/// `<name>-0` … `<name>-<n-1>`: the investors of a [`Load`].
pub fn investor_names(name: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{name}-{i}")).collect()
}

/// Waits until every acknowledged investment is settled (the investors are
/// funded), then checks on the current primary: each is recorded with its
/// amount, in the settlement stream exactly once and posted to the journal
/// exactly once; raised ≤ cap; `crowdgate reconcile` finds every invariant
/// holding; and neither core nor the worker logged an ERROR.
pub async fn check_books(system: &HaSystem, outcomes: &[Outcome], cap_pence: i64) {
    check_books_with(
        async || system.primary().await,
        |args| system.crowdgate(args),
        &[Some(&system.core), system.settle.as_ref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
        outcomes,
        cap_pence,
    )
    .await;
}

/// [`check_books`] for any system: `primary` connects to its primary now,
/// `crowdgate` runs a `crowdgate` subcommand against its Redis, and
/// `services` must have logged no ERROR. Also checks that no two
/// investors' acknowledged joins were given the same queue number (one
/// investor investing twice holds one place).
pub async fn check_books_with(
    primary: impl AsyncFn() -> redis::aio::MultiplexedConnection,
    crowdgate: impl Fn(&[&str]) -> (bool, String, String),
    services: &[&Proc],
    outcomes: &[Outcome],
    cap_pence: i64,
) {
    let mut numbers: HashMap<u64, &str> = HashMap::new();
    for outcome in outcomes {
        if let Some(number) = outcome.queue_number
            && let Some(other) = numbers.insert(number, &outcome.investor)
            && other != outcome.investor
        {
            panic!(
                "queue number {number} was given to both {other} and {}",
                outcome.investor
            );
        }
    }
    let keys = crowdgate_store::RoundKeys::new(ROUND);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut redis = primary().await;
        let mut unsettled = Vec::new();
        for outcome in outcomes {
            let id = outcome.investment["investment_id"].as_str().unwrap();
            let record: HashMap<String, String> =
                redis::AsyncCommands::hgetall(&mut redis, keys.investment(id))
                    .await
                    .unwrap();
            assert!(
                !record.is_empty(),
                "acknowledged investment {id} of {} is gone after the failover",
                outcome.investor
            );
            assert_eq!(
                record[investment::AMOUNT_PENCE],
                outcome.amount_pence.to_string(),
                "{id}"
            );
            if record[investment::STATUS] != status::SETTLED {
                unsettled.push(format!("{id} {}", record[investment::STATUS]));
            }
        }
        if unsettled.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged investments not settled within 60 s: {:?}",
            unsettled.len(),
            &unsettled[..unsettled.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut redis = primary().await;
    let settlement = Settlement::new(ROUND);
    let count = |ids: Vec<String>| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for id in ids {
            *counts.entry(id).or_default() += 1;
        }
        counts
    };
    let in_stream = count(
        settlement
            .field_values(&mut redis, &keys.settlement_stream(), entry::INVESTMENT_ID)
            .await
            .unwrap(),
    );
    let in_journal = count(
        settlement
            .field_values(&mut redis, &keys.journal(), journal::INVESTMENT_ID)
            .await
            .unwrap(),
    );
    for outcome in outcomes {
        let id = outcome.investment["investment_id"].as_str().unwrap();
        assert_eq!(in_stream.get(id), Some(&1), "{id} in the settlement stream");
        assert_eq!(in_journal.get(id), Some(&1), "{id} settled exactly once");
    }
    assert!(
        in_journal.values().all(|n| *n == 1),
        "an investment was settled twice"
    );
    let raised: i64 = redis::AsyncCommands::hget(
        &mut redis,
        keys.round(),
        crowdgate_store::layout::round::RAISED_PENCE,
    )
    .await
    .unwrap();
    assert!(raised <= cap_pence, "raised {raised} > cap {cap_pence}");
    let (ok, stdout, stderr) = crowdgate(&["reconcile", "--round", ROUND]);
    assert!(ok, "reconcile found violations:\n{stdout}\n{stderr}");
    // A failover is expected, not an error: core and the worker log it as
    // warnings; an ERROR line would be a real problem (or noise).
    for proc in services {
        let log = proc.log();
        assert!(
            !log.contains("ERROR"),
            "{}: an ERROR line:\n{log}",
            proc.name
        );
    }
}

/// The span from the first to the last 503 any client saw, if any.
pub fn unavailable_window(outcomes: &[Outcome]) -> Option<Duration> {
    let times = outcomes.iter().flat_map(|o| o.unavailable_at.iter());
    let first = times.clone().min()?;
    let last = times.max()?;
    Some(*last - *first)
}
