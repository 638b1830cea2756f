//! Settling every round of the deployment from one process: one
//! [`SettlementWorker`] per round, each on a Redis connection of its own
//! (a worker's blocking read would stall any other command sent on its
//! connection), started as rounds appear and stopped when they are done.
//!
//! Which rounds: every live round, and every archived round that still has
//! entries to settle (a round archived right after closing may still hold
//! accepted investments; they are settled, then its worker stops). The list
//! is looked up every [`ROUNDS_REFRESH`], so a round created through ops is
//! settled within that without restarting any worker. One round's trouble
//! (a poison entry, a slow script) stays in its own worker.
//!
//! The consumer name is the same in every round (`<host>-<index>`): a
//! restarted process finds, round by round, the entries it held.

use crate::worker::{SettlementWorker, WorkerSettings};
use crowdgate_store::{Redis, RedisConfig, Settlement, StoreResult};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the rounds to settle are looked up.
pub const ROUNDS_REFRESH: Duration = Duration::from_secs(1);
/// While looking the rounds up keeps failing, how often to say so again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(10);

/// A round's worker and the switch that stops it.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Settles every round until `shutdown` flips to true. `template` is each
/// worker's settings (its `round` is replaced by each round's id); `redis`
/// looks the rounds up, and each worker connects on its own with `config`.
pub async fn settle_every_round(
    config: RedisConfig,
    mut redis: Redis,
    template: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut ticker = tokio::time::interval(ROUNDS_REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut failing_since: Option<(Instant, Instant)> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        let wanted = match rounds_to_settle(&mut redis).await {
            Ok(wanted) => {
                if let Some((since, _)) = failing_since.take() {
                    tracing::info!(
                        after_ms = since.elapsed().as_millis() as u64,
                        "the rounds to settle are known again"
                    );
                }
                wanted
            }
            Err(err) => {
                let now = Instant::now();
                match &mut failing_since {
                    Some((_, last)) if last.elapsed() < OUTAGE_LOG_EVERY => {}
                    Some((_, last)) => {
                        *last = now;
                        tracing::warn!(error = %err, "looking up the rounds to settle still fails");
                    }
                    None => {
                        failing_since = Some((now, now));
                        tracing::warn!(error = %err, "looking up the rounds to settle failed; the workers running go on");
                    }
                }
                continue;
            }
        };
        running.retain(|round, worker| {
            let keep = wanted.contains(round) && !worker.task.is_finished();
            if !keep {
                tracing::info!(round, "round settled up and archived; its worker stops");
                let _ = worker.stop.send(true);
            }
            keep
        });
        for round in wanted {
            if running.contains_key(&round) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let settings = WorkerSettings {
                round: round.clone(),
                ..template.clone()
            };
            let config = config.clone();
            tracing::info!(round, consumer = %settings.consumer, "settling the round");
            let task = tokio::spawn(async move {
                // Its own connection, waiting through an outage like the rest.
                let Some(redis) = connect(&config, stopped.clone()).await else {
                    return;
                };
                SettlementWorker::new(settings, redis).run(stopped).await;
            });
            running.insert(round, Running { stop, task });
        }
    }
    for worker in running.values() {
        let _ = worker.stop.send(true);
    }
    for (_, worker) in running {
        let _ = worker.task.await;
    }
}

/// The live rounds, and the archived ones with entries still to settle.
async fn rounds_to_settle(redis: &mut Redis) -> StoreResult<Vec<String>> {
    let mut rounds = crowdgate_store::rounds::live_rounds(redis).await?;
    let now_ms = crowdgate_store::clock::now_ms();
    for round in crowdgate_store::rounds::archived_rounds(redis).await? {
        let backlog = Settlement::new(&round).backlog(redis, now_ms).await?;
        if backlog.pending + backlog.undelivered > 0 {
            rounds.push(round);
        }
    }
    Ok(rounds)
}

/// A connection of the worker's own, retried until it connects or `stop`.
async fn connect(config: &RedisConfig, mut stop: watch::Receiver<bool>) -> Option<Redis> {
    let mut pause = Duration::from_millis(100);
    loop {
        match Redis::connect(config).await {
            Ok(redis) => return Some(redis),
            Err(err) => {
                tracing::warn!(error = %err, "a round's worker cannot connect yet; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return None,
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
