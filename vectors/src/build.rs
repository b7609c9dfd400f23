//! Publish-time graph build with hnsw_rs (feature `build`, native only).
//!
//! hnsw_rs builds the HNSW graph with parallel inserts (all cores); we keep only what the
//! searcher needs: each item's layer-0 neighbours plus the items linking to it (two-way links:
//! an item nobody links to cannot be found), cut to the degree cap by HNSW's diversity
//! heuristic (not simply the closest: that dropped the bridging links and cost 1.5-2 points of
//! recall on Debian's catalog), and as entry points the
//! items of the highest layers (HNSW's upper layers exist to find a good start; scoring 64 of
//! their top items directly does the same job for a flat search, at 256 bytes per index).

use crate::graph::{add_reverse_links, finish, BuiltIndex, GraphConfig};
use crate::{VectorError, VectorSet};
use anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

/// Cosine distance for unit vectors, clamped at 0. Not anndists' `DistDot`: it asserts
/// `1 - dot >= 0`, which rounding breaks for near-duplicate items.
#[derive(Clone, Copy, Debug, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - crate::graph::dot(a, b)).max(0.0)
    }
}

/// Largest catalog [`build`] accepts (the index format allows more; this bounds publish time).
pub const BUILD_ITEMS_MAX: usize = 2_000_000;

/// Builds the hnsw_rs graph over `set` and exports it as a compact index.
pub fn build(set: &VectorSet, config: &GraphConfig) -> Result<BuiltIndex, VectorError> {
    let hnsw = build_hnsw(set, config)?;
    export(&hnsw, set, config)
}

/// The hnsw_rs graph itself (the benchmark also searches it directly).
pub fn build_hnsw(
    set: &VectorSet,
    config: &GraphConfig,
) -> Result<Hnsw<'static, f32, CosineDistance>, VectorError> {
    let count = set.len();
    if count == 0 || count > BUILD_ITEMS_MAX {
        return Err(VectorError::Invalid(format!(
            "build takes 1..={BUILD_ITEMS_MAX} items, got {count}"
        )));
    }
    if !(2..=128).contains(&config.hnsw_m) || config.ef_construction == 0 {
        return Err(VectorError::Invalid(format!(
            "hnsw_m {} must be in 2..=128 and ef_construction positive",
            config.hnsw_m
        )));
    }
    let layers_max = 16;
    let hnsw = Hnsw::new(
        config.hnsw_m,
        count,
        layers_max,
        config.ef_construction,
        CosineDistance,
    );
    let data: Vec<(&[f32], usize)> = set
        .as_flat()
        .chunks_exact(set.dim())
        .enumerate()
        .map(|(i, v)| (v, i))
        .collect();
    hnsw.parallel_insert_slice(&data);
    Ok(hnsw)
}

/// Exports a built hnsw_rs graph over `set` (inserted with ids `0..count`).
pub fn export(
    hnsw: &Hnsw<'_, f32, CosineDistance>,
    set: &VectorSet,
    config: &GraphConfig,
) -> Result<BuiltIndex, VectorError> {
    let count = set.len();
    let degree = config.degree_max.clamp(1, crate::index::DEGREE_MAX_LIMIT);
    let mut neighbours: Vec<Vec<u32>> = vec![Vec::new(); count];
    let mut levels: Vec<(u8, u32)> = Vec::with_capacity(count);
    let mut seen = 0usize;
    for point in hnsw.get_point_indexation() {
        let id = point.get_origin_id();
        let Some(list) = neighbours.get_mut(id) else {
            return Err(VectorError::Invalid(format!(
                "hnsw_rs returned unknown item {id}"
            )));
        };
        seen += 1;
        let layers = point.get_neighborhood_id();
        if let Some(layer0) = layers.first() {
            list.extend(
                layer0
                    .iter()
                    .map(|n| n.d_id as u32)
                    .filter(|&j| (j as usize) < count && j as usize != id),
            );
        }
        levels.push((point.get_point_id().0, id as u32));
    }
    if seen != count {
        return Err(VectorError::Invalid(format!(
            "hnsw_rs holds {seen} of {count} items"
        )));
    }
    add_reverse_links(set.as_flat(), set.dim(), &mut neighbours, degree);
    levels.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let entries: Vec<u32> = levels
        .iter()
        .take(config.entry_points.clamp(1, crate::ENTRY_POINTS_MAX))
        .map(|l| l.1)
        .collect();
    finish(set, neighbours, entries, degree, config.featurizer_version)
}
