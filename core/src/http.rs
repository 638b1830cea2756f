//! core's HTTP surface: the routes and the layers around them (edge token,
//! load shedding, body limits, JSON errors).
//!
//! The `/v1` routes are protocol's [`route`] table, the same one the edge
//! builds its calls from. Handlers live in their own modules and reach the
//! shared [`AppState`] through [`crate::state`], never through this module.
//!
//! - `/v1/...` is called by the edge components (queue numbers, room state,
//!   investments) and requires an edge token ([`crate::auth`]). It is
//!   bounded: past `max_in_flight` concurrent requests core answers 503 with
//!   `Retry-After` at once instead of queueing.
//! - Bodies over [`MAX_BODY_BYTES`] get 413, and every error answer —
//!   axum's own rejections included — has the one JSON shape.
//! - `/ops/v1/...` requires an ops bearer token.
//! - `/healthz` and `/metrics` are for the platform.

use crate::error::Failure;
use crate::investments;
use crate::state::AppState;
use crate::store::Placement;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crowdgate_protocol::api::{Health, MAX_BODY_BYTES, QueuePlace};
use crowdgate_protocol::routes::route;
use crowdgate_protocol::{ErrorCode, RoomState};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(route::QUEUE, post(take_queue_place))
        .route(route::STATE, get(room_state))
        .route(route::PREQUEUE, get(crate::passes::prequeue_number))
        .route(route::PASSES, post(crate::passes::claim))
        .route(route::INVESTMENTS, post(investments::create))
        .route(route::INVESTMENT, get(investments::show))
        .route_layer(middleware::from_fn_with_state(state.clone(), shed_load))
        .route_layer(middleware::from_fn_with_state(
            state.edge_tokens.clone(),
            crate::auth::require_edge,
        ));
    Router::new()
        .merge(api)
        .merge(crate::ops::routes())
        .route("/healthz", get(health))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { Failure::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(reject_large_bodies))
        .layer(middleware::from_fn(crate::error::json_errors))
        .with_state(state)
}

/// Answers 413 from `Content-Length` alone, before any of the body is read.
/// (A chunked body is cut at the same size by [`DefaultBodyLimit`].)
async fn reject_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Failure::body_too_large().into_response();
    }
    next.run(request).await
}

/// Answers 503 at once when `max_in_flight` requests are already running.
async fn shed_load(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("crowdgate_core_shed_total").increment(1);
        return Failure::overloaded("core is at capacity; retry shortly, your place is kept")
            .into_response();
    };
    let started = std::time::Instant::now();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let endpoint = path
        .rsplit('/')
        .find(|s| !s.starts_with("inv_"))
        .unwrap_or("")
        .to_string();
    metrics::histogram!("crowdgate_core_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `POST /v1/rounds/{round}/queue`: a fresh place at the back of the queue.
async fn take_queue_place(
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
async fn room_state(
    State(state): State<AppState>,
    Path(round): Path<String>,
) -> Result<Json<RoomState>, Failure> {
    state.check_round(&round)?;
    match state.store.room_state(crate::clock::now_ms()).await? {
        Some(room) => Ok(Json(room)),
        None => Err(Failure::not_found(format!("round {round:?} is not seeded"))),
    }
}

async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(Health {
            status: "ok".into(),
            round: state.round().to_string(),
        })
        .into_response(),
        Err(err) => Failure::new(ErrorCode::Unhealthy, format!("redis: {err}"))
            .with_retry_after(1)
            .into_response(),
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}
