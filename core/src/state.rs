//! What every handler can reach: [`AppState`].
//!
//! It lives apart from [`crate::http`] (the router) so that handler modules
//! (`investments`, `passes`, `ops`) import the state, not the router that
//! imports them: the dependency runs one way, router → handlers → state.

use crate::auth::NamedTokens;
use crate::error::Failure;
use crate::store::RoundStore;
use crowdgate_protocol::Keyring;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: RoundStore,
    /// Signs passes; verifies tickets and passes.
    pub keyring: Keyring,
    pub ops_tokens: NamedTokens,
    /// Tokens the edge components present on `/v1` calls.
    pub edge_tokens: NamedTokens,
    pub metrics: Option<PrometheusHandle>,
    /// Permits for in-flight `/v1` requests.
    pub in_flight: Arc<Semaphore>,
}

impl AppState {
    /// The round this core serves (one per core).
    pub fn round(&self) -> &str {
        &self.store.round
    }

    /// core serves one round; any other round id is a 404.
    pub fn check_round(&self, round: &str) -> Result<(), Failure> {
        if round == self.round() {
            Ok(())
        } else {
            Err(Failure::not_found(format!("no round {round:?} here")))
        }
    }
}
