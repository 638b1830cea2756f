//! Passes: an admitted ticket claims its pass here, once; and a pre-queue
//! ticket learns the number it drew at opening.
//!
//! core signs the pass itself after recording the claim, so the claim and the
//! pass's expiry can never disagree, and the admission controller sees every
//! active investor.

use crate::error::Failure;
use crate::http::AppState;
use crate::investments::bearer_token;
use crate::store::Claim;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use crowdgate_protocol::api::PassGrant;
use crowdgate_protocol::{ApiError, Pass, Ticket, TokenError};

/// `POST /v1/rounds/{round}/passes` with `Authorization: Bearer <ticket>`.
pub async fn claim(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PassGrant>, Failure> {
    state.check_round(&round)?;
    let ticket = verify_ticket(&state, &headers)?;
    let Some(number) = ticket.number else {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            ApiError::for_field(
                "number_not_drawn",
                "ticket",
                "this pre-queue ticket has no number yet; poll your status",
            ),
        ));
    };
    let now_ms = crate::clock::now_ms();
    let expires_at_ms = match state.store.claim_pass(&ticket.id, number, now_ms).await? {
        Claim::Granted { expires_at_ms } => expires_at_ms,
        Claim::NotAdmitted => {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                ApiError::new("not_admitted", "not your turn yet"),
            ));
        }
        Claim::Expired { expired_at_ms } => {
            return Err(Failure::new(
                StatusCode::GONE,
                ApiError::for_field(
                    "pass_expired",
                    "pass",
                    format!(
                        "your turn ended {} seconds ago and a pass is claimed only once; join again to take a new place at the back of the queue",
                        now_ms.saturating_sub(expired_at_ms) / 1000
                    ),
                ),
            ));
        }
        Claim::RoomFull => {
            let mut failure = Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                ApiError::new(
                    "room_full_now",
                    "it is your turn, but the room is at its limit of active investors; retry in a moment",
                ),
            );
            failure.retry_after_s = Some(2);
            return Err(failure);
        }
        Claim::RoundClosed => {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                ApiError::new("round_closed", "the round is closed"),
            ));
        }
    };
    let pass = Pass {
        round: round.clone(),
        ticket: ticket.id.clone(),
        number,
        issued_at: now_ms / 1000,
        expires_at: expires_at_ms / 1000,
    };
    metrics::counter!("crowdgate_core_passes_claimed_total").increment(1);
    tracing::info!(round = %round, ticket = %ticket.id, number, "pass claimed");
    Ok(Json(PassGrant {
        pass: state.keyring.sign(&pass),
        expires_at: pass.expires_at,
    }))
}

/// `GET /v1/rounds/{round}/prequeue/{ticket}`: the number a pre-queue ticket
/// drew (409 until the round opens).
pub async fn prequeue_number(
    State(state): State<AppState>,
    Path((round, ticket)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, Failure> {
    state.check_round(&round)?;
    if ticket.len() > 64 || !ticket.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            ApiError::for_field("invalid_field", "ticket", "not a ticket id"),
        ));
    }
    match state.store.prequeue_number(&ticket).await? {
        None => Err(Failure::new(
            StatusCode::CONFLICT,
            ApiError::new(
                "not_drawn_yet",
                "the round has not opened; numbers are drawn at opening",
            ),
        )),
        Some(None) => Err(Failure::not_found(format!(
            "ticket {ticket} is not in the pre-queue"
        ))),
        Some(Some(number)) => Ok(Json(
            serde_json::json!({ "ticket_id": ticket, "queue_number": number }),
        )),
    }
}

fn verify_ticket(state: &AppState, headers: &HeaderMap) -> Result<Ticket, Failure> {
    let token = bearer_token(headers).ok_or_else(|| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            ApiError::for_field(
                "missing_ticket",
                "Authorization",
                "send the ticket as `Authorization: Bearer <ticket>`",
            ),
        )
    })?;
    state
        .keyring
        .verify::<Ticket>(token, &state.store.round, crate::clock::now_s())
        .map_err(|err| {
            let status = match err {
                TokenError::Malformed => StatusCode::BAD_REQUEST,
                TokenError::Expired => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            Failure::new(
                status,
                ApiError::for_field(err.code(), "ticket", format!("ticket refused: {err}")),
            )
        })
}
