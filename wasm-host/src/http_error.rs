//! The errors the host answers itself, and their one JSON shape.
//!
//! Clients (the waiting-room page, scripts, load balancers' health checks)
//! parse every non-component answer the same way, so every status the host
//! produces — routing, limits, overload, guest failures, and even requests
//! hyper could not parse — carries `{"error": code, "field"?: name,
//! "message": text}` with `content-type: application/json`. This module owns
//! that shape: [`HostError`] says what went wrong, [`HostError::response`]
//! renders it for the service, and [`HostError::raw_response`] renders a
//! complete HTTP/1.x response for the connection wrapper in `conn_io`, which
//! replaces hyper's bodyless automatic answers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::limits::{MAX_HEAD_BYTES, MAX_URI_BYTES};

/// Something the host answers instead of (or before) a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// No route matches the path.
    NotFound {
        /// The request path.
        path: String,
    },
    /// The request target is longer than [`MAX_URI_BYTES`] (`len` is its
    /// length when the host measured it, `None` when hyper refused it).
    UriTooLong {
        /// The target's length in bytes, if known.
        len: Option<usize>,
    },
    /// The request line and headers exceed [`MAX_HEAD_BYTES`] (or hyper's
    /// own header count or buffer limit, then `size` is `None`).
    HeadersTooLarge {
        /// The head's size in bytes, if known.
        size: Option<usize>,
    },
    /// The body is larger than the limit of its route.
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
        /// The route as written in the manifest.
        route: String,
    },
    /// The client did not finish sending its body within the request timeout.
    BodyTimeout,
    /// The request body could not be read (malformed chunking, client gone).
    BadBody,
    /// hyper could not parse the request at all.
    BadRequest,
    /// The instance pool is exhausted.
    Overloaded,
    /// The component trapped, timed out, never responded or answered an error.
    ComponentFailed {
        /// The component id.
        component: String,
    },
}

impl HostError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            HostError::NotFound { .. } => StatusCode::NOT_FOUND,
            HostError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            HostError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HostError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HostError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            HostError::BadBody | HostError::BadRequest => StatusCode::BAD_REQUEST,
            HostError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            HostError::ComponentFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            HostError::NotFound { .. } => "not_found",
            HostError::UriTooLong { .. } => "uri_too_long",
            HostError::HeadersTooLarge { .. } => "headers_too_large",
            HostError::BodyTooLarge { .. } => "body_too_large",
            HostError::BodyTimeout => "body_timeout",
            HostError::BadBody | HostError::BadRequest => "bad_request",
            HostError::Overloaded => "overloaded",
            HostError::ComponentFailed { .. } => "component_failed",
        }
    }

    /// The part of the request at fault, for errors about one part.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            HostError::UriTooLong { .. } => Some("uri"),
            HostError::HeadersTooLarge { .. } => Some("headers"),
            HostError::BodyTooLarge { .. } | HostError::BodyTimeout | HostError::BadBody => {
                Some("body")
            }
            _ => None,
        }
    }

    /// The human-readable `message`.
    pub fn message(&self) -> String {
        match self {
            HostError::NotFound { path } => format!("no route for {path}"),
            HostError::UriTooLong { len: Some(len) } => {
                format!("the request target is {len} bytes; the limit is {MAX_URI_BYTES} bytes")
            }
            HostError::UriTooLong { len: None } => {
                format!("the request target is longer than the limit of {MAX_URI_BYTES} bytes")
            }
            HostError::HeadersTooLarge { size: Some(size) } => format!(
                "the request line and headers are {size} bytes; the limit is {MAX_HEAD_BYTES} bytes"
            ),
            HostError::HeadersTooLarge { size: None } => format!(
                "the request line and headers exceed the limit of {MAX_HEAD_BYTES} bytes or hold too many headers"
            ),
            HostError::BodyTooLarge { limit, route } => {
                format!(
                    "the request body is larger than the limit of {limit} bytes for route {route}"
                )
            }
            HostError::BodyTimeout => "the request body was not received in time".into(),
            HostError::BadBody => "the request body could not be read".into(),
            HostError::BadRequest => "the request is not valid HTTP/1.1".into(),
            HostError::Overloaded => "too many requests in progress; retry shortly".into(),
            HostError::ComponentFailed { component } => {
                format!("component `{component}` failed to handle the request")
            }
        }
    }

    /// Whether the connection must be closed after answering: the request's
    /// body (or the rest of its head) was not read, so the connection is not
    /// at a message boundary, and a client sending that much should stop.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            HostError::UriTooLong { .. }
                | HostError::HeadersTooLarge { .. }
                | HostError::BodyTooLarge { .. }
                | HostError::BodyTimeout
                | HostError::BadBody
                | HostError::BadRequest
        )
    }

    /// The JSON body.
    pub fn json(&self) -> String {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), self.code().into());
        if let Some(field) = self.field() {
            body.insert("field".into(), field.into());
        }
        body.insert("message".into(), self.message().into());
        serde_json::Value::Object(body).to_string()
    }

    /// The response the service returns.
    pub fn response(&self) -> Response<HyperOutgoingBody> {
        let body = Full::new(Bytes::from(self.json()))
            .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
            .boxed_unsync();
        let mut response = Response::builder()
            .status(self.status())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("static response parts are valid");
        let headers = response.headers_mut();
        if self.closes_connection() {
            // hyper honours this: it closes the connection after the answer.
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if *self == HostError::Overloaded {
            // Clients back off and retry; nothing was done for them.
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    /// A complete HTTP/1.x response (`version` is e.g. `HTTP/1.1`), with
    /// `date_line` (a whole `date: ...\r\n` line, or empty) copied from the
    /// response it replaces. It always closes the connection.
    pub fn raw_response(&self, version: &str, date_line: &[u8]) -> Bytes {
        let body = self.json();
        let status = self.status();
        let mut out = format!(
            "{version} {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(date_line);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_the_error_and_the_field() {
        let e = HostError::BodyTooLarge {
            limit: 10,
            route: "/api/...".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(v["error"], "body_too_large");
        assert_eq!(v["field"], "body");
        assert!(v["message"].as_str().unwrap().contains("/api/..."));
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let v: serde_json::Value = serde_json::from_str(&HostError::Overloaded.json()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2, "no field: {v}");
    }

    #[test]
    fn raw_response_is_complete_http() {
        let raw = HostError::BadRequest.raw_response("HTTP/1.1", b"date: x\r\n");
        let text = std::str::from_utf8(&raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("connection: close"));
        assert!(head.ends_with("date: x"));
        assert!(body.contains("\"bad_request\""));
    }
}
