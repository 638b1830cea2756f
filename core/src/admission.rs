//! The admission controller: moves the admitted-up-to cursor forward in
//! batches at the rate ops set.
//!
//! Every core replica runs one. Each ticks often and asks the store to
//! advance (`advance.lua`, which also applies the round's clock); the script
//! admits a batch only when a whole batch interval has passed since the last
//! advance, so N replicas still admit one batch per interval, and a replica
//! dying costs nothing.

use crate::store::{Advance, RoundStore};
use std::time::Duration;
use tokio::sync::watch;

/// How often each replica offers to advance. Well under any batch interval,
/// so batches start within this much of their due time.
const TICK: Duration = Duration::from_millis(100);

/// While admission steps keep failing, how often to say so again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Advances admission for one round until `shutdown` flips to true.
pub struct AdmissionController {
    store: RoundStore,
}

impl AdmissionController {
    pub fn new(store: RoundStore) -> AdmissionController {
        AdmissionController { store }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_state_refresh = std::time::Instant::now() - Duration::from_secs(10);
        // While steps keep failing (Redis failing over, say), one WARN at
        // first and then one every OUTAGE_LOG_EVERY, not one per tick.
        let mut failing: Option<(std::time::Instant, std::time::Instant, u64)> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            let step = self.store.advance(crate::clock::now_ms()).await;
            let step_ok = step.is_ok();
            if step_ok {
                // Steps that ran to the end: a watcher (ops, a test) can see
                // that admission was offered its turns, whatever it decided.
                metrics::counter!("crowdgate_core_admission_steps_total").increment(1);
            }
            match step {
                Ok(Advance::Admitted(admitted)) => {
                    metrics::counter!("crowdgate_core_admitted_total").increment(admitted);
                    tracing::debug!(round = %self.store.round, admitted, "admitted a batch");
                }
                Ok(_) => {}
                Err(err) => {
                    let now = std::time::Instant::now();
                    match &mut failing {
                        Some((_, last_log, failures)) => {
                            *failures += 1;
                            if last_log.elapsed() >= OUTAGE_LOG_EVERY {
                                *last_log = now;
                                tracing::warn!(round = %self.store.round, error = %err, failures = *failures, "admission steps still failing");
                            }
                        }
                        None => {
                            failing = Some((now, now, 1));
                            tracing::warn!(round = %self.store.round, error = %err, "admission step failed");
                        }
                    }
                }
            }
            if step_ok && let Some((since, _, failures)) = failing.take() {
                tracing::info!(round = %self.store.round, failures, after_ms = since.elapsed().as_millis() as u64, "admission steps succeed again");
            }
            if last_state_refresh.elapsed() >= Duration::from_secs(1) {
                last_state_refresh = std::time::Instant::now();
                self.publish_gauges().await;
            }
        }
    }

    /// Room figures as Prometheus gauges, refreshed once a second.
    /// The round record as it is (not the room state, which waits for the
    /// replicas: gauges tell no visitor anything).
    async fn publish_gauges(&self) {
        if let Ok(Some((room, _))) = self.store.round_record().await {
            metrics::gauge!("crowdgate_round_issued").set(room.issued as f64);
            metrics::gauge!("crowdgate_round_admitted_up_to").set(room.admitted_up_to as f64);
            metrics::gauge!("crowdgate_round_queue_length")
                .set(room.issued.saturating_sub(room.admitted_up_to) as f64);
            metrics::gauge!("crowdgate_round_raised_pence").set(room.raised_pence as f64);
            metrics::gauge!("crowdgate_round_cap_pence").set(room.cap_pence as f64);
        }
    }
}
