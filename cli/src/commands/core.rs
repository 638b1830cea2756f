//! `crowdgate core`

use anyhow::Context;
use clap::Args;
use crowdgate_core::{CoreConfig, NamedTokens, RoundConfig};
use crowdgate_protocol::Keyring;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args)]
pub struct CoreArgs {
    /// Round config file (TOML).
    #[arg(long, default_value = "crowdgate.toml")]
    pub config: PathBuf,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub redis: super::RedisArgs,
    /// Token signing keys, `kid:secret[,kid:secret]` (first signs, all verify).
    #[arg(long, env = "CROWDGATE_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: String,
    /// Ops bearer tokens, `name:token[,name:token]`.
    #[arg(long, env = "CROWDGATE_OPS_TOKENS", hide_env_values = true)]
    pub ops_tokens: String,
    /// Tokens the edge presents on /v1 calls, `name:token[,name:token]`
    /// (the edge's `edge_token` Spin variable holds one of them).
    #[arg(long, env = "CROWDGATE_EDGE_TOKENS", hide_env_values = true)]
    pub edge_tokens: String,
    /// Start even if Redis is not `appendonly yes` + `appendfsync always`.
    /// Acknowledged investments can then be lost in a crash: tests only.
    #[arg(long)]
    pub allow_unsafe_redis: bool,
    /// Concurrent /v1 requests served before shedding with 503.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
}

pub async fn run(args: CoreArgs) -> anyhow::Result<()> {
    let round = RoundConfig::load(&args.config)?;
    let keyring =
        Keyring::parse(&args.signing_keys).context("--signing-keys / CROWDGATE_SIGNING_KEYS")?;
    let ops_tokens = NamedTokens::parse(&args.ops_tokens, "CROWDGATE_OPS_TOKENS")
        .map_err(anyhow::Error::msg)
        .context("--ops-tokens / CROWDGATE_OPS_TOKENS")?;
    let edge_tokens = NamedTokens::parse(&args.edge_tokens, "CROWDGATE_EDGE_TOKENS")
        .map_err(anyhow::Error::msg)
        .context("--edge-tokens / CROWDGATE_EDGE_TOKENS")?;
    if args.max_in_flight == 0 {
        anyhow::bail!("--max-in-flight must be at least 1");
    }
    let config = CoreConfig {
        listen: args.listen,
        redis: args.redis.config()?,
        round,
        keyring,
        ops_tokens,
        edge_tokens,
        allow_unsafe_redis: args.allow_unsafe_redis,
        max_in_flight: args.max_in_flight,
        metrics: Some(crowdgate::telemetry::metrics_handle()?),
    };
    crowdgate_core::run(config, super::shutdown_signal()).await
}
