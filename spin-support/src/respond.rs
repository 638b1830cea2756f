//! Responses the components send: JSON bodies and JSON errors.

use crowdgate_protocol::ApiError;
use crowdgate_protocol::api::MAX_BODY_BYTES;
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

/// An error: `status` with the [`ApiError`] body.
pub fn error(status: u16, body: ApiError) -> Response {
    json(status, &body)
}

/// 503 with `Retry-After`: core is away or shedding; the visitor keeps their
/// ticket or pass and simply tries again.
pub fn unavailable(message: &str) -> Response {
    let mut response = error(503, ApiError::new("unavailable", message));
    response.set_header("retry-after", "1");
    response
}

/// 405 naming the methods that work.
pub fn method_not_allowed(allowed: &str) -> Response {
    let mut response = error(
        405,
        ApiError::new("method_not_allowed", format!("use {allowed} here")),
    );
    response.set_header("allow", allowed);
    response
}

/// 413: the body is larger than [`MAX_BODY_BYTES`]. The host already
/// refuses such bodies before they reach a component (`crowdgate host`);
/// this keeps the promise under any host, `spin up` included.
pub fn too_large() -> Response {
    error(
        413,
        ApiError::for_field(
            "body_too_large",
            "body",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        ),
    )
}

/// The body's size, checked before anything reads it.
pub fn check_body_size(request: &spin_sdk::http::Request) -> Result<(), Response> {
    if request.body().len() > MAX_BODY_BYTES {
        Err(too_large())
    } else {
        Ok(())
    }
}

pub fn not_found(path: &str) -> Response {
    error(
        404,
        ApiError::new("not_found", format!("no route for {path}")),
    )
}

/// Passes core's status and JSON body through unchanged (plus the
/// `Retry-After` and remaining-pence headers clients rely on).
pub fn relay(response: Response) -> Response {
    let mut out = Response::builder()
        .status(*response.status())
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(response.body().to_vec())
        .build();
    for name in ["retry-after", "x-crowdgate-remaining-pence"] {
        if let Some(value) = response.header(name).and_then(|v| v.as_str()) {
            out.set_header(name, value);
        }
    }
    out
}
