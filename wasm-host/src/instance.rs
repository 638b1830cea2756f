//! Per-request instance state and the linker that wires host interfaces in.
//!
//! Every request gets a fresh `Store<InstanceState>`: its own WASI context
//! (stdout/stderr inherited so guest logs show, no stdin, no environment, no
//! preopened directories, no sockets), its own resource table, and `wasi:http`
//! hooks carrying the component's outbound allow-list. What outlives a
//! request — the component's resolved configuration, the key-value store and
//! the outbound connection pool — is shared through `Arc`s.

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::fermyon::spin;
use crate::key_value::{KeyValue, KeyValueStore, KeyValueView};
use crate::outbound::{AllowList, OutboundClient, OutboundHttp};
use crate::variables::{ComponentVariables, Variables, VariablesView};

/// A component's resolved configuration, shared by all its instances.
#[derive(Debug)]
pub struct ComponentConfig {
    /// The component id from the manifest.
    pub id: Arc<str>,
    /// Variables the component may read.
    pub variables: ComponentVariables,
    /// Whether `key_value_stores` grants the `default` store.
    pub key_value_granted: bool,
    /// Expanded `allowed_outbound_hosts`.
    pub allow: Arc<AllowList>,
}

/// The `T` of `Store<T>`: everything one instance can reach.
pub struct InstanceState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHttp,
    config: Arc<ComponentConfig>,
    key_value: KeyValueStore,
}

impl InstanceState {
    /// Fresh state for one request to the component described by `config`.
    pub fn new(
        config: Arc<ComponentConfig>,
        key_value: KeyValueStore,
        client: OutboundClient,
    ) -> InstanceState {
        let wasi = WasiCtx::builder().inherit_stdout().inherit_stderr().build();
        InstanceState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp {
                allow: config.allow.clone(),
                client,
                component: config.id.clone(),
            },
            config,
            key_value,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Builds the linker shared by all components: WASI p2, `wasi:http`, and
/// Spin's variables and key-value interfaces.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    spin::variables::add_to_linker::<_, Variables>(&mut linker, |state| VariablesView {
        vars: &state.config.variables,
    })?;
    spin::key_value::add_to_linker::<_, KeyValue>(&mut linker, |state| KeyValueView {
        store: &state.key_value,
        granted: state.config.key_value_granted,
        table: &mut state.table,
    })?;
    Ok(linker)
}
