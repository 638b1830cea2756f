//! Outbound calls from a component to core.
//!
//! Every call carries this edge's token ([`EDGE_TOKEN_HEADER`]): core's
//! `/v1` API answers nobody else.
//!
//! A failed call (core down, refused by the host's allow-list, shedding) is
//! reported as [`CoreUnavailable`], which the components answer with 503 and
//! `Retry-After`: the visitor keeps their place and retries.

use crate::Settings;
use crowdgate_protocol::api::EDGE_TOKEN_HEADER;
use spin_sdk::http::{Method, Request, Response};

/// core could not be reached or is shedding load.
#[derive(Debug)]
pub struct CoreUnavailable(pub String);

/// Sends `method path` to core with optional JSON `body` and extra headers.
pub async fn call(
    settings: &Settings,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Response, CoreUnavailable> {
    let mut builder = Request::builder();
    builder
        .method(method)
        .uri(format!("{}{path}", settings.core_url))
        .header(EDGE_TOKEN_HEADER, settings.edge_token.as_str());
    for (name, value) in headers {
        builder.header(*name, value.as_str());
    }
    if !body.is_empty() {
        builder.header("content-type", "application/json");
    }
    let request = builder.body(body).build();
    let response: Response = spin_sdk::http::send(request)
        .await
        .map_err(|e| CoreUnavailable(format!("{e:?}")))?;
    if *response.status() == 503 {
        return Err(CoreUnavailable("core is shedding load".into()));
    }
    Ok(response)
}
