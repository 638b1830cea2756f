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
    /// Largest request body in bytes; larger ones get 413 before any
    /// component runs.
    #[arg(long, default_value_t = crowdgate_wasm_host::limits::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: u64,
    /// Body limit of one route, as ROUTE=BYTES with the route exactly as
    /// written in the manifest (e.g. `/api/investments/...=16384`). Repeatable.
    #[arg(long = "route-body-limit", value_name = "ROUTE=BYTES", value_parser = parse_route_limit)]
    pub route_body_limits: Vec<(String, u64)>,
    /// Keep compiled components in DIR so restarts skip compilation
    /// [default: $XDG_CACHE_HOME/crowdgate/components, else
    /// $HOME/.cache/crowdgate/components].
    #[arg(long, value_name = "DIR")]
    pub compile_cache: Option<PathBuf>,
    /// Compile every component at every start; use no compile cache.
    #[arg(long, conflicts_with = "compile_cache")]
    pub no_compile_cache: bool,
}

/// Parses `ROUTE=BYTES`; the last `=` separates them.
fn parse_route_limit(text: &str) -> Result<(String, u64), String> {
    let (route, bytes) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("`{text}` is not ROUTE=BYTES"))?;
    if !route.starts_with('/') {
        return Err(format!(
            "route `{route}` must start with `/`, as in the manifest"
        ));
    }
    let bytes = bytes
        .parse()
        .map_err(|e| format!("`{bytes}` is not a number of bytes: {e}"))?;
    Ok((route.to_string(), bytes))
}

/// The compile cache directory: the flag, else the user's cache directory.
fn compile_cache_dir(args: &HostArgs) -> Option<PathBuf> {
    if args.no_compile_cache {
        return None;
    }
    if let Some(dir) = &args.compile_cache {
        return Some(dir.clone());
    }
    let env_dir = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = env_dir("XDG_CACHE_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".cache")));
    if base.is_none() {
        tracing::warn!("neither XDG_CACHE_HOME nor HOME is set: no compile cache");
    }
    base.map(|b| b.join("crowdgate").join("components"))
}

pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_listen {
        crowdgate::telemetry::metrics_listener(addr)?;
    }
    let mut config = HostConfig::new(&args.manifest);
    config.max_concurrent_requests = args.max_concurrent_requests;
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    config.max_body_bytes = args.max_body_bytes;
    config.route_body_limits = args.route_body_limits.iter().cloned().collect();
    config.compile_cache = compile_cache_dir(&args);
    let started = std::time::Instant::now();
    let host = Host::load(config)
        .await
        .with_context(|| format!("cannot load {}", args.manifest.display()))?;
    let report = host.load_report();
    tracing::info!(
        manifest = %args.manifest.display(),
        components = report.components.len(),
        from_cache = report.from_cache(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "components ready"
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The address actually bound: with `--listen 127.0.0.1:0` the kernel
    // picks the port, and this line is how a supervisor (or a test) learns it.
    tracing::info!(addr = %listener.local_addr()?, "edge host listening");
    host.serve(listener, super::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_limits_parse() {
        assert_eq!(
            parse_route_limit("/api/...=100"),
            Ok(("/api/...".to_string(), 100))
        );
        assert!(parse_route_limit("/api/...").is_err());
        assert!(parse_route_limit("api=1").is_err());
        assert!(parse_route_limit("/api=lots").is_err());
    }
}
