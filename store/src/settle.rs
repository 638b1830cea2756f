//! Settling (`settle.lua`): debit the investor, credit escrow, allocate
//! shares, journal, mark settled and ack — or fail and release the amount —
//! in one atomic step per investment, many steps per pipeline.

use crate::Connection;
use crate::error::StoreResult;
use crate::keys::{RoundKeys, SETTLEMENT_GROUP, deployment};
use crate::scripts::{SETTLE_LUA, ScriptCall, unknown};
use crate::stream::Settlement;

/// What settling one stream entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posting {
    /// Debited, credited, shares allocated, acked.
    Settled,
    /// Refused (the reason, e.g. `insufficient_funds`); the amount is
    /// released from the cap; acked.
    Failed(String),
    /// Already settled or failed earlier; acked again, nothing posted.
    Already,
    /// The entry names no investment: a poison entry, not acked.
    Missing,
}

/// `settle.lua`'s KEYS and ARGV for investment `investment_id` delivered as
/// stream entry `entry_id`.
pub fn settle_call(
    keys: &RoundKeys,
    investment_id: &str,
    entry_id: &str,
    now_ms: u64,
) -> ScriptCall {
    ScriptCall {
        keys: vec![
            keys.investment(investment_id),
            deployment::BALANCES.to_string(),
            keys.shares(),
            keys.ledger(),
            keys.journal(),
            keys.round(),
            keys.investor_totals(),
            keys.settlement_stream(),
            deployment::ACCOUNTS.to_string(),
        ],
        args: vec![
            entry_id.to_string(),
            SETTLEMENT_GROUP.to_string(),
            now_ms.to_string(),
        ],
    }
}

fn posting_of(verdict: &str, detail: String) -> StoreResult<Posting> {
    match verdict {
        "settled" => Ok(Posting::Settled),
        "failed" => Ok(Posting::Failed(detail)),
        "already" => Ok(Posting::Already),
        "missing" => Ok(Posting::Missing),
        other => Err(unknown(&SETTLE_LUA, other)),
    }
}

impl Settlement {
    /// Settles many `(investment id, entry id)` in one pipeline of script
    /// calls: Redis fsyncs the appended postings together (group commit)
    /// instead of once per investment. Each result stands alone: one bad
    /// entry (a script error) does not fail the others. Every call is
    /// idempotent, so a batch retried after an error can only finish what
    /// was not yet done.
    pub async fn settle_batch<C: Connection>(
        &self,
        redis: &mut C,
        entries: &[(&str, &str)],
        now_ms: u64,
    ) -> StoreResult<Vec<StoreResult<Posting>>> {
        if entries.is_empty() {
            // Redis refuses an empty pipeline.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (investment_id, entry_id) in entries {
            settle_call(&self.keys, investment_id, entry_id, now_ms).add_to(&SETTLE_LUA, &mut pipe);
        }
        let results: Vec<redis::RedisResult<(String, String)>> = pipe.query_async(redis).await?;
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if e.code() == Some("NOSCRIPT")))
        {
            // A restarted Redis has an empty script cache: load and redo.
            SETTLE_LUA.script.prepare_invoke().load_async(redis).await?;
            return Box::pin(self.settle_batch(redis, entries, now_ms)).await;
        }
        Ok(results
            .into_iter()
            .map(|result| {
                let (verdict, detail) = result?;
                posting_of(&verdict, detail)
            })
            .collect())
    }
}
