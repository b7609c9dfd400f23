//! `shopctl`'s publish flow against the edge's admin API, served natively (memory KV and shards)
//! on a real socket: versions, the pointer flip, diffs and stock seeding.

use edge_core::api::{admin_router, router};
use edge_core::memory::{memory_desk, ManualClock, MemoryKv, MemoryStock};
use edge_core::snapshot::{CatalogCache, SnapshotCatalog};
use edge_core::{Catalog, Shop};
use origin::publish::{diff, publish, publish_with_grace, CatalogKv, EdgeAdmin, PublishError};
use std::sync::Arc;

const TOKEN: &str = "publish-test-token";

/// Serves the edge routers on 127.0.0.1 with a fresh catalog reader per request, like the worker.
async fn serve_edge() -> (String, Arc<MemoryKv>, Arc<ManualClock>) {
    let kv = Arc::new(MemoryKv::default());
    let stock = Arc::new(MemoryStock::in_memory());
    let cache = Arc::new(CatalogCache::default());
    let clock = Arc::new(ManualClock::default());
    let levels = Arc::new(edge_core::levels::LevelCache::default());
    let orders = Arc::new(memory_desk(stock.clone(), clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let edge_clock = clock.clone();
    let app = {
        let kv = kv.clone();
        tower::service_fn(move |req: axum::extract::Request| {
            let catalog = SnapshotCatalog::new(kv.clone(), cache.clone(), clock.clone());
            let shop = Shop {
                catalog: Arc::new(catalog),
                stock: stock.clone(),
                levels: levels.clone(),
                clock: clock.clone(),
                orders: orders.clone(),
            };
            let app =
                router(shop.clone()).merge(admin_router(shop, kv.clone(), Some(TOKEN.into())));
            async move {
                Ok::<_, std::convert::Infallible>(
                    tower::ServiceExt::oneshot(app, req).await.unwrap(),
                )
            }
        })
    };
    tokio::spawn(async move {
        axum::serve(listener, tower::make::Shared::new(app))
            .await
            .unwrap()
    });
    (url, kv, edge_clock)
}

fn catalog(entries: &[(&str, &str, i64)]) -> Catalog {
    let products: Vec<_> = entries
        .iter()
        .map(|(sku, title, stock)| {
            serde_json::json!({"sku": sku, "title": title, "price_minor": 500,
            "category": "c", "image": "/i.svg", "stock": stock})
        })
        .collect();
    Catalog::from_json(&serde_json::json!({"currency": "USD", "products": products}).to_string())
        .unwrap()
}

#[tokio::test]
async fn publishes_versions_flips_the_pointer_and_keeps_live_stock() {
    let (url, kv, clock) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    let v1 = catalog(&[("A", "Apple", 5), ("B", "Banana", 7)]);
    assert_eq!(diff(&edge, &v1).await.unwrap().added.len(), 2);
    let report = publish(&edge, &v1, |_, _| {}).await.unwrap();
    assert_eq!((report.version, report.products, report.diff), (1, 2, None));
    assert_eq!((report.stock.written, report.stock.kept), (2, 0));

    let http = reqwest::Client::new();
    let order = serde_json::json!({"lines": [{"sku": "A", "qty": 2}], "email": "a@b.co", "payment_token": "tok_visa"});
    let checkout = http
        .post(format!("{url}/api/checkout"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(checkout.status(), 201);

    let v2 = catalog(&[("A", "Apricot", 50), ("C", "Cherry", 9)]);
    let preview = diff(&edge, &v2).await.unwrap();
    let report = publish(&edge, &v2, |_, _| {}).await.unwrap();
    assert_eq!(report.version, 2);
    assert_eq!(report.diff.as_ref(), Some(&preview));
    let names = |v: &[edge_core::Sku]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        (
            names(&preview.added),
            names(&preview.removed),
            names(&preview.changed)
        ),
        (
            vec!["C".to_string()],
            vec!["B".to_string()],
            vec!["A".to_string()]
        )
    );
    assert_eq!(
        (report.stock.written, report.stock.kept),
        (1, 1),
        "A keeps its live stock"
    );

    clock.advance(edge_core::snapshot::POINTER_TTL_MS);
    let level: serde_json::Value = http
        .get(format!("{url}/api/stock/A"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        level["available"], 3,
        "5 seeded - 2 sold; the republish did not reset it"
    );
    let product: serde_json::Value = http
        .get(format!("{url}/api/products/A"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(product["title"], "Apricot");
    // Both versions' keys exist; the old one is unreachable once the pointer moved.
    let keys = kv.keys();
    assert!(
        keys.contains(&"v1/product/B".to_string()) && keys.contains(&"v2/product/C".to_string()),
        "{keys:?}"
    );
    assert!(diff(&edge, &v2).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_publishes_nothing() {
    let (url, kv, _) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, "wrong").unwrap();
    let err = publish(&edge, &catalog(&[("A", "Apple", 1)]), |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Refused { status: 401, .. }),
        "{err}"
    );
    assert!(kv.keys().is_empty());
}

#[tokio::test]
async fn large_catalogs_go_in_batches() {
    let (url, kv, _) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    let skus: Vec<String> = (0..1_203).map(|i| format!("SKU-{i}")).collect();
    let entries: Vec<(&str, &str, i64)> = skus.iter().map(|s| (s.as_str(), "Thing", 1)).collect();
    let batches = std::sync::Mutex::new(Vec::new());
    let report = publish(&edge, &catalog(&entries), |done, total| {
        batches.lock().unwrap().push((done, total))
    })
    .await
    .unwrap();
    assert_eq!(report.products, 1_203);
    // 1203 products + manifest + categories + 1 category listing + search + facets + units +
    // trending + index = 1211 keys, the similar-items index (SKU list, one chunk,
    // manifest) = 1214, and the promotions = 1215,
    // in batches of 500.
    let mut progress = batches.lock().unwrap().clone();
    progress.sort();
    let done: Vec<usize> = progress.iter().map(|(d, _)| *d).collect();
    assert_eq!(progress.last(), Some(&(1215, 1215)));
    assert_eq!(done.len(), 3, "three batches: {progress:?}");
    assert_eq!(kv.keys().len(), 1216, "1215 version keys + the pointer");
}

#[tokio::test]
async fn old_versions_are_collected_after_the_grace_period() {
    let (url, kv, _) = serve_edge().await;
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    let versions = [
        catalog(&[("A", "Apple", 1), ("B", "Banana", 1)]),
        catalog(&[("A", "Apple 2", 1)]),
        catalog(&[("A", "Apple 3", 1), ("C", "Cherry", 1)]),
    ];
    // A long grace keeps everything.
    for c in &versions[..2] {
        publish_with_grace(&edge, &edge, c, |_, _| {}, u64::MAX)
            .await
            .unwrap();
    }
    let report = publish_with_grace(&edge, &edge, &versions[2], |_, _| {}, u64::MAX)
        .await
        .unwrap();
    assert!(report.gc.deferred && report.gc.deleted_versions.is_empty());
    assert!(kv.keys().iter().any(|k| k.starts_with("v1/")));

    // With no grace, the next publish (v4) deletes v1 and v2 and keeps v3, the one it replaced.
    let report = publish_with_grace(&edge, &edge, &versions[0], |_, _| {}, 0)
        .await
        .unwrap();
    assert_eq!(report.version, 4);
    assert_eq!(report.gc.deleted_versions, vec![2, 1]);
    let keys = kv.keys();
    assert!(
        keys.iter()
            .all(|k| !k.starts_with("v1/") && !k.starts_with("v2/")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"v3/product/C".to_string()) && keys.contains(&"v4/product/B".to_string()),
        "{keys:?}"
    );
    // Collecting again finds nothing more to do; `shopctl gc` keeps v4 (live) and deletes v3.
    assert_eq!(
        edge.collect_versions_below(3)
            .await
            .unwrap()
            .deleted_versions,
        Vec::<u64>::new()
    );
    let report = edge.collect_garbage(0).await.unwrap();
    assert_eq!(report.deleted_versions, vec![3]);
    assert!(
        kv.keys()
            .iter()
            .all(|k| k == "catalog/current" || k.starts_with("v4/")),
        "{:?}",
        kv.keys()
    );
    let level: serde_json::Value = reqwest::get(format!("{url}/api/products/B"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level["title"], "Banana", "the live version still serves");
}

/// A stand-in for the Cloudflare API's KV endpoints that checks what a real one checks.
mod fake_cloudflare {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post, put};
    use axum::{Json, Router};
    use base64::Engine;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    pub const TOKEN: &str = "cf-test-token";
    pub const ACCOUNT: &str = "acct-1";
    pub const NAMESPACE: &str = "ns-1";

    #[derive(Default)]
    pub struct Fake {
        pub values: Mutex<BTreeMap<String, Vec<u8>>>,
        /// Keys of each bulk write, in arrival order.
        pub writes: Mutex<Vec<Vec<String>>>,
        pub deletes: Mutex<Vec<String>>,
    }

    type Shared = Arc<Fake>;

    fn check(
        headers: &HeaderMap,
        account: &str,
        namespace: &str,
    ) -> Result<(), (StatusCode, Json<Value>)> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {TOKEN}")) {
            return Err((
                StatusCode::FORBIDDEN,
                Json(
                    json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]}),
                ),
            ));
        }
        if account != ACCOUNT || namespace != NAMESPACE {
            return Err((
                StatusCode::NOT_FOUND,
                Json(
                    json!({"success": false, "errors": [{"code": 10013, "message": "namespace not found"}]}),
                ),
            ));
        }
        Ok(())
    }

    async fn get_value(
        State(fake): State<Shared>,
        headers: HeaderMap,
        Path((a, n, key)): Path<(String, String, String)>,
    ) -> Result<Vec<u8>, (StatusCode, Json<Value>)> {
        check(&headers, &a, &n)?;
        fake.values.lock().unwrap().get(&key).cloned().ok_or((
            StatusCode::NOT_FOUND,
            Json(
                json!({"success": false, "errors": [{"code": 10009, "message": "key not found"}]}),
            ),
        ))
    }

    async fn bulk_put(
        State(fake): State<Shared>,
        headers: HeaderMap,
        Path((a, n)): Path<(String, String)>,
        body: Bytes,
    ) -> (StatusCode, Json<Value>) {
        if let Err(e) = check(&headers, &a, &n) {
            return e;
        }
        let bad = |m: &str| {
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"success": false, "errors": [{"code": 10001, "message": m}]})),
            )
        };
        let Ok(Value::Array(pairs)) = serde_json::from_slice::<Value>(&body) else {
            return bad("body must be a JSON array");
        };
        if pairs.len() > 10_000 || body.len() > 100 * 1024 * 1024 {
            return bad("too many pairs or bytes");
        }
        let mut decoded = Vec::new();
        for pair in &pairs {
            let (Some(key), Some(value)) = (pair["key"].as_str(), pair["value"].as_str()) else {
                return bad("key and value required");
            };
            if key.is_empty() || key.len() > 512 || pair["base64"] != true {
                return bad("bad key or not base64");
            }
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) else {
                return bad("value is not base64");
            };
            decoded.push((key.to_owned(), bytes));
        }
        fake.writes
            .lock()
            .unwrap()
            .push(decoded.iter().map(|(k, _)| k.clone()).collect());
        fake.values.lock().unwrap().extend(decoded);
        (
            StatusCode::OK,
            Json(
                json!({"success": true, "errors": [], "result": {"successful_key_count": pairs.len()}}),
            ),
        )
    }

    async fn bulk_delete(
        State(fake): State<Shared>,
        headers: HeaderMap,
        Path((a, n)): Path<(String, String)>,
        Json(keys): Json<Vec<String>>,
    ) -> (StatusCode, Json<Value>) {
        if let Err(e) = check(&headers, &a, &n) {
            return e;
        }
        let mut values = fake.values.lock().unwrap();
        for key in &keys {
            values.remove(key);
        }
        fake.deletes.lock().unwrap().extend(keys);
        (StatusCode::OK, Json(json!({"success": true, "errors": []})))
    }

    /// Serves the fake on 127.0.0.1; returns its API base URL.
    pub async fn serve() -> (String, Shared) {
        let fake = Shared::default();
        let ns = "/client/v4/accounts/{a}/storage/kv/namespaces/{n}";
        let app = Router::new()
            .route(&format!("{ns}/values/{{*key}}"), get(get_value))
            .route(&format!("{ns}/bulk"), put(bulk_put))
            .route(&format!("{ns}/bulk/delete"), post(bulk_delete))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/client/v4", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, fake)
    }
}

#[tokio::test]
async fn publishes_to_the_cloudflare_api_with_the_pointer_last() {
    use edge_core::codec::from_cbor;
    use edge_core::snapshot::{product_key, SnapshotPointer, POINTER_KEY};
    use origin::cloudflare::CloudflareKv;
    let (api, fake) = fake_cloudflare::serve().await;
    let (edge_url, _, _) = serve_edge().await;
    let edge = EdgeAdmin::new(&edge_url, TOKEN).unwrap();

    let wrong = CloudflareKv::new(
        &api,
        fake_cloudflare::ACCOUNT,
        fake_cloudflare::NAMESPACE,
        "nope",
    )
    .unwrap();
    let err = publish_with_grace(&wrong, &edge, &catalog(&[("A", "Apple", 1)]), |_, _| {}, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Refused { status: 403, .. }),
        "{err}"
    );
    assert!(fake.values.lock().unwrap().is_empty());

    let kv = CloudflareKv::new(
        &api,
        fake_cloudflare::ACCOUNT,
        fake_cloudflare::NAMESPACE,
        fake_cloudflare::TOKEN,
    )
    .unwrap();
    let v1 = catalog(&[("A", "Apple", 5), ("B", "Banana", 7)]);
    let report = publish_with_grace(&kv, &edge, &v1, |_, _| {}, 0)
        .await
        .unwrap();
    assert_eq!((report.version, report.stock.written), (1, 2));
    let writes = fake.writes.lock().unwrap().clone();
    assert_eq!(
        writes.last().unwrap(),
        &vec![POINTER_KEY.to_string()],
        "the pointer flips in a write of its own, last"
    );
    let values = fake.values.lock().unwrap().clone();
    let pointer: SnapshotPointer = from_cbor(&values[POINTER_KEY]).unwrap();
    assert_eq!(pointer.version, 1);
    let apple: edge_core::Product =
        from_cbor(&values[&product_key(1, &edge_core::Sku::parse("A").unwrap())]).unwrap();
    assert_eq!(
        apple.title, "Apple",
        "binary CBOR survives the base64 round trip"
    );

    let v2 = catalog(&[("A", "Apricot", 5)]);
    let changes = diff(&kv, &v2).await.unwrap();
    assert_eq!((changes.changed.len(), changes.removed.len()), (1, 1));
    publish_with_grace(&kv, &edge, &v2, |_, _| {}, 0)
        .await
        .unwrap();
    let report = kv.collect_garbage(0).await.unwrap();
    assert_eq!(report.deleted_versions, vec![1]);
    assert!(fake
        .values
        .lock()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with("v1/")));
    assert!(
        fake.deletes
            .lock()
            .unwrap()
            .last()
            .is_some_and(|k| k == "v1/manifest"),
        "the manifest is deleted last"
    );
}

#[test]
fn the_cloudflare_target_names_missing_settings() {
    for name in [
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_KV_NAMESPACE_ID",
    ] {
        std::env::remove_var(name);
    }
    let err = origin::cloudflare::CloudflareKv::from_env()
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("CLOUDFLARE_ACCOUNT_ID") && err.contains("CLOUDFLARE_KV_NAMESPACE_ID"),
        "{err}"
    );
}
