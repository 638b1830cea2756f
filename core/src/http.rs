//! core's HTTP surface: the routes, shared state, and the load-shedding layer.
//!
//! - `/v1/...` is called by the edge components (queue numbers, room state,
//!   investments) and requires an edge token ([`crate::auth`]). It is
//!   bounded: past `max_in_flight` concurrent requests core answers 503 with
//!   `Retry-After` at once instead of queueing.
//! - Bodies over [`MAX_BODY_BYTES`] get 413, and every error answer —
//!   axum's own rejections included — has the one JSON shape.
//! - `/ops/v1/...` requires an ops bearer token.
//! - `/healthz` and `/metrics` are for the platform.

use crate::auth::NamedTokens;
use crate::error::Failure;
use crate::investments;
use crate::store::{Placement, RoundStore};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crowdgate_protocol::api::{MAX_BODY_BYTES, QueuePlace};
use crowdgate_protocol::{Keyring, RoomState};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: RoundStore,
    pub keyring: Keyring,
    pub ops_tokens: NamedTokens,
    /// Tokens the edge components present on `/v1` calls.
    pub edge_tokens: NamedTokens,
    pub metrics: Option<PrometheusHandle>,
    /// Permits for in-flight `/v1` requests.
    pub in_flight: Arc<Semaphore>,
    /// The ops API's Redis handle and change script.
    pub ops: crate::ops::OpsBackend,
}

impl AppState {
    /// core serves one round; any other round id is a 404.
    pub fn check_round(&self, round: &str) -> Result<(), Failure> {
        if round == self.store.round {
            Ok(())
        } else {
            Err(Failure::not_found(format!("no round {round:?} here")))
        }
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/rounds/{round}/queue", post(take_queue_place))
        .route("/v1/rounds/{round}/state", get(room_state))
        .route(
            "/v1/rounds/{round}/prequeue/{ticket}",
            get(crate::passes::prequeue_number),
        )
        .route("/v1/rounds/{round}/passes", post(crate::passes::claim))
        .route("/v1/rounds/{round}/investments", post(investments::create))
        .route(
            "/v1/rounds/{round}/investments/{id}",
            get(investments::show),
        )
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
        let mut failure =
            Failure::unavailable("core is at capacity; retry shortly, your place is kept");
        failure.body.error = "overloaded".into();
        return failure.into_response();
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
        Ok(()) => {
            Json(serde_json::json!({"status": "ok", "round": state.store.round})).into_response()
        }
        Err(err) => {
            let mut failure = Failure::unavailable(format!("redis: {err}"));
            failure.body.error = "unhealthy".into();
            failure.into_response()
        }
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}
