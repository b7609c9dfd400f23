//! `vector-bench`: recall@10, queries/s and bytes/item of four ways to answer "similar items",
//! side by side, on one set of items and held-out queries.
//!
//! ```text
//! cargo run -p vectors --release --features build --bin vector-bench -- [--n 10000]
//!     [--queries 1000] [--dim 64] [--ef 16,32,64] [--degree 24,16,12] [--source synth|debian]
//!     [--no-wasm]
//! ```
//!
//! (a) hnsw_rs on f32, (b) exact int8 scan (per-vector scale), (c) our compact index natively,
//! (d) the same index searched by the raw-wasm searcher (`examples/wasm_searcher.rs`, built here
//! for wasm32-unknown-unknown with simd128) under `node`. Ground truth: exact top-10 by f32 dot
//! product in the featurizer's space. `--source debian` uses `apt-cache dumpavail` (package
//! name/description as title, Section as category, Maintainer as vendor, Installed-Size as
//! price) instead of the synthetic catalog. Also prints how often the 64-d (or `--dim`) exact
//! top-10 agrees with a 1024-d featurization: the quality cost of hashing into few dimensions.
//!
//! Prints a markdown table; QPS is single-threaded and noisy on shared machines (+-30 %).

use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use vectors::build::{build_hnsw, export};
use vectors::synth::{catalog, SynthProduct};
use vectors::{exact_top_k, Featurizer, GraphConfig, SearchScratch, VectorSet};

const K: usize = 10;
const SEED: u64 = 42;
/// Bounds on the command line, so a typo cannot ask for a day of work.
const N_MAX: usize = 1_000_000;
const QUERIES_MAX: usize = 100_000;

struct Args {
    n: usize,
    queries: usize,
    dim: usize,
    efs: Vec<usize>,
    /// Degree caps to export the one hnsw_rs graph with (one (c)/(d) block each).
    degrees: Vec<usize>,
    debian: bool,
    wasm: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 10_000,
        queries: 1000,
        dim: vectors::DIM_DEFAULT,
        efs: vec![16, 32, 64],
        degrees: vec![24, 16, 12],
        debian: false,
        wasm: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
        match flag.as_str() {
            "--n" => a.n = num(value()?)?.clamp(100, N_MAX),
            "--queries" => a.queries = num(value()?)?.clamp(1, QUERIES_MAX),
            "--dim" => a.dim = num(value()?)?,
            "--degree" => {
                a.degrees = value()?
                    .split(',')
                    .map(|s| num(s.to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "--ef" => {
                a.efs = value()?
                    .split(',')
                    .map(|s| num(s.to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "--source" => a.debian = value()? == "debian",
            "--no-wasm" => a.wasm = false,
            _ => {
                return Err(format!(
                    "unknown flag {flag}; see the doc at the top of vector-bench.rs"
                ))
            }
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vector-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("vector-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let total = args.n + args.queries;
    let items: Vec<SynthProduct> = if args.debian {
        debian_catalog(total)?
    } else {
        catalog(total, SEED)
    };
    if items.len() < total {
        return Err(format!(
            "only {} items available, {total} needed",
            items.len()
        ));
    }
    let (index_items, query_items) = items.split_at(args.n);
    let featurizer = Featurizer::new(args.dim).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let set = featurize(&featurizer, index_items)?;
    let queries = featurize(&featurizer, query_items)?;
    let featurize_us = t.elapsed().as_secs_f64() * 1e6 / total as f64;
    let dim = set.dim();
    println!(
        "# vector-bench: {} items, {} held-out queries, {}-d, source {}, k {K}",
        args.n,
        args.queries,
        dim,
        if args.debian { "debian" } else { "synthetic" }
    );
    println!("featurize: {featurize_us:.1} us/item");

    let t = Instant::now();
    let truth: Vec<Vec<u32>> = (0..queries.len())
        .map(|q| exact_top_k(set.as_flat(), dim, queries.get(q).unwrap_or(&[]), K, None))
        .collect();
    let exact_f32_qps = queries.len() as f64 / t.elapsed().as_secs_f64();

    hashing_quality(index_items, query_items, &featurizer)?;

    let config = GraphConfig::default();
    let rss_before = rss_bytes();
    let t = Instant::now();
    let cpu0 = cpu_seconds();
    let hnsw = build_hnsw(&set, &config).map_err(|e| e.to_string())?;
    let build_s = t.elapsed().as_secs_f64();
    let build_cpu_s = cpu_seconds() - cpu0;
    let hnsw_rss = rss_bytes().saturating_sub(rss_before);
    println!(
        "hnsw_rs build (M {}, ef_construction {}): {build_s:.1} s wall, {build_cpu_s:.0} CPU-s",
        config.hnsw_m, config.ef_construction
    );

    let mut rows: Vec<Row> = Vec::new();
    // Layer-0 degree of the hnsw_rs graph, for the f32 + u32-links baseline size.
    let mut links_total = 0usize;
    for point in hnsw.get_point_indexation() {
        links_total += point.get_neighborhood_id().first().map_or(0, |l| l.len());
    }
    let degree_avg = links_total as f64 / args.n as f64;
    let baseline_bytes = (4 * dim) as f64 + 4.0 * degree_avg + 4.0;
    println!(
        "hnsw_rs layer-0 degree {degree_avg:.1}: f32 + u32 links baseline = {baseline_bytes:.0} B/item; hnsw_rs RSS growth {:.0} B/item",
        hnsw_rss as f64 / args.n as f64
    );
    rows.push(Row {
        name: "exact f32 scan".into(),
        ef: None,
        recall: 1.0,
        qps: exact_f32_qps,
        bytes_per_item: 4.0 * dim as f64,
    });

    // (a) hnsw_rs on f32.
    for &ef in &args.efs {
        let t = Instant::now();
        let found: Vec<Vec<u32>> = (0..queries.len())
            .map(|q| {
                hnsw.search(queries.get(q).unwrap_or(&[]), K, ef)
                    .iter()
                    .map(|n| n.d_id as u32)
                    .collect()
            })
            .collect();
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        rows.push(Row {
            name: "(a) hnsw_rs f32".into(),
            ef: Some(ef),
            recall: recall(&found, &truth),
            qps,
            bytes_per_item: hnsw_rss as f64 / args.n as f64,
        });
    }

    // (b) exact int8 scan with per-vector scale.
    {
        let mut scales = Vec::with_capacity(args.n);
        let mut q8 = Vec::with_capacity(args.n * dim);
        for i in 0..args.n {
            let (s, q) = quantise(set.get(i).unwrap_or(&[]));
            scales.push(s);
            q8.extend_from_slice(&q);
        }
        let t = Instant::now();
        let found: Vec<Vec<u32>> = (0..queries.len())
            .map(|q| int8_scan(&q8, &scales, dim, queries.get(q).unwrap_or(&[])))
            .collect();
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        rows.push(Row {
            name: "(b) exact int8 scan".into(),
            ef: None,
            recall: recall(&found, &truth),
            qps,
            bytes_per_item: (dim + 4) as f64,
        });
    }

    for &degree in &args.degrees {
        // (c) the compact index, natively, through the chunks the worker would read.
        let t = Instant::now();
        let built = export(
            &hnsw,
            &set,
            &GraphConfig {
                degree_max: degree,
                ..config
            },
        )
        .map_err(|e| e.to_string())?;
        let export_s = t.elapsed().as_secs_f64();
        let (manifest, chunks) = built
            .index
            .to_chunks(vectors::CHUNK_BYTES_DEFAULT)
            .map_err(|e| e.to_string())?;
        let manifest_bytes = manifest.to_bytes();
        let t = Instant::now();
        let index = vectors::CompactIndex::from_chunks(&manifest_bytes, &chunks)
            .map_err(|e| e.to_string())?;
        let decode_ms = t.elapsed().as_secs_f64() * 1e3;
        let index_bytes = manifest.total_bytes + manifest_bytes.len();
        let compact_bytes = index_bytes as f64 / args.n as f64;
        let links_bytes = index.encoded_links_len() as f64 / args.n as f64;
        println!(
            "compact index: {index_bytes} bytes in {} chunk(s) of <= {} MiB = {compact_bytes:.1} B/item (links {links_bytes:.1} B/item, degree cap {}); export + renumber {export_s:.2} s, native decode {decode_ms:.1} ms",
            chunks.len(),
            vectors::CHUNK_BYTES_DEFAULT >> 20,
            index.degree_max()
        );
        let mut scratch = SearchScratch::default();
        for &ef in &args.efs {
            let t = Instant::now();
            let found: Vec<Vec<u32>> = (0..queries.len())
                .map(|q| {
                    index
                        .search_with(&mut scratch, queries.get(q).unwrap_or(&[]), K, ef, |_| true)
                        .map(|hits| hits.iter().map(|h| built.order[h.item as usize]).collect())
                        .unwrap_or_default()
                })
                .collect();
            let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
            rows.push(Row {
                name: format!("(c) compact native, degree <= {degree}"),
                ef: Some(ef),
                recall: recall(&found, &truth),
                qps,
                bytes_per_item: compact_bytes,
            });
        }

        // (d) the compact index in wasm under node.
        if args.wasm {
            match wasm_rows(
                args,
                &manifest_bytes,
                &chunks,
                &queries,
                &built.order,
                &truth,
            ) {
                Ok(mut r) => {
                    for row in &mut r {
                        row.bytes_per_item = compact_bytes;
                        row.name = format!("(d) compact wasm, degree <= {degree}");
                    }
                    rows.extend(r);
                }
                Err(e) => println!("(d) wasm: skipped: {e}"),
            }
        }
    }

    print_table(&rows, baseline_bytes);
    Ok(())
}

struct Row {
    name: String,
    ef: Option<usize>,
    recall: f64,
    qps: f64,
    bytes_per_item: f64,
}

fn print_table(rows: &[Row], baseline_bytes: f64) {
    let hnsw_best = rows
        .iter()
        .filter(|r| r.name.starts_with("(a)"))
        .map(|r| r.qps)
        .fold(0.0f64, f64::max);
    let int8 = rows
        .iter()
        .find(|r| r.name.starts_with("(b)"))
        .map_or(1.0, |r| r.qps);
    println!();
    println!("| index | ef | recall@10 | QPS | ms/query | bytes/item | QPS vs (a) best | QPS vs (b) | bytes vs f32+links ({baseline_bytes:.0}) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.3} | {:.0} | {:.3} | {:.0} | {:.2}x | {:.2}x | {:.2} |",
            r.name,
            r.ef.map_or("-".into(), |e| e.to_string()),
            r.recall,
            r.qps,
            1e3 / r.qps,
            r.bytes_per_item,
            r.qps / hnsw_best,
            r.qps / int8,
            r.bytes_per_item / baseline_bytes
        );
    }
    println!("goals: recall@10 >= 0.95; <= 0.5 ms/query in wasm at 100k; bytes/item <= 0.25 of f32 + links");
}

fn wasm_rows(
    args: &Args,
    manifest: &[u8],
    chunks: &[Vec<u8>],
    queries: &VectorSet,
    order: &[u32],
    truth: &[Vec<u32>],
) -> Result<Vec<Row>, String> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // opt-level 3 (the workspace's release profile is size-tuned) and simd128, as a worker
    // build of the searcher would use.
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "vectors",
            "--release",
            "--example",
            "wasm_searcher",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-C target-feature=+simd128",
        )
        .current_dir(&crate_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the wasm searcher failed".into());
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate_dir.join("../target"));
    let wasm = target_dir.join("wasm32-unknown-unknown/release/examples/wasm_searcher.wasm");
    let wasm_bytes = std::fs::metadata(&wasm)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .len();
    let dir = std::env::temp_dir().join(format!("vector-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("manifest.cbor"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("chunks.bin"), chunks.concat()).map_err(|e| e.to_string())?;
    let q: Vec<u8> = queries
        .as_flat()
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(dir.join("queries.f32"), q).map_err(|e| e.to_string())?;
    let efs: Vec<String> = args.efs.iter().map(|e| e.to_string()).collect();
    let output = Command::new("node")
        .arg(crate_dir.join("bench/wasm_bench.mjs"))
        .arg(&wasm)
        .arg(&dir)
        .arg(queries.dim().to_string())
        .arg(K.to_string())
        .arg(efs.join(","))
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "node failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut rows = Vec::new();
    for (line, &ef) in stdout.lines().zip(&args.efs) {
        let ms = json_number(line, "ms").ok_or(format!("bad node output {line}"))?;
        if rows.is_empty() {
            println!(
                "wasm searcher: {wasm_bytes} bytes of wasm; load (copy in + from_chunks) {:.1} ms; wasm memory {:.1} MiB",
                json_number(line, "loadMs").unwrap_or(f64::NAN),
                json_number(line, "memoryBytes").unwrap_or(f64::NAN) / 1048576.0
            );
        }
        let raw = std::fs::read(dir.join(format!("ids-{ef}.u32"))).map_err(|e| e.to_string())?;
        let ids: Vec<u32> = raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let found: Vec<Vec<u32>> = ids
            .chunks(K)
            .map(|c| {
                c.iter()
                    .filter_map(|&p| order.get(p as usize).copied())
                    .collect()
            })
            .collect();
        rows.push(Row {
            name: "(d) compact wasm".into(),
            ef: Some(ef),
            recall: recall(&found, truth),
            qps: queries.len() as f64 / (ms / 1e3),
            bytes_per_item: 0.0,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}

/// The number after `"key":` in a flat JSON line.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn featurize(f: &Featurizer, items: &[SynthProduct]) -> Result<VectorSet, String> {
    let mut set = VectorSet::new(f.dim()).map_err(|e| e.to_string())?;
    let mut v = Vec::new();
    for (i, p) in items.iter().enumerate() {
        f.featurize_into(&p.text(), &mut v);
        set.push(&format!("item {i}"), &v)
            .map_err(|e| e.to_string())?;
    }
    Ok(set)
}

/// How often the exact top-10 at the bench's dimension matches the exact top-10 of a 1024-d
/// featurization (few hash collisions), on up to 10k items and 200 queries.
fn hashing_quality(
    items: &[SynthProduct],
    queries: &[SynthProduct],
    f: &Featurizer,
) -> Result<(), String> {
    let n = items.len().min(10_000);
    let nq = queries.len().min(200);
    let wide = Featurizer::new(1024).map_err(|e| e.to_string())?;
    let (a, aq) = (featurize(f, &items[..n])?, featurize(f, &queries[..nq])?);
    let (b, bq) = (
        featurize(&wide, &items[..n])?,
        featurize(&wide, &queries[..nq])?,
    );
    let mut found = Vec::new();
    let mut truth = Vec::new();
    for q in 0..nq {
        found.push(exact_top_k(
            a.as_flat(),
            a.dim(),
            aq.get(q).unwrap_or(&[]),
            K,
            None,
        ));
        truth.push(exact_top_k(
            b.as_flat(),
            b.dim(),
            bq.get(q).unwrap_or(&[]),
            K,
            None,
        ));
    }
    println!(
        "hashing cost: exact top-10 at {}-d agrees with 1024-d on {:.3} ({n} items, {nq} queries)",
        f.dim(),
        recall(&found, &truth)
    );
    Ok(())
}

fn recall(found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (f, t) in found.iter().zip(truth) {
        total += t.len();
        hit += t.iter().filter(|id| f.contains(id)).count();
    }
    hit as f64 / total.max(1) as f64
}

fn quantise(v: &[f32]) -> (f32, Vec<i8>) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    (
        scale,
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
    )
}

fn int8_scan(q8: &[i8], scales: &[f32], dim: usize, query: &[f32]) -> Vec<u32> {
    let (_, q) = quantise(query);
    let mut best: BinaryHeap<std::cmp::Reverse<(i64, u32)>> = BinaryHeap::with_capacity(K + 1);
    for (i, (v, s)) in q8.chunks_exact(dim).zip(scales).enumerate() {
        let d: i32 = v.iter().zip(&q).map(|(a, b)| *a as i32 * *b as i32).sum();
        // Scores as fixed point so the heap can order them.
        let score = (d as f64 * *s as f64 * 1e6) as i64;
        best.push(std::cmp::Reverse((score, i as u32)));
        if best.len() > K {
            best.pop();
        }
    }
    best.into_iter().map(|r| r.0 .1).collect()
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Products from Debian's package catalog: name + short description as title, the long
/// description, Section as category, Maintainer as vendor, Installed-Size (KiB) as price.
fn debian_catalog(count: usize) -> Result<Vec<SynthProduct>, String> {
    let out = Command::new("apt-cache")
        .arg("dumpavail")
        .output()
        .map_err(|e| format!("apt-cache: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for stanza in text.split("\n\n") {
        if items.len() >= count {
            break;
        }
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_default()
        };
        let package = field("Package:");
        if package.is_empty() || !seen.insert(package.clone()) {
            continue;
        }
        let summary = field("Description:");
        let long: String = stanza
            .lines()
            .skip_while(|l| !l.starts_with("Description:"))
            .skip(1)
            .take_while(|l| l.starts_with(' '))
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        let section = field("Section:");
        let category = section.rsplit('/').next().unwrap_or("").to_owned();
        items.push(SynthProduct {
            title: format!("{package} {summary}"),
            description: long,
            category,
            vendor: field("Maintainer:"),
            tags: section.split('/').map(String::from).collect(),
            price_minor: field("Installed-Size:").parse::<i64>().unwrap_or(100) * 10,
        });
    }
    if items.is_empty() {
        return Err("apt-cache dumpavail listed no packages; run apt-get update".into());
    }
    Ok(items)
}
