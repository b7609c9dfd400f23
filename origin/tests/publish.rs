//! `shopctl`'s publish flow against the edge's admin API, served natively (memory KV and shards)
//! on a real socket: versions, the pointer flip, diffs and stock seeding.

use edge_core::api::{admin_router, router};
use edge_core::memory::{ManualClock, MemoryKv, MemoryStock};
use edge_core::snapshot::{CatalogCache, SnapshotCatalog};
use edge_core::{Catalog, Shop};
use origin::publish::{diff, publish, publish_with_grace, EdgeAdmin, PublishError};
use std::sync::Arc;

const TOKEN: &str = "publish-test-token";

/// Serves the edge routers on 127.0.0.1 with a fresh catalog reader per request, like the worker.
async fn serve_edge() -> (String, Arc<MemoryKv>) {
    let kv = Arc::new(MemoryKv::default());
    let stock = Arc::new(MemoryStock::in_memory());
    let cache = Arc::new(CatalogCache::default());
    let clock = Arc::new(ManualClock::default());
    let levels = Arc::new(edge_core::levels::LevelCache::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = {
        let kv = kv.clone();
        tower::service_fn(move |req: axum::extract::Request| {
            let catalog = SnapshotCatalog::new(kv.clone(), cache.clone(), clock.clone());
            let shop = Shop { catalog: Arc::new(catalog), stock: stock.clone(), levels: levels.clone(), clock: clock.clone() };
            let app = router(shop.clone()).merge(admin_router(shop, kv.clone(), Some(TOKEN.into())));
            async move { Ok::<_, std::convert::Infallible>(tower::ServiceExt::oneshot(app, req).await.unwrap()) }
        })
    };
    tokio::spawn(async move { axum::serve(listener, tower::make::Shared::new(app)).await.unwrap() });
    (url, kv)
}

fn catalog(entries: &[(&str, &str, i64)]) -> Catalog {
    let products: Vec<_> = entries
        .iter()
        .map(|(sku, title, stock)| serde_json::json!({"sku": sku, "title": title, "price_minor": 500,
            "category": "c", "image": "/i.svg", "stock": stock}))
        .collect();
    Catalog::from_json(&serde_json::json!({"currency": "USD", "products": products}).to_string()).unwrap()
}

#[tokio::test]
async fn publishes_versions_flips_the_pointer_and_keeps_live_stock() {
    let (url, kv) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    let v1 = catalog(&[("A", "Apple", 5), ("B", "Banana", 7)]);
    assert_eq!(diff(&edge, &v1).await.unwrap().added.len(), 2);
    let report = publish(&edge, &v1, |_, _| {}).await.unwrap();
    assert_eq!((report.version, report.products, report.diff), (1, 2, None));
    assert_eq!((report.stock.written, report.stock.kept), (2, 0));

    let http = reqwest::Client::new();
    let reserve = http.post(format!("{url}/api/stock/A/reserve")).body(r#"{"qty":2}"#).send().await.unwrap();
    assert_eq!(reserve.status(), 200);

    let v2 = catalog(&[("A", "Apricot", 50), ("C", "Cherry", 9)]);
    let preview = diff(&edge, &v2).await.unwrap();
    let report = publish(&edge, &v2, |_, _| {}).await.unwrap();
    assert_eq!(report.version, 2);
    assert_eq!(report.diff.as_ref(), Some(&preview));
    let names = |v: &[edge_core::Sku]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!((names(&preview.added), names(&preview.removed), names(&preview.changed)), (vec!["C".to_string()], vec!["B".to_string()], vec!["A".to_string()]));
    assert_eq!((report.stock.written, report.stock.kept), (1, 1), "A keeps its live stock");

    let level: serde_json::Value = http.get(format!("{url}/api/stock/A")).send().await.unwrap().json().await.unwrap();
    assert_eq!(level["available"], 3, "5 seeded - 2 reserved; the republish did not reset it");
    let product: serde_json::Value = http.get(format!("{url}/api/products/A")).send().await.unwrap().json().await.unwrap();
    assert_eq!(product["title"], "Apricot");
    // Both versions' keys exist; the old one is unreachable once the pointer moved.
    let keys = kv.keys();
    assert!(keys.contains(&"v1/product/B".to_string()) && keys.contains(&"v2/product/C".to_string()), "{keys:?}");
    assert!(diff(&edge, &v2).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_publishes_nothing() {
    let (url, kv) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, "wrong").unwrap();
    let err = publish(&edge, &catalog(&[("A", "Apple", 1)]), |_, _| {}).await.unwrap_err();
    assert!(matches!(err, PublishError::Refused { status: 401, .. }), "{err}");
    assert!(kv.keys().is_empty());
}

#[tokio::test]
async fn large_catalogs_go_in_batches() {
    let (url, kv) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    let skus: Vec<String> = (0..1_203).map(|i| format!("SKU-{i}")).collect();
    let entries: Vec<(&str, &str, i64)> = skus.iter().map(|s| (s.as_str(), "Thing", 1)).collect();
    let batches = std::sync::Mutex::new(Vec::new());
    let report = publish(&edge, &catalog(&entries), |done, total| batches.lock().unwrap().push((done, total))).await.unwrap();
    assert_eq!(report.products, 1_203);
    // 1203 products + manifest + categories + 1 category listing + search + index = 1208 keys,
    // in batches of 500.
    let mut progress = batches.lock().unwrap().clone();
    progress.sort();
    let done: Vec<usize> = progress.iter().map(|(d, _)| *d).collect();
    assert_eq!(progress.last(), Some(&(1208, 1208)));
    assert_eq!(done.len(), 3, "three batches: {progress:?}");
    assert_eq!(kv.keys().len(), 1209, "1208 version keys + the pointer");
}

#[tokio::test]
async fn old_versions_are_collected_after_the_grace_period() {
    let (url, kv) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    let versions = [
        catalog(&[("A", "Apple", 1), ("B", "Banana", 1)]),
        catalog(&[("A", "Apple 2", 1)]),
        catalog(&[("A", "Apple 3", 1), ("C", "Cherry", 1)]),
    ];
    // A long grace keeps everything.
    for c in &versions[..2] {
        publish_with_grace(&edge, c, |_, _| {}, u64::MAX).await.unwrap();
    }
    let report = publish_with_grace(&edge, &versions[2], |_, _| {}, u64::MAX).await.unwrap();
    assert!(report.gc.deferred && report.gc.deleted_versions.is_empty());
    assert!(kv.keys().iter().any(|k| k.starts_with("v1/")));

    // With no grace, the next publish (v4) deletes v1 and v2 and keeps v3, the one it replaced.
    let report = publish_with_grace(&edge, &versions[0], |_, _| {}, 0).await.unwrap();
    assert_eq!(report.version, 4);
    assert_eq!(report.gc.deleted_versions, vec![2, 1]);
    let keys = kv.keys();
    assert!(keys.iter().all(|k| !k.starts_with("v1/") && !k.starts_with("v2/")), "{keys:?}");
    assert!(keys.contains(&"v3/product/C".to_string()) && keys.contains(&"v4/product/B".to_string()), "{keys:?}");
    // Collecting again finds nothing more to do; `shopctl gc` keeps v4 (live) and deletes v3.
    assert_eq!(edge.collect_versions_below(3).await.unwrap().deleted_versions, Vec::<u64>::new());
    let report = edge.collect_garbage(0).await.unwrap();
    assert_eq!(report.deleted_versions, vec![3]);
    assert!(kv.keys().iter().all(|k| k == "catalog/current" || k.starts_with("v4/")), "{:?}", kv.keys());
    let level: serde_json::Value = reqwest::get(format!("{url}/api/products/B")).await.unwrap().json().await.unwrap();
    assert_eq!(level["title"], "Banana", "the live version still serves");
}
