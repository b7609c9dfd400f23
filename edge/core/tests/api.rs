//! The JSON API and admin routes on the native test host, driven with `oneshot` (no socket).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use edge_core::api::{admin_router, router};
use edge_core::codec::to_cbor;
use edge_core::memory::{MemoryCatalog, MemoryStock};
use edge_core::product::kv_key;
use edge_core::{Shop, Sku};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";

struct Host {
    app: Router,
    catalog: Arc<MemoryCatalog>,
}

fn host() -> Host {
    let catalog = Arc::new(MemoryCatalog::default());
    let shop = Shop { catalog: catalog.clone(), stock: Arc::new(MemoryStock::in_memory()) };
    let app = router(shop.clone()).merge(admin_router(shop, Some(TOKEN.into())));
    Host { app, catalog }
}

fn catalog_json() -> String {
    let entry = |sku: &str, title: &str, price: i64, stock: i64| {
        json!({"sku": sku, "title": title, "description": "d", "price_minor": price,
               "category": "kitchen", "image": "/images/kitchen.svg", "stock": stock})
    };
    json!({"currency": "USD", "products": [entry("MUG-1", "Blue Mug", 1200, 3), entry("POT-2", "Teapot", 3450, 0)]})
        .to_string()
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<&str>, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

async fn published() -> Host {
    let host = host();
    let (status, body) = call(&host.app, "POST", "/_admin/publish", Some(&catalog_json()), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"products": 2, "stock_written": 2, "stock_kept": 0}));
    host
}

#[tokio::test]
async fn products_are_listed_and_fetched_after_publish() {
    let host = published().await;
    let (status, body) = call(&host.app, "GET", "/api/products", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let titles: Vec<&str> = body["products"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Blue Mug", "Teapot"]);

    let (status, body) = call(&host.app, "GET", "/api/products/POT-2", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["price"], json!({"minor": 3450, "currency": "USD"}));
}

#[tokio::test]
async fn reserve_until_sold_out_then_conflict() {
    let host = published().await;
    for expected in [2, 1, 0] {
        let (status, body) = call(&host.app, "POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":1}"#), None).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"remaining": expected})));
    }
    let (status, body) = call(&host.app, "POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":1}"#), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "insufficient_stock");
    assert_eq!(body["available"], 0);
    let (_, body) = call(&host.app, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body, json!({"sku": "MUG-1", "available": 0}));
}

#[tokio::test]
async fn malformed_input_is_400_and_unknown_sku_404() {
    let host = published().await;
    let cases = [
        ("POST", "/api/stock/MUG-1/reserve", Some("{not json"), StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":-1}"#), StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":0}"#), StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":1000000}"#), StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":1,"price":0}"#), StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/MUG-1/reserve", None, StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/bad%20sku/reserve", Some(r#"{"qty":1}"#), StatusCode::BAD_REQUEST),
        ("POST", "/api/stock/NOPE/reserve", Some(r#"{"qty":1}"#), StatusCode::NOT_FOUND),
        ("GET", "/api/stock/NOPE", None, StatusCode::NOT_FOUND),
        ("GET", "/api/products/NOPE", None, StatusCode::NOT_FOUND),
        ("GET", "/api/nothing/here", None, StatusCode::NOT_FOUND),
    ];
    for (method, uri, body, expected) in cases {
        let (status, json) = call(&host.app, method, uri, body, None).await;
        assert_eq!(status, expected, "{method} {uri} {body:?}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {uri}: no message in {json}");
    }
    // Nothing above took stock.
    let (_, body) = call(&host.app, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 3);
}

#[tokio::test]
async fn corrupt_kv_value_is_503_not_a_crash() {
    let host = published().await;
    host.catalog.put_raw(&kv_key::product(&Sku::parse("MUG-1").unwrap()), b"\xa1garbage".to_vec());
    let (status, body) = call(&host.app, "GET", "/api/products/MUG-1", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["message"].as_str().unwrap().contains("corrupt"), "{body}");
    // A value of the wrong shape is treated the same way.
    host.catalog.put_raw(kv_key::PRODUCT_INDEX, to_cbor(&"not a list"));
    let (status, _) = call(&host.app, "GET", "/api/products", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn admin_requires_the_token_and_rejects_invalid_catalogs_whole() {
    let host = host();
    for token in [None, Some("wrong"), Some("test-admin-token-but-longer")] {
        let (status, _) = call(&host.app, "POST", "/_admin/publish", Some(&catalog_json()), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let bad = catalog_json().replace("\"MUG-1\"", "\"POT-2\"");
    let (status, body) = call(&host.app, "POST", "/_admin/publish", Some(&bad), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["problems"], json!(["products[1].sku: duplicate SKU POT-2"]));
    let (_, body) = call(&host.app, "GET", "/api/products", None, None).await;
    assert_eq!(body["products"], json!([]), "an invalid catalog must publish nothing");
}

#[tokio::test]
async fn republish_keeps_live_stock_and_admin_can_overwrite() {
    let host = published().await;
    call(&host.app, "POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":2}"#), None).await;
    let (_, body) = call(&host.app, "POST", "/_admin/publish", Some(&catalog_json()), Some(TOKEN)).await;
    assert_eq!(body, json!({"products": 2, "stock_written": 0, "stock_kept": 2}));
    let (_, body) = call(&host.app, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 1);

    let (status, body) = call(&host.app, "POST", "/_admin/stock", Some(r#"{"levels":{"MUG-1":100}}"#), Some(TOKEN)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"written": 1})));
    let (_, body) = call(&host.app, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 100);
}

#[tokio::test]
async fn admin_is_absent_without_a_token() {
    let catalog = Arc::new(MemoryCatalog::default());
    let shop = Shop { catalog, stock: Arc::new(MemoryStock::in_memory()) };
    let app = admin_router(shop, None);
    let (status, body) = call(&app, "POST", "/_admin/publish", Some(&catalog_json()), Some("")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("ADMIN_TOKEN"));
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    let host = published().await;
    call(&host.app, "POST", "/_admin/stock", Some(r#"{"levels":{"MUG-1":100}}"#), Some(TOKEN)).await;
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let app = host.app.clone();
            tokio::spawn(async move { call(&app, "POST", "/api/stock/MUG-1/reserve", Some(r#"{"qty":1}"#), None).await.0 })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 100);
    let (_, body) = call(&host.app, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 0);
}
