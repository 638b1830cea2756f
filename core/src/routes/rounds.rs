//! `GET /v1/rounds`: the ids of every round core runs, live or archived,
//! which the edge caches to serve `/r/<round>/` for these only (an unknown
//! round's URL is answered at the edge, never passed on to core).

use crate::error::Failure;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use crowdgate_protocol::api::RoundIds;

/// `GET /v1/rounds`
pub async fn list(State(state): State<AppState>) -> Result<Json<RoundIds>, Failure> {
    let rounds = crowdgate_store::rounds::every_round(&mut state.rounds.redis().clone()).await?;
    Ok(Json(RoundIds { rounds }))
}
