//! One module per subcommand; each parses its flags and calls a library.

pub mod accounts;
pub mod core;
pub mod dev_identity;
pub mod host;
pub mod ops;
pub mod reconcile;
pub mod rehearse;
pub mod settle;
pub mod up;

use anyhow::Context;
use crowdgate_store::{Redis, RedisConfig, Replication, Topology};

/// Where the round's Redis is: every command that reads or writes the round
/// takes these flags, so they cannot drift. One URL (the default), or a
/// primary under Sentinel (`--redis-sentinels`), whose acknowledged writes
/// wait for replicas.
#[derive(clap::Args, Clone)]
pub struct RedisArgs {
    /// The round's Redis, when it is one node (ignored, with a warning, when
    /// --redis-sentinels is set).
    #[arg(
        long = "redis-url",
        env = "CROWDGATE_REDIS_URL",
        default_value = DEFAULT_REDIS_URL,
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Sentinels watching the round's Redis primary, `host:port[,host:port]`;
    /// the primary is whichever node they name, so a failover needs no
    /// change here.
    #[arg(long = "redis-sentinels", env = "CROWDGATE_REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,
    /// The name the sentinels monitor the primary under.
    #[arg(
        long = "redis-master",
        env = "CROWDGATE_REDIS_MASTER",
        default_value = crowdgate_store::topology::DEFAULT_MASTER_NAME,
        requires = "redis_sentinels"
    )]
    pub redis_master: String,
    /// Password of the Redis data nodes behind the sentinels (`requirepass`;
    /// with --redis-url, the password goes in the URL).
    #[arg(
        long = "redis-password",
        env = "CROWDGATE_REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub redis_password: Option<String>,
    /// Replicas that must hold a write before a client is told of it
    /// (`WAIT`); default 1 with --redis-sentinels, 0 with --redis-url.
    #[arg(long = "redis-replicas", env = "CROWDGATE_REDIS_REPLICAS")]
    pub redis_replicas: Option<u32>,
    /// How long to wait for those replicas before answering 503 instead.
    #[arg(
        long = "redis-replica-timeout-ms",
        env = "CROWDGATE_REDIS_REPLICA_TIMEOUT_MS",
        default_value_t = crowdgate_store::topology::DEFAULT_REPLICA_TIMEOUT.as_millis() as u64
    )]
    pub redis_replica_timeout_ms: u64,
}

impl RedisArgs {
    /// The configuration these flags name, checked.
    pub fn config(&self) -> anyhow::Result<RedisConfig> {
        if self.redis_sentinels.is_none() && self.redis_password.is_some() {
            anyhow::bail!(
                "--redis-password / CROWDGATE_REDIS_PASSWORD is for the data nodes behind \
                 --redis-sentinels; with one Redis, put the password in --redis-url \
                 (redis://:PASSWORD@host:port/)"
            );
        }
        if self.redis_sentinels.is_some() && self.redis_url != DEFAULT_REDIS_URL {
            tracing::warn!(
                "--redis-url / CROWDGATE_REDIS_URL is ignored: --redis-sentinels / \
                 CROWDGATE_REDIS_SENTINELS is set, and the Sentinels name the primary"
            );
        }
        let topology = match &self.redis_sentinels {
            Some(sentinels) => {
                Topology::sentinel(sentinels, &self.redis_master, self.redis_password.clone())
                    .map_err(|problem| {
                        anyhow::anyhow!("--redis-sentinels / --redis-master: {problem}")
                    })?
            }
            None => Topology::Single {
                url: self.redis_url.clone(),
            },
        };
        let replicas = self
            .redis_replicas
            .unwrap_or_else(|| topology.default_replicas());
        let replication = Replication::new(replicas, self.redis_replica_timeout_ms)
            .map_err(|problem| anyhow::anyhow!("--redis-replica-timeout-ms: {problem}"))?;
        Ok(RedisConfig {
            topology,
            replication,
        })
    }

    /// A connection to the primary these flags name.
    pub async fn connect(&self) -> anyhow::Result<Redis> {
        connect(&self.config()?).await
    }
}

/// A round that exists in the Redis at `redis_url`: its id is well formed
/// and core has seeded it. Commands that read or change a round's data call
/// this first, so a typo in `--round` is an error naming the fix, not a new
/// empty round or an "OK" about nothing.
pub async fn existing_round(redis: &Redis, round: &str) -> anyhow::Result<()> {
    if let Err(problem) = crowdgate_store::check_round_id(round) {
        anyhow::bail!("--round {round:?}: {problem}");
    }
    let store = crowdgate_store::RoundStore::new(round, redis.clone());
    if store.round_record().await?.is_none() {
        anyhow::bail!(
            "round {round:?} has no data in this Redis: check --round and --redis-url / --redis-sentinels (core seeds a round from its config when it starts)"
        );
    }
    Ok(())
}

/// The Redis `--redis-url` names unless told otherwise (`crowdgate up`'s).
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6390/";

/// A connection to the round's Redis primary that follows a failover.
pub async fn connect(config: &RedisConfig) -> anyhow::Result<Redis> {
    Redis::connect(config)
        .await
        .with_context(|| match &config.topology {
            Topology::Single { .. } => format!(
                "cannot connect to Redis at {}: is it running? (`./dev up` starts one)",
                config.topology
            ),
            Topology::Sentinel { master, .. } => format!(
                "cannot reach the Redis primary through the Sentinels ({}): check that they run, \
             that they monitor a master named {master:?} (--redis-master), and the data \
             nodes' password (--redis-password)",
                config.topology
            ),
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
