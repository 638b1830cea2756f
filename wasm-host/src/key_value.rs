//! The `fermyon:spin/key-value` interface, backed by one in-process store.
//!
//! Only the `default` store exists. It lives in the host process and is
//! shared by every instance of every component granted it, so a value set
//! while handling one request is visible to the next (each request runs in a
//! fresh instance). That is what Crowdgate uses key-value for: a short-lived
//! cache of the room state at the edge; nothing here is durable.
//!
//! A component without `key_value_stores = ["default"]` gets `access-denied`
//! when opening it; any other label gets `no-such-store`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin::key_value::{self as wit, Error};

/// The label of the only store this host provides.
pub const DEFAULT_STORE: &str = "default";

/// The shared contents of the `default` store. Cloning shares the data.
#[derive(Debug, Clone, Default)]
pub struct KeyValueStore {
    data: Arc<RwLock<HashMap<String, Vec<u8>>>>,
}

impl KeyValueStore {
    /// Returns the value stored under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.read().get(key).cloned()
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn set(&self, key: &str, value: Vec<u8>) {
        self.write().insert(key.to_string(), value);
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(&self, key: &str) {
        self.write().remove(key);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave a HashMap half-updated
        // in a way that matters here, so a poisoned lock is still usable.
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<u8>>> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The guest's handle to an opened store (the WIT `store` resource).
#[derive(Debug)]
pub struct OpenStore;

/// The per-store view that implements the WIT interface.
pub struct KeyValueView<'a> {
    /// The shared `default` store.
    pub store: &'a KeyValueStore,
    /// Whether the calling component was granted the `default` store.
    pub granted: bool,
    /// The instance's resource table, which holds opened stores.
    pub table: &'a mut ResourceTable,
}

impl wit::Host for KeyValueView<'_> {}

impl wit::HostStore for KeyValueView<'_> {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        if label != DEFAULT_STORE {
            return Ok(Err(Error::NoSuchStore));
        }
        if !self.granted {
            return Ok(Err(Error::AccessDenied));
        }
        Ok(Ok(self.table.push(OpenStore)?))
    }

    fn get(
        &mut self,
        _: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(Ok(self.store.get(&key)))
    }

    fn set(
        &mut self,
        _: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.store.set(&key, value);
        Ok(Ok(()))
    }

    fn delete(
        &mut self,
        _: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.store.delete(&key);
        Ok(Ok(()))
    }

    fn exists(
        &mut self,
        _: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(Ok(self.store.read().contains_key(&key)))
    }

    fn get_keys(&mut self, _: Resource<OpenStore>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(Ok(self.store.read().keys().cloned().collect()))
    }

    fn drop(&mut self, rep: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

/// Marker type naming [`KeyValueView`] as the host data for `add_to_linker`.
pub struct KeyValue;

impl wasmtime::component::HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::HostStore;

    #[test]
    fn store_is_shared_between_clones() {
        let a = KeyValueStore::default();
        let b = a.clone();
        a.set("k", b"v".to_vec());
        assert_eq!(b.get("k").as_deref(), Some(&b"v"[..]));
        b.delete("k");
        assert_eq!(a.get("k"), None);
    }

    #[test]
    fn open_checks_label_and_grant() {
        let store = KeyValueStore::default();
        let mut table = ResourceTable::new();
        let mut denied = KeyValueView {
            store: &store,
            granted: false,
            table: &mut table,
        };
        assert!(matches!(
            denied.open("default".into()).unwrap(),
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            denied.open("other".into()).unwrap(),
            Err(Error::NoSuchStore)
        ));
        let mut granted = KeyValueView {
            store: &store,
            granted: true,
            table: &mut table,
        };
        assert!(granted.open("default".into()).unwrap().is_ok());
    }
}
