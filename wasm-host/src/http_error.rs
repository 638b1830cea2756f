//! The errors the host answers itself, and their one JSON shape.
//!
//! Clients (the waiting-room page, scripts, load balancers' health checks)
//! parse every non-component answer the same way, so every status the host
//! produces — routing, limits, overload, guest failures, and even requests
//! hyper could not parse — carries protocol's one error shape
//! (`crowdgate_protocol::ApiError`: `{"error", "field"?, "message"}`) with
//! `content-type: application/json`. [`HostError`] says what went wrong; its
//! code is an [`ErrorCode`] (so the host cannot drift from the codes and
//! statuses every other process uses), [`HostError::response`] renders it
//! for the service, and [`HostError::refused_by_hyper`] words the requests
//! hyper refuses for `crowdgate_conn_io`, which replaces hyper's bodyless
//! automatic answers.

use std::convert::Infallible;

use bytes::Bytes;
use crowdgate_conn_io::Refused;
use crowdgate_protocol::{ApiError, ErrorCode};
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
    /// The HTTP status of this error (its code's).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).expect("every code's status is valid")
    }

    /// The machine-readable `error` code.
    pub fn code(&self) -> ErrorCode {
        match self {
            HostError::NotFound { .. } => ErrorCode::NotFound,
            HostError::UriTooLong { .. } => ErrorCode::UriTooLong,
            HostError::HeadersTooLarge { .. } => ErrorCode::HeadersTooLarge,
            HostError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            HostError::BodyTimeout => ErrorCode::BodyTimeout,
            HostError::BadBody | HostError::BadRequest => ErrorCode::BadRequest,
            HostError::Overloaded => ErrorCode::Overloaded,
            HostError::ComponentFailed { .. } => ErrorCode::ComponentFailed,
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

    /// The error in the one JSON shape.
    pub fn api_error(&self) -> ApiError {
        ApiError {
            error: self.code(),
            field: self.field().map(str::to_string),
            message: self.message(),
        }
    }

    /// The JSON body.
    pub fn json(&self) -> String {
        self.api_error().to_json()
    }

    /// What `crowdgate_conn_io` answers for a request hyper refused before
    /// the host saw it (worded with the host's limits), counted like the
    /// host's own refusals.
    pub fn refused_by_hyper(refused: Refused) -> ApiError {
        let error = match refused {
            Refused::BadRequest => HostError::BadRequest,
            Refused::UriTooLong => HostError::UriTooLong { len: None },
            Refused::HeadersTooLarge => HostError::HeadersTooLarge { size: None },
        };
        metrics::counter!(
            "crowdgate_host_requests_total",
            "component" => "none",
            "status" => error.status().as_u16().to_string()
        )
        .increment(1);
        error.api_error()
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
    fn every_host_error_is_a_protocol_error_with_its_status() {
        let all = [
            HostError::NotFound { path: "/x".into() },
            HostError::UriTooLong { len: Some(9000) },
            HostError::UriTooLong { len: None },
            HostError::HeadersTooLarge { size: None },
            HostError::BodyTooLarge {
                limit: 1,
                route: "/...".into(),
            },
            HostError::BodyTimeout,
            HostError::BadBody,
            HostError::BadRequest,
            HostError::Overloaded,
            HostError::ComponentFailed {
                component: "c".into(),
            },
        ];
        for error in all {
            let parsed: ApiError = serde_json::from_str(&error.json()).unwrap();
            assert_eq!(parsed, error.api_error());
            assert_eq!(error.status().as_u16(), parsed.http_status(), "{error:?}");
        }
        for refused in [
            Refused::BadRequest,
            Refused::UriTooLong,
            Refused::HeadersTooLarge,
        ] {
            assert_eq!(
                HostError::refused_by_hyper(refused).error,
                refused.api_error().error
            );
        }
    }
}
