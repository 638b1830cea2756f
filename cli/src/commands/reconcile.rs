//! `crowdgate reconcile`: check every invariant of every round, and the
//! investors' accounts against all of them; exit non-zero on a violation.
//!
//! A round that keeps moving cannot be checked in full (see
//! `crowdgate_settlement::reconcile`): after `--wait-quiet-ms` it is checked
//! in live mode, which says so and lists what it checked. Any violation it
//! reports, in either mode, is proven. The accounts check (balances +
//! debited = opened, and debited = Σ every round's debits) reads one
//! moment's figures, so it holds on a deployment that keeps settling.

use clap::Args;
use crowdgate_settlement::reconcile::{Options, reconcile, reconcile_accounts};
use std::time::Duration;

#[derive(Args)]
pub struct ReconcileArgs {
    /// Check only this round (and the accounts); default: every round,
    /// live and archived.
    #[arg(long)]
    pub round: Option<String>,
    #[command(flatten)]
    pub redis: super::RedisArgs,
    /// Wait up to this long (ms) for each round to hold still so that every
    /// invariant can be checked; then check it in live mode.
    #[arg(long, default_value_t = 5_000)]
    pub wait_quiet_ms: u64,
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let mut redis = args.redis.connect().await?;
    let every_round = crowdgate_store::rounds::every_round(&mut redis).await?;
    let checked = match &args.round {
        Some(round) => {
            super::existing_round(&redis, round).await?;
            vec![round.clone()]
        }
        None if every_round.is_empty() => {
            anyhow::bail!(
                "this Redis has no rounds: start core with a round file, or create one with `crowdgate ops rounds create`"
            )
        }
        None => every_round.clone(),
    };
    let options = Options {
        wait_quiet: Duration::from_millis(args.wait_quiet_ms),
    };
    let mut failed = Vec::new();
    for round in &checked {
        let report = reconcile(&mut redis, round, &options).await?;
        println!("round {round}");
        println!("{report}\n");
        if !report.is_clean() {
            failed.push(format!(
                "{} invariant violation(s) in round {round} ({} mode)",
                report.violations.len(),
                report.mode
            ));
        }
    }
    let accounts = reconcile_accounts(&mut redis, &every_round).await?;
    println!("accounts (every round)");
    println!("{accounts}");
    if !accounts.is_clean() {
        failed.push(format!(
            "{} violation(s) in the investors' accounts",
            accounts.violations.len()
        ));
    }
    if !failed.is_empty() {
        anyhow::bail!(failed.join("; "));
    }
    Ok(())
}
