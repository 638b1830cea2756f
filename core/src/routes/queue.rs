//! Queue places and the room state: what the edge asks core for each joiner
//! (one call per visitor), for its status cache (about once a second), and
//! for a visitor who gives their place up.

use crate::auth;
use crate::error::Failure;
use crate::state::AppState;
use crate::store::{Joined, Joiner, LeaveVerdict, Placement};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use crowdgate_protocol::api::{Left, PlaceRequest, QueuePlace};
use crowdgate_protocol::{ErrorCode, RoomState};

/// `POST /v1/rounds/{round}/queue` with `{"investor_id": ...}` (the edge
/// verified the investor's identity) or an empty body (an anonymous room):
/// the investor's live place again (200, `rejoined`), or a fresh place at
/// the back of the queue (201). Without an investor in a round that needs
/// one: 401 `identity_required`.
pub async fn take_place(
    State(state): State<AppState>,
    Path(round): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<QueuePlace>), Failure> {
    let store = state.round(&round).await?;
    let request = PlaceRequest::parse(&body)?;
    let joiner = request.investor_id.as_deref().map(|investor_id| Joiner {
        investor_id,
        max_investment_pence: request.max_investment_pence,
    });
    let joined = store
        .join(&crate::ids::new_ticket_id(), crate::clock::now_ms(), joiner)
        .await?;
    let Some(Joined {
        placement,
        ticket_id,
        rejoined,
    }) = joined
    else {
        return Err(Failure::for_field(
            ErrorCode::IdentityRequired,
            "investor_id",
            "this round's queue is for signed-in investors: sign in on the platform first",
        ));
    };
    let (queue_number, prequeue_entry) = match placement {
        Placement::Numbered(number) => (Some(number), None),
        Placement::Prequeue { entry } => (None, Some(entry)),
    };
    metrics::counter!(
        "crowdgate_core_joins_total",
        "prequeue" => queue_number.is_none().to_string(),
        "rejoined" => rejoined.to_string()
    )
    .increment(1);
    tracing::debug!(round = %round, ticket = %ticket_id, ?queue_number, rejoined, "queue place");
    let status = if rejoined {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(QueuePlace {
            ticket_id,
            queue_number,
            prequeue_entry,
            rejoined,
        }),
    ))
}

/// `GET /v1/rounds/{round}/state`: what the edge caches for status polls.
pub async fn room_state(
    State(state): State<AppState>,
    Path(round): Path<String>,
) -> Result<Json<RoomState>, Failure> {
    let store = state.round(&round).await?;
    match store.room_state(crate::clock::now_ms()).await? {
        Some(room) => Ok(Json(room)),
        None => Err(Failure::not_found(format!("round {round:?} is not seeded"))),
    }
}

/// `POST /v1/rounds/{round}/queue/leave` with `Authorization: Bearer
/// <ticket>`: the ticket's place is given up for good (200, [`Left`]; the
/// same answer again for a ticket that already left). The ticket's
/// signature is checked as for a pass claim, so nobody can give up someone
/// else's place. A ticket that claimed its pass keeps it: 409
/// `turn_under_way` while the pass lasts, 410 `pass_expired` after.
pub async fn leave(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Left>, Failure> {
    let store = state.round(&round).await?;
    let ticket = auth::verify_ticket(&state.keyring, &round, &headers, crate::clock::now_s())?;
    let now_ms = crate::clock::now_ms();
    let investor = ticket.investor.as_ref().map(|i| i.id.as_str());
    match store
        .leave(&ticket.id, ticket.number, investor, now_ms)
        .await?
    {
        LeaveVerdict::Left { queue_number } => {
            metrics::counter!("crowdgate_core_left_queue_total").increment(1);
            tracing::info!(round = %round, ticket = %ticket.id, ?queue_number, "left the queue");
            Ok(Json(Left {
                left: true,
                queue_number,
            }))
        }
        LeaveVerdict::Claimed { expires_at_ms } if now_ms < expires_at_ms => Err(Failure::new(
            ErrorCode::TurnUnderWay,
            "your turn is under way (you have your pass), so there is no place in the queue to leave; your pass stays yours until it expires",
        )),
        LeaveVerdict::Claimed { .. } => Err(Failure::for_field(
            ErrorCode::PassExpired,
            "pass",
            "your turn has already ended, so there is no place in the queue to leave; join again to take a new place at the back",
        )),
    }
}
