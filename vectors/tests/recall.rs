//! Recall of the compact index on the committed dataset (2k synthetic products, exact top-10 of
//! each computed once in f32 and committed): the searcher must find >= 95 % of the true
//! neighbours at `EF`.
//!
//! Regenerate the data after a featurizer change with
//! `VECTOR_REGENERATE=1 cargo test -p vectors --test recall regenerate -- --ignored`.

mod common;

use common::*;
use std::sync::OnceLock;
use vectors::synth::SynthProduct;
use vectors::{build_small, exact_top_k, BuiltIndex, GraphConfig, VectorSet};

/// The dataset, its vectors and the small build, made once per test binary (the tests share
/// them; building three times tripled the debug test time).
fn fixture() -> &'static (Vec<SynthProduct>, VectorSet, BuiltIndex) {
    static FIXTURE: OnceLock<(Vec<SynthProduct>, VectorSet, BuiltIndex)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let items = load_catalog();
        let set = vector_set(&items);
        let built = build_small(&set, &GraphConfig::default()).unwrap();
        (items, set, built)
    })
}

/// Beam width at which recall@10 is asserted.
const EF: usize = 48;
const RECALL_MIN: f64 = 0.95;

fn recall(found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (f, t) in found.iter().zip(truth) {
        total += t.len();
        hit += t.iter().filter(|id| f.contains(id)).count();
    }
    hit as f64 / total as f64
}

#[test]
fn exact_search_reproduces_committed_truth() {
    // Guards the featurizer: if this fails, the featurizer changed (bump FEATURIZER_VERSION and
    // regenerate the data), not the index.
    let (items, set, _) = fixture();
    let truth = load_truth();
    assert_eq!(items.len(), DATASET_ITEMS);
    assert_eq!(truth.len(), DATASET_ITEMS);
    let exact: Vec<Vec<u32>> = (0..items.len())
        .map(|i| {
            exact_top_k(
                set.as_flat(),
                set.dim(),
                set.get(i).unwrap(),
                TRUTH_K,
                Some(i as u32),
            )
        })
        .collect();
    let agreement = recall(&exact, &truth);
    assert!(
        agreement >= 0.99,
        "exact top-10 agrees with the committed truth only {agreement:.4}"
    );
}

#[test]
fn small_build_recall_at_10() {
    let (items, set, built) = fixture();
    let truth = load_truth();
    let (manifest, chunks) = built.index.to_chunks(64 * 1024).unwrap();
    assert!(chunks.len() > 1, "the test should exercise several chunks");
    let index = vectors::CompactIndex::from_chunks(&manifest.to_bytes(), &chunks).unwrap();
    // Map index positions back to dataset items through `order`.
    let mut position = vec![0u32; items.len()];
    for (p, &item) in built.order.iter().enumerate() {
        position[item as usize] = p as u32;
    }
    let found: Vec<Vec<u32>> = (0..items.len())
        .map(|i| {
            index
                .similar_to(position[i], TRUTH_K, EF, |_| true)
                .unwrap()
                .iter()
                .map(|h| built.order[h.item as usize])
                .collect()
        })
        .collect();
    let r = recall(&found, &truth);
    eprintln!("small build: recall@10 = {r:.4} at ef {EF}");
    assert!(
        r >= RECALL_MIN,
        "recall@10 {r:.4} < {RECALL_MIN} at ef {EF}"
    );
    // Free-vector queries: the item's own vector finds the item first.
    for i in (0..items.len()).step_by(97) {
        let hits = index.search(set.get(i).unwrap(), 1, EF, |_| true).unwrap();
        assert_eq!(built.order[hits[0].item as usize], i as u32);
    }
}

#[test]
fn filter_only_returns_passing_items() {
    let (_, _, built) = fixture();
    let even = |i: u32| i.is_multiple_of(2);
    for q in [0u32, 5, 777] {
        let hits = built.index.similar_to(q, 10, 64, even).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| even(h.item) && h.item != q));
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );
    }
    assert!(built
        .index
        .similar_to(5, 10, 64, |_| false)
        .unwrap()
        .is_empty());
}

#[cfg(feature = "build")]
#[test]
fn hnsw_build_recall_at_10() {
    let (items, set, _) = fixture();
    let truth = load_truth();
    let built = vectors::build::build(set, &GraphConfig::default()).unwrap();
    let index = built.index;
    let found: Vec<Vec<u32>> = (0..items.len() as u32)
        .map(|p| {
            index
                .similar_to(p, TRUTH_K, EF, |_| true)
                .unwrap()
                .iter()
                .map(|h| built.order[h.item as usize])
                .collect()
        })
        .collect();
    let mut truth_by_position = Vec::with_capacity(items.len());
    for &item in &built.order {
        truth_by_position.push(truth[item as usize].clone());
    }
    let r = recall(&found, &truth_by_position);
    eprintln!("hnsw build: recall@10 = {r:.4} at ef {EF}");
    assert!(
        r >= RECALL_MIN,
        "recall@10 {r:.4} < {RECALL_MIN} at ef {EF}"
    );
}

#[test]
#[ignore = "writes tests/data; run after a featurizer change"]
fn regenerate() {
    if std::env::var("VECTOR_REGENERATE").as_deref() != Ok("1") {
        return;
    }
    let items = vectors::synth::catalog(DATASET_ITEMS, DATASET_SEED);
    std::fs::write(data_dir().join("catalog-2k.tsv"), to_tsv(&items)).unwrap();
    let set = vector_set(&load_catalog());
    let mut out = String::from(
        "# exact top-10 (cosine, featurizer v1, 64-d) of each item, itself excluded\n",
    );
    for i in 0..items.len() {
        let top = exact_top_k(
            set.as_flat(),
            set.dim(),
            set.get(i).unwrap(),
            TRUTH_K,
            Some(i as u32),
        );
        let line: Vec<String> = top.iter().map(|x| x.to_string()).collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    std::fs::write(data_dir().join("top10-2k.txt"), out).unwrap();
}
