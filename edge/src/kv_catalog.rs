//! Workers KV as the raw key-value store under the snapshot catalog, plus the isolate-wide cache
//! and clock the catalog reader needs.

use edge_core::levels::LevelCache;
use edge_core::snapshot::{CatalogCache, Clock, KvRead, KvWrite};
use edge_core::store::BoxFuture;
use edge_core::StoreError;
use std::sync::{Arc, OnceLock};
use worker::kv::KvStore;
use worker::send::SendFuture;

pub struct WorkersKv {
    kv: KvStore,
}

impl WorkersKv {
    pub fn new(kv: KvStore) -> Self {
        Self { kv }
    }
}

impl KvRead for WorkersKv {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(SendFuture::new(async move {
            self.kv
                .get(key)
                .bytes()
                .await
                .map_err(|e| StoreError::Unavailable(format!("KV get {key}: {e}")))
        }))
    }
}

impl KvWrite for WorkersKv {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SendFuture::new(async move {
            let failed =
                |e: worker::kv::KvError| StoreError::Unavailable(format!("KV put {key}: {e}"));
            self.kv
                .put_bytes(key, &value)
                .map_err(failed)?
                .execute()
                .await
                .map_err(failed)
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SendFuture::new(async move {
            self.kv
                .delete(key)
                .await
                .map_err(|e| StoreError::Unavailable(format!("KV delete {key}: {e}")))
        }))
    }
}

/// The catalog cache of this isolate: created on first use, shared by every request it serves.
pub fn isolate_cache() -> Arc<CatalogCache> {
    static CACHE: OnceLock<Arc<CatalogCache>> = OnceLock::new();
    CACHE.get_or_init(Arc::default).clone()
}

/// Recently read stock levels of this isolate, for display.
pub fn isolate_levels() -> Arc<LevelCache> {
    static LEVELS: OnceLock<Arc<LevelCache>> = OnceLock::new();
    LEVELS.get_or_init(Arc::default).clone()
}

/// Wall-clock time from the JS `Date` (`SystemTime::now` panics in workers).
pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }
}
