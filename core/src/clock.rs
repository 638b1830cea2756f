//! Time as core uses it: the store's clock (Unix ms and s), and RFC 3339
//! times from the config file and the ops API.

pub use crowdgate_store::clock::{now_ms, now_s};

/// Unix milliseconds of an RFC 3339 time (`2026-12-01T10:00:00Z`).
pub fn rfc3339_ms(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_millis() as u64)
}
