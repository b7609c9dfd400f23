//! Publishing a catalog as an immutable, versioned snapshot through an edge's admin API.
//!
//! Steps (see `edge_core::snapshot`): validate the whole file; read the live pointer; write every
//! key of version N+1 in batches; flip the pointer to N+1 in a request of its own; seed stock for
//! SKUs that have none (live stock is never overwritten). A failure before the flip leaves the
//! live version untouched; the half-written version is unreachable garbage.

use edge_core::codec::{from_cbor, to_cbor};
use edge_core::listing::CategoryInfo;
use edge_core::product::CatalogProblem;
use edge_core::snapshot::{
    categories_key, manifest, manifest_key, snapshot_entries, version_keys, KvEntry, Manifest,
    SnapshotDiff, SnapshotPointer, POINTER_KEY,
};
use edge_core::store::SeedReport;
use edge_core::Catalog;
use futures::StreamExt;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Longest one admin request may take before the publish is reported as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Entries and bytes per `/_admin/kv` batch (the edge accepts up to 1000 entries, 32 MiB).
const KV_BATCH_ENTRIES: usize = 500;
const KV_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Batches sent at once.
const KV_BATCHES_IN_FLIGHT: usize = 4;
/// SKUs per `/_admin/stock` batch (the edge accepts up to 10k).
const STOCK_BATCH_SKUS: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{} problem(s) in the catalog; nothing was published:\n{}", .0.len(), list(.0))]
    Invalid(Vec<CatalogProblem>),
    #[error("cannot reach the edge at {url}: {detail} (is `wrangler dev` running?)")]
    Unreachable { url: String, detail: String },
    #[error("the edge refused {what} ({status}): {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("the live snapshot is unreadable: {0}")]
    CorruptLive(String),
    /// The similar-items index could not be built (a product's vector is unusable).
    #[error("cannot build the similar-items index: {0}")]
    Index(String),
}

fn list(problems: &[CatalogProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How long a version must have been live before the versions older than it are deleted: by
/// then no request can still be reading them (pointer cache 5 s, a request well under a minute).
pub const GC_GRACE_MS: u64 = 10 * 60 * 1000;

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub version: u64,
    pub products: usize,
    /// Changes against the version it replaced (`None` for the first publish).
    pub diff: Option<SnapshotDiff>,
    pub stock: SeedReport,
    pub gc: GcReport,
}

/// Old snapshot versions deleted, and whether collection waited for the grace period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deleted_versions: Vec<u64>,
    pub deleted_keys: usize,
    /// Set when old versions were kept because the version after them is younger than the grace.
    pub deferred: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads and validates a catalog file: the project's JSON, or a Shopify export (`.csv`, priced
/// in USD; see [`load_catalog_in`]).
pub fn load_catalog(path: &Path) -> Result<Catalog, PublishError> {
    load_catalog_in(path, "USD")
}

/// [`load_catalog`], with the currency of a Shopify export's prices (its CSV names none).
pub fn load_catalog_in(path: &Path, csv_currency: &str) -> Result<Catalog, PublishError> {
    let text = std::fs::read_to_string(path).map_err(|source| PublishError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        crate::shopify::import(&text, csv_currency)
            .map(|i| i.catalog)
            .map_err(PublishError::Invalid)
    } else {
        Catalog::from_json(&text).map_err(PublishError::Invalid)
    }
}

/// An edge's admin API: raw catalog KV and stock seeding.
pub struct EdgeAdmin {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl EdgeAdmin {
    pub fn new(base_url: &str, token: &str) -> Result<Self, PublishError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| PublishError::Unreachable {
                url: base_url.clone(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            base_url,
            token: token.to_owned(),
            http,
        })
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), PublishError> {
        send_authorized(&self.base_url, &self.token, what, request).await
    }

    /// Gives stock to SKUs that have none; SKUs with live stock keep it.
    pub async fn seed_stock(&self, catalog: &Catalog) -> Result<SeedReport, PublishError> {
        let mut report = SeedReport::default();
        let levels: Vec<(String, u32)> = catalog
            .levels
            .iter()
            .map(|(sku, n)| (sku.to_string(), *n))
            .collect();
        for chunk in levels.chunks(STOCK_BATCH_SKUS) {
            let levels: serde_json::Map<String, serde_json::Value> =
                chunk.iter().map(|(s, l)| (s.clone(), json!(l))).collect();
            let body = json!({ "levels": levels, "mode": "seed" }).to_string();
            let url = format!("{}/_admin/stock", self.base_url);
            let (status, reply) = self
                .send("seeding stock", self.http.post(url).body(body))
                .await?;
            let reply: SeedReport =
                serde_json::from_slice(&reply).map_err(|e| PublishError::Refused {
                    what: "seeding stock".into(),
                    status,
                    body: format!("unexpected reply: {e}"),
                })?;
            report.written += reply.written;
            report.kept += reply.kept;
        }
        Ok(report)
    }
}

impl CatalogKv for EdgeAdmin {
    /// One raw KV value, or `None` when the key is absent.
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
        let url = format!("{}/_admin/kv/{key}", self.base_url);
        match self
            .send(&format!("reading {key}"), self.http.get(url))
            .await?
        {
            (404, _) => Ok(None),
            (_, body) => Ok(Some(body)),
        }
    }

    /// Writes entries in batches bounded by count and bytes, [`KV_BATCHES_IN_FLIGHT`] at a time.
    /// Batches may land in any order: callers write the pointer in a call of its own, after.
    async fn kv_put(
        &self,
        entries: Vec<KvEntry>,
        progress: impl Fn(usize, usize),
    ) -> Result<(), PublishError> {
        let total = entries.len();
        let batches = batches(entries, KV_BATCH_ENTRIES, KV_BATCH_BYTES, |e| {
            e.key.len() + e.value.len()
        });
        let url = format!("{}/_admin/kv", self.base_url);
        send_batches(batches, KV_BATCHES_IN_FLIGHT, total, progress, |batch| {
            let request = self
                .http
                .post(&url)
                .header("content-type", "application/cbor")
                .body(to_cbor(&batch));
            async move {
                self.send("writing catalog keys", request)
                    .await
                    .map(|_| batch.len())
            }
        })
        .await
    }

    /// Deletes keys in batches, in order (a version's manifest goes last, so an interrupted
    /// collection can be resumed).
    async fn kv_delete(&self, keys: Vec<String>) -> Result<usize, PublishError> {
        let url = format!("{}/_admin/kv/delete", self.base_url);
        for batch in keys.chunks(KV_BATCH_ENTRIES) {
            let request = self
                .http
                .post(&url)
                .header("content-type", "application/cbor")
                .body(to_cbor(&batch));
            self.send("deleting old catalog keys", request).await?;
        }
        Ok(keys.len())
    }
}

/// Splits `items` into batches of at most `max_items` items and (but for a single larger item)
/// `max_bytes` bytes by `size`.
pub(crate) fn batches<T>(
    items: Vec<T>,
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let item_bytes = size(&item);
        match batches.last_mut() {
            Some(last) if last.len() < max_items && bytes + item_bytes <= max_bytes => {
                last.push(item)
            }
            _ => {
                batches.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += item_bytes;
    }
    batches
}

/// Sends `request` with the bearer `token`: the status and body, a 404 included (callers read it
/// as "absent"); any other 4xx/5xx is `Refused` with what was being done, and no answer from
/// `url` is `Unreachable`. Both publish targets talk through this.
pub(crate) async fn send_authorized(
    url: &str,
    token: &str,
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), PublishError> {
    let unreachable = |e: reqwest::Error| PublishError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(unreachable)?.to_vec();
    if status >= 400 && status != 404 {
        let body = String::from_utf8_lossy(&body).into_owned();
        return Err(PublishError::Refused {
            what: what.to_owned(),
            status,
            body,
        });
    }
    Ok((status, body))
}

/// Sends batches `in_flight` at a time, reporting (items done, `total`) as each lands.
pub(crate) async fn send_batches<T, F, Fut>(
    batches: Vec<Vec<T>>,
    in_flight: usize,
    total: usize,
    progress: impl Fn(usize, usize),
    send: F,
) -> Result<(), PublishError>
where
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<usize, PublishError>>,
{
    let mut sends =
        futures::stream::iter(batches.into_iter().map(send)).buffer_unordered(in_flight);
    let mut done = 0;
    while let Some(sent) = sends.next().await {
        done += sent?;
        progress(done, total);
    }
    Ok(())
}

/// The catalog's key-value store as a publisher sees it: the edge's admin API (local dev, any
/// worker with an admin token) or the Cloudflare API (a real account).
#[allow(async_fn_in_trait)]
pub trait CatalogKv {
    /// One raw value, or `None` when the key is absent.
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError>;
    /// Writes entries in batches; batches may land in any order (write the pointer in a call of its own).
    async fn kv_put(
        &self,
        entries: Vec<KvEntry>,
        progress: impl Fn(usize, usize),
    ) -> Result<(), PublishError>;
    /// Deletes keys in order, in batches.
    async fn kv_delete(&self, keys: Vec<String>) -> Result<usize, PublishError>;

    /// Deletes every snapshot version below `below`, newest first, stopping at the first one
    /// already gone (older ones were collected before).
    async fn collect_versions_below(&self, below: u64) -> Result<GcReport, PublishError> {
        let mut report = GcReport::default();
        for version in (1..below).rev() {
            let Some(manifest) = self.kv_get(&manifest_key(version)).await? else {
                break;
            };
            let manifest: Manifest = from_cbor(&manifest)
                .map_err(|e| PublishError::CorruptLive(format!("manifest of v{version}: {e}")))?;
            let categories: Vec<CategoryInfo> = match self.kv_get(&categories_key(version)).await? {
                Some(bytes) => from_cbor(&bytes).map_err(|e| {
                    PublishError::CorruptLive(format!("categories of v{version}: {e}"))
                })?,
                None => Vec::new(),
            };
            // The similar-items index first: its manifest names its chunks.
            let index_manifest = vectors::manifest_key(&edge_core::similar::index_prefix(version));
            if let Some(bytes) = self.kv_get(&index_manifest).await? {
                // A damaged manifest still lets the known keys go; chunks it named may linger.
                let chunks = vectors::Manifest::from_bytes(&bytes)
                    .map(|m| m.chunk_count())
                    .unwrap_or(0);
                report.deleted_keys += self
                    .kv_delete(edge_core::similar::version_keys(version, chunks))
                    .await?;
            }
            report.deleted_keys += self
                .kv_delete(version_keys(version, &manifest, &categories))
                .await?;
            report.deleted_versions.push(version);
        }
        Ok(report)
    }

    /// Deletes versions older than the live one once it has been live for `grace_ms`.
    async fn collect_garbage(&self, grace_ms: u64) -> Result<GcReport, PublishError> {
        let Some((live, _)) = self.live().await? else {
            return Ok(GcReport::default());
        };
        if now_ms().saturating_sub(live.published_at_ms) < grace_ms {
            return Ok(GcReport {
                deferred: true,
                ..GcReport::default()
            });
        }
        self.collect_versions_below(live.version).await
    }

    /// The live pointer and manifest, or `None` before the first publish.
    async fn live(&self) -> Result<Option<(SnapshotPointer, Manifest)>, PublishError> {
        let Some(bytes) = self.kv_get(POINTER_KEY).await? else {
            return Ok(None);
        };
        let pointer: SnapshotPointer = from_cbor(&bytes)
            .map_err(|e| PublishError::CorruptLive(format!("{POINTER_KEY}: {e}")))?;
        let key = manifest_key(pointer.version);
        let bytes = self
            .kv_get(&key)
            .await?
            .ok_or_else(|| PublishError::CorruptLive(format!("{key} is missing")))?;
        let manifest =
            from_cbor(&bytes).map_err(|e| PublishError::CorruptLive(format!("{key}: {e}")))?;
        Ok(Some((pointer, manifest)))
    }
}

/// What publishing `catalog` would change on the edge (everything is "added" on a first publish).
pub async fn diff(edge: &impl CatalogKv, catalog: &Catalog) -> Result<SnapshotDiff, PublishError> {
    let live = edge.live().await?.map(|(_, m)| m).unwrap_or_default();
    Ok(SnapshotDiff::between(&live, &manifest(&catalog.products)))
}

/// Publishes `catalog` as the next snapshot version and seeds stock for new SKUs, then deletes
/// versions before the one it replaced once that one has been live for [`GC_GRACE_MS`].
pub async fn publish(
    edge: &EdgeAdmin,
    catalog: &Catalog,
    progress: impl Fn(usize, usize),
) -> Result<PublishReport, PublishError> {
    publish_with_grace(edge, edge, catalog, progress, GC_GRACE_MS).await
}

/// Products in the trending list a publish takes from the origin.
pub const TRENDING_PUBLISHED: usize = 50;

/// `GET {origin}{path}` with the origin's token, as JSON; `what` names it in errors.
async fn fetch_analytics(
    origin: &str,
    path: &str,
    token: &str,
    what: &str,
) -> Result<serde_json::Value, PublishError> {
    let url = format!("{}{path}", origin.trim_end_matches('/'));
    let request = reqwest::Client::new().get(&url);
    let (status, body) = send_authorized(&url, token, what, request).await?;
    if status == 404 {
        let body = String::from_utf8_lossy(&body).into_owned();
        return Err(PublishError::Refused {
            what: what.into(),
            status,
            body,
        });
    }
    serde_json::from_slice(&body).map_err(|e| PublishError::CorruptLive(format!("{what}: {e}")))
}

/// The origin's trending products (`GET {origin}/internal/trending`), best first.
pub async fn fetch_trending(
    origin: &str,
    token: &str,
) -> Result<Vec<edge_core::Sku>, PublishError> {
    let path = format!("/internal/trending?limit={TRENDING_PUBLISHED}");
    let value = fetch_analytics(origin, &path, token, "the trending list").await?;
    Ok(value["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| edge_core::Sku::parse(p["sku"].as_str()?).ok())
        .collect())
}

/// The origin's "bought together" lists (`GET {origin}/internal/together`), for `catalog`.
pub async fn fetch_together(
    origin: &str,
    token: &str,
    catalog: &Catalog,
) -> Result<edge_core::store::Together, PublishError> {
    let value = fetch_analytics(
        origin,
        "/internal/together",
        token,
        "the bought-together lists",
    )
    .await?;
    let raw = value["products"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(sku, partners)| {
            let partners = partners
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["sku"].as_str().map(str::to_owned));
            (sku.clone(), partners.collect())
        });
    Ok(together_for_catalog(raw, catalog))
}

/// Lists in stock-unit SKUs (orders name variants) as lists of `catalog`'s products: variants
/// become their product, a product is never its own partner nor listed twice (the first place
/// counts), SKUs the catalog lacks are dropped, lists are cut at
/// [`crate::together::TOGETHER_PER_PRODUCT`].
pub fn together_for_catalog(
    raw: impl IntoIterator<Item = (String, Vec<String>)>,
    catalog: &Catalog,
) -> edge_core::store::Together {
    let product_of: std::collections::HashMap<&str, &edge_core::Sku> = catalog
        .products
        .iter()
        .flat_map(|p| {
            p.stock_units()
                .into_iter()
                .map(move |unit| (unit.as_str(), &p.sku))
        })
        .collect();
    let mut together = edge_core::store::Together::new();
    for (sku, partners) in raw {
        let Some(product) = product_of.get(sku.as_str()) else {
            continue;
        };
        let list = together.entry((*product).clone()).or_default();
        for partner in partners.iter().filter_map(|s| product_of.get(s.as_str())) {
            if *partner != *product && !list.contains(partner) {
                list.push((*partner).clone());
            }
        }
    }
    together.retain(|_, list| {
        list.truncate(crate::together::TOGETHER_PER_PRODUCT);
        !list.is_empty()
    });
    together
}

/// The similar-items index of a catalog as snapshot entries: built exactly for small catalogs,
/// with hnsw_rs beyond `vectors::graph::SMALL_ITEMS_MAX` products.
fn similar_entries(catalog: &Catalog, version: u64) -> Result<Vec<KvEntry>, PublishError> {
    let small = catalog.products.len() <= vectors::graph::SMALL_ITEMS_MAX;
    let entries = if small {
        edge_core::similar::small_index_entries(&catalog.products, &catalog.vectors, version)
    } else {
        edge_core::similar::index_entries(
            &catalog.products,
            &catalog.vectors,
            version,
            vectors::build::build,
        )
    };
    let entries = entries.map_err(|e| PublishError::Index(e.to_string()))?;
    Ok(entries
        .into_iter()
        .map(|(key, value)| KvEntry { key, value })
        .collect())
}

/// [`publish`] to any catalog KV (`kv`), seeding stock through `edge`, with an explicit
/// garbage-collection grace period.
pub async fn publish_with_grace(
    kv: &impl CatalogKv,
    edge: &EdgeAdmin,
    catalog: &Catalog,
    progress: impl Fn(usize, usize),
    gc_grace_ms: u64,
) -> Result<PublishReport, PublishError> {
    let live = kv.live().await?;
    let version = live.as_ref().map_or(0, |(p, _)| p.version) + 1;
    let mut entries: Vec<KvEntry> = snapshot_entries(&catalog.products, &catalog.trending, version)
        .into_iter()
        .map(|(key, value)| KvEntry { key, value })
        .collect();
    entries.extend(similar_entries(catalog, version)?);
    // The promotions and shipping rate the edge prices carts with, pinned to this version.
    entries.push(KvEntry {
        key: edge_core::snapshot::promotions_key(version),
        value: to_cbor(&catalog.promotions),
    });
    entries.extend(
        edge_core::snapshot::together_entries(&catalog.together, version)
            .into_iter()
            .map(|(key, value)| KvEntry { key, value }),
    );
    kv.kv_put(entries, progress).await?;
    let pointer = SnapshotPointer {
        version,
        published_at_ms: now_ms(),
        products: catalog.products.len() as u32,
    };
    // The flip: one key, written only after every key of the version is in place.
    kv.kv_put(
        vec![KvEntry {
            key: POINTER_KEY.into(),
            value: to_cbor(&pointer),
        }],
        |_, _| {},
    )
    .await?;
    let stock = edge.seed_stock(catalog).await?;
    // Readers may still be on the replaced version; the ones before it are safe to delete once
    // the replaced version has itself been live for the grace period.
    let gc = match &live {
        Some((replaced, _)) if now_ms().saturating_sub(replaced.published_at_ms) >= gc_grace_ms => {
            kv.collect_versions_below(replaced.version).await?
        }
        Some((replaced, _)) if replaced.version > 1 => GcReport {
            deferred: true,
            ..GcReport::default()
        },
        _ => GcReport::default(),
    };
    let diff = live.map(|(_, old)| SnapshotDiff::between(&old, &manifest(&catalog.products)));
    Ok(PublishReport {
        version,
        products: catalog.products.len(),
        diff,
        stock,
        gc,
    })
}

/// Loads, validates and publishes the catalog file at `path` to the edge at `edge_url`.
pub async fn publish_catalog(
    edge_url: &str,
    token: &str,
    path: &Path,
) -> Result<PublishReport, PublishError> {
    let catalog = load_catalog(path)?;
    publish(&EdgeAdmin::new(edge_url, token)?, &catalog, |_, _| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid_and_big_enough() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-catalog.json");
        let catalog = load_catalog(&path).unwrap();
        assert!(catalog.products.len() >= 40);
        let categories: std::collections::BTreeSet<_> =
            catalog.products.iter().map(|p| &p.category).collect();
        assert!(categories.len() >= 5, "{categories:?}");
        assert!(
            catalog.levels.iter().any(|&(_, s)| s == 0),
            "the demo shows an out-of-stock product"
        );
        assert!(catalog.levels.iter().all(|&(_, s)| s <= 1000));
        assert!(
            catalog.products.iter().any(|p| p.variants.len() > 1),
            "the demo shows a product with variants"
        );
        let promotions = &catalog.promotions.promotions;
        assert!(
            promotions.iter().any(|p| p.code.is_none()) && promotions.iter().any(|p| p.code.is_some()),
            "the demo shows an automatic sale and discount codes (the e2e promotion checks use them)"
        );
        assert!(
            catalog.promotions.shipping.flat_minor > 0,
            "the demo charges shipping, so free shipping shows"
        );
    }

    #[test]
    fn batches_respect_item_and_byte_bounds() {
        let sizes = |b: &Vec<Vec<usize>>| b.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(
            sizes(&batches((0..7).collect(), 3, usize::MAX, |_| 1)),
            [3, 3, 1]
        );
        assert_eq!(
            sizes(&batches(vec![4, 4, 4, 9, 1], 10, 8, |&n| n)),
            [2, 1, 1, 1],
            "a 9-byte item travels alone"
        );
        assert!(batches(Vec::<u8>::new(), 3, 3, |_| 1).is_empty());
    }

    #[test]
    fn invalid_catalog_lists_every_problem() {
        let dir = std::env::temp_dir().join(format!("origin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.json");
        std::fs::write(
            &path,
            r#"{"currency":"USD","products":[
                {"sku":"A","title":"","price_minor":-1,"category":"x","image":"/a.svg","stock":1}]}"#,
        )
        .unwrap();
        let err = load_catalog(&path).unwrap_err().to_string();
        assert!(err.contains("products[0].title: title is empty"), "{err}");
        assert!(err.contains("products[0].price_minor"), "{err}");
        assert!(err.starts_with("2 problem(s)"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_edge_is_a_clear_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-catalog.json");
        // Port 9 (discard) on loopback: nothing listens there in a test environment.
        let err = publish_catalog("http://127.0.0.1:9", "t", &path)
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("wrangler dev"));
    }
}
