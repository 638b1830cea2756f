//! Live controls: admission settings, pause, resume, open, close and the cap.
//!
//! A request is first parsed into a [`Change`] with every value range-checked
//! here (pure code, no I/O, unit-tested below). What depends on live state —
//! the phase transition, the cap against what is raised — is checked by the
//! store's `change.lua`, which then writes the change and its audit entry in
//! one atomic step, so no change is ever applied without its audit record.
//! Its verdict becomes an HTTP answer in [`refusal`].

use super::{audit, authorize};
use crate::clock::rfc3339_ms;
use crate::error::Failure;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use crowdgate_protocol::{ApiError, ErrorCode, RoomPhase};
use crowdgate_store::layout::round as R;
use crowdgate_store::{ChangeVerdict, StoreError};
use serde_json::{Map, Value};

pub use crowdgate_store::Change;

pub use crate::round_config::{ADMISSION_LIMITS, MAX_CAP_PENCE};

/// A request's JSON object body: a non-empty body must say it is JSON
/// (415 otherwise, as on the investor API); then [`parse_body`].
pub(crate) fn json_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        crowdgate_protocol::request::require_json(
            headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )?;
    }
    parse_body(bytes)
}

/// A JSON object body; an empty body is an empty object.
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    crowdgate_protocol::json::parse_object(bytes)
}

/// Refuses any body field not in `allowed`, naming it.
fn only(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    super::only_known(body.keys().map(String::as_str), allowed, "field")
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
                    ErrorCode::InvalidField,
                    field,
                    format!("must be a whole number from {min} to {max}"),
                ));
            }
        }
    }
    if values.is_empty() {
        return Err(ApiError::for_field(
            ErrorCode::InvalidField,
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
    let invalid = |message: &str| ApiError::for_field(ErrorCode::InvalidField, "opens_at", message);
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
            ErrorCode::InvalidField,
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

type Reply = Result<Json<Value>, Failure>;

/// `PATCH /ops/v1/rounds/{round}/admission`
pub async fn admission(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    apply(&state, &headers, &round, "admission", || {
        parse_admission(&json_body(&headers, &body)?)
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
        parse_empty(&json_body(&headers, &body)?, Change::Pause)
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
        parse_empty(&json_body(&headers, &body)?, Change::Resume)
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
        parse_empty(&json_body(&headers, &body)?, Change::Close)
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
        parse_open(&json_body(&headers, &body)?, now)
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
        parse_cap(&json_body(&headers, &body)?)
    })
    .await
}

/// Authenticates, parses, applies the change, and answers with its audit entry.
async fn apply(
    state: &AppState,
    headers: &HeaderMap,
    round: &str,
    endpoint: &'static str,
    parse: impl FnOnce() -> Result<Change, ApiError>,
) -> Reply {
    let (operator, store) = authorize(state, headers, round).await?;
    let change = parse().inspect_err(|e| {
        metrics::counter!("crowdgate_ops_changes_total", "action" => endpoint, "outcome" => e.error.as_str())
            .increment(1);
    })?;
    commit(&store, operator, round, change).await
}

/// Applies a parsed change through the store and answers with its audit
/// entry, or the refusal.
pub(crate) async fn commit(
    store: &crowdgate_store::RoundStore,
    operator: &str,
    round: &str,
    change: Change,
) -> Reply {
    let action = change.action();
    let verdict = store
        .change(&change, operator, crate::clock::now_ms())
        .await
        .inspect_err(|e| {
            if let StoreError::NotSeeded { .. } = e {
                metrics::counter!("crowdgate_ops_changes_total", "action" => action, "outcome" => ErrorCode::RoundNotSeeded.as_str())
                    .increment(1);
            }
        })?;
    let audit_id = match verdict {
        ChangeVerdict::Changed { audit_id } => audit_id,
        ChangeVerdict::Unchanged => {
            // Not a change: nothing written, nothing audited; said plainly.
            metrics::counter!("crowdgate_ops_changes_total", "action" => action, "outcome" => "unchanged")
                .increment(1);
            tracing::info!(round, operator, action, "ops change changed nothing");
            return Ok(Json(serde_json::json!({
                "round": round,
                "applied": null,
                "message": "nothing changed: every value given is already the round's",
            })));
        }
        refused => {
            let failure = refusal(&change, refused);
            metrics::counter!("crowdgate_ops_changes_total", "action" => action, "outcome" => failure.body.error.as_str())
                .increment(1);
            tracing::info!(round, operator, action, status = failure.status().as_u16(), error = %failure.body.error, "ops change refused");
            return Err(failure);
        }
    };
    metrics::counter!("crowdgate_ops_changes_total", "action" => action, "outcome" => "changed")
        .increment(1);
    tracing::info!(round, operator, action, audit_id, "ops change applied");
    let entry = audit::entry(store, &audit_id).await?;
    Ok(Json(
        serde_json::json!({ "round": round, "applied": entry }),
    ))
}

/// A refused change as an HTTP answer: 409 `invalid_transition` (field
/// `phase`) for a phase that does not allow it, 422 `invalid_field` naming
/// the value at fault.
pub fn refusal(change: &Change, verdict: ChangeVerdict) -> Failure {
    let transition =
        |message: String| Failure::for_field(ErrorCode::InvalidTransition, "phase", message);
    let invalid =
        |field: &str, message: String| Failure::for_field(ErrorCode::InvalidField, field, message);
    let verb = match change {
        Change::Admission(_) => "change the admission of",
        Change::Pause => "pause",
        Change::Resume => "resume",
        Change::OpenNow => "open",
        Change::OpenAt { .. } => "reschedule",
        Change::Close => "close",
        Change::SetCap { .. } => "change the cap of",
        Change::EditTerms(_) => "edit the terms of",
    };
    match verdict {
        ChangeVerdict::WrongPhase { phase } if matches!(change, Change::EditTerms(_)) => {
            transition(format!(
                "cannot {verb} the round: it is {}, and a round's terms are fixed once it opens (they are what investors were shown); the cap still changes (set-cap), and the admission settings (set-rate)",
                phase.as_str()
            ))
        }
        ChangeVerdict::WrongPhase { phase } => {
            let why = match phase {
                RoomPhase::Scheduled => "it has not opened yet (open it now, or at a new time)",
                RoomPhase::Open => "it is already open",
                RoomPhase::Paused => "it is paused (resume it)",
                RoomPhase::Full => "it is full (raise the cap to reopen it)",
                RoomPhase::Closed => "it is closed, and a closed round stays closed",
            };
            transition(format!("cannot {verb} the round: {why}"))
        }
        ChangeVerdict::PastClosing => transition(format!(
            "cannot {verb} the round: its closing time has passed"
        )),
        ChangeVerdict::OpensAfterClosing { closes_at_ms } => invalid(
            "opens_at",
            format!("must be before the closing time (closes_at_ms {closes_at_ms})"),
        ),
        ChangeVerdict::CapNotAboveRaised { raised_pence } => invalid(
            R::CAP_PENCE,
            format!("must be above the amount already raised ({raised_pence} pence)"),
        ),
        ChangeVerdict::CapNotWholeShares { share_price_pence } => invalid(
            R::CAP_PENCE,
            format!("must be a whole number of shares (a multiple of {share_price_pence} pence)"),
        ),
        ChangeVerdict::CapBelowMinimum { minimum_pence } => invalid(
            R::CAP_PENCE,
            format!("must be at least the minimum investment ({minimum_pence} pence)"),
        ),
        ChangeVerdict::CapLeavesNoRoom { lowest_cap_pence } => invalid(
            R::CAP_PENCE,
            format!(
                "must leave room for the smallest investment above the amount already \
                 raised: at least {lowest_cap_pence} pence"
            ),
        ),
        ChangeVerdict::Changed { .. } | ChangeVerdict::Unchanged => {
            unreachable!("a change that was made, or was no change, is not a refusal")
        }
    }
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
        assert_eq!(
            parse_body(b"{nope").unwrap_err().error,
            ErrorCode::MalformedJson
        );
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
    fn refusals_say_why_and_name_the_field() {
        let wrong = |phase| ChangeVerdict::WrongPhase { phase };
        let answer = |f: Failure| (f.status().as_u16(), f.body.field.clone(), f.body.message);
        let (status, field, message) = answer(refusal(&Change::OpenNow, wrong(RoomPhase::Open)));
        assert_eq!((status, field.as_deref()), (409, Some("phase")));
        assert!(message.contains("already open"), "{message}");
        let (_, _, message) = answer(refusal(&Change::OpenNow, wrong(RoomPhase::Paused)));
        assert!(message.contains("resume"), "{message}");
        let (_, _, message) = answer(refusal(&Change::Resume, wrong(RoomPhase::Full)));
        assert!(message.contains("cap"), "{message}");
        let (status, field, message) = answer(refusal(
            &Change::SetCap { cap_pence: 5_000 },
            ChangeVerdict::CapNotAboveRaised {
                raised_pence: 10_000,
            },
        ));
        assert_eq!((status, field.as_deref()), (422, Some("cap_pence")));
        assert!(message.contains("10000 pence"), "{message}");
        let (status, field, message) = answer(refusal(
            &Change::SetCap { cap_pence: 10_100 },
            ChangeVerdict::CapLeavesNoRoom {
                lowest_cap_pence: 11_000,
            },
        ));
        assert_eq!((status, field.as_deref()), (422, Some("cap_pence")));
        assert!(message.contains("at least 11000 pence"), "{message}");
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
