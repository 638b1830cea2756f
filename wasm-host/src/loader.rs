//! Turning a manifest into a ready-to-serve application.
//!
//! All the expensive and fallible work happens here, once: variables are
//! resolved, allow-lists parsed, every component compiled with Cranelift and
//! pre-instantiated against the linker (`ProxyPre`), so that a missing import
//! or a broken `.wasm` fails the load with the component id and file path
//! instead of failing requests later. Serving then only instantiates.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::instance::{self, ComponentConfig, InstanceState};
use crate::key_value::{DEFAULT_STORE, KeyValueStore};
use crate::manifest::{ComponentDecl, Manifest};
use crate::outbound::{AllowList, OutboundClient};
use crate::routes::Router;
use crate::variables::{AppVariables, ComponentVariables};
use crate::{HostConfig, LoadError};

/// Largest linear memory a guest may grow to.
const MAX_MEMORY_BYTES: usize = 256 << 20;
/// Core module instances one component may contain (spin-sdk components
/// have a handful: the program plus wit-component shims).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// A compiled component and its configuration.
pub struct LoadedComponent {
    /// Resolved configuration shared with each instance.
    pub config: Arc<ComponentConfig>,
    /// Pre-linked component; instantiating it is the per-request cost.
    pub pre: ProxyPre<InstanceState>,
}

/// Everything the server needs, immutable once loaded.
pub struct App {
    /// The engine all components were compiled for.
    pub engine: Engine,
    /// Components, indexed by the router's component numbers.
    pub components: Vec<LoadedComponent>,
    /// The routing table.
    pub router: Router,
    /// `(route, component id)` in manifest order, for display.
    pub route_list: Vec<(String, String)>,
    /// The shared `default` key-value store.
    pub key_value: KeyValueStore,
    /// The shared outbound connection pool.
    pub client: OutboundClient,
    /// The host settings.
    pub config: HostConfig,
}

impl App {
    /// Loads and precompiles the application described by `config`.
    pub async fn load(config: HostConfig) -> Result<App, LoadError> {
        let manifest = Manifest::from_file(&config.manifest)?;
        let app_vars =
            AppVariables::resolve(&manifest.variables, &config.variable_overrides, |k| {
                std::env::var(k).ok()
            })?;

        let ids: Vec<&String> = manifest.components.keys().collect();
        let router = Router::new(manifest.triggers.iter().map(|t| {
            let index = ids.iter().position(|id| **id == t.component);
            (
                t.route.as_str(),
                index.expect("manifest checks trigger components"),
            )
        }))
        .map_err(|message| LoadError::Manifest {
            path: config.manifest.clone(),
            message,
        })?;

        let configs = manifest
            .components
            .values()
            .map(|decl| component_config(decl, &app_vars))
            .collect::<Result<Vec<_>, _>>()?;

        let engine = engine(&config)?;
        let decls: Vec<ComponentDecl> = manifest.components.into_values().collect();
        let compile_engine = engine.clone();
        // Compilation is CPU-bound and takes seconds: keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || compile_all(&compile_engine, &decls))
            .await
            .map_err(|e| LoadError::Engine(format!("compilation task failed: {e}")))??;

        let components = compiled
            .into_iter()
            .zip(configs)
            .map(|(pre, config)| LoadedComponent {
                config: Arc::new(config),
                pre,
            })
            .collect();
        let route_list = manifest
            .triggers
            .iter()
            .map(|t| (t.route.clone(), t.component.clone()))
            .collect();
        tracing::info!(app = %manifest.name, manifest = %config.manifest.display(), "application loaded");
        Ok(App {
            engine,
            components,
            router,
            route_list,
            key_value: KeyValueStore::default(),
            client: OutboundClient::new(),
            config,
        })
    }

    /// `(route, component id)` pairs in manifest order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.route_list.clone()
    }
}

fn component_config(
    decl: &ComponentDecl,
    app_vars: &AppVariables,
) -> Result<ComponentConfig, LoadError> {
    let err = |message: String| LoadError::ComponentConfig {
        id: decl.id.clone(),
        message,
    };
    let variables = ComponentVariables::resolve(&decl.id, &decl.variables, app_vars)?;
    let hosts = decl
        .allowed_outbound_hosts
        .iter()
        .map(|entry| app_vars.expand(entry).map(|v| v.expose().to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| err(format!("allowed_outbound_hosts: {m}")))?;
    let allow = AllowList::parse(&hosts).map_err(err)?;
    if let Some(other) = decl.key_value_stores.iter().find(|s| *s != DEFAULT_STORE) {
        return Err(err(format!(
            "key_value_stores: store `{other}` is not provided (only `{DEFAULT_STORE}`)"
        )));
    }
    Ok(ComponentConfig {
        id: decl.id.as_str().into(),
        variables,
        key_value_granted: !decl.key_value_stores.is_empty(),
        allow: Arc::new(allow),
    })
}

fn engine(config: &HostConfig) -> Result<Engine, LoadError> {
    let n = config.max_concurrent_requests.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_stacks(n)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .max_memory_size(MAX_MEMORY_BYTES);
    let mut wasm = Config::new();
    wasm.parallel_compilation(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| LoadError::Engine(format!("{e:#}")))
}

fn compile_all(
    engine: &Engine,
    decls: &[ComponentDecl],
) -> Result<Vec<ProxyPre<InstanceState>>, LoadError> {
    let linker = instance::linker(engine).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    decls
        .iter()
        .map(|decl| {
            let err = |message: String| LoadError::Component {
                id: decl.id.clone(),
                path: decl.source.clone(),
                message,
            };
            let bytes = std::fs::read(&decl.source).map_err(|e| err(e.to_string()))?;
            let started = Instant::now();
            let component = Component::new(engine, &bytes)
                .map_err(|e| err(format!("not a valid wasm component: {e:#}")))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| err(format!("cannot link: {e:#}")))?;
            let pre = ProxyPre::new(pre)
                .map_err(|e| err(format!("does not export wasi:http/incoming-handler: {e:#}")))?;
            tracing::info!(
                component = %decl.id,
                source = %decl.source.display(),
                compile_ms = started.elapsed().as_millis() as u64,
                "component compiled"
            );
            Ok(pre)
        })
        .collect()
}
