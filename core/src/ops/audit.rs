//! The audit trail: every applied ops change is one entry of the round's
//! audit stream, written by the store's `change.lua` in the same atomic step
//! as the change. An entry holds when, who, the action and, per changed
//! field, its old and new value; here it is rendered as JSON.

use super::authorize;
use crate::error::Failure;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use crowdgate_protocol::{ApiError, ErrorCode};
use crowdgate_store::AuditEntry;
use crowdgate_store::RoundStore;
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
    let (_, store) = authorize(&state, &headers, &round).await?;
    let limit = parse_limit(
        query
            .ok()
            .and_then(|Query(q)| q.get("limit").cloned())
            .as_deref(),
    )?;
    let entries: Vec<Value> = store
        .audit_entries(limit)
        .await?
        .iter()
        .map(render)
        .collect();
    Ok(Json(json!({ "round": round, "entries": entries })))
}

/// `limit` from the query string: 1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::for_field(
                ErrorCode::InvalidField,
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// One entry by id, rendered.
pub(crate) async fn entry(store: &RoundStore, id: &str) -> Result<Value, Failure> {
    Ok(store
        .audit_entry(id)
        .await?
        .as_ref()
        .map(render)
        .unwrap_or(Value::Null))
}

/// An audit entry as JSON: `{id, at_ms, at, operator, action, old, new}`,
/// numbers as numbers.
fn render(entry: &AuditEntry) -> Value {
    let mut old = Map::new();
    let mut new = Map::new();
    for change in &entry.changes {
        old.insert(change.field.clone(), typed(&change.old));
        new.insert(change.field.clone(), typed(&change.new));
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(entry.at_ms);
    json!({
        "id": entry.id,
        "at_ms": entry.at_ms,
        "at": humantime::format_rfc3339_millis(at).to_string(),
        "operator": entry.operator,
        "action": entry.action,
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
