//! The deployment's rounds through the ops API: the list with each round's
//! phase and figures, creating a round (the settings and checks of a round
//! file, as JSON), editing a scheduled round's terms, and archiving a
//! closed one. Every change is audited in
//! the round's own trail, and no process restarts: every core replica
//! serves and drives a created round at once ([`crate::rounds`]).

use super::{audit, authenticate_ops, authorize};
use crate::error::Failure;
use crate::round_config::{ConfigError, RoundConfig};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use crowdgate_protocol::{ApiError, ErrorCode};
use crowdgate_store::{Archived, Change, Created, RoundStore};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// `GET /ops/v1/rounds[?archived=true]`: every live round (and, asked,
/// the archived ones) with its phase, raised against cap, queue and rate.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Failure> {
    authenticate_ops(&state, &headers)?;
    let with_archived = match query.get("archived").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(Failure::for_field(
                ErrorCode::InvalidField,
                "archived",
                "must be true or false",
            ));
        }
    };
    let mut rounds = Vec::new();
    for store in state.rounds.live().await? {
        rounds.push(summary(&store, false).await?);
    }
    if with_archived {
        let mut redis = state.rounds.redis().clone();
        for id in crowdgate_store::rounds::archived_rounds(&mut redis).await? {
            rounds.push(summary(&state.rounds.handle(&id), true).await?);
        }
    }
    Ok(Json(json!({ "rounds": rounds })))
}

/// One line of the list. A live round without data (its hash lost) is
/// listed as such rather than failing the whole list.
async fn summary(store: &RoundStore, archived: bool) -> Result<Value, Failure> {
    let Some((r, _)) = store.round_record().await? else {
        return Ok(json!({ "round": store.round, "archived": archived, "phase": null }));
    };
    Ok(json!({
        "round": store.round,
        "name": r.name,
        "archived": archived,
        "phase": r.phase.as_str(),
        "raised_pence": r.raised_pence,
        "cap_pence": r.cap_pence,
        "queue_length": r.issued.saturating_sub(r.admitted_up_to),
        "rate_per_minute": r.rate_per_minute,
        "opens_at_ms": r.opens_at_ms,
        "closes_at_ms": r.closes_at_ms,
    }))
}

/// `POST /ops/v1/rounds` with a round file's settings as JSON
/// (`{"round": {...}, "admission": {...}}`): 201 with the creation's audit
/// entry; 409 `round_exists` for an id already taken (ids are never
/// reused, archived ones included); 422 naming the field at fault, with
/// the round file's own checks.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Failure> {
    let operator = authenticate_ops(&state, &headers)?;
    let config = parse_round(&super::controls::json_body(&headers, &body)?)?;
    let id = config.round.id.clone();
    let store = state.rounds.handle(&id);
    let now_ms = crate::clock::now_ms();
    let created = store
        .create(
            &crate::store::settings(&config),
            &crate::ids::draw_random(),
            operator,
            now_ms,
        )
        .await?;
    let Created::Created { audit_id } = created else {
        return Err(Failure::for_field(
            ErrorCode::RoundExists,
            "round.id",
            format!(
                "a round {id:?} exists already (round ids are never reused); choose another id"
            ),
        ));
    };
    metrics::counter!("crowdgate_ops_changes_total", "action" => "create", "outcome" => "changed")
        .increment(1);
    tracing::info!(round = %id, operator, audit_id, "round created");
    let entry = audit::entry(&store, &audit_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "round": id, "applied": entry })),
    ))
}

/// `POST /ops/v1/rounds/{round}/archive`: a closed round leaves the live
/// list and is no longer driven; its records, receipts and books stay.
pub async fn archive(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let (operator, store) = authorize(&state, &headers, &round).await?;
    match store.archive(operator, crate::clock::now_ms()).await? {
        Archived::Archived { audit_id } => {
            tracing::info!(round, operator, audit_id, "round archived");
            let entry = audit::entry(&store, &audit_id).await?;
            Ok(Json(json!({ "round": round, "applied": entry })))
        }
        Archived::Already => Ok(Json(json!({
            "round": round,
            "applied": null,
            "message": "nothing changed: the round is archived already",
        }))),
        Archived::WrongPhase { phase } => Err(Failure::for_field(
            ErrorCode::InvalidTransition,
            "phase",
            format!(
                "cannot archive the round: it is {} (close it first; only a closed round is archived)",
                phase.as_str()
            ),
        )),
    }
}

/// The terms `PATCH /ops/v1/rounds/{round}` takes: a round file's
/// `[round]` names, less the id and the times (`closes_at` aside; the
/// opening time is `POST …/open`'s).
const TERMS: [&str; 7] = [
    "name",
    "identity",
    "cap_pence",
    "min_investment_pence",
    "max_investment_pence",
    "share_price_pence",
    "closes_at",
];

/// `PATCH /ops/v1/rounds/{round}` with any of [`TERMS`]: new terms for a
/// round that has not opened (409 `invalid_transition` once it has: its
/// terms are what investors were shown). The new terms are checked with the
/// round's others as a round file is (422 naming the field), then written
/// with their audit entry (`edit`), atomically with the phase check.
pub async fn edit(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    let (operator, store) = authorize(&state, &headers, &round).await?;
    let body = super::controls::json_body(&headers, &body)?;
    super::only_known(body.keys().map(String::as_str), &TERMS, "field")?;
    let Some((record, _)) = store.round_record().await? else {
        return Err(Failure::not_found(format!("round {round:?} is not seeded")));
    };
    let change = edited_terms(&round, &record, &body, crate::clock::now_ms())?;
    super::controls::commit(&store, operator, &round, change).await
}

/// The change `body` asks of `record`'s terms, checked as a round file
/// would be with the round's other terms and its admission settings.
pub fn edited_terms(
    round: &str,
    record: &crowdgate_store::RoundRecord,
    body: &Map<String, Value>,
    now_ms: u64,
) -> Result<Change, ApiError> {
    use crowdgate_store::layout::round as R;
    if body.is_empty() {
        return Err(ApiError::for_field(
            ErrorCode::InvalidField,
            "body",
            format!("give at least one of {}", TERMS.join(", ")),
        ));
    }
    let invalid =
        |field: &str, message: &str| ApiError::for_field(ErrorCode::InvalidField, field, message);
    let text = |field: &str| -> Result<Option<String>, ApiError> {
        match body.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(field, "must be a string")),
        }
    };
    let pence = |field: &str, now: i64| -> Result<i64, ApiError> {
        match body.get(field) {
            None => Ok(now),
            Some(v) => v
                .as_i64()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(field, "must be a whole number of pence above 0")),
        }
    };
    let iso = |ms: u64| {
        (ms > 0).then(|| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        })
    };
    let closes_at = match body.get("closes_at") {
        None => iso(record.closes_at_ms),
        Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => {
            return Err(invalid(
                "closes_at",
                "must be an RFC 3339 time such as 2026-12-01T13:00:00Z, or null for none",
            ));
        }
    };
    let terms = crate::round_config::RoundTerms {
        id: round.to_string(),
        name: text("name")?.unwrap_or_else(|| record.name.clone()),
        identity: Some(text("identity")?.unwrap_or_else(|| record.identity.as_str().to_string())),
        cap_pence: pence("cap_pence", record.cap_pence)?,
        min_investment_pence: pence("min_investment_pence", record.min_investment_pence)?,
        max_investment_pence: pence("max_investment_pence", record.max_investment_pence)?,
        share_price_pence: pence("share_price_pence", record.share_price_pence)?,
        initial_phase: None,
        opens_at: iso(record.opens_at_ms),
        closes_at,
    };
    let config = RoundConfig {
        round: terms,
        admission: crate::round_config::AdmissionSettings {
            rate_per_minute: record.rate_per_minute,
            batch_interval_ms: record.batch_interval_ms,
            max_active: record.max_active,
            pass_ttl_seconds: record.pass_ttl_seconds,
            claim_window_seconds: record.claim_window_seconds,
        },
    };
    // The file's checks, its field names made the body's (`round.cap_pence`
    // is `cap_pence` here).
    config.validate().map_err(|err| {
        invalid_config(err, |field| field.strip_prefix("round.").unwrap_or(field))
    })?;
    let closes_at_ms = config.closes_at_ms().unwrap_or(0);
    if body.contains_key("closes_at") && closes_at_ms != 0 && closes_at_ms <= now_ms {
        return Err(invalid("closes_at", "must be in the future"));
    }
    let r = &config.round;
    let mut fields: Vec<(&'static str, String)> = Vec::new();
    for (name, field, value) in [
        ("name", R::NAME, r.name.clone()),
        (
            "identity",
            R::IDENTITY,
            config.identity().as_str().to_string(),
        ),
        ("cap_pence", R::CAP_PENCE, r.cap_pence.to_string()),
        (
            "min_investment_pence",
            R::MIN_INVESTMENT_PENCE,
            r.min_investment_pence.to_string(),
        ),
        (
            "max_investment_pence",
            R::MAX_INVESTMENT_PENCE,
            r.max_investment_pence.to_string(),
        ),
        (
            "share_price_pence",
            R::SHARE_PRICE_PENCE,
            r.share_price_pence.to_string(),
        ),
        ("closes_at", R::CLOSES_AT_MS, closes_at_ms.to_string()),
    ] {
        if body.contains_key(name) {
            fields.push((field, value));
        }
    }
    Ok(Change::EditTerms(fields))
}

/// A round file's settings from JSON, with the file's own checks; errors
/// name the field as the file does (`round.cap_pence`).
pub fn parse_round(body: &Map<String, Value>) -> Result<RoundConfig, ApiError> {
    let config: RoundConfig = serde_path_to_error::deserialize(Value::Object(body.clone()))
        .map_err(|err| {
            let path = err.path().to_string();
            let message = err.inner().to_string();
            // serde names a missing field only in its message (an unknown
            // one is the path's last step already).
            let named = message.split('`').nth(1).map(|name| match path.as_str() {
                "." => name.to_string(),
                p if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
                p => format!("{p}.{name}"),
            });
            if message.starts_with("unknown field") {
                let field = named.unwrap_or(path);
                ApiError::for_field(ErrorCode::UnknownField, &field, message)
            } else if message.starts_with("missing field") {
                let field = named.unwrap_or(path);
                ApiError::for_field(ErrorCode::MissingField, &field, message)
            } else {
                ApiError::for_field(ErrorCode::InvalidField, &path, message)
            }
        })?;
    config
        .validate()
        .map_err(|err| invalid_config(err, |field| field))?;
    Ok(config)
}

/// A round file's refusal as a 422 naming the field, as `name` spells it
/// for the request (a round file's `round.cap_pence`, or a body's
/// `cap_pence`).
fn invalid_config(err: ConfigError, name: impl Fn(&str) -> &str) -> ApiError {
    match err {
        ConfigError::Invalid { field, problem } => {
            ApiError::for_field(ErrorCode::InvalidField, name(&field), problem)
        }
        other => ApiError::for_field(ErrorCode::InvalidField, "body", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<RoundConfig, ApiError> {
        parse_round(body.as_object().expect("an object"))
    }

    fn round() -> Value {
        json!({
            "round": {
                "id": "spring-2027",
                "name": "Spring",
                "cap_pence": 1_000_000,
                "min_investment_pence": 1_000,
                "max_investment_pence": 100_000,
                "share_price_pence": 100,
                "opens_at": "2027-03-01T10:00:00Z"
            },
            "admission": { "rate_per_minute": 120 }
        })
    }

    #[test]
    fn a_round_files_settings_parse_with_the_files_defaults() {
        let config = parse(round()).unwrap();
        assert_eq!(config.round.id, "spring-2027");
        assert_eq!(config.admission.rate_per_minute, 120);
        assert_eq!(config.admission.batch_interval_ms, 1_000, "the default");
        assert_eq!(
            config.initial_phase(),
            crowdgate_protocol::RoomPhase::Scheduled
        );
    }

    /// A scheduled round's record as core reads it (cap £10,000, £10 to
    /// £1,000 in £1 shares, opening in an hour).
    fn scheduled(now_ms: u64) -> crowdgate_store::RoundRecord {
        let config = parse(round()).unwrap();
        let mut fields: std::collections::HashMap<String, String> = crate::store::settings(&config)
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        fields.insert("opens_at_ms".into(), (now_ms + 3_600_000).to_string());
        crowdgate_store::RoundRecord::decode("cg:{spring-2027}:round", &fields)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_scheduled_rounds_terms_are_checked_with_its_others() {
        let now = 1_800_000_000_000;
        let record = scheduled(now);
        let edit =
            |body: Value| edited_terms("spring-2027", &record, body.as_object().unwrap(), now);
        assert_eq!(
            edit(json!({"cap_pence": 2_000_000, "name": "Spring (more)"})).unwrap(),
            Change::EditTerms(vec![
                ("name", "Spring (more)".into()),
                ("cap_pence", "2000000".into())
            ])
        );
        let field = |body: Value| edit(body).unwrap_err().field.unwrap_or_default();
        // Checked against the round's other terms, named as the body names them.
        assert_eq!(
            field(json!({"min_investment_pence": 200_000})),
            "max_investment_pence"
        );
        assert_eq!(field(json!({"share_price_pence": 7})), "cap_pence");
        assert_eq!(field(json!({"cap_pence": "lots"})), "cap_pence");
        assert_eq!(field(json!({"identity": "everyone"})), "identity");
        assert_eq!(
            field(json!({"closes_at": "2027-01-01T00:00:00Z"})),
            "closes_at"
        );
        assert_eq!(field(json!({})), "body");
        // A closing time after the opening is fine; null clears it.
        let later = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(now + 7_200_000),
        )
        .to_string();
        assert!(edit(json!({ "closes_at": later })).is_ok());
        assert_eq!(
            edit(json!({ "closes_at": null })).unwrap(),
            Change::EditTerms(vec![("closes_at_ms", "0".into())])
        );
    }

    #[test]
    fn every_refusal_names_its_field() {
        let refused = |edit: &dyn Fn(&mut Value)| {
            let mut body = round();
            edit(&mut body);
            let err = parse(body).unwrap_err();
            (err.error, err.field.unwrap_or_default())
        };
        assert_eq!(
            refused(&|b| b["round"]["cap_pence"] = json!("lots")),
            (ErrorCode::InvalidField, "round.cap_pence".into())
        );
        assert_eq!(
            refused(&|b| {
                b["round"].as_object_mut().unwrap().remove("name");
            }),
            (ErrorCode::MissingField, "round.name".into())
        );
        assert_eq!(
            refused(&|b| b["round"]["capp_pence"] = json!(5)),
            (ErrorCode::UnknownField, "round.capp_pence".into())
        );
        assert_eq!(
            refused(&|b| b["rounds"] = json!({})),
            (ErrorCode::UnknownField, "rounds".into())
        );
        assert_eq!(
            refused(&|b| b["round"]["id"] = json!("Spring 2027")),
            (ErrorCode::InvalidField, "round.id".into())
        );
        assert_eq!(
            refused(&|b| b["round"]["max_investment_pence"] = json!(10)),
            (ErrorCode::InvalidField, "round.max_investment_pence".into())
        );
        assert_eq!(
            refused(&|b| b["admission"]["batch_interval_ms"] = json!(5)),
            (
                ErrorCode::InvalidField,
                "admission.batch_interval_ms".into()
            )
        );
    }
}
