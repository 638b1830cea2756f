//! `crowdgate accounts import FILE` (or `--demo`: the demo investors that
//! `crowdgate up` opens, for a system started part by part).

use anyhow::Context;
use clap::{Args, Subcommand};
use crowdgate_settlement::accounts::{open_accounts, parse_csv};
use std::path::PathBuf;

#[derive(Args)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub command: AccountsCommand,
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Open investor accounts from a CSV file `investor_id,balance_pence`
    /// (with that header). All rows or none are imported.
    Import {
        /// The CSV file.
        #[arg(required_unless_present = "demo", conflicts_with = "demo")]
        file: Option<PathBuf>,
        /// Open the demo investors instead: demo-001 … demo-200 (£5,000
        /// each) and demo-skint (£5), as `crowdgate up` does.
        #[arg(long)]
        demo: bool,
        /// Accepted for older scripts: the round must exist, but the
        /// accounts are not its own: an account belongs to the investor,
        /// and every round's investments draw on it.
        #[arg(long, hide = true)]
        round: Option<String>,
        #[command(flatten)]
        redis: super::RedisArgs,
    },
}

pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    match args.command {
        AccountsCommand::Import {
            file,
            demo: _,
            round,
            redis,
        } => {
            let (accounts, source) = match &file {
                Some(file) => {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let accounts = parse_csv(&text)
                        .with_context(|| format!("{}: nothing imported", file.display()))?;
                    (accounts, file.display().to_string())
                }
                None => (crowdgate::demo::accounts(), "the demo accounts".to_string()),
            };
            let redis = redis.connect().await?;
            if let Some(round) = &round {
                super::existing_round(&redis, round).await?;
            }
            open_accounts(&redis, &accounts)
                .await
                .with_context(|| format!("{source}: nothing imported"))?;
            let total: i64 = accounts.iter().map(|a| a.balance_pence).sum();
            let n = accounts.len();
            println!(
                "imported {n} account{} ({total} pence in all; every round's investments draw on them)",
                if n == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}
