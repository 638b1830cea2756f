//! The claims of an identity token: what the platform signs (one struct, so
//! the development provider, the tests and the docs mint exactly what the
//! verifier reads) and the [`Identity`] Crowdgate keeps of it.

use crate::{IdentityError, LEEWAY_S};
use crowdgate_protocol::invest::{MAX_AMOUNT_PENCE, validate_investor_id};
use serde::{Deserialize, Serialize};

/// Longest display name kept (longer names are cut for display only).
pub const MAX_NAME_CHARS: usize = 64;
/// Longest lifetime (`exp - iat`) accepted: identity tokens are meant to
/// live minutes; one valid for days is a leaked credential waiting to happen.
pub const MAX_LIFETIME_S: u64 = 24 * 3600;

/// An identity token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    /// The platform that signed the investor in.
    pub iss: String,
    /// Who the token is for: the round id, or the deployment's audience.
    pub aud: Audience,
    /// The investor id: the account settlement debits.
    pub sub: String,
    /// Expiry, Unix seconds. Keep it short (minutes): the token is only
    /// needed to join; the place it buys lasts as long as the round.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The investor's name, shown on the page ("Investing as …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A per-investor maximum in pence (a KYC tier's limit, say). It can
    /// only lower the round's maximum, never raise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_investment_pence: Option<i64>,
}

/// `aud` is one string or a list of them (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for Audience {
    fn from(audience: &str) -> Audience {
        Audience::One(audience.to_string())
    }
}

/// A verified investor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub investor_id: String,
    /// For display; `None` when the token carries none.
    pub name: Option<String>,
    /// The investor's own maximum, pence, when the token sets one.
    pub max_investment_pence: Option<i64>,
    /// When the token expires, Unix seconds.
    pub expires_at: u64,
}

impl IdentityClaims {
    /// Checks the times on `now_s` and the claims' values; the signature,
    /// issuer and audience were checked before.
    pub(crate) fn identity(self, now_s: u64) -> Result<Identity, IdentityError> {
        if self.exp.saturating_add(LEEWAY_S) <= now_s {
            return Err(IdentityError::Expired);
        }
        let future = |t: u64| t > now_s.saturating_add(LEEWAY_S);
        if self.nbf.is_some_and(future) || future(self.iat) {
            return Err(IdentityError::NotYetValid);
        }
        if self.exp.saturating_sub(self.iat) > MAX_LIFETIME_S {
            return Err(IdentityError::InvalidClaim {
                claim: "exp",
                why: format!("the token lives longer than {MAX_LIFETIME_S} seconds"),
            });
        }
        validate_investor_id(&self.sub).map_err(|e| IdentityError::InvalidClaim {
            claim: "sub",
            why: e.message,
        })?;
        if let Some(limit) = self.max_investment_pence
            && !(0..=MAX_AMOUNT_PENCE).contains(&limit)
        {
            return Err(IdentityError::InvalidClaim {
                claim: "max_investment_pence",
                why: format!("must be between 0 and {MAX_AMOUNT_PENCE} pence"),
            });
        }
        Ok(Identity {
            investor_id: self.sub,
            name: self.name.as_deref().and_then(display_name),
            max_investment_pence: self.max_investment_pence,
            expires_at: self.exp,
        })
    }
}

/// A name fit to show: control and invisible formatting characters
/// (bidirectional overrides, zero-width characters) dropped, so a name
/// cannot reorder or hide the text around it; cut to [`MAX_NAME_CHARS`];
/// `None` if nothing is left.
fn display_name(name: &str) -> Option<String> {
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && !invisible(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: u64, exp: u64, name: &str) -> IdentityClaims {
        IdentityClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "ann".into(),
            exp,
            iat,
            nbf: None,
            name: Some(name.into()),
            max_investment_pence: None,
        }
    }

    #[test]
    fn a_name_cannot_reorder_or_hide_text() {
        let identity = claims(100, 200, "Ann\u{202E}evil\u{200B} Lee")
            .identity(150)
            .unwrap();
        assert_eq!(identity.name.as_deref(), Some("Annevil Lee"));
        let invisible_only = claims(100, 200, "\u{2066}\u{FEFF}").identity(150).unwrap();
        assert_eq!(invisible_only.name, None);
    }

    #[test]
    fn a_token_living_longer_than_a_day_is_refused() {
        assert!(claims(100, 100 + MAX_LIFETIME_S, "x").identity(150).is_ok());
        let err = claims(100, 101 + MAX_LIFETIME_S, "x")
            .identity(150)
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::InvalidClaim { claim: "exp", .. }),
            "{err:?}"
        );
    }
}
