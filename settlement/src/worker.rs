//! The settlement worker: a Redis Streams consumer that settles each accepted
//! investment exactly once.
//!
//! Order of work on each pass of the loop:
//! 1. at start, entries this consumer already took but never acked (it
//!    crashed) are settled first (`XREADGROUP ... 0`);
//! 2. entries idle longer than `claim_idle` in other consumers' hands (they
//!    died) are taken over with `XAUTOCLAIM`;
//! 3. new entries are read with `XREADGROUP ... >`;
//! 4. now and then, other consumers that hold nothing and have been idle
//!    past `forget_idle_consumers` are removed from the group (the store's
//!    `forget_consumer.lua` checks and deletes in one step), so dead names
//!    do not pile up.
//!
//! Step 1 is what makes a restart cheap: the consumer name is stable (the
//! CLI defaults to host name and worker index), so a restarted worker finds
//! the entries it held when it died and settles them at once, instead of
//! leaving them until another worker's `claim_idle` runs out.
//!
//! Exactly-once comes from the settle script, not from the delivery: an entry
//! may be delivered twice, but the script posts only while the investment is
//! still `accepted`, and acks in the same atomic step.

use crowdgate_store::Redis;
use crowdgate_store::{Entry, Posting, Settlement, StoreError, StoreResult};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub round: String,
    /// This worker's consumer name in the group: unique per live worker,
    /// and the same across its restarts (so it finds its own pending
    /// entries).
    pub consumer: String,
    /// Take over entries another consumer has held this long.
    pub claim_idle: Duration,
    /// Entries read per call.
    pub batch: usize,
    /// A poison entry is dead-lettered after this many deliveries.
    pub max_deliveries: usize,
    /// Forget other consumers that hold nothing and have been idle this
    /// long; `None`: never.
    pub forget_idle_consumers: Option<Duration>,
}

pub struct SettlementWorker {
    settings: WorkerSettings,
    settlement: Settlement,
    redis: Redis,
}

impl SettlementWorker {
    pub fn new(settings: WorkerSettings, redis: Redis) -> SettlementWorker {
        let settlement = Settlement::new(&settings.round);
        SettlementWorker {
            settings,
            settlement,
            redis,
        }
    }

    /// Runs until `shutdown` flips to true. Redis outages are waited out with
    /// backoff; they never end the loop.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        // Where the scan of our own pending entries has got to; None when done.
        let mut own_pending_from = Some("0".to_string());
        let mut last_claim = Instant::now() - self.settings.claim_idle;
        let mut last_forget: Option<Instant> = None;
        while !*shutdown.borrow() {
            let step = async {
                self.settlement.ensure_group(&mut self.redis).await?;
                if let Some(from) = own_pending_from.clone() {
                    // Entries we took before a crash: settle them first. The
                    // scan moves past each entry, so one that keeps failing
                    // is left for the reclaim step instead of looping here.
                    let (n, last) = self.read_and_settle(&from, None).await?;
                    own_pending_from = last;
                    if own_pending_from.is_none() {
                        tracing::info!(consumer = %self.settings.consumer, "own pending entries finished");
                    }
                    return Ok::<usize, StoreError>(n);
                }
                let mut settled = 0;
                if last_claim.elapsed() >= self.settings.claim_idle / 2 {
                    last_claim = Instant::now();
                    settled += self.claim_abandoned().await?;
                }
                if let Some(idle) = self.settings.forget_idle_consumers
                    && last_forget.is_none_or(|at| at.elapsed() >= forget_every(idle))
                {
                    last_forget = Some(Instant::now());
                    self.forget_idle_consumers(idle).await?;
                }
                settled += self.read_and_settle(">", Some(1_000)).await?.0;
                Ok(settled)
            };
            let result = tokio::select! {
                result = step => result,
                _ = shutdown.changed() => break,
            };
            match result {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(err) => {
                    metrics::counter!("crowdgate_settlement_errors_total").increment(1);
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "settlement step failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(consumer = %self.settings.consumer, "settlement worker stopped");
    }

    /// Reads entries after `from` (an id = our pending after it, `>` = new),
    /// settles them, and returns how many and the last id read.
    async fn read_and_settle(
        &mut self,
        from: &str,
        block_ms: Option<usize>,
    ) -> StoreResult<(usize, Option<String>)> {
        let entries = self
            .settlement
            .read(
                &mut self.redis,
                &self.settings.consumer,
                from,
                self.settings.batch,
                block_ms,
            )
            .await?;
        let last = entries.last().map(|e| e.id.clone());
        Ok((self.settle_all(&entries).await?, last))
    }

    /// Takes over entries idle past `claim_idle` (their consumer died or hung).
    async fn claim_abandoned(&mut self) -> StoreResult<usize> {
        let mut start = "0-0".to_string();
        let mut settled = 0;
        loop {
            let (claimed, next) = self
                .settlement
                .claim_idle(
                    &mut self.redis,
                    &self.settings.consumer,
                    self.settings.claim_idle.as_millis() as u64,
                    &start,
                    self.settings.batch,
                )
                .await?;
            if !claimed.is_empty() {
                tracing::info!(count = claimed.len(), "reclaimed abandoned entries");
                metrics::counter!("crowdgate_settlement_reclaimed_total")
                    .increment(claimed.len() as u64);
            }
            settled += self.settle_all(&claimed).await?;
            if next == "0-0" {
                return Ok(settled);
            }
            start = next;
        }
    }

    /// Removes consumers that hold nothing and have been idle past `idle`.
    async fn forget_idle_consumers(&mut self, idle: Duration) -> StoreResult<()> {
        let forgotten = self
            .settlement
            .forget_idle_consumers(&mut self.redis, &self.settings.consumer, idle)
            .await?;
        for name in &forgotten {
            tracing::info!(consumer = %name, idle_ms = idle.as_millis() as u64, "forgot idle consumer with nothing pending");
        }
        metrics::counter!("crowdgate_settlement_consumers_forgotten_total")
            .increment(forgotten.len() as u64);
        Ok(())
    }

    /// Settles `entries` in one pipelined batch, then handles each result.
    async fn settle_all(&mut self, entries: &[Entry]) -> StoreResult<usize> {
        let batch: Vec<(&str, &str)> = entries
            .iter()
            .filter_map(|entry| entry.investment_id().map(|id| (id, entry.id.as_str())))
            .collect();
        let now_ms = crowdgate_store::clock::now_ms();
        let mut results = self
            .settlement
            .settle_batch(&mut self.redis, &batch, now_ms)
            .await?
            .into_iter();
        for entry in entries {
            let posting = match entry.investment_id() {
                Some(_) => results.next().expect("one result per call"),
                None => Ok(Posting::Missing),
            };
            match posting {
                Ok(posting) => self.record(entry, posting, now_ms).await?,
                Err(err) if err.is_transient() => return Err(err),
                // The script refused this entry (bad data): retry it later,
                // and dead-letter it once it has failed too often.
                Err(err) => self.poisoned(entry, &err.to_string()).await?,
            }
        }
        Ok(entries.len())
    }

    /// Metrics and logs for one posting; dead-letters an entry naming nothing.
    async fn record(&mut self, entry: &Entry, posting: Posting, now_ms: u64) -> StoreResult<()> {
        let id = entry.investment_id().unwrap_or("?");
        match &posting {
            Posting::Settled => {
                metrics::counter!("crowdgate_settlement_settled_total").increment(1);
                if let Some(accepted) = entry.accepted_at_ms() {
                    metrics::histogram!("crowdgate_settlement_lag_seconds")
                        .record(now_ms.saturating_sub(accepted) as f64 / 1000.0);
                }
                tracing::debug!(investment_id = id, entry = %entry.id, "settled");
            }
            Posting::Failed(reason) => {
                metrics::counter!("crowdgate_settlement_failed_total").increment(1);
                tracing::info!(investment_id = id, entry = %entry.id, reason, "settlement failed; amount released");
            }
            Posting::Already => {
                tracing::debug!(investment_id = id, entry = %entry.id, "already settled; acked")
            }
            Posting::Missing => self.dead_letter(entry, "no such investment").await?,
        }
        Ok(())
    }

    /// An entry the settle script failed on. It stays pending (so it is
    /// retried when reclaimed) until it has been delivered `max_deliveries`
    /// times, then goes to the dead-letter stream.
    async fn poisoned(&mut self, entry: &Entry, error: &str) -> StoreResult<()> {
        let deliveries = self
            .settlement
            .deliveries(&mut self.redis, &entry.id)
            .await?;
        if deliveries >= self.settings.max_deliveries {
            return self
                .dead_letter(entry, &format!("failed {deliveries} times: {error}"))
                .await;
        }
        metrics::counter!("crowdgate_settlement_errors_total").increment(1);
        tracing::warn!(entry = %entry.id, deliveries, error, "settlement of entry failed; will retry");
        Ok(())
    }

    /// Moves a poison entry to the dead-letter stream and acks it, atomically.
    async fn dead_letter(&mut self, entry: &Entry, reason: &str) -> StoreResult<()> {
        self.settlement
            .dead_letter(&mut self.redis, entry, reason)
            .await?;
        metrics::counter!("crowdgate_settlement_dead_letters_total").increment(1);
        tracing::error!(entry = %entry.id, reason, "entry dead-lettered");
        Ok(())
    }
}

/// How often to look for idle consumers: often enough that one is forgotten
/// soon after `idle`, and at most once a minute (it lists every consumer).
fn forget_every(idle: Duration) -> Duration {
    (idle / 2).min(Duration::from_secs(60))
}
