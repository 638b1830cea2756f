//! What both Crowdgate Spin components (`waiting-room` and `edge`) need, so
//! neither re-implements it: settings read from Spin variables, JSON and error
//! responses, tokens taken from a request, typed calls to core, the one
//! investment gateway, and the room state cached in Spin key-value.
//!
//! Built only for wasm32-wasip2, as a dependency of the components.
//!
//! # Layout
//! - [`settings`]: [`Settings`] from Spin application variables.
//! - [`respond`]: JSON and error responses.
//! - [`refusal`]: [`Refusal`], an error answer with its status and headers,
//!   made here or relayed from core.
//! - [`credentials`]: tickets and passes from cookies or `Authorization`.
//! - [`core_client`]: [`CoreClient`], one typed method per core route.
//! - [`gateway`]: the one investment gateway (every check, then core), used
//!   by the edge and by the waiting room's no-JavaScript form.
//! - [`room_cache`]: the room state, cached about a second in key-value.
//! - [`rounds`]: the rounds core runs, cached in key-value: a made-up
//!   `/r/<round>/` is answered at the edge.
//! - [`identity`]: investor identity tokens checked against the platform's
//!   keys (static, or its JWKS fetched and cached in key-value).

pub mod core_client;
pub mod credentials;
pub mod deadline;
pub mod gateway;
pub mod identity;
pub mod refusal;
pub mod respond;
pub mod room_cache;
pub mod rounds;
pub mod settings;

pub use core_client::{CoreClient, CoreError};
pub use refusal::Refusal;
pub use settings::Settings;

/// Unix milliseconds now (wasi clocks).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
