//! Importing Shopify product exports: the committed sample (variants, HTML bodies, quotes,
//! commas and newlines in fields, image rows, a draft) and a file of bad rows.

use edge_core::Sku;
use origin::shopify::import;
use std::path::Path;
use std::process::Command;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_sample_export_imports_as_it_comes() {
    let imported = import(&read("data/shopify-sample.csv"), "USD").unwrap();
    assert_eq!(imported.skipped, ["old-draft"]);
    let products = &imported.catalog.products;
    assert_eq!(
        products.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(),
        ["TR-40-BLK", "CT-001", "EM-350"]
    );

    let runner = &products[0];
    assert_eq!(runner.title, "Trail Runner");
    assert_eq!(
        runner.description,
        "Grippy trail shoe, with a rock plate & a 6 mm drop."
    );
    assert_eq!(
        (runner.category.as_str(), runner.vendor.as_str()),
        ("Shoes", "Ridgeway")
    );
    assert_eq!(runner.tags, ["new", "running", "trail"]);
    assert_eq!(runner.options, ["Size", "Color"]);
    let variants: Vec<(&str, String, u64)> = runner
        .variants
        .iter()
        .map(|v| (v.sku.as_str(), v.label(), v.price.minor))
        .collect();
    assert_eq!(
        variants,
        [
            ("TR-40-BLK", "40 / Black".to_string(), 12_900),
            ("TR-41-BLK", "41 / Black".to_string(), 12_900),
            ("TR-42-ORG", "42 / Orange".to_string(), 13_450)
        ]
    );
    assert_eq!(runner.price.minor, 12_900, "lowest variant price");
    assert_eq!(
        runner.image, "https://cdn.shopify.com/s/files/1/trail-runner.jpg",
        "the first image, not the side view"
    );

    let tote = &products[1];
    assert_eq!(tote.title, "Canvas Tote, \"Market\" Edition");
    assert_eq!(
        tote.description,
        "Holds a week of groceries. Waxed canvas Leather straps"
    );
    assert!(
        tote.variants.is_empty() && tote.options.is_empty(),
        "Default Title is no variant"
    );
    assert_eq!((tote.price.minor, tote.category.as_str()), (4_500, "Bags"));

    assert_eq!(
        products[2].category, "Kitchen",
        "from Product Category when Type is empty"
    );
    let level = |sku: &str| imported.catalog.initial_stock(&Sku::parse(sku).unwrap());
    assert_eq!(
        (
            level("TR-40-BLK"),
            level("TR-41-BLK"),
            level("TR-42-ORG"),
            level("CT-001"),
            level("EM-350")
        ),
        (Some(5), Some(0), Some(8), Some(12), Some(30))
    );
    assert_eq!(level("OD-1"), None, "drafts are not imported");
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_field() {
    let problems = import(&read("tests/data/shopify-bad.csv"), "USD").unwrap_err();
    let found: Vec<(Option<usize>, &str)> = problems
        .iter()
        .map(|p| (p.line, p.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(3), "Variant SKU"),
            (Some(4), "sku"),
            (Some(5), "Variant Price"),
            (Some(6), "Variant Price"),
            (Some(7), "image"),
            (Some(9), "variants[1].stock"),
        ],
        "{problems:#?}"
    );
    assert!(
        problems[1].to_string().contains("duplicate SKU GOOD-1"),
        "{}",
        problems[1]
    );
    assert!(problems[2].message.contains("negative"));
}

#[test]
fn an_export_without_shopify_columns_is_refused() {
    let problems = import("sku,title\nA,Apple\n", "USD").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("Handle"), "{}", problems[0]);
}

#[test]
fn shopctl_validate_exits_non_zero_with_the_lines_at_fault() {
    let shopctl = env!("CARGO_BIN_EXE_shopctl");
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/shopify-bad.csv");
    let out = Command::new(shopctl)
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "line 3:", "line 4:", "line 5:", "line 6:", "line 7:", "line 9:",
    ] {
        assert!(stderr.contains(line), "{line} missing from:\n{stderr}");
    }
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/shopify-sample.csv");
    let out = Command::new(shopctl)
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 products"));
}

/// Mutation fuzzing of the importer (cargo-fuzz needs nightly): the sample export and the bad
/// file, cut, spliced and bit-flipped by a seeded generator; import must return, never panic.
/// `CSV_FUZZ_CASES=N` runs more.
#[test]
fn mutated_exports_never_panic_the_importer() {
    let cases: u64 = std::env::var("CSV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let samples = [
        read("data/shopify-sample.csv").into_bytes(),
        read("tests/data/shopify-bad.csv").into_bytes(),
    ];
    let specials: [&[u8]; 8] = [
        b"\"",
        b",",
        b"\n",
        b"\r\n",
        b"&#9999999;",
        b"<p",
        b"-1",
        b"\xff\xfe",
    ];
    for seed in 1..=cases {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut bytes = samples[(next() % 2) as usize].clone();
        for _ in 0..=(next() % 6) {
            let at = (next() as usize) % (bytes.len() + 1);
            match next() % 4 {
                0 => bytes.truncate(at),
                1 if at < bytes.len() => bytes[at] ^= 1 << (next() % 8),
                2 => {
                    let special = specials[(next() % specials.len() as u64) as usize];
                    bytes.splice(at..at, special.iter().copied());
                }
                _ => {
                    let end = (at + (next() as usize) % 40).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let outcome =
            std::panic::catch_unwind(|| import(&text, "USD").map(|i| i.catalog.products.len()));
        assert!(outcome.is_ok(), "importer panicked on seed {seed}:\n{text}");
    }
    println!("csv fuzz: {cases} mutated exports imported without a panic");
}
