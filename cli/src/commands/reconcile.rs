//! `crowdgate reconcile`: check every invariant; exit non-zero on a violation.

use clap::Args;

#[derive(Args)]
pub struct ReconcileArgs {
    /// Round to check.
    #[arg(long, default_value = "demo")]
    pub round: String,
    #[arg(
        long,
        env = "CROWDGATE_REDIS_URL",
        default_value = "redis://127.0.0.1:6390/"
    )]
    pub redis_url: String,
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let mut redis = super::connect(&args.redis_url).await?;
    let report = crowdgate_settlement::reconcile::reconcile(&mut redis, &args.round).await?;
    println!("round {}", args.round);
    println!("{report}");
    if !report.is_clean() {
        anyhow::bail!(
            "{} invariant violation(s) in round {}",
            report.violations.len(),
            args.round
        );
    }
    Ok(())
}
