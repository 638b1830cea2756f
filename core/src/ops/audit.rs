//! The audit trail: every applied ops change is one entry of the stream
//! `cg:{r}:audit`, written by `change.lua` in the same atomic step as the
//! change. An entry holds `at_ms`, `operator`, `action` and, per changed
//! field, `<field>.old` and `<field>.new`.

use super::{OpsBackend, authorize};
use crate::error::Failure;
use crate::http::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use crowdgate_protocol::ApiError;
use redis::streams::{StreamId, StreamRangeReply};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Entries returned when no `limit` is given, and the most allowed.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1_000;

/// `GET /ops/v1/rounds/{round}/audit?limit=N`: newest first.
pub async fn list(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, Failure> {
    authorize(&state, &headers, &round)?;
    let ops = &state.ops;
    let limit = parse_limit(
        query
            .ok()
            .and_then(|Query(q)| q.get("limit").cloned())
            .as_deref(),
    )?;
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(ops.audit_key())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(limit)
        .query_async(&mut ops.redis.clone())
        .await?;
    let entries: Vec<Value> = reply.ids.iter().map(render).collect();
    Ok(Json(json!({ "round": round, "entries": entries })))
}

/// `limit` from the query string: 1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::for_field(
                "invalid_field",
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// One entry by id, rendered.
pub(crate) async fn entry(ops: &OpsBackend, id: &str) -> Result<Value, Failure> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(ops.audit_key())
        .arg(id)
        .arg(id)
        .query_async(&mut ops.redis.clone())
        .await?;
    Ok(reply.ids.first().map(render).unwrap_or(Value::Null))
}

/// An audit stream entry as JSON: `{id, at_ms, at, operator, action, old, new}`,
/// numbers as numbers.
fn render(entry: &StreamId) -> Value {
    let text = |name: &str| entry.get::<String>(name).unwrap_or_default();
    let mut old = Map::new();
    let mut new = Map::new();
    for (key, value) in &entry.map {
        let value: String = redis::from_redis_value_ref(value).unwrap_or_default();
        if let Some(field) = key.strip_suffix(".old") {
            old.insert(field.to_string(), typed(&value));
        } else if let Some(field) = key.strip_suffix(".new") {
            new.insert(field.to_string(), typed(&value));
        }
    }
    let at_ms: u64 = text("at_ms").parse().unwrap_or(0);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    json!({
        "id": entry.id,
        "at_ms": at_ms,
        "at": humantime::format_rfc3339_millis(at).to_string(),
        "operator": text("operator"),
        "action": text("action"),
        "old": old,
        "new": new,
    })
}

/// Integers as JSON numbers, an absent old value as null, anything else as text.
fn typed(value: &str) -> Value {
    if value.is_empty() {
        Value::Null
    } else if let Ok(n) = value.parse::<i64>() {
        Value::from(n)
    } else {
        Value::from(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("3")).unwrap(), 3);
        for bad in ["0", "-1", "x", "1001"] {
            assert_eq!(
                parse_limit(Some(bad)).unwrap_err().field.as_deref(),
                Some("limit")
            );
        }
    }

    #[test]
    fn values_are_typed() {
        assert_eq!(typed("600"), json!(600));
        assert_eq!(typed("paused"), json!("paused"));
        assert_eq!(typed(""), Value::Null);
    }
}
