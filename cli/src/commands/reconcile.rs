//! `crowdgate reconcile`: check every invariant; exit non-zero on a violation.
//!
//! A round that keeps moving cannot be checked in full (see
//! `crowdgate_settlement::reconcile`): after `--wait-quiet-ms` it is checked
//! in live mode, which says so and lists what it checked. Any violation it
//! reports, in either mode, is proven.

use clap::Args;
use crowdgate_settlement::reconcile::Options;
use std::time::Duration;

#[derive(Args)]
pub struct ReconcileArgs {
    /// Round to check.
    #[arg(long, default_value = "demo")]
    pub round: String,
    #[command(flatten)]
    pub redis: super::RedisArgs,
    /// Wait up to this long (ms) for the round to hold still so that every
    /// invariant can be checked; then check in live mode.
    #[arg(long, default_value_t = 5_000)]
    pub wait_quiet_ms: u64,
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let mut redis = args.redis.connect().await?;
    super::existing_round(&redis, &args.round).await?;
    let options = Options {
        wait_quiet: Duration::from_millis(args.wait_quiet_ms),
    };
    let report =
        crowdgate_settlement::reconcile::reconcile(&mut redis, &args.round, &options).await?;
    println!("round {}", args.round);
    println!("{report}");
    if !report.is_clean() {
        anyhow::bail!(
            "{} invariant violation(s) in round {} ({} mode)",
            report.violations.len(),
            args.round,
            report.mode
        );
    }
    Ok(())
}
