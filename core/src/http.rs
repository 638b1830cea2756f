//! core's HTTP surface: the routes and the layers around them (edge token,
//! load shedding, body limits, JSON errors).
//!
//! The `/v1` routes are protocol's [`route`] table, the same one the edge
//! builds its calls from. Their handlers live in [`crate::routes`] (and the ops
//! API's in [`crate::ops`]) and reach the shared [`AppState`] through
//! [`crate::state`], never through this module.
//!
//! - `/v1/...` is called by the edge components (queue numbers, room state,
//!   investments) and requires an edge token ([`crate::auth`]). It is
//!   bounded: past `max_in_flight` concurrent requests core answers 503 with
//!   `Retry-After` at once instead of queueing.
//! - Bodies over [`MAX_BODY_BYTES`] get 413, and every error answer —
//!   axum's own rejections, and the requests hyper refuses before any route
//!   sees them (a malformed request line, too many headers), through
//!   `crowdgate_conn_io` as in the wasm host — has the one JSON shape.
//! - `/ops/v1/...` requires an ops bearer token.
//! - `/healthz` and `/metrics` are for the platform.

use crate::error::Failure;
use crate::routes::{investments, passes, queue, rounds};
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crowdgate_conn_io::{ConnIo, ConnState};
use crowdgate_protocol::ErrorCode;
use crowdgate_protocol::api::{Health, MAX_BODY_BYTES};
use crowdgate_protocol::routes::route;
use std::sync::Arc;
use tower::ServiceExt;

/// How long a client may take to send a request's head. Slow clients are
/// cut off rather than holding connections open (slowloris).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long open connections may keep running after shutdown is asked for.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// connections finish for a grace period. Our own accept loop rather than
/// `axum::serve`, for what that does not offer: a deadline on reading each
/// request's head, and hyper's own refusals answered in the one JSON error
/// shape (each connection's socket is a [`ConnIo`], told of every response
/// the router returns).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(err) => {
                    // Typically out of file descriptors: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnState::default());
        let service = hyper::service::service_fn({
            let (router, conn) = (router.clone(), conn.clone());
            move |request: hyper::Request<hyper::body::Incoming>| {
                let (router, conn) = (router.clone(), conn.clone());
                async move {
                    let response = router.oneshot(request.map(axum::body::Body::new)).await;
                    conn.response_returned();
                    response
                }
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(ConnIo::new(stream, conn)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(route::ROUNDS, get(rounds::list))
        .route(route::QUEUE, post(queue::take_place))
        .route(route::STATE, get(queue::room_state))
        .route(route::PREQUEUE, get(passes::prequeue_number))
        .route(route::PASSES, post(passes::claim))
        .route(route::LEAVE, post(queue::leave))
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

/// Counts each `/v1` request by its route (as written in the route table,
/// e.g. `/v1/rounds/{round}/state`: how many calls the edges make of each
/// kind is what tells whether the crowd stays at the edge), and answers 503
/// at once when `max_in_flight` requests are already running.
async fn shed_load(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_default();
    metrics::counter!("crowdgate_core_requests_total", "route" => route.clone()).increment(1);
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("crowdgate_core_shed_total").increment(1);
        return Failure::overloaded("core is at capacity; retry shortly, your place is kept")
            .into_response();
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!("crowdgate_core_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn health(State(state): State<AppState>) -> Response {
    match state.rounds.handle(&state.config_round).ping().await {
        Ok(()) => Json(Health {
            status: "ok".into(),
            round: state.config_round.clone(),
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
