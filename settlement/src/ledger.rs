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

    /// Settles `investment_id` (from stream entry `entry_id`) exactly once.
    pub async fn settle(
        &self,
        redis: &mut ConnectionManager,
        investment_id: &str,
        entry_id: &str,
        now_ms: u64,
    ) -> redis::RedisResult<Posting> {
        let (outcome, detail): (String, String) = self
            .settle
            .key(self.keys.investment(investment_id))
            .key(self.keys.balances())
            .key(self.keys.shares())
            .key(self.keys.ledger())
            .key(self.keys.journal())
            .key(self.keys.round())
            .key(self.keys.investor_totals())
            .key(self.keys.settlement_stream())
            .arg(entry_id)
            .arg(SETTLEMENT_GROUP)
            .arg(now_ms)
            .invoke_async(redis)
            .await?;
        Ok(match outcome.as_str() {
            "settled" => Posting::Settled,
            "failed" => Posting::Failed(detail),
            "already" => Posting::Already,
            _ => Posting::Missing,
        })
    }
}
