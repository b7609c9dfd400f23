//! A flash sale against the real `origin` binary: 2,000 concurrent checkouts for 20 SKUs of 100
//! units each, far more than there is. Nothing may be oversold, no hold may be left, every unit
//! sold must belong to an acknowledged order, and every acknowledged order must be in the
//! orders table. Latency and throughput are printed (figures, not assertions).

mod support;

use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Instant;
use support::{checkout, flash_catalog, level, plans, quantile, stored, OriginProcess};

const SKUS: usize = 20;
const STOCK_PER_SKU: u32 = 100;
const CHECKOUTS: usize = 2_000;
/// Checkouts in flight at once: a crowd, bounded so a 2-core CI machine is busy, not thrashing.
const CONCURRENCY: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_never_oversells_and_every_acknowledged_order_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, skus) = flash_catalog(dir.path(), SKUS, STOCK_PER_SKU);
    let origin = OriginProcess::start(
        &dir.path().join("data"),
        &catalog,
        &dir.path().join("origin.log"),
    )
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let sale = plans(CHECKOUTS, &skus, 0x5eed_f1a5, "flash");

    let started = Instant::now();
    let answers: Vec<_> = futures::stream::iter(sale.iter())
        .map(|plan| {
            let client = &client;
            let url = &origin.url;
            async move { (plan, checkout(client, url, plan).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut sold_by_orders: BTreeMap<&edge_core::Sku, u64> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(answers.len());
    let mut placed = Vec::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (plan, answer) in &answers {
        let answer = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("{} got no answer: {e}\n{}", plan.key, origin.log()));
        *by_status.entry(answer.status).or_default() += 1;
        latencies.push(answer.latency);
        match answer.status {
            201 => {
                for (sku, qty) in &plan.lines {
                    *sold_by_orders.entry(sku).or_default() += u64::from(*qty);
                }
                placed.push(answer.order_id.clone().expect("a 201 names its order"));
            }
            409 => {} // sold out
            other => panic!("{}: unexpected status {other}\n{}", plan.key, origin.log()),
        }
    }
    latencies.sort();
    println!(
        "flash sale: {CHECKOUTS} checkouts ({CONCURRENCY} at once) in {:.2} s = {:.0} checkouts/s; \
         p50 {:.1} ms, p99 {:.1} ms; statuses {by_status:?}",
        elapsed.as_secs_f64(),
        CHECKOUTS as f64 / elapsed.as_secs_f64(),
        quantile(&latencies, 0.50).as_secs_f64() * 1e3,
        quantile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    assert!(
        by_status.get(&201).copied().unwrap_or(0) > 100,
        "{by_status:?}"
    );
    assert!(
        by_status.get(&409).copied().unwrap_or(0) > 0,
        "the sale should sell out"
    );

    for sku in &skus {
        let level = level(&client, &origin.url, sku).await;
        assert_eq!(level.received, u64::from(STOCK_PER_SKU), "{sku}: {level:?}");
        assert_eq!(
            level.held, 0,
            "{sku}: every checkout finished, no hold may remain"
        );
        assert_eq!(
            u64::from(level.sold),
            level.received - u64::from(level.available),
            "{sku}: {level:?}"
        );
        assert_eq!(
            u64::from(level.sold),
            sold_by_orders.get(sku).copied().unwrap_or(0),
            "{sku}: units sold must be exactly those of the acknowledged orders"
        );
    }
    for id in &placed {
        assert!(
            stored(&client, &origin.url, id).await,
            "order {id} is not in the orders table"
        );
    }
}
