//! Passes: an admitted ticket claims its pass here, once; and a pre-queue
//! ticket learns the number it drew at opening.
//!
//! core signs the pass itself after recording the claim, so the claim and the
//! pass's expiry can never disagree, and the admission controller sees every
//! active investor.

use crate::auth;
use crate::error::Failure;
use crate::state::AppState;
use crate::store::{self, ClaimVerdict};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use crowdgate_protocol::api::{PassGrant, PrequeueNumber};
use crowdgate_protocol::{ErrorCode, Pass};

/// `POST /v1/rounds/{round}/passes` with `Authorization: Bearer <ticket>`.
pub async fn claim(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PassGrant>, Failure> {
    let store = state.round(&round).await?;
    let ticket = auth::verify_ticket(&state.keyring, &round, &headers, crate::clock::now_s())?;
    let Some(number) = ticket.number else {
        return Err(Failure::for_field(
            ErrorCode::NumberNotDrawn,
            "ticket",
            "this pre-queue ticket has no number yet; poll your status",
        ));
    };
    let now_ms = crate::clock::now_ms();
    let expires_at_ms = match store.claim_pass(&ticket.id, number, now_ms).await? {
        ClaimVerdict::Granted { expires_at_ms } => expires_at_ms,
        ClaimVerdict::NotAdmitted => {
            return Err(Failure::new(ErrorCode::NotAdmitted, "not your turn yet"));
        }
        ClaimVerdict::Expired { expired_at_ms } => {
            return Err(Failure::for_field(
                ErrorCode::PassExpired,
                "pass",
                format!(
                    "your turn ended {} seconds ago and a pass is claimed only once; join again to take a new place at the back of the queue",
                    now_ms.saturating_sub(expired_at_ms) / 1000
                ),
            ));
        }
        ClaimVerdict::RoomFull => {
            return Err(Failure::new(
                ErrorCode::RoomFullNow,
                "it is your turn, but the room is at its limit of active investors; retry in a moment",
            )
            .with_retry_after(2));
        }
        ClaimVerdict::RoundClosed => {
            return Err(Failure::new(ErrorCode::RoundClosed, "the round is closed"));
        }
    };
    let pass = Pass {
        round: round.clone(),
        ticket: ticket.id.clone(),
        number,
        issued_at: now_ms / 1000,
        expires_at: expires_at_ms / 1000,
        // The ticket's signed-in investor: the only one this pass invests for.
        investor: ticket.investor.clone(),
    };
    metrics::counter!("crowdgate_core_passes_claimed_total").increment(1);
    tracing::info!(round = %round, ticket = %ticket.id, number, "pass claimed");
    Ok(Json(PassGrant {
        pass: state.keyring.sign(&pass),
        expires_at: pass.expires_at,
    }))
}

/// `GET /v1/rounds/{round}/prequeue/{ticket}`: the number a pre-queue ticket
/// drew (409 until the round opens; 410 for one that left before the draw).
pub async fn prequeue_number(
    State(state): State<AppState>,
    Path((round, ticket)): Path<(String, String)>,
) -> Result<Json<PrequeueNumber>, Failure> {
    let store = state.round(&round).await?;
    crowdgate_protocol::token::check_ticket_id(&ticket)?;
    match store.prequeue_number(&ticket).await? {
        store::PrequeueNumber::NotDrawn => Err(Failure::new(
            ErrorCode::NotDrawnYet,
            "the round has not opened; numbers are drawn at opening",
        )),
        store::PrequeueNumber::NotInPrequeue => Err(Failure::not_found(format!(
            "ticket {ticket} is not in the pre-queue"
        ))),
        store::PrequeueNumber::Left => Err(Failure::for_field(
            ErrorCode::PassExpired,
            "ticket",
            "you left the queue before the draw, so this ticket has no number; join again to take a new place at the back",
        )),
        store::PrequeueNumber::Drawn(queue_number) => Ok(Json(PrequeueNumber {
            ticket_id: ticket,
            queue_number,
        })),
    }
}
