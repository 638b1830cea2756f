//! Outbound requests with a deadline.
//!
//! `spin_sdk::http::send` passes no request options, so a server that
//! accepts the connection and never answers holds the component until the
//! host gives up on the whole request (a 500 to the visitor, half a minute
//! later). core and the identity provider are such dependencies. So this
//! sends through `wasi:http`'s outgoing handler with connect, first-byte and
//! between-bytes timeouts (honoured by Spin and by our host), and otherwise
//! leaves the work to spin-sdk's conversions.

use spin_sdk::http::conversions::{TryFromIncomingResponse, TryIntoOutgoingRequest};
use spin_sdk::http::{Request, Response};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{OutgoingBody, RequestOptions};
use std::task::Poll;
use std::time::Duration;

/// Largest piece written to a request body at once (`wasi:io`'s limit for
/// a blocking write).
const WRITE_CHUNK: usize = 4096;

/// Sends `request` (its body, if any, is small: our bodies are at most
/// 64 KiB), giving up after `within` at each step (connecting, the first
/// byte, and between bytes).
pub async fn send_within(request: Request, within: Duration) -> Result<Response, String> {
    let (outgoing, content) = request
        .try_into_outgoing_request()
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let nanos = u64::try_from(within.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    // Each setter fails only when the host does not support that timeout;
    // the others still apply.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let body = outgoing
        .body()
        .map_err(|()| "the request body was taken".to_string())?;
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| format!("cannot send: {e:?}"))?;
    if let Some(bytes) = content.filter(|b| !b.is_empty()) {
        let stream = body
            .write()
            .map_err(|()| "the request body cannot be written".to_string())?;
        for piece in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|e| format!("cannot write the request body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("cannot finish the request: {e:?}"))?;

    // Wait for the response head, waking when the host says it is ready.
    let mut waiting = None;
    let incoming = std::future::poll_fn(|context| match pending.get() {
        Some(Ok(Ok(response))) => Poll::Ready(Ok(response)),
        Some(Ok(Err(error))) => Poll::Ready(Err(format!("{error:?}"))),
        Some(Err(())) => Poll::Ready(Err("the response was already taken".to_string())),
        None => {
            waiting = Some(spin_executor::CancelOnDropToken::from(
                spin_executor::push_waker_and_get_token(
                    pending.subscribe(),
                    context.waker().clone(),
                ),
            ));
            Poll::Pending
        }
    })
    .await?;
    drop(waiting);
    Response::try_from_incoming_response(incoming)
        .await
        .map_err(|e| format!("cannot read the response: {e:?}"))
}
