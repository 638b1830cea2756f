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
        let status = if body.error == "malformed_json" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
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

fn json_body(body: &ApiError) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], body.to_json())
}
