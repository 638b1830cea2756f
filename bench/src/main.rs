//! `crowdgate-bench`: measures Crowdgate and prints Markdown tables for
//! BENCHMARKS.md. Run with `./dev bench` (release builds; wrk and
//! redis-benchmark are used from the system).
//!
//! Each part compares figures measured in the same run on the same machine,
//! because the machines are shared and noisy: read the ratios.
//! - `host-cpu`: the Wasm host's CPU time per request, endpoint by
//!   endpoint (trivial component, status poll, round totals, page, join),
//!   for this build and optionally a baseline build (`--baseline-bin`).
//! - `edge`: status polls through the Wasm host vs a trivial component (wrk),
//!   and how many polls reached core.
//! - `opening`: a large pre-queue polling for its numbers after opening,
//!   and how many calls that makes to core (per 1,000 polls).
//! - `invest`: accepted investments per second through core, through edge +
//!   core, and `redis-benchmark` running the same invest script.
//! - `replicated`: the same invest load through core on a single Redis vs a
//!   primary + replica under Sentinel (writes wait for the replica), and
//!   the window clients see 503s when the primary is killed under load.
//! - `settle`: settlements per second and the lag after a burst of accepted
//!   investments, with 1 and 2 workers.
//! - `restart`: `crowdgate host` start to first 200 with an empty, a warm
//!   and no compile cache.
//! - `isolation`: two rounds on one core and edge: the mid-sale round's
//!   investment latency and admission rate, alone and while the other
//!   round opens a large pre-queue.

mod edge;
mod host_cpu;
mod invest;
mod isolation;
mod opening;
mod replicated;
mod restart;
mod settle;
mod wrk;

use anyhow::bail;
use clap::{Parser, ValueEnum};

/// Warnings only, except the start-up lines that name the listening
/// addresses (`core listening`, `edge host listening`).
const BENCH_LOG_FILTER: &str = "warn,crowdgate_core=info,crowdgate_core::routes=warn,crowdgate_core::ops=warn,crowdgate::commands::host=info";

#[derive(Parser, Clone)]
pub struct Args {
    /// Which benchmarks to run (default: all).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Duration of each load measurement, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Concurrent connections of each load.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Visitors queued while status polls are measured.
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    /// Accepted investments in the settlement burst.
    #[arg(long, default_value_t = 36_000)]
    burst: usize,
    /// Host starts measured per compile-cache state.
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    /// Another `crowdgate` binary (e.g. built from main) whose host the
    /// `host-cpu` part measures alongside this build's, turn by turn.
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<std::path::PathBuf>,
    /// The baseline's build output: its host serves the components under
    /// DIR/wasm32-wasip2/component (default: this build's components).
    #[arg(long, value_name = "DIR", requires = "baseline_bin")]
    baseline_target_dir: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    HostCpu,
    Edge,
    Opening,
    Invest,
    Replicated,
    Settle,
    Restart,
    Isolation,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os("CROWDGATE_BIN").is_none() {
        let release = crowdgate_tests::target_dir().join("release/crowdgate");
        // SAFETY: no other thread reads the environment yet.
        unsafe { std::env::set_var("CROWDGATE_BIN", &release) };
    }
    if std::env::var_os("RUST_LOG").is_none() {
        // Per-request logs would measure the log file, not the system; the
        // lines saying where core and the host listen stay (the harness
        // finds their ports there; without them no part would start).
        // SAFETY: as above.
        unsafe { std::env::set_var("RUST_LOG", BENCH_LOG_FILTER) };
    }
    eprintln!("using {}", crowdgate_tests::crowdgate_bin().display());
    println!(
        "machine: {} cores; load: {} connections, {} s per measurement\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        args.connections,
        args.seconds
    );
    let all = args.only.is_none();
    if all || args.only == Some(Part::HostCpu) {
        host_cpu::run(&args).await?;
    }
    if all || args.only == Some(Part::Edge) {
        edge::run(&args).await?;
    }
    if all || args.only == Some(Part::Opening) {
        opening::run(&args).await?;
    }
    if all || args.only == Some(Part::Invest) {
        invest::run(&args).await?;
    }
    if all || args.only == Some(Part::Replicated) {
        replicated::run(&args).await?;
    }
    if all || args.only == Some(Part::Settle) {
        settle::run(&args).await?;
    }
    if all || args.only == Some(Part::Restart) {
        restart::run(&args).await?;
    }
    if all || args.only == Some(Part::Isolation) {
        isolation::run(&args).await?;
    }
    Ok(())
}

/// Fails with the install hint unless `program` is on PATH.
pub fn require(program: &str, install: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false);
    if !found {
        bail!("{program} is not installed: `{install}` (./dev bench installs it)");
    }
    Ok(())
}
