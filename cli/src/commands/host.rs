//! `crowdgate host`: serve a spin.toml's HTTP components with our wasmtime host.

use anyhow::Context;
use clap::Args;
use crowdgate_wasm_host::{Host, HostConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct HostArgs {
    /// The Spin manifest to serve.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Serve Prometheus metrics here.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Most requests in flight before answering 503.
    #[arg(long, default_value_t = 1000)]
    pub max_concurrent_requests: u32,
    /// Longest a component may run for one request (ms).
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
}

pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_listen {
        crowdgate::telemetry::metrics_listener(addr)?;
    }
    let mut config = HostConfig::new(&args.manifest);
    config.max_concurrent_requests = args.max_concurrent_requests;
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    let started = std::time::Instant::now();
    let host = Host::load(config)
        .await
        .with_context(|| format!("cannot load {}", args.manifest.display()))?;
    tracing::info!(manifest = %args.manifest.display(), elapsed_ms = started.elapsed().as_millis() as u64, "components compiled");
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %args.listen, "edge host listening");
    host.serve(listener, super::shutdown_signal()).await
}
