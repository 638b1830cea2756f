//! `crowdgate settle`

use anyhow::Context;
use clap::Args;
use crowdgate_settlement::{SettlementWorker, WorkerSettings};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Args)]
pub struct SettleArgs {
    #[arg(long, env = "CROWDGATE_REDIS_URL", default_value = "redis://127.0.0.1:6390/")]
    pub redis_url: String,
    /// Round id to settle.
    #[arg(long, default_value = "demo")]
    pub round: String,
    /// Consumer name, unique per worker (default: settle-<pid>).
    #[arg(long)]
    pub consumer: Option<String>,
    /// Reclaim entries other workers have held this long (ms).
    #[arg(long, default_value_t = 10_000)]
    pub claim_idle_ms: u64,
    /// Entries read per call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Dead-letter a poison entry after this many deliveries.
    #[arg(long, default_value_t = 5)]
    pub max_deliveries: usize,
    /// Serve Prometheus metrics here.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

pub async fn run(args: SettleArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_listen {
        crowdgate::telemetry::metrics_listener(addr)?;
    }
    if args.batch == 0 || args.max_deliveries == 0 {
        anyhow::bail!("--batch and --max-deliveries must be at least 1");
    }
    let client = redis::Client::open(args.redis_url.as_str()).with_context(|| format!("invalid Redis URL {:?}", args.redis_url))?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let redis = redis::aio::ConnectionManager::new_with_config(client, manager_config)
        .await
        .with_context(|| format!("cannot connect to Redis at {}", args.redis_url))?;
    let settings = WorkerSettings {
        round: args.round,
        consumer: args.consumer.unwrap_or_else(|| format!("settle-{}", std::process::id())),
        claim_idle: Duration::from_millis(args.claim_idle_ms),
        batch: args.batch,
        max_deliveries: args.max_deliveries,
    };
    tracing::info!(round = %settings.round, consumer = %settings.consumer, "settlement worker starting");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(SettlementWorker::new(settings, redis).run(stop_rx));
    super::shutdown_signal().await;
    let _ = stop_tx.send(true);
    worker.await?;
    Ok(())
}
