//! The ops API: authenticated control and inspection of a round.
//!
//! Every route here requires an ops bearer token ([`authenticate_ops`]).

use crate::error::Failure;
use crate::http::AppState;
use crate::investments;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use crowdgate_protocol::ApiError;

/// The ops routes, merged into core's router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ops/v1/rounds/{round}", get(ops_round))
}

/// `GET /ops/v1/rounds/{round}`: every live figure of the round.
async fn ops_round(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, Failure> {
    let operator = authenticate_ops(&state, &headers)?;
    state.check_round(&round)?;
    let fields = state.store.round_fields().await?;
    let published = state.store.settlement_stream_len().await?;
    tracing::info!(round = %round, operator, "ops read round");
    Ok(Json(serde_json::json!({
        "round": round,
        "fields": fields,
        "settlement_stream_length": published,
    })))
}

/// The operator's name for a valid ops token, or 401.
pub fn authenticate_ops<'a>(state: &'a AppState, headers: &axum::http::HeaderMap) -> Result<&'a str, Failure> {
    let unauthorized = |message: &str| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            ApiError::for_field("unauthorized", "Authorization", message),
        )
    };
    let token = investments::bearer_token(headers).ok_or_else(|| unauthorized("send `Authorization: Bearer <ops token>`"))?;
    state.ops_tokens.identify(token).ok_or_else(|| unauthorized("ops token not recognised"))
}

