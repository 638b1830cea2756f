//! Who may call core: named secret tokens compared in constant time.
//!
//! Two sets exist, both configured as `name:token[,name:token]`:
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
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

    #[test]
    fn rejects_weak_specs() {
        assert!(NamedTokens::parse("", "X").is_err());
        assert!(NamedTokens::parse("alice:short", "X").is_err());
        assert!(NamedTokens::parse("justatokenwithoutanamexxxxxxxx", "X").is_err());
    }
}
