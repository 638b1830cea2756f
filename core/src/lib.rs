//! crowdgate-core: the central service behind the edge. It hands out queue
//! numbers, runs the admission controller, enforces the raise cap with one
//! atomic Redis script per investment, and serves the ops API.
//!
//! core is stateless: run as many replicas as you like against one Redis.
//! Every decision that must be made once (a queue number, an admission batch,
//! an investment against the cap) is a single atomic Redis operation.
//!
//! # Layout
//! - [`round_config`]: the round's TOML file, validated at load.
//! - [`store`]: seeding the round from its config, and store failures as
//!   HTTP answers. The Redis layout, the scripts and their verdicts are the
//!   `crowdgate-store` crate's.
//! - [`rounds`]: every round of the deployment ([`rounds::Rounds`]): a
//!   round created through the ops API is served without a restart.
//! - [`admission`]: the [`admission::AdmissionController`]: one driver
//!   task per live round.
//! - [`routes`]: the `/v1` API the edge calls (queue places and room state,
//!   passes and pre-queue numbers, investments), one module per resource.
//! - [`http`]: the router and its layers (edge token, load shedding, body
//!   limits, JSON errors), health and metrics.
//! - [`startup`]: listening at once and answering "not ready" while Redis
//!   is reached, checked and the round seeded, waiting through a failover.
//! - [`state`]: [`state::AppState`], what every handler can reach.
//! - [`ops`]: the ops API (token required).
//! - [`auth`]: every credential check: ops and edge tokens (constant time;
//!   `/v1` needs an edge token), visitors' tickets and passes, and a whole
//!   investment attempt.
//! - [`error`]: every failure as a status and a JSON body.

pub mod admission;
pub mod auth;
pub mod clock;
pub mod error;
pub mod http;
pub mod ids;
pub mod ops;
pub mod round_config;
pub mod rounds;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;

use anyhow::Context;
use crowdgate_protocol::Keyring;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

pub use auth::NamedTokens;
pub use round_config::RoundConfig;

/// Everything core needs to start.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub listen: SocketAddr,
    /// Where the round's Redis is, and how many replicas acknowledge a write.
    pub redis: crowdgate_store::RedisConfig,
    pub round: RoundConfig,
    pub keyring: Keyring,
    pub ops_tokens: NamedTokens,
    /// Tokens the edge components present on `/v1` calls.
    pub edge_tokens: NamedTokens,
    /// Start even if Redis could lose acknowledged writes (tests only).
    pub allow_unsafe_redis: bool,
    /// Most `/v1` requests served at once before shedding.
    pub max_in_flight: usize,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Listens at once, then reaches Redis, checks it is durable and seeds the
/// round (waiting, "not ready", for as long as Redis is unreachable or
/// refuses writes: see [`startup`]), then serves the API and runs the
/// admission controller until `shutdown` resolves.
pub async fn run(
    config: CoreConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Present from the start (at 0), so a dashboard or alert can use it.
    metrics::describe_counter!(
        store::NOT_REPLICATED_TOTAL,
        "writes answered 503 because no replica held them in time"
    );
    metrics::counter!(store::NOT_REPLICATED_TOTAL).absolute(0);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let ready = Arc::new(OnceLock::new());
    let progress = startup::Progress::default();
    let router = startup::router(ready.clone(), progress.clone(), config.metrics.clone());
    let (stopped_tx, mut stopped_rx) = watch::channel(false);
    let server = tokio::spawn(async move {
        http::serve(listener, router, shutdown).await;
        let _ = stopped_tx.send(true);
    });
    tracing::info!(%addr, round = %config.round.round.id, "core listening; ready once Redis is reached");

    let store = tokio::select! {
        prepared = startup::prepare(&config, &progress) => prepared?,
        _ = stopped_rx.changed() => return Ok(()),
    };
    let rounds = rounds::Rounds::new(store.redis().clone());
    let state = state::AppState {
        rounds: rounds.clone(),
        config_round: store.round.clone(),
        keyring: config.keyring.clone(),
        ops_tokens: config.ops_tokens.clone(),
        edge_tokens: config.edge_tokens.clone(),
        metrics: config.metrics.clone(),
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
    };
    let _ = ready.set(http::router(state));
    tracing::info!(round = %store.round, primary = store.redis().primary().unwrap_or_default(), "core ready");

    let (stop_tx, stop_rx) = watch::channel(false);
    let controller = tokio::spawn(admission::AdmissionController::new(rounds).run(stop_rx));
    let _ = server.await;
    let _ = stop_tx.send(true);
    let _ = controller.await;
    Ok(())
}
