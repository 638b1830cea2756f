//! An investment attempt as it arrives — pass, content type,
//! `Idempotency-Key`, body — checked in the one order every gateway uses.
//!
//! The edge component, the waiting room's no-JavaScript form (both through
//! `spin_support::gateway`) and core all run [`Attempt::check`], so the same
//! request gets the same answer whichever way it came in, and no path can
//! skip a check (or quietly repair a bad value, such as truncating a long
//! key). Pure: the caller passes the keys, the round and the time.

use crate::api::MAX_BODY_BYTES;
use crate::error::{ApiError, ErrorCode};
use crate::invest::{InvestRequest, validate_idempotency_key};
use crate::investment_id::InvestmentId;
use crate::request::{missing_credential, require_json};
use crate::token::{Credential, Investor, Keyring, Pass};

/// The parts of an investment request the checks read.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The bearer token presented as the pass, if any.
    pub pass: Option<&'a str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// An attempt that passed every check: what core records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAttempt {
    /// The verified pass.
    pub pass: Pass,
    /// The `Idempotency-Key`, trimmed.
    pub idempotency_key: String,
    pub request: InvestRequest,
    /// The signed-in investor, from the pass: whom the investment is for.
    pub investor: Investor,
    /// Derived from (round, the pass's ticket, the key).
    pub investment_id: InvestmentId,
}

impl Attempt<'_> {
    /// Checks, in order: body size (413), the pass (401 missing or
    /// expired, 400 malformed, 403 forged / other round / wrong kind), the
    /// content type (415), the `Idempotency-Key` (422, never truncated),
    /// the body (400 unreadable or repeated field, 422 a wrong value). The
    /// error's code carries its status.
    pub fn check(
        &self,
        keyring: &Keyring,
        round: &str,
        now_s: u64,
    ) -> Result<CheckedAttempt, ApiError> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(body_too_large());
        }
        let token = self
            .pass
            .ok_or_else(|| missing_credential(Credential::Pass))?;
        let pass = keyring.check::<Pass>(token, round, now_s)?;
        require_json(self.content_type)?;
        let idempotency_key = validate_idempotency_key(self.idempotency_key)?;
        let request = InvestRequest::parse(self.body)?;
        let investor = investor_of(&pass, &request)?;
        let investment_id = InvestmentId::derive(round, &pass.ticket, &idempotency_key);
        Ok(CheckedAttempt {
            pass,
            idempotency_key,
            request,
            investor,
            investment_id,
        })
    }
}

/// Whom an investment is for: the pass's signed-in investor, always. A pass
/// from an anonymous room cannot invest (401 `identity_required`), and a body
/// naming anyone else is refused (403 `investor_mismatch`), never ignored,
/// so a client that believes it invests for someone else learns it cannot.
fn investor_of(pass: &Pass, request: &InvestRequest) -> Result<Investor, ApiError> {
    let Some(investor) = &pass.investor else {
        return Err(ApiError::for_field(
            ErrorCode::IdentityRequired,
            "pass",
            "investing needs a signed-in investor: this pass was issued in an anonymous waiting room",
        ));
    };
    if let Some(named) = &request.investor_id
        && *named != investor.id
    {
        return Err(ApiError::for_field(
            ErrorCode::InvestorMismatch,
            "investor_id",
            "investor_id is not the investor signed in with this pass: an investment is always for the signed-in investor (leave investor_id out)",
        ));
    }
    Ok(investor.clone())
}

/// 413: a body larger than [`MAX_BODY_BYTES`].
pub fn body_too_large() -> ApiError {
    ApiError::for_field(
        ErrorCode::BodyTooLarge,
        "body",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ticket;

    const KEYS: &str = "ka:0123456789abcdef0123456789abcdef";
    const BODY: &[u8] = br#"{"investor_id":"eve","amount_pence":5000}"#;

    fn pass(expires_at: u64) -> Pass {
        Pass {
            round: "r1".into(),
            ticket: "t1".into(),
            number: 1,
            issued_at: 0,
            expires_at,
            investor: Some(eve()),
        }
    }

    fn eve() -> Investor {
        Investor {
            id: "eve".into(),
            name: Some("Eve".into()),
            max_investment_pence: Some(250_000),
        }
    }

    fn check(token: &str, body: &[u8]) -> Result<CheckedAttempt, ApiError> {
        let ring = Keyring::parse(KEYS).unwrap();
        Attempt {
            pass: Some(token),
            content_type: Some("application/json"),
            idempotency_key: Some("k1"),
            body,
        }
        .check(&ring, "r1", 100)
    }

    fn code_of(attempt: Attempt<'_>) -> (ErrorCode, u16) {
        let ring = Keyring::parse(KEYS).unwrap();
        let err = attempt.check(&ring, "r1", 100).unwrap_err();
        (err.error, err.http_status())
    }

    #[test]
    fn a_good_attempt_names_its_investment() {
        let ring = Keyring::parse(KEYS).unwrap();
        let token = ring.sign(&pass(200));
        let checked = Attempt {
            pass: Some(&token),
            content_type: Some("application/json"),
            idempotency_key: Some(" k1 "),
            body: BODY,
        }
        .check(&ring, "r1", 100)
        .unwrap();
        assert_eq!(checked.idempotency_key, "k1");
        assert_eq!(checked.request.amount_pence, 5000);
        assert_eq!(
            checked.investment_id,
            InvestmentId::derive("r1", "t1", "k1")
        );
        assert_eq!(checked.investor, eve());
    }

    #[test]
    fn the_investment_is_for_the_passs_investor() {
        let ring = Keyring::parse(KEYS).unwrap();
        let token = ring.sign(&pass(200));
        // No investor_id in the body: the pass says who invests.
        let checked = check(&token, br#"{"amount_pence":5000}"#).unwrap();
        assert_eq!(checked.investor, eve());
        assert_eq!(checked.request.investor_id, None);
        // The same one named again is fine.
        let checked = check(&token, BODY).unwrap();
        assert_eq!(checked.investor, eve());
    }

    #[test]
    fn a_body_naming_another_investor_is_refused_not_ignored() {
        let ring = Keyring::parse(KEYS).unwrap();
        let token = ring.sign(&pass(200));
        let err = check(&token, br#"{"investor_id":"mallory","amount_pence":5000}"#).unwrap_err();
        assert_eq!(
            (err.error, err.http_status(), err.field.as_deref()),
            (ErrorCode::InvestorMismatch, 403, Some("investor_id"))
        );
        // Ids are compared exactly: another case is another investor.
        let err = check(&token, br#"{"investor_id":"EVE","amount_pence":5000}"#).unwrap_err();
        assert_eq!(err.error, ErrorCode::InvestorMismatch);
    }

    #[test]
    fn a_pass_without_an_investor_cannot_invest() {
        let ring = Keyring::parse(KEYS).unwrap();
        let anonymous = ring.sign(&Pass {
            investor: None,
            ..pass(200)
        });
        for body in [&br#"{"amount_pence":5000}"#[..], BODY] {
            let err = check(&anonymous, body).unwrap_err();
            assert_eq!(
                (err.error, err.http_status(), err.field.as_deref()),
                (ErrorCode::IdentityRequired, 401, Some("pass"))
            );
        }
    }

    #[test]
    fn each_check_in_its_order_with_its_status() {
        let ring = Keyring::parse(KEYS).unwrap();
        let good = ring.sign(&pass(200));
        let expired = ring.sign(&pass(100));
        let ticket = ring.sign(&Ticket {
            round: "r1".into(),
            id: "t1".into(),
            number: Some(1),
            entry: None,
            issued_at: 0,
            expires_at: 200,
            investor: Some(eve()),
        });
        let base = Attempt {
            pass: Some(&good),
            content_type: Some("application/json"),
            idempotency_key: Some("k"),
            body: BODY,
        };
        let anonymous = ring.sign(&Pass {
            investor: None,
            ..pass(200)
        });
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        let long_key = "k".repeat(129);
        for (attempt, expected) in [
            (
                Attempt {
                    body: &huge,
                    pass: None,
                    ..base
                },
                (ErrorCode::BodyTooLarge, 413),
            ),
            (
                Attempt {
                    pass: None,
                    content_type: None,
                    ..base
                },
                (ErrorCode::MissingPass, 401),
            ),
            (
                Attempt {
                    pass: Some("junk"),
                    ..base
                },
                (ErrorCode::TokenMalformed, 400),
            ),
            (
                Attempt {
                    pass: Some(&expired),
                    ..base
                },
                (ErrorCode::TokenExpired, 401),
            ),
            (
                Attempt {
                    pass: Some(&ticket),
                    ..base
                },
                (ErrorCode::TokenWrongKind, 403),
            ),
            (
                Attempt {
                    content_type: Some("text/plain"),
                    idempotency_key: None,
                    ..base
                },
                (ErrorCode::UnsupportedContentType, 415),
            ),
            (
                Attempt {
                    idempotency_key: None,
                    body: b"{",
                    ..base
                },
                (ErrorCode::MissingField, 422),
            ),
            (
                Attempt {
                    idempotency_key: Some(&long_key),
                    ..base
                },
                (ErrorCode::InvalidField, 422),
            ),
            (
                Attempt {
                    body: br#"{"investor_id":"e","amount_pence":1,"amount_pence":2}"#,
                    ..base
                },
                (ErrorCode::DuplicateField, 400),
            ),
            (
                Attempt {
                    pass: Some(&anonymous),
                    ..base
                },
                (ErrorCode::IdentityRequired, 401),
            ),
            (
                Attempt {
                    body: br#"{"investor_id":"bob","amount_pence":5000}"#,
                    ..base
                },
                (ErrorCode::InvestorMismatch, 403),
            ),
        ] {
            assert_eq!(code_of(attempt), expected, "{attempt:?}");
        }
    }
}
