//! The round's ledger in Redis: investor balances, escrow, share allocations
//! and the journal, and the one script that posts a settlement.

use crowdgate_protocol::keys::{RoundKeys, SETTLEMENT_GROUP};
use redis::Script;
use redis::aio::ConnectionManager;

/// What settling one stream entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posting {
    /// Debited, credited, shares allocated, acked.
    Settled,
    /// Refused (reason); amount released from the cap; acked.
    Failed(String),
    /// Already settled or failed earlier; acked again, nothing posted.
    Already,
    /// The entry names no investment: a poison entry, not acked.
    Missing,
}

/// A round's ledger.
#[derive(Clone)]
pub struct Ledger {
    keys: RoundKeys,
    settle: Script,
}

impl Ledger {
    pub fn new(round: &str) -> Ledger {
        Ledger {
            keys: RoundKeys::new(round),
            settle: Script::new(include_str!("scripts/settle.lua")),
        }
    }

    pub fn keys(&self) -> &RoundKeys {
        &self.keys
    }

    /// Settles many entries in one pipeline of script calls: Redis fsyncs
    /// the appended postings together (group commit) instead of once per
    /// investment. Each result stands alone: one bad entry does not fail the
    /// others. Every call is idempotent, so a batch retried after an error
    /// can only finish what was not yet done.
    pub async fn settle_batch(
        &self,
        redis: &mut ConnectionManager,
        entries: &[(&str, &str)],
        now_ms: u64,
    ) -> redis::RedisResult<Vec<redis::RedisResult<Posting>>> {
        if entries.is_empty() {
            // Redis refuses an empty pipeline.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (investment_id, entry_id) in entries {
            pipe.cmd("EVALSHA")
                .arg(self.settle.get_hash())
                .arg(8)
                .arg(self.keys.investment(investment_id))
                .arg(self.keys.balances())
                .arg(self.keys.shares())
                .arg(self.keys.ledger())
                .arg(self.keys.journal())
                .arg(self.keys.round())
                .arg(self.keys.investor_totals())
                .arg(self.keys.settlement_stream())
                .arg(*entry_id)
                .arg(SETTLEMENT_GROUP)
                .arg(now_ms);
        }
        let results: Vec<redis::RedisResult<(String, String)>> = pipe.query_async(redis).await?;
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if e.code() == Some("NOSCRIPT")))
        {
            // A restarted Redis has an empty script cache: load and redo.
            self.settle.prepare_invoke().load_async(redis).await?;
            return Box::pin(self.settle_batch(redis, entries, now_ms)).await;
        }
        Ok(results
            .into_iter()
            .map(|r| r.map(|(outcome, detail)| posting_of(&outcome, detail)))
            .collect())
    }
}

fn posting_of(outcome: &str, detail: String) -> Posting {
    match outcome {
        "settled" => Posting::Settled,
        "failed" => Posting::Failed(detail),
        "already" => Posting::Already,
        _ => Posting::Missing,
    }
}
