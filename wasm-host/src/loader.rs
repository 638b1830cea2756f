//! Turning a manifest into a ready-to-serve application.
//!
//! All the expensive and fallible work happens here, once: variables are
//! resolved, allow-lists parsed, every component compiled with Cranelift and
//! pre-instantiated against the linker (`ProxyPre`), so that a missing import
//! or a broken `.wasm` fails the load with the component id and file path
//! instead of failing requests later. Serving then only instantiates.
//! With a compile cache (`HostConfig::compile_cache`) a component compiled
//! by an earlier start is loaded from disk instead of compiled again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::compile_cache::{CompileCache, Lookup};
use crate::instance::{self, ComponentConfig, InstanceState};
use crate::key_value::{DEFAULT_STORE, KeyValueStore};
use crate::limits::BodyLimits;
use crate::manifest::{ComponentDecl, Manifest};
use crate::outbound::{AllowList, OutboundClient};
use crate::routes::Router;
use crate::variables::{AppVariables, ComponentVariables};
use crate::{CacheOutcome, ComponentLoad, HostConfig, LoadError, LoadReport};

/// Largest linear memory a guest may grow to.
const MAX_MEMORY_BYTES: usize = 256 << 20;
/// Core module instances one component may contain (spin-sdk components
/// have a handful: the program plus wit-component shims).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Bytes of each linear memory slot kept resident between instances.
///
/// When an instance ends, wasmtime must give the next one a pristine memory.
/// By default it does so by handing every page back to the kernel
/// (`madvise(MADV_DONTNEED)`): the next instance then page-faults each page
/// in again, and every unmapping makes the kernel flush the TLBs of the
/// other threads (inter-processor interrupts) — most of a small request's
/// CPU time went there. Instead, up to this many bytes of the pages the
/// guest actually wrote (found with the kernel's `PAGEMAP_SCAN` ioctl,
/// Linux ≥ 6.7; without it nothing is kept, see [`engine`]) are reset in
/// place with memset / memcpy from the initial image, and only the rest is
/// handed back.
/// A spin-sdk request dirties well under this (stack, a few heap pages).
/// The price: each slot that has served a request keeps up to this much
/// resident, so RSS grows towards `warm slots × this`.
const MEMORY_KEEP_RESIDENT_BYTES: usize = 4 << 20;
/// The same for tables (function-pointer tables: a few KiB each).
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 << 10;
/// Memory and table slots handed back to the kernel together, in one pass,
/// rather than one `madvise` call as each instance ends. Slots waiting in a
/// batch are not reused until it is flushed (wasmtime flushes early when
/// the pool would otherwise run out), so this stays small next to the pool.
const DECOMMIT_BATCH_SIZE: usize = 16;

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
    /// Request body limits by route.
    pub body_limits: BodyLimits,
    /// How each component was loaded.
    pub report: LoadReport,
    /// The host settings.
    pub config: HostConfig,
}

impl App {
    /// Loads and precompiles the application described by `config`.
    pub async fn load(config: HostConfig) -> Result<App, LoadError> {
        let started = Instant::now();
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
        let body_limits = body_limits(&config, &manifest)?;

        let configs = manifest
            .components
            .values()
            .map(|decl| component_config(decl, &app_vars))
            .collect::<Result<Vec<_>, _>>()?;

        let engine = engine(&config)?;
        let decls: Vec<ComponentDecl> = manifest.components.into_values().collect();
        let compile_engine = engine.clone();
        let cache_dir = config.compile_cache.clone();
        // Compilation is CPU-bound and takes seconds: keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || {
            let cache = cache_dir.and_then(|dir| match CompileCache::open(&dir, &compile_engine) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!(error = %e, "compile cache disabled");
                    None
                }
            });
            compile_all(&compile_engine, cache.as_ref(), &decls)
        })
        .await
        .map_err(|e| LoadError::Engine(format!("compilation task failed: {e}")))??;

        let mut components = Vec::with_capacity(compiled.len());
        let mut loads = Vec::with_capacity(compiled.len());
        for ((pre, load), config) in compiled.into_iter().zip(configs) {
            components.push(LoadedComponent {
                config: Arc::new(config),
                pre,
            });
            loads.push(load);
        }
        let route_list = manifest
            .triggers
            .iter()
            .map(|t| (t.route.clone(), t.component.clone()))
            .collect();
        let report = LoadReport {
            components: loads,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            app = %manifest.name,
            manifest = %config.manifest.display(),
            from_cache = report.from_cache(),
            components = report.components.len(),
            load_ms = report.elapsed.as_millis() as u64,
            "application loaded"
        );
        Ok(App {
            engine,
            components,
            router,
            route_list,
            key_value: KeyValueStore::default(),
            client: OutboundClient::new(),
            body_limits,
            report,
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

/// The body limits, after checking that every overridden route is one of
/// the manifest's (a typo would otherwise silently keep the default).
fn body_limits(config: &HostConfig, manifest: &Manifest) -> Result<BodyLimits, LoadError> {
    let mut routes = HashMap::with_capacity(config.route_body_limits.len());
    for (route, limit) in &config.route_body_limits {
        if !manifest.triggers.iter().any(|t| t.route == *route) {
            return Err(LoadError::UnknownRoute {
                route: route.clone(),
                known: manifest.triggers.iter().map(|t| t.route.clone()).collect(),
            });
        }
        routes.insert(route.clone(), *limit);
    }
    Ok(BodyLimits::new(config.max_body_bytes, routes))
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
        .max_memory_size(MAX_MEMORY_BYTES)
        .decommit_batch_size(DECOMMIT_BATCH_SIZE);
    // Without PAGEMAP_SCAN, keeping memory resident means memsetting its
    // first bytes whether the guest wrote them or not, which costs more
    // than it saves at these sizes: then hand everything back as before.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_BYTES)
            .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES);
    } else {
        tracing::warn!(
            "the kernel lacks PAGEMAP_SCAN (Linux 6.7+): instance memory is handed back to the kernel after every request, which costs CPU"
        );
    }
    let mut wasm = Config::new();
    wasm.parallel_compilation(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| LoadError::Engine(format!("{e:#}")))
}

fn compile_all(
    engine: &Engine,
    cache: Option<&CompileCache>,
    decls: &[ComponentDecl],
) -> Result<Vec<(ProxyPre<InstanceState>, ComponentLoad)>, LoadError> {
    let linker = instance::linker(engine).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    decls
        .iter()
        .map(|decl| {
            let err = |message: String| LoadError::Component {
                id: decl.id.clone(),
                path: decl.source.clone(),
                message,
            };
            let started = Instant::now();
            let bytes = std::fs::read(&decl.source).map_err(|e| err(e.to_string()))?;
            let compile = || {
                Component::new(engine, &bytes)
                    .map_err(|e| err(format!("not a valid wasm component: {e:#}")))
            };
            let (component, cache_outcome) = match cache {
                None => (compile()?, CacheOutcome::Disabled),
                Some(cache) => {
                    let key = cache.key(&bytes);
                    let (component, outcome) = match cache.load(engine, &key) {
                        Lookup::Hit(component) => (component, CacheOutcome::Hit),
                        Lookup::Miss => (compile()?, CacheOutcome::Miss),
                        Lookup::Invalid(reason) => {
                            tracing::warn!(component = %decl.id, %key, %reason, "cached compilation unusable; recompiling");
                            (compile()?, CacheOutcome::Invalid)
                        }
                    };
                    if outcome != CacheOutcome::Hit
                        && let Err(e) = cache.store(&key, &component)
                    {
                        tracing::warn!(component = %decl.id, error = %e, "cannot store the compiled component");
                    }
                    (component, outcome)
                }
            };
            // Build the copy-on-write memory images now rather than on the
            // first request that instantiates the component.
            component
                .initialize_copy_on_write_image()
                .map_err(|e| err(format!("cannot prepare its memory image: {e:#}")))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| err(format!("cannot link: {e:#}")))?;
            let pre = ProxyPre::new(pre)
                .map_err(|e| err(format!("does not export wasi:http/incoming-handler: {e:#}")))?;
            let load = ComponentLoad {
                id: decl.id.clone(),
                source: decl.source.clone(),
                cache: cache_outcome,
                elapsed: started.elapsed(),
            };
            tracing::info!(
                component = %decl.id,
                source = %decl.source.display(),
                cache = %cache_outcome.as_str(),
                load_ms = load.elapsed.as_millis() as u64,
                "component loaded"
            );
            Ok((pre, load))
        })
        .collect()
}
