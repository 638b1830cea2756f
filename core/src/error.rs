//! HTTP errors as values: every failure leaves core as a status code and a
//! JSON [`ApiError`] body, so clients never see an HTML page or a bare 500.
//!
//! A [`Failure`] is built from an [`ErrorCode`], and its status is the
//! code's ([`ErrorCode::http_status`]): core, the edge and the waiting room
//! answer one mistake with one status. The only exception is
//! [`json_errors`], which rewrites axum's own plain-text rejections and keeps
//! whatever status axum chose.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crowdgate_protocol::{ApiError, ErrorCode};

/// A response that went wrong, with its status.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    pub body: ApiError,
    /// Seconds for `Retry-After` (503s, 429s).
    pub retry_after_s: Option<u32>,
}

impl Failure {
    /// `code` with `message`; the status is the code's.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure::from(ApiError::new(code, message))
    }

    /// `code` about request field `field`; the status is the code's.
    pub fn for_field(code: ErrorCode, field: &str, message: impl Into<String>) -> Failure {
        Failure::from(ApiError::for_field(code, field, message))
    }

    /// Adds `Retry-After: seconds`.
    pub fn with_retry_after(mut self, seconds: u32) -> Failure {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The status this failure is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 401: the caller did not prove who it is (`field` names the header).
    pub fn unauthorized(field: &str, message: impl Into<String>) -> Failure {
        Failure::for_field(ErrorCode::Unauthorized, field, message)
    }

    /// 413: the body is larger than core reads.
    pub fn body_too_large() -> Failure {
        Failure::from(crowdgate_protocol::attempt::body_too_large())
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::NotFound, message)
    }

    /// Redis is unreachable or timed out: a retryable outage, not a bug.
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::Unavailable, message).with_retry_after(1)
    }

    /// At capacity: shedding this request rather than queueing it.
    pub fn overloaded(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::Overloaded, message).with_retry_after(1)
    }

    /// An answer axum made without our JSON body, rewritten into it with
    /// axum's status kept (see [`json_errors`]).
    fn rewritten(status: StatusCode, body: ApiError) -> Failure {
        Failure {
            status,
            body,
            retry_after_s: None,
        }
    }
}

impl From<ApiError> for Failure {
    /// Any protocol error (a refused body, pass or id) with its code's status.
    fn from(body: ApiError) -> Failure {
        let status =
            StatusCode::from_u16(body.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure {
            status,
            body,
            retry_after_s: None,
        }
    }
}

impl From<redis::RedisError> for Failure {
    fn from(err: redis::RedisError) -> Failure {
        tracing::warn!(error = %err, "redis call failed");
        Failure::unavailable("the round's data store is unavailable; try again shortly")
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, json_body(&self.body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Middleware: any error answer that is not already our JSON shape (axum's
/// own rejections — a wrong method, an unreadable path, a body over the
/// limit — are plain text) is rewritten into it, keeping the status.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let mut failure = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Failure::body_too_large(),
        _ => Failure::rewritten(
            status,
            ApiError::new(
                code_for(status),
                if message.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    message
                },
            ),
        ),
    };
    failure.retry_after_s = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut response = failure.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        response.headers_mut().insert(header::ALLOW, allow.clone());
    }
    response
}

/// A code for a status whose answer came without one.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedContentType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidRequest,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::InternalError,
    }
}

fn json_body(body: &ApiError) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], body.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_the_codes() {
        for code in ErrorCode::ALL {
            let failure = Failure::new(code, "x");
            assert_eq!(failure.status().as_u16(), code.http_status(), "{code:?}");
        }
        assert_eq!(
            Failure::body_too_large().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(Failure::unavailable("x").retry_after_s, Some(1));
        assert_eq!(Failure::overloaded("x").body.error.as_str(), "overloaded");
    }

    #[test]
    fn rewritten_rejections_keep_a_code_of_their_status_class() {
        for status in [400, 404, 405, 415, 422, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(code_for(status).http_status(), status.as_u16(), "{status}");
        }
        assert_eq!(code_for(StatusCode::LENGTH_REQUIRED), ErrorCode::BadRequest);
        assert_eq!(
            code_for(StatusCode::INTERNAL_SERVER_ERROR),
            ErrorCode::InternalError
        );
    }
}
