//! The socket wrapper under hyper that every Crowdgate HTTP server (core and
//! the wasm host) serves through: JSON for hyper's own error answers, and a
//! lingering close.
//!
//! **hyper's automatic answers.** A request hyper cannot parse (400), whose
//! target is beyond hyper's fixed 64 KiB maximum (414) or whose head does
//! not fit its read buffer or has too many headers (431) never reaches the
//! service: hyper answers it itself with a bodyless response and closes the
//! connection. hyper has no hook to change that answer, and clients must get
//! the one JSON error shape (`crowdgate_protocol::ApiError`) from every
//! process, so [`ConnIo`] recognises that response in the outgoing bytes and
//! writes [`raw_response`] of the [`Refused`] request's error instead.
//! Recognising it relies on two facts about hyper's HTTP/1 server:
//!
//! - each response head is encoded whole into hyper's write buffer, so a
//!   response that starts a write call starts at the beginning of `buf` (or
//!   of the first non-empty slice of a vectored write) and its head is
//!   entirely in it;
//! - hyper writes its automatic answer only when no response is in progress,
//!   as exactly a status line, `content-length: 0` and `date`.
//!
//! The service counts the responses it returns ([`ConnState`]); a head at
//! the start of a write is the service's own while any is owed, so a
//! service's own empty 400 (a component's, say) is never rewritten. Only a
//! head matching hyper's form exactly, when none is owed, is replaced. If
//! hyper ever wrote its answer mid-buffer the wrapper would let it through
//! unchanged: the status stays right, only the body is missing.
//!
//! The replacement is longer than what hyper handed over, and the socket may
//! take it in several writes. The wrapper reports hyper's head as written at
//! once, keeps the rest of the replacement, and writes it before any later
//! byte and before a flush or shutdown completes, so order and completeness
//! hold whatever the socket accepts per call.
//!
//! **Lingering close.** When a server refuses a request without reading its
//! body (413, 414, 431, 400), the client is usually still sending. Closing a
//! socket with unread input makes the kernel send a TCP reset, and a reset
//! can make the client's kernel drop our answer before the client reads it:
//! the client would see "connection reset" instead of 413. So on shutdown
//! after such a refusal the wrapper half-closes (the client sees the end of
//! the response), then reads and discards input until the client closes,
//! for at most [`LINGER_TIME`] and [`LINGER_MAX_BYTES`] — the discarded
//! bytes are never buffered or handed to a service. Other connections close
//! at once.
//!
//! Use: per connection, an `Arc<ConnState>` shared by the service (which
//! calls [`ConnState::response_returned`] for every response it returns)
//! and `ConnIo::new(socket, state)` handed to hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crowdgate_protocol::{ApiError, ErrorCode};

/// Longest a refused client is given to stop sending before the socket closes.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering; a client sending more gets a reset.
pub const LINGER_MAX_BYTES: u64 = 32 << 20;
/// hyper's automatic heads are ~80 bytes; nothing longer is looked at.
const AUTO_HEAD_MAX: usize = 256;

/// A request hyper refused before any service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not HTTP/1.x at all (hyper's 400).
    BadRequest,
    /// The request target is beyond hyper's maximum (414).
    UriTooLong,
    /// The head does not fit the read buffer or has too many headers (431).
    HeadersTooLarge,
}

impl Refused {
    /// The error in the one JSON shape, worded for any server; a server
    /// that knows its own limits words it itself ([`ConnState::new`]).
    pub fn api_error(self) -> ApiError {
        match self {
            Refused::BadRequest => {
                ApiError::new(ErrorCode::BadRequest, "the request is not valid HTTP/1.1")
            }
            Refused::UriTooLong => ApiError::for_field(
                ErrorCode::UriTooLong,
                "uri",
                "the request target is longer than this server accepts",
            ),
            Refused::HeadersTooLarge => ApiError::for_field(
                ErrorCode::HeadersTooLarge,
                "headers",
                "the request line and headers are larger than this server accepts or hold too many headers",
            ),
        }
    }
}

/// What the service tells the wrapper of its connection.
#[derive(Debug)]
pub struct ConnState {
    /// Responses the service returned whose head has not been seen yet.
    heads_owed: AtomicUsize,
    /// Whether the client may still be sending when the connection closes.
    linger: AtomicBool,
    /// Words (and may count) hyper's refusal of a request.
    on_refused: fn(Refused) -> ApiError,
}

impl Default for ConnState {
    /// Refusals answered with [`Refused::api_error`].
    fn default() -> ConnState {
        ConnState::new(Refused::api_error)
    }
}

impl ConnState {
    /// A connection whose refused requests are answered with
    /// `on_refused`'s error (called once per refusal, so it may also
    /// count them).
    pub fn new(on_refused: fn(Refused) -> ApiError) -> ConnState {
        ConnState {
            heads_owed: AtomicUsize::new(0),
            linger: AtomicBool::new(false),
            on_refused,
        }
    }

    /// The service returned a response; hyper will write its head next.
    pub fn response_returned(&self) {
        self.heads_owed.fetch_add(1, Ordering::SeqCst);
    }

    /// The service refused a request without reading it all.
    pub fn linger_on_close(&self) {
        self.linger.store(true, Ordering::SeqCst);
    }

    fn take_owed_head(&self) -> bool {
        self.heads_owed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Wraps a connection's socket; see the module documentation.
pub struct ConnIo<S> {
    inner: S,
    state: Arc<ConnState>,
    /// Replacement bytes still to write, before anything else.
    pending: Bytes,
    /// Set once hyper's answer was replaced: it is the connection's last.
    replaced: bool,
    close: Close,
}

enum Close {
    Open,
    Lingering {
        until: Pin<Box<Sleep>>,
        discarded: u64,
    },
    Closed,
}

impl<S> ConnIo<S> {
    /// Wraps `inner`; `state` is shared with the connection's service.
    pub fn new(inner: S, state: Arc<ConnState>) -> ConnIo<S> {
        ConnIo {
            inner,
            state,
            pending: Bytes::new(),
            replaced: false,
            close: Close::Open,
        }
    }
}

impl<S: AsyncWrite + Unpin> ConnIo<S> {
    /// Writes what is left of a replacement.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// If `buf` starts with hyper's automatic error head, queues its JSON
    /// replacement and returns the head's length (what hyper sees written).
    fn intercept(&mut self, buf: &[u8]) -> Option<usize> {
        // An interim `100 Continue` (hyper's, when a body is first read) is
        // neither the service's response nor an error: leave it alone.
        let interim = buf.get("HTTP/1.1 ".len()) == Some(&b'1');
        if self.replaced || !buf.starts_with(b"HTTP/1.") || interim || self.state.take_owed_head() {
            return None;
        }
        let (head_len, version, refused, date_line) = parse_automatic_answer(buf)?;
        let error = (self.state.on_refused)(refused);
        tracing::debug!(
            status = error.http_status(),
            "hyper refused a request; answering JSON"
        );
        self.pending = raw_response(&error, version, date_line.as_bytes());
        self.replaced = true;
        self.state.linger_on_close();
        Some(head_len)
    }

    /// After [`ConnIo::intercept`]: starts writing the replacement; the rest
    /// goes out with the next write, flush or shutdown.
    fn consumed(&mut self, cx: &mut Context<'_>, head_len: usize) -> Poll<io::Result<usize>> {
        match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(head_len)),
        }
    }
}

/// A complete HTTP/1.x response carrying `error` (`version` is e.g.
/// `HTTP/1.1`), with `date_line` (a whole `date: ...\r\n` line, or empty)
/// copied from the response it replaces. It always closes the connection.
pub fn raw_response(error: &ApiError, version: &str, date_line: &[u8]) -> Bytes {
    let body = error.to_json();
    let status = error.http_status();
    let mut out = format!(
        "{version} {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(date_line);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    Bytes::from(out)
}

/// The reason phrase of the statuses hyper refuses with.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "",
    }
}

/// Recognises hyper's automatic error response at the start of `buf`:
/// `HTTP/1.x 400|414|431 Reason`, then only `content-length: 0`, `date`
/// and possibly `connection`. Returns the head's length, the HTTP version,
/// what was refused and the `date` line.
fn parse_automatic_answer(buf: &[u8]) -> Option<(usize, &str, Refused, String)> {
    let window = &buf[..buf.len().min(AUTO_HEAD_MAX)];
    let end = window.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let (version, status) = lines.next()?.split_once(' ')?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return None;
    }
    let refused = match status.get(..3)? {
        "400" => Refused::BadRequest,
        "414" => Refused::UriTooLong,
        "431" => Refused::HeadersTooLarge,
        _ => return None,
    };
    let mut empty = false;
    let mut date_line = String::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") && value.trim() == "0" {
            empty = true;
        } else if name.eq_ignore_ascii_case("date") {
            date_line = format!("{line}\r\n");
        } else if !name.eq_ignore_ascii_case("connection") {
            return None;
        }
    }
    if !empty {
        return None;
    }
    Some((end + 4, version, refused, date_line))
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(head_len) = self.intercept(buf) {
            return self.consumed(cx, head_len);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // Empty slices before the first non-empty one count for nothing, so
        // the head's length is also what was "written" of `bufs`.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(head_len) = self.intercept(first)
        {
            return self.consumed(cx, head_len);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        let this = &mut *self;
        loop {
            match &mut this.close {
                Close::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.close = if this.state.linger.load(Ordering::SeqCst) {
                        Close::Lingering {
                            until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                            discarded: 0,
                        }
                    } else {
                        Close::Closed
                    };
                }
                Close::Lingering { until, discarded } => {
                    if until.as_mut().poll(cx).is_ready() {
                        this.close = Close::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut read = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read)) {
                        Ok(()) if !read.filled().is_empty() => {
                            *discarded += read.filled().len() as u64;
                            if *discarded > LINGER_MAX_BYTES {
                                this.close = Close::Closed;
                            }
                        }
                        // The client closed its side (or the socket failed):
                        // nothing more can be lost by closing.
                        _ => this.close = Close::Closed,
                    }
                }
                Close::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";

    /// Writes `bytes` through a wrapper over a pipe that takes only a few
    /// bytes per write, shuts down, and returns what the peer received.
    async fn through(state: Arc<ConnState>, bytes: &'static [u8]) -> String {
        let (ours, mut peer) = duplex(7);
        let mut io = ConnIo::new(ours, state);
        let writer = tokio::spawn(async move {
            io.write_all(bytes).await?;
            io.flush().await?;
            io.shutdown().await
        });
        let mut received = Vec::new();
        peer.read_to_end(&mut received).await.unwrap();
        // Closing our side ends a lingering shutdown.
        drop(peer);
        writer.await.unwrap().unwrap();
        String::from_utf8(received).unwrap()
    }

    #[tokio::test]
    async fn hyper_answer_is_replaced_with_json_across_partial_writes() {
        let state = Arc::new(ConnState::default());
        let got = through(state.clone(), HYPER_431).await;
        let (head, body) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{got}");
        assert!(head.contains("content-type: application/json"), "{got}");
        assert!(
            head.contains("date: Thu, 01 Jan 2026 00:00:00 GMT"),
            "{got}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "headers_too_large");
        assert!(state.linger.load(Ordering::SeqCst));
    }

    #[test]
    fn raw_response_is_complete_http() {
        let raw = raw_response(&Refused::BadRequest.api_error(), "HTTP/1.1", b"date: x\r\n");
        let text = std::str::from_utf8(&raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("connection: close"));
        assert!(head.ends_with("date: x"));
        let error: ApiError = serde_json::from_str(body).unwrap();
        assert_eq!(error.error, ErrorCode::BadRequest);
    }

    /// hyper's HTTP/1 server over the wrapper, as core and the host run it.
    async fn hyper_answers(request: &'static [u8]) -> String {
        let (ours, mut peer) = duplex(1 << 16);
        let state = Arc::new(ConnState::default());
        let service = hyper::service::service_fn(|_| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
        });
        let server = tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
            hyper_util::rt::TokioIo::new(ConnIo::new(ours, state)),
            service,
        ));
        peer.write_all(request).await.unwrap();
        let mut received = Vec::new();
        peer.read_to_end(&mut received).await.unwrap();
        drop(peer);
        let _ = server.await;
        String::from_utf8(received).unwrap()
    }

    #[tokio::test]
    async fn hypers_own_refusals_become_json() {
        let got = hyper_answers(b"this is not http\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
        assert!(got.contains(r#""error":"bad_request""#), "{got}");
        let headers: String = (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect();
        let request = format!("GET / HTTP/1.1\r\nhost: x\r\n{headers}\r\n");
        let got = hyper_answers(request.leak().as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
        assert!(got.contains(r#""error":"headers_too_large""#), "{got}");
    }

    #[tokio::test]
    async fn a_servers_own_wording_is_used() {
        let state = Arc::new(ConnState::new(|_| {
            ApiError::for_field(ErrorCode::HeadersTooLarge, "headers", "over 32 KiB")
        }));
        let got = through(state, HYPER_431).await;
        assert!(got.ends_with(r#""message":"over 32 KiB"}"#), "{got}");
    }

    #[tokio::test]
    async fn owed_service_heads_and_other_responses_pass_through() {
        // A component's own empty 400 looks like hyper's: it is owed, so kept.
        let state = Arc::new(ConnState::default());
        state.response_returned();
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(through(state, own).await.as_bytes(), own);

        let other = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-guest: 1\r\n\r\n";
        let state = Arc::new(ConnState::default());
        assert_eq!(through(state, other).await.as_bytes(), other);

        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
        let state = Arc::new(ConnState::default());
        assert_eq!(through(state.clone(), ok).await.as_bytes(), ok);
        assert!(!state.linger.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn lingering_close_drains_until_the_client_closes() {
        let state = Arc::new(ConnState::default());
        state.linger_on_close();
        let (ours, mut peer) = duplex(64);
        let mut io = ConnIo::new(ours, state);
        let closing = tokio::spawn(async move { io.shutdown().await });
        // The client sees our end of stream, keeps sending a while, then closes.
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.unwrap();
        peer.write_all(&[0; 1000]).await.unwrap();
        drop(peer);
        tokio::time::timeout(Duration::from_secs(1), closing)
            .await
            .expect("shutdown ends when the client closes")
            .unwrap()
            .unwrap();
    }
}
