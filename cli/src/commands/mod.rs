//! One module per subcommand; each parses its flags and calls a library.

pub mod accounts;
pub mod core;
pub mod dev_identity;
pub mod host;
pub mod ops;
pub mod reconcile;
pub mod settle;
pub mod up;

use anyhow::Context;
use std::time::Duration;

/// Where the round's Redis is: every command that reads or writes the round
/// takes this one flag (`CROWDGATE_REDIS_URL`), so they cannot drift.
#[derive(clap::Args, Clone)]
pub struct RedisArgs {
    /// The round's Redis.
    #[arg(
        long = "redis-url",
        env = "CROWDGATE_REDIS_URL",
        default_value = "redis://127.0.0.1:6390/"
    )]
    pub redis_url: String,
}

/// A round that exists in the Redis at `redis_url`: its id is well formed
/// and core has seeded it. Commands that read or change a round's data call
/// this first, so a typo in `--round` is an error naming the fix, not a new
/// empty round or an "OK" about nothing.
pub async fn existing_round(
    redis: &redis::aio::ConnectionManager,
    round: &str,
) -> anyhow::Result<()> {
    if let Err(problem) = crowdgate_store::check_round_id(round) {
        anyhow::bail!("--round {round:?}: {problem}");
    }
    let store = crowdgate_store::RoundStore::new(round, redis.clone());
    if store.round_record().await?.is_none() {
        anyhow::bail!(
            "round {round:?} has no data in this Redis: check --round and --redis-url (core seeds a round from its config when it starts)"
        );
    }
    Ok(())
}

/// A Redis connection manager that reconnects by itself.
pub async fn connect(redis_url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(redis_url)
        .with_context(|| format!("invalid Redis URL {redis_url:?}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| {
            format!(
                "cannot connect to Redis at {redis_url}: is it running? (`crowdgate up` starts one)"
            )
        })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
