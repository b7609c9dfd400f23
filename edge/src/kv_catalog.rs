//! The catalog in Workers KV: one CBOR value per product plus the product index.

use edge_core::codec::{from_cbor, to_cbor};
use edge_core::product::kv_key;
use edge_core::store::BoxFuture;
use edge_core::{CatalogStore, Product, ProductSummary, Sku, StoreError};
use serde::de::DeserializeOwned;
use worker::kv::KvStore;
use worker::send::SendFuture;

pub struct KvCatalog {
    kv: KvStore,
}

impl KvCatalog {
    pub fn new(kv: KvStore) -> Self {
        Self { kv }
    }

    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let bytes = self
            .kv
            .get(key)
            .bytes()
            .await
            .map_err(|e| StoreError::Unavailable(format!("KV get {key}: {e}")))?;
        match bytes {
            None => Ok(None),
            Some(bytes) => from_cbor(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() }),
        }
    }

    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let unavailable = |e: worker::kv::KvError| StoreError::Unavailable(format!("KV put {key}: {e}"));
        self.kv.put_bytes(key, bytes).map_err(unavailable)?.execute().await.map_err(unavailable)
    }
}

impl CatalogStore for KvCatalog {
    fn product<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<Product>, StoreError>> {
        Box::pin(SendFuture::new(async move { self.get(&kv_key::product(sku)).await }))
    }

    fn products(&self) -> BoxFuture<'_, Result<Vec<ProductSummary>, StoreError>> {
        Box::pin(SendFuture::new(async move {
            Ok(self.get(kv_key::PRODUCT_INDEX).await?.unwrap_or_default())
        }))
    }

    fn publish<'a>(&'a self, products: &'a [Product]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SendFuture::new(async move {
            for product in products {
                self.put(&kv_key::product(&product.sku), &to_cbor(product)).await?;
            }
            // The index goes last, so it never lists a product whose value is not written yet.
            let index: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
            self.put(kv_key::PRODUCT_INDEX, &to_cbor(&index)).await
        }))
    }
}
