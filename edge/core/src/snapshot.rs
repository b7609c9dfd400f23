//! Versioned catalog snapshots in a key-value store, and the cached reader the edge uses.
//!
//! # Layout
//! A publish of version `N` writes every key under `v{N}/` first (one CBOR [`Product`] per SKU
//! and the product index), and only then flips the pointer key [`POINTER_KEY`] to `N`. Readers
//! resolve the pointer once per request and read only keys of that version, so a shopper never
//! sees a mix of two versions. Old versions stay readable until garbage-collected.
//!
//! # Caching
//! [`CatalogCache`] lives as long as the isolate (or process) and is shared by every request:
//! the pointer is re-read at most every [`POINTER_TTL_MS`], and decoded products (including "no
//! such product") are kept in a bounded LRU keyed by (version, SKU). A warm product page makes
//! no KV read at all; [`SnapshotCatalog::kv_reads`] counts the reads of one request.

use crate::codec::{from_cbor, to_cbor};
use crate::listing::{self, CategoryInfo, CategoryListing, Facets};
use crate::product::{Product, ProductSummary, Sku};
use crate::search::SearchIndex;
use crate::shard::fnv1a_64;
use crate::similar::SimilarIndex;
use crate::store::{BoxFuture, CatalogStore, StoreError, Together};
use lru::LruCache;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The key naming the live version.
pub const POINTER_KEY: &str = "catalog/current";
/// How long a reader trusts its cached pointer before reading it again.
pub const POINTER_TTL_MS: u64 = 5_000;
/// Decoded values kept per isolate: products (about 1 KiB each), listings, indexes.
pub const CACHE_ENTRIES: usize = 20_000;
/// Search results returned at most (ranked; the rest are dropped).
pub const SEARCH_RESULTS_MAX: usize = 1_000;

pub fn product_key(version: u64, sku: &Sku) -> String {
    format!("v{version}/product/{sku}")
}

/// Variant SKU -> its product's SKU, for every product with variants (pricing a cart line).
pub fn units_key(version: u64) -> String {
    format!("v{version}/units")
}

/// The value under [`units_key`].
pub type UnitMap = BTreeMap<Sku, Sku>;

pub fn unit_map(products: &[Product]) -> UnitMap {
    products
        .iter()
        .flat_map(|p| p.variants.iter().map(|v| (v.sku.clone(), p.sku.clone())))
        .collect()
}

/// The trending SKUs published with the snapshot (CBOR `Vec<Sku>`, best first).
pub fn trending_key(version: u64) -> String {
    format!("v{version}/trending")
}

/// Products bought together, published with the snapshot (CBOR `BTreeMap<Sku, Vec<Sku>>`, each
/// list most often first). Absent in snapshots published without the origin's analytics.
pub fn together_key(version: u64) -> String {
    format!("v{version}/together")
}

/// The "bought together" lists as the snapshot entry [`together_key`] names; none when empty.
pub fn together_entries(together: &Together, version: u64) -> Vec<(String, Vec<u8>)> {
    if together.is_empty() {
        return Vec::new();
    }
    vec![(together_key(version), to_cbor(together))]
}

pub fn index_key(version: u64) -> String {
    format!("v{version}/index/products")
}

pub fn categories_key(version: u64) -> String {
    format!("v{version}/categories")
}

pub fn category_key(version: u64, slug: &str) -> String {
    format!("v{version}/category/{slug}")
}

pub fn search_key(version: u64) -> String {
    format!("v{version}/search")
}

/// Facet counts over every product (the unfiltered "all products" listing).
pub fn facets_key(version: u64) -> String {
    format!("v{version}/facets")
}

/// The (SKU, content hash) list of a version, for `diff` and change reports.
pub fn manifest_key(version: u64) -> String {
    format!("v{version}/manifest")
}

/// The promotions and shipping rate published with the snapshot (CBOR
/// [`crate::promo::PromotionBook`]). Absent: no promotions, free shipping.
pub fn promotions_key(version: u64) -> String {
    format!("v{version}/promotions")
}

/// Prefix of every key of one version (for listing and garbage collection).
pub fn version_prefix(version: u64) -> String {
    format!("v{version}/")
}

/// The value of [`POINTER_KEY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPointer {
    pub version: u64,
    /// Milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    pub products: u32,
}

/// Each SKU of a snapshot with the FNV-1a hash of its product's CBOR encoding.
pub type Manifest = Vec<(Sku, u64)>;

pub fn manifest(products: &[Product]) -> Manifest {
    products
        .iter()
        .map(|p| (p.sku.clone(), fnv1a_64(&to_cbor(p))))
        .collect()
}

/// What changes between two snapshots, by SKU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiff {
    pub added: Vec<Sku>,
    pub removed: Vec<Sku>,
    pub changed: Vec<Sku>,
}

impl SnapshotDiff {
    pub fn between(old: &Manifest, new: &Manifest) -> Self {
        let old: BTreeMap<&Sku, u64> = old.iter().map(|(s, h)| (s, *h)).collect();
        let new: BTreeMap<&Sku, u64> = new.iter().map(|(s, h)| (s, *h)).collect();
        let mut diff = Self::default();
        for (sku, hash) in &new {
            match old.get(sku) {
                None => diff.added.push((*sku).clone()),
                Some(old_hash) if old_hash != hash => diff.changed.push((*sku).clone()),
                Some(_) => {}
            }
        }
        diff.removed = old
            .keys()
            .filter(|sku| !new.contains_key(*sku))
            .map(|s| (*s).clone())
            .collect();
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Every key and CBOR value of snapshot `version`: products, manifest, category listings, the
/// search index, and the product index last. The pointer is not included: a publisher writes
/// these first and the pointer after them.
pub fn snapshot_entries(
    products: &[Product],
    trending: &[Sku],
    version: u64,
) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = products
        .iter()
        .map(|p| (product_key(version, &p.sku), to_cbor(p)))
        .collect();
    entries.push((manifest_key(version), to_cbor(&manifest(products))));
    let index: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
    entries.push((
        categories_key(version),
        to_cbor(&listing::categories(&index)),
    ));
    for listing in listing::category_listings(&index) {
        entries.push((
            category_key(version, &listing.category.slug),
            to_cbor(&listing),
        ));
    }
    entries.push((search_key(version), to_cbor(&SearchIndex::build(products))));
    entries.push((facets_key(version), to_cbor(&listing::facets(&index))));
    entries.push((units_key(version), to_cbor(&unit_map(products))));
    entries.push((trending_key(version), to_cbor(&trending)));
    entries.push((index_key(version), to_cbor(&index)));
    entries
}

/// Largest KV key (Workers KV's limit).
pub const KV_KEY_BYTES_MAX: usize = 512;
/// Largest KV value (Workers KV's limit is 25 MiB).
pub const KV_VALUE_BYTES_MAX: usize = 25 * 1024 * 1024;

/// One key and value, as publishers send them in batches (`POST /_admin/kv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// Reading raw values from a key-value store (Workers KV, Spin key-value, memory).
pub trait KvRead: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
}

/// Writing raw values: what a publisher needs of a key-value store.
pub trait KvWrite: KvRead {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Removes a key; removing an absent key is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Every key of snapshot `version`, given its manifest and categories (garbage collection).
pub fn version_keys(version: u64, manifest: &Manifest, categories: &[CategoryInfo]) -> Vec<String> {
    let mut keys: Vec<String> = manifest
        .iter()
        .map(|(sku, _)| product_key(version, sku))
        .collect();
    keys.extend(categories.iter().map(|c| category_key(version, &c.slug)));
    // The manifest goes last: while it exists, a collector can still find the other keys.
    keys.extend([
        promotions_key(version),
        categories_key(version),
        search_key(version),
        facets_key(version),
        units_key(version),
        trending_key(version),
        together_key(version),
        index_key(version),
        manifest_key(version),
    ]);
    keys
}

/// Milliseconds since the Unix epoch, from the host (workers have no `SystemTime`).
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// A decoded value of any type, or `None` for a key known to be absent.
type CachedValue = Option<Arc<dyn Any + Send + Sync>>;

struct CacheState {
    pointer: Option<(SnapshotPointer, u64)>,
    /// Keyed by the full KV key, which names its version: entries of old versions simply age out.
    values: LruCache<String, CachedValue>,
}

/// The per-isolate cache shared by all requests. Cheap to lock: no I/O happens under the lock.
pub struct CatalogCache {
    state: Mutex<CacheState>,
}

impl CatalogCache {
    pub fn new(entries: usize) -> Self {
        let capacity = NonZeroUsize::new(entries.max(1)).expect("capacity is at least 1");
        Self {
            state: Mutex::new(CacheState {
                pointer: None,
                values: LruCache::new(capacity),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock cannot leave the cache inconsistent in a way that
        // matters (every entry is a complete value), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for CatalogCache {
    fn default() -> Self {
        Self::new(CACHE_ENTRIES)
    }
}

/// The catalog as one request sees it: pinned to one snapshot version, read through the cache.
pub struct SnapshotCatalog<K> {
    kv: K,
    cache: Arc<CatalogCache>,
    clock: Arc<dyn Clock>,
    pinned: Mutex<Option<SnapshotPointer>>,
    reads: AtomicU32,
}

impl<K: KvRead> SnapshotCatalog<K> {
    pub fn new(kv: K, cache: Arc<CatalogCache>, clock: Arc<dyn Clock>) -> Self {
        Self {
            kv,
            cache,
            clock,
            pinned: Mutex::new(None),
            reads: AtomicU32::new(0),
        }
    }

    /// KV reads this request made so far (0 when everything came from the cache).
    pub fn kv_reads(&self) -> u32 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The snapshot version this request reads, once it has read anything.
    pub fn pinned_version(&self) -> Option<u64> {
        self.pinned.lock().ok().and_then(|p| p.map(|p| p.version))
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        match self.kv.get(key).await? {
            None => Ok(None),
            Some(bytes) => from_cbor(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: key.to_owned(),
                    reason: e.to_string(),
                }),
        }
    }

    /// The version this request reads: pinned on first use, from the cache while it is fresh.
    /// `None` when nothing has been published yet.
    async fn version(&self) -> Result<Option<u64>, StoreError> {
        if let Some(pointer) = *self.pinned.lock().expect("pin lock") {
            return Ok(Some(pointer.version));
        }
        let now = self.clock.now_ms();
        let cached = self
            .cache
            .lock()
            .pointer
            .filter(|(_, at)| now.saturating_sub(*at) < POINTER_TTL_MS);
        let pointer = match cached {
            Some((pointer, _)) => Some(pointer),
            None => {
                let pointer: Option<SnapshotPointer> = self.read(POINTER_KEY).await?;
                if let Some(p) = pointer {
                    let mut cache = self.cache.lock();
                    // Never step back to an older version a slower read returned.
                    if cache
                        .pointer
                        .is_none_or(|(old, _)| old.version <= p.version)
                    {
                        cache.pointer = Some((p, now));
                    }
                }
                pointer
            }
        };
        let mut pinned = self.pinned.lock().expect("pin lock");
        *pinned = pinned.or(pointer);
        Ok(pinned.map(|p| p.version))
    }

    /// A value derived from the pinned version's product index, kept in the cache under `key`
    /// (a key KV never has): `make` runs only when the cache does not hold it.
    async fn derived<T: Send + Sync + 'static>(
        &self,
        key: String,
        make: impl FnOnce(&[ProductSummary]) -> T,
    ) -> Result<Arc<T>, StoreError> {
        if let Some(hit) = self.cache.lock().values.get(&key).cloned().flatten() {
            if let Ok(value) = hit.downcast::<T>() {
                return Ok(value);
            }
        }
        let products = self.products().await?;
        let value = Arc::new(make(&products));
        self.cache
            .lock()
            .values
            .put(key, Some(value.clone() as Arc<dyn Any + Send + Sync>));
        Ok(value)
    }

    /// The decoded value under `key` of the pinned version, from the cache or KV.
    async fn cached<T>(&self, key: impl FnOnce(u64) -> String) -> Result<Option<Arc<T>>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let Some(version) = self.version().await? else {
            return Ok(None);
        };
        let key = key(version);
        if let Some(hit) = self.cache.lock().values.get(&key) {
            return Ok(hit.clone().and_then(|v| v.downcast::<T>().ok()));
        }
        let value: Option<Arc<T>> = self.read::<T>(&key).await?.map(Arc::new);
        let erased: CachedValue = value.clone().map(|v| v as Arc<dyn Any + Send + Sync>);
        self.cache.lock().values.put(key, erased);
        Ok(value)
    }

    /// A value every published snapshot has; its absence means the snapshot is broken.
    async fn required<T>(&self, key: impl Fn(u64) -> String) -> Result<Arc<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + Default + 'static,
    {
        match self.version().await? {
            None => Ok(Arc::default()),
            Some(version) => self
                .cached::<T>(&key)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    key: key(version),
                    reason: "missing from the published snapshot".into(),
                }),
        }
    }
}

impl<K: KvRead> SnapshotCatalog<K> {
    async fn read_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.kv.get(key).await
    }

    /// Reads and decodes the version's similar-items index (manifest, chunks, SKU list).
    async fn load_similar(&self, version: u64) -> Result<Option<SimilarIndex>, StoreError> {
        let prefix = crate::similar::index_prefix(version);
        let manifest_key = vectors::manifest_key(&prefix);
        let corrupt = |key: &str, e: vectors::VectorError| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        };
        let Some(manifest) = self.read_raw(&manifest_key).await? else {
            return Ok(None);
        };
        let chunk_count = vectors::Manifest::from_bytes(&manifest)
            .map_err(|e| corrupt(&manifest_key, e))?
            .chunk_count();
        let mut chunks = Vec::with_capacity(chunk_count);
        for i in 0..chunk_count {
            let key = vectors::chunk_key(&prefix, i);
            let chunk = self
                .read_raw(&key)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    key: key.clone(),
                    reason: "missing from the published snapshot".into(),
                })?;
            chunks.push(chunk);
        }
        let skus_key = crate::similar::skus_key(version);
        let skus: Vec<Sku> = self
            .read(&skus_key)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                key: skus_key.clone(),
                reason: "missing from the published snapshot".into(),
            })?;
        let products = self.products().await?;
        SimilarIndex::load(&manifest, &chunks, skus, &products)
            .map(Some)
            .map_err(|e| corrupt(&manifest_key, e))
    }
}

impl<K: KvRead> CatalogStore for SnapshotCatalog<K> {
    fn trending(&self) -> BoxFuture<'_, Result<Arc<Vec<Sku>>, StoreError>> {
        Box::pin(async move {
            // Snapshots published without a trending list have none: best-sellers are then the
            // catalog's own order.
            Ok(self
                .cached::<Vec<Sku>>(trending_key)
                .await?
                .unwrap_or_default())
        })
    }

    fn together(&self) -> BoxFuture<'_, Result<Arc<Together>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .cached::<Together>(together_key)
                .await?
                .unwrap_or_default())
        })
    }

    fn similar_index(&self) -> BoxFuture<'_, Result<Option<Arc<SimilarIndex>>, StoreError>> {
        Box::pin(async move {
            let Some(version) = self.version().await? else {
                return Ok(None);
            };
            let key = vectors::manifest_key(&crate::similar::index_prefix(version));
            if let Some(hit) = self.cache.lock().values.get(&key) {
                return Ok(hit.clone().and_then(|v| v.downcast::<SimilarIndex>().ok()));
            }
            // A broken index is remembered as none (until the next version): pages show no
            // similar items instead of reading megabytes of bad chunks on every request.
            let (loaded, result) = match self.load_similar(version).await {
                Ok(index) => {
                    let index = index.map(Arc::new);
                    (index.clone(), Ok(index))
                }
                Err(e @ StoreError::Corrupt { .. }) => (None, Err(e)),
                Err(e) => return Err(e),
            };
            let erased: CachedValue = loaded.map(|v| v as Arc<dyn Any + Send + Sync>);
            self.cache.lock().values.put(key, erased);
            result
        })
    }

    fn product<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<Product>, StoreError>> {
        Box::pin(async move {
            let product = self.cached::<Product>(|v| product_key(v, sku)).await?;
            Ok(product.map(|p| (*p).clone()))
        })
    }

    fn products(&self) -> BoxFuture<'_, Result<Arc<Vec<ProductSummary>>, StoreError>> {
        Box::pin(self.required(index_key))
    }

    fn positions(&self) -> BoxFuture<'_, Result<Arc<HashMap<Sku, u32>>, StoreError>> {
        Box::pin(async move {
            let Some(version) = self.version().await? else {
                return Ok(Arc::default());
            };
            let key = format!("{}#positions", index_key(version));
            self.derived(key, |products| -> HashMap<Sku, u32> {
                products
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.sku.clone(), i as u32))
                    .collect()
            })
            .await
        })
    }

    fn unit<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<Product>, StoreError>> {
        Box::pin(async move {
            // Snapshots published before variants had a unit map have none: no variants then.
            let units = self.cached::<UnitMap>(units_key).await?;
            let product_sku = units.as_ref().and_then(|u| u.get(sku)).unwrap_or(sku);
            let product = self.product(product_sku).await?;
            Ok(product.filter(|p| p.price_of(sku).is_some()))
        })
    }

    fn categories(&self) -> BoxFuture<'_, Result<Arc<Vec<CategoryInfo>>, StoreError>> {
        Box::pin(self.required(categories_key))
    }

    fn facets(&self) -> BoxFuture<'_, Result<Arc<Facets>, StoreError>> {
        Box::pin(self.required(facets_key))
    }

    fn category<'a>(
        &'a self,
        slug: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<CategoryListing>>, StoreError>> {
        Box::pin(self.cached(move |v| category_key(v, slug)))
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ProductSummary>, StoreError>> {
        Box::pin(async move {
            let index = self.required::<SearchIndex>(search_key).await?;
            let products = self.products().await?;
            Ok(index
                .search(query)
                .into_iter()
                .filter_map(|position| products.get(position as usize).cloned())
                .take(SEARCH_RESULTS_MAX)
                .collect())
        })
    }

    fn promotions(&self) -> BoxFuture<'_, Result<Arc<crate::promo::PromotionBook>, StoreError>> {
        Box::pin(async move { Ok(self.cached(promotions_key).await?.unwrap_or_default()) })
    }

    fn shelf_sales(
        &self,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Arc<crate::promo::ShelfSales>, StoreError>> {
        Box::pin(async move {
            let Some(version) = self.version().await? else {
                return Ok(Arc::default());
            };
            let Some(book) = crate::store::readable_promotions(self).await? else {
                return Ok(Arc::default());
            };
            // Derived from the version's products and the promotions running now: worked out
            // again only when a sale starts or ends, or a new version is published.
            let running = book.running_sales(now_ms);
            if running.is_empty() {
                return Ok(Arc::default());
            }
            let running: Vec<String> = running.iter().map(usize::to_string).collect();
            let key = format!("{}#sales@{}", index_key(version), running.join(","));
            self.derived(key, |products| {
                crate::promo::shelf_sales(&book, products, now_ms)
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{ManualClock, MemoryKv};
    use crate::Money;

    fn product(sku: &str, title: &str) -> Product {
        Product {
            sku: Sku::parse(sku).unwrap(),
            title: title.into(),
            description: String::new(),
            price: Money::new(100, "USD"),
            category: "c".into(),
            image: "/i.svg".into(),
            vendor: String::new(),
            tags: vec![],
            options: vec![],
            variants: vec![],
        }
    }

    struct Host {
        kv: Arc<MemoryKv>,
        cache: Arc<CatalogCache>,
        clock: Arc<ManualClock>,
    }

    impl Host {
        fn new() -> Self {
            Self {
                kv: Arc::default(),
                cache: Arc::default(),
                clock: Arc::new(ManualClock::default()),
            }
        }
        fn request(&self) -> SnapshotCatalog<Arc<MemoryKv>> {
            SnapshotCatalog::new(self.kv.clone(), self.cache.clone(), self.clock.clone())
        }
        fn publish(&self, products: &[Product]) -> u64 {
            self.kv.publish_snapshot(products, self.clock.now_ms())
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn nothing_published_reads_as_empty() {
        let host = Host::new();
        let req = host.request();
        block_on(async {
            assert!(req.products().await.unwrap().is_empty());
            assert_eq!(req.product(&Sku::parse("A").unwrap()).await.unwrap(), None);
        });
        assert_eq!(req.pinned_version(), None);
    }

    #[test]
    fn warm_reads_cost_no_kv_reads() {
        let host = Host::new();
        host.publish(&[product("A", "Apple"), product("B", "Banana")]);
        let sku = Sku::parse("A").unwrap();
        let cold = host.request();
        block_on(async { assert_eq!(cold.product(&sku).await.unwrap().unwrap().title, "Apple") });
        assert_eq!(cold.kv_reads(), 2, "pointer + product");
        let warm = host.request();
        block_on(async {
            assert_eq!(warm.product(&sku).await.unwrap().unwrap().title, "Apple");
            assert_eq!(warm.products().await.unwrap().len(), 2);
        });
        assert_eq!(warm.kv_reads(), 1, "only the index was new");
        let warmer = host.request();
        block_on(async {
            warmer.product(&sku).await.unwrap();
            warmer.products().await.unwrap();
            // Unknown SKUs are cached as absent too.
            warmer.product(&Sku::parse("NOPE").unwrap()).await.unwrap();
            warmer.product(&Sku::parse("NOPE").unwrap()).await.unwrap();
        });
        assert_eq!(
            warmer.kv_reads(),
            1,
            "the unknown SKU is read once, then cached"
        );
    }

    #[test]
    fn a_request_stays_on_its_version_and_new_requests_see_the_flip_after_the_ttl() {
        let host = Host::new();
        assert_eq!(host.publish(&[product("A", "Old")]), 1);
        let sku = Sku::parse("A").unwrap();
        let during = host.request();
        block_on(async { assert_eq!(during.product(&sku).await.unwrap().unwrap().title, "Old") });
        assert_eq!(
            host.publish(&[product("A", "New"), product("B", "Added")]),
            2
        );
        host.clock.advance(POINTER_TTL_MS);
        block_on(async {
            // The in-flight request still reads version 1 throughout.
            assert_eq!(during.products().await.unwrap().len(), 1);
        });
        assert_eq!(during.pinned_version(), Some(1));
        let after = host.request();
        block_on(async { assert_eq!(after.product(&sku).await.unwrap().unwrap().title, "New") });
        assert_eq!(after.pinned_version(), Some(2));
    }

    #[test]
    fn pointer_is_cached_within_the_ttl() {
        let host = Host::new();
        host.publish(&[product("A", "Old")]);
        block_on(host.request().products()).unwrap();
        host.publish(&[product("A", "New")]);
        host.clock.advance(POINTER_TTL_MS - 1);
        let req = host.request();
        block_on(req.products()).unwrap();
        assert_eq!(
            req.pinned_version(),
            Some(1),
            "within the TTL the cached pointer is used"
        );
        assert_eq!(req.kv_reads(), 0);
    }

    #[test]
    fn diff_reports_added_removed_and_changed_skus() {
        let old = manifest(&[
            product("A", "Apple"),
            product("B", "Banana"),
            product("C", "Cherry"),
        ]);
        let new = manifest(&[
            product("A", "Apple"),
            product("B", "Blueberry"),
            product("D", "Date"),
        ]);
        let diff = SnapshotDiff::between(&old, &new);
        let names = |skus: &[Sku]| skus.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&diff.added), ["D"]);
        assert_eq!(names(&diff.removed), ["C"]);
        assert_eq!(names(&diff.changed), ["B"]);
        assert!(SnapshotDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn snapshot_entries_cover_every_product_manifest_and_index_last() {
        let entries = snapshot_entries(&[product("A", "Apple"), product("B", "Banana")], &[], 7);
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "v7/product/A",
                "v7/product/B",
                "v7/manifest",
                "v7/categories",
                "v7/category/c",
                "v7/search",
                "v7/facets",
                "v7/units",
                "v7/trending",
                "v7/index/products"
            ]
        );
        assert!(keys.iter().all(|k| k.starts_with(&version_prefix(7))));
    }

    #[test]
    fn version_keys_are_exactly_the_keys_a_publish_writes() {
        let products = [product("A", "Apple"), product("B", "Banana")];
        let mut written: Vec<String> = snapshot_entries(&products, &[], 4)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let summaries: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
        let mut listed = version_keys(4, &manifest(&products), &listing::categories(&summaries));
        // The publisher writes the promotions and the bought-together lists beside the
        // snapshot's own entries.
        written.push(promotions_key(4));
        written.push(together_key(4));
        assert_eq!(listed.last().map(String::as_str), Some("v4/manifest"));
        written.sort();
        listed.sort();
        assert_eq!(written, listed);
    }

    #[test]
    fn corrupt_values_are_errors_for_that_read_only() {
        let host = Host::new();
        host.publish(&[product("A", "Apple"), product("B", "Banana")]);
        host.kv.put(
            &product_key(1, &Sku::parse("A").unwrap()),
            b"\xa1\x00garbage".to_vec(),
        );
        let req = host.request();
        block_on(async {
            assert!(matches!(
                req.product(&Sku::parse("A").unwrap()).await,
                Err(StoreError::Corrupt { .. })
            ));
            assert_eq!(
                req.product(&Sku::parse("B").unwrap())
                    .await
                    .unwrap()
                    .unwrap()
                    .title,
                "Banana"
            );
        });
        host.kv.put(POINTER_KEY, b"not cbor".to_vec());
        host.clock.advance(POINTER_TTL_MS);
        assert!(matches!(
            block_on(host.request().products()),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
