//! Parsing an investment request so that every mistake names its field.
//!
//! serde's derived errors say "invalid type at line 1 column 30"; investors
//! and app developers need "amount_pence must be a whole number of pence".
//! So the body is read as a JSON object and each field checked by hand. Both
//! the edge (to refuse early) and core (which trusts nobody) call this, and
//! answer with the status of the error's code: 400 when the body is not one
//! unambiguous JSON object, 422 when a field's value is wrong.

use crate::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// Longest investor id we accept.
pub const MAX_INVESTOR_ID_LEN: usize = 64;
/// Longest `Idempotency-Key` we accept.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Largest single amount we even consider: £1bn. Keeps sums far from i64 overflow.
pub const MAX_AMOUNT_PENCE: i64 = 100_000_000_000;

/// A well-formed investment request. Round limits are checked later, by the
/// atomic script in core, because they depend on live totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestRequest {
    /// Optional and redundant: the investor comes from the pass. When
    /// present it must be the pass's investor (else 403 `investor_mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investor_id: Option<String>,
    pub amount_pence: i64,
}

impl InvestRequest {
    /// Parses a JSON body, naming the field at fault on error.
    pub fn parse(body: &[u8]) -> Result<InvestRequest, ApiError> {
        let object = crate::json::parse_object(body)?;

        // Optional: the investor is the signed-in one on the pass. A body
        // that names one must name that one (checked in `Attempt::check`).
        let investor_id = match object.get("investor_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(id)) if id.trim().is_empty() => {
                return Err(ApiError::for_field(
                    ErrorCode::InvalidField,
                    "investor_id",
                    "investor_id is empty: leave it out (an investment is for the signed-in investor)",
                ));
            }
            Some(serde_json::Value::String(id)) => {
                let id = id.trim().to_string();
                validate_investor_id(&id)?;
                Some(id)
            }
            Some(_) => {
                return Err(ApiError::for_field(
                    ErrorCode::InvalidField,
                    "investor_id",
                    "investor_id must be a string",
                ));
            }
        };

        let amount_pence = match object.get("amount_pence") {
            None | Some(serde_json::Value::Null) => return Err(missing("amount_pence")),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(pence) => pence,
                None if n.is_u64() => return Err(too_large()),
                // Beyond u64, JSON numbers arrive as floats: a whole one is
                // simply too large, not a fraction.
                None if n
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18) =>
                {
                    return Err(too_large());
                }
                None => {
                    return Err(ApiError::for_field(
                        ErrorCode::InvalidAmount,
                        "amount_pence",
                        "amount_pence must be a whole number of pence (no fractions)",
                    ));
                }
            },
            Some(_) => {
                return Err(ApiError::for_field(
                    ErrorCode::InvalidAmount,
                    "amount_pence",
                    "amount_pence must be a JSON integer number of pence",
                ));
            }
        };
        if amount_pence <= 0 {
            return Err(ApiError::for_field(
                ErrorCode::InvalidAmount,
                "amount_pence",
                "amount_pence must be greater than zero",
            ));
        }
        if amount_pence > MAX_AMOUNT_PENCE {
            return Err(too_large());
        }
        Ok(InvestRequest {
            investor_id,
            amount_pence,
        })
    }
}

/// Investor ids are printable ASCII tokens: they end up in Redis keys and logs.
pub fn validate_investor_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(missing("investor_id"));
    }
    if id.len() > MAX_INVESTOR_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    {
        return Err(ApiError::for_field(
            ErrorCode::InvalidField,
            "investor_id",
            format!(
                "investor_id must be 1-{MAX_INVESTOR_ID_LEN} characters of letters, digits, - _ . @"
            ),
        ));
    }
    Ok(())
}

/// Checks an `Idempotency-Key` header value.
pub fn validate_idempotency_key(key: Option<&str>) -> Result<String, ApiError> {
    let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
        return Err(ApiError::for_field(
            ErrorCode::MissingField,
            "Idempotency-Key",
            "the Idempotency-Key header is required (any unique string per investment attempt)",
        ));
    };
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::for_field(
            ErrorCode::InvalidField,
            "Idempotency-Key",
            format!(
                "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"
            ),
        ));
    }
    Ok(key.to_string())
}

/// Parses an amount typed by a person in pounds (`250`, `250.5`, `£1,250.00`)
/// into pence, exactly (no floating point).
pub fn parse_pounds(text: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::for_field(
            ErrorCode::InvalidAmount,
            "amount",
            "enter an amount in pounds, such as 250 or 250.00",
        )
    };
    let text = text.trim();
    let text = text.strip_prefix('£').unwrap_or(text);
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    // Commas only as thousands separators (`1,250`): "12,50" is refused, not
    // read as £1,250 — an amount is never guessed.
    let whole = if whole.contains(',') {
        let groups: Vec<&str> = whole.split(',').collect();
        let well_formed =
            (1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|g| g.len() == 3);
        if !well_formed {
            return Err(invalid());
        }
        groups.concat()
    } else {
        whole.to_string()
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 12 {
        return Err(invalid());
    }
    if fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let pence: i64 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    let amount = whole * 100 + pence;
    if amount <= 0 {
        return Err(ApiError::for_field(
            ErrorCode::InvalidAmount,
            "amount",
            "the amount must be more than zero",
        ));
    }
    Ok(amount)
}

fn missing(field: &str) -> ApiError {
    ApiError::for_field(
        ErrorCode::MissingField,
        field,
        format!("{field} is required"),
    )
}

fn too_large() -> ApiError {
    ApiError::for_field(
        ErrorCode::InvalidAmount,
        "amount_pence",
        format!("amount_pence must be at most {MAX_AMOUNT_PENCE}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        let err = InvestRequest::parse(body.as_bytes()).unwrap_err();
        // A readable object with a wrong value is the client's to fix: 422.
        assert_eq!(err.http_status(), 422, "{body}: {err}");
        err.field
    }

    #[test]
    fn accepts_a_good_request() {
        let req = InvestRequest::parse(br#"{"investor_id":"inv-1","amount_pence":5000}"#).unwrap();
        assert_eq!(
            req,
            InvestRequest {
                investor_id: Some("inv-1".into()),
                amount_pence: 5000
            }
        );
    }

    #[test]
    fn the_investor_id_is_optional_since_the_pass_names_the_investor() {
        for body in [
            r#"{"amount_pence":5000}"#,
            r#"{"investor_id":null,"amount_pence":5000}"#,
        ] {
            assert_eq!(
                InvestRequest::parse(body.as_bytes()).unwrap(),
                InvestRequest {
                    investor_id: None,
                    amount_pence: 5000
                },
                "{body}"
            );
        }
        // Left out, it is left out of the JSON the edge forwards too.
        let req = InvestRequest {
            investor_id: None,
            amount_pence: 5000,
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"amount_pence":5000}"#
        );
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(
            field_of(r#"{"investor_id":"","amount_pence":5000}"#).as_deref(),
            Some("investor_id")
        );
        assert_eq!(
            field_of(r#"{"investor_id":"a"}"#).as_deref(),
            Some("amount_pence")
        );
        for amount in [
            "0",
            "-1",
            "10.5",
            "\"100\"",
            "1e3",
            "99999999999999999999",
            "100000000001",
            "true",
        ] {
            let body = format!(r#"{{"investor_id":"a","amount_pence":{amount}}}"#);
            assert_eq!(field_of(&body).as_deref(), Some("amount_pence"), "{amount}");
        }
        assert_eq!(
            field_of(r#"{"investor_id":7,"amount_pence":1}"#).as_deref(),
            Some("investor_id")
        );
        assert_eq!(
            field_of(r#"{"investor_id":"a b","amount_pence":1}"#).as_deref(),
            Some("investor_id")
        );
    }

    #[test]
    fn a_huge_whole_amount_is_too_large_not_a_fraction() {
        let err =
            InvestRequest::parse(br#"{"investor_id":"a","amount_pence":99999999999999999999999}"#)
                .unwrap_err();
        assert!(!err.message.contains("fraction"), "{}", err.message);
        assert_eq!(err.field.as_deref(), Some("amount_pence"));
    }

    #[test]
    fn a_repeated_amount_is_refused_not_guessed() {
        let err = InvestRequest::parse(
            br#"{"investor_id":"a","amount_pence":1000,"amount_pence":200000}"#,
        )
        .unwrap_err();
        assert_eq!(
            (err.error, err.field.as_deref()),
            (ErrorCode::DuplicateField, Some("amount_pence"))
        );
        assert_eq!(err.http_status(), 400);
    }

    #[test]
    fn malformed_bodies_are_malformed_json() {
        for body in ["", "{", "[]", "null", "\"x\""] {
            let err = InvestRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.error, ErrorCode::MalformedJson, "{body}");
            assert_eq!(err.http_status(), 400);
        }
    }

    #[test]
    fn pounds_to_pence_exactly() {
        for (text, pence) in [
            ("250", 25_000),
            ("250.5", 25_050),
            ("£1,250.07", 125_007),
            ("1,250", 125_000),
            ("12,345,678.90", 1_234_567_890),
            (" 0.01 ", 1),
        ] {
            assert_eq!(parse_pounds(text).unwrap(), pence, "{text}");
        }
        for text in [
            "", "abc", "1.234", "-5", "0", "0.00", "1e3", "12.", ".5", "1 000",
            // Regression: commas were dropped, so "12,50" invested £1,250.
            "12,50", "2,50", "1,0,0", ",100", "1,2345", "1,", "£,5",
        ] {
            let result = parse_pounds(text);
            if text == "12." {
                assert_eq!(result.unwrap(), 1_200);
                continue;
            }
            assert!(result.is_err(), "{text:?}");
        }
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key(None).is_err());
        assert!(validate_idempotency_key(Some("  ")).is_err());
        assert!(validate_idempotency_key(Some("has space")).is_err());
        let too_long = validate_idempotency_key(Some(&"k".repeat(129))).unwrap_err();
        assert_eq!(
            (too_long.error, too_long.field.as_deref()),
            (ErrorCode::InvalidField, Some("Idempotency-Key"))
        );
        assert!(validate_idempotency_key(Some(&"k".repeat(128))).is_ok());
        assert_eq!(
            validate_idempotency_key(Some("abc-123")).unwrap(),
            "abc-123"
        );
    }
}
