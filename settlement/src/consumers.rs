//! Housekeeping of the settlement group's consumer list.
//!
//! Workers have stable names, so a restarted worker takes up its own
//! pending entries at once. Names still come and go (a scaled-down or
//! renamed worker), and Redis keeps every consumer it has ever seen; each
//! worker therefore forgets consumers that hold nothing and have been idle
//! long. Forgetting is safe only while the consumer holds no pending entry
//! (`XGROUP DELCONSUMER` would drop it, and with it a settlement), so the
//! check and the delete are one script (`scripts/forget_consumer.lua`). A
//! live worker forgotten by mistake loses nothing: its next read recreates it.

use crowdgate_protocol::keys::{RoundKeys, SETTLEMENT_GROUP};
use redis::AsyncCommands;
use redis::Script;
use redis::aio::ConnectionManager;
use redis::streams::StreamInfoConsumersReply;
use std::time::Duration;

/// Forgets the group's consumers, other than `own`, that hold no pending
/// entries and have been idle for at least `min_idle`. Returns their names.
pub async fn forget_idle(
    redis: &mut ConnectionManager,
    keys: &RoundKeys,
    own: &str,
    min_idle: Duration,
) -> redis::RedisResult<Vec<String>> {
    let stream = keys.settlement_stream();
    let min_idle_ms = min_idle.as_millis() as u64;
    let reply: StreamInfoConsumersReply = redis.xinfo_consumers(&stream, SETTLEMENT_GROUP).await?;
    let script = Script::new(include_str!("scripts/forget_consumer.lua"));
    let mut forgotten = Vec::new();
    // A first look outside the script, so the script runs only for likely
    // candidates; the script checks again, atomically, before deleting.
    for consumer in reply.consumers {
        if consumer.name == own || consumer.pending > 0 || (consumer.idle as u64) < min_idle_ms {
            continue;
        }
        let removed: i64 = script
            .key(&stream)
            .arg(SETTLEMENT_GROUP)
            .arg(&consumer.name)
            .arg(min_idle_ms)
            .invoke_async(redis)
            .await?;
        if removed == 1 {
            forgotten.push(consumer.name);
        }
    }
    Ok(forgotten)
}
