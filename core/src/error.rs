//! HTTP errors as values: every failure leaves core as a status code and a
//! JSON [`ApiError`] body, so clients never see an HTML page or a bare 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crowdgate_protocol::ApiError;

/// A response that went wrong, with its status.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub body: ApiError,
    /// Seconds for `Retry-After` on 503s.
    pub retry_after_s: Option<u32>,
}

impl Failure {
    pub fn new(status: StatusCode, body: ApiError) -> Failure {
        Failure {
            status,
            body,
            retry_after_s: None,
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, ApiError::new(code, message))
    }

    /// 401: the caller did not prove who it is (`field` names the header).
    pub fn unauthorized(field: &str, message: impl Into<String>) -> Failure {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            ApiError::for_field("unauthorized", field, message),
        )
    }

    /// 413: the body is larger than core reads.
    pub fn body_too_large() -> Failure {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::for_field(
                "body_too_large",
                "body",
                format!(
                    "the request body is larger than {} bytes",
                    crowdgate_protocol::api::MAX_BODY_BYTES
                ),
            ),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, ApiError::new("not_found", message))
    }

    /// Redis is unreachable or timed out: a retryable outage, not a bug.
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: ApiError::new("unavailable", message),
            retry_after_s: Some(1),
        }
    }
}

impl From<ApiError> for Failure {
    /// Validation errors from the protocol crate are the client's to fix.
    fn from(body: ApiError) -> Failure {
        let status = StatusCode::from_u16(crowdgate_protocol::invest::status_for(&body))
            .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        Failure::new(status, body)
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
        _ => Failure::new(
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
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_content_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal_error",
    }
}

fn json_body(body: &ApiError) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], body.to_json())
}
