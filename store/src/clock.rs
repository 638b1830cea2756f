//! The wall clock, in the unit every script takes: Unix milliseconds.
//!
//! Scripts never read Redis's clock; callers pass `now_ms` in, so tests run
//! them on a fixed clock and production passes this one.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds now (token lifetimes are in seconds).
pub fn now_s() -> u64 {
    now_ms() / 1000
}
