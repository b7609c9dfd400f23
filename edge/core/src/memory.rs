//! In-memory hosts: the native test host, and a reference for what a real host provides.
//!
//! [`MemoryKv`] holds the same keys and CBOR values a KV namespace holds, so the snapshot layout,
//! its decoding and corrupt values ([`MemoryKv::put`]) are exercised natively.

use crate::checkout::{LocalDesk, MemoryCheckoutLog, TestGateway};
use crate::codec::{from_cbor, to_cbor};
use crate::product::Product;
use crate::shard::{SkuShard, SHARD_COUNT};
use crate::snapshot::{snapshot_entries, Clock, KvRead, KvWrite, SnapshotPointer, POINTER_KEY};
use crate::stock::{apply, MemoryShardStorage, ShardReply, ShardRequest};
use crate::store::{BoxFuture, ShardTransport, ShardedStock, StockCoordinator, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A KV namespace in memory.
#[derive(Default)]
pub struct MemoryKv {
    values: RwLock<HashMap<String, Vec<u8>>>,
}

impl MemoryKv {
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        self.values
            .write()
            .expect("kv lock")
            .insert(key.to_owned(), bytes);
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .values
            .read()
            .expect("kv lock")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Publishes `products` as the next snapshot version, the way a publisher does: all keys of
    /// the version first, the pointer last. Returns the new version.
    pub fn publish_snapshot(&self, products: &[Product], now_ms: u64) -> u64 {
        let current = self
            .values
            .read()
            .expect("kv lock")
            .get(POINTER_KEY)
            .and_then(|b| from_cbor::<SnapshotPointer>(b).ok())
            .map_or(0, |p| p.version);
        let version = current + 1;
        for (key, value) in snapshot_entries(products, &[], version) {
            self.put(&key, value);
        }
        // The native host builds the similar-items index exactly (small catalogs only).
        if let Ok(entries) = crate::similar::small_index_entries(products, &[], version) {
            for (key, value) in entries {
                self.put(&key, value);
            }
        }
        let pointer = SnapshotPointer {
            version,
            published_at_ms: now_ms,
            products: products.len() as u32,
        };
        self.put(POINTER_KEY, to_cbor(&pointer));
        version
    }
}

impl MemoryKv {
    /// Publishes a whole catalog: its products ([`MemoryKv::publish_snapshot`]), then its
    /// promotions (after the pointer flip: for hosts that publish before they serve, like the
    /// origin at startup). Returns the new version.
    pub fn publish_catalog(&self, catalog: &crate::product::Catalog, now_ms: u64) -> u64 {
        let version = self.publish_snapshot(&catalog.products, now_ms);
        self.put(
            &crate::snapshot::promotions_key(version),
            to_cbor(&catalog.promotions),
        );
        version
    }
}

impl KvRead for MemoryKv {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move { Ok(self.values.read().expect("kv lock").get(key).cloned()) })
    }
}

impl KvWrite for MemoryKv {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            MemoryKv::put(self, key, value);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.values.write().expect("kv lock").remove(key);
            Ok(())
        })
    }
}

impl<T: KvRead> KvRead for Arc<T> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        (**self).get(key)
    }
}

/// A clock tests move by hand.
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// All shards in one process, each behind its own lock (one writer per shard, as on the edge).
pub struct MemoryShards {
    shards: Vec<Mutex<MemoryShardStorage>>,
    clock: Arc<dyn Clock>,
}

impl MemoryShards {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARD_COUNT).map(|_| Mutex::default()).collect(),
            clock,
        }
    }
}

impl ShardTransport for MemoryShards {
    fn call(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        // The request goes through CBOR both ways, as it does between a worker and its shard.
        let wire = to_cbor(&request);
        Box::pin(async move {
            let request: ShardRequest =
                from_cbor(&wire).map_err(|e| StoreError::Protocol(e.to_string()))?;
            let mut storage = self.shards[usize::from(shard.index())]
                .lock()
                .expect("shard lock");
            let reply = apply(&mut *storage, request, self.clock.now_ms())
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            from_cbor(&to_cbor(&reply)).map_err(|e| StoreError::Protocol(e.to_string()))
        })
    }
}

/// The stock coordinator of the native test host.
pub type MemoryStock = ShardedStock<MemoryShards>;

impl MemoryStock {
    /// Shards whose clock stands still at 0 (holds never expire unless a test moves time).
    pub fn in_memory() -> Self {
        Self::with_clock(Arc::new(ManualClock::default()))
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        ShardedStock::new(MemoryShards::new(clock))
    }
}

/// The native host's order desk: checkouts run in process against the test gateway and an
/// in-memory log; placed orders are kept as "delivered" right away.
pub fn memory_desk(stock: Arc<dyn StockCoordinator>, clock: Arc<dyn Clock>) -> LocalDesk {
    LocalDesk {
        stock,
        payments: Arc::new(TestGateway::default()),
        log: Arc::new(MemoryCheckoutLog::default()),
        clock,
        turns: Arc::default(),
    }
}
