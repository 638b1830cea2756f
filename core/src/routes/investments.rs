//! The invest endpoint: check the pass, validate the body, run the atomic
//! script, and turn its verdict into an HTTP answer.
//!
//! core trusts nothing the edge checked: the whole attempt (pass signature,
//! round and expiry, content type, `Idempotency-Key`, body) is checked again
//! here, by the same [`crate::auth::investment_attempt`] rules the edge uses.

use crate::auth;
use crate::error::Failure;
use crate::state::AppState;
use crate::store::{InvestVerdict, NewInvestment};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crowdgate_protocol::api::Investment;
use crowdgate_protocol::attempt::CheckedAttempt;
use crowdgate_protocol::money::pounds;
use crowdgate_protocol::routes::REMAINING_PENCE_HEADER;
use crowdgate_protocol::{ApiError, ErrorCode, InvestmentId};
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
    let store = state.round(&round).await?;
    let CheckedAttempt {
        pass,
        request,
        investor,
        investment_id,
        ..
    } = auth::investment_attempt(
        &state.keyring,
        &round,
        &headers,
        &body,
        crate::clock::now_s(),
    )?;
    let investment_id = investment_id.into_string();
    // The investor is the pass's signed-in one, never the body's.
    let fingerprint = fingerprint_of(&investor.id, request.amount_pence);
    let now_ms = crate::clock::now_ms();
    let new = NewInvestment {
        investment_id: &investment_id,
        ticket_id: &pass.ticket,
        investor_id: &investor.id,
        amount_pence: request.amount_pence,
        fingerprint: &fingerprint,
        now_ms,
        // Keep the binding a little past the pass so it cannot be rebound.
        // A pass lives at most a day (`pass_ttl_seconds`); the bound keeps
        // even a strangely signed one within what the script accepts.
        binding_ttl_s: pass
            .expires_at
            .saturating_sub(now_ms / 1000)
            .min(crate::round_config::MAX_PASS_TTL_SECONDS)
            + 60,
        investor_max_pence: investor.max_investment_pence,
    };

    // The investment id is derived from the request, so retrying after an
    // unclear failure can at worst replay the first attempt, never double it.
    let mut attempt = 1;
    let verdict = loop {
        match store.invest(&new).await {
            Ok(verdict) => break verdict,
            Err(err) if attempt < INVEST_ATTEMPTS && err.is_unclear() => {
                tracing::warn!(investment_id, attempt, error = %err, "invest call unclear, retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    };
    let (response, outcome) = respond(verdict);
    metrics::counter!("crowdgate_core_invest_total", "outcome" => outcome).increment(1);
    tracing::info!(
        round = %round, ticket = %pass.ticket, investment_id, status = response.status().as_u16(),
        outcome, amount_pence = request.amount_pence, "invest"
    );
    Ok(response)
}

/// `GET /v1/rounds/{round}/investments/{id}`
pub async fn show(
    State(state): State<AppState>,
    Path((round, id)): Path<(String, String)>,
) -> Result<Json<Investment>, Failure> {
    let store = state.round(&round).await?;
    let id = InvestmentId::parse(&id)?;
    match store.investment(id.as_str()).await? {
        Some(investment) => Ok(Json(investment)),
        None => Err(ApiError::investment_not_found(id.as_str(), &round).into()),
    }
}

fn fingerprint_of(investor_id: &str, amount_pence: i64) -> String {
    let digest = Sha256::new()
        .chain_update(investor_id)
        .chain_update([0])
        .chain_update(amount_pence.to_le_bytes())
        .finalize();
    crowdgate_protocol::hex::encode(&digest[..12])
}

/// The invest script's verdict as an HTTP answer — the one place a verdict
/// gets a status, a code and a message — and its outcome for metrics and
/// logs (`accepted`, `replayed`, or the error code). 201 with the
/// investment, new or replayed; otherwise the code's status, naming the
/// field at fault, and for a full round the pence left in
/// `x-crowdgate-remaining-pence`.
pub fn respond(verdict: InvestVerdict) -> (Response, &'static str) {
    let outcome = verdict.name();
    let left_under_cap = match verdict {
        InvestVerdict::RoundFull { left_pence } => Some(left_pence.max(0)),
        _ => None,
    };
    match refusal(verdict) {
        Ok(investment) => (
            (StatusCode::CREATED, Json(investment)).into_response(),
            outcome,
        ),
        Err(failure) => {
            let code = failure.body.error.as_str();
            let mut response = failure.into_response();
            if let Some(left) = left_under_cap {
                response
                    .headers_mut()
                    .insert(REMAINING_PENCE_HEADER, left.into());
            }
            (response, code)
        }
    }
}

/// The investment an accepted (or replayed) verdict made, or the refusal.
fn refusal(verdict: InvestVerdict) -> Result<Investment, Failure> {
    let amount = |code, message| Failure::for_field(code, "amount_pence", message);
    Err(match verdict {
        InvestVerdict::Accepted(investment) | InvestVerdict::Replayed(investment) => {
            return Ok(investment);
        }
        InvestVerdict::RoundFull { left_pence } if left_pence > 0 => amount(
            ErrorCode::RoundFull,
            format!(
                "the round is nearly full: only {} ({left_pence} pence) remains",
                pounds(left_pence)
            ),
        ),
        InvestVerdict::RoundFull { .. } => Failure::new(ErrorCode::RoundFull, "the round is full"),
        InvestVerdict::NotOpen => {
            Failure::new(ErrorCode::RoundNotOpen, "the round is not open yet")
        }
        InvestVerdict::Closed => Failure::new(ErrorCode::RoundClosed, "the round is closed"),
        InvestVerdict::PassBoundToOther => Failure::for_field(
            ErrorCode::PassBoundToOtherInvestor,
            "pass",
            "this pass is already used by another investor",
        ),
        InvestVerdict::KeyReused => Failure::for_field(
            ErrorCode::IdempotencyKeyReused,
            "Idempotency-Key",
            "this Idempotency-Key was used for a different investment; use a new key",
        ),
        InvestVerdict::BelowMinimum { minimum_pence } => amount(
            ErrorCode::AmountBelowMinimum,
            format!(
                "the minimum investment is {} ({minimum_pence} pence)",
                pounds(minimum_pence)
            ),
        ),
        InvestVerdict::NotWholeShares { share_price_pence } => amount(
            ErrorCode::AmountNotWholeShares,
            format!("amount must be a whole number of shares at {share_price_pence} pence each"),
        ),
        InvestVerdict::OverInvestorLimit { left_pence } if left_pence <= 0 => amount(
            ErrorCode::InvestorLimitExceeded,
            "you have reached your maximum investment in this round".to_string(),
        ),
        InvestVerdict::OverInvestorLimit { left_pence } => amount(
            ErrorCode::InvestorLimitExceeded,
            format!(
                "this would exceed your maximum investment in this round; you may invest up to {} more",
                pounds(left_pence)
            ),
        ),
    })
}
