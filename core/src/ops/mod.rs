//! The ops API: authenticated, audited control and inspection of a round, and
//! the live dashboard.
//!
//! Every `/ops/v1` route requires an ops bearer token ([`authenticate_ops`]);
//! the dashboard page itself (`GET /ops`) is static and asks for the token.
//!
//! # Layout
//! - [`controls`]: parsing and range-checking a change (pure), applying it
//!   through the store (`change.lua` checks the phase transition and the cap
//!   against live values and writes the change with its audit entry in one
//!   atomic step), and its verdict as an HTTP answer.
//! - [`rounds`]: the deployment's rounds: list, create, archive.
//! - [`status`]: the round's live figures (queue, money, settlement backlog).
//! - [`audit`]: the audit trail, newest first.
//! - [`dashboard`]: the self-contained HTML dashboard.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/ops` | dashboard |
//! | GET | `/ops/v1/rounds[?archived=true]` | every live round with its phase and figures |
//! | POST | `/ops/v1/rounds` | create a round (a round file's settings as JSON) |
//! | PATCH | `/ops/v1/rounds/{round}` | a scheduled round's terms (name, cap, limits, share price, identity, closing time) |
//! | POST | `/ops/v1/rounds/{round}/archive` | a closed round leaves the list |
//! | GET | `/ops/v1/rounds/{round}` | live figures |
//! | PATCH | `/ops/v1/rounds/{round}/admission` | rate, batch interval, max active, pass TTL |
//! | POST | `/ops/v1/rounds/{round}/pause` · `resume` · `close` | phase changes |
//! | POST | `/ops/v1/rounds/{round}/open` | open now, or `{"opens_at"}` later |
//! | PUT | `/ops/v1/rounds/{round}/cap` | `{"cap_pence"}` |
//! | GET | `/ops/v1/rounds/{round}/audit?limit=N` | audit entries, newest first |

pub mod audit;
pub mod controls;
pub mod dashboard;
pub mod rounds;
pub mod status;

use crate::error::Failure;
use crate::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Query, Request};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use crowdgate_protocol::{ApiError, ErrorCode};
use crowdgate_store::RoundStore;

/// The ops routes, merged into core's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ops", get(dashboard::page).fallback(method_not_allowed))
        .route("/ops/", get(dashboard::page).fallback(method_not_allowed))
        .route(
            "/ops/v1/rounds",
            get(rounds::list)
                .post(rounds::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/archive",
            post(rounds::archive).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}",
            get(status::show)
                .patch(rounds::edit)
                .fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/admission",
            patch(controls::admission).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/pause",
            post(controls::pause).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/resume",
            post(controls::resume).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/open",
            post(controls::open).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/close",
            post(controls::close).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/cap",
            put(controls::set_cap).fallback(method_not_allowed),
        )
        .route(
            "/ops/v1/rounds/{round}/audit",
            get(audit::list).fallback(method_not_allowed),
        )
        .route_layer(middleware::from_fn(refuse_unknown_query))
}

/// The query parameters each `/ops/v1` route takes; any other is refused.
/// `None`: the dashboard page, which a browser may open with any.
fn query_parameters(route: &str) -> Option<&'static [&'static str]> {
    match route {
        "/ops" | "/ops/" => None,
        "/ops/v1/rounds/{round}/audit" => Some(&["limit"]),
        "/ops/v1/rounds" => Some(&["archived"]),
        _ => Some(&[]),
    }
}

/// Refuses a query parameter the route does not take (422
/// `unknown_field` naming it), as an unknown body field is: a misspelt
/// `?limt=5` must not quietly mean the default.
async fn refuse_unknown_query(
    path: MatchedPath,
    request: Request,
    next: Next,
) -> Result<Response, Failure> {
    if let Some(allowed) = query_parameters(path.as_str()) {
        let Query(given) =
            Query::<Vec<(String, String)>>::try_from_uri(request.uri()).map_err(|_| {
                Failure::for_field(
                    ErrorCode::BadRequest,
                    "query",
                    "the query string is not valid",
                )
            })?;
        only_known(
            given.iter().map(|(name, _)| name.as_str()),
            allowed,
            "query parameter",
        )?;
    }
    Ok(next.run(request).await)
}

/// Refuses the first of `given` (a body's fields, a query's parameters: a
/// `kind`) that is not in `allowed`, naming it and what is taken instead.
pub(crate) fn only_known<'a>(
    mut given: impl Iterator<Item = &'a str>,
    allowed: &[&str],
    kind: &str,
) -> Result<(), ApiError> {
    match given.find(|name| !allowed.contains(name)) {
        None => Ok(()),
        Some(name) => {
            let expected = if allowed.is_empty() {
                format!("no {kind}s")
            } else {
                allowed.join(", ")
            };
            Err(ApiError::for_field(
                ErrorCode::UnknownField,
                name,
                format!("unknown {kind}; expected {expected}"),
            ))
        }
    }
}

/// A JSON 405 for a known ops path called with the wrong method.
async fn method_not_allowed() -> Failure {
    Failure::new(
        ErrorCode::MethodNotAllowed,
        "this ops endpoint does not take that method; see docs/OPS.md",
    )
}

/// Authenticates, then finds the round; the order keeps a 404 from telling
/// an unauthenticated caller which rounds exist.
pub(crate) async fn authorize<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    round: &str,
) -> Result<(&'a str, RoundStore), Failure> {
    let operator = authenticate_ops(state, headers)?;
    let store = state.round(round).await?;
    Ok((operator, store))
}

/// The operator's name for a valid ops token, or 401 (the check itself is
/// [`crate::auth::ops_operator`]).
pub fn authenticate_ops<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a str, Failure> {
    crate::auth::ops_operator(&state.ops_tokens, headers)
}
