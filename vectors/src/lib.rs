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
//! # Measured (see `src/bin/vector-bench.rs`; 2 shared cores, QPS +-30 %)
//!
//! See the table at the end of this doc (filled from `vector-bench` runs).
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
