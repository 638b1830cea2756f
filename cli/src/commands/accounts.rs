//! `crowdgate accounts import FILE`

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
        file: PathBuf,
        /// Round whose ledger gets the accounts.
        #[arg(long, default_value = "demo")]
        round: String,
        #[arg(
            long,
            env = "CROWDGATE_REDIS_URL",
            default_value = "redis://127.0.0.1:6390/"
        )]
        redis_url: String,
    },
}

pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    match args.command {
        AccountsCommand::Import {
            file,
            round,
            redis_url,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let accounts =
                parse_csv(&text).with_context(|| format!("{} was not imported", file.display()))?;
            let mut redis = super::connect(&redis_url).await?;
            open_accounts(&mut redis, &round, &accounts)
                .await
                .with_context(|| format!("{} was not imported", file.display()))?;
            let total: i64 = accounts.iter().map(|a| a.balance_pence).sum();
            println!(
                "imported {} accounts into round {round} ({total} pence in all)",
                accounts.len()
            );
            Ok(())
        }
    }
}
