//! The round's live figures for ops: the round hash, the ledger, stream
//! lengths, active places and the settlement backlog.
//!
//! Figures from different keys are read in one pipeline, so they are close
//! in time but not one snapshot: fine for watching, not for reconciling
//! ([`crate::snapshot`] does that).

use crate::error::StoreResult;
use crate::record::{Fields, LedgerRecord, RoundRecord};
use crate::round::RoundStore;
use crate::stream::{Backlog, Settlement};

/// What the ops status shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub round: RoundRecord,
    /// The round hash as stored, field by field.
    pub raw: Fields,
    pub ledger: LedgerRecord,
    /// Entries ever published for settlement.
    pub stream_len: u64,
    pub dead_letters: u64,
    /// Live claimed passes.
    pub claimed: u64,
    /// Admitted numbers inside their claim window.
    pub reserved: u64,
    /// Tickets in the pre-queue.
    pub prequeue: u64,
    /// Tickets whose holders left the queue (ever).
    pub left: u64,
    pub backlog: Backlog,
}

/// One pipeline's answer: round hash, ledger hash, stream length, dead
/// letters, claimed passes, reserved places, pre-queue size, tickets that
/// left.
type Raw = (Fields, Fields, u64, u64, u64, u64, u64, u64);

impl RoundStore {
    /// The figures at `now_ms`; `None` when the round was never seeded.
    pub async fn figures(&self, now_ms: u64) -> StoreResult<Option<Figures>> {
        let keys = &self.keys;
        let mut redis = self.conn();
        let (raw, ledger, stream_len, dead_letters, claimed, reserved, prequeue, left): Raw =
            redis::pipe()
                .hgetall(keys.round())
                .hgetall(keys.ledger())
                .xlen(keys.settlement_stream())
                .xlen(keys.dead_letters())
                .zcount(keys.active_passes(), now_ms, "+inf")
                .zcount(keys.reserved(), now_ms, "+inf")
                .zcard(keys.prequeue())
                .zcard(keys.left())
                .query_async(&mut redis)
                .await?;
        let Some(round) = RoundRecord::decode(&keys.round(), &raw)? else {
            return Ok(None);
        };
        let ledger = LedgerRecord::decode(&keys.ledger(), &ledger)?;
        let backlog = Settlement::new(&self.round)
            .backlog(&mut redis, now_ms)
            .await?;
        Ok(Some(Figures {
            round,
            raw,
            ledger,
            stream_len,
            dead_letters,
            claimed,
            reserved,
            prequeue,
            left,
            backlog,
        }))
    }
}
