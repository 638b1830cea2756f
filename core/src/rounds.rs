//! The rounds core serves: every live round of the deployment, found in
//! Redis (`crowdgate_store::rounds`), so a round created through the ops API
//! is served by every core replica without a restart.
//!
//! Handles are cached once a round is known to exist: a round is never
//! deleted (archived rounds are still read), so a cached handle never goes
//! stale. An id not seen before costs one Redis read.

use crate::error::Failure;
use crowdgate_store::{Redis, RoundStore, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Every round of the deployment, by id.
#[derive(Clone)]
pub struct Rounds {
    redis: Redis,
    known: Arc<RwLock<HashMap<String, RoundStore>>>,
}

impl Rounds {
    pub fn new(redis: Redis) -> Rounds {
        Rounds {
            redis,
            known: Arc::default(),
        }
    }

    /// The Redis every round lives in.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The handle on `round`, or 404 when the deployment has no such round
    /// (live or archived). A malformed id is a 404 too: it names no round.
    pub async fn get(&self, round: &str) -> Result<RoundStore, Failure> {
        if let Some(store) = self.cached(round) {
            return Ok(store);
        }
        let no_round = || {
            Failure::for_field(
                crowdgate_protocol::ErrorCode::NotFound,
                "round",
                format!("no round {round:?} here"),
            )
        };
        if crowdgate_store::check_round_id(round).is_err() {
            return Err(no_round());
        }
        if !crowdgate_store::rounds::exists(&mut self.redis.clone(), round).await? {
            return Err(no_round());
        }
        Ok(self.remember(round))
    }

    /// A handle on `round` whether or not it exists yet (to create it).
    pub fn handle(&self, round: &str) -> RoundStore {
        self.cached(round)
            .unwrap_or_else(|| RoundStore::new(round, self.redis.clone()))
    }

    /// The live rounds (created or seeded, not archived), sorted by id.
    pub async fn live(&self) -> StoreResult<Vec<RoundStore>> {
        let ids = crowdgate_store::rounds::live_rounds(&mut self.redis.clone()).await?;
        Ok(ids.iter().map(|id| self.remember(id)).collect())
    }

    fn cached(&self, round: &str) -> Option<RoundStore> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.get(round).cloned()
    }

    fn remember(&self, round: &str) -> RoundStore {
        if let Some(store) = self.cached(round) {
            return store;
        }
        let store = RoundStore::new(round, self.redis.clone());
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.entry(round.to_string()).or_insert(store).clone()
    }
}
