//! Graph building shared by both builders: the small exact builder (no hnsw_rs, for tests and
//! catalogs up to [`SMALL_ITEMS_MAX`] items), neighbour selection and the locality renumbering.
//!
//! Why renumber: neighbour ids are stored as varint deltas, so items that are close in space
//! should be close as numbers. [`locality_order`] sorts items by the leaves of a random
//! projection tree (split at the median along the direction between two random members,
//! down to leaves of [`LEAF_ITEMS`]); graph neighbours then mostly share a subtree and their
//! deltas take one byte. (A breadth-first walk of the graph, Cuthill-McKee style, was tried
//! first: on an HNSW graph its frontier is wide and the median delta was ~500, two bytes.)
//! The caller gets the new order ([`BuiltIndex::order`]) and publishes its SKU list in it.

use crate::synth::SplitMix;
use crate::{CompactIndex, VectorError, VectorSet};

/// Largest catalog [`build_small`] accepts: it compares every pair of items
/// (`count^2 * dim` multiply-adds, ~1 s at 10k x 64 natively).
pub const SMALL_ITEMS_MAX: usize = 10_000;
/// Items per leaf of the renumbering tree.
pub const LEAF_ITEMS: usize = 16;

/// Knobs for both builders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphConfig {
    /// Neighbours kept per item in the published index (the main size knob: each costs one or
    /// two bytes per item).
    pub degree_max: usize,
    /// hnsw_rs `max_nb_connection` (M; layer 0 holds up to 2M), build feature only.
    pub hnsw_m: usize,
    /// hnsw_rs `ef_construction`, build feature only.
    pub ef_construction: usize,
    /// Entry points stored (searches score them all first).
    pub entry_points: usize,
    /// [`crate::FEATURIZER_VERSION`] of the vectors, or 0 for merchant vectors.
    pub featurizer_version: u32,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            degree_max: 16,
            hnsw_m: 16,
            ef_construction: 100,
            entry_points: 64,
            featurizer_version: crate::FEATURIZER_VERSION,
        }
    }
}

/// A built index and the order of its items.
#[derive(Clone, Debug)]
pub struct BuiltIndex {
    pub index: CompactIndex,
    /// `order[position] = input item`: index position `p` is the `order[p]`-th vector pushed
    /// into the [`VectorSet`]. Publish the SKU list in this order.
    pub order: Vec<u32>,
}

/// Builds an index by comparing every pair of items: exact neighbour candidates, then HNSW's
/// diversity heuristic and reverse links. For tests and small catalogs.
pub fn build_small(set: &VectorSet, config: &GraphConfig) -> Result<BuiltIndex, VectorError> {
    let count = set.len();
    if count == 0 || count > SMALL_ITEMS_MAX {
        return Err(VectorError::Invalid(format!(
            "build_small takes 1..={SMALL_ITEMS_MAX} items, got {count}; use the build feature"
        )));
    }
    let dim = set.dim();
    let data = set.as_flat();
    let degree = config.degree_max.clamp(1, crate::index::DEGREE_MAX_LIMIT);
    let candidates_max = (2 * degree).min(count - 1);
    let mut neighbours: Vec<Vec<u32>> = Vec::with_capacity(count);
    let mut sims: Vec<(f32, u32)> = Vec::with_capacity(count);
    for (i, v) in data.chunks_exact(dim).enumerate() {
        sims.clear();
        for (j, w) in data.chunks_exact(dim).enumerate() {
            if i != j {
                sims.push((dot(v, w), j as u32));
            }
        }
        if candidates_max > 0 && candidates_max < sims.len() {
            sims.select_nth_unstable_by(candidates_max - 1, |a, b| b.0.total_cmp(&a.0));
            sims.truncate(candidates_max);
        }
        sims.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        neighbours.push(select_diverse(data, dim, &sims, degree, degree / 2));
    }
    add_reverse_links(data, dim, &mut neighbours, degree);
    let step = count.div_ceil(config.entry_points.clamp(1, crate::ENTRY_POINTS_MAX));
    let entries: Vec<u32> = (0..count).step_by(step.max(1)).map(|i| i as u32).collect();
    finish(set, neighbours, entries, degree, config.featurizer_version)
}

/// HNSW's neighbour heuristic: walking candidates best first, keep one unless it is closer to an
/// already kept neighbour than to the item (then that neighbour leads to it anyway). Fills up
/// with the skipped ones, best first, up to `fill_to` (clustered data needs some of them).
pub(crate) fn select_diverse(
    data: &[f32],
    dim: usize,
    sorted: &[(f32, u32)],
    degree: usize,
    fill_to: usize,
) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(degree);
    let mut skipped: Vec<u32> = Vec::new();
    let vec_of = |id: u32| &data[id as usize * dim..(id as usize + 1) * dim];
    for &(sim, c) in sorted {
        if kept.len() == degree {
            break;
        }
        let cv = vec_of(c);
        if kept.iter().all(|&r| dot(cv, vec_of(r)) < sim) {
            kept.push(c);
        } else {
            skipped.push(c);
        }
    }
    for c in skipped {
        if kept.len() >= fill_to {
            break;
        }
        kept.push(c);
    }
    kept
}

/// Makes links two-way (an item that nobody links to cannot be found), then cuts every list
/// longer than `degree` with [`select_diverse`], filled up to `degree` with the closest of the
/// rest (so the cap keeps bridges between clusters, not only the nearest items).
pub(crate) fn add_reverse_links(
    data: &[f32],
    dim: usize,
    neighbours: &mut [Vec<u32>],
    degree: usize,
) {
    let count = neighbours.len();
    let mut incoming: Vec<Vec<u32>> = vec![Vec::new(); count];
    for (i, list) in neighbours.iter().enumerate() {
        for &j in list {
            incoming[j as usize].push(i as u32);
        }
    }
    for (j, list) in neighbours.iter_mut().enumerate() {
        for &i in &incoming[j] {
            if !list.contains(&i) {
                list.push(i);
            }
        }
        if list.len() > degree {
            let v = &data[j * dim..(j + 1) * dim];
            let mut sorted: Vec<(f32, u32)> = list
                .iter()
                .map(|&i| (dot(v, &data[i as usize * dim..(i as usize + 1) * dim]), i))
                .collect();
            sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            *list = select_diverse(data, dim, &sorted, degree, degree);
        }
    }
}

/// Renumbers items in [`locality_order`] and encodes the index.
pub(crate) fn finish(
    set: &VectorSet,
    neighbours: Vec<Vec<u32>>,
    entries: Vec<u32>,
    degree: usize,
    featurizer_version: u32,
) -> Result<BuiltIndex, VectorError> {
    let count = neighbours.len();
    let dim = set.dim();
    let order = locality_order(set);
    let mut position = vec![0u32; count];
    for (p, &old) in order.iter().enumerate() {
        position[old as usize] = p as u32;
    }
    let mut vectors = Vec::with_capacity(count * dim);
    let mut lists = Vec::with_capacity(count);
    for &old in &order {
        vectors.extend_from_slice(set.get(old as usize).unwrap_or(&[]));
        lists.push(
            neighbours[old as usize]
                .iter()
                .map(|&j| position[j as usize])
                .collect::<Vec<u32>>(),
        );
    }
    let entries: Vec<u32> = entries.iter().map(|&e| position[e as usize]).collect();
    let index =
        CompactIndex::from_parts(dim, &vectors, &lists, &entries, degree, featurizer_version)?;
    Ok(BuiltIndex { index, order })
}

/// Items ordered so that nearby vectors get nearby positions: the leaves of a random
/// projection tree, left to right. Deterministic (fixed seed); `O(count * dim * depth)`.
pub fn locality_order(set: &VectorSet) -> Vec<u32> {
    let dim = set.dim();
    let data = set.as_flat();
    let mut order: Vec<u32> = (0..set.len() as u32).collect();
    let mut rng = SplitMix(0x0bde_f00d);
    let mut projected: Vec<(f32, u32)> = Vec::new();
    // Explicit stack of (start, end) ranges: no recursion depth to worry about; each split
    // halves a range, so at most ~2 * count / LEAF_ITEMS ranges are ever pushed.
    let mut stack = vec![(0usize, order.len())];
    while let Some((start, end)) = stack.pop() {
        let len = end - start;
        if len <= LEAF_ITEMS {
            continue;
        }
        let a = order[start + rng.below(len)] as usize;
        let b = order[start + rng.below(len)] as usize;
        let (va, vb) = (&data[a * dim..(a + 1) * dim], &data[b * dim..(b + 1) * dim]);
        projected.clear();
        for &i in &order[start..end] {
            let v = &data[i as usize * dim..(i as usize + 1) * dim];
            let p: f32 = v
                .iter()
                .zip(va.iter().zip(vb))
                .map(|(x, (y, z))| x * (y - z))
                .sum();
            projected.push((p, i));
        }
        let mid = len / 2;
        projected.select_nth_unstable_by(mid, |x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        for (slot, (_, i)) in order[start..end].iter_mut().zip(&projected) {
            *slot = *i;
        }
        // Push right then left, so the left half is finished first (order is left to right
        // either way; this only keeps the stack short).
        stack.push((start + mid, end));
        stack.push((start, start + mid));
    }
    order
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
