//! Seeded mutation fuzzing of the decoder: any bytes give an index or an error, never a panic,
//! and a decoded (possibly mutated) index can be searched without a panic.
//!
//! `VECTOR_FUZZ_CASES=N` runs N cases (default 20 000); `VECTOR_FUZZ_SEED=S` picks the seed.

use vectors::synth::{catalog, SplitMix};
use vectors::{build_small, CompactIndex, Featurizer, GraphConfig, VectorError, VectorSet};

fn small_index() -> CompactIndex {
    let items = catalog(60, 7);
    let f = Featurizer::new(16).unwrap();
    let mut set = VectorSet::new(16).unwrap();
    for (i, p) in items.iter().enumerate() {
        set.push(&i.to_string(), &f.featurize(&p.text())).unwrap();
    }
    let config = GraphConfig {
        degree_max: 8,
        entry_points: 4,
        ..GraphConfig::default()
    };
    build_small(&set, &config).unwrap().index
}

fn mutate(rng: &mut SplitMix, bytes: &mut Vec<u8>) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if bytes.is_empty() {
            bytes.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(bytes.len());
        match rng.below(7) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next_u64() as u8,
            2 => bytes.truncate(at),
            3 => {
                let n = 1 + rng.below(16);
                for _ in 0..n {
                    bytes.insert(at, rng.next_u64() as u8);
                }
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(bytes.len());
                bytes.drain(at..end);
            }
            // Interesting values: CBOR heads of large lengths, 0xff breaks, varint continuations.
            5 => bytes[at] = [0x00, 0x7f, 0x80, 0xff, 0x5b, 0x9f, 0xbf, 0x1b][rng.below(8)],
            _ => {
                // Copy a run of the index's own bytes over another place.
                let from = rng.below(bytes.len());
                let len = (1 + rng.below(64))
                    .min(bytes.len() - from)
                    .min(bytes.len() - at);
                let copy: Vec<u8> = bytes[from..from + len].to_vec();
                bytes[at..at + len].copy_from_slice(&copy);
            }
        }
    }
}

fn exercise(index: &CompactIndex) {
    let query: Vec<f32> = (0..index.dim())
        .map(|i| (i as f32 * 0.37).sin() + 0.1)
        .collect();
    let _ = index.search(&query, 5, 16, |_| true);
    for item in [0, 1, index.len() as u32 - 1, index.len() as u32] {
        let _ = index.similar_to(item, 5, 16, |i| i % 3 != 0);
    }
}

#[test]
fn mutated_indexes_never_panic() {
    let cases: usize = std::env::var("VECTOR_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("VECTOR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let index = small_index();
    let valid = index.to_bytes();
    assert_eq!(CompactIndex::from_bytes(&valid).unwrap(), index);
    let mut rng = SplitMix(seed);
    let (mut accepted, mut rejected) = (0usize, 0usize);
    for case in 0..cases {
        let mut bytes = valid.clone();
        mutate(&mut rng, &mut bytes);
        let outcome = std::panic::catch_unwind(|| match CompactIndex::from_bytes(&bytes) {
            Ok(decoded) => {
                exercise(&decoded);
                true
            }
            Err(_) => false,
        });
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => rejected += 1,
            Err(_) => panic!(
                "case {case} (seed {seed}) panicked on {} bytes: {bytes:02x?}",
                bytes.len()
            ),
        }
    }
    eprintln!("{cases} cases: {accepted} decoded (mutations in vector bytes), {rejected} rejected");
    assert!(rejected > cases / 4, "most mutations should be caught");
}

#[test]
fn mutated_manifests_and_chunks_are_refused() {
    let index = small_index();
    let (manifest, chunks) = index.to_chunks(1024).unwrap();
    assert!(chunks.len() >= 2);
    let manifest_bytes = manifest.to_bytes();
    assert_eq!(
        CompactIndex::from_chunks(&manifest_bytes, &chunks).unwrap(),
        index
    );
    let mut rng = SplitMix(99);
    for _ in 0..2000 {
        let mut m = manifest_bytes.clone();
        mutate(&mut rng, &mut m);
        let _ = CompactIndex::from_chunks(&m, &chunks);
        let mut c = chunks.clone();
        let which = rng.below(c.len());
        let before = c[which].clone();
        mutate(&mut rng, &mut c[which]);
        if c[which] != before {
            assert!(
                CompactIndex::from_chunks(&manifest_bytes, &c).is_err(),
                "checksum must catch it"
            );
        }
    }
    // Missing or reordered chunks.
    assert!(CompactIndex::from_chunks(&manifest_bytes, &chunks[1..]).is_err());
    let mut swapped = chunks.clone();
    swapped.swap(0, 1);
    assert!(CompactIndex::from_chunks(&manifest_bytes, &swapped).is_err());
}

#[test]
fn specific_corruptions_give_specific_errors() {
    let index = small_index();
    let valid = index.to_bytes();
    assert!(matches!(
        CompactIndex::from_bytes(&[]),
        Err(VectorError::Corrupt(_))
    ));
    assert!(matches!(
        CompactIndex::from_bytes(&valid[..valid.len() / 2]),
        Err(VectorError::Corrupt(_))
    ));
    // Re-encode with another version number: refused as a version, not as garbage.
    let mut value: ciborium::Value = ciborium::from_reader(&valid[..]).unwrap();
    if let ciborium::Value::Map(fields) = &mut value {
        for (k, v) in fields.iter_mut() {
            if k.as_text() == Some("version") {
                *v = ciborium::Value::Integer(2.into());
            }
        }
    }
    let mut other = Vec::new();
    ciborium::into_writer(&value, &mut other).unwrap();
    assert_eq!(
        CompactIndex::from_bytes(&other),
        Err(VectorError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    // Out-of-range query inputs are errors too.
    assert!(index.search(&[1.0; 3], 5, 16, |_| true).is_err());
    assert!(index.search(&[0.0; 16], 5, 16, |_| true).is_err());
    assert!(index.search(&[f32::NAN; 16], 5, 16, |_| true).is_err());
    assert!(index.search(&[1.0; 16], 0, 16, |_| true).is_err());
    assert!(index.similar_to(10_000, 5, 16, |_| true).is_err());
}
