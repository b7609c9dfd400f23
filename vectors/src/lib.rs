//! The compact similar-items index of the edge storefront.
//!
//! Products are published as catalog snapshots to KV; the worker (wasm32, 128 MB isolate, KV
//! values <= 25 MiB) answers "similar items" and "recommended for you" by searching an index
//! published beside the catalog. hnsw_rs does not build for wasm32, so the graph is built
//! natively at publish time, exported in a compact form and searched in the worker by the small
//! searcher here.
//!
//! # Data flow
//!
//! ```text
//! publish (native, feature `build`)                      worker (wasm32, default features)
//! Product fields ─ Featurizer::featurize ─┐
//! or merchant vectors ────────────────────┴ VectorSet::push (validates, normalises)
//!   ─ build::build (hnsw_rs, parallel insert) ─ BuiltIndex { index, order }
//!   ─ CompactIndex::to_chunks ─ KV: manifest_key(p), chunk_key(p, i); SKUs in `order`
//!                                                        KV reads ─ CompactIndex::from_chunks
//!                                                        ─ similar_to(item, k, ef, filter)
//!                                                        ─ search(query, k, ef, filter)
//! ```
//!
//! # In the worker
//!
//! ```no_run
//! # fn kv_get(_key: &str) -> Option<Vec<u8>> { None }
//! # fn sku_position(_sku: &str) -> Option<u32> { None }
//! use vectors::{chunk_key, manifest_key, CompactIndex, Manifest, EF_DEFAULT};
//! let prefix = "catalog/2026-11-24T06:00Z";
//! let manifest = kv_get(&manifest_key(prefix)).unwrap_or_default();
//! let count = Manifest::from_bytes(&manifest).map(|m| m.chunk_count()).unwrap_or(0);
//! let chunks: Vec<Vec<u8>> = (0..count).filter_map(|i| kv_get(&chunk_key(prefix, i))).collect();
//! // Any error (missing chunk, bad bytes, other version): show no similar items.
//! if let Ok(index) = CompactIndex::from_chunks(&manifest, &chunks) {
//!     let item = sku_position("SHIRT-1").unwrap_or(0);
//!     let in_stock = |_position: u32| true;
//!     let similar = index.similar_to(item, 8, EF_DEFAULT, in_stock).unwrap_or_default();
//!     // similar[i].item is a position in the SKU list published beside the index.
//! #   let _ = similar;
//! }
//! ```
//!
//! # Layout
//!
//! - [`featurize`]: product text and attributes -> a 64-d unit vector (definition there);
//!   [`VectorSet`] validates merchant vectors.
//! - [`index`]: [`CompactIndex`], its byte layout, chunks, manifest and the defensive decoder.
//! - [`search`]: the beam search with int8 scoring and exact re-rank.
//! - [`graph`]: the builder without hnsw_rs (exact, small catalogs and tests), neighbour
//!   selection, renumbering for compact links.
//! - `build` (feature `build`): the hnsw_rs build and its export.
//! - [`synth`]: a deterministic product-like catalog for tests and the benchmark.
//!
//! # Search in one paragraph
//!
//! Best-first beam search (HNSW's layer-0 `search_layer`) from up to 64 stored entry points
//! (the items of hnsw_rs's highest layers, standing in for the upper layers), scoring int8 dot
//! products, then an exact f32 re-rank of the `ef` best; `filter` decides what is returned, not
//! where the search walks. Details in [`search`]; the byte layout in [`index`]; the featurizer's
//! definition in [`featurize`].
//!
//! # Defaults and why
//!
//! - 64 dimensions ([`DIM_DEFAULT`]): int8 vector = 64 B/item, about twice the links.
//!   `Featurizer::new(128)` costs +64 B/item; ANN recall is the same in either space. What the
//!   hashing costs in quality, `vector-bench` measures as the overlap of the exact top-10 with a
//!   1024-d (nearly collision-free) featurization: 0.57 (64-d) / 0.70 (128-d) on the synthetic
//!   catalog, only 0.27 (64-d) on Debian's package texts. That end-to-end figure, not the ANN
//!   recall, is the weak point: real catalogs with rich text should try 128-d or merchant
//!   vectors and judge the results by eye.
//! - degree cap 16 ([`GraphConfig::default`]): after renumbering, links cost ~1.8 B per
//!   neighbour, close to the entropy of a random neighbour set, so the cap is the size knob.
//! - [`EF_DEFAULT`] = 128: the smallest tried beam that keeps recall@10 >= 0.95 on both
//!   datasets at the default cap (Debian text is the harder one), at ~0.12-0.2 ms per query in
//!   wasm. Synthetic-only catalogs could use 32-64.
//!
//! # Measured (`vector-bench`, 2 shared and loaded cores: QPS +-30-50 %, recall and bytes exact)
//!
//! 64-d featurizer, 1000 held-out queries, recall@10 against exact f32 search in the same
//! space. hnsw_rs M=16, ef_construction=100, parallel insert on 2 cores: 10k items 2.3 s wall
//! (2 CPU-s), 62k Debian 16 s (26 CPU-s), 100k 59-88 s wall (67-80 CPU-s). "f32 + links" =
//! 4*64 B vector + 4 B per hnsw_rs layer-0 link (average degree 22.2) + 4 B offset = 349
//! B/item; hnsw_rs's resident memory grows by ~2600 B/item. (c) and (d) are the same index
//! (read back through its chunks), searched natively and by the raw-wasm searcher under node 20
//! (simd128, opt-level 3; the workspace's size-tuned release profile is slower natively, so the
//! bench was run with `CARGO_PROFILE_RELEASE_OPT_LEVEL=3`). QPS columns: ef 32 / 64 / 128.
//!
//! | synthetic, 100k | recall@10 (ef 32/64/128) | QPS | ms/query at ef 128 | B/item | vs f32+links |
//! |---|---|---|---|---|---|
//! | exact f32 scan | 1.000 | 214 | 4.7 | 256 | 0.73 |
//! | (a) hnsw_rs f32 | 0.994 / 0.999 / 1.000 | 2772 / 1824 / 1117 | 0.90 | 2649 (RSS) | 7.6 |
//! | (b) exact int8 scan | 0.985 | 331 | 3.0 | 68 | 0.19 |
//! | (c) compact native, degree <= 16 | 0.979 / 0.989 / 0.991 | 15.8k / 12.9k / 7.4k | 0.14 | 93 | 0.27 |
//! | (d) compact wasm, degree <= 16 | 0.979 / 0.989 / 0.991 | 21.6k / 13.0k / 7.8k | 0.13 | 93 | 0.27 |
//! | (d) compact wasm, degree <= 24 | 0.984 / 0.990 / 0.991 | 16.8k / 9.7k / 4.9k | 0.21 | 100 | 0.29 |
//! | (d) compact wasm, degree <= 12 | 0.970 / 0.986 / 0.990 | 11.5k / 12.1k / 5.4k | 0.19 | 88 | 0.25 |
//!
//! | Debian packages, 62k | recall@10 (ef 32/64/128) | QPS | ms/query at ef 128 | B/item | vs f32+links |
//! |---|---|---|---|---|---|
//! | exact f32 scan | 1.000 | 278 | 3.6 | 256 | 0.73 |
//! | (a) hnsw_rs f32 | 0.899 / 0.951 / 0.981 | 3000 / 1773 / 1333 | 0.75 | 2611 (RSS) | 7.5 |
//! | (b) exact int8 scan | 0.980 | 540 | 1.9 | 68 | 0.20 |
//! | (c) compact native, degree <= 16 | 0.844 / 0.918 / 0.958 | 23.5k / 13.8k / 7.8k | 0.13 | 92 | 0.26 |
//! | (d) compact wasm, degree <= 16 | 0.844 / 0.918 / 0.958 | 20.5k / 13.4k / 8.3k | 0.12 | 92 | 0.26 |
//! | (d) compact wasm, degree <= 24 | 0.885 / 0.941 / 0.970 | 18.1k / 11.2k / 5.9k | 0.17 | 100 | 0.29 |
//! | (d) compact wasm, degree <= 12 | 0.785 / 0.878 / 0.939 | 23.1k / 16.2k / 8.3k | 0.12 | 87 | 0.25 |
//!
//! Synthetic 10k, degree <= 16: recall 0.979 / 0.990 / 0.992, wasm 24k / 17k / 9.7k QPS, 89
//! B/item (0.26); hnsw_rs f32 0.994 / 0.999 / 1.000 at 5.3k / 4.5k / 2.5k QPS.
//!
//! Against the goals: recall@10 >= 0.95 at the defaults on both datasets (0.991, 0.958);
//! wasm at 100k 0.13 ms per query at ef 128 (goal <= 0.5 ms); size 0.26-0.27 of f32 + links
//! at the default cap: goal (0.25) missed by ~5 B/item; degree 12 meets it but drops Debian
//! recall to 0.939. Relative to the research's degree-29 graph (376 B/item) the default is 0.25.
//! Loading in wasm: 9.3 MB of chunks at 100k load in ~80-90 ms (copy in, checksums, CBOR,
//! validation); the module's memory peaks at ~35 MiB at 100k (chunks, their concatenation and
//! the decoded index are alive at once); the wasm searcher is 144 KB.
//!
//! # What ids mean
//!
//! Items are `u32` positions `0..len`. The builder renumbers items for compact links and returns
//! `order` (`order[position] = input item`); publish the SKU list in that order beside the
//! index, and map hits back through it.

pub mod featurize;
pub mod graph;
pub mod index;
pub mod search;
pub mod synth;

#[cfg(feature = "build")]
pub mod build;

pub use featurize::{Featurizer, ProductText, VectorSet, DIM_DEFAULT, FEATURIZER_VERSION};
pub use graph::{build_small, BuiltIndex, GraphConfig};
pub use index::{
    chunk_key, manifest_key, CompactIndex, Manifest, CHUNK_BYTES_DEFAULT, ENTRY_POINTS_MAX,
    FORMAT_VERSION,
};
pub use search::{exact_top_k, Hit, SearchScratch, EF_DEFAULT};

/// Everything that can go wrong, with what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// A caller's input is out of range (dimension, k, item id, build parameters): fix the call.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// An item's vector cannot be indexed; the item is named so the merchant can fix it.
    #[error("item {item}: vector {reason}")]
    BadItemVector { item: String, reason: String },
    /// The published bytes are not a valid index (truncated, mixed publishes, damaged): show no
    /// similar items and republish; retrying the same bytes will not help.
    #[error("corrupt index: {0}")]
    Corrupt(String),
    /// The index was written by another format version: deploy a worker that reads it, or
    /// republish with this version.
    #[error("index format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
}
