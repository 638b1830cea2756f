//! [`Settlement`]: the settlement side of a round — the settlement stream
//! and its consumer group, its dead letters, and the backlog figures.
//!
//! Delivery may repeat (a reclaimed entry is delivered again); exactly-once
//! comes from the settle script ([`crate::settle`]), which posts only while
//! the investment is accepted and acks in the same step.

use crate::Connection;
use crate::error::StoreResult;
use crate::keys::{RoundKeys, SETTLEMENT_GROUP};
use crate::layout::entry as E;
use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamPendingReply, StreamRangeReply, StreamReadOptions, StreamReadReply,
};

/// The settlement side of one round. Its methods take the connection to
/// use, so a worker's blocking reads can have one of their own.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub(crate) keys: RoundKeys,
}

/// One entry of the settlement stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id.
    pub id: String,
    /// Its fields (see [`crate::layout::entry`]).
    pub fields: Vec<(String, String)>,
}

impl Entry {
    fn decode(entry: &StreamId) -> Entry {
        let mut fields: Vec<(String, String)> = entry
            .map
            .keys()
            .map(|k| (k.clone(), entry.get::<String>(k).unwrap_or_default()))
            .collect();
        fields.sort();
        Entry {
            id: entry.id.clone(),
            fields,
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }

    /// The investment it names (`None`: a poison entry).
    pub fn investment_id(&self) -> Option<&str> {
        self.get(E::INVESTMENT_ID)
    }

    /// When core accepted the investment (Unix ms).
    pub fn accepted_at_ms(&self) -> Option<u64> {
        self.get(E::ACCEPTED_AT_MS)?.parse().ok()
    }
}

/// Settlement backlog figures from the consumer group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// Delivered to a worker, not yet acknowledged.
    pub pending: u64,
    /// Not yet delivered to any worker.
    pub undelivered: u64,
    /// Age of the oldest entry not yet settled (pending or undelivered), ms.
    pub oldest_age_ms: Option<u64>,
}

impl Settlement {
    pub fn new(round: &str) -> Settlement {
        Settlement {
            keys: RoundKeys::new(round),
        }
    }

    pub fn keys(&self) -> &RoundKeys {
        &self.keys
    }

    /// Creates the consumer group (and the stream) unless it exists.
    pub async fn ensure_group<C: Connection>(&self, redis: &mut C) -> StoreResult<()> {
        let created: redis::RedisResult<()> = redis
            .xgroup_create_mkstream(self.keys.settlement_stream(), SETTLEMENT_GROUP, "0")
            .await;
        match created {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Reads up to `count` entries for `consumer` after `from` (an id: its
    /// own pending entries after it; `>`: new ones), blocking up to
    /// `block_ms` for new ones.
    pub async fn read<C: Connection>(
        &self,
        redis: &mut C,
        consumer: &str,
        from: &str,
        count: usize,
        block_ms: Option<usize>,
    ) -> StoreResult<Vec<Entry>> {
        let mut options = StreamReadOptions::default()
            .group(SETTLEMENT_GROUP, consumer)
            .count(count);
        if let Some(ms) = block_ms {
            options = options.block(ms);
        }
        let reply: Option<StreamReadReply> = redis
            .xread_options(&[self.keys.settlement_stream()], &[from], &options)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|id| Entry::decode(&id))
            .collect())
    }

    /// Takes over for `consumer` up to `count` entries idle at least
    /// `min_idle_ms` in other consumers' hands, scanning from `start`.
    /// Returns them and where to continue (`0-0`: the scan is done).
    pub async fn claim_idle<C: Connection>(
        &self,
        redis: &mut C,
        consumer: &str,
        min_idle_ms: u64,
        start: &str,
        count: usize,
    ) -> StoreResult<(Vec<Entry>, String)> {
        let reply: StreamAutoClaimReply = redis
            .xautoclaim_options(
                self.keys.settlement_stream(),
                SETTLEMENT_GROUP,
                consumer,
                min_idle_ms,
                start,
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        let entries = reply.claimed.iter().map(Entry::decode).collect();
        Ok((entries, reply.next_stream_id))
    }

    /// How many times entry `id` has been delivered (0: not pending).
    pub async fn deliveries<C: Connection>(&self, redis: &mut C, id: &str) -> StoreResult<usize> {
        let pending: StreamPendingCountReply = redis
            .xpending_count(self.keys.settlement_stream(), SETTLEMENT_GROUP, id, id, 1)
            .await?;
        Ok(pending.ids.first().map(|p| p.times_delivered).unwrap_or(0))
    }

    /// Moves a poison entry to the dead-letter stream (its fields, its id
    /// and the reason) and acks it, atomically.
    pub async fn dead_letter<C: Connection>(
        &self,
        redis: &mut C,
        entry: &Entry,
        reason: &str,
    ) -> StoreResult<()> {
        let mut fields = entry.fields.clone();
        fields.push((E::SOURCE_ENTRY.into(), entry.id.clone()));
        fields.push((E::REASON.into(), reason.to_string()));
        redis::pipe()
            .atomic()
            .xadd(self.keys.dead_letters(), "*", &fields)
            .ignore()
            .xack(
                self.keys.settlement_stream(),
                SETTLEMENT_GROUP,
                &[&entry.id],
            )
            .ignore()
            .query_async::<()>(redis)
            .await?;
        Ok(())
    }

    /// Pending and undelivered entries of the settlement group at `now_ms`.
    /// A stream with no group yet (no worker has started) counts every
    /// entry as undelivered.
    pub async fn backlog<C: Connection>(&self, redis: &mut C, now_ms: u64) -> StoreResult<Backlog> {
        let stream = self.keys.settlement_stream();
        let pending: redis::RedisResult<StreamPendingReply> = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(SETTLEMENT_GROUP)
            .query_async(redis)
            .await;
        let mut backlog = Backlog::default();
        let mut oldest: Option<u64> = None;
        match pending {
            Ok(StreamPendingReply::Data(data)) => {
                backlog.pending = data.count as u64;
                oldest = id_ms(&data.start_id);
            }
            Ok(_) => {}
            // No group yet: nothing was ever delivered.
            Err(err) if err.code() == Some("NOGROUP") => {}
            Err(err) => return Err(err.into()),
        }
        let groups: redis::RedisResult<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .query_async(redis)
            .await;
        let last_delivered = match groups {
            Ok(value) => group_info(&value, SETTLEMENT_GROUP),
            Err(_) => None,
        };
        let (after, lag) = match last_delivered {
            Some((last_id, lag)) => (format!("({last_id}"), lag),
            None => ("-".to_string(), None),
        };
        let next: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(&after)
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(redis)
            .await?;
        if let Some(first) = next.ids.first() {
            backlog.undelivered = match lag {
                Some(lag) => lag,
                None => redis::cmd("XLEN")
                    .arg(&stream)
                    .query_async::<u64>(redis)
                    .await?
                    .saturating_sub(backlog.pending),
            };
            oldest = [oldest, id_ms(&first.id)].into_iter().flatten().min();
        }
        backlog.oldest_age_ms = oldest.map(|ms| now_ms.saturating_sub(ms));
        Ok(backlog)
    }
}

/// `(last-delivered-id, lag)` of `group` in an `XINFO GROUPS` reply.
fn group_info(value: &redis::Value, group: &str) -> Option<(String, Option<u64>)> {
    let redis::Value::Array(groups) = value else {
        return None;
    };
    for g in groups {
        let pairs: Vec<(String, redis::Value)> = match g {
            redis::Value::Map(m) => m
                .iter()
                .filter_map(|(k, v)| {
                    Some((redis::from_redis_value_ref::<String>(k).ok()?, v.clone()))
                })
                .collect(),
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| {
                    Some((
                        redis::from_redis_value_ref::<String>(&kv[0]).ok()?,
                        kv.get(1)?.clone(),
                    ))
                })
                .collect(),
            _ => continue,
        };
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let name: Option<String> = get("name").and_then(|v| redis::from_redis_value(v).ok());
        if name.as_deref() != Some(group) {
            continue;
        }
        let last: String =
            get("last-delivered-id").and_then(|v| redis::from_redis_value(v).ok())?;
        let lag: Option<u64> = get("lag").and_then(|v| redis::from_redis_value(v).ok());
        return Some((last, lag));
    }
    None
}

/// The millisecond part of a stream id `1700000000000-0`.
fn id_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids() {
        assert_eq!(id_ms("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(id_ms("x"), None);
    }

    #[test]
    fn finds_the_group() {
        use redis::Value as V;
        let s = |t: &str| V::BulkString(t.as_bytes().to_vec());
        let reply = V::Array(vec![V::Array(vec![
            s("name"),
            s("settlement"),
            s("last-delivered-id"),
            s("5-0"),
            s("lag"),
            V::Int(3),
        ])]);
        assert_eq!(
            group_info(&reply, "settlement"),
            Some(("5-0".into(), Some(3)))
        );
        assert_eq!(group_info(&reply, "other"), None);
    }
}
