//! The waiting room's endpoints. Every call to core goes through the typed
//! [`CoreClient`]; the no-JavaScript invest form goes through the same
//! investment [`gateway`] as the edge; identity tokens are checked by
//! [`IdentitySettings`] (the platform's keys) and nowhere else.

use crate::page;
use crowdgate_identity::Identity;
use crowdgate_protocol::api::{
    DrawStatus, IdentityMode, Investment, Joined, RoundProgress, SignedIn, Status, VisitorState,
};
use crowdgate_protocol::attempt::Attempt;
use crowdgate_protocol::invest::{InvestRequest, parse_pounds};
use crowdgate_protocol::{
    ApiError, ErrorCode, InvestmentId, Investor, RoomPhase, RoomState, Ticket, queue,
};
use spin_sdk::http::{Request, Response};
use spin_support::credentials::{self, IDENTITY_COOKIE};
use spin_support::identity::{self, IdentitySettings};
use spin_support::{CoreClient, CoreError, Settings, gateway, now_ms, respond, room_cache};

/// How long a ticket stays valid: longer than any round's queue.
const TICKET_TTL_S: u64 = 24 * 3600;

/// The query parameter or form field an arriving browser brings its
/// identity token in (`/signin?identity_token=…`).
const IDENTITY_TOKEN_FIELD: &str = "identity_token";

/// `GET /`: the page, with the visitor's status rendered in (so it works
/// without JavaScript); `Accept: application/json` gets the status itself.
/// A platform linking straight to `/?identity_token=…` is signed in first.
pub async fn page(settings: &Settings, request: &Request) -> Response {
    if query_param(request, IDENTITY_TOKEN_FIELD).is_some() {
        return sign_in(settings, request).await;
    }
    if wants_json(request) {
        return status(settings, request).await;
    }
    let now = now_ms();
    let mut reissued = None;
    let mut investor = None;
    let mut ticket_token = None;
    // `ticket_of` sets aside a ticket of someone other than the investor
    // this browser signed in as since: then that person's place is shown
    // (joining fetches it).
    let mut current = match ticket_of(settings, request, now).ok() {
        Some((ticket, token)) => {
            let had_number = ticket.number.is_some();
            investor = ticket.investor.clone();
            match status_of(settings, ticket, token, now).await {
                Ok((status, token)) => {
                    if !had_number && status.queue_number.is_some() {
                        reissued = Some(token.clone());
                    }
                    ticket_token = Some(token);
                    Some(status)
                }
                Err(_) => None,
            }
        }
        None => None,
    };
    // An admitted visitor's pass is claimed now, as the script does at
    // once: the page without JavaScript can then say when it expires, and
    // the place is theirs for the pass's lifetime, not the claim window's.
    let mut pass_expires_at = None;
    let mut spent = None;
    if let (Some(status), Some(token)) = (&current, &ticket_token)
        && status.state == VisitorState::Admitted
    {
        match CoreClient::new(settings).claim_pass(token).await {
            Ok(grant) => pass_expires_at = Some(grant.expires_at),
            Err(CoreError::Refused(refusal)) if refusal.body.error == ErrorCode::PassExpired => {
                spent = Some(refusal.body.message);
            }
            // Not claimable just now: the form claims it when used.
            Err(_) => {}
        }
    }
    if spent.is_some() {
        current = None;
    }
    let room = room_cache::room_state(settings, now).await.ok();
    // Before joining, the identity the browser signed in with says who it is.
    let mut sign_in = None;
    if investor.is_none() {
        let anonymous_room = room
            .as_ref()
            .is_some_and(|r| r.identity == IdentityMode::Anonymous);
        match signed_in(settings, request, now).await {
            Ok(Some(identity)) => investor = Some(investor_of(&identity)),
            Ok(None) if anonymous_room => {}
            Ok(None) => sign_in = Some(SignInNeeded::new(settings, SIGN_IN_FIRST)),
            Err(err) => sign_in = Some(SignInNeeded::new(settings, &err.message)),
        }
    }
    let view = PageView {
        room: room.as_ref(),
        status: current.as_ref(),
        message: spent.as_deref(),
        investor: investor.as_ref(),
        sign_in: sign_in.as_ref(),
        pass_expires_at,
        ..PageView::default()
    };
    let mut response = html_page(settings, &view, now, 200);
    if spent.is_some() {
        // The turn is over and this ticket with it (as for `/api/pass`).
        forget_ticket_cookie(settings, &mut response, request);
    } else if let Some(token) = reissued {
        set_ticket_cookie(settings, &mut response, request, &token);
    }
    response
}

/// Whether the caller asked for JSON (`Accept: application/json`).
fn wants_json(request: &Request) -> bool {
    request
        .header("accept")
        .and_then(|v| v.as_str())
        .is_some_and(|a| a.contains("application/json"))
}

/// The first words of a visitor who has not signed in.
const SIGN_IN_FIRST: &str = "You need to sign in to join the queue.";

/// What the page shows, gathered by a handler.
#[derive(Default)]
struct PageView<'a> {
    room: Option<&'a RoomState>,
    status: Option<&'a Status>,
    message: Option<&'a str>,
    investor: Option<&'a Investor>,
    sign_in: Option<&'a SignInNeeded>,
    receipt: Option<&'a Investment>,
    /// When the visitor's pass expires (Unix seconds), once claimed.
    pass_expires_at: Option<u64>,
    /// What the visitor typed into the no-JavaScript form, kept when the
    /// form comes back (busy, refused) so they need not type it again.
    amount: Option<&'a str>,
    /// The no-JavaScript form's idempotency key to keep: after a busy
    /// answer pressing Invest again must be the same attempt, never a
    /// second investment. `None`: a fresh key.
    form_key: Option<&'a str>,
}

/// Why the visitor must sign in, and where.
struct SignInNeeded {
    url: Option<String>,
    reason: String,
}

impl SignInNeeded {
    fn new(settings: &Settings, reason: &str) -> SignInNeeded {
        SignInNeeded {
            url: identity::sign_in_url(settings),
            reason: reason.to_string(),
        }
    }
}

fn html_page(settings: &Settings, view: &PageView<'_>, now: u64, code: u16) -> Response {
    let form_key = match view.form_key {
        Some(key) => key.to_string(),
        None => format!("nojs-{now:x}"),
    };
    let sign_in_url = identity::sign_in_url(settings);
    let view = page::View {
        room: view.room,
        round_id: &settings.round,
        base: &settings.base,
        status: view.status,
        message: view.message,
        form_key: &form_key,
        investor: view.investor,
        sign_in: view.sign_in.map(|s| page::SignIn {
            url: s.url.as_deref(),
            reason: &s.reason,
        }),
        sign_in_url: sign_in_url.as_deref(),
        receipt: view.receipt,
        pass_expires_at: view.pass_expires_at,
        amount: view.amount,
        now_s: now / 1000,
    };
    Response::builder()
        .status(code)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        )
        // The page may be reached with a token in its URL: never pass it on.
        .header("referrer-policy", "no-referrer")
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

/// `GET /signin?identity_token=…` or `POST /signin` (form field
/// `identity_token`): a browser arriving from the platform. The token is
/// checked, kept in an HttpOnly cookie for as long as it is valid, and the
/// browser is sent on (through [`sign_in_done`]) to the clean page, so the
/// token stays neither in the address bar nor in history. A refused token
/// is sent on too, to `/signin?refused=<code>`: the page with the reason
/// and the way back to the platform's sign-in (never an anonymous place),
/// and the token out of the address bar. Asked for JSON (`Accept:
/// application/json`), the answer is [`SignedIn`] (and the cookie), or the
/// one JSON error naming `identity_token`.
pub async fn sign_in(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let json = wants_json(request);
    let token = match query_param(request, IDENTITY_TOKEN_FIELD) {
        Some(token) => Some(token),
        None if from_html_form(request) => form_field(request, IDENTITY_TOKEN_FIELD),
        None => None,
    };
    let Some(token) = token else {
        if json {
            return respond::error(ApiError::for_field(
                ErrorCode::IdentityRequired,
                IDENTITY_TOKEN_FIELD,
                "no identity token: send it as identity_token (query or form field)",
            ));
        }
        let refused = query_param(request, REFUSED_FIELD).and_then(|code| ErrorCode::parse(&code));
        let (reason, code) = sign_in_reason(refused);
        return sign_in_page(settings, request, now, reason, code).await;
    };
    let identity = match verify_identity(settings, &token, now).await {
        Ok(identity) => identity,
        Err(err) if json => return refuse_sign_in_json(request, err),
        Err(err) => return refuse_sign_in(settings, request, err.error),
    };
    let mut response = if json {
        respond::json(
            200,
            &SignedIn {
                investor_id: identity.investor_id.clone(),
                investor_name: identity.name.clone(),
                expires_at: identity.expires_at,
            },
        )
    } else {
        redirect(settings, 303, "/signin/done")
    };
    response.set_header("referrer-policy", "no-referrer");
    let lifetime_s = identity.expires_at.saturating_sub(now / 1000).max(1);
    response.set_header(
        "set-cookie",
        credentials::set_cookie(request, IDENTITY_COOKIE, &token, lifetime_s),
    );
    response
}

/// The query parameter a refused sign-in is sent on with: the error code,
/// never the token or a free text (so the URL cannot put words on the page).
const REFUSED_FIELD: &str = "refused";

/// A refused browser sign-in: 303 to `/signin?refused=<code>`, so the token
/// leaves the address bar (and history) as after a good one. A token
/// refused for itself is dropped from the cookie too.
fn refuse_sign_in(settings: &Settings, request: &Request, code: ErrorCode) -> Response {
    let mut response = redirect(settings, 303, &format!("/signin?{REFUSED_FIELD}={code}"));
    response.set_header("referrer-policy", "no-referrer");
    if (400..500).contains(&code.http_status()) {
        forget_identity_cookie(&mut response, request);
    }
    response
}

/// A refused sign-in asked for as JSON: the one error shape, naming the
/// field the token came in.
fn refuse_sign_in_json(request: &Request, mut err: ApiError) -> Response {
    let code = err.http_status();
    if matches!(
        err.error,
        ErrorCode::IdentityExpired | ErrorCode::IdentityInvalid
    ) {
        err.field = Some(IDENTITY_TOKEN_FIELD.to_string());
    }
    let mut response = respond::error(err);
    if code == 503 {
        // The provider's keys are away for a moment: retry.
        response.set_header("retry-after", "1");
    }
    if (400..500).contains(&code) {
        forget_identity_cookie(&mut response, request);
    }
    response
}

/// What the sign-in page says after a refusal with `code` (the script's
/// `SIGN_IN_REASONS` say the same), and its status.
fn sign_in_reason(code: Option<ErrorCode>) -> (&'static str, u16) {
    match code {
        Some(ErrorCode::IdentityExpired) => ("Your sign-in has expired: sign in again.", 401),
        Some(ErrorCode::IdentityInvalid) => ("Your sign-in was not accepted: sign in again.", 401),
        Some(ErrorCode::Unavailable) => (
            "Sign-in could not be checked just now: sign in again in a moment.",
            503,
        ),
        Some(ErrorCode::Misconfigured) => (
            "Sign-in is not set up correctly on this waiting room: try again later.",
            500,
        ),
        _ => (SIGN_IN_FIRST, 401),
    }
}

/// An empty redirect to `path` (from `/`) in the request's round, never
/// cached.
fn redirect(settings: &Settings, code: u16, path: &str) -> Response {
    Response::builder()
        .status(code)
        .header("location", settings.url(path))
        .header("cache-control", "no-store")
        .body(Vec::new())
        .build()
}

/// The page saying why the visitor must sign in (and, for a refused
/// identity, dropping its cookie, so it is not presented again).
async fn sign_in_page(
    settings: &Settings,
    request: &Request,
    now: u64,
    reason: &str,
    code: u16,
) -> Response {
    let needed = SignInNeeded::new(settings, reason);
    // The round's name and figures, as on every page (when core answers).
    let room = room_cache::room_state(settings, now).await.ok();
    let view = PageView {
        room: room.as_ref(),
        sign_in: Some(&needed),
        ..PageView::default()
    };
    let mut response = html_page(settings, &view, now, code);
    if (400..500).contains(&code) {
        forget_identity_cookie(&mut response, request);
    }
    if code == 503 {
        response.set_header("retry-after", "1");
    }
    response
}

/// `GET /signin/done`, where a sign-in redirects: a ticket this browser
/// still holds for another investor is forgotten (a Spin response carries
/// one `Set-Cookie`, and the sign-in's was the identity). Otherwise that
/// ticket would come back once the new, short-lived identity expires: on a
/// shared computer, the previous person's place and pass. Then on to `/`.
pub fn sign_in_done(settings: &Settings, request: &Request) -> Response {
    let mut response = redirect(settings, 303, "/");
    // A ticket cookie that `ticket_of` refuses — someone else's (it checks
    // the identity cookie just set), or one that no longer verifies — goes.
    let held = credentials::cookie(request, &settings.ticket_cookie()).is_some();
    if held && ticket_of(settings, request, now_ms()).is_err() {
        forget_ticket_cookie(settings, &mut response, request);
    }
    response
}

/// `POST /signout`: forgets this browser's ticket, then (`POST
/// /signout/identity`, where this redirects with 307, so the browser posts
/// again) its identity. Two steps because a Spin response carries one
/// `Set-Cookie`; both are POSTs, and both refuse a request another site
/// sent ([`same_site`]), so no other page can sign a visitor out (a GET, an
/// image or a link changes nothing). The investor's place stays theirs:
/// signing in again finds it.
pub fn sign_out(settings: &Settings, request: &Request, step: SignOutStep) -> Response {
    if let Err(refusal) = same_site(request) {
        return respond::error(refusal);
    }
    let mut response = match step {
        SignOutStep::Ticket => redirect(settings, 307, SIGN_OUT_IDENTITY_PATH),
        SignOutStep::Identity => redirect(settings, 303, "/"),
    };
    match step {
        SignOutStep::Ticket => forget_ticket_cookie(settings, &mut response, request),
        SignOutStep::Identity => forget_identity_cookie(&mut response, request),
    }
    response
}

/// The second step of signing out.
pub const SIGN_OUT_IDENTITY_PATH: &str = "/signout/identity";

/// Which cookie a sign-out step forgets.
pub enum SignOutStep {
    Ticket,
    Identity,
}

/// Refuses (403 `cross_site_request`) a request that another site made a
/// browser send. Browsers say where a request comes from in
/// `Sec-Fetch-Site`; one too old to send it still sends `Origin` on a
/// cross-origin POST, which must then be this host. A request with
/// neither comes from no web page (curl, an app) and may go ahead. The
/// cookies' `SameSite=Lax` is no help here: a cross-site POST carries no
/// cookie, but its answer's `Set-Cookie` would still clear them.
fn same_site(request: &Request) -> Result<(), ApiError> {
    let refuse = || {
        ApiError::for_field(
            ErrorCode::CrossSiteRequest,
            "origin",
            "this request came from another site; sign out from the waiting room's own page",
        )
    };
    match credentials::header(request, "sec-fetch-site") {
        Some("same-origin" | "same-site" | "none") => return Ok(()),
        Some(_) => return Err(refuse()),
        None => {}
    }
    let Some(origin) = credentials::header(request, "origin") else {
        return Ok(());
    };
    // The authority the request was made to, as Spin reports it (hosts
    // need not pass `Host` on to a component); schemes are not compared,
    // since TLS may end in front of the edge.
    let authority = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        rest.split('/').next().unwrap_or("").to_ascii_lowercase()
    };
    let ours = credentials::header(request, "spin-full-url")
        .or_else(|| credentials::header(request, "host"))
        .map(authority);
    match ours {
        Some(ours) if origin.contains("://") && authority(origin) == ours => Ok(()),
        _ => Err(refuse()),
    }
}

/// `POST /api/join`: the investor's place — kept across refreshes, tabs,
/// browsers, devices and apps — or a new one.
///
/// - An identity token (bearer JWT or the sign-in cookie) is checked first:
///   a bad one is refused (401, with the sign-in link), never ignored.
/// - A valid ticket of the same investor (or, without an identity, any
///   valid ticket) is the same place: no call to core.
/// - Otherwise core gives the investor's live place, or a new one; without
///   an identity only in an anonymous room.
pub async fn join(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let identity = match signed_in(settings, request, now).await {
        Ok(identity) => identity,
        Err(err) => return refuse_join(settings, request, err, now).await,
    };
    let room = match room_state(settings, now).await {
        Ok(room) => room,
        Err(response) => return response,
    };
    if let Ok((ticket, token)) = ticket_of(settings, request, now) {
        // With an identity, the ticket must say exactly what it does (the
        // same investor, name and limit): a new sign-in with a changed limit
        // goes to core, which records it, and the ticket is signed afresh.
        let same_place = match (&identity, &ticket.investor) {
            (Some(identity), Some(holder)) => *holder == investor_of(identity),
            (Some(_), None) => false,
            (None, holder) => holder.is_some() || room.identity == IdentityMode::Anonymous,
        };
        if same_place {
            // Same ticket, same place: refreshing or rejoining never moves you.
            return joined(settings, request, token, ticket, now, 200).await;
        }
    }
    if identity.is_none() && room.identity == IdentityMode::Required {
        // No full stop: the sign-in link follows ("… the queue at <url>").
        let refusal = ApiError::for_field(
            ErrorCode::IdentityRequired,
            "identity",
            SIGN_IN_FIRST.trim_end_matches('.'),
        );
        let refusal =
            identity::with_sign_in_link(refusal, identity::sign_in_url(settings).as_deref());
        return refuse_join(settings, request, refusal, now).await;
    }
    if room_cache::core_is_away(settings, now_ms()) {
        // Core just failed to give the room state (perhaps this very join
        // waited out its deadline): asking it for the place too would make
        // the visitor wait a second deadline.
        return respond::unavailable("the queue is busy; try joining again in a moment");
    }
    let investor = identity.as_ref().map(investor_of);
    let place = match CoreClient::new(settings)
        .take_queue_place(investor.as_ref())
        .await
    {
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
        entry: place.prequeue_entry,
        issued_at: now / 1000,
        expires_at: now / 1000 + TICKET_TTL_S,
        investor,
    };
    let token = settings.keyring.sign(&ticket);
    let code = if place.rejoined { 200 } else { 201 };
    joined(settings, request, token, ticket, now, code).await
}

/// A join refused for want of a good identity: JSON for apps and the
/// page's script, the sign-in page for a browser without JavaScript; a bad
/// identity cookie is dropped either way.
async fn refuse_join(settings: &Settings, request: &Request, err: ApiError, now: u64) -> Response {
    if from_html_form(request) {
        let status = err.http_status();
        return sign_in_page(settings, request, now, &err.message, status).await;
    }
    let from_cookie = matches!(
        credentials::identity_token(request),
        Some((_, credentials::From::Cookie))
    );
    let unavailable = err.error == ErrorCode::Unavailable;
    let status = err.http_status();
    let mut response = respond::error(err);
    if unavailable {
        // The provider's keys are away for a moment, like core: retry.
        response.set_header("retry-after", "1");
    }
    // Only a token refused for itself is dropped; one that could not be
    // checked just now (503) or a deployment fault (500) is kept.
    if from_cookie && (400..500).contains(&status) {
        forget_identity_cookie(&mut response, request);
    }
    response
}

/// The visitor's verified identity: `None` when they present none; a
/// refusal (401 with the sign-in link, 503 when the keys are unavailable)
/// when the one presented is not good.
async fn signed_in(
    settings: &Settings,
    request: &Request,
    now: u64,
) -> Result<Option<Identity>, ApiError> {
    match credentials::identity_token(request) {
        None => Ok(None),
        Some((token, _)) => verify_identity(settings, &token, now).await.map(Some),
    }
}

async fn verify_identity(settings: &Settings, token: &str, now: u64) -> Result<Identity, ApiError> {
    match IdentitySettings::load(settings)? {
        Some(identity) => identity.verify(token, now).await,
        None => Err(ApiError::new(
            ErrorCode::Misconfigured,
            "this waiting room has no identity provider configured (variable identity_issuer)",
        )),
    }
}

/// What a ticket and pass carry of an identity.
fn investor_of(identity: &Identity) -> Investor {
    Investor {
        id: identity.investor_id.clone(),
        name: identity.name.clone(),
        max_investment_pence: identity.max_investment_pence,
    }
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
            .header("location", settings.url("/"))
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
    set_ticket_cookie(settings, &mut response, request, &token);
    response
}

/// The no-JavaScript invest form's fields. There is no investor field: the
/// investment is always for the signed-in investor on the ticket.
#[derive(serde::Deserialize)]
struct InvestForm {
    amount: String,
    key: String,
}

/// `POST /invest` (an HTML form, for browsers without JavaScript): claims
/// the pass, then invests through the same gateway as the edge's
/// `POST /api/investments` (every check, nothing repaired: a key the API
/// would refuse is refused here too). Accepted: 303 to the receipt
/// (`/receipt/<id>`, [`receipt`]), so reloading shows it again instead of
/// posting again. Otherwise the page says why, with the amount as typed;
/// when busy, with the same idempotency key too, so pressing Invest again
/// is the same attempt.
pub async fn invest_form(settings: &Settings, request: &Request) -> Response {
    const BUSY: &str =
        "Investments are busy right now; your place is kept — press Invest again in a moment.";
    let now = now_ms();
    let room = room_cache::room_state(settings, now).await.ok();
    let (ticket, token) = match ticket_of(settings, request, now) {
        Ok(found) => found,
        Err(_) => {
            let view = PageView {
                room: room.as_ref(),
                message: Some("Your ticket is missing or expired: join the queue again."),
                ..PageView::default()
            };
            return html_page(settings, &view, now, 200);
        }
    };
    let investor = ticket.investor.clone();
    let status = status_of(settings, ticket, token.clone(), now)
        .await
        .ok()
        .map(|(s, _)| s);
    let form = serde_urlencoded::from_bytes::<InvestForm>(request.body()).ok();
    let typed = form.as_ref().map(|f| f.amount.as_str());
    // `kept_key`: the attempt's own key, when it may have to be repeated.
    let show = |message: &str, kept_key: Option<&str>, pass_expires_at: Option<u64>| {
        let view = PageView {
            room: room.as_ref(),
            status: status.as_ref(),
            message: Some(message),
            investor: investor.as_ref(),
            pass_expires_at,
            amount: typed,
            form_key: kept_key,
            ..PageView::default()
        };
        html_page(settings, &view, now, 200)
    };
    let Some(form) = &form else {
        return show("Enter an amount to invest.", None, None);
    };
    let amount_pence = match parse_pounds(&form.amount) {
        Ok(pence) => pence,
        Err(err) => return show(&err.message, None, None),
    };
    let grant = match CoreClient::new(settings).claim_pass(&token).await {
        Ok(grant) => grant,
        Err(CoreError::Refused(refusal)) if refusal.body.error == ErrorCode::PassExpired => {
            // The turn is over and this ticket is spent: drop it, so the
            // page offers "Join the queue" instead of a form that cannot work.
            let view = PageView {
                room: room.as_ref(),
                message: Some(&refusal.body.message),
                investor: investor.as_ref(),
                ..PageView::default()
            };
            let mut page = html_page(settings, &view, now, 200);
            forget_ticket_cookie(settings, &mut page, request);
            return page;
        }
        Err(CoreError::Refused(refusal)) => return show(&refusal.body.message, None, None),
        Err(CoreError::Unavailable(_)) => return show(BUSY, Some(&form.key), None),
    };
    let pass_expires_at = Some(grant.expires_at);
    let body = serde_json::to_vec(&InvestRequest {
        investor_id: None,
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
        Ok(investment) => redirect(settings, 303, &receipt_path(&investment.investment_id)),
        Err(CoreError::Refused(refusal)) => show(
            &format!("Not accepted: {}", refusal.body.message),
            None,
            pass_expires_at,
        ),
        Err(CoreError::Unavailable(_)) => show(BUSY, Some(&form.key), pass_expires_at),
    }
}

/// Where the no-JavaScript receipt of investment `id` is shown.
fn receipt_path(id: &str) -> String {
    format!("{RECEIPT_PREFIX}{id}")
}

/// The receipt pages' path, before the investment id.
pub const RECEIPT_PREFIX: &str = "/receipt/";

/// `GET /receipt/<id>`: the receipt of an investment, to its own investor
/// only (the ticket's, or the signed-in identity's; anyone else gets 404,
/// as for an id that does not exist), with its status as core has it now:
/// reloading shows it again and shows it settle. While the visitor's pass
/// still runs, it offers to invest more.
pub async fn receipt(settings: &Settings, request: &Request, id: &str) -> Response {
    let now = now_ms();
    let room = room_cache::room_state(settings, now).await.ok();
    let ticket = ticket_of(settings, request, now).ok();
    let investor = match &ticket {
        Some((ticket, _)) => ticket.investor.clone(),
        None => signed_in(settings, request, now)
            .await
            .ok()
            .flatten()
            .map(|identity| investor_of(&identity)),
    };
    let page = |message: &str, code: u16| {
        let view = PageView {
            room: room.as_ref(),
            message: Some(message),
            investor: investor.as_ref(),
            ..PageView::default()
        };
        html_page(settings, &view, now, code)
    };
    const NO_RECEIPT: &str = "There is no receipt to show here: a receipt is shown only to the investor who made the investment, signed in.";
    let (Ok(id), Some(holder)) = (InvestmentId::parse(id), &investor) else {
        return page(NO_RECEIPT, 404);
    };
    let investment = match CoreClient::new(settings).investment(&id).await {
        Ok(investment) if investment.investor_id == holder.id => investment,
        Ok(_) => return page(NO_RECEIPT, 404),
        Err(CoreError::Refused(refusal)) if refusal.status == 404 => {
            return page(NO_RECEIPT, 404);
        }
        Err(_) => {
            let mut busy = page(
                &format!(
                    "Your receipt cannot be shown just now; your investment is safe. Reload this page in a moment (reference {id})."
                ),
                503,
            );
            busy.set_header("retry-after", "1");
            return busy;
        }
    };
    // Investing more needs this ticket's pass, still running.
    let mut pass_expires_at = None;
    if let Some((_, token)) = &ticket
        && let Ok(grant) = CoreClient::new(settings).claim_pass(token).await
        && grant.expires_at > now / 1000
    {
        pass_expires_at = Some(grant.expires_at);
    }
    let view = PageView {
        room: room.as_ref(),
        investor: investor.as_ref(),
        receipt: Some(&investment),
        pass_expires_at,
        ..PageView::default()
    };
    html_page(settings, &view, now, 200)
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
                set_ticket_cookie(settings, &mut response, request, &token);
            }
            response
        }
        Err(response) => response,
    }
}

/// The status of `ticket`, and its token (re-issued once a pre-queue
/// ticket's number is drawn: computed here from the published draw, so the
/// opening sends none of the waiting crowd to core).
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
            let status = queue::prequeue_status(&room, now, jitter_seed(&ticket, now));
            return Ok((with_investor(status, &ticket), token));
        }
        None => match drawn_number(settings, &ticket, &room).await {
            Ok(Some(number)) => number,
            // Opening is under way (the draw is sealed on core's next step).
            Ok(None) => {
                let status = queue::prequeue_status(&room, now, jitter_seed(&ticket, now));
                return Ok((with_investor(status, &ticket), token));
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
    let status = queue::status_of(number, &room, jitter_seed(&ticket, now));
    Ok((with_investor(status, &ticket), token))
}

/// `status` naming the ticket's investor (for "Investing as …").
fn with_investor(mut status: Status, ticket: &Ticket) -> Status {
    if let Some(investor) = &ticket.investor {
        status.investor_id = Some(investor.id.clone());
        status.investor_name = investor.name.clone();
    }
    status
}

/// The number a pre-queue ticket drew; `None` while the draw is not
/// published (opening is under way: the room state shows it within about
/// a second). Computed from the ticket's signed entry and the draw in the
/// cached room state: no call to core. Only a ticket signed before entries
/// existed (it has none) asks core, which answers 410 `pass_expired` for
/// one that left before the draw (passed on as it is: join again).
async fn drawn_number(
    settings: &Settings,
    ticket: &Ticket,
    room: &RoomState,
) -> Result<Option<u64>, Response> {
    if let Some(entry) = ticket.entry {
        let Some(revealed) = room.draw.as_ref().and_then(|d| d.revealed.as_ref()) else {
            return Ok(None);
        };
        return match revealed.number(entry) {
            Ok(number) => Ok(Some(number)),
            Err(err) => {
                // A signed entry outside the sealed pre-queue, or a key core
                // published wrong: the deployment's fault, not the visitor's.
                eprintln!("waiting-room: the pre-queue draw cannot number entry {entry}: {err}");
                Err(respond::error(ApiError::new(
                    ErrorCode::CoreError,
                    "the pre-queue draw could not be read; your place is kept",
                )))
            }
        };
    }
    CoreClient::new(settings)
        .prequeue_number(&ticket.id)
        .await
        .map_err(|err| match err {
            CoreError::Refused(refusal) if refusal.body.error == ErrorCode::PassExpired => {
                refusal.into_response()
            }
            err => answer_core_error(
                err,
                "a pre-queue number",
                "the draw is busy; your place is kept — try again in a moment",
            ),
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
                forget_ticket_cookie(settings, &mut response, request);
            }
            response
        }
    }
}

/// `POST /api/leave` (the ticket as for `/api/status`: `Authorization:
/// Bearer <ticket>` or the cookie): the visitor gives up their place for
/// good. core checks the ticket and records it (leaving again answers the
/// same): 200 `{"left": true, "queue_number": n}`, and the ticket cookie is
/// forgotten, so joining again takes a new place at the back. A ticket that
/// claimed its pass keeps it: 409 `turn_under_way`, or 410 `pass_expired`
/// once its turn is over (the spent ticket's cookie goes too).
pub async fn leave(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let (_, token) = match ticket_of(settings, request, now) {
        Ok(found) => found,
        Err(response) => return response,
    };
    match CoreClient::new(settings).leave_queue(&token).await {
        Ok(left) => {
            let mut response = respond::json(200, &left);
            forget_ticket_cookie_if(settings, &mut response, request, &token);
            response
        }
        Err(err) => {
            let spent = err.code() == Some(ErrorCode::PassExpired);
            let mut response = err.into_response(LEAVE_BUSY);
            if spent {
                forget_ticket_cookie_if(settings, &mut response, request, &token);
            }
            response
        }
    }
}

/// What a visitor who could not leave because core is away is told (as an
/// API message, and on the page).
const LEAVE_BUSY: &str =
    "leaving the queue is unavailable for a moment; your place is kept — try again";
const LEAVE_BUSY_PAGE: &str =
    "Leaving the queue is unavailable for a moment; your place is kept — try again.";

/// `POST /leave`: the page's "Leave the queue" form (for browsers without
/// JavaScript; the script posts to `/api/leave`). Left: 303 back to `/`
/// with the ticket cookie forgotten. Without a usable ticket there is
/// nothing to leave: the same. core refusing (the turn is under way) shows
/// the page with why; core away: the page says so, 503 with `Retry-After`.
pub async fn leave_form(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let home = |request: &Request| {
        let mut response = redirect(settings, 303, "/");
        if credentials::cookie(request, &settings.ticket_cookie()).is_some() {
            forget_ticket_cookie(settings, &mut response, request);
        }
        response
    };
    let Ok((ticket, token)) = ticket_of(settings, request, now) else {
        return home(request);
    };
    let (message, code, spent) = match CoreClient::new(settings).leave_queue(&token).await {
        Ok(_) => return home(request),
        Err(CoreError::Refused(refusal)) => {
            // Over (410): the ticket is spent, so the page offers a new
            // place instead of a status that cannot change.
            let spent = refusal.body.error == ErrorCode::PassExpired;
            (refusal.body.message, 200, spent)
        }
        Err(CoreError::Unavailable(_)) => (LEAVE_BUSY_PAGE.to_string(), 503, false),
    };
    let room = room_cache::room_state(settings, now).await.ok();
    let investor = ticket.investor.clone();
    let status = if spent {
        None
    } else {
        status_of(settings, ticket, token.clone(), now)
            .await
            .ok()
            .map(|(s, _)| s)
    };
    let view = PageView {
        room: room.as_ref(),
        status: status.as_ref(),
        message: Some(&message),
        investor: investor.as_ref(),
        ..PageView::default()
    };
    let mut response = html_page(settings, &view, now, code);
    if code == 503 {
        response.set_header("retry-after", "1");
    }
    if spent {
        forget_ticket_cookie_if(settings, &mut response, request, &token);
    }
    response
}

/// `GET /api/round`: public progress of the round.
pub async fn round(settings: &Settings) -> Response {
    match room_state(settings, now_ms()).await {
        Ok(room) => respond::json(200, &RoundProgress::of(&room)),
        Err(response) => response,
    }
}

/// `GET /api/draw`: the pre-queue draw as published — its commitment
/// before opening, and from the seal the secret, entries digest, key and
/// size — with the visitor's own entry and drawn number when they present
/// a pre-queue ticket, so anyone can check the number they were given
/// (docs/ARCHITECTURE.md, "The pre-queue draw").
pub async fn draw(settings: &Settings, request: &Request) -> Response {
    let now = now_ms();
    let room = match room_state(settings, now).await {
        Ok(room) => room,
        Err(response) => return response,
    };
    let Some(draw) = room.draw.clone() else {
        return respond::error(ApiError::new(
            ErrorCode::NotFound,
            "this round has no published pre-queue draw",
        ));
    };
    let your_entry = ticket_of(settings, request, now)
        .ok()
        .and_then(|(ticket, _)| ticket.entry);
    let your_number = match (your_entry, &draw.revealed) {
        (Some(entry), Some(revealed)) => revealed.number(entry).ok(),
        _ => None,
    };
    respond::json(
        200,
        &DrawStatus {
            draw,
            your_entry,
            your_number,
        },
    )
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
    let Some(token) = credentials::ticket_token(settings, request) else {
        return Err(respond::error(ApiError::for_field(
            ErrorCode::MissingTicket,
            "ticket",
            "no ticket: join the queue first (POST /api/join)",
        )));
    };
    let ticket =
        credentials::verify::<Ticket>(&settings.keyring, &token, &settings.round, now / 1000)
            .map_err(respond::error)?;
    // A browser that signed in since as someone else: this ticket is not
    // theirs (joining fetches their own place). The subject is read
    // unverified because it only ever sets a ticket aside.
    let browser_ticket =
        credentials::cookie(request, &settings.ticket_cookie()).as_ref() == Some(&token);
    let signed_in_as = credentials::cookie(request, IDENTITY_COOKIE)
        .and_then(|identity| crowdgate_identity::unverified_subject(&identity));
    if let (true, Some(subject), Some(holder)) = (browser_ticket, signed_in_as, &ticket.investor)
        && subject != holder.id
    {
        return Err(respond::error(ApiError::for_field(
            ErrorCode::MissingTicket,
            "ticket",
            "this browser is now signed in as someone else: join the queue as them",
        )));
    }
    Ok((ticket, token))
}

fn set_ticket_cookie(settings: &Settings, response: &mut Response, request: &Request, token: &str) {
    response.set_header(
        "set-cookie",
        credentials::set_cookie(request, &settings.ticket_cookie(), token, TICKET_TTL_S),
    );
}

/// Expires the ticket cookie when it holds `token` (a ticket just given up
/// or spent); a browser's cookie for another place, or an app's bearer
/// ticket, leaves it alone.
fn forget_ticket_cookie_if(
    settings: &Settings,
    response: &mut Response,
    request: &Request,
    token: &str,
) {
    if credentials::cookie(request, &settings.ticket_cookie()).as_deref() == Some(token) {
        forget_ticket_cookie(settings, response, request);
    }
}

/// Expires the ticket cookie (a spent ticket: its turn has ended).
fn forget_ticket_cookie(settings: &Settings, response: &mut Response, request: &Request) {
    response.set_header(
        "set-cookie",
        credentials::set_cookie(request, &settings.ticket_cookie(), "", 0),
    );
}

/// Expires the identity cookie (a bad or expired token, or signing out).
fn forget_identity_cookie(response: &mut Response, request: &Request) {
    response.set_header(
        "set-cookie",
        credentials::set_cookie(request, IDENTITY_COOKIE, "", 0),
    );
}

/// A query parameter of the request's URL, decoded.
fn query_param(request: &Request, name: &str) -> Option<String> {
    urlencoded_field(request.query().as_bytes(), name)
}

/// A field of a form-encoded body.
fn form_field(request: &Request, name: &str) -> Option<String> {
    urlencoded_field(request.body(), name)
}

/// The first non-empty value of `name` in `application/x-www-form-urlencoded` text.
fn urlencoded_field(encoded: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(encoded)
        .ok()?
        .into_iter()
        .find_map(|(key, value)| (key == name && !value.is_empty()).then_some(value))
}

/// Different for each ticket and each second, so polls spread out.
fn jitter_seed(ticket: &Ticket, now_ms: u64) -> u64 {
    let id_hash = ticket
        .id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    id_hash ^ (now_ms / 1000)
}
