//! `crowdgate`: run Crowdgate's parts. See `crowdgate --help`.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the edge host builds and drops an
/// instance's state (store, WASI context, resource tables) for every
/// request, on whichever worker thread runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "crowdgate",
    version,
    about = "A fair virtual waiting room and investment core for crowdfunding rounds"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine: Redis, core, settlement, the Wasm edge.
    Up(commands::up::UpArgs),
    /// Run core: queue numbers, admission, investments, ops API.
    Core(commands::core::CoreArgs),
    /// Run a settlement worker.
    Settle(commands::settle::SettleArgs),
    /// Serve the Spin components of a spin.toml with the wasmtime host.
    Host(commands::host::HostArgs),
    /// Manage investor accounts.
    Accounts(commands::accounts::AccountsArgs),
    /// Check every invariant of a round; non-zero exit on any violation.
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Rehearse a whole round before launch day: drive its investors through
    /// the real edge, report (HTML and JSON) and give a verdict.
    Rehearse(commands::rehearse::RehearseArgs),
    /// Control a live round through core's ops API (status, rate, pause, ...).
    Ops(commands::ops::OpsArgs),
    /// Run the development identity provider: a sign-in page where anyone can
    /// be any investor, and its JWKS. Local development only, never production.
    DevIdentity(commands::dev_identity::DevIdentityArgs),
    /// Print an identity token for an investor, signed with the development
    /// identity provider's key (for scripts: `Authorization: Bearer ...`).
    DevToken(commands::dev_identity::DevTokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    crowdgate::telemetry::init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => commands::up::run(args).await,
            Command::Core(args) => commands::core::run(args).await,
            Command::Settle(args) => commands::settle::run(args).await,
            Command::Host(args) => commands::host::run(args).await,
            Command::Accounts(args) => commands::accounts::run(args).await,
            Command::Reconcile(args) => commands::reconcile::run(args).await,
            Command::Rehearse(args) => commands::rehearse::run(args).await,
            Command::Ops(args) => commands::ops::run(args).await,
            Command::DevIdentity(args) => commands::dev_identity::run(args).await,
            Command::DevToken(args) => commands::dev_identity::token(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
