//! Queue places and the room state: what the edge asks core for each joiner
//! (one call per visitor) and for its status cache (about once a second).

use crate::error::Failure;
use crate::state::AppState;
use crate::store::Placement;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crowdgate_protocol::RoomState;
use crowdgate_protocol::api::QueuePlace;

/// `POST /v1/rounds/{round}/queue`: a fresh place at the back of the queue.
pub async fn take_place(
    State(state): State<AppState>,
    Path(round): Path<String>,
) -> Result<(StatusCode, Json<QueuePlace>), Failure> {
    state.check_round(&round)?;
    let ticket_id = crate::ids::new_ticket_id();
    let placement = state
        .store
        .join(
            &ticket_id,
            crate::ids::lottery_score(),
            crate::clock::now_ms(),
        )
        .await?;
    let queue_number = match placement {
        Placement::Numbered(number) => Some(number),
        Placement::Prequeue => None,
    };
    metrics::counter!("crowdgate_core_joins_total", "prequeue" => queue_number.is_none().to_string()).increment(1);
    tracing::debug!(round = %round, ticket = %ticket_id, ?queue_number, "queue place issued");
    Ok((
        StatusCode::CREATED,
        Json(QueuePlace {
            ticket_id,
            queue_number,
        }),
    ))
}

/// `GET /v1/rounds/{round}/state`: what the edge caches for status polls.
pub async fn room_state(
    State(state): State<AppState>,
    Path(round): Path<String>,
) -> Result<Json<RoomState>, Failure> {
    state.check_round(&round)?;
    match state.store.room_state(crate::clock::now_ms()).await? {
        Some(room) => Ok(Json(room)),
        None => Err(Failure::not_found(format!("round {round:?} is not seeded"))),
    }
}
