//! `crowdgate settle`: settles every round of the deployment (one worker
//! per round, `crowdgate_settlement::every_round`), or only `--round`.

use clap::Args;
use crowdgate_settlement::every_round::settle_every_round;
use crowdgate_settlement::reconcile::{self, Mode, Options};
use crowdgate_settlement::{SettlementWorker, WorkerSettings};
use std::net::SocketAddr;
use std::time::Duration;

/// How long the reconciliation at startup waits for a still round before it
/// settles for the checks that hold on a moving one. It runs beside the
/// worker, so waiting delays no settlement.
const STARTUP_WAIT_QUIET: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct SettleArgs {
    #[command(flatten)]
    pub redis: super::RedisArgs,
    /// Settle only this round; default: every round, including rounds
    /// created while the worker runs.
    #[arg(long)]
    pub round: Option<String>,
    /// Consumer name: unique per live worker, and the same across its
    /// restarts so it settles the entries it held when it died (default:
    /// <host name>-<worker index>).
    #[arg(long, conflicts_with = "worker_index")]
    pub consumer: Option<String>,
    /// This worker's index on its host, for the default consumer name; give
    /// each worker on one host its own.
    #[arg(long, default_value_t = 0)]
    pub worker_index: u32,
    /// Reclaim entries other workers have held this long (ms).
    #[arg(long, default_value_t = 10_000)]
    pub claim_idle_ms: u64,
    /// Forget other consumers that hold no pending entries and have been
    /// idle this long (ms); 0: never.
    #[arg(long, default_value_t = 600_000)]
    pub forget_idle_consumers_ms: u64,
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
    // A live worker blocks up to a second per read, so a shorter idle time
    // would forget (harmlessly, but over and over) workers that are alive.
    if (1..1_000).contains(&args.forget_idle_consumers_ms) {
        anyhow::bail!("--forget-idle-consumers-ms must be 0 (never) or at least 1000");
    }
    let consumer = match args.consumer {
        Some(consumer) => consumer,
        None => format!("{}-{}", host_name()?, args.worker_index),
    };
    let redis_config = args.redis.config()?;
    // Started during a failover, it waits for the primary rather than exit.
    let Some(redis) = super::connect_service(&redis_config, "the settlement worker").await? else {
        return Ok(());
    };
    // Its own connection: the worker's blocking reads would stall its reads.
    let check = tokio::spawn(reconcile_at_startup(
        redis_config.clone(),
        args.round.clone(),
    ));
    let settings = WorkerSettings {
        round: args.round.clone().unwrap_or_default(),
        consumer,
        claim_idle: Duration::from_millis(args.claim_idle_ms),
        batch: args.batch,
        max_deliveries: args.max_deliveries,
        forget_idle_consumers: (args.forget_idle_consumers_ms > 0)
            .then(|| Duration::from_millis(args.forget_idle_consumers_ms)),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = match args.round {
        Some(round) => {
            tracing::info!(%round, consumer = %settings.consumer, "settlement worker starting");
            tokio::spawn(SettlementWorker::new(settings, redis).run(stop_rx))
        }
        None => {
            tracing::info!(consumer = %settings.consumer, "settlement worker starting for every round");
            tokio::spawn(settle_every_round(redis_config, redis, settings, stop_rx))
        }
    };
    super::shutdown_signal().await;
    let _ = stop_tx.send(true);
    check.abort();
    worker.await?;
    Ok(())
}

/// Checks each round (`round`, or every round) and the accounts once and
/// logs the result: ERROR only for a violation reconciliation proved, never
/// for a round that moved while it was read.
async fn reconcile_at_startup(redis_config: crowdgate_store::RedisConfig, round: Option<String>) {
    let mut redis = match super::connect(&redis_config).await {
        Ok(redis) => redis,
        Err(err) => {
            tracing::warn!(error = %err, "reconciliation at startup could not run");
            return;
        }
    };
    let options = Options {
        wait_quiet: STARTUP_WAIT_QUIET,
    };
    let checked = |mode| match mode {
        Mode::Full => "every invariant",
        Mode::Live => "only those that hold at every instant (the round kept moving)",
    };
    let every_round = match crowdgate_store::rounds::every_round(&mut redis).await {
        Ok(rounds) => rounds,
        Err(err) => {
            tracing::warn!(error = %err, "reconciliation at startup could not run");
            return;
        }
    };
    let checked_rounds = match &round {
        Some(round) => vec![round.clone()],
        None => every_round.clone(),
    };
    for round in checked_rounds {
        match reconcile::reconcile(&mut redis, &round, &options).await {
            Ok(report) if report.is_clean() => tracing::info!(
                %round, mode = %report.mode, checked = checked(report.mode), accepted = report.accepted,
                settled = report.settled, failed = report.failed, pending = report.pending,
                dead_lettered = report.dead_lettered, "reconciliation at startup: clean"
            ),
            Ok(report) => tracing::error!(
                %round, mode = %report.mode, violations = ?report.violations,
                "reconciliation at startup found violations"
            ),
            Err(err) => {
                tracing::warn!(%round, error = %err, "reconciliation at startup could not run")
            }
        }
    }
    match reconcile::reconcile_accounts(&mut redis, &every_round).await {
        Ok(report) if report.is_clean() => tracing::info!(
            rounds = report.rounds,
            accounts = report.accounts,
            "reconciliation of the accounts at startup: clean"
        ),
        Ok(report) => tracing::error!(
            violations = ?report.violations,
            "reconciliation of the accounts at startup found violations"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "reconciliation of the accounts at startup could not run")
        }
    }
}

/// This machine's host name: the pod name in Kubernetes, so a restarted pod
/// keeps its consumer name.
fn host_name() -> anyhow::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..len]).trim().to_string();
        if !name.is_empty() {
            return Ok(name);
        }
    }
    let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name = name.trim();
    if name.is_empty() {
        anyhow::bail!("cannot read this machine's host name; name the worker with --consumer");
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_name_is_read() {
        let name = super::host_name().unwrap();
        assert!(!name.is_empty() && !name.contains('\0'), "{name:?}");
    }
}
