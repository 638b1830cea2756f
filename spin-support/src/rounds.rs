//! Which rounds this edge may serve: the ids of every round core runs,
//! cached in Spin key-value, so `/r/<round>/` for a round nobody created is
//! answered 404 at the edge. Without the list, every such URL would cost a
//! call to core, and anyone could send the edge's load to the centre by
//! making up round ids.
//!
//! Rounds are never deleted (archived ones stay readable), so a round once
//! in the list needs no refresh. An id not in it asks core again only when
//! the list is older than [`RECHECK_AFTER_MS`]: a round ops just created is
//! served within that, and made-up ids cost at most one call to core per
//! edge per [`RECHECK_AFTER_MS`], however many arrive.

use crate::Settings;
use crate::core_client::{CoreClient, CoreUnavailable};
use serde::{Deserialize, Serialize};
use spin_sdk::key_value::Store;

/// A list younger than this is trusted to name every round.
pub const RECHECK_AFTER_MS: u64 = 1_000;

const KEY: &str = "rounds";

/// The list as cached.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    as_of_ms: u64,
    rounds: Vec<String>,
}

/// Whether core runs `settings.round` (live or archived). Unavailable only
/// when the cached list does not name it and core cannot be asked.
pub async fn round_exists(settings: &Settings, now_ms: u64) -> Result<bool, CoreUnavailable> {
    let store = Store::open_default().ok();
    let cached: Option<Cached> = store
        .as_ref()
        .and_then(|s| s.get(KEY).ok().flatten())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(list) = &cached {
        if list.rounds.contains(&settings.round) {
            return Ok(true);
        }
        if now_ms.saturating_sub(list.as_of_ms) < RECHECK_AFTER_MS {
            return Ok(false);
        }
    }
    // Stamp the old list fresh first, so the other requests for unknown ids
    // meanwhile do not all ask core too.
    if let (Some(store), Some(list)) = (&store, &cached) {
        let stamped = Cached {
            as_of_ms: now_ms,
            rounds: list.rounds.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&stamped) {
            let _ = store.set(KEY, &bytes);
        }
    }
    let ids = CoreClient::new(settings)
        .round_ids()
        .await
        .map_err(|err| err.as_unavailable("the round list"))?;
    let exists = ids.rounds.contains(&settings.round);
    if let Some(store) = &store
        && let Ok(bytes) = serde_json::to_vec(&Cached {
            as_of_ms: now_ms,
            rounds: ids.rounds,
        })
    {
        let _ = store.set(KEY, &bytes);
    }
    Ok(exists)
}
