//! What every handler can reach: [`AppState`].
//!
//! It lives apart from [`crate::http`] (the router) so that handler modules
//! (`investments`, `passes`, `ops`) import the state, not the router that
//! imports them: the dependency runs one way, router → handlers → state.

use crate::auth::NamedTokens;
use crate::error::Failure;
use crate::rounds::Rounds;
use crate::store::RoundStore;
use crowdgate_protocol::Keyring;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Every round of the deployment.
    pub rounds: Rounds,
    /// The round of core's config file (`/healthz` names it).
    pub config_round: String,
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
    /// The handle on `round`, or 404 when the deployment has no such round.
    pub async fn round(&self, round: &str) -> Result<RoundStore, Failure> {
        self.rounds.get(round).await
    }
}
