//! The whole system on a replicated Redis: [`HaSystem`] runs core, a
//! settlement worker and the edge host against a [`LocalHa`] (primary,
//! two replicas, three Sentinels), for tests that kill or stop Redis nodes under
//! load. [`visit`] is an investor's whole visit as a well-behaved client
//! makes it, retrying every 503 (the investment with the same
//! Idempotency-Key), and [`check_books`] holds the books against what the
//! clients were told.

use crate::{
    Proc, ROUND, RoundOptions, Visitor, identity_env, json_of, run_crowdgate, start_services,
};
use crowdgate::local_ha::{HaOptions, LocalHa};
use crowdgate_store::Settlement;
use crowdgate_store::layout::{entry, investment, journal, status};
use serde_json::Value;
use std::collections::HashMap;
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
        let keys = crowdgate_store::RoundKeys::new(ROUND);
        crowdgate_store::inspect::set_balances(&mut self.primary().await, &keys, accounts)
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
}

/// Signs in as `investor`, joins, waits to be admitted, takes a pass and
/// invests `amount_pence`, retrying each call that answers 503 (after
/// 100 ms) until it gets a definitive answer; any other refusal fails the
/// test. Gives up (fails) after `give_up`.
pub async fn visit(
    edge_url: &str,
    investor: &str,
    amount_pence: i64,
    give_up: Duration,
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
    };
    let pause = || tokio::time::sleep(Duration::from_millis(100));

    loop {
        let (code, body) = visitor.join().await;
        if code == 200 || code == 201 {
            break;
        }
        retry("join", code, &body);
        pause().await;
    }
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
        let (code, body) = visitor
            .invest(
                &pass,
                &key,
                serde_json::json!({"amount_pence": amount_pence}),
            )
            .await;
        if code == 201 || code == 200 {
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
    }
}

/// Waits until every acknowledged investment is settled (the investors are
/// funded), then checks on the current primary: each is recorded with its
/// amount, in the settlement stream exactly once and posted to the journal
/// exactly once; raised ≤ cap; `crowdgate reconcile` finds every invariant
/// holding; and neither core nor the worker logged an ERROR.
pub async fn check_books(system: &HaSystem, outcomes: &[Outcome], cap_pence: i64) {
    let keys = crowdgate_store::RoundKeys::new(ROUND);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut redis = system.primary().await;
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

    let mut redis = system.primary().await;
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
    let (ok, stdout, stderr) = system.crowdgate(&["reconcile", "--round", ROUND]);
    assert!(ok, "reconcile found violations:\n{stdout}\n{stderr}");
    // A failover is expected, not an error: core and the worker log it as
    // warnings; an ERROR line would be a real problem (or noise).
    for proc in [Some(&system.core), system.settle.as_ref()]
        .into_iter()
        .flatten()
    {
        let log = proc.log();
        assert!(!log.contains("ERROR"), "an ERROR line:\n{log}");
    }
}

/// The span from the first to the last 503 any client saw, if any.
pub fn unavailable_window(outcomes: &[Outcome]) -> Option<Duration> {
    let times = outcomes.iter().flat_map(|o| o.unavailable_at.iter());
    let first = times.clone().min()?;
    let last = times.max()?;
    Some(*last - *first)
}
