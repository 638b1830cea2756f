//! Joining the queue (`join.lua`): a number, or a place in the pre-queue
//! before the round opens.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::round::RoundStore;
use crate::scripts::{JOIN_LUA, ScriptCall, unknown};

/// Where a join put the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Before opening: a lottery score in the pre-queue, number drawn at opening.
    Prequeue,
    /// A queue number.
    Numbered(u64),
}

/// `join.lua`'s KEYS and ARGV.
pub fn join_call(keys: &RoundKeys, ticket_id: &str, score: u64, now_ms: u64) -> ScriptCall {
    ScriptCall {
        keys: vec![keys.round(), keys.prequeue()],
        args: vec![ticket_id.to_string(), score.to_string(), now_ms.to_string()],
    }
}

impl RoundStore {
    /// Places a new ticket: in the pre-queue with lottery `score` (below
    /// 2^52) before opening, else the next number (unique and increasing
    /// across replicas).
    pub async fn join(&self, ticket_id: &str, score: u64, now_ms: u64) -> StoreResult<Placement> {
        let (verdict, number): (String, u64) = join_call(&self.keys, ticket_id, score, now_ms)
            .invoke(&JOIN_LUA, &mut self.conn())
            .await?;
        match verdict.as_str() {
            "prequeue" => Ok(Placement::Prequeue),
            "numbered" => Ok(Placement::Numbered(number)),
            "not_seeded" => Err(self.not_seeded()),
            other => Err(unknown(&JOIN_LUA, other)),
        }
    }
}
