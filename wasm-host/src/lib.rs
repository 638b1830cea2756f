//! Crowdgate's wasmtime host: runs the Spin HTTP components of `spin.toml`.
//!
//! `spin up` runs the same manifest; this host exists so Crowdgate controls
//! the hot path (a fresh instance per request from a pooling allocator,
//! pooled outbound connections, metrics) and ships as one binary. It serves
//! components built with spin-sdk 5.2 (`wasi:http/incoming-handler@0.2.0`)
//! and provides what they import: WASI p2, `wasi:http` outbound requests
//! limited by `allowed_outbound_hosts`, `fermyon:spin/variables@2.0.0` and
//! `fermyon:spin/key-value@2.0.0` (an in-process `default` store).
//!
//! Use: [`Host::load`] a [`HostConfig`], then [`Host::serve`] on a listener.
//!
//! The host refuses oversized requests itself ([`limits`]: URI, head, and a
//! body limit per route), answers every error it produces as JSON (even
//! those hyper produces, through `crowdgate_conn_io`), and can keep compiled components
//! on disk so a restart skips compilation (`compile_cache`).
//!
//! # Layout
//!
//! - [`manifest`]: parses the `spin.toml` v2 subset into plain structs.
//! - [`routes`]: pure routing of a path to a component (exact and `/...`).
//! - [`variables`]: application/component variables and their WIT interface.
//! - [`key_value`]: the shared in-process `default` store and its WIT interface.
//! - [`outbound`]: the outbound allow-list and the pooled HTTP client.
//! - [`limits`]: request size limits and the body check.
//! - `bindings`: `bindgen!` output for the two Spin interfaces.
//! - `instance`: per-request store state and the linker.
//! - `loader`: engine configuration and precompilation ([`Host::load`]).
//! - `compile_cache`: compiled components on disk, keyed by content and engine.
//! - `server`: the hyper server and per-request dispatch ([`Host::serve`]).
//! - `http_error`: the host's own error answers, as protocol's `ApiError`.
//!
//! The socket wrapper that makes hyper's own error answers JSON and closes
//! refused connections without losing the answer is `crowdgate_conn_io`,
//! shared with core.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod bindings;
mod compile_cache;
mod http_error;
mod instance;
pub mod key_value;
pub mod limits;
mod loader;
pub mod manifest;
pub mod outbound;
pub mod routes;
mod server;
pub mod variables;

/// How to load an application.
#[derive(Clone)]
pub struct HostConfig {
    /// Path of the `spin.toml`; relative component sources start at its directory.
    pub manifest: PathBuf,
    /// Application variable values that win over `SPIN_VARIABLE_*` and defaults
    /// (name as in `[variables]`, lowercase).
    pub variable_overrides: HashMap<String, String>,
    /// Most requests handled at once (size of the instance pool). Requests
    /// beyond it get 503 `overloaded` instead of queueing inside the host.
    pub max_concurrent_requests: u32,
    /// Wall-clock budget of one request: receiving a body of unknown length
    /// and the guest's execution. A guest still running after it is stopped
    /// (trap) and the request fails.
    pub request_timeout: Duration,
    /// Largest request body (bytes) of a route without an override; larger
    /// ones get 413 `body_too_large` before the guest runs.
    pub max_body_bytes: u64,
    /// Body limits of particular routes, keyed by the route exactly as
    /// written in the manifest (`/api/...`); an unknown route fails the load.
    pub route_body_limits: HashMap<String, u64>,
    /// Directory keeping compiled components between starts (created if
    /// missing; must be private to this user). `None` compiles every time.
    pub compile_cache: Option<PathBuf>,
}

impl HostConfig {
    /// Defaults: no overrides, 1000 concurrent requests, 30 s timeout,
    /// 64 KiB bodies, no compile cache.
    pub fn new(manifest: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            manifest: manifest.into(),
            variable_overrides: HashMap::new(),
            max_concurrent_requests: 1000,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: limits::DEFAULT_MAX_BODY_BYTES,
            route_body_limits: HashMap::new(),
            compile_cache: None,
        }
    }
}

impl fmt::Debug for HostConfig {
    // Override values may be secrets: show only their names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.variable_overrides.keys().collect();
        names.sort();
        f.debug_struct("HostConfig")
            .field("manifest", &self.manifest)
            .field("variable_overrides", &names)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("route_body_limits", &self.route_body_limits)
            .field("compile_cache", &self.compile_cache)
            .finish()
    }
}

/// Why an application could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest file could not be read.
    #[error("cannot read manifest {}: {source}", path.display())]
    ReadManifest {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not a valid `spin.toml` of the supported subset.
    #[error("invalid manifest {}: {message}", path.display())]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A required application variable has no value.
    #[error("variable `{name}` is required but has no value (set {env})")]
    MissingVariable {
        /// The variable name.
        name: String,
        /// The environment variable that would supply it.
        env: String,
    },
    /// A component's configuration (variables, allow-list, stores) is invalid.
    #[error("component `{id}`: {message}")]
    ComponentConfig {
        /// The component id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A component's `.wasm` could not be read, compiled or linked.
    #[error("component `{id}`: cannot load {}: {message}", path.display())]
    Component {
        /// The component id.
        id: String,
        /// The `.wasm` file.
        path: PathBuf,
        /// The underlying error, with its causes.
        message: String,
    },
    /// A body limit names a route the manifest does not have.
    #[error("body limit for route `{route}`: no such route in the manifest (routes: {})", known.join(", "))]
    UnknownRoute {
        /// The route given.
        route: String,
        /// The manifest's routes.
        known: Vec<String>,
    },
    /// The wasmtime engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
}

/// Where a component's machine code came from at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No compile cache is configured (or it was unusable): compiled.
    Disabled,
    /// Loaded from the compile cache, not compiled.
    Hit,
    /// Not in the cache: compiled, then stored.
    Miss,
    /// The cached entry was corrupt or for another engine: compiled, replaced.
    Invalid,
}

impl CacheOutcome {
    /// `disabled`, `hit`, `miss` or `invalid`, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Disabled => "disabled",
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Invalid => "invalid",
        }
    }
}

/// How one component was loaded.
#[derive(Debug, Clone)]
pub struct ComponentLoad {
    /// The component id.
    pub id: String,
    /// Its `.wasm` file.
    pub source: PathBuf,
    /// Whether it came from the compile cache.
    pub cache: CacheOutcome,
    /// Reading, compiling or loading from the cache, and linking it.
    pub elapsed: Duration,
}

/// How an application was loaded, component by component.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// In manifest order.
    pub components: Vec<ComponentLoad>,
    /// The whole load, manifest to ready.
    pub elapsed: Duration,
}

impl LoadReport {
    /// How many components came from the compile cache.
    pub fn from_cache(&self) -> usize {
        self.components
            .iter()
            .filter(|c| c.cache == CacheOutcome::Hit)
            .count()
    }
}

/// A loaded application: components compiled and linked, ready to serve.
pub struct Host {
    app: Arc<loader::App>,
}

impl Host {
    /// Parses the manifest, resolves variables and precompiles every
    /// component; any problem is reported before a port is opened.
    pub async fn load(config: HostConfig) -> Result<Host, LoadError> {
        let app = loader::App::load(config).await?;
        Ok(Host { app: Arc::new(app) })
    }

    /// How each component was loaded (compiled or from the cache, and how long).
    pub fn load_report(&self) -> &LoadReport {
        &self.app.report
    }

    /// The routing table as `(route, component id)`, in manifest order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.app.routes()
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then stops
    /// accepting and gives open connections a grace period to finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        server::serve(self.app, listener, shutdown).await
    }
}
