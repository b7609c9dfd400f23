//! Mutation fuzzing of every decoder that reads stored or received bytes (cargo-fuzz needs a
//! nightly toolchain this project does not have): valid CBOR encodings are truncated, bit-flipped,
//! spliced and padded by a seeded generator, and every decoder must return `Ok` or `Err`, never
//! panic. `DECODE_FUZZ_CASES=N` runs more cases; a failing seed is printed for replay.

use edge_core::codec::{from_cbor, to_cbor};
use edge_core::listing::{category_listings, CategoryInfo, CategoryListing};
use edge_core::product::{Catalog, ProductSummary};
use edge_core::search::SearchIndex;
use edge_core::snapshot::{manifest, KvEntry, Manifest, SnapshotPointer};
use edge_core::stock::{Line, OrderId, ShardReply, ShardRequest};
use edge_core::{Product, Sku};

/// xorshift64*: tiny, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed_input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = seed_input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 => bytes.truncate(rng.below(bytes.len() + 1)),
            1 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            3 => {
                let at = rng.below(bytes.len() + 1);
                let from = rng.below(other.len() + 1);
                let len = rng.below(other.len() - from + 1).min(64);
                bytes.splice(at..at, other[from..from + len].iter().copied());
            }
            // Huge length prefixes: decoders must not trust them with allocations.
            4 => bytes
                .splice(0..0, [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .for_each(drop),
            _ => bytes.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
        }
    }
    bytes
}

fn samples() -> Vec<Vec<u8>> {
    let catalog = Catalog::from_json(
        &serde_json::json!({"currency": "USD", "products": [
            {"sku": "MUG-1", "title": "Mug", "description": "Stoneware", "price_minor": 1200, "category": "Kitchen",
             "vendor": "Acme", "tags": ["gift", "ceramic"], "image": "/i.svg", "stock": 3},
            {"sku": "TEE-2", "title": "Tee", "price_minor": 2500, "category": "Apparel", "image": "/t.svg", "stock": 0}
        ]})
        .to_string(),
    )
    .unwrap();
    let summaries: Vec<ProductSummary> =
        catalog.products.iter().map(ProductSummary::from).collect();
    let sku = Sku::parse("MUG-1").unwrap();
    vec![
        to_cbor(&catalog.products[0]),
        to_cbor(&summaries),
        to_cbor(&manifest(&catalog.products)),
        to_cbor(&category_listings(&summaries)[0]),
        to_cbor(&SearchIndex::build(&catalog.products)),
        to_cbor(&SnapshotPointer {
            version: 3,
            published_at_ms: 1_700_000_000_000,
            products: 2,
        }),
        to_cbor(&ShardRequest::Seed {
            levels: vec![(sku.clone(), 4)],
            overwrite: false,
        }),
        to_cbor(&ShardRequest::Reserve {
            order: OrderId::parse("o1").unwrap(),
            lines: vec![Line {
                sku: sku.clone(),
                qty: 2,
            }],
            ttl_ms: 60_000,
        }),
        to_cbor(&ShardReply::Insufficient { sku, available: 3 }),
        to_cbor(&ShardReply::Seeded {
            written: 1,
            kept: 2,
        }),
        to_cbor(&vec![KvEntry {
            key: "v1/x".into(),
            value: vec![1, 2, 3],
        }]),
    ]
}

/// Runs every decoder; a panic inside fails the test with the case's seed.
fn decode_all(bytes: &[u8]) {
    let _ = from_cbor::<Product>(bytes);
    let _ = from_cbor::<Vec<ProductSummary>>(bytes);
    let _ = from_cbor::<Manifest>(bytes);
    let _ = from_cbor::<CategoryListing>(bytes);
    let _ = from_cbor::<Vec<CategoryInfo>>(bytes);
    let _ = from_cbor::<SearchIndex>(bytes);
    let _ = from_cbor::<SnapshotPointer>(bytes);
    let _ = from_cbor::<ShardRequest>(bytes);
    let _ = from_cbor::<ShardReply>(bytes);
    let _ = from_cbor::<Vec<KvEntry>>(bytes);
}

#[test]
fn mutated_cbor_never_panics_a_decoder() {
    let cases: u64 = std::env::var("DECODE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let samples = samples();
    for seed in 1..=cases {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let base = &samples[rng.below(samples.len())];
        let other = &samples[rng.below(samples.len())];
        let bytes = mutate(&mut rng, base, other);
        if std::panic::catch_unwind(|| decode_all(&bytes)).is_err() {
            panic!("decoder panicked on seed {seed}: input {bytes:02x?}");
        }
    }
    // The unmutated samples still decode: the harness feeds real encodings.
    assert!(from_cbor::<Product>(&samples[0]).is_ok());
    assert!(from_cbor::<SearchIndex>(&samples[4]).is_ok());
    println!("decode fuzz: {cases} mutated inputs through 10 decoders, no panic");
}
