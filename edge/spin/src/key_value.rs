//! Spin's key-value store (`fermyon:spin/key-value@2.0.0`, the `default` store of `spin.toml`)
//! under the snapshot catalog reader, and as the raw store the admin routes publish into.
//!
//! The same CBOR keys as Workers KV (`catalog/current`, `v{N}/...`). Spin's store calls are
//! synchronous host calls, so each future is ready at once.

use edge_core::snapshot::{KvRead, KvWrite};
use edge_core::store::BoxFuture;
use edge_core::StoreError;
use spin_sdk::key_value::Store;

/// The label of the store in `spin.toml` (`key_value_stores = ["default"]`).
pub const STORE_LABEL: &str = "default";

pub struct SpinKv {
    /// Opened lazily: a request that never touches the catalog (`/healthz`) opens nothing.
    store: std::sync::OnceLock<Result<crate::send::AssumeSend<Store>, String>>,
}

impl SpinKv {
    pub fn new() -> Self {
        Self {
            store: std::sync::OnceLock::new(),
        }
    }

    fn store(&self) -> Result<&Store, StoreError> {
        self.store
            .get_or_init(|| {
                Store::open(STORE_LABEL)
                    .map(crate::send::AssumeSend)
                    .map_err(|e| format!("cannot open the key-value store {STORE_LABEL:?}: {e}"))
            })
            .as_ref()
            .map(|store| &store.0)
            .map_err(|e| StoreError::Unavailable(e.clone()))
    }
}

fn unavailable(op: &str, key: &str, e: spin_sdk::key_value::Error) -> StoreError {
    StoreError::Unavailable(format!("key-value {op} {key}: {e}"))
}

impl KvRead for SpinKv {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let result = self
            .store()
            .and_then(|store| store.get(key).map_err(|e| unavailable("get", key, e)));
        Box::pin(std::future::ready(result))
    }
}

impl KvWrite for SpinKv {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.store().and_then(|store| {
            store
                .set(key, &value)
                .map_err(|e| unavailable("set", key, e))
        });
        Box::pin(std::future::ready(result))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .store()
            .and_then(|store| store.delete(key).map_err(|e| unavailable("delete", key, e)));
        Box::pin(std::future::ready(result))
    }
}
