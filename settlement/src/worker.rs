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
//!    past `forget_idle_consumers` are removed from the group
//!    ([`crate::consumers`]), so dead names do not pile up.
//!
//! Step 1 is what makes a restart cheap: the consumer name is stable (the
//! CLI defaults to host name and worker index), so a restarted worker finds
//! the entries it held when it died and settles them at once, instead of
//! leaving them until another worker's `claim_idle` runs out.
//!
//! Exactly-once comes from the settle script, not from the delivery: an entry
//! may be delivered twice, but the script posts only while the investment is
//! still `accepted`, and acks in the same atomic step.

use crate::consumers;
use crate::ledger::{Ledger, Posting};
use crowdgate_protocol::keys::SETTLEMENT_GROUP;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
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
    ledger: Ledger,
    redis: ConnectionManager,
}

impl SettlementWorker {
    pub fn new(settings: WorkerSettings, redis: ConnectionManager) -> SettlementWorker {
        let ledger = Ledger::new(&settings.round);
        SettlementWorker {
            settings,
            ledger,
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
                self.ensure_group().await?;
                if let Some(from) = own_pending_from.clone() {
                    // Entries we took before a crash: settle them first. The
                    // scan moves past each entry, so one that keeps failing
                    // is left for the reclaim step instead of looping here.
                    let (n, last) = self.read_and_settle(&from, None).await?;
                    own_pending_from = last;
                    if own_pending_from.is_none() {
                        tracing::info!(consumer = %self.settings.consumer, "own pending entries finished");
                    }
                    return Ok::<usize, redis::RedisError>(n);
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

    async fn ensure_group(&mut self) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = self
            .redis
            .xgroup_create_mkstream(
                self.ledger.keys().settlement_stream(),
                SETTLEMENT_GROUP,
                "0",
            )
            .await;
        match created {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Reads entries after `from` (an id = our pending after it, `>` = new),
    /// settles them, and returns how many and the last id read.
    async fn read_and_settle(
        &mut self,
        from: &str,
        block_ms: Option<usize>,
    ) -> redis::RedisResult<(usize, Option<String>)> {
        let mut options = StreamReadOptions::default()
            .group(SETTLEMENT_GROUP, &self.settings.consumer)
            .count(self.settings.batch);
        if let Some(ms) = block_ms {
            options = options.block(ms);
        }
        let reply: Option<StreamReadReply> = self
            .redis
            .xread_options(&[self.ledger.keys().settlement_stream()], &[from], &options)
            .await?;
        let entries: Vec<StreamId> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        let last = entries.last().map(|e| e.id.clone());
        Ok((self.settle_all(&entries).await?, last))
    }

    /// Takes over entries idle past `claim_idle` (their consumer died or hung).
    async fn claim_abandoned(&mut self) -> redis::RedisResult<usize> {
        let mut start = "0-0".to_string();
        let mut settled = 0;
        loop {
            let reply: redis::streams::StreamAutoClaimReply = self
                .redis
                .xautoclaim_options(
                    self.ledger.keys().settlement_stream(),
                    SETTLEMENT_GROUP,
                    &self.settings.consumer,
                    self.settings.claim_idle.as_millis() as u64,
                    &start,
                    StreamAutoClaimOptions::default().count(self.settings.batch),
                )
                .await?;
            if !reply.claimed.is_empty() {
                tracing::info!(count = reply.claimed.len(), "reclaimed abandoned entries");
                metrics::counter!("crowdgate_settlement_reclaimed_total")
                    .increment(reply.claimed.len() as u64);
            }
            settled += self.settle_all(&reply.claimed).await?;
            if reply.next_stream_id == "0-0" {
                return Ok(settled);
            }
            start = reply.next_stream_id;
        }
    }

    /// Removes consumers that hold nothing and have been idle past `idle`.
    async fn forget_idle_consumers(&mut self, idle: Duration) -> redis::RedisResult<()> {
        let forgotten = consumers::forget_idle(
            &mut self.redis,
            self.ledger.keys(),
            &self.settings.consumer,
            idle,
        )
        .await?;
        for name in &forgotten {
            tracing::info!(consumer = %name, idle_ms = idle.as_millis() as u64, "forgot idle consumer with nothing pending");
        }
        metrics::counter!("crowdgate_settlement_consumers_forgotten_total")
            .increment(forgotten.len() as u64);
        Ok(())
    }

    /// Settles `entries` in one pipelined batch, then handles each result.
    async fn settle_all(&mut self, entries: &[StreamId]) -> redis::RedisResult<usize> {
        let ids: Vec<Option<String>> = entries.iter().map(|e| e.get("investment_id")).collect();
        let batch: Vec<(&str, &str)> = entries
            .iter()
            .zip(&ids)
            .filter_map(|(entry, id)| id.as_deref().map(|id| (id, entry.id.as_str())))
            .collect();
        let now_ms = now_ms();
        let mut results = self
            .ledger
            .settle_batch(&mut self.redis, &batch, now_ms)
            .await?
            .into_iter();
        for (entry, id) in entries.iter().zip(&ids) {
            let posting = match id {
                Some(_) => results.next().expect("one result per call"),
                None => Ok(Posting::Missing),
            };
            match posting {
                Ok(posting) => {
                    self.record(entry, id.as_deref().unwrap_or("?"), posting, now_ms)
                        .await?
                }
                Err(err) if is_transient(&err) => return Err(err),
                // The script refused this entry (bad data): retry it later,
                // and dead-letter it once it has failed too often.
                Err(err) => self.poisoned(entry, &err.to_string()).await?,
            }
        }
        Ok(entries.len())
    }

    /// Metrics and logs for one posting; dead-letters an entry naming nothing.
    async fn record(
        &mut self,
        entry: &StreamId,
        id: &str,
        posting: Posting,
        now_ms: u64,
    ) -> redis::RedisResult<()> {
        match &posting {
            Posting::Settled => {
                metrics::counter!("crowdgate_settlement_settled_total").increment(1);
                if let Some(accepted) = entry.get::<u64>("accepted_at_ms") {
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
    async fn poisoned(&mut self, entry: &StreamId, error: &str) -> redis::RedisResult<()> {
        let pending: redis::streams::StreamPendingCountReply = self
            .redis
            .xpending_count(
                self.ledger.keys().settlement_stream(),
                SETTLEMENT_GROUP,
                &entry.id,
                &entry.id,
                1,
            )
            .await?;
        let deliveries = pending.ids.first().map(|p| p.times_delivered).unwrap_or(0);
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
    async fn dead_letter(&mut self, entry: &StreamId, reason: &str) -> redis::RedisResult<()> {
        let keys = self.ledger.keys();
        let stream = keys.settlement_stream();
        let mut fields: Vec<(String, String)> = entry
            .map
            .keys()
            .map(|k| (k.clone(), entry.get::<String>(k).unwrap_or_default()))
            .collect();
        fields.push(("source_entry".into(), entry.id.clone()));
        fields.push(("reason".into(), reason.to_string()));
        redis::pipe()
            .atomic()
            .xadd(keys.dead_letters(), "*", &fields)
            .ignore()
            .xack(&stream, SETTLEMENT_GROUP, &[&entry.id])
            .ignore()
            .query_async::<()>(&mut self.redis)
            .await?;
        metrics::counter!("crowdgate_settlement_dead_letters_total").increment(1);
        tracing::error!(entry = %entry.id, reason, "entry dead-lettered");
        Ok(())
    }
}

/// Errors worth waiting out (Redis down or slow), as opposed to an entry the
/// script refuses.
fn is_transient(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(
            err.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN")
        )
}

/// How often to look for idle consumers: often enough that one is forgotten
/// soon after `idle`, and at most once a minute (it lists every consumer).
fn forget_every(idle: Duration) -> Duration {
    (idle / 2).min(Duration::from_secs(60))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
