//! Housekeeping of the settlement group's consumer list
//! (`forget_consumer.lua`).
//!
//! Redis keeps every consumer it has ever seen. Forgetting one is safe only
//! while it holds no pending entry (`XGROUP DELCONSUMER` would drop it, and
//! with it a settlement), so the check and the delete are one script. A live
//! worker forgotten by mistake loses nothing: its next read recreates it.

use crate::Connection;
use crate::error::StoreResult;
use crate::keys::SETTLEMENT_GROUP;
use crate::scripts::{FORGET_CONSUMER_LUA, ScriptCall, unknown};
use crate::stream::Settlement;
use redis::AsyncCommands;
use redis::streams::StreamInfoConsumersReply;
use std::time::Duration;

/// What `forget_consumer.lua` did with one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// Removed from the group.
    Forgotten,
    /// Kept: it holds pending entries.
    HoldsPending,
    /// Kept: it was active recently.
    Active,
    /// No such consumer.
    Gone,
}

impl Settlement {
    /// `forget_consumer.lua` for one consumer: removes it only if it holds
    /// nothing and has been idle at least `min_idle`.
    pub async fn forget_consumer<C: Connection>(
        &self,
        redis: &mut C,
        consumer: &str,
        min_idle: Duration,
    ) -> StoreResult<Forget> {
        let call = ScriptCall {
            keys: vec![self.keys.settlement_stream()],
            args: vec![
                SETTLEMENT_GROUP.to_string(),
                consumer.to_string(),
                min_idle.as_millis().to_string(),
            ],
        };
        let verdict: String = call.invoke(&FORGET_CONSUMER_LUA, redis).await?;
        match verdict.as_str() {
            "forgotten" => Ok(Forget::Forgotten),
            "holds_pending" => Ok(Forget::HoldsPending),
            "active" => Ok(Forget::Active),
            "gone" => Ok(Forget::Gone),
            other => Err(unknown(&FORGET_CONSUMER_LUA, other)),
        }
    }

    /// Forgets the group's consumers, other than `own`, that hold no pending
    /// entries and have been idle for at least `min_idle`. Returns their names.
    pub async fn forget_idle_consumers<C: Connection>(
        &self,
        redis: &mut C,
        own: &str,
        min_idle: Duration,
    ) -> StoreResult<Vec<String>> {
        let min_idle_ms = min_idle.as_millis() as u64;
        let reply: StreamInfoConsumersReply = redis
            .xinfo_consumers(self.keys.settlement_stream(), SETTLEMENT_GROUP)
            .await?;
        let mut forgotten = Vec::new();
        // A first look outside the script, so the script runs only for likely
        // candidates; the script checks again, atomically, before deleting.
        for consumer in reply.consumers {
            if consumer.name == own || consumer.pending > 0 || (consumer.idle as u64) < min_idle_ms
            {
                continue;
            }
            if self
                .forget_consumer(redis, &consumer.name, min_idle)
                .await?
                == Forget::Forgotten
            {
                forgotten.push(consumer.name);
            }
        }
        Ok(forgotten)
    }
}
