//! Bearer tokens for the ops API.
//!
//! Tokens come from configuration as `name:token` pairs; the name is who an
//! audit entry records. Every candidate is compared in constant time, and the
//! loop does not stop early, so response timing says nothing about a token.

use subtle::ConstantTimeEq;

/// Shortest ops token we accept.
pub const MIN_TOKEN_LEN: usize = 24;

/// The ops tokens core accepts. Secrets never appear in `Debug` output.
#[derive(Clone)]
pub struct OpsTokens {
    tokens: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for OpsTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OpsTokens")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl OpsTokens {
    /// Parses `name:token[,name:token]`.
    pub fn parse(spec: &str) -> Result<OpsTokens, String> {
        let mut tokens = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, token) = entry
                .split_once(':')
                .ok_or_else(|| "ops tokens must be `name:token[,name:token]`".to_string())?;
            if name.is_empty() || token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "ops token for {name:?} must have a name and at least {MIN_TOKEN_LEN} characters"
                ));
            }
            tokens.push((name.to_string(), token.as_bytes().to_vec()));
        }
        if tokens.is_empty() {
            return Err("no ops tokens configured; set CROWDGATE_OPS_TOKENS=name:token".into());
        }
        Ok(OpsTokens { tokens })
    }

    /// The name of the operator whose token this is, if any.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_by_token() {
        let t = OpsTokens::parse("alice:aaaaaaaaaaaaaaaaaaaaaaaaaa,bob:bbbbbbbbbbbbbbbbbbbbbbbbbb")
            .unwrap();
        assert_eq!(t.identify("bbbbbbbbbbbbbbbbbbbbbbbbbb"), Some("bob"));
        assert_eq!(t.identify("bbbbbbbbbbbbbbbbbbbbbbbbb"), None);
        assert_eq!(t.identify(""), None);
        assert!(!format!("{t:?}").contains("aaaa"));
    }

    #[test]
    fn rejects_weak_specs() {
        assert!(OpsTokens::parse("").is_err());
        assert!(OpsTokens::parse("alice:short").is_err());
        assert!(OpsTokens::parse("justatokenwithoutanamexxxxxxxx").is_err());
    }
}
