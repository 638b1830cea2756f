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
//! # Layout
//!
//! - [`manifest`]: parses the `spin.toml` v2 subset into plain structs.
//! - [`routes`]: pure routing of a path to a component (exact and `/...`).
//! - [`variables`]: application/component variables and their WIT interface.
//! - [`key_value`]: the shared in-process `default` store and its WIT interface.
//! - [`outbound`]: the outbound allow-list and the pooled HTTP client.
//! - `bindings`: `bindgen!` output for the two Spin interfaces.
//! - `instance`: per-request store state and the linker.
//! - `loader`: engine configuration and precompilation ([`Host::load`]).
//! - `server`: the hyper server and per-request dispatch ([`Host::serve`]).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod bindings;
mod instance;
pub mod key_value;
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
    /// Wall-clock budget of one request's guest execution; a guest still
    /// running after it is stopped (trap) and the request fails.
    pub request_timeout: Duration,
}

impl HostConfig {
    /// Defaults: no overrides, 1000 concurrent requests, 30 s timeout.
    pub fn new(manifest: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            manifest: manifest.into(),
            variable_overrides: HashMap::new(),
            max_concurrent_requests: 1000,
            request_timeout: Duration::from_secs(30),
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
    /// The wasmtime engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
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
