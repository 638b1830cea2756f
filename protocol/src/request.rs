//! What a request to Crowdgate's API must carry — a bearer credential, a
//! JSON content type — checked by the same pure functions at the edge and
//! in core.
//!
//! Each takes the raw header value (`None` when absent), so the Spin
//! components and axum call them alike without sharing an HTTP library.

use crate::error::{ApiError, ErrorCode};
use crate::token::Credential;

/// The token of an `Authorization: Bearer <token>` header value (either
/// capitalisation of the scheme, surrounding spaces trimmed); `None` when
/// absent, another scheme, or empty.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim()).filter(|t| !t.is_empty())
}

/// The bearer token carrying `credential`, or 401 `missing_pass` /
/// `missing_ticket` naming the `Authorization` header.
pub fn require_bearer(
    authorization: Option<&str>,
    credential: Credential,
) -> Result<&str, ApiError> {
    bearer_token(authorization).ok_or_else(|| missing_credential(credential))
}

/// 401 `missing_pass` / `missing_ticket`: no `credential` was presented.
pub fn missing_credential(credential: Credential) -> ApiError {
    let what = credential.field();
    ApiError::for_field(
        credential.missing(),
        "Authorization",
        format!("send your {what} as `Authorization: Bearer <{what}>`"),
    )
}

/// Whether a `Content-Type` value is JSON (`application/json`, parameters
/// such as `; charset=utf-8` allowed); 415 `unsupported_content_type`
/// otherwise.
pub fn require_json(content_type: Option<&str>) -> Result<(), ApiError> {
    let media_type = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .map(str::trim)
        .unwrap_or("");
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::for_field(
            ErrorCode::UnsupportedContentType,
            "Content-Type",
            "send the body as application/json",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        for refused in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Basic abc"),
            Some("abc"),
        ] {
            assert_eq!(bearer_token(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn a_missing_credential_is_401_naming_the_header() {
        let err = require_bearer(None, Credential::Pass).unwrap_err();
        assert_eq!(
            (err.error, err.http_status(), err.field.as_deref()),
            (ErrorCode::MissingPass, 401, Some("Authorization"))
        );
        let err = require_bearer(Some("Basic x"), Credential::Ticket).unwrap_err();
        assert_eq!(err.error, ErrorCode::MissingTicket);
        assert_eq!(require_bearer(Some("Bearer t"), Credential::Pass), Ok("t"));
    }

    #[test]
    fn json_content_types() {
        assert!(require_json(Some("application/json")).is_ok());
        assert!(require_json(Some("application/json; charset=utf-8")).is_ok());
        assert!(require_json(Some("Application/JSON")).is_ok());
        for refused in [
            None,
            Some(""),
            Some("text/plain"),
            Some("application/jsonx"),
        ] {
            let err = require_json(refused).unwrap_err();
            assert_eq!(err.http_status(), 415, "{refused:?}");
        }
    }
}
