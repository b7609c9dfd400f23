//! Storefront benchmark under local workerd (`wrangler dev`), figures as ratios within one run.
//!
//! `cargo run --release -p shop-e2e --bin bench [-- --seconds 5 --concurrency 16 --products 100000]`
//!
//! 1. Requests per second for `/healthz` (the hello-world baseline, same worker), a product page,
//!    the home page and a category listing, each with warm caches; prints each as a ratio of the
//!    baseline and the KV reads a warm product page makes (from `Server-Timing`).
//! 2. Stock: reserves per second on one stock shard (raw protocol through `/_admin/shards/{n}`,
//!    one new order per reserve), divided by a bare Durable Object counter's increments per
//!    second through the same worker path (`/_admin/bench/counter`); then checkout p50/p99 and
//!    checkouts per second in a flash sale of 1,000 checkouts over 20 SKUs.
//! 3. Publish time of a generated catalog of `--products` products through `shopctl`'s publish.

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

/// Requests per second of GETs of `url` with `concurrency` loops over `seconds`; every answer
/// must be 200.
async fn rate(
    http: &reqwest::Client,
    url: &str,
    concurrency: usize,
    seconds: u64,
) -> Result<f64, String> {
    let (http, url) = (http.clone(), url.to_owned());
    request_rate(Arc::new(move |_| http.get(&url)), concurrency, seconds).await
}

/// A request to send, built from a number that counts up across all loops.
type MakeRequest = Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>;

/// Requests per second of requests built by `request(n)`; every answer must be 200.
async fn request_rate(
    request: MakeRequest,
    concurrency: usize,
    seconds: u64,
) -> Result<f64, String> {
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (request, done, next, stop) =
                (request.clone(), done.clone(), next.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let res = request(next.fetch_add(1, Ordering::Relaxed))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if res.status() != 200 {
                        return Err(format!(
                            "answered {}: {}",
                            res.status(),
                            res.text().await.unwrap_or_default()
                        ));
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

/// Reserves/s on one shard over a bare DO counter's increments/s, same run, same worker path.
async fn stock_ratio(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    args: &Args,
) -> Result<(), String> {
    use edge_core::stock::{Line, OrderId, ShardRequest};
    let sku = edge_core::Sku::parse("BENCH-SKU").expect("valid SKU");
    let shard = edge_core::SkuShard::of(&sku).index();
    let seed = http
        .post(format!("{base}/_admin/stock"))
        .bearer_auth(token)
        .body(serde_json::json!({"levels": {"BENCH-SKU": 10_000_000}}).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if seed.status() != 200 {
        return Err(format!("seeding the bench SKU: {}", seed.status()));
    }
    let (reserve_http, counter_http) = (http.clone(), http.clone());
    let (reserve_token, counter_token) = (token.to_owned(), token.to_owned());
    let reserve_url = format!("{base}/_admin/shards/{shard}");
    let counter_url = format!("{base}/_admin/bench/counter");
    let reserve: MakeRequest = Arc::new(move |n| {
        let request = ShardRequest::Reserve {
            order: OrderId::parse(&format!("bench-{n}")).expect("valid order id"),
            lines: vec![Line {
                sku: sku.clone(),
                qty: 1,
            }],
            ttl_ms: 60_000,
        };
        reserve_http
            .post(&reserve_url)
            .bearer_auth(&reserve_token)
            .body(edge_core::codec::to_cbor(&request))
    });
    let counter: MakeRequest =
        Arc::new(move |_| counter_http.post(&counter_url).bearer_auth(&counter_token));
    // Warm both objects, then measure them alternately so drift hits both alike.
    request_rate(counter.clone(), args.concurrency, 1).await?;
    request_rate(reserve.clone(), args.concurrency, 1).await?;
    let (mut counted, mut reserved) = (0.0, 0.0);
    for _ in 0..2 {
        counted += request_rate(counter.clone(), args.concurrency, args.seconds).await?;
        reserved += request_rate(reserve.clone(), args.concurrency, args.seconds).await?;
    }
    println!(
        "  DO counter {:>8.0} incr/s; shard {shard} {:>8.0} reserves/s   {:.2}x the counter",
        counted / 2.0,
        reserved / 2.0,
        reserved / counted
    );
    Ok(())
}

/// Checkout latency and throughput in a flash sale: `checkouts` 1-line checkouts over 20 SKUs.
async fn checkout_latency(
    http: &reqwest::Client,
    base: &str,
    demo: &Catalog,
    concurrency: usize,
) -> Result<(), String> {
    use futures::stream::{self, StreamExt};
    let skus: Vec<String> = demo
        .products
        .iter()
        .filter(|p| p.variants.is_empty())
        .take(20)
        .map(|p| p.sku.to_string())
        .collect();
    let checkouts = 1_000;
    let started = Instant::now();
    let calls: Vec<_> = (0..checkouts)
        .map(|n| {
            let body = serde_json::json!({
                "lines": [{"sku": skus[n % skus.len()], "qty": 1}],
                "email": "bench@example.com", "payment_token": "tok_visa"
            });
            // Each checkout is its own shopper from its own address, as in a real flash sale
            // (the edge's per-client rate limits would otherwise refuse one client's thousand).
            let address = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
            let request = http
                .post(format!("{base}/api/checkout"))
                .header("idempotency-key", format!("bench-{n}"))
                .header("cf-connecting-ip", address)
                .body(body.to_string());
            async move {
                let t = Instant::now();
                let status = request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                (t.elapsed(), status)
            }
        })
        .collect();
    let mut results: Vec<(Duration, u16)> = stream::iter(calls)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    results.sort_unstable();
    let pick = |q: f64| results[((results.len() - 1) as f64 * q) as usize].0;
    let placed = results.iter().filter(|(_, s)| *s == 201).count();
    let failed = results
        .iter()
        .filter(|(_, s)| !matches!(s, 201 | 409))
        .count();
    println!(
        "  checkout: {checkouts} in {elapsed:.1?} ({:.0}/s, {concurrency} in flight), {placed} placed, {failed} errors; p50 {:.1?} p99 {:.1?}",
        checkouts as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99)
    );
    Ok(())
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
        stock_ratio(&http, &edge.base_url, &edge.admin_token, &args).await?;
        checkout_latency(&http, &edge.base_url, &demo, args.concurrency).await?;

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
