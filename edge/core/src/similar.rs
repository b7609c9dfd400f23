//! Similar items and recommendations from the compact vector index (crate `vectors`) that is
//! published with each catalog snapshot.
//!
//! At publish: each product is featurized (title, description, category, vendor, tags, price
//! band; see `vectors::featurize`), the graph is built (hnsw_rs natively by the publisher, or the
//! exact small builder), and the index goes to KV as `v{N}/similar/vectors/manifest` +
//! `v{N}/similar/vectors/chunk/{i}`, with `v{N}/similar/skus` (the SKUs in index order).
//!
//! At the edge: [`SimilarIndex`] is decoded once per isolate and version (cached like every
//! snapshot value) and searched in the worker: a product's neighbours, or a recency-weighted
//! mix of the shopper's recent products. Anything wrong with the published bytes makes
//! [`SimilarIndex::load`] fail; pages then show no similar items, never an error.

use crate::product::{Product, ProductSummary, Sku};
use std::collections::HashMap;
use vectors::{
    BuiltIndex, CompactIndex, Featurizer, GraphConfig, ProductText, VectorError, VectorSet,
};

/// Most similar items one call returns.
pub const SIMILAR_K_MAX: usize = 24;
/// Most candidates a recommendation search returns (before re-ranking).
pub const CANDIDATES_MAX: usize = 96;
/// Beam width of a search: the `vectors` default (recall@10 0.99 on synthetic 100k items and
/// 0.96 on Debian's 62k package texts, 0.13 ms per query in wasm; see `vectors`' figures).
pub const SEARCH_EF: usize = vectors::EF_DEFAULT;
/// Largest index chunk written to KV (well below the 25 MiB value limit; one read each).
pub const CHUNK_BYTES: usize = 4 << 20;

pub fn index_prefix(version: u64) -> String {
    format!("v{version}/similar")
}

pub fn skus_key(version: u64) -> String {
    format!("v{version}/similar/skus")
}

/// The featurizer's text for a product.
fn text(product: &Product) -> ProductText<'_> {
    ProductText {
        title: &product.title,
        description: &product.description,
        category: &product.category,
        vendor: &product.vendor,
        tags: &product.tags,
        price_minor: i64::try_from(product.price.minor).unwrap_or(i64::MAX),
    }
}

/// Builds the index of `products` with `build` (hnsw_rs at publish, or `vectors::build_small`)
/// and returns its KV entries for snapshot `version`. `merchant` holds the merchant's own
/// vectors, one per product in order; empty: the products' text is featurized. Empty for an
/// empty catalog.
pub fn index_entries(
    products: &[Product],
    merchant: &[Vec<f32>],
    version: u64,
    build: impl FnOnce(&VectorSet, &GraphConfig) -> Result<BuiltIndex, VectorError>,
) -> Result<Vec<(String, Vec<u8>)>, VectorError> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let (set, featurizer_version) = if merchant.is_empty() {
        let featurizer = Featurizer::new(vectors::DIM_DEFAULT)?;
        let mut set = VectorSet::new(featurizer.dim())?;
        for product in products {
            set.push(product.sku.as_str(), &featurizer.featurize(&text(product)))?;
        }
        (set, vectors::FEATURIZER_VERSION)
    } else {
        if merchant.len() != products.len() {
            return Err(VectorError::Invalid(format!(
                "{} vectors for {} products",
                merchant.len(),
                products.len()
            )));
        }
        let mut set = VectorSet::new(merchant[0].len())?;
        for (product, vector) in products.iter().zip(merchant) {
            set.push(product.sku.as_str(), vector)?;
        }
        // 0: the merchant's vectors, not the featurizer's.
        (set, 0)
    };
    let config = GraphConfig {
        featurizer_version,
        ..GraphConfig::default()
    };
    let built = build(&set, &config)?;
    let skus: Vec<&Sku> = built
        .order
        .iter()
        .map(|&i| &products[i as usize].sku)
        .collect();
    let prefix = index_prefix(version);
    let (manifest, chunks) = built.index.to_chunks(CHUNK_BYTES)?;
    let mut entries = vec![(skus_key(version), crate::codec::to_cbor(&skus))];
    for (i, chunk) in chunks.into_iter().enumerate() {
        entries.push((vectors::chunk_key(&prefix, i), chunk));
    }
    // The manifest last: a reader that finds it finds the chunks it names.
    entries.push((vectors::manifest_key(&prefix), manifest.to_bytes()));
    Ok(entries)
}

/// Every key of version `version`'s index whose manifest names `chunk_count` chunks (garbage
/// collection), the manifest last.
pub fn version_keys(version: u64, chunk_count: usize) -> Vec<String> {
    let prefix = index_prefix(version);
    let mut keys = vec![skus_key(version)];
    keys.extend((0..chunk_count).map(|i| vectors::chunk_key(&prefix, i)));
    keys.push(vectors::manifest_key(&prefix));
    keys
}

/// The exact builder, for catalogs up to `vectors::graph::SMALL_ITEMS_MAX` (tests, the native
/// host, small shops).
pub fn small_index_entries(
    products: &[Product],
    merchant: &[Vec<f32>],
    version: u64,
) -> Result<Vec<(String, Vec<u8>)>, VectorError> {
    index_entries(products, merchant, version, vectors::build_small)
}

/// A snapshot's index, ready to search, with each position's place in the product index.
pub struct SimilarIndex {
    index: CompactIndex,
    skus: Vec<Sku>,
    positions: HashMap<Sku, u32>,
    /// Index position -> position in the snapshot's product list (`None`: not listed).
    listed: Vec<Option<u32>>,
}

impl SimilarIndex {
    /// Decodes a published index. `products` is the snapshot's product list, so results map
    /// to summaries without a lookup per hit.
    pub fn load<C: AsRef<[u8]>>(
        manifest: &[u8],
        chunks: &[C],
        skus: Vec<Sku>,
        products: &[ProductSummary],
    ) -> Result<Self, VectorError> {
        let index = CompactIndex::from_chunks(manifest, chunks)?;
        if skus.len() != index.len() {
            return Err(VectorError::Corrupt(format!(
                "{} SKUs for an index of {} items",
                skus.len(),
                index.len()
            )));
        }
        let in_list: HashMap<&Sku, u32> = products
            .iter()
            .enumerate()
            .map(|(i, p)| (&p.sku, i as u32))
            .collect();
        let listed = skus.iter().map(|sku| in_list.get(sku).copied()).collect();
        let positions = skus
            .iter()
            .enumerate()
            .map(|(i, sku)| (sku.clone(), i as u32))
            .collect();
        Ok(Self {
            index,
            skus,
            positions,
            listed,
        })
    }

    pub fn len(&self) -> usize {
        self.skus.len()
    }

    pub fn is_empty(&self) -> bool {
        self.skus.is_empty()
    }

    pub fn contains(&self, sku: &Sku) -> bool {
        self.positions.contains_key(sku)
    }

    /// Up to `k` products most like `sku` (itself excluded), as positions in the snapshot's
    /// product list, best first; `keep` filters candidates (e.g. out of stock).
    pub fn similar(
        &self,
        sku: &Sku,
        k: usize,
        keep: impl Fn(&Sku) -> bool,
    ) -> Result<Vec<u32>, VectorError> {
        let Some(&me) = self.positions.get(sku) else {
            return Ok(Vec::new());
        };
        let k = k.min(SIMILAR_K_MAX);
        let hits = self
            .index
            .similar_to(me, k, SEARCH_EF.max(k), |i| i != me && self.keeps(i, &keep))?;
        Ok(hits
            .into_iter()
            .filter_map(|h| self.listed[h.item as usize])
            .collect())
    }

    /// Up to `k` products for a shopper whose recent products weigh `weights` (SKU, weight),
    /// each with its similarity: the weighted mean of their vectors, searched; `keep` filters
    /// (seen, out of stock).
    pub fn recommend_scored(
        &self,
        weights: &[(&Sku, f32)],
        k: usize,
        keep: impl Fn(&Sku) -> bool,
    ) -> Result<Vec<(u32, f32)>, VectorError> {
        let Some(query) = self.taste(weights) else {
            return Ok(Vec::new());
        };
        let k = k.min(CANDIDATES_MAX);
        let hits = self
            .index
            .search(&query, k, SEARCH_EF.max(k), |i| self.keeps(i, &keep))?;
        Ok(hits
            .into_iter()
            .filter_map(|h| Some((self.listed[h.item as usize]?, h.score)))
            .collect())
    }

    /// The shopper's taste: the weighted mean of their recent products' vectors, normalised;
    /// `None` when none of them is in the index.
    fn taste(&self, weights: &[(&Sku, f32)]) -> Option<Vec<f32>> {
        let mut query = vec![0f32; self.index.dim()];
        let mut total = 0f32;
        for (sku, weight) in weights {
            let Some(vector) = self.positions.get(*sku).and_then(|&i| self.index.vector(i)) else {
                continue;
            };
            for (q, v) in query.iter_mut().zip(vector) {
                *q += weight * v;
            }
            total += weight;
        }
        let norm = query.iter().map(|q| q * q).sum::<f32>().sqrt();
        if total <= 0.0 || norm <= f32::EPSILON {
            return None;
        }
        query.iter_mut().for_each(|q| *q /= norm);
        Some(query)
    }

    /// How much each of `skus` matches the shopper's taste (cosine with the [`Self::taste`]
    /// vector, -1..=1); `None` for SKUs not in the index, or all `None` without a taste.
    pub fn taste_scores(&self, weights: &[(&Sku, f32)], skus: &[&Sku]) -> Vec<Option<f32>> {
        let Some(taste) = self.taste(weights) else {
            return vec![None; skus.len()];
        };
        skus.iter()
            .map(|sku| {
                let vector = self
                    .positions
                    .get(*sku)
                    .and_then(|&i| self.index.vector(i))?;
                let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
                (norm > f32::EPSILON)
                    .then(|| taste.iter().zip(&vector).map(|(t, v)| t * v).sum::<f32>() / norm)
            })
            .collect()
    }

    fn keeps(&self, i: u32, keep: &impl Fn(&Sku) -> bool) -> bool {
        let i = i as usize;
        self.listed.get(i).is_some_and(Option::is_some) && keep(&self.skus[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;

    fn product(sku: &str, title: &str, category: &str, minor: u64) -> Product {
        Product {
            sku: Sku::parse(sku).unwrap(),
            title: title.into(),
            description: String::new(),
            price: Money::new(minor, "USD"),
            category: category.into(),
            image: "/i.svg".into(),
            vendor: String::new(),
            tags: vec![],
            options: vec![],
            variants: vec![],
        }
    }

    fn catalog() -> Vec<Product> {
        let mut products = Vec::new();
        for (i, kind) in ["mug", "cup", "teapot", "kettle"].iter().enumerate() {
            products.push(product(
                &format!("K{i}"),
                &format!("Stoneware {kind} for tea"),
                "Kitchen",
                1500 + i as u64,
            ));
        }
        for (i, kind) in ["tee", "shirt", "hoodie", "sweater"].iter().enumerate() {
            products.push(product(
                &format!("A{i}"),
                &format!("Organic cotton {kind}"),
                "Apparel",
                3000 + i as u64,
            ));
        }
        products
    }

    fn load(products: &[Product]) -> SimilarIndex {
        let entries = small_index_entries(products, &[], 1).unwrap();
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let manifest = get(&vectors::manifest_key(&index_prefix(1))).unwrap();
        let chunks: Vec<Vec<u8>> = (0..)
            .map_while(|i| get(&vectors::chunk_key(&index_prefix(1), i)))
            .collect();
        let skus: Vec<Sku> = crate::codec::from_cbor(&get(&skus_key(1)).unwrap()).unwrap();
        let summaries: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
        SimilarIndex::load(&manifest, &chunks, skus, &summaries).unwrap()
    }

    #[test]
    fn similar_items_come_from_the_same_kind_of_product() {
        let products = catalog();
        let index = load(&products);
        let similar = index
            .similar(&Sku::parse("K0").unwrap(), 3, |_| true)
            .unwrap();
        let names: Vec<&str> = similar
            .iter()
            .map(|&i| products[i as usize].sku.as_str())
            .collect();
        assert_eq!(names.len(), 3);
        assert!(
            names.iter().all(|s| s.starts_with('K')),
            "a mug's neighbours are kitchen things: {names:?}"
        );
        assert!(!names.contains(&"K0"), "never itself");
        let filtered = index
            .similar(&Sku::parse("K0").unwrap(), 3, |s| s.as_str() != "K1")
            .unwrap();
        assert!(filtered
            .iter()
            .all(|&i| products[i as usize].sku.as_str() != "K1"));
        assert!(index
            .similar(&Sku::parse("NOPE").unwrap(), 3, |_| true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn recommendations_follow_the_heaviest_recent_interest() {
        let products = catalog();
        let index = load(&products);
        let (a0, a1, k0) = (
            Sku::parse("A0").unwrap(),
            Sku::parse("A1").unwrap(),
            Sku::parse("K0").unwrap(),
        );
        let seen = [&a0, &a1, &k0];
        let picks = index
            .recommend_scored(&[(&a0, 1.0), (&a1, 1.0), (&k0, 0.2)], 3, |s| {
                !seen.contains(&s)
            })
            .unwrap();
        let names: Vec<&str> = picks
            .iter()
            .map(|&(i, _)| products[i as usize].sku.as_str())
            .collect();
        assert_eq!(names.len(), 3);
        assert!(
            names[..2].iter().all(|s| s.starts_with('A')),
            "apparel dominates: {names:?}"
        );
        assert!(
            index.recommend_scored(&[], 3, |_| true).unwrap().is_empty(),
            "no history, no query"
        );
    }

    #[test]
    fn merchant_vectors_decide_what_is_similar() {
        let products = catalog();
        // The merchant says the mug (K0) goes with the hoodie (A2), whatever their text says.
        let mut merchant: Vec<Vec<f32>> = (0..products.len())
            .map(|i| vec![i as f32 + 1.0, 1.0, 0.0])
            .collect();
        merchant[0] = vec![0.0, 0.0, 1.0];
        merchant[6] = vec![0.0, 0.1, 1.0];
        let entries = small_index_entries(&products, &merchant, 1).unwrap();
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let manifest = get(&vectors::manifest_key(&index_prefix(1))).unwrap();
        let chunks: Vec<Vec<u8>> = (0..)
            .map_while(|i| get(&vectors::chunk_key(&index_prefix(1), i)))
            .collect();
        let skus: Vec<Sku> = crate::codec::from_cbor(&get(&skus_key(1)).unwrap()).unwrap();
        let summaries: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
        let index = SimilarIndex::load(&manifest, &chunks, skus, &summaries).unwrap();
        let first = index
            .similar(&Sku::parse("K0").unwrap(), 1, |_| true)
            .unwrap();
        assert_eq!(products[first[0] as usize].sku.as_str(), "A2");
        assert!(
            small_index_entries(&products, &merchant[1..], 1).is_err(),
            "one vector per product"
        );
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        let products = catalog();
        let entries = small_index_entries(&products, &[], 1).unwrap();
        let manifest = &entries.last().unwrap().1;
        let summaries: Vec<ProductSummary> = products.iter().map(ProductSummary::from).collect();
        let skus: Vec<Sku> = products.iter().map(|p| p.sku.clone()).collect();
        assert!(
            SimilarIndex::load(manifest, &[b"garbage".to_vec()], skus.clone(), &summaries).is_err()
        );
        assert!(SimilarIndex::load(b"\xff\x00", &[b"x".to_vec()], skus, &summaries).is_err());
    }
}
