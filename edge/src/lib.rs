//! The edge Spin component: the investment gateway in front of core.
//!
//! - `POST /api/investments` — checks the pass and the body here, so forged
//!   passes and malformed requests never cost core anything, then forwards to
//!   core (which checks everything again and decides atomically).
//! - `GET /api/investments/{id}` — an investment's status (accepted, settled,
//!   failed).
//!
//! When core is unreachable or shedding, the answer is 503 with `Retry-After`:
//! the investor keeps their pass and place and retries with the same
//! `Idempotency-Key`, which can never invest twice.

use crowdgate_protocol::invest::{self, InvestRequest, validate_idempotency_key};
use crowdgate_protocol::{ApiError, Pass};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_support::{Settings, core_client, credentials, now_ms, respond};

#[http_component]
async fn handle(request: Request) -> impl IntoResponse {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => return respond::error(500, err),
    };
    if let Err(response) = respond::check_body_size(&request) {
        return response;
    }
    let path = request.path().to_string();
    match (request.method(), path.strip_prefix("/api/investments")) {
        (Method::Post, Some("" | "/")) => invest(&settings, &request).await,
        (_, Some("" | "/")) => respond::method_not_allowed("POST"),
        (Method::Get, Some(rest)) if rest.starts_with('/') => show(&settings, &rest[1..]).await,
        (_, Some(_)) => respond::method_not_allowed("GET"),
        _ => respond::not_found(&path),
    }
}

async fn invest(settings: &Settings, request: &Request) -> Response {
    let Some(token) = credentials::bearer(request) else {
        return respond::error(
            401,
            ApiError::for_field(
                "missing_pass",
                "Authorization",
                "send your pass as `Authorization: Bearer <pass>`",
            ),
        );
    };
    let pass = match credentials::verify::<Pass>(
        &settings.keyring,
        &token,
        &settings.round,
        now_ms() / 1000,
        "pass",
    ) {
        Ok(pass) => pass,
        Err((401, mut body)) => {
            body.message = "your pass has expired: go back to the waiting room for a new one (your place is kept)".into();
            return respond::error(401, body);
        }
        Err((code, body)) => return respond::error(code, body),
    };
    let content_type = request
        .header("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return respond::error(
            415,
            ApiError::for_field(
                "unsupported_content_type",
                "Content-Type",
                "send the body as application/json",
            ),
        );
    }
    let key = match validate_idempotency_key(
        request.header("idempotency-key").and_then(|v| v.as_str()),
    ) {
        Ok(key) => key,
        Err(err) => return respond::error(422, err),
    };
    if let Err(err) = InvestRequest::parse(request.body()) {
        return respond::error(invest::status_for(&err), err);
    }
    let forwarded = core_client::call(
        settings,
        Method::Post,
        &format!("/v1/rounds/{}/investments", settings.round),
        &[
            ("authorization", format!("Bearer {token}")),
            ("idempotency-key", key),
        ],
        request.body().to_vec(),
    )
    .await;
    match forwarded {
        Ok(response) => respond::relay(response),
        Err(_) => {
            eprintln!("edge: core unavailable for ticket {}", pass.ticket);
            respond::unavailable(
                "investments are busy right now; your pass and place are kept — try again in a moment",
            )
        }
    }
}

async fn show(settings: &Settings, id: &str) -> Response {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return respond::error(
            400,
            ApiError::for_field("invalid_field", "investment_id", "not an investment id"),
        );
    }
    let path = format!("/v1/rounds/{}/investments/{id}", settings.round);
    match core_client::call(settings, Method::Get, &path, &[], vec![]).await {
        Ok(response) => respond::relay(response),
        Err(_) => respond::unavailable("investment status is unavailable for a moment"),
    }
}
