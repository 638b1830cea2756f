//! Request size limits, enforced before a component sees the request.
//! (Public: the limits' values; the checks are the server's.)
//!
//! A guest streams its request body into linear memory, so without a limit
//! one large upload grows an instance until the pool runs dry and every
//! visitor gets 503 "busy". The host therefore refuses oversized requests
//! itself, cheaply and with a precise JSON error:
//!
//! - the request target (URI) beyond [`MAX_URI_BYTES`] → 414 `uri_too_long`;
//! - the request line plus headers beyond [`MAX_HEAD_BYTES`] → 431
//!   `headers_too_large`;
//! - a body beyond its route's limit ([`BodyLimits`]) → 413
//!   `body_too_large`. A declared `Content-Length` over the limit is refused
//!   before a byte of the body is read; a body of unknown length (chunked) is
//!   buffered up to the limit and refused as soon as it passes it. Bodies are
//!   small in this application (forms, JSON), so buffering them costs little
//!   and lets the guest see a body of known size.
//!
//! hyper's own read buffer is set to [`HYPER_MAX_BUF_BYTES`], well above both
//! head limits, so these checks answer first; what hyper still refuses
//! itself (heads beyond that buffer, targets beyond its 64 KiB maximum,
//! unparsable requests) is turned into the same JSON by `crowdgate_conn_io`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Uri};
use http_body_util::combinators::WithTrailers;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;

use crate::http_error::HostError;

/// Longest request target (the URI in the request line) the host accepts.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line and headers) the host accepts.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Default body limit of a route.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;
/// hyper's per-connection read buffer limit. Heads up to it are parsed and
/// reach the host's own checks above; beyond it hyper refuses them (431).
/// It also bounds what one connection can make the host hold in memory, so
/// it is not larger than needed: it is lower than hyper's ~400 KiB default.
pub const HYPER_MAX_BUF_BYTES: usize = 256 * 1024;

/// Refuses a request whose target or head is too large.
pub(crate) fn check_head<B>(req: &Request<B>) -> Result<(), HostError> {
    let target = target_len(req.uri());
    if target > MAX_URI_BYTES {
        return Err(HostError::UriTooLong { len: Some(target) });
    }
    let size = head_size(req, target);
    if size > MAX_HEAD_BYTES {
        return Err(HostError::HeadersTooLarge { size: Some(size) });
    }
    Ok(())
}

/// Length of the request target as it appeared in the request line.
fn target_len(uri: &Uri) -> usize {
    let path_and_query = uri.path_and_query().map_or(0, |p| p.as_str().len());
    match (uri.scheme_str(), uri.authority()) {
        // absolute-form: `http://host/path`
        (Some(scheme), Some(authority)) => {
            scheme.len() + "://".len() + authority.as_str().len() + path_and_query
        }
        // authority-form (CONNECT): `host:port`
        (None, Some(authority)) => authority.as_str().len() + path_and_query,
        _ => path_and_query,
    }
}

/// Size of the request head on the wire: `METHOD target HTTP/1.1\r\n`, each
/// `name: value\r\n`, and the final `\r\n`. hyper does not expose the raw
/// size, and this reconstruction is exact for well-formed requests.
fn head_size<B>(req: &Request<B>, target: usize) -> usize {
    let request_line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line + headers + 2
}

/// Body limits by route: a default and overrides for routes as written in
/// the manifest (`/api/...`).
#[derive(Debug, Clone)]
pub(crate) struct BodyLimits {
    default: u64,
    routes: HashMap<String, u64>,
}

impl BodyLimits {
    /// `default` everywhere except the routes in `routes`.
    pub(crate) fn new(default: u64, routes: HashMap<String, u64>) -> BodyLimits {
        BodyLimits { default, routes }
    }

    /// The limit for a request matched to `route`.
    pub(crate) fn for_route(&self, route: &str) -> u64 {
        self.routes.get(route).copied().unwrap_or(self.default)
    }
}

/// How the host passes a body to the guest once it is within the limit.
pub(crate) enum CheckedBody<B> {
    /// It is empty: nothing to read.
    Stream(B),
    /// It was read to the end, within the limit.
    Buffered(BufferedBody),
}

/// A fully read body, with its trailers if it had any.
pub(crate) type BufferedBody =
    WithTrailers<Full<Bytes>, Ready<Option<Result<HeaderMap, Infallible>>>>;

/// Applies `limit` to `body`: refuses a declared length over it at once,
/// and reads any other body until its end or until it passes the limit,
/// whichever comes first. Every body is read here, before the guest runs
/// (bodies are small), so a client that stalls or hangs up mid-body gets a
/// 408 or 400 from the host — never a guest left waiting until its timeout
/// and a 500 for the client's own failure.
pub(crate) async fn check_body<B>(
    body: B,
    limit: u64,
    route: &str,
) -> Result<CheckedBody<B>, HostError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let too_large = || HostError::BodyTooLarge {
        limit,
        route: route.to_string(),
    };
    let hint = body.size_hint();
    // For hyper's `Incoming`, a `Content-Length` body's hint is exact.
    if hint.lower() > limit {
        return Err(too_large());
    }
    if body.is_end_stream() {
        return Ok(CheckedBody::Stream(body));
    }
    let mut body = body;
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| HostError::BadBody)?;
        match frame.into_data() {
            Ok(chunk) => {
                // Checked before copying: at most `limit` bytes are ever held.
                if (data.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                data.extend_from_slice(&chunk);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    let body = Full::new(data.freeze()).with_trailers(ready(trailers.map(Ok)));
    Ok(CheckedBody::Buffered(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Frame;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn head_size_counts_the_wire_bytes() {
        let req = request("/a?b=c", &[("host", "x"), ("accept", "*/*")]);
        let wire = "GET /a?b=c HTTP/1.1\r\nhost: x\r\naccept: */*\r\n\r\n";
        assert_eq!(head_size(&req, target_len(req.uri())), wire.len());
        let absolute = request("http://example.com:8080/a", &[]);
        assert_eq!(
            target_len(absolute.uri()),
            "http://example.com:8080/a".len()
        );
    }

    #[test]
    fn long_target_and_large_head_are_refused() {
        let ok = request(&format!("/{}", "a".repeat(MAX_URI_BYTES - 1)), &[]);
        assert_eq!(check_head(&ok), Ok(()));
        let long = request(&format!("/{}", "a".repeat(MAX_URI_BYTES)), &[]);
        assert_eq!(
            check_head(&long),
            Err(HostError::UriTooLong {
                len: Some(MAX_URI_BYTES + 1)
            })
        );
        let value = "v".repeat(1024);
        let names: Vec<String> = (0..32).map(|i| format!("x-h{i}")).collect();
        let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), &*value)).collect();
        let big = request("/", &headers);
        assert!(matches!(
            check_head(&big),
            Err(HostError::HeadersTooLarge { size: Some(s) }) if s > MAX_HEAD_BYTES
        ));
    }

    #[test]
    fn route_overrides_win_over_the_default() {
        let limits = BodyLimits::new(10, HashMap::from([("/big/...".to_string(), 100)]));
        assert_eq!(limits.for_route("/big/..."), 100);
        assert_eq!(limits.for_route("/..."), 10);
    }

    /// A body of unknown length (like a chunked request), one frame per chunk.
    struct Chunked(std::collections::VecDeque<&'static str>);

    impl Body for Chunked {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let next = self.0.pop_front();
            std::task::Poll::Ready(next.map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes())))))
        }
    }

    fn chunked(chunks: &[&'static str]) -> Chunked {
        Chunked(chunks.iter().copied().collect())
    }

    #[tokio::test]
    async fn declared_length_is_checked_without_reading() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        assert!(matches!(
            check_body(body.clone(), 9, "/r").await,
            Err(HostError::BodyTooLarge { limit: 9, .. })
        ));
        // Within the limit it is read whole before the guest runs, so a
        // client that stalls mid-body never leaves a guest waiting.
        let Ok(CheckedBody::Buffered(read)) = check_body(body, 10, "/r").await else {
            panic!("a declared body within the limit is read whole");
        };
        assert_eq!(read.collect().await.unwrap().to_bytes(), "0123456789");
        assert!(matches!(
            check_body(Full::new(Bytes::new()), 10, "/r").await,
            Ok(CheckedBody::Stream(_))
        ));
    }

    #[tokio::test]
    async fn unknown_length_is_buffered_up_to_the_limit() {
        let Ok(CheckedBody::Buffered(body)) = check_body(chunked(&["ab", "cd"]), 4, "/r").await
        else {
            panic!("a body within the limit is buffered");
        };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcd");
        assert!(matches!(
            check_body(chunked(&["ab", "cd", "e"]), 4, "/r").await,
            Err(HostError::BodyTooLarge { .. })
        ));
    }
}
