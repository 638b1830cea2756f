//! Tickets and passes presented by a visitor.
//!
//! Browsers send the ticket as the `cg_ticket` cookie; apps send tokens as
//! `Authorization: Bearer <token>`. The bearer header wins when both are
//! present, so an app's explicit choice is never overridden by a stale cookie.
//! Parsing the header and refusing a token are protocol's
//! ([`crowdgate_protocol::request`], [`Keyring::check`]), so core answers
//! the same token with the same status.

use crowdgate_protocol::token::Claims;
use crowdgate_protocol::{ApiError, Keyring};
use spin_sdk::http::Request;

pub const TICKET_COOKIE: &str = "cg_ticket";

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

/// The ticket token: bearer first, then the cookie.
pub fn ticket_token(request: &Request) -> Option<String> {
    bearer(request).or_else(|| cookie(request, TICKET_COOKIE))
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

/// Whether the visitor reached us over https (so cookies get `Secure`).
pub fn is_https(request: &Request) -> bool {
    let full = request
        .header("spin-full-url")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    full.starts_with("https://")
        || request.header("x-forwarded-proto").and_then(|v| v.as_str()) == Some("https")
}
