//! `crowdgate settle`

use clap::Args;
use crowdgate_settlement::{SettlementWorker, WorkerSettings};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Args)]
pub struct SettleArgs {
    #[arg(
        long,
        env = "CROWDGATE_REDIS_URL",
        default_value = "redis://127.0.0.1:6390/"
    )]
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
    let mut redis = super::connect(&args.redis_url).await?;
    match crowdgate_settlement::reconcile::reconcile(&mut redis, &args.round).await {
        Ok(report) if report.is_clean() => tracing::info!(
            round = %args.round, accepted = report.accepted, settled = report.settled, failed = report.failed,
            pending = report.pending, dead_lettered = report.dead_lettered, "reconciliation at startup: clean"
        ),
        Ok(report) => {
            tracing::error!(round = %args.round, violations = ?report.violations, "reconciliation at startup found violations")
        }
        Err(err) => tracing::warn!(error = %err, "reconciliation at startup could not run"),
    }
    let settings = WorkerSettings {
        round: args.round,
        consumer: args
            .consumer
            .unwrap_or_else(|| format!("settle-{}", std::process::id())),
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
