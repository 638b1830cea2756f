//! What both Crowdgate Spin components (`waiting-room` and `edge`) need, so
//! neither re-implements it: settings read from Spin variables, JSON and error
//! responses, tokens taken from a request, calls to core, and the room state
//! cached in Spin key-value.
//!
//! Built only for wasm32-wasip2, as a dependency of the components.
//!
//! # Layout
//! - [`settings`]: [`Settings`] from Spin application variables.
//! - [`respond`]: JSON, error and redirect responses.
//! - [`credentials`]: tickets and passes from cookies or `Authorization`.
//! - [`core_client`]: outbound calls to core.
//! - [`room_cache`]: the room state, cached about a second in key-value.

pub mod core_client;
pub mod credentials;
pub mod respond;
pub mod room_cache;
pub mod settings;

pub use settings::Settings;

/// Unix seconds now (wasi clocks).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
