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
//! - [`admission`]: the [`admission::AdmissionController`] loop.
//! - [`routes`]: the `/v1` API the edge calls (queue places and room state,
//!   passes and pre-queue numbers, investments), one module per resource.
//! - [`http`]: the router and its layers (edge token, load shedding, body
//!   limits, JSON errors), health and metrics.
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
pub mod routes;
pub mod state;
pub mod store;

use anyhow::Context;
use crowdgate_protocol::Keyring;
use std::net::SocketAddr;
use std::sync::Arc;
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

/// Connects to Redis, checks it is durable, seeds the round, then serves HTTP
/// and runs the admission controller until `shutdown` resolves.
pub async fn run(
    config: CoreConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut redis = crowdgate_store::Redis::connect(&config.redis)
        .await
        .with_context(|| format!("cannot connect to Redis ({})", config.redis.topology))?;
    let replicas = redis.replication().replicas;
    for problem in crowdgate_store::primary_problems(&mut redis, replicas).await {
        if config.allow_unsafe_redis {
            tracing::warn!(%problem, "starting against a Redis that could lose acknowledged writes (--allow-unsafe-redis)");
        } else {
            anyhow::bail!(problem);
        }
    }

    // Present from the start (at 0), so a dashboard or alert can use it.
    metrics::describe_counter!(
        store::NOT_REPLICATED_TOTAL,
        "writes answered 503 because no replica held them in time"
    );
    metrics::counter!(store::NOT_REPLICATED_TOTAL).absolute(0);
    let store = store::RoundStore::new(&config.round.round.id, redis);
    if store
        .seed(&store::settings(&config.round), &ids::draw_random())
        .await
        .context("seeding the round in Redis")?
    {
        tracing::info!(round = %store.round, "seeded round config fields");
    }

    let state = state::AppState {
        store: store.clone(),
        keyring: config.keyring.clone(),
        ops_tokens: config.ops_tokens.clone(),
        edge_tokens: config.edge_tokens.clone(),
        metrics: config.metrics.clone(),
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, round = %store.round, "core listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let controller = tokio::spawn(admission::AdmissionController::new(store).run(stop_rx));
    http::serve(listener, http::router(state), shutdown).await;
    let _ = stop_tx.send(true);
    let _ = controller.await;
    Ok(())
}
