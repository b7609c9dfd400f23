//! The traits a host implements, and [`Shop`], the bundle of them a request handler uses.
//!
//! Futures are boxed and `Send` so the traits are object-safe and work inside axum handlers. On
//! Cloudflare (single-threaded wasm) the host wraps its non-`Send` JS futures to satisfy the bound.

use crate::levels::LevelCache;
use crate::listing::{CategoryInfo, CategoryListing, Facets};
use crate::product::{Product, ProductSummary, Sku};
use crate::shard::SkuShard;
use crate::snapshot::Clock;
use crate::stock::{OrderId, ShardReply, ShardRequest, StockLevel};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Products bought together with each product, most often first.
pub type Together = BTreeMap<Sku, Vec<Sku>>;

/// Why a store could not answer. Each variant says what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing service failed or timed out: transient, show a degraded page or retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded: degrade the part of the page that needs it and report.
    #[error("stored value {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// The coordinator answered something this protocol does not expect: a deployment mismatch.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Whether a peer's HTTP status (the origin's, an edge's) is a refusal that retrying the same
/// request will not change: a 4xx other than 408 (timeout) and 429 (too many requests).
pub fn refusal_is_final(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// Read side of the product catalog (publishing writes snapshots, see [`crate::snapshot`]).
pub trait CatalogStore: Send + Sync {
    /// The product, or `None` when the catalog has no such SKU.
    fn product<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<Product>, StoreError>>;
    /// The product a stock unit (a product's own SKU, or one of its variants') belongs to.
    fn unit<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<Product>, StoreError>>;
    /// Summaries of every product, in catalog order. Empty when nothing is published yet.
    fn products(&self) -> BoxFuture<'_, Result<Arc<Vec<ProductSummary>>, StoreError>>;
    /// Facet counts over every product, precomputed at publish.
    fn facets(&self) -> BoxFuture<'_, Result<Arc<Facets>, StoreError>>;
    /// Categories with their product counts, by name.
    fn categories(&self) -> BoxFuture<'_, Result<Arc<Vec<CategoryInfo>>, StoreError>>;
    /// A category's products and facets, or `None` for an unknown slug.
    fn category<'a>(
        &'a self,
        slug: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<CategoryListing>>, StoreError>>;
    /// The products trending when the snapshot was published, best first (may be empty).
    fn trending(&self) -> BoxFuture<'_, Result<Arc<Vec<Sku>>, StoreError>> {
        Box::pin(async { Ok(Arc::default()) })
    }
    /// Each product's place in [`Self::products`], for finding a few SKUs' summaries without a
    /// scan. Hosts with a cache keep one per version; the default builds it per call.
    fn positions(
        &self,
    ) -> BoxFuture<'_, Result<Arc<std::collections::HashMap<Sku, u32>>, StoreError>> {
        Box::pin(async move {
            let products = self.products().await?;
            Ok(Arc::new(
                products
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.sku.clone(), i as u32))
                    .collect(),
            ))
        })
    }
    /// Products bought together with each product, published with the snapshot (may be empty).
    fn together(&self) -> BoxFuture<'_, Result<Arc<Together>, StoreError>> {
        Box::pin(async { Ok(Arc::default()) })
    }
    /// The snapshot's similar-items index; `None` when none was published.
    fn similar_index(
        &self,
    ) -> BoxFuture<'_, Result<Option<Arc<crate::similar::SimilarIndex>>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
    /// Products matching a text query, best match first.
    fn search<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ProductSummary>, StoreError>>;
    /// The promotions and shipping rate published with the snapshot (none: no promotions,
    /// free shipping).
    fn promotions(&self) -> BoxFuture<'_, Result<Arc<crate::promo::PromotionBook>, StoreError>> {
        Box::pin(async { Ok(Arc::default()) })
    }
    /// The products on sale at `now_ms` and their shelf prices ([`crate::promo::shelf_sales`]);
    /// none when the promotions are corrupt (pages show list prices). Hosts with a cache keep
    /// one per version and set of running promotions; the default works it out per call.
    fn shelf_sales(
        &self,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Arc<crate::promo::ShelfSales>, StoreError>> {
        Box::pin(async move {
            let Some(book) = readable_promotions(self).await? else {
                return Ok(Arc::default());
            };
            let products = self.products().await?;
            Ok(Arc::new(crate::promo::shelf_sales(
                &book,
                products.iter(),
                now_ms,
            )))
        })
    }
}

/// The catalog's promotions, or `None` when their value is corrupt (pages then show list
/// prices; checkout, which reads them too, refuses with its own error).
pub async fn readable_promotions<C: CatalogStore + ?Sized>(
    catalog: &C,
) -> Result<Option<Arc<crate::promo::PromotionBook>>, StoreError> {
    match catalog.promotions().await {
        Ok(book) => Ok(Some(book)),
        Err(StoreError::Corrupt { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends one request to one shard and returns its reply. Hosts implement this; the SKU routing
/// and the meaning of replies live once, in [`ShardedStock`].
pub trait ShardTransport: Send + Sync {
    fn call(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>>;
}

/// How many SKUs a seed wrote and how many already had live stock (left untouched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedReport {
    pub written: u32,
    pub kept: u32,
}

/// What a restock did: the SKU's level after it, and whether its receipt had already been
/// recorded (then nothing was added this time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restocked {
    pub level: StockLevel,
    pub repeated: bool,
}

/// Stock operations as the storefront sees them.
pub trait StockCoordinator: Send + Sync {
    /// One request to the shard that owns the SKUs in it (see [`crate::checkout`] for orders).
    fn on_shard(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>>;

    /// The SKU's stock, or `None` for a SKU without a stock record.
    fn level<'a>(&'a self, sku: &'a Sku) -> BoxFuture<'a, Result<Option<StockLevel>, StoreError>> {
        Box::pin(async move {
            match self
                .on_shard(SkuShard::of(sku), ShardRequest::Level { sku: sku.clone() })
                .await?
            {
                ShardReply::Level { level } => Ok(level),
                other => Err(unexpected(other)),
            }
        })
    }

    /// Adds `qty` units of a SKU (creating its record when new), at most once per `receipt`
    /// (see [`ShardRequest::Restock`]). The inner `Err` is the shard's refusal (a receipt used
    /// for other units, a level that would overflow), which changed nothing.
    fn restock<'a>(
        &'a self,
        sku: &'a Sku,
        qty: u32,
        receipt: Option<&'a OrderId>,
    ) -> BoxFuture<'a, Result<Result<Restocked, String>, StoreError>> {
        Box::pin(async move {
            let request = ShardRequest::Restock {
                sku: sku.clone(),
                qty,
                receipt: receipt.cloned(),
            };
            match self.on_shard(SkuShard::of(sku), request).await? {
                ShardReply::Restocked { level, repeated } => Ok(Ok(Restocked { level, repeated })),
                ShardReply::Rejected { reason } => Ok(Err(reason)),
                other => Err(unexpected(other)),
            }
        })
    }

    /// Sets stock levels, each on its owning shard (see [`ShardRequest::Seed`]).
    fn seed(
        &self,
        levels: Vec<(Sku, u32)>,
        overwrite: bool,
    ) -> BoxFuture<'_, Result<SeedReport, StoreError>> {
        Box::pin(async move {
            let mut by_shard: BTreeMap<SkuShard, Vec<(Sku, u32)>> = BTreeMap::new();
            for (sku, level) in levels {
                by_shard
                    .entry(SkuShard::of(&sku))
                    .or_default()
                    .push((sku, level));
            }
            let mut report = SeedReport::default();
            for (shard, levels) in by_shard {
                match self
                    .on_shard(shard, ShardRequest::Seed { levels, overwrite })
                    .await?
                {
                    ShardReply::Seeded { written, kept } => {
                        report.written += written;
                        report.kept += kept;
                    }
                    other => return Err(unexpected(other)),
                }
            }
            Ok(report)
        })
    }
}

/// A [`StockCoordinator`] over any shard transport: routes each SKU to its shard.
pub struct ShardedStock<T> {
    transport: T,
}

impl<T: ShardTransport> ShardedStock<T> {
    pub fn new(transport: T) -> Self {
        Self { transport }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }
}

/// A reply the caller has no use for, as an error that names it.
pub fn unexpected(reply: ShardReply) -> StoreError {
    match reply {
        ShardReply::Rejected { reason } => {
            StoreError::Protocol(format!("shard rejected request: {reason}"))
        }
        other => StoreError::Protocol(format!("unexpected shard reply {other:?}")),
    }
}

impl<T: ShardTransport> StockCoordinator for ShardedStock<T> {
    fn on_shard(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        self.transport.call(shard, request)
    }
}

/// Everything a storefront request needs, cheap to clone and shared by every handler.
#[derive(Clone)]
pub struct Shop {
    pub catalog: Arc<dyn CatalogStore>,
    pub stock: Arc<dyn StockCoordinator>,
    /// Checkouts and orders (feature `server`: the browser bundle never checks out itself).
    #[cfg(feature = "server")]
    pub orders: Arc<dyn crate::checkout::OrderDesk>,
    /// Per-isolate cache of recently read levels, for display only.
    pub levels: Arc<LevelCache>,
    pub clock: Arc<dyn Clock>,
}

impl Shop {
    /// The level to *show* for a SKU: at most [`crate::levels::LEVEL_TTL_MS`] old.
    pub async fn display_level(&self, sku: &Sku) -> Result<Option<u32>, StoreError> {
        let now = self.clock.now_ms();
        if let Some(level) = self.levels.fresh(sku, now) {
            return Ok(level);
        }
        let level = self.stock.level(sku).await?.map(|l| l.available);
        self.levels.record(sku, level, now);
        Ok(level)
    }
}
