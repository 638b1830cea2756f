//! Tickets and passes presented by a visitor.
//!
//! Browsers send the ticket as the `cg_ticket` cookie; apps send tokens as
//! `Authorization: Bearer <token>`. The bearer header wins when both are
//! present, so an app's explicit choice is never overridden by a stale cookie.

use crowdgate_protocol::token::Claims;
use crowdgate_protocol::{ApiError, Keyring, TokenError};
use spin_sdk::http::Request;

pub const TICKET_COOKIE: &str = "cg_ticket";

/// The raw bearer token, if any.
pub fn bearer(request: &Request) -> Option<String> {
    let value = request.header("authorization")?.as_str()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
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

/// Verifies `token`, mapping failures to 400 (malformed), 401 (expired,
/// must rejoin) or 403 (forged, other round, wrong kind), each with a reason.
pub fn verify<C: Claims>(
    keyring: &Keyring,
    token: &str,
    round: &str,
    now_s: u64,
    what: &str,
) -> Result<C, (u16, ApiError)> {
    keyring.verify::<C>(token, round, now_s).map_err(|err| {
        let status = match err {
            TokenError::Malformed => 400,
            TokenError::Expired => 401,
            _ => 403,
        };
        (
            status,
            ApiError::for_field(err.code(), what, format!("{what} refused: {err}")),
        )
    })
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
