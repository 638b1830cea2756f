//! Investment ids: derived from the request, checked by one rule on both
//! sides.
//!
//! An id is `inv_` and 24 lowercase hex digits: the first 12 bytes of
//! SHA-256 over (round, ticket id, `Idempotency-Key`). Deriving it from the
//! request means every retry of one request names one record (core's own
//! retries after an unclear Redis failure can only replay the first attempt),
//! and each visitor's keys are their own. The edge refuses a malformed id
//! before asking core, and core refuses it again, by the same [`InvestmentId::parse`].

use crate::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const PREFIX: &str = "inv_";
/// Hex digits after the prefix (12 bytes of the digest).
const HEX_DIGITS: usize = 24;

/// A well-formed investment id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvestmentId(String);

impl InvestmentId {
    /// The id of the investment `Idempotency-Key` `key` names for `ticket`
    /// in `round`.
    pub fn derive(round: &str, ticket: &str, key: &str) -> InvestmentId {
        let digest = Sha256::new()
            .chain_update(round)
            .chain_update([0])
            .chain_update(ticket)
            .chain_update([0])
            .chain_update(key)
            .finalize();
        InvestmentId(format!(
            "{PREFIX}{}",
            crate::hex::encode(&digest[..HEX_DIGITS / 2])
        ))
    }

    /// Checks an id from a request path: 400 `invalid_field` naming
    /// `investment_id` when it cannot be one.
    pub fn parse(text: &str) -> Result<InvestmentId, ApiError> {
        let well_formed = text.strip_prefix(PREFIX).is_some_and(|digits| {
            digits.len() == HEX_DIGITS
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if well_formed {
            Ok(InvestmentId(text.to_string()))
        } else {
            Err(ApiError::for_field(
                ErrorCode::InvalidId,
                "investment_id",
                format!("not an investment id (`{PREFIX}` and {HEX_DIGITS} hex digits)"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for InvestmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InvestmentId {
    type Error = ApiError;

    fn try_from(text: String) -> Result<InvestmentId, ApiError> {
        InvestmentId::parse(&text)
    }
}

impl From<InvestmentId> for String {
    fn from(id: InvestmentId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_scoped() {
        let a = InvestmentId::derive("r", "t1", "k");
        assert_eq!(a, InvestmentId::derive("r", "t1", "k"));
        assert_ne!(a, InvestmentId::derive("r", "t2", "k"));
        assert_ne!(a, InvestmentId::derive("r2", "t1", "k"));
        assert_ne!(
            InvestmentId::derive("r", "t1k", ""),
            InvestmentId::derive("r", "t1", "k")
        );
        assert!(a.as_str().starts_with("inv_") && a.as_str().len() == 28);
    }

    #[test]
    fn derived_ids_parse_and_others_do_not() {
        let id = InvestmentId::derive("r", "t", "k");
        assert_eq!(InvestmentId::parse(id.as_str()).unwrap(), id);
        assert!(InvestmentId::parse("inv_000000000000000000000000").is_ok());
        for bad in [
            "",
            "inv_",
            "inv_1",
            "bad id",
            "inv_00000000000000000000000g",
            "inv_00000000000000000000000A",
            "inv_0000000000000000000000000",
            "INV_000000000000000000000000",
        ] {
            let err = InvestmentId::parse(bad).unwrap_err();
            assert_eq!(
                (err.error, err.field.as_deref(), err.http_status()),
                (ErrorCode::InvalidId, Some("investment_id"), 400),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serialises_as_the_plain_string() {
        let id = InvestmentId::derive("r", "t", "k");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<InvestmentId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<InvestmentId>("\"nope\"").is_err());
    }
}
