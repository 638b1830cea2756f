//! The admission controller: moves each live round's admitted-up-to cursor
//! forward in batches at the rate ops set.
//!
//! Every core replica runs one. It looks up the deployment's live rounds
//! once a second and runs one driver task per round, so a round created
//! through the ops API is driven within a second, an archived one stops,
//! and one round's trouble (a slow script, a round whose data is missing)
//! never delays another's batches. Each driver ticks often and asks the
//! store to advance (`advance.lua`, which also applies the round's clock);
//! the script admits a batch only when a whole batch interval has passed
//! since the last advance, so N replicas still admit one batch per
//! interval, and a replica dying costs nothing.

use crate::rounds::Rounds;
use crate::store::{Advance, RoundStore};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often each driver offers to advance. Well under any batch interval,
/// so batches start within this much of their due time.
const TICK: Duration = Duration::from_millis(100);

/// How often the live rounds are looked up.
const ROUNDS_REFRESH: Duration = Duration::from_secs(1);

/// While steps keep failing, how often to say so again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Drives every live round until `shutdown` flips to true.
pub struct AdmissionController {
    rounds: Rounds,
}

/// One round's driver task and the switch that stops it.
struct Driver {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AdmissionController {
    pub fn new(rounds: Rounds) -> AdmissionController {
        AdmissionController { rounds }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut drivers: HashMap<String, Driver> = HashMap::new();
        let mut ticker = tokio::time::interval(ROUNDS_REFRESH);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut listing = Outage::default();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            let live = match self.rounds.live().await {
                Ok(live) => {
                    listing.ended("looking up the live rounds", "");
                    live
                }
                Err(err) => {
                    listing.failed("looking up the live rounds failed", "", &err);
                    continue;
                }
            };
            drivers.retain(|round, driver| {
                let still_live = live.iter().any(|store| &store.round == round);
                if !still_live {
                    tracing::info!(round, "round is no longer live; admission stops");
                    let _ = driver.stop.send(true);
                }
                still_live
            });
            for store in live {
                drivers.entry(store.round.clone()).or_insert_with(|| {
                    tracing::info!(round = %store.round, "admission starts for the round");
                    let (stop, stopped) = watch::channel(false);
                    let task = tokio::spawn(drive(store, stopped));
                    Driver { stop, task }
                });
            }
        }
        for driver in drivers.values() {
            let _ = driver.stop.send(true);
        }
        for (_, driver) in drivers {
            let _ = driver.task.await;
        }
    }
}

/// Advances one round every [`TICK`] until `stop` flips to true.
async fn drive(store: RoundStore, mut stop: watch::Receiver<bool>) {
    let round = store.round.clone();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_gauges = Instant::now() - Duration::from_secs(10);
    let mut steps = Outage::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match store.advance(crate::clock::now_ms()).await {
            Ok(advance) => {
                steps.ended("admission steps", &round);
                // Steps that ran to the end: a watcher (ops, a test) can see
                // that admission was offered its turns, whatever it decided.
                metrics::counter!("crowdgate_core_admission_steps_total", "round" => round.clone())
                    .increment(1);
                if let Advance::Admitted(admitted) = advance {
                    metrics::counter!("crowdgate_core_admitted_total", "round" => round.clone())
                        .increment(admitted);
                    tracing::debug!(round, admitted, "admitted a batch");
                }
            }
            Err(err) => steps.failed("admission step failed", &round, &err),
        }
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            last_gauges = Instant::now();
            publish_gauges(&store).await;
        }
    }
}

/// Room figures as Prometheus gauges labelled by round, refreshed once a
/// second. The round record as it is (not the room state, which waits for
/// the replicas: gauges tell no visitor anything).
async fn publish_gauges(store: &RoundStore) {
    if let Ok(Some((room, _))) = store.round_record().await {
        let round = store.round.clone();
        let gauge = |name: &'static str, value: f64| {
            metrics::gauge!(name, "round" => round.clone()).set(value);
        };
        gauge("crowdgate_round_issued", room.issued as f64);
        gauge("crowdgate_round_admitted_up_to", room.admitted_up_to as f64);
        gauge(
            "crowdgate_round_queue_length",
            room.issued.saturating_sub(room.admitted_up_to) as f64,
        );
        gauge("crowdgate_round_raised_pence", room.raised_pence as f64);
        gauge("crowdgate_round_cap_pence", room.cap_pence as f64);
    }
}

/// A run of failures, logged at WARN when it starts and every
/// [`OUTAGE_LOG_EVERY`] while it lasts (not once per tick, say while Redis
/// fails over), and at INFO when it ends.
#[derive(Default)]
struct Outage {
    /// When the run started, when it was last logged, how many failures.
    failing: Option<(Instant, Instant, u64)>,
}

impl Outage {
    fn failed(&mut self, what: &str, round: &str, err: &dyn std::fmt::Display) {
        let now = Instant::now();
        match &mut self.failing {
            Some((_, last_log, failures)) => {
                *failures += 1;
                if last_log.elapsed() >= OUTAGE_LOG_EVERY {
                    *last_log = now;
                    tracing::warn!(round, error = %err, failures = *failures, "{what}: still failing");
                }
            }
            None => {
                self.failing = Some((now, now, 1));
                tracing::warn!(round, error = %err, "{what}");
            }
        }
    }

    fn ended(&mut self, what: &str, round: &str) {
        if let Some((since, _, failures)) = self.failing.take() {
            tracing::info!(
                round,
                failures,
                after_ms = since.elapsed().as_millis() as u64,
                "{what} succeed again"
            );
        }
    }
}
