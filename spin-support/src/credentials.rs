//! Credentials presented by a visitor: tickets, passes and identity tokens.
//!
//! Browsers send the ticket as the round's ticket cookie
//! ([`crate::Settings::ticket_cookie`]: `cg_ticket` for the default round)
//! and their identity token (set at sign-in, one for every round) as
//! `cg_identity`; apps send either as
//! `Authorization: Bearer <token>`. Our own tokens (`v1.…`) and the
//! platform's JWTs are told apart by shape, so one header serves both. The
//! bearer header wins over a cookie of the same kind, so an app's explicit
//! choice is never overridden by a stale cookie.
//! Parsing the header and refusing a token are protocol's
//! ([`crowdgate_protocol::request`], [`Keyring::check`]), so core answers
//! the same token with the same status.

use crowdgate_protocol::token::{Claims, is_crowdgate_token};
use crowdgate_protocol::{ApiError, Credential, Investor, Keyring, Pass, Ticket};
use spin_sdk::http::Request;

/// The identity token a browser brought from the platform (HttpOnly, for
/// as long as the token is valid).
pub const IDENTITY_COOKIE: &str = "cg_identity";

/// The raw bearer token, if any.
pub fn bearer(request: &Request) -> Option<String> {
    crowdgate_protocol::request::bearer_token(header(request, "authorization")).map(str::to_string)
}

/// A header's value, when it is text.
pub fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request.header(name).and_then(|v| v.as_str())
}

/// The value of cookie `name`, if any.
pub fn cookie(request: &Request, name: &str) -> Option<String> {
    let header = request.header("cookie")?.as_str()?;
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

/// The ticket token: a bearer that is not an identity JWT first (so a
/// malformed one is refused as a malformed ticket, as core refuses it), then
/// the cookie.
pub fn ticket_token(settings: &crate::Settings, request: &Request) -> Option<String> {
    bearer(request)
        .filter(|t| !looks_like_jwt(t))
        .or_else(|| cookie(request, &settings.ticket_cookie()))
}

/// Whether `token` has a JWT's shape: three base64url parts, the first a
/// JSON object (`eyJ…`). Only the shape: the identity check decides.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Where an identity token came from: a cookie that turns out bad is
/// dropped, a header is the app's to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Header,
    Cookie,
}

/// The identity token: a bearer that is not one of ours first (where an
/// identity is expected, anything else in the header is an attempt at one,
/// refused as such), then the cookie.
pub fn identity_token(request: &Request) -> Option<(String, From)> {
    bearer(request)
        .filter(|t| !is_crowdgate_token(t))
        .map(|t| (t, From::Header))
        .or_else(|| cookie(request, IDENTITY_COOKIE).map(|t| (t, From::Cookie)))
}

/// A `Set-Cookie` value: `name=value` for `max_age_s`, HttpOnly, SameSite
/// Lax, and `Secure` over https. `max_age_s` 0 with an empty value forgets it.
pub fn set_cookie(request: &Request, name: &str, value: &str, max_age_s: u64) -> String {
    let secure = if is_https(request) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
}

/// Verifies `token`: refused as 400 (malformed), 401 (expired, go back for
/// a new one) or 403 (forged, other round, wrong kind), the status being the
/// error code's, as in core.
pub fn verify<C: Claims>(
    keyring: &Keyring,
    token: &str,
    round: &str,
    now_s: u64,
) -> Result<C, ApiError> {
    keyring.check::<C>(token, round, now_s)
}

/// The signed-in investor behind the request's pass or ticket (bearer, or
/// the ticket cookie): `None` for an anonymous one. No credential is 401
/// `missing_ticket`; a bad one is refused as everywhere.
pub fn holder(
    settings: &crate::Settings,
    request: &Request,
    now_s: u64,
) -> Result<Option<Investor>, ApiError> {
    let round = settings.round.as_str();
    let keyring = &settings.keyring;
    if let Some(token) = bearer(request).filter(|t| is_crowdgate_token(t)) {
        // A pass or a ticket: whichever it is signed as.
        return match keyring.check::<Pass>(&token, round, now_s) {
            Ok(pass) => Ok(pass.investor),
            Err(_) => keyring
                .check::<Ticket>(&token, round, now_s)
                .map(|t| t.investor),
        };
    }
    let token = cookie(request, &settings.ticket_cookie())
        .ok_or_else(|| crowdgate_protocol::request::missing_credential(Credential::Ticket))?;
    keyring
        .check::<Ticket>(&token, round, now_s)
        .map(|t| t.investor)
}

/// Whether the visitor reached us over https (so cookies get `Secure`).
pub fn is_https(request: &Request) -> bool {
    let full = request
        .header("spin-full-url")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    full.starts_with("https://")
        || request.header("x-forwarded-proto").and_then(|v| v.as_str()) == Some("https")
}
