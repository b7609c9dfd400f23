//! In-memory stores: the native test host, and a reference for what a host must provide.
//!
//! The catalog keeps CBOR bytes per KV key, exactly as a KV host would, so decoding paths (and
//! corrupt values, via [`MemoryCatalog::put_raw`]) are exercised natively.

use crate::codec::{from_cbor, to_cbor};
use crate::product::{kv_key, Product, ProductSummary, Sku};
use crate::shard::{SkuShard, SHARD_COUNT};
use crate::stock::{apply, MemoryShardStorage, ShardReply, ShardRequest};
use crate::store::{BoxFuture, CatalogStore, ShardTransport, ShardedStock, StoreError};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// A KV namespace in memory, holding the same keys and CBOR values the edge KV holds.
#[derive(Default)]
pub struct MemoryCatalog {
    values: RwLock<HashMap<String, Vec<u8>>>,
}

impl MemoryCatalog {
    /// Stores raw bytes under a key, e.g. to simulate a corrupt value.
    pub fn put_raw(&self, key: &str, bytes: Vec<u8>) {
        self.values.write().expect("catalog lock").insert(key.to_owned(), bytes);
    }

    fn get_decoded<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let values = self.values.read().expect("catalog lock");
        match values.get(key) {
            None => Ok(None),
            Some(bytes) => from_cbor(bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() }),
        }
    }
}

impl CatalogStore for MemoryCatalog {
    fn product<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<Product>, StoreError>> {
        Box::pin(async move { self.get_decoded(&kv_key::product(sku)) })
    }

    fn products(&self) -> BoxFuture<'_, Result<Vec<ProductSummary>, StoreError>> {
        Box::pin(async move { Ok(self.get_decoded(kv_key::PRODUCT_INDEX)?.unwrap_or_default()) })
    }

    fn publish<'a>(&'a self, products: &'a [Product]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for product in products {
                self.put_raw(&kv_key::product(&product.sku), to_cbor(product));
            }
            let index: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
            self.put_raw(kv_key::PRODUCT_INDEX, to_cbor(&index));
            Ok(())
        })
    }
}

/// All shards in one process, each behind its own lock (one writer per shard, as on the edge).
pub struct MemoryShards {
    shards: Vec<Mutex<MemoryShardStorage>>,
}

impl Default for MemoryShards {
    fn default() -> Self {
        Self { shards: (0..SHARD_COUNT).map(|_| Mutex::default()).collect() }
    }
}

impl ShardTransport for MemoryShards {
    fn call(&self, shard: SkuShard, request: ShardRequest) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        // The request goes through CBOR both ways, as it does between a worker and its shard.
        let wire = to_cbor(&request);
        Box::pin(async move {
            let request: ShardRequest =
                from_cbor(&wire).map_err(|e| StoreError::Protocol(e.to_string()))?;
            let mut storage = self.shards[usize::from(shard.index())].lock().expect("shard lock");
            let reply = apply(&mut *storage, request).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            from_cbor(&to_cbor(&reply)).map_err(|e| StoreError::Protocol(e.to_string()))
        })
    }
}

/// The stock coordinator of the native test host.
pub type MemoryStock = ShardedStock<MemoryShards>;

impl MemoryStock {
    pub fn in_memory() -> Self {
        ShardedStock::new(MemoryShards::default())
    }
}
