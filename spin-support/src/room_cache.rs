//! The room state, cached in Spin key-value for about a second.
//!
//! Every status poll needs the admitted-up-to cursor. Asking core each time
//! would send the whole waiting crowd's polling load to the centre; instead
//! each edge keeps the last state it fetched and refreshes it when it is older
//! than [`FRESH_FOR_MS`]. If core is unreachable, a stale state (up to
//! [`USABLE_FOR_MS`]) is better than an error: positions only lag. After a
//! failed refresh, core is left alone for [`CORE_AWAY_MS`] (a second, after
//! a quick failure), so polls answer from the stale state at once instead
//! of each waiting on a hung core.

use crate::Settings;
use crate::core_client::{CoreClient, CoreUnavailable};
use crowdgate_protocol::RoomState;
use spin_sdk::key_value::Store;

/// A cached state younger than this is used without asking core.
pub const FRESH_FOR_MS: u64 = 1_000;
/// A stale state is still served this long when core cannot be reached.
pub const USABLE_FOR_MS: u64 = 30_000;
/// While one request refreshes a stale state, others keep using the old one
/// for this long, so a crowd of polls does not all call core at once.
pub const REFRESH_LEASE_MS: u64 = 250;
/// After core failed to give the state slowly (hung, or unreachable past
/// the call's deadline), the stale state is used without asking core for
/// this long: otherwise every poll past the lease would wait out the
/// deadline again.
pub const CORE_AWAY_MS: u64 = 5_000;
/// After core answered at once that it cannot give the state (a 503 while
/// Redis fails over, a refused connection), core is left alone only this
/// long: asking again costs nothing, and a longer pause would outlast the
/// failover (joins answer 503 while core is away).
pub const CORE_AWAY_AFTER_QUICK_FAILURE_MS: u64 = 1_000;
/// A failed refresh that took less than this was a quick one.
const QUICK_FAILURE_MS: u64 = 1_000;

/// The round's state, from the cache or from core.
pub async fn room_state(settings: &Settings, now_ms: u64) -> Result<RoomState, CoreUnavailable> {
    let round = settings.round.as_str();
    let store = Store::open_default().ok();
    let key = format!("room:{round}");
    let cached: Option<RoomState> = store
        .as_ref()
        .and_then(|s| s.get(&key).ok().flatten())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(room) = &cached
        && now_ms.saturating_sub(room.as_of_ms) < FRESH_FOR_MS
    {
        return Ok(room.clone());
    }
    if core_is_away(settings, now_ms)
        && let Some(room) = &cached
        && now_ms.saturating_sub(room.as_of_ms) < USABLE_FOR_MS
    {
        return Ok(room.clone());
    }
    // Take a short lease: mark the old state fresh for a moment so concurrent
    // polls use it while this one asks core.
    if let (Some(store), Some(room)) = (&store, &cached) {
        let mut leased = room.clone();
        leased.as_of_ms = now_ms.saturating_sub(FRESH_FOR_MS) + REFRESH_LEASE_MS;
        if let Ok(bytes) = serde_json::to_vec(&leased) {
            let _ = store.set(&key, &bytes);
        }
    }
    let asked_at = crate::now_ms();
    match fetch(settings).await {
        Ok(mut room) => {
            // Measure freshness by this edge's clock, not core's.
            room.as_of_ms = now_ms;
            if let Some(store) = &store
                && let Ok(bytes) = serde_json::to_vec(&room)
            {
                let _ = store.set(&key, &bytes);
            }
            Ok(room)
        }
        Err(err) => {
            if let Some(store) = &store {
                // From now, not from when the request began: the failed call
                // may itself have taken the whole deadline.
                let failed_at = crate::now_ms();
                let away = if failed_at.saturating_sub(asked_at) < QUICK_FAILURE_MS {
                    CORE_AWAY_AFTER_QUICK_FAILURE_MS
                } else {
                    CORE_AWAY_MS
                };
                let until = failed_at + away;
                let _ = store.set(&away_key(settings), until.to_string().as_bytes());
            }
            match cached {
                Some(room) if now_ms.saturating_sub(room.as_of_ms) < USABLE_FOR_MS => Ok(room),
                _ => Err(err),
            }
        }
    }
}

/// Whether core failed to give the room state within the last
/// [`CORE_AWAY_MS`] (or [`CORE_AWAY_AFTER_QUICK_FAILURE_MS`] after a quick
/// failure): a caller that would otherwise wait on core for
/// something else (a join's place) answers 503 at once instead, so one
/// request waits out at most one core deadline.
pub fn core_is_away(settings: &Settings, now_ms: u64) -> bool {
    Store::open_default()
        .ok()
        .and_then(|s| s.get(&away_key(settings)).ok().flatten())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .is_some_and(|until| now_ms < until)
}

fn away_key(settings: &Settings) -> String {
    format!("core-away:{}", settings.round)
}

/// The state from core. Any failure, a refusal included, counts as core
/// being unavailable: the caller falls back to a stale state.
async fn fetch(settings: &Settings) -> Result<RoomState, CoreUnavailable> {
    CoreClient::new(settings)
        .room_state()
        .await
        .map_err(|err| err.as_unavailable("the room state"))
}
