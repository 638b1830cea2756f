//! `GET /ops/v1/rounds/{round}`: the round's live figures in one answer —
//! what the dashboard polls every second and `crowdgate ops status` prints.
//!
//! Reads only; figures from different keys are read in one pipeline, so they
//! are close in time but not one snapshot (fine for watching, not for
//! reconciling — `crowdgate reconcile` does that).

use super::authorize;
use crate::error::Failure;
use crate::http::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use crowdgate_protocol::keys::SETTLEMENT_GROUP;
use redis::streams::{StreamPendingReply, StreamRangeReply};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Settlement backlog figures from the consumer group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Backlog {
    /// Delivered to a worker, not yet acknowledged.
    pending: u64,
    /// Not yet delivered to any worker.
    undelivered: u64,
    /// Age of the oldest entry not yet settled (pending or undelivered), ms.
    oldest_age_ms: Option<u64>,
}

/// One pipeline's answer: round hash, ledger hash, stream length, dead
/// letters, claimed passes, reserved places, pre-queue size.
type RawFigures = (
    HashMap<String, String>,
    HashMap<String, String>,
    u64,
    u64,
    u64,
    u64,
    u64,
);

/// `GET /ops/v1/rounds/{round}`
pub async fn show(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    authorize(&state, &headers, &round)?;
    let ops = &state.ops;
    let now_ms = crate::clock::now_ms();
    let mut redis = ops.redis.clone();
    let stream = ops.keys.settlement_stream();
    let (fields, ledger, stream_len, dead, claimed, reserved, prequeue): RawFigures = redis::pipe()
        .hgetall(ops.keys.round())
        .hgetall(ops.keys.ledger())
        .xlen(&stream)
        .xlen(ops.dead_letter_key())
        .zcount(ops.keys.active_passes(), now_ms, "+inf")
        .zcount(ops.keys.reserved(), now_ms, "+inf")
        .zcard(ops.keys.prequeue())
        .query_async(&mut redis)
        .await?;
    if fields.is_empty() {
        return Err(Failure::not_found(format!("round {round:?} is not seeded")));
    }
    let backlog = backlog(&mut redis, &stream, now_ms).await?;

    let int = |map: &HashMap<String, String>, name: &str| {
        map.get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let issued = int(&fields, "issued");
    let admitted = int(&fields, "admitted_up_to");
    let queue_length = (issued - admitted).max(0);
    // The same count the admission controller keeps within max_active.
    let active = claimed + reserved;
    metrics::gauge!("crowdgate_round_active_investors").set(active as f64);
    metrics::gauge!("crowdgate_settlement_backlog")
        .set((backlog.pending + backlog.undelivered) as f64);
    metrics::gauge!("crowdgate_settlement_dead_letters").set(dead as f64);
    metrics::gauge!("crowdgate_settlement_oldest_unsettled_age_seconds")
        .set(backlog.oldest_age_ms.unwrap_or(0) as f64 / 1000.0);

    Ok(Json(json!({
        "round": round,
        "name": fields.get("name"),
        "phase": fields.get("phase"),
        "as_of_ms": now_ms,
        "admission": {
            "rate_per_minute": int(&fields, "rate_per_minute"),
            "batch_interval_ms": int(&fields, "batch_interval_ms"),
            "max_active": int(&fields, "max_active"),
            "pass_ttl_seconds": int(&fields, "pass_ttl_seconds"),
        },
        "schedule": {
            "opens_at_ms": int(&fields, "opens_at_ms"),
            "closes_at_ms": int(&fields, "closes_at_ms"),
        },
        "queue": {
            "issued": issued,
            "admitted_up_to": admitted,
            "queue_length": queue_length,
            "active_investors": active,
            "claimed_passes": claimed,
            "reserved_places": reserved,
            "prequeue": prequeue,
        },
        "money": {
            "raised_pence": int(&fields, "raised_pence"),
            "cap_pence": int(&fields, "cap_pence"),
            "accepted_pence": int(&fields, "accepted_pence"),
            "released_pence": int(&fields, "released_pence"),
            "accepted_count": int(&fields, "accepted_count"),
            "investor_count": int(&fields, "investor_count"),
        },
        "settlement": {
            "settled_count": int(&ledger, "settled_count"),
            "failed_count": int(&ledger, "failed_count"),
            "stream_length": stream_len,
            "pending": backlog.pending,
            "undelivered": backlog.undelivered,
            "backlog": backlog.pending + backlog.undelivered,
            "oldest_unsettled_age_ms": backlog.oldest_age_ms,
            "dead_letters": dead,
        },
        "fields": fields,
    })))
}

/// Pending and undelivered entries of the settlement group. A stream with no
/// group yet (no worker has started) counts every entry as undelivered.
async fn backlog(
    redis: &mut redis::aio::ConnectionManager,
    stream: &str,
    now_ms: u64,
) -> Result<Backlog, Failure> {
    let pending: redis::RedisResult<StreamPendingReply> = redis::cmd("XPENDING")
        .arg(stream)
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
        .arg(stream)
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
        .arg(stream)
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
                .arg(stream)
                .query_async::<u64>(redis)
                .await?
                .saturating_sub(backlog.pending),
        };
        oldest = [oldest, id_ms(&first.id)].into_iter().flatten().min();
    }
    backlog.oldest_age_ms = oldest.map(|ms| now_ms.saturating_sub(ms));
    Ok(backlog)
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
