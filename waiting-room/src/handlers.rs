//! The waiting room's endpoints. Every call to core goes through the typed
//! [`CoreClient`]; the no-JavaScript invest form goes through the same
//! investment [`gateway`] as the edge.

use crate::page;
use crowdgate_protocol::api::{Joined, RoundProgress, Status};
use crowdgate_protocol::attempt::Attempt;
use crowdgate_protocol::invest::{InvestRequest, parse_pounds};
use crowdgate_protocol::{ApiError, ErrorCode, RoomPhase, RoomState, Ticket, queue};
use spin_sdk::http::{Request, Response};
use spin_support::credentials::{self, TICKET_COOKIE};
use spin_support::{CoreClient, CoreError, Settings, gateway, now_ms, respond, room_cache};

/// How long a ticket stays valid: longer than any round's queue.
const TICKET_TTL_S: u64 = 24 * 3600;

/// `GET /`: the page, with the visitor's status rendered in (so it works
/// without JavaScript); `Accept: application/json` gets the status itself.
pub async fn page(settings: &Settings, request: &Request) -> Response {
    let wants_json = request
        .header("accept")
        .and_then(|v| v.as_str())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return status(settings, request).await;
    }
    let now = now_ms();
    let mut reissued = None;
    let current = match ticket_of(settings, request, now) {
        Ok((ticket, token)) => {
            let had_number = ticket.number.is_some();
            match status_of(settings, ticket, token, now).await {
                Ok((status, token)) => {
                    if !had_number && status.queue_number.is_some() {
                        reissued = Some(token);
                    }
                    Some(status)
                }
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    let mut response = html_page(settings, current.as_ref(), None, now);
    if let Some(token) = reissued {
        set_ticket_cookie(&mut response, request, &token);
    }
    response
}

fn html_page(
    settings: &Settings,
    status: Option<&Status>,
    message: Option<&str>,
    now: u64,
) -> Response {
    let form_key = format!("nojs-{now:x}");
    let view = page::View {
        round: &settings.round,
        status,
        message,
        form_key: &form_key,
    };
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        )
        .body(page::render(&view))
        .build()
}

/// Whether the request came from a plain HTML form (no JavaScript).
fn from_html_form(request: &Request) -> bool {
    request
        .header("content-type")
        .and_then(|v| v.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
}

/// `POST /api/join`: keep a valid ticket's place, or take a new one.
pub async fn join(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    if let Some(token) = credentials::ticket_token(request)
        && let Ok(ticket) = settings
            .keyring
            .verify::<Ticket>(&token, &settings.round, now / 1000)
    {
        // Same ticket, same place: refreshing or rejoining never moves you.
        return joined(settings, request, token, ticket, now, 200).await;
    }
    let place = match CoreClient::new(settings).take_queue_place().await {
        Ok(place) => place,
        Err(err) => {
            return answer_core_error(
                err,
                "join",
                "the queue is busy; try joining again in a moment",
            );
        }
    };
    let ticket = Ticket {
        round: settings.round.clone(),
        id: place.ticket_id,
        number: place.queue_number,
        issued_at: now / 1000,
        expires_at: now / 1000 + TICKET_TTL_S,
    };
    let token = settings.keyring.sign(&ticket);
    joined(settings, request, token, ticket, now, 201).await
}

async fn joined(
    settings: &Settings,
    request: &Request,
    token: String,
    ticket: Ticket,
    now: u64,
    code: u16,
) -> Response {
    let (status, token) = match status_of(settings, ticket, token, now).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let mut response = if from_html_form(request) {
        // A browser without JavaScript: back to the page, now with a ticket.
        Response::builder()
            .status(303)
            .header("location", "/")
            .body(Vec::new())
            .build()
    } else {
        respond::json(
            code,
            &Joined {
                ticket: token.clone(),
                status,
            },
        )
    };
    set_ticket_cookie(&mut response, request, &token);
    response
}

/// The no-JavaScript invest form's fields.
#[derive(serde::Deserialize)]
struct InvestForm {
    investor_id: String,
    amount: String,
    key: String,
}

/// `POST /invest` (an HTML form, for browsers without JavaScript): claims
/// the pass, then invests through the same gateway as the edge's
/// `POST /api/investments` (every check, nothing repaired: a key the API
/// would refuse is refused here too), and shows the result on the page.
pub async fn invest_form(settings: &Settings, request: &Request) -> Response {
    const BUSY: &str =
        "Investments are busy right now; your place is kept — press Invest again in a moment.";
    let now = now_ms();
    let (ticket, token) = match ticket_of(settings, request, now) {
        Ok(found) => found,
        Err(_) => {
            return html_page(
                settings,
                None,
                Some("Your ticket is missing or expired: join the queue again."),
                now,
            );
        }
    };
    let status = status_of(settings, ticket, token.clone(), now)
        .await
        .ok()
        .map(|(s, _)| s);
    let show = |message: &str| html_page(settings, status.as_ref(), Some(message), now);
    let Ok(form) = serde_urlencoded::from_bytes::<InvestForm>(request.body()) else {
        return show("Fill in your investor id and an amount.");
    };
    let amount_pence = match parse_pounds(&form.amount) {
        Ok(pence) => pence,
        Err(err) => return show(&err.message),
    };
    let grant = match CoreClient::new(settings).claim_pass(&token).await {
        Ok(grant) => grant,
        Err(CoreError::Refused(refusal)) if refusal.body.error == ErrorCode::PassExpired => {
            // The turn is over and this ticket is spent: drop it, so the
            // page offers "Join the queue" instead of a form that cannot work.
            let mut page = html_page(settings, None, Some(&refusal.body.message), now);
            forget_ticket_cookie(&mut page, request);
            return page;
        }
        Err(CoreError::Refused(refusal)) => return show(&refusal.body.message),
        Err(CoreError::Unavailable(_)) => return show(BUSY),
    };
    let body = serde_json::to_vec(&InvestRequest {
        investor_id: form.investor_id.trim().to_string(),
        amount_pence,
    })
    .expect("an investment request serialises");
    let attempt = Attempt {
        pass: Some(&grant.pass),
        content_type: Some("application/json"),
        idempotency_key: Some(&form.key),
        body: &body,
    };
    match gateway::invest(settings, attempt).await {
        Ok(investment) => show(&format!(
            "Accepted: £{}.{:02} for {} shares (reference {}). It settles in a moment.",
            investment.amount_pence / 100,
            investment.amount_pence % 100,
            investment.shares,
            investment.investment_id
        )),
        Err(CoreError::Refused(refusal)) => {
            show(&format!("Not accepted: {}", refusal.body.message))
        }
        Err(CoreError::Unavailable(_)) => show(BUSY),
    }
}

/// `GET /api/status`: answered from the ticket and the cached room state.
pub async fn status(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let (ticket, token) = match ticket_of(settings, request, now) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let number_was_known = ticket.number.is_some();
    match status_of(settings, ticket, token, now).await {
        Ok((mut status, token)) => {
            if number_was_known {
                return respond::json(200, &status);
            }
            // A pre-queue ticket that just learned its number (or still waits).
            let reissued = status.queue_number.is_some();
            if reissued {
                status.ticket = Some(token.clone());
            }
            let mut response = respond::json(200, &status);
            if reissued {
                set_ticket_cookie(&mut response, request, &token);
            }
            response
        }
        Err(response) => response,
    }
}

/// The status of `ticket`, and its token (re-issued if a pre-queue ticket
/// learned its number: one call to core, once per visitor).
async fn status_of(
    settings: &Settings,
    mut ticket: Ticket,
    token: String,
    now: u64,
) -> Result<(Status, String), Response> {
    let room = room_state(settings, now).await?;
    let number = match ticket.number {
        Some(number) => number,
        None if room.phase == RoomPhase::Scheduled => {
            return Ok((
                queue::prequeue_status(&room, now, jitter_seed(&ticket, now)),
                token,
            ));
        }
        None => match drawn_number(settings, &ticket.id).await {
            Ok(Some(number)) => number,
            // Opening is under way (the draw is sealed on core's next step).
            Ok(None) => {
                return Ok((
                    queue::prequeue_status(&room, now, jitter_seed(&ticket, now)),
                    token,
                ));
            }
            Err(response) => return Err(response),
        },
    };
    let token = if ticket.number.is_none() {
        ticket.number = Some(number);
        settings.keyring.sign(&ticket)
    } else {
        token
    };
    Ok((
        queue::status_of(number, &room, jitter_seed(&ticket, now)),
        token,
    ))
}

/// Asks core which number a pre-queue ticket drew; `None` while not drawn.
async fn drawn_number(settings: &Settings, ticket_id: &str) -> Result<Option<u64>, Response> {
    CoreClient::new(settings)
        .prequeue_number(ticket_id)
        .await
        .map_err(|err| {
            answer_core_error(
                err,
                "a pre-queue number",
                "the draw is busy; your place is kept — try again in a moment",
            )
        })
}

/// The answer when core did not give what the visitor's request needs (a
/// queue place, a drawn number): 503 when core is away; any refusal is
/// core's problem, not the visitor's, so 502 `core_error`.
fn answer_core_error(err: CoreError, what: &str, busy: &str) -> Response {
    match err {
        CoreError::Unavailable(_) => respond::unavailable(busy),
        CoreError::Refused(refusal) if refusal.body.error == ErrorCode::CoreError => {
            refusal.into_response()
        }
        CoreError::Refused(refusal) => {
            eprintln!(
                "waiting-room: core refused {what}: {} {}",
                refusal.status, refusal.body
            );
            respond::error(ApiError::new(
                ErrorCode::CoreError,
                format!("core answered {} to {what}", refusal.status),
            ))
        }
    }
}

/// `POST /api/pass`: core records the claim (once per ticket) and signs the
/// pass; its answer is passed on.
pub async fn pass(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let (_, token) = match ticket_of(settings, request, now) {
        Ok(found) => found,
        Err(response) => return response,
    };
    match CoreClient::new(settings).claim_pass(&token).await {
        Ok(grant) => respond::json(200, &grant),
        Err(err) => {
            let spent = err.code() == Some(ErrorCode::PassExpired);
            let mut response =
                err.into_response("passes are unavailable for a moment; your place is kept");
            if spent {
                // The turn is over and the ticket with it: a browser that
                // joins next takes a new place instead of this spent one.
                forget_ticket_cookie(&mut response, request);
            }
            response
        }
    }
}

/// `GET /api/round`: public progress of the round.
pub async fn round(settings: &Settings) -> Response {
    match room_state(settings, now_ms()).await {
        Ok(room) => respond::json(200, &RoundProgress::of(&room)),
        Err(response) => response,
    }
}

async fn room_state(settings: &Settings, now: u64) -> Result<RoomState, Response> {
    room_cache::room_state(settings, now).await.map_err(|_| {
        respond::unavailable("the waiting room is busy for a moment; your place is kept")
    })
}

/// The visitor's verified ticket and its token.
fn ticket_of(
    settings: &Settings,
    request: &Request,
    now: u64,
) -> Result<(Ticket, String), Response> {
    let Some(token) = credentials::ticket_token(request) else {
        return Err(respond::error(ApiError::for_field(
            ErrorCode::MissingTicket,
            "ticket",
            "no ticket: join the queue first (POST /api/join)",
        )));
    };
    credentials::verify::<Ticket>(&settings.keyring, &token, &settings.round, now / 1000)
        .map(|ticket| (ticket, token))
        .map_err(respond::error)
}

fn set_ticket_cookie(response: &mut Response, request: &Request, token: &str) {
    ticket_cookie(response, request, token, TICKET_TTL_S);
}

/// Expires the ticket cookie (a spent ticket: its turn has ended).
fn forget_ticket_cookie(response: &mut Response, request: &Request) {
    ticket_cookie(response, request, "", 0);
}

/// The `cg_ticket` cookie holding `value` for `max_age_s` (`Secure` over https).
fn ticket_cookie(response: &mut Response, request: &Request, value: &str, max_age_s: u64) {
    let secure = if credentials::is_https(request) {
        "; Secure"
    } else {
        ""
    };
    response.set_header(
        "set-cookie",
        format!(
            "{TICKET_COOKIE}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}"
        ),
    );
}

/// Different for each ticket and each second, so polls spread out.
fn jitter_seed(ticket: &Ticket, now_ms: u64) -> u64 {
    let id_hash = ticket
        .id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    id_hash ^ (now_ms / 1000)
}
