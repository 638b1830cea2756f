//! The invest endpoint: check the pass, validate the body, run the atomic
//! script, and turn its verdict into an HTTP answer.
//!
//! core trusts nothing the edge checked: the pass signature, its round and
//! expiry are verified again here.

use crate::error::Failure;
use crate::http::AppState;
use crate::store::{InvestOutcome, NewInvestment};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crowdgate_protocol::api::{Investment, InvestmentStatus};
use crowdgate_protocol::invest::{InvestRequest, validate_idempotency_key};
use crowdgate_protocol::{ApiError, Pass};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Attempts at a Redis call whose outcome is unclear (connection cut).
const INVEST_ATTEMPTS: u32 = 3;

/// `POST /v1/rounds/{round}/investments`
pub async fn create(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    state.check_round(&round)?;
    let pass = verify_pass(&state, &headers)?;
    require_json(&headers)?;
    let key =
        validate_idempotency_key(headers.get("idempotency-key").and_then(|v| v.to_str().ok()))?;
    let request = InvestRequest::parse(&body)?;

    let investment_id = investment_id_for(&round, &pass.ticket, &key);
    let fingerprint = fingerprint_of(&request);
    let now_ms = crate::clock::now_ms();
    let new = NewInvestment {
        investment_id: &investment_id,
        ticket_id: &pass.ticket,
        investor_id: &request.investor_id,
        amount_pence: request.amount_pence,
        fingerprint: &fingerprint,
        now_ms,
        // Keep the binding a little past the pass so it cannot be rebound.
        binding_ttl_s: pass.expires_at.saturating_sub(now_ms / 1000) + 60,
    };

    // The investment id is derived from the request, so retrying after an
    // unclear failure can at worst replay the first attempt, never double it.
    let mut attempt = 1;
    let outcome = loop {
        match state.store.invest(&new).await {
            Ok(outcome) => break outcome,
            Err(err) if attempt < INVEST_ATTEMPTS && is_retryable(&err) => {
                tracing::warn!(investment_id, attempt, error = %err, "invest call unclear, retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    };
    metrics::counter!("crowdgate_core_invest_total", "outcome" => outcome.code.clone())
        .increment(1);
    tracing::info!(
        round = %round, ticket = %pass.ticket, investment_id, status = outcome.status,
        outcome = %outcome.code, amount_pence = request.amount_pence, "invest"
    );
    answer(&round, &request, outcome)
}

/// `GET /v1/rounds/{round}/investments/{id}`
pub async fn show(
    State(state): State<AppState>,
    Path((round, id)): Path<(String, String)>,
) -> Result<Json<Investment>, Failure> {
    state.check_round(&round)?;
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            ApiError::for_field("invalid_field", "investment_id", "not an investment id"),
        ));
    }
    match state.store.investment(&id).await? {
        Some(investment) => Ok(Json(investment)),
        None => Err(Failure::not_found(format!(
            "no investment {id} in round {round}"
        ))),
    }
}

fn verify_pass(state: &AppState, headers: &HeaderMap) -> Result<Pass, Failure> {
    let token = bearer_token(headers).ok_or_else(|| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            ApiError::for_field(
                "missing_pass",
                "Authorization",
                "send your pass as `Authorization: Bearer <pass>`",
            ),
        )
    })?;
    state
        .keyring
        .verify::<Pass>(token, &state.store.round, crate::clock::now_s())
        .map_err(|err| {
            let status = match err {
                crowdgate_protocol::TokenError::Malformed => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            Failure::new(
                status,
                ApiError::for_field(err.code(), "pass", format!("pass refused: {err}")),
            )
        })
}

/// The token from `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim()).filter(|t| !t.is_empty())
}

fn require_json(headers: &HeaderMap) -> Result<(), Failure> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::for_field(
                "unsupported_content_type",
                "Content-Type",
                "send the body as application/json",
            ),
        ));
    }
    Ok(())
}

fn is_retryable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_timeout()
        || err.is_connection_refusal()
}

/// Stable id for (round, ticket, Idempotency-Key): each visitor's keys are
/// their own, and one request always names one record.
pub fn investment_id_for(round: &str, ticket: &str, key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(round)
        .chain_update([0])
        .chain_update(ticket)
        .chain_update([0])
        .chain_update(key)
        .finalize();
    format!("inv_{}", hex(&digest[..12]))
}

fn fingerprint_of(request: &InvestRequest) -> String {
    let digest = Sha256::new()
        .chain_update(&request.investor_id)
        .chain_update([0])
        .chain_update(request.amount_pence.to_le_bytes())
        .finalize();
    hex(&digest[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Maps the script's verdict to an HTTP response.
fn answer(round: &str, request: &InvestRequest, o: InvestOutcome) -> Result<Response, Failure> {
    if o.status == 201 {
        let investment = Investment {
            investment_id: o.investment_id,
            round: round.to_string(),
            investor_id: request.investor_id.clone(),
            amount_pence: o.amount_pence,
            shares: o.shares,
            status: InvestmentStatus::Accepted,
            accepted_at_ms: o.accepted_at_ms,
            settled_at_ms: None,
            failure_reason: None,
        };
        return Ok((StatusCode::CREATED, Json(investment)).into_response());
    }
    let pounds = |pence: i64| format!("£{}.{:02}", pence / 100, pence % 100);
    let (field, message) = match o.code.as_str() {
        "round_full" if o.extra > 0 => (
            Some("amount_pence"),
            format!(
                "the round is nearly full: only {} ({} pence) remains",
                pounds(o.extra),
                o.extra
            ),
        ),
        "round_full" => (None, "the round is full".to_string()),
        "round_not_open" => (None, "the round is not open yet".to_string()),
        "round_closed" => (None, "the round is closed".to_string()),
        "pass_bound_to_other_investor" => (
            Some("pass"),
            "this pass is already used by another investor".to_string(),
        ),
        "idempotency_key_reused" => (
            Some("Idempotency-Key"),
            "this Idempotency-Key was used for a different investment; use a new key".to_string(),
        ),
        "amount_below_minimum" => (
            Some("amount_pence"),
            format!(
                "the minimum investment is {} ({} pence)",
                pounds(o.extra),
                o.extra
            ),
        ),
        "amount_not_whole_shares" => (
            Some("amount_pence"),
            format!(
                "amount must be a whole number of shares at {} pence each",
                o.extra
            ),
        ),
        "investor_limit_exceeded" => (
            Some("amount_pence"),
            format!(
                "this would exceed the per-investor maximum; you may invest up to {} more",
                pounds(o.extra)
            ),
        ),
        other => (None, format!("refused: {other}")),
    };
    let status = StatusCode::from_u16(o.status).unwrap_or(StatusCode::CONFLICT);
    let mut body = ApiError::new(o.code.clone(), message);
    body.field = field.map(str::to_string);
    let mut response = Failure::new(status, body).into_response();
    if o.code == "round_full" {
        response
            .headers_mut()
            .insert("x-crowdgate-remaining-pence", o.extra.max(0).into());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn investment_ids_are_stable_and_scoped() {
        let a = investment_id_for("r", "t1", "k");
        assert_eq!(a, investment_id_for("r", "t1", "k"));
        assert_ne!(a, investment_id_for("r", "t2", "k"));
        assert_ne!(
            investment_id_for("r", "t1k", ""),
            investment_id_for("r", "t1", "k")
        );
        assert!(a.starts_with("inv_") && a.len() == 28);
    }
}
