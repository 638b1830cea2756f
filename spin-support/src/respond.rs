//! Responses the components send: JSON bodies and JSON errors. An error's
//! status is always its code's ([`ErrorCode::http_status`]).

use crowdgate_protocol::api::MAX_BODY_BYTES;
use crowdgate_protocol::{ApiError, ErrorCode};
use serde::Serialize;
use spin_sdk::http::Response;

/// `status` with `body` as JSON.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(serde_json::to_vec(body).expect("our types serialise"))
        .build()
}

/// An error: the [`ApiError`] body with its code's status.
pub fn error(body: ApiError) -> Response {
    json(body.http_status(), &body)
}

/// 503 with `Retry-After`: core is away or shedding; the visitor keeps their
/// ticket or pass and simply tries again.
pub fn unavailable(message: &str) -> Response {
    let mut response = error(ApiError::new(ErrorCode::Unavailable, message));
    response.set_header("retry-after", "1");
    response
}

/// 405 naming the methods that work.
pub fn method_not_allowed(allowed: &str) -> Response {
    let mut response = error(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("use {allowed} here"),
    ));
    response.set_header("allow", allowed);
    response
}

/// The body's size, checked before anything reads it: 413 over
/// [`MAX_BODY_BYTES`]. The host already refuses such bodies before they
/// reach a component (`crowdgate host`); this keeps the promise under any
/// host, `spin up` included.
pub fn check_body_size(request: &spin_sdk::http::Request) -> Result<(), Response> {
    if request.body().len() > MAX_BODY_BYTES {
        Err(error(crowdgate_protocol::attempt::body_too_large()))
    } else {
        Ok(())
    }
}

pub fn not_found(path: &str) -> Response {
    error(ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {path}"),
    ))
}
