//! Storefront benchmark under local workerd (`wrangler dev`), figures as ratios within one run.
//!
//! `cargo run --release -p shop-e2e --bin bench [-- --seconds 5 --concurrency 16 --products 100000]`
//!
//! 1. Requests per second for `/healthz` (the hello-world baseline, same worker), a product page,
//!    the home page and a category listing, each with warm caches; prints each as a ratio of the
//!    baseline and the KV reads a warm product page makes (from `Server-Timing`).
//! 2. Publish time of a generated catalog of `--products` products through `shopctl`'s publish.

use edge_core::Catalog;
use shop_e2e::WranglerDev;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    seconds: u64,
    concurrency: usize,
    products: usize,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 5,
        concurrency: 16,
        products: 100_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--seconds", Some(v)) => a.seconds = v,
            ("--concurrency", Some(v)) => a.concurrency = v as usize,
            ("--products", Some(v)) => a.products = v as usize,
            (flag, _) => {
                eprintln!("bench: unknown or incomplete option {flag}");
                std::process::exit(2);
            }
        }
    }
    a
}

/// Requests per second for `path` with `concurrency` loops over `seconds`; every answer must be 200.
async fn rate(
    http: &reqwest::Client,
    url: &str,
    concurrency: usize,
    seconds: u64,
) -> Result<f64, String> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, done, stop) =
                (http.clone(), url.to_owned(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let res = http.get(&url).send().await.map_err(|e| e.to_string())?;
                    if res.status() != 200 {
                        return Err(format!("{url} answered {}", res.status()));
                    }
                    res.bytes().await.map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// A deterministic catalog of `n` products over 20 categories.
fn generated_catalog(n: usize) -> Catalog {
    let words = [
        "oak", "linen", "steel", "wool", "cedar", "copper", "slate", "cotton", "glass", "clay",
    ];
    let things = [
        "mug", "lamp", "chair", "shirt", "bag", "bowl", "desk", "scarf", "vase", "stool",
    ];
    let products: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let title = format!("{} {} {}", words[i % 10], things[(i / 10) % 10], i);
            serde_json::json!({
                "sku": format!("GEN-{i:06}"), "title": title,
                "description": format!("A generated {} for benchmarks, number {i}.", things[(i / 10) % 10]),
                "price_minor": 500 + (i * 37) % 40_000, "category": format!("category {}", i % 20),
                "vendor": format!("vendor {}", i % 7), "tags": [words[(i / 7) % 10]],
                "image": "/images/home.svg", "stock": 10
            })
        })
        .collect();
    Catalog::from_json(&serde_json::json!({"currency": "USD", "products": products}).to_string())
        .expect("generated catalog is valid")
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result: Result<(), String> = runtime.block_on(async {
        let edge = WranglerDev::start(&[]).await?;
        let demo = origin::publish::load_catalog(
            &shop_e2e::repo_root().join("origin/data/demo-catalog.json"),
        )
        .map_err(|e| e.to_string())?;
        let admin = origin::publish::EdgeAdmin::new(&edge.base_url, &edge.admin_token)
            .map_err(|e| e.to_string())?;
        origin::publish::publish(&admin, &demo, |_, _| {})
            .await
            .map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .build()
            .map_err(|e| e.to_string())?;
        let sku = &demo.products[0].sku;
        let routes = [
            ("hello-world /healthz", "/healthz".to_string()),
            ("product page", format!("/p/{sku}")),
            ("home page", "/".to_string()),
            ("category listing", "/c/apparel?sort=price-asc".to_string()),
            ("JSON product", format!("/api/products/{sku}")),
        ];
        // Warm every isolate cache first.
        for (_, path) in &routes {
            rate(
                &http,
                &format!("{}{path}", edge.base_url),
                args.concurrency,
                1,
            )
            .await?;
        }
        let timing = http
            .get(format!("{}/p/{sku}", edge.base_url))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let kv = timing
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        println!(
            "bench: {} s per route, {} concurrent requests, local workerd",
            args.seconds, args.concurrency
        );
        let mut baseline = None;
        for (name, path) in &routes {
            let rps = rate(
                &http,
                &format!("{}{path}", edge.base_url),
                args.concurrency,
                args.seconds,
            )
            .await?;
            let base = *baseline.get_or_insert(rps);
            println!(
                "  {name:<22} {rps:>8.0} req/s   {:.2}x hello-world",
                rps / base
            );
        }
        println!("  warm product page Server-Timing: {kv}");

        let catalog = generated_catalog(args.products);
        let started = Instant::now();
        let report = origin::publish::publish(&admin, &catalog, |_, _| {})
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "  publish of {} generated products (version {}): {:.1} s",
            report.products,
            report.version,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
