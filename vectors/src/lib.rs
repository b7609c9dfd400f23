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
//! # Layout
//!
//! - [`featurize`]: product text and attributes → a 64-d unit vector (definition there);
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
//! - 64 dimensions ([`DIM_DEFAULT`]): int8 vector = 64 B/item, about the size of the links.
//!   `Featurizer::new(128)` costs +64 B/item and agrees better with a collision-free (1024-d)
//!   featurization (exact top-10 overlap 0.70 vs 0.57 on the synthetic catalog, whose many
//!   near-identical items make that overlap a pessimistic figure); ANN recall is the same.
//! - degree cap 16 ([`GraphConfig::default`]): links are ~1.8 B per neighbour after renumbering,
//!   close to the entropy of a random neighbour set, so the cap is the size knob. 16 keeps
//!   recall@10 at 0.987 (ef 64, 100k); 12 reaches a quarter of f32 + links at recall 0.976.
//! - [`EF_DEFAULT`] = 64: recall@10 >= 0.98 at <= 0.25 ms per query in wasm at 100k.
//!
//! # Measured (`vector-bench`, 2 shared and loaded cores: QPS +-30-50 %, recall and bytes exact)
//!
//! Synthetic product catalog ([`synth`]), 64-d featurizer, 1000 held-out queries, recall@10
//! against exact f32 search in the same space. hnsw_rs M=16, ef_construction=100, parallel
//! insert: 10k items in 3 s wall (3 CPU-s), 100k in 64-88 s wall (77-80 CPU-s). Baseline size
//! "f32 + links" = 4*64 B vector + 4 B per hnsw_rs layer-0 link (average degree 22.2) + 4 B
//! offset = 349 B/item; hnsw_rs's own resident memory grew by ~2650 B/item.
//!
//! | 100k items | ef | recall@10 | QPS | ms/query | bytes/item | vs f32+links |
//! |---|---|---|---|---|---|---|
//! | exact f32 scan | - | 1.000 | 168 | 5.9 | 256 | 0.73 |
//! | (a) hnsw_rs f32 | 16 / 32 / 64 | 0.970 / 0.994 / 0.999 | 2357 / 1491 / 944 | 0.42 / 0.67 / 1.06 | 2648 (RSS) | 7.6 |
//! | (b) exact int8 scan (per-vector scale) | - | 0.985 | 218 | 4.6 | 68 | 0.19 |
//! | (c) compact native, degree <= 16 | 16 / 32 / 64 | 0.931 / 0.976 / 0.987 | 11.3k / 8.1k / 4.7k | 0.09 / 0.12 / 0.21 | 93 | 0.27 |
//! | (d) compact wasm (node 20, simd128), degree <= 16 | 16 / 32 / 64 | 0.931 / 0.976 / 0.987 | 11.4k / 5.8k / 4.9k | 0.09 / 0.17 / 0.20 | 93 | 0.27 |
//! | (c) compact native, degree <= 24 | 16 / 32 / 64 | 0.959 / 0.984 / 0.990 | 4.2k-4.5k (loaded) | 0.22-0.24 | 100 | 0.29 |
//! | (d) compact wasm, degree <= 24 | 16 / 32 / 64 | 0.959 / 0.984 / 0.990 | 18.9k / 6.4k / 4.1k | 0.05 / 0.16 / 0.24 | 100 | 0.29 |
//! | (c) compact native, degree <= 12 | 16 / 32 / 64 | 0.874 / 0.944 / 0.976 | 24k / 17k / 10k | 0.04 / 0.06 / 0.10 | 87 | 0.25 |
//! | (d) compact wasm, degree <= 12 | 16 / 32 / 64 | 0.874 / 0.944 / 0.976 | 19k / 18k / 5.7k | 0.05 / 0.06 / 0.18 | 87 | 0.25 |
//!
//! | 10k items | ef | recall@10 | QPS | bytes/item | vs f32+links |
//! |---|---|---|---|---|---|
//! | (a) hnsw_rs f32 | 16 / 32 / 64 | 0.970 / 0.993 / 0.999 | 6.9k / 4.0k / 2.8k | 2584 (RSS) | 7.4 |
//! | (b) exact int8 scan | - | 0.988 | 3.1k | 68 | 0.19 |
//! | (c) compact native, degree <= 16 | 16 / 32 / 64 | 0.937 / 0.976 / 0.989 | 52k / 33k / 19k | 89 | 0.25 |
//! | (d) compact wasm, degree <= 16 | 16 / 32 / 64 | 0.937 / 0.976 / 0.989 | 41k / 20k / 13k | 89 | 0.25 |
//!
//! Against the goals: recall@10 >= 0.95 from ef 32 (degree 16); wasm at 100k <= 0.25 ms per
//! query (goal 0.5 ms); size 0.27 of f32 + links at the default degree 16 and 0.25 at degree
//! 12 (with the research's degree-29 hnsw graph as baseline, 376 B/item, degree 16 is 0.25).
//! Loading in wasm: 10 MB of chunks at 100k decode in ~80-115 ms (copy in + checksums +
//! validation) and the module's memory peaks at ~36 MiB (the chunks, their concatenation
//! and the decoded index are alive at once); the wasm searcher is 144 KB. The native build of
//! the workspace's size-tuned release profile is slower than the wasm one (no wide SIMD at the
//! x86-64 baseline); run the bench with `CARGO_PROFILE_RELEASE_OPT_LEVEL=3` as these were.
//! Debian package catalog (`--source debian`): see the report of the run in git history.
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
