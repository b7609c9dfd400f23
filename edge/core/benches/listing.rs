//! Listing cost while a sale runs, as ratios to the same listing without one, in one run.
//!
//! `cargo bench -p edge-core --bench listing [-- --products 100000]`
//!
//! A generated catalog (ten categories, `--products` products) is published into the in-memory
//! KV and read through the same cached snapshot reader the worker uses. Each figure is the mean
//! time of one unfiltered listing page (`edge_core::api::browse`: every product filtered, price
//! bands counted, one page cut) and of one price-filtered page:
//! - the baseline: no automatic promotion runs;
//! - a sale on one category (a tenth of the products), warm: the isolate's cache holds the
//!   sale prices for this version and set of running promotions;
//! - the same sale, cold: every call works the sale prices out again (a new sale state or a
//!   new isolate), which is what a listing paid per request before the prices were cached.

use edge_core::codec::to_cbor;
use edge_core::memory::{memory_desk, ManualClock, MemoryKv, MemoryStock};
use edge_core::promo::PromotionBook;
use edge_core::snapshot::{promotions_key, CatalogCache, Clock, SnapshotCatalog};
use edge_core::{Catalog, Shop};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn catalog(n: usize) -> Catalog {
    let products: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "sku": format!("B-{i}"), "title": format!("Item {i}"),
                "price_minor": 500 + (i * 7919) % 40_000, "category": format!("Category {}", i % 10),
                "image": "/images/kitchen.svg", "stock": 10
            })
        })
        .collect();
    let json = serde_json::json!({ "currency": "USD", "products": products });
    Catalog::from_json(&json.to_string()).expect("the generated catalog is valid")
}

fn shop(kv: &Arc<MemoryKv>, cache: &Arc<CatalogCache>, clock: &Arc<ManualClock>) -> Shop {
    let stock = Arc::new(MemoryStock::with_clock(clock.clone()));
    Shop {
        catalog: Arc::new(SnapshotCatalog::new(
            kv.clone(),
            cache.clone(),
            clock.clone(),
        )),
        orders: Arc::new(memory_desk(stock.clone(), clock.clone())),
        stock,
        levels: Arc::default(),
        clock: clock.clone(),
    }
}

/// Mean time of `browse` with `params` over `rounds` calls; `fresh` gives each call a new,
/// empty isolate cache (after the snapshot's own values are read once).
async fn time(
    kv: &Arc<MemoryKv>,
    clock: &Arc<ManualClock>,
    params: &[(String, String)],
    rounds: u32,
    fresh: bool,
) -> Duration {
    let warm_cache = Arc::new(CatalogCache::default());
    let warm = shop(kv, &warm_cache, clock);
    edge_core::api::browse(&warm, params)
        .await
        .expect("a listing");
    let mut spent = Duration::ZERO;
    for _ in 0..rounds {
        let shop = if fresh {
            // A new cache, primed with the snapshot (products, facets, promotions), so only
            // the sale prices are worked out inside the timed call.
            let cache = Arc::new(CatalogCache::default());
            let primed = shop(kv, &cache, clock);
            let _ = primed.catalog.products().await;
            let _ = primed.catalog.facets().await;
            let _ = primed.catalog.promotions().await;
            primed
        } else {
            warm.clone()
        };
        let started = Instant::now();
        let page = edge_core::api::browse(&shop, params)
            .await
            .expect("a listing");
        spent += started.elapsed();
        std::hint::black_box(page);
    }
    spent / rounds
}

fn main() {
    let mut products = 100_000usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--products") {
        products = args
            .get(at + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(products);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::default());
        clock.advance(1_000_000);
        let catalog = catalog(products);
        let publish = |book: serde_json::Value| {
            let kv = Arc::new(MemoryKv::default());
            let version = kv.publish_snapshot(&catalog.products, clock.now_ms());
            let book: PromotionBook = serde_json::from_value(book).expect("a promotion book");
            kv.put(&promotions_key(version), to_cbor(&book));
            kv
        };
        let plain = publish(serde_json::json!({ "currency": "USD", "promotions": [] }));
        let sale = publish(serde_json::json!({ "currency": "USD", "promotions": [
            {"id": "SALE", "title": "20% off category 3", "benefit": {"type": "percent_off", "percent": 20},
             "applies_to": {"categories": ["Category 3"]}}
        ]}));
        let rounds = 20;
        println!("listing bench: {products} products, a sale on one category in ten, {rounds} rounds each");
        for (name, params) in [
            ("unfiltered page", vec![]),
            ("price-filtered page", vec![("price".to_owned(), "25-50".to_owned())]),
        ] {
            let base = time(&plain, &clock, &params, rounds, false).await;
            let warm = time(&sale, &clock, &params, rounds, false).await;
            let cold = time(&sale, &clock, &params, rounds, true).await;
            let ratio = |d: Duration| d.as_secs_f64() / base.as_secs_f64();
            println!("  {name}: no sale {base:.2?} (1.00); sale, warm {warm:.2?} ({:.2}); sale, cold {cold:.2?} ({:.2})", ratio(warm), ratio(cold));
        }
    });
}
