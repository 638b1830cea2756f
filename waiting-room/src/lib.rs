//! The waiting-room Spin component: the page investors watch, and the JSON API
//! behind it.
//!
//! - `GET /` — the page (HTML; `Accept: application/json` gets the status).
//! - `POST /api/join` — a ticket: the investor's place (the same one from
//!   any browser, device or app, and on refresh or rejoin), or a new one.
//! - `GET /api/status` — position, people ahead, ETA (from the admission
//!   rate actually achieved) and whether it is uncertain, a sell-out
//!   forecast when the round will probably sell out first, `poll_after_ms`,
//!   answered from the ticket and the cached room state: no call to core.
//! - `POST /api/pass` — a signed pass once the ticket's number is admitted.
//! - `POST /api/leave` — give the place up for good (the ticket as for
//!   status); `POST /leave` is the page's form for it.
//! - `GET /api/round` — public round progress (raised, cap, phase).
//! - `POST /invest` — the investment form for browsers without JavaScript;
//!   an accepted investment is sent on to `GET /receipt/<id>`, its receipt
//!   (for its own investor; reloading shows it again).
//! - `GET|POST /signin` — a browser arriving from the platform with its
//!   identity token (`identity_token`): checked, kept in an HttpOnly cookie,
//!   and sent on to the clean page (a refused one too: the token never stays
//!   in the address bar); `Accept: application/json` gets JSON. `POST
//!   /signout` (from the page itself, never another site) forgets both
//!   cookies.
//!
//! Every path is served under a round's base, `/r/{round}/…` (the page at
//! `/r/{round}/`), with its own room, tickets and passes; the bare paths
//! are the deployment's default round (`round_id`), if it names one.
//!
//! Joining needs a signed-in investor (unless the round is anonymous): the
//! identity token, checked against the platform's keys, names the investor,
//! and one investor holds one place however many browsers or apps they use.
//!
//! Only join (one core call per visitor), pass claims, leaving, and a stale
//! room-state refresh (about once a second per edge) reach core.

mod handlers;
mod page;
mod template;

use crowdgate_protocol::{ApiError, ErrorCode};
use spin_sdk::http::{IntoResponse, Method, Request};
use spin_sdk::http_component;
use spin_support::respond;

#[http_component]
async fn handle(request: Request) -> impl IntoResponse {
    let (settings, path) = match spin_support::Settings::for_path(request.path()) {
        Ok(found) => found,
        Err(err) => return respond::error(err),
    };
    if let Err(response) = respond::check_body_size(&request) {
        return response;
    }
    // A round named in the URL must be one core runs (the default round is
    // the deployment's own).
    if !settings.base.is_empty() {
        match spin_support::rounds::round_exists(&settings, spin_support::now_ms()).await {
            Ok(true) => {}
            Ok(false) => {
                return respond::error(ApiError::for_field(
                    ErrorCode::NotFound,
                    "round",
                    format!("no round {:?} here", settings.round),
                ));
            }
            Err(_) => return respond::unavailable("the waiting room is busy for a moment"),
        }
    }
    match (request.method(), path.as_str()) {
        (Method::Get, "/") => handlers::page(&settings, &request).await,
        (_, "/") => respond::method_not_allowed("GET"),
        (Method::Post, "/api/join") => handlers::join(&settings, &request).await,
        (_, "/api/join") => respond::method_not_allowed("POST"),
        (Method::Get, "/api/status") => handlers::status(&settings, &request).await,
        (_, "/api/status") => respond::method_not_allowed("GET"),
        (Method::Post, "/api/pass") => handlers::pass(&settings, &request).await,
        (_, "/api/pass") => respond::method_not_allowed("POST"),
        (Method::Post, "/api/leave") => handlers::leave(&settings, &request).await,
        (_, "/api/leave") => respond::method_not_allowed("POST"),
        (Method::Post, "/leave") => handlers::leave_form(&settings, &request).await,
        (_, "/leave") => respond::method_not_allowed("POST"),
        (Method::Get, "/api/round") => handlers::round(&settings).await,
        (Method::Get, "/api/draw") => handlers::draw(&settings, &request).await,
        (_, "/api/draw") => respond::method_not_allowed("GET"),
        (Method::Get | Method::Post, "/signin") => handlers::sign_in(&settings, &request).await,
        (Method::Get, "/signin/done") => handlers::sign_in_done(&settings, &request),
        (_, "/signin/done") => respond::method_not_allowed("GET"),
        (_, "/signin") => respond::method_not_allowed("GET, POST"),
        (Method::Post, "/signout") => {
            handlers::sign_out(&settings, &request, handlers::SignOutStep::Ticket)
        }
        (Method::Post, handlers::SIGN_OUT_IDENTITY_PATH) => {
            handlers::sign_out(&settings, &request, handlers::SignOutStep::Identity)
        }
        (_, "/signout" | handlers::SIGN_OUT_IDENTITY_PATH) => respond::method_not_allowed("POST"),
        (Method::Post, "/invest") => handlers::invest_form(&settings, &request).await,
        (_, "/invest") => respond::method_not_allowed("POST"),
        (method, path) if path.starts_with(handlers::RECEIPT_PREFIX) => match method {
            Method::Get => {
                let id = &path[handlers::RECEIPT_PREFIX.len()..];
                handlers::receipt(&settings, &request, id).await
            }
            _ => respond::method_not_allowed("GET"),
        },
        (_, "/api/round") => respond::method_not_allowed("GET"),
        _ => respond::not_found(request.path()),
    }
}
