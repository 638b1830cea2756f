//! The edge Spin component: the investment gateway in front of core.
//!
//! Each path is also served under a round's base, `/r/{round}/api/…`; the
//! bare paths are the deployment's default round
//! ([`spin_support::Settings::for_path`]).
//!
//! - `POST /api/investments` — through the one investment gateway
//!   ([`spin_support::gateway`]): the pass and the body are checked here, so
//!   forged passes and malformed requests never cost core anything, then
//!   core checks everything again and decides atomically.
//! - `GET /api/investments/{id}` — the caller's own investment's status
//!   (accepted, settled, failed), shown to its investor's pass or ticket.
//!
//! When core is unreachable, hung past `CORE_TIMEOUT` or shedding, the
//! answer is 503 with `Retry-After`:
//! the investor keeps their pass and place and retries with the same
//! `Idempotency-Key`, which can never invest twice.

use crowdgate_protocol::attempt::Attempt;
use crowdgate_protocol::routes::IDEMPOTENCY_KEY_HEADER;
use crowdgate_protocol::{ApiError, InvestmentId};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_support::credentials::{self, header};
use spin_support::{CoreClient, Settings, gateway, respond};

#[http_component]
async fn handle(request: Request) -> impl IntoResponse {
    let (settings, path) = match Settings::for_path(request.path()) {
        Ok(found) => found,
        Err(err) => return respond::error(err),
    };
    if let Err(response) = respond::check_body_size(&request) {
        return response;
    }
    match (request.method(), path.strip_prefix("/api/investments")) {
        (Method::Post, Some("" | "/")) => invest(&settings, &request).await,
        (_, Some("" | "/")) => respond::method_not_allowed("POST"),
        (Method::Get, Some(rest)) if rest.starts_with('/') => {
            show(&settings, &request, &rest[1..]).await
        }
        (_, Some(_)) => respond::method_not_allowed("GET"),
        _ => respond::not_found(request.path()),
    }
}

/// `POST /api/investments`: the request as it came, through the gateway.
async fn invest(settings: &Settings, request: &Request) -> Response {
    let pass = credentials::bearer(request);
    let attempt = Attempt {
        pass: pass.as_deref(),
        content_type: header(request, "content-type"),
        idempotency_key: header(request, IDEMPOTENCY_KEY_HEADER),
        body: request.body(),
    };
    match gateway::invest(settings, attempt).await {
        Ok(investment) => respond::json(201, &investment),
        Err(err) => err.into_response(
            "investments are busy right now; your pass and place are kept — try again in a moment",
        ),
    }
}

/// `GET /api/investments/{id}`: the investor's own investment. The caller
/// shows their pass or ticket (bearer, or the ticket cookie); another
/// investor's investment is 404, exactly like one that does not exist, so
/// ids reveal nothing about other people's money.
async fn show(settings: &Settings, request: &Request, id: &str) -> Response {
    let id = match InvestmentId::parse(id) {
        Ok(id) => id,
        Err(err) => return respond::error(err),
    };
    let holder = match credentials::holder(settings, request, spin_support::now_ms() / 1000) {
        Ok(holder) => holder,
        Err(err) => return respond::error(err),
    };
    let not_found = || respond::error(ApiError::investment_not_found(id.as_str(), &settings.round));
    match CoreClient::new(settings).investment(&id).await {
        Ok(investment) if Some(&investment.investor_id) == holder.as_ref().map(|i| &i.id) => {
            respond::json(200, &investment)
        }
        Ok(_) => not_found(),
        Err(err) => err.into_response("investment status is unavailable for a moment"),
    }
}
