//! Who may call core, and with what: service tokens for the edge and ops,
//! and the visitor's own ticket or pass.
//!
//! Every check of a credential core makes is here, as a function the
//! handlers call (`investments`, `passes`, `ops`):
//! - [`bearer_token`]: the token of `Authorization: Bearer <token>`;
//! - [`verify_ticket`] / [`verify_pass`]: a visitor's signed ticket or pass,
//!   refused with the statuses the edge uses too (protocol's
//!   [`TokenError::refusal`](crowdgate_protocol::TokenError::refusal): an
//!   expired one is 401, go back for a new one; forged, another round's or
//!   the wrong kind 403; malformed 400);
//! - [`investment_attempt`]: a whole investment request (pass, content type,
//!   `Idempotency-Key`, body), checked exactly as the edge checks it;
//! - [`ops_operator`]: who an ops bearer token belongs to;
//! - [`require_edge`]: the `/v1` middleware.
//!
//! Service tokens come in two sets, both configured as
//! `name:token[,name:token]`:
//! - **ops tokens** (`CROWDGATE_OPS_TOKENS`) for `/ops/v1/...`; the name is
//!   who an audit entry records;
//! - **edge tokens** (`CROWDGATE_EDGE_TOKENS`) for `/v1/...`: the edge
//!   components present one in [`EDGE_TOKEN_HEADER`] on every call, so a
//!   workload that merely reaches core on the network can neither take queue
//!   numbers nor read the room. Rotate by adding the new token to core,
//!   rolling the edges onto it, then removing the old one.
//!
//! Every candidate is compared in constant time, and the loop does not stop
//! early, so response timing says nothing about a token.

use crate::error::Failure;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crowdgate_protocol::attempt::{Attempt, CheckedAttempt};
use crowdgate_protocol::request::{self as http_request, require_bearer};
use crowdgate_protocol::routes::IDEMPOTENCY_KEY_HEADER;
use crowdgate_protocol::token::Claims;
use crowdgate_protocol::{Keyring, Pass, Ticket};
use subtle::ConstantTimeEq;

pub use crowdgate_protocol::api::EDGE_TOKEN_HEADER;

/// Shortest token we accept.
pub const MIN_TOKEN_LEN: usize = 24;

/// A set of named tokens. Secrets never appear in `Debug` output.
#[derive(Clone)]
pub struct NamedTokens {
    tokens: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for NamedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("NamedTokens")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl NamedTokens {
    /// Parses `name:token[,name:token]`; `setting` (e.g.
    /// `CROWDGATE_OPS_TOKENS`) names the configuration in errors.
    pub fn parse(spec: &str, setting: &str) -> Result<NamedTokens, String> {
        let mut tokens = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, token) = entry
                .split_once(':')
                .ok_or_else(|| format!("{setting} must be `name:token[,name:token]`"))?;
            if name.is_empty() || token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{setting}: the token for {name:?} must have a name and at least {MIN_TOKEN_LEN} characters"
                ));
            }
            tokens.push((name.to_string(), token.as_bytes().to_vec()));
        }
        if tokens.is_empty() {
            return Err(format!("no tokens configured; set {setting}=name:token"));
        }
        Ok(NamedTokens { tokens })
    }

    /// The name whose token this is, if any.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.tokens {
            if bool::from(token.as_slice().ct_eq(presented.as_bytes())) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// Middleware for `/v1`: refuses a call without a valid edge token (401).
pub async fn require_edge(
    State(tokens): State<NamedTokens>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(EDGE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if tokens.identify(presented).is_none() {
        metrics::counter!("crowdgate_core_unauthenticated_total").increment(1);
        return Failure::unauthorized(
            EDGE_TOKEN_HEADER,
            "core's /v1 API is for the edge: present the edge token in the x-crowdgate-edge-token header",
        )
        .into_response();
    }
    next.run(request).await
}

/// The token of `Authorization: Bearer <token>`, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    http_request::bearer_token(header_str(headers, header::AUTHORIZATION.as_str()))
}

/// The visitor's ticket from `Authorization`: 401 `missing_ticket` without
/// one, else refused as [`verify`] refuses.
pub fn verify_ticket(
    keyring: &Keyring,
    round: &str,
    headers: &HeaderMap,
    now_s: u64,
) -> Result<Ticket, Failure> {
    verify::<Ticket>(keyring, round, headers, now_s)
}

/// The visitor's pass from `Authorization`: 401 `missing_pass` without one,
/// else refused as [`verify`] refuses.
pub fn verify_pass(
    keyring: &Keyring,
    round: &str,
    headers: &HeaderMap,
    now_s: u64,
) -> Result<Pass, Failure> {
    verify::<Pass>(keyring, round, headers, now_s)
}

/// A bearer credential of kind `C`, verified at `now_s`: 401 when missing
/// or expired, 400 malformed, 403 forged, another round's or the wrong kind
/// — the statuses the edge answers with, from protocol's one mapping.
pub fn verify<C: Claims>(
    keyring: &Keyring,
    round: &str,
    headers: &HeaderMap,
    now_s: u64,
) -> Result<C, Failure> {
    let token = require_bearer(
        header_str(headers, header::AUTHORIZATION.as_str()),
        C::CREDENTIAL,
    )?;
    Ok(keyring.check::<C>(token, round, now_s)?)
}

/// An investment request checked as the edge checks it ([`Attempt::check`]:
/// body size, pass, content type, `Idempotency-Key`, body), so a caller that
/// reaches core directly is held to the same rules.
pub fn investment_attempt(
    keyring: &Keyring,
    round: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_s: u64,
) -> Result<CheckedAttempt, Failure> {
    let attempt = Attempt {
        pass: bearer_token(headers),
        content_type: header_str(headers, header::CONTENT_TYPE.as_str()),
        idempotency_key: header_str(headers, IDEMPOTENCY_KEY_HEADER),
        body,
    };
    Ok(attempt.check(keyring, round, now_s)?)
}

/// The operator an ops bearer token belongs to, or 401 `unauthorized`.
pub fn ops_operator<'a>(tokens: &'a NamedTokens, headers: &HeaderMap) -> Result<&'a str, Failure> {
    let token = bearer_token(headers).ok_or_else(|| {
        Failure::unauthorized("Authorization", "send `Authorization: Bearer <ops token>`")
    })?;
    tokens
        .identify(token)
        .ok_or_else(|| Failure::unauthorized("Authorization", "ops token not recognised"))
}

/// A header's value, when it is visible ASCII text.
fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_by_token() {
        let t = NamedTokens::parse(
            "alice:aaaaaaaaaaaaaaaaaaaaaaaaaa,bob:bbbbbbbbbbbbbbbbbbbbbbbbbb",
            "X",
        )
        .unwrap();
        assert_eq!(t.identify("bbbbbbbbbbbbbbbbbbbbbbbbbb"), Some("bob"));
        assert_eq!(t.identify("bbbbbbbbbbbbbbbbbbbbbbbbb"), None);
        assert_eq!(t.identify(""), None);
        assert!(!format!("{t:?}").contains("aaaa"));
    }

    const KEYS: &str = "k1:0123456789abcdef0123456789abcdef";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn pass(expires_at: u64) -> Pass {
        Pass {
            round: "r1".into(),
            ticket: "t1".into(),
            number: 1,
            issued_at: 0,
            expires_at,
            investor: Some(crowdgate_protocol::Investor {
                id: "eve".into(),
                name: None,
                max_investment_pence: None,
            }),
        }
    }

    #[test]
    fn visitor_credentials_are_refused_with_the_edges_statuses() {
        let ring = Keyring::parse(KEYS).unwrap();
        let refused = |h: &HeaderMap| {
            let failure = verify_pass(&ring, "r1", h, 100).unwrap_err();
            (failure.status().as_u16(), failure.body.error.as_str())
        };
        assert_eq!(refused(&headers(&[])), (401, "missing_pass"));
        let expired = format!("Bearer {}", ring.sign(&pass(100)));
        assert_eq!(
            refused(&headers(&[("authorization", &expired)])),
            (401, "token_expired")
        );
        assert_eq!(
            refused(&headers(&[("authorization", "Bearer junk")])),
            (400, "token_malformed")
        );
        let ticket = ring.sign(&Ticket {
            round: "r1".into(),
            id: "t1".into(),
            number: Some(1),
            entry: None,
            issued_at: 0,
            expires_at: 200,
            investor: None,
        });
        let as_pass = format!("Bearer {ticket}");
        assert_eq!(
            refused(&headers(&[("authorization", &as_pass)])),
            (403, "token_wrong_kind")
        );
        let good = format!("Bearer {}", ring.sign(&pass(200)));
        let h = headers(&[("authorization", &good)]);
        assert_eq!(verify_pass(&ring, "r1", &h, 100).unwrap(), pass(200));
        let missing = verify_ticket(&ring, "r1", &headers(&[]), 100).unwrap_err();
        assert_eq!(missing.body.error.as_str(), "missing_ticket");
    }

    #[test]
    fn an_investment_attempt_is_checked_whole() {
        let ring = Keyring::parse(KEYS).unwrap();
        let good = format!("Bearer {}", ring.sign(&pass(200)));
        let body = br#"{"investor_id":"eve","amount_pence":5000}"#;
        let h = headers(&[
            ("authorization", &good),
            ("content-type", "application/json"),
            ("idempotency-key", "k1"),
        ]);
        let checked = investment_attempt(&ring, "r1", &h, body, 100).unwrap();
        assert_eq!(
            checked.investment_id,
            crowdgate_protocol::InvestmentId::derive("r1", "t1", "k1")
        );
        // The investment is for the pass's investor; a body naming another
        // one is refused, never silently reassigned.
        assert_eq!(checked.investor.id, "eve");
        let other = br#"{"investor_id":"mallory","amount_pence":5000}"#;
        let failure = investment_attempt(&ring, "r1", &h, other, 100).unwrap_err();
        assert_eq!(
            (failure.status().as_u16(), failure.body.error.as_str()),
            (403, "investor_mismatch")
        );
        let long_key = "k".repeat(129);
        let h = headers(&[
            ("authorization", &good),
            ("content-type", "application/json"),
            ("idempotency-key", &long_key),
        ]);
        let failure = investment_attempt(&ring, "r1", &h, body, 100).unwrap_err();
        assert_eq!(
            (failure.status().as_u16(), failure.body.field.as_deref()),
            (422, Some("Idempotency-Key"))
        );
    }

    #[test]
    fn ops_tokens_name_their_operator() {
        let tokens = NamedTokens::parse("alice:aaaaaaaaaaaaaaaaaaaaaaaaaa", "X").unwrap();
        let h = headers(&[("authorization", "Bearer aaaaaaaaaaaaaaaaaaaaaaaaaa")]);
        assert_eq!(ops_operator(&tokens, &h).unwrap(), "alice");
        for h in [headers(&[]), headers(&[("authorization", "Bearer nope")])] {
            let failure = ops_operator(&tokens, &h).unwrap_err();
            assert_eq!(
                (failure.status().as_u16(), failure.body.error.as_str()),
                (401, "unauthorized")
            );
        }
    }

    #[test]
    fn rejects_weak_specs() {
        assert!(NamedTokens::parse("", "X").is_err());
        assert!(NamedTokens::parse("alice:short", "X").is_err());
        assert!(NamedTokens::parse("justatokenwithoutanamexxxxxxxx", "X").is_err());
    }
}
