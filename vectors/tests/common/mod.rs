//! Shared by the integration tests: the committed dataset and its loader.

#![allow(dead_code)]

use std::path::PathBuf;
use vectors::synth::SynthProduct;

/// Items in the committed dataset.
pub const DATASET_ITEMS: usize = 2000;
/// Seed the dataset was generated with (`vectors::synth::catalog(DATASET_ITEMS, DATASET_SEED)`).
pub const DATASET_SEED: u64 = 20_261_124;
/// Neighbours per item in the committed ground truth.
pub const TRUTH_K: usize = 10;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// One TSV line per product: title, category, vendor, tags (comma-separated), price_minor,
/// description.
pub fn to_tsv(items: &[SynthProduct]) -> String {
    let mut out = String::from("# title\tcategory\tvendor\ttags\tprice_minor\tdescription\n");
    for p in items {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            p.title,
            p.category,
            p.vendor,
            p.tags.join(","),
            p.price_minor,
            p.description
        ));
    }
    out
}

pub fn load_catalog() -> Vec<SynthProduct> {
    let text = std::fs::read_to_string(data_dir().join("catalog-2k.tsv")).expect("dataset file");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "bad dataset line {l:?}");
            SynthProduct {
                title: f[0].into(),
                category: f[1].into(),
                vendor: f[2].into(),
                tags: f[3]
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
                price_minor: f[4].parse().expect("price"),
                description: f[5].into(),
            }
        })
        .collect()
}

/// The committed exact top-10 of each item (excluding itself), one line of ids per item.
pub fn load_truth() -> Vec<Vec<u32>> {
    let text = std::fs::read_to_string(data_dir().join("top10-2k.txt")).expect("truth file");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').map(|x| x.parse().expect("id")).collect())
        .collect()
}

pub fn vector_set(items: &[SynthProduct]) -> vectors::VectorSet {
    let f = vectors::Featurizer::default();
    let mut set = vectors::VectorSet::new(f.dim()).unwrap();
    for (i, p) in items.iter().enumerate() {
        set.push(&format!("item {i}"), &f.featurize(&p.text()))
            .unwrap();
    }
    set
}
