//! The waiting room's endpoints.

use crate::page;
use crowdgate_protocol::api::{Joined, PassGrant, QueuePlace, VisitorState};
use crowdgate_protocol::{ApiError, Pass, Ticket, queue};
use spin_sdk::http::{Method, Request, Response};
use spin_support::credentials::{self, TICKET_COOKIE};
use spin_support::{Settings, core_client, now_ms, respond, room_cache};

/// How long a ticket stays valid: longer than any round's queue.
const TICKET_TTL_S: u64 = 24 * 3600;

pub async fn page(settings: &Settings, request: &Request) -> Response {
    let wants_json = request
        .header("accept")
        .and_then(|v| v.as_str())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return status(settings, request).await;
    }
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("content-security-policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
        .body(page::render(&settings.round))
        .build()
}

/// `POST /api/join`: keep a valid ticket's place, or take a new one.
pub async fn join(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    if let Some(token) = credentials::ticket_token(request)
        && let Ok(ticket) = settings.keyring.verify::<Ticket>(&token, &settings.round, now / 1000)
    {
        // Same ticket, same place: refreshing or rejoining never moves you.
        return joined(settings, request, token, &ticket, now, 200).await;
    }
    let place = match core_client::call(
        &settings.core_url,
        Method::Post,
        &format!("/v1/rounds/{}/queue", settings.round),
        &[],
        vec![],
    )
    .await
    {
        Ok(response) if *response.status() == 201 => serde_json::from_slice::<QueuePlace>(response.body()).ok(),
        Ok(response) => {
            return respond::error(
                502,
                ApiError::new("core_error", format!("core answered {} to join", response.status())),
            );
        }
        Err(_) => return respond::unavailable("the queue is busy; try joining again in a moment"),
    };
    let Some(place) = place else {
        return respond::error(502, ApiError::new("core_error", "core sent an unreadable queue place"));
    };
    let ticket = Ticket {
        round: settings.round.clone(),
        id: place.ticket_id,
        number: place.queue_number,
        issued_at: now / 1000,
        expires_at: now / 1000 + TICKET_TTL_S,
    };
    let token = settings.keyring.sign(&ticket);
    joined(settings, request, token, &ticket, now, 201).await
}

async fn joined(settings: &Settings, request: &Request, token: String, ticket: &Ticket, now: u64, code: u16) -> Response {
    let status = match room_cache::room_state(&settings.core_url, &settings.round, now).await {
        Ok(room) => queue::status_of(ticket.number, &room, jitter_seed(ticket, now)),
        Err(_) => return respond::unavailable("the queue is busy; try again in a moment"),
    };
    let mut response = respond::json(code, &Joined { ticket: token.clone(), status });
    let secure = if credentials::is_https(request) { "; Secure" } else { "" };
    response.set_header(
        "set-cookie",
        format!("{TICKET_COOKIE}={token}; Path=/; Max-Age={TICKET_TTL_S}; HttpOnly; SameSite=Lax{secure}"),
    );
    response
}

/// `GET /api/status`: answered from the ticket and the cached room state.
pub async fn status(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let ticket = match ticket_of(settings, request, now) {
        Ok(ticket) => ticket,
        Err(response) => return response,
    };
    match room_cache::room_state(&settings.core_url, &settings.round, now).await {
        Ok(room) => respond::json(200, &queue::status_of(ticket.number, &room, jitter_seed(&ticket, now))),
        Err(_) => respond::unavailable("status is unavailable for a moment; your place is kept"),
    }
}

/// `POST /api/pass`: a signed pass, once the ticket's number is admitted.
pub async fn pass(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let ticket = match ticket_of(settings, request, now) {
        Ok(ticket) => ticket,
        Err(response) => return response,
    };
    let room = match room_cache::room_state(&settings.core_url, &settings.round, now).await {
        Ok(room) => room,
        Err(_) => return respond::unavailable("passes are unavailable for a moment; your place is kept"),
    };
    let status = queue::status_of(ticket.number, &room, 0);
    if status.state != VisitorState::Admitted {
        return respond::error(
            409,
            ApiError::new(
                "not_admitted",
                format!("not your turn yet: {} people ahead (state {:?})", status.people_ahead, status.state),
            ),
        );
    }
    let expires_at = now / 1000 + room.pass_ttl_seconds.max(30);
    let pass = Pass {
        round: settings.round.clone(),
        ticket: ticket.id.clone(),
        number: ticket.number,
        issued_at: now / 1000,
        expires_at,
    };
    respond::json(200, &PassGrant { pass: settings.keyring.sign(&pass), expires_at })
}

/// `GET /api/round`: public progress of the round.
pub async fn round(settings: &Settings) -> Response {
    match room_cache::room_state(&settings.core_url, &settings.round, now_ms()).await {
        Ok(room) => respond::json(
            200,
            &serde_json::json!({
                "round": room.round,
                "phase": room.phase,
                "raised_pence": room.raised_pence,
                "cap_pence": room.cap_pence,
                "remaining_pence": (room.cap_pence - room.raised_pence).max(0),
                "investor_count": room.investor_count,
                "min_investment_pence": room.min_investment_pence,
                "max_investment_pence": room.max_investment_pence,
                "share_price_pence": room.share_price_pence,
            }),
        ),
        Err(_) => respond::unavailable("round figures are unavailable for a moment"),
    }
}

fn ticket_of(settings: &Settings, request: &Request, now: u64) -> Result<Ticket, Response> {
    let Some(token) = credentials::ticket_token(request) else {
        return Err(respond::error(
            401,
            ApiError::for_field("missing_ticket", "ticket", "no ticket: join the queue first (POST /api/join)"),
        ));
    };
    credentials::verify::<Ticket>(&settings.keyring, &token, &settings.round, now / 1000, "ticket")
        .map_err(|(code, body)| respond::error(code, body))
}

/// Different for each ticket and each second, so polls spread out.
fn jitter_seed(ticket: &Ticket, now_ms: u64) -> u64 {
    ticket.number.wrapping_mul(0x9E37_79B9) ^ (now_ms / 1000)
}
