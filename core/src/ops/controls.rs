//! Live controls: admission settings, pause, resume, open, close and the cap.
//!
//! A request is first parsed into a [`Change`] with every value range-checked
//! here (pure code, no I/O, unit-tested below). What depends on live state —
//! the phase transition, the cap against `raised_pence` — is checked by
//! `change.lua`, which then writes the change and its audit entry in one
//! atomic step, so no change is ever applied without its audit record.

use super::{audit, authorize};
use crate::error::Failure;
use crate::http::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use crowdgate_protocol::ApiError;
use serde_json::{Map, Value};

/// Admission settings ops may change, with their allowed ranges (inclusive).
/// The same bounds `round_config` enforces on the config file.
pub const ADMISSION_LIMITS: [(&str, u64, u64); 4] = [
    ("rate_per_minute", 0, 1_000_000),
    ("batch_interval_ms", 100, 60_000),
    ("max_active", 1, 10_000_000),
    ("pass_ttl_seconds", 30, 86_400),
];

/// The largest cap ops may set (as the config file allows).
pub const MAX_CAP_PENCE: i64 = crowdgate_protocol::invest::MAX_AMOUNT_PENCE * 1000;

/// One validated ops change, ready for `change.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New admission settings (only the fields given).
    Admission(Vec<(&'static str, u64)>),
    /// open → paused.
    Pause,
    /// paused → open.
    Resume,
    /// scheduled → open now.
    OpenNow,
    /// scheduled → scheduled, opening at this time (Unix ms).
    OpenAt { opens_at_ms: u64 },
    /// any → closed.
    Close,
    /// A new cap (must exceed raised; checked by the script).
    SetCap { cap_pence: i64 },
}

impl Change {
    /// The script's action name, also recorded in the audit entry.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Admission(_) => "admission",
            Change::Pause => "pause",
            Change::Resume => "resume",
            Change::OpenNow => "open",
            Change::OpenAt { .. } => "schedule",
            Change::Close => "close",
            Change::SetCap { .. } => "set_cap",
        }
    }

    /// The field, value pairs the script writes.
    fn fields(&self) -> Vec<(String, String)> {
        match self {
            Change::Admission(values) => values
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
            Change::OpenAt { opens_at_ms } => vec![("opens_at_ms".into(), opens_at_ms.to_string())],
            Change::SetCap { cap_pence } => vec![("cap_pence".into(), cap_pence.to_string())],
            Change::Pause | Change::Resume | Change::OpenNow | Change::Close => vec![],
        }
    }
}

/// A JSON object body; an empty body is an empty object.
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    crowdgate_protocol::json::parse_object(bytes)
}

/// Refuses any field not in `allowed`, naming it.
fn only(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(field) => {
            let expected = if allowed.is_empty() {
                "no fields".to_string()
            } else {
                allowed.join(", ")
            };
            Err(ApiError::for_field(
                "unknown_field",
                field,
                format!("unknown field; expected {expected}"),
            ))
        }
    }
}

/// `PATCH .../admission`: any of the [`ADMISSION_LIMITS`] fields.
pub fn parse_admission(body: &Map<String, Value>) -> Result<Change, ApiError> {
    let names: Vec<&str> = ADMISSION_LIMITS.iter().map(|(n, _, _)| *n).collect();
    only(body, &names)?;
    let mut values = Vec::new();
    for (field, min, max) in ADMISSION_LIMITS {
        let Some(value) = body.get(field) else {
            continue;
        };
        match value.as_u64() {
            Some(v) if (min..=max).contains(&v) => values.push((field, v)),
            _ => {
                return Err(ApiError::for_field(
                    "invalid_field",
                    field,
                    format!("must be a whole number from {min} to {max}"),
                ));
            }
        }
    }
    if values.is_empty() {
        return Err(ApiError::for_field(
            "invalid_field",
            "body",
            format!("give at least one of {}", names.join(", ")),
        ));
    }
    Ok(Change::Admission(values))
}

/// `POST .../open`: `{}` opens now; `{"opens_at": "<RFC 3339>"}` schedules.
pub fn parse_open(body: &Map<String, Value>, now_ms: u64) -> Result<Change, ApiError> {
    only(body, &["opens_at"])?;
    let Some(value) = body.get("opens_at").filter(|v| !v.is_null()) else {
        return Ok(Change::OpenNow);
    };
    let invalid = |message: &str| ApiError::for_field("invalid_field", "opens_at", message);
    let text = value
        .as_str()
        .ok_or_else(|| invalid("must be an RFC 3339 time in UTC such as 2026-12-01T10:00:00Z"))?;
    let opens_at_ms = rfc3339_ms(text)
        .ok_or_else(|| invalid("must be an RFC 3339 time in UTC such as 2026-12-01T10:00:00Z"))?;
    if opens_at_ms <= now_ms {
        return Err(invalid("must be in the future; send {} to open now"));
    }
    Ok(Change::OpenAt { opens_at_ms })
}

/// `PUT .../cap`: `{"cap_pence": N}`.
pub fn parse_cap(body: &Map<String, Value>) -> Result<Change, ApiError> {
    only(body, &["cap_pence"])?;
    let invalid = || {
        ApiError::for_field(
            "invalid_field",
            "cap_pence",
            format!("must be a whole number of pence from 1 to {MAX_CAP_PENCE}"),
        )
    };
    let cap = body
        .get("cap_pence")
        .ok_or_else(invalid)?
        .as_i64()
        .ok_or_else(invalid)?;
    if !(1..=MAX_CAP_PENCE).contains(&cap) {
        return Err(invalid());
    }
    Ok(Change::SetCap { cap_pence: cap })
}

/// Pause, resume and close take no fields.
pub fn parse_empty(body: &Map<String, Value>, change: Change) -> Result<Change, ApiError> {
    only(body, &[])?;
    Ok(change)
}

/// Unix milliseconds of an RFC 3339 time.
fn rfc3339_ms(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    Some(time.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

type Reply = Result<Json<Value>, Failure>;

/// `PATCH /ops/v1/rounds/{round}/admission`
pub async fn admission(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    apply(&state, &headers, &round, "admission", || {
        parse_admission(&parse_body(&body)?)
    })
    .await
}

/// `POST /ops/v1/rounds/{round}/pause`
pub async fn pause(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    apply(&state, &headers, &round, "pause", || {
        parse_empty(&parse_body(&body)?, Change::Pause)
    })
    .await
}

/// `POST /ops/v1/rounds/{round}/resume`
pub async fn resume(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    apply(&state, &headers, &round, "resume", || {
        parse_empty(&parse_body(&body)?, Change::Resume)
    })
    .await
}

/// `POST /ops/v1/rounds/{round}/close`
pub async fn close(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    apply(&state, &headers, &round, "close", || {
        parse_empty(&parse_body(&body)?, Change::Close)
    })
    .await
}

/// `POST /ops/v1/rounds/{round}/open`
pub async fn open(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let now = crate::clock::now_ms();
    apply(&state, &headers, &round, "open", || {
        parse_open(&parse_body(&body)?, now)
    })
    .await
}

/// `PUT /ops/v1/rounds/{round}/cap`
pub async fn set_cap(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    apply(&state, &headers, &round, "set_cap", || {
        parse_cap(&parse_body(&body)?)
    })
    .await
}

/// Authenticates, parses, runs `change.lua`, and answers with the audit entry.
async fn apply(
    state: &AppState,
    headers: &HeaderMap,
    round: &str,
    endpoint: &'static str,
    parse: impl FnOnce() -> Result<Change, ApiError>,
) -> Reply {
    let operator = authorize(state, headers, round)?;
    let ops = &state.ops;
    let change = parse().inspect_err(|e| {
        metrics::counter!("crowdgate_ops_changes_total", "action" => endpoint, "outcome" => e.error.clone())
            .increment(1);
    })?;
    let action = change.action();
    let mut invocation = ops.change.key(ops.keys.round());
    invocation
        .key(ops.audit_key())
        .arg(action)
        .arg(operator)
        .arg(crate::clock::now_ms());
    for (field, value) in change.fields() {
        invocation.arg(field).arg(value);
    }
    let (status, code, field, message, audit_id): (u16, String, String, String, String) =
        invocation.invoke_async(&mut ops.redis.clone()).await?;
    metrics::counter!("crowdgate_ops_changes_total", "action" => action, "outcome" => code.clone())
        .increment(1);
    if status != 200 {
        let body = if field.is_empty() {
            ApiError::new(code, message)
        } else {
            ApiError::for_field(code, &field, message)
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT);
        tracing::info!(round, operator, action, status = status.as_u16(), error = %body.error, "ops change refused");
        return Err(Failure::new(status, body));
    }
    tracing::info!(round, operator, action, audit_id, "ops change applied");
    let entry = audit::entry(ops, &audit_id).await?;
    Ok(Json(
        serde_json::json!({ "round": round, "applied": entry }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn bodies() {
        assert!(parse_body(b"").unwrap().is_empty());
        assert_eq!(parse_body(b"{nope").unwrap_err().error, "malformed_json");
        assert_eq!(
            parse_body(b"[1]").unwrap_err().field.as_deref(),
            Some("body")
        );
    }

    #[test]
    fn admission_names_the_bad_field() {
        let ok = parse_admission(&obj(json!({"rate_per_minute": 120, "max_active": 5}))).unwrap();
        assert_eq!(
            ok,
            Change::Admission(vec![("rate_per_minute", 120), ("max_active", 5)])
        );
        for (body, field) in [
            (json!({"rate_per_minute": -1}), "rate_per_minute"),
            (json!({"rate_per_minute": 1.5}), "rate_per_minute"),
            (json!({"rate_per_minute": "10"}), "rate_per_minute"),
            (json!({"rate_per_minute": 1_000_001}), "rate_per_minute"),
            (json!({"batch_interval_ms": 99}), "batch_interval_ms"),
            (json!({"max_active": 0}), "max_active"),
            (json!({"pass_ttl_seconds": 29}), "pass_ttl_seconds"),
            (json!({"rate": 5}), "rate"),
            (json!({}), "body"),
        ] {
            let err = parse_admission(&obj(body.clone())).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn open_now_or_later() {
        let now = 1_796_119_200_000;
        assert_eq!(parse_open(&Map::new(), now).unwrap(), Change::OpenNow);
        assert_eq!(
            parse_open(&obj(json!({"opens_at": "2026-12-01T10:00:01Z"})), now).unwrap(),
            Change::OpenAt {
                opens_at_ms: now + 1_000
            }
        );
        for bad in [
            json!({"opens_at": "2026-12-01T10:00:00Z"}),
            json!({"opens_at": "soon"}),
            json!({"opens_at": 5}),
        ] {
            assert_eq!(
                parse_open(&obj(bad), now).unwrap_err().field.as_deref(),
                Some("opens_at")
            );
        }
    }

    #[test]
    fn caps() {
        assert_eq!(
            parse_cap(&obj(json!({"cap_pence": 500}))).unwrap(),
            Change::SetCap { cap_pence: 500 }
        );
        for bad in [
            json!({}),
            json!({"cap_pence": 0}),
            json!({"cap_pence": "5"}),
            json!({"cap_pence": MAX_CAP_PENCE + 1}),
        ] {
            assert_eq!(
                parse_cap(&obj(bad)).unwrap_err().field.as_deref(),
                Some("cap_pence")
            );
        }
        assert_eq!(
            parse_empty(&obj(json!({"x": 1})), Change::Pause)
                .unwrap_err()
                .field
                .as_deref(),
            Some("x")
        );
    }
}
