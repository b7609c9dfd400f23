//! The JSON API and admin routes on the native test host, driven with `oneshot` (no socket).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use edge_core::api::{admin_router, router};
use edge_core::checkout::LocalDesk;
use edge_core::codec::to_cbor;
use edge_core::memory::{memory_desk, ManualClock, MemoryKv, MemoryStock};
use edge_core::snapshot::{
    index_key, product_key, CatalogCache, Clock, SnapshotCatalog, POINTER_TTL_MS,
};
use edge_core::{Catalog, Shop, Sku};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";

/// The native host: KV, cache, clock and shards live as long as the host; each request gets its
/// own version-pinned catalog reader, as on the edge.
struct Host {
    kv: Arc<MemoryKv>,
    cache: Arc<CatalogCache>,
    clock: Arc<ManualClock>,
    stock: Arc<MemoryStock>,
    levels: Arc<edge_core::levels::LevelCache>,
    orders: Arc<LocalDesk>,
}

impl Host {
    fn shop(&self) -> Shop {
        let catalog = SnapshotCatalog::new(self.kv.clone(), self.cache.clone(), self.clock.clone());
        Shop {
            catalog: Arc::new(catalog),
            stock: self.stock.clone(),
            levels: self.levels.clone(),
            clock: self.clock.clone(),
            orders: self.orders.clone(),
        }
    }

    /// A router for one request (the edge builds one per request too).
    fn app(&self) -> Router {
        let shop = self.shop();
        router(shop.clone()).merge(admin_router(shop, self.kv.clone(), Some(TOKEN.into())))
    }
}

fn host() -> Host {
    let clock = Arc::new(ManualClock::default());
    let stock = Arc::new(MemoryStock::with_clock(clock.clone()));
    Host {
        kv: Arc::default(),
        cache: Arc::default(),
        orders: Arc::new(memory_desk(stock.clone(), clock.clone())),
        clock,
        stock,
        levels: Arc::default(),
    }
}

fn catalog_json() -> String {
    let entry = |sku: &str, title: &str, price: i64, stock: i64| {
        json!({"sku": sku, "title": title, "description": "d", "price_minor": price,
               "category": "kitchen", "image": "/images/kitchen.svg", "stock": stock})
    };
    json!({"currency": "USD", "products": [entry("MUG-1", "Blue Mug", 1200, 3), entry("POT-2", "Teapot", 3450, 0)]})
        .to_string()
}

async fn call(
    host: &Host,
    method: &str,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    call_app(&host.app(), method, uri, body, token).await
}

async fn call_app(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    call_with(app, method, uri, body, &headers).await
}

async fn call_with(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_owned()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

/// Publishes the catalog as a snapshot and seeds its stock, as the merchant CLI does.
async fn publish(host: &Host) -> Value {
    let catalog = Catalog::from_json(&catalog_json()).unwrap();
    host.kv
        .publish_snapshot(&catalog.products, host.clock.now_ms());
    let levels: serde_json::Map<String, Value> = catalog
        .levels
        .iter()
        .map(|(sku, n)| (sku.to_string(), json!(n)))
        .collect();
    let body = json!({"levels": levels, "mode": "seed"}).to_string();
    let (status, reply) = call(host, "POST", "/_admin/stock", Some(&body), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply
}

async fn published() -> Host {
    let host = host();
    assert_eq!(publish(&host).await, json!({"written": 2, "kept": 0}));
    host
}

#[tokio::test]
async fn products_are_listed_and_fetched_after_publish() {
    let host = published().await;
    let (status, body) = call(&host, "GET", "/api/products", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let titles: Vec<&str> = body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Blue Mug", "Teapot"]);

    let (status, body) = call(&host, "GET", "/api/products/POT-2", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["price"], json!({"minor": 3450, "currency": "USD"}));
}

fn checkout_body(lines: &[(&str, u32)], token: &str) -> String {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, qty)| json!({"sku": sku, "qty": qty}))
        .collect();
    json!({"lines": lines, "email": "shopper@example.com", "payment_token": token}).to_string()
}

/// `POST /api/checkout` with an `Idempotency-Key`.
async fn buy(app: &Router, key: &str, lines: &[(&str, u32)], token: &str) -> (StatusCode, Value) {
    call_with(
        app,
        "POST",
        "/api/checkout",
        Some(&checkout_body(lines, token)),
        &[("idempotency-key", key)],
    )
    .await
}

#[tokio::test]
async fn checkout_until_sold_out_then_conflict() {
    let host = published().await;
    for n in 0..3 {
        let (status, body) = buy(&host.app(), &format!("k{n}"), &[("MUG-1", 1)], "tok_visa").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "paid");
        assert_eq!(body["total"], json!({"minor": 1200, "currency": "USD"}));
    }
    let (status, body) = buy(&host.app(), "k3", &[("MUG-1", 1)], "tok_visa").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (&body["error"], &body["sku"], &body["available"]),
        (&json!("insufficient_stock"), &json!("MUG-1"), &json!(0))
    );
    let (_, body) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body, json!({"sku": "MUG-1", "available": 0}));
}

#[tokio::test]
async fn checkout_is_idempotent_by_key_and_orders_can_be_read_back() {
    let host = published().await;
    let (status, first) = buy(&host.app(), "same-key", &[("MUG-1", 2)], "tok_visa").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = buy(&host.app(), "same-key", &[("MUG-1", 2)], "tok_visa").await;
    assert_eq!(
        (status, &again["order_id"]),
        (StatusCode::CREATED, &first["order_id"])
    );
    let (_, level) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(level["available"], 1, "the retry sold nothing more");
    let (status, body) = buy(&host.app(), "same-key", &[("MUG-1", 1)], "tok_visa").await;
    assert_eq!(
        (status, &body["error"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("idempotency_key_reused")
        )
    );
    let id = first["order_id"].as_str().unwrap();
    let (status, order) = call(&host, "GET", &format!("/api/orders/{id}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["lines"][0]["title"], "Blue Mug");
    assert_eq!(order["email"], "shopper@example.com");
}

#[tokio::test]
async fn payment_failures_sell_nothing() {
    let host = published().await;
    let (status, body) = buy(&host.app(), "d", &[("MUG-1", 1)], "tok_declined").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::PAYMENT_REQUIRED, &json!("payment_declined"))
    );
    let (status, body) = buy(&host.app(), "t", &[("MUG-1", 1)], "tok_timeout").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::GATEWAY_TIMEOUT, &json!("payment_timeout"))
    );
    let (_, level) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(level["available"], 3);
}

#[tokio::test]
async fn malformed_input_is_400_and_unknown_sku_404() {
    let host = published().await;
    let checkout = |body: &str| {
        (
            "POST",
            "/api/checkout",
            Some(body.to_owned()),
            StatusCode::BAD_REQUEST,
        )
    };
    let cases = [
        checkout("{not json"),
        checkout(
            r#"{"lines":[{"sku":"MUG-1","qty":-1}],"email":"a@b.co","payment_token":"tok_visa"}"#,
        ),
        checkout(&checkout_body(&[("MUG-1", 0)], "tok_visa")),
        checkout(&checkout_body(&[("MUG-1", 1_000_000)], "tok_visa")),
        checkout(&checkout_body(&[], "tok_visa")),
        checkout(&checkout_body(&[("MUG-1", 1), ("MUG-1", 1)], "tok_visa")),
        checkout(&checkout_body(&[("NOPE", 1)], "tok_visa")),
        checkout(&checkout_body(&[("MUG-1", 1)], "")),
        checkout(
            r#"{"lines":[{"sku":"MUG-1","qty":1}],"email":"not-an-email","payment_token":"tok_visa"}"#,
        ),
        checkout(
            r#"{"lines":[{"sku":"MUG-1","qty":1,"price":0}],"email":"a@b.co","payment_token":"tok_visa"}"#,
        ),
        checkout(
            r#"{"lines":[{"sku":"bad sku","qty":1}],"email":"a@b.co","payment_token":"tok_visa"}"#,
        ),
        ("POST", "/api/checkout", None, StatusCode::BAD_REQUEST),
        ("GET", "/api/stock/bad%20sku", None, StatusCode::BAD_REQUEST),
        ("GET", "/api/stock/NOPE", None, StatusCode::NOT_FOUND),
        ("GET", "/api/orders/NOPE", None, StatusCode::NOT_FOUND),
        ("GET", "/api/products/NOPE", None, StatusCode::NOT_FOUND),
        ("GET", "/api/nothing/here", None, StatusCode::NOT_FOUND),
    ];
    for (method, uri, body, expected) in cases {
        let (status, json) = call(&host, method, uri, body.as_deref(), None).await;
        assert_eq!(status, expected, "{method} {uri} {body:?}: {json}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {uri}: no message in {json}"
        );
    }
    // Nothing above took stock.
    let (_, body) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 3);
}

#[tokio::test]
async fn corrupt_kv_value_is_503_not_a_crash() {
    let host = published().await;
    host.kv.put(
        &product_key(1, &Sku::parse("MUG-1").unwrap()),
        b"\xa1garbage".to_vec(),
    );
    let (status, body) = call(&host, "GET", "/api/products/MUG-1", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["message"].as_str().unwrap().contains("corrupt"),
        "{body}"
    );
    // A value of the wrong shape is treated the same way.
    host.kv.put(&index_key(1), to_cbor(&"not a list"));
    let (status, _) = call(&host, "GET", "/api/products", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn admin_requires_the_token() {
    let host = host();
    let body = r#"{"levels":{"MUG-1":5}}"#;
    for token in [
        None,
        Some("wrong"),
        Some("test-admin-token-but-longer"),
        Some(""),
    ] {
        let (status, _) = call(&host, "POST", "/_admin/stock", Some(body), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let (_, reply) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(
        reply["error"], "not_found",
        "a refused admin call must change nothing"
    );
}

#[tokio::test]
async fn republish_keeps_live_stock_and_admin_can_overwrite() {
    let host = published().await;
    assert_eq!(
        buy(&host.app(), "k", &[("MUG-1", 2)], "tok_visa").await.0,
        StatusCode::CREATED
    );
    assert_eq!(publish(&host).await, json!({"written": 0, "kept": 2}));
    let (_, body) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 1);

    let (status, body) = call(
        &host,
        "POST",
        "/_admin/stock",
        Some(r#"{"levels":{"MUG-1":100}}"#),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"written": 1, "kept": 0}))
    );
    let (_, body) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 100);
}

#[tokio::test]
async fn admin_is_absent_without_a_token() {
    let host = host();
    let app = admin_router(host.shop(), host.kv.clone(), None);
    let (status, body) = call_app(
        &app,
        "POST",
        "/_admin/stock",
        Some(r#"{"levels":{}}"#),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("ADMIN_TOKEN"));
}

#[tokio::test]
async fn concurrent_checkouts_never_oversell() {
    let host = published().await;
    call(
        &host,
        "POST",
        "/_admin/stock",
        Some(r#"{"levels":{"MUG-1":100}}"#),
        Some(TOKEN),
    )
    .await;
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let app = host.app();
            tokio::spawn(async move {
                buy(&app, &format!("c{n}"), &[("MUG-1", 1)], "tok_visa")
                    .await
                    .0
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 100);
    let (_, body) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 0);
    let (_, body) = call(&host, "GET", "/_admin/stock/MUG-1", None, Some(TOKEN)).await;
    assert_eq!(
        body["level"],
        json!({"available": 0, "held": 0, "sold": 100, "received": 100})
    );
    let (status, body) = call(
        &host,
        "POST",
        "/_admin/stock/MUG-1/restock",
        Some(r#"{"qty":5}"#),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, &body["level"]),
        (
            StatusCode::OK,
            &json!({"available": 5, "held": 0, "sold": 100, "received": 105})
        )
    );
    let (status, _) = call(
        &host,
        "POST",
        "/_admin/stock/MUG-1/restock",
        Some(r#"{"qty":0}"#),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // With an Idempotency-Key a restock counts once; the key cannot cover other units.
    let auth = format!("Bearer {TOKEN}");
    let keyed = |qty: u32, key: &'static str| {
        let app = host.app();
        let auth = auth.clone();
        async move {
            call_with(
                &app,
                "POST",
                "/_admin/stock/MUG-1/restock",
                Some(&format!(r#"{{"qty":{qty}}}"#)),
                &[("authorization", &auth), ("idempotency-key", key)],
            )
            .await
        }
    };
    let (status, first) = keyed(3, "delivery-42").await;
    assert_eq!(
        (status, first["repeated"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{first}"
    );
    assert_eq!(first["level"]["available"], 8);
    let (status, again) = keyed(3, "delivery-42").await;
    assert_eq!(
        (status, again["repeated"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{again}"
    );
    assert_eq!(again["level"], first["level"]);
    let (status, other) = keyed(4, "delivery-42").await;
    assert_eq!(
        (status, other["error"].as_str()),
        (StatusCode::CONFLICT, Some("restock_refused")),
        "{other}"
    );
    let (_, body) = call(&host, "GET", "/_admin/stock/MUG-1", None, Some(TOKEN)).await;
    assert_eq!(body["level"]["received"], 108);
}

#[tokio::test]
async fn a_new_snapshot_shows_after_the_pointer_ttl() {
    let host = published().await;
    let (_, body) = call(&host, "GET", "/api/products/MUG-1", None, None).await;
    assert_eq!(body["title"], "Blue Mug");
    let mut catalog = Catalog::from_json(&catalog_json()).unwrap();
    catalog.products[0].title = "Green Mug".into();
    host.kv
        .publish_snapshot(&catalog.products, host.clock.now_ms());
    let (_, body) = call(&host, "GET", "/api/products/MUG-1", None, None).await;
    assert_eq!(
        body["title"], "Blue Mug",
        "the cached pointer holds for its TTL"
    );
    host.clock.advance(POINTER_TTL_MS);
    let (_, body) = call(&host, "GET", "/api/products/MUG-1", None, None).await;
    assert_eq!(body["title"], "Green Mug");
}

#[tokio::test]
async fn admin_kv_writes_batches_and_reads_values_back() {
    use edge_core::snapshot::KvEntry;
    let host = host();
    let entries = vec![
        KvEntry {
            key: "v1/x".into(),
            value: vec![0xa6, 0xff, 0x00, 0x80],
        },
        KvEntry {
            key: "v1/y".into(),
            value: vec![],
        },
    ];
    let app = host.app();
    let req = |method: &str, uri: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from(body))
            .unwrap()
    };
    let res = app
        .clone()
        .oneshot(req("POST", "/_admin/kv", to_cbor(&entries)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .clone()
        .oneshot(req("GET", "/_admin/kv/v1/x", vec![]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes().as_ref(),
        [0xa6, 0xff, 0x00, 0x80],
        "bytes round-trip exactly"
    );
    let res = app
        .clone()
        .oneshot(req("GET", "/_admin/kv/v1/missing", vec![]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    for bad in [
        b"not cbor".to_vec(),
        to_cbor(&vec![KvEntry {
            key: String::new(),
            value: vec![],
        }]),
    ] {
        let res = app
            .clone()
            .oneshot(req("POST", "/_admin/kv", bad))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        host.kv.keys(),
        ["v1/x", "v1/y"],
        "rejected batches write nothing"
    );
}

#[tokio::test]
async fn browse_categories_filters_and_search() {
    let host = published().await;
    let (status, body) = call(&host, "GET", "/api/categories", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["categories"],
        json!([{"slug": "kitchen", "name": "kitchen", "products": 2}])
    );

    let (status, body) = call(
        &host,
        "GET",
        "/api/products?category=kitchen&sort=price-desc",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let skus: Vec<&str> = body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["POT-2", "MUG-1"]);
    assert_eq!(
        (body["total"].as_u64(), body["pages"].as_u64()),
        (Some(2), Some(1))
    );

    let (_, body) = call(
        &host,
        "GET",
        "/api/products?category=kitchen&price=0-25",
        None,
        None,
    )
    .await;
    assert_eq!(body["total"], 1, "only the 12.00 mug is under 25: {body}");

    let (_, body) = call(&host, "GET", "/api/products?q=teapot", None, None).await;
    assert_eq!(body["products"][0]["sku"], "POT-2");
    assert_eq!(body["total"], 1);

    for (uri, expected) in [
        ("/api/products?category=garden", StatusCode::NOT_FOUND),
        ("/api/products?price=cheap", StatusCode::BAD_REQUEST),
        ("/api/products?page=0", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = call(&host, "GET", uri, None, None).await;
        assert_eq!(status, expected, "{uri}: {body}");
    }
    let long = format!("/api/products?q={}", "a".repeat(201));
    assert_eq!(
        call(&host, "GET", &long, None, None).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn similar_items_come_from_the_index_without_itself_or_sold_out_ones() {
    let host = host();
    let entry = |sku: &str, title: &str, category: &str, stock: i64| {
        json!({"sku": sku, "title": title, "description": "d", "price_minor": 1500,
               "category": category, "image": "/i.svg", "stock": stock})
    };
    let catalog = json!({"currency": "USD", "products": [
        entry("MUG-1", "Stoneware mug for tea", "Kitchen", 5),
        entry("MUG-2", "Stoneware tea cup", "Kitchen", 5),
        entry("POT-3", "Stoneware teapot", "Kitchen", 0),
        entry("TEE-1", "Organic cotton tee", "Apparel", 5),
        entry("TEE-2", "Organic cotton shirt", "Apparel", 5),
        entry("HAT-3", "Organic cotton cap", "Apparel", 5),
    ]});
    let catalog = Catalog::from_json(&catalog.to_string()).unwrap();
    host.kv.publish_snapshot(&catalog.products, 0);
    let levels: serde_json::Map<String, Value> = catalog
        .levels
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    call(
        &host,
        "POST",
        "/_admin/stock",
        Some(&json!({"levels": levels}).to_string()),
        Some(TOKEN),
    )
    .await;

    let similar = |body: &Value| -> Vec<String> {
        body["similar"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = call(&host, "GET", "/api/products/MUG-1/similar?k=2", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let skus = similar(&body);
    assert_eq!(skus.len(), 2);
    assert!(
        skus.iter().all(|s| s == "MUG-2" || s == "POT-3"),
        "a mug's neighbours are kitchen things: {skus:?}"
    );
    // Once the shop has seen POT-3 sold out, it is no longer suggested.
    call(&host, "GET", "/api/stock/POT-3", None, None).await;
    let (_, body) = call(&host, "GET", "/api/products/MUG-1/similar?k=2", None, None).await;
    assert!(!similar(&body).contains(&"POT-3".to_string()), "{body}");
    assert!(!similar(&body).contains(&"MUG-1".to_string()));
    for (uri, expected) in [
        ("/api/products/MUG-1/similar?k=0", StatusCode::BAD_REQUEST),
        (
            "/api/products/MUG-1/similar?k=1000",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/products/NOPE/similar", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(
            call(&host, "GET", uri, None, None).await.0,
            expected,
            "{uri}"
        );
    }
    // A broken index degrades to no similar items, never an error.
    host.kv.put(
        &vectors::chunk_key(&edge_core::similar::index_prefix(1), 0),
        b"garbage".to_vec(),
    );
    let fresh = host_sharing_kv(&host);
    let (status, body) = call(&fresh, "GET", "/api/products/MUG-1/similar", None, None).await;
    assert_eq!(
        (status, similar(&body)),
        (StatusCode::OK, Vec::<String>::new())
    );
}

/// A second host (a fresh isolate: empty caches) over the same KV and shards.
fn host_sharing_kv(host: &Host) -> Host {
    Host {
        kv: host.kv.clone(),
        cache: Arc::default(),
        clock: host.clock.clone(),
        stock: host.stock.clone(),
        levels: Arc::default(),
        orders: host.orders.clone(),
    }
}

#[tokio::test]
async fn best_sellers_follow_the_published_trending_list_then_the_catalog() {
    let host = published().await;
    let (source, picks) = edge_core::api::recommended_products(&host.shop(), &[], &[], 2)
        .await
        .unwrap();
    let skus: Vec<&str> = picks.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(
        (source, skus),
        (
            edge_core::api::SuggestionSource::BestSellers,
            vec!["MUG-1", "POT-2"]
        )
    );
    // A snapshot whose trending list puts the teapot first (as `shopctl publish --trending-from` writes).
    let teapot = Sku::parse("POT-2").unwrap();
    host.kv.put(
        &edge_core::snapshot::trending_key(1),
        to_cbor(&vec![teapot]),
    );
    let fresh = host_sharing_kv(&host);
    let (_, picks) = edge_core::api::recommended_products(&fresh.shop(), &[], &[], 2)
        .await
        .unwrap();
    let skus: Vec<&str> = picks.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, vec!["POT-2", "MUG-1"]);
}

/// A six-product catalog in two categories, published, with stock.
async fn kitchen_and_apparel() -> Host {
    let host = host();
    let entry = |sku: &str, title: &str, category: &str| {
        json!({"sku": sku, "title": title, "description": "d", "price_minor": 1500,
               "category": category, "image": "/i.svg", "stock": 5})
    };
    let catalog = json!({"currency": "USD", "products": [
        entry("MUG-1", "Stoneware mug for tea", "Kitchen"),
        entry("MUG-2", "Stoneware tea cup", "Kitchen"),
        entry("POT-3", "Stoneware teapot", "Kitchen"),
        entry("TEE-1", "Organic cotton tee", "Apparel"),
        entry("TEE-2", "Organic cotton shirt", "Apparel"),
        entry("HAT-3", "Organic cotton cap", "Apparel"),
    ]});
    let catalog = Catalog::from_json(&catalog.to_string()).unwrap();
    host.kv.publish_snapshot(&catalog.products, 0);
    let levels: serde_json::Map<String, Value> = catalog
        .levels
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    call(
        &host,
        "POST",
        "/_admin/stock",
        Some(&json!({"levels": levels}).to_string()),
        Some(TOKEN),
    )
    .await;
    host
}

fn skus_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

fn together_list(pairs: &[(&str, &[&str])]) -> edge_core::store::Together {
    let sku = |s: &str| Sku::parse(s).unwrap();
    pairs
        .iter()
        .map(|(k, v)| (sku(k), v.iter().map(|s| sku(s)).collect()))
        .collect()
}

#[tokio::test]
async fn bought_together_lists_come_from_the_snapshot_without_sold_out_ones() {
    let host = kitchen_and_apparel().await;
    // Published without lists: none, not an error.
    let (status, body) = call(&host, "GET", "/api/products/MUG-1/together", None, None).await;
    assert_eq!(
        (status, skus_of(&body["together"])),
        (StatusCode::OK, Vec::<String>::new()),
        "{body}"
    );

    // The mug goes with a tee (most often), the teapot and itself (ignored).
    let lists = together_list(&[("MUG-1", &["TEE-1", "POT-3", "MUG-1"])]);
    host.kv
        .put(&edge_core::snapshot::together_key(1), to_cbor(&lists));
    let fresh = host_sharing_kv(&host);
    let (status, body) = call(&fresh, "GET", "/api/products/MUG-1/together", None, None).await;
    assert_eq!(
        (status, skus_of(&body["together"])),
        (StatusCode::OK, vec!["TEE-1".to_owned(), "POT-3".to_owned()])
    );
    let (_, body) = call(
        &fresh,
        "GET",
        "/api/products/MUG-1/together?k=1",
        None,
        None,
    )
    .await;
    assert_eq!(skus_of(&body["together"]), vec!["TEE-1".to_owned()]);
    // Sold out (as the level cache knows it): left out.
    call(
        &fresh,
        "POST",
        "/_admin/stock",
        Some(&json!({"levels": {"TEE-1": 0}}).to_string()),
        Some(TOKEN),
    )
    .await;
    call(&fresh, "GET", "/api/stock/TEE-1", None, None).await;
    let (_, body) = call(&fresh, "GET", "/api/products/MUG-1/together", None, None).await;
    assert_eq!(skus_of(&body["together"]), vec!["POT-3".to_owned()]);
    for (uri, expected) in [
        ("/api/products/MUG-1/together?k=0", StatusCode::BAD_REQUEST),
        ("/api/products/NOPE/together", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(
            call(&fresh, "GET", uri, None, None).await.0,
            expected,
            "{uri}"
        );
    }
    // A corrupt value degrades to no lists.
    host.kv.put(
        &edge_core::snapshot::together_key(1),
        b"\xff\x00garbage".to_vec(),
    );
    let fresh = host_sharing_kv(&host);
    let (status, body) = call(&fresh, "GET", "/api/products/MUG-1/together", None, None).await;
    assert_eq!(
        (status, skus_of(&body["together"])),
        (StatusCode::OK, Vec::<String>::new()),
        "{body}"
    );
}

#[tokio::test]
async fn the_co_purchase_arm_recommends_what_was_bought_with_the_shoppers_products() {
    use edge_core::api::{recommended_products_in, SuggestionSource};
    use edge_core::behaviour::Arm;
    let host = kitchen_and_apparel().await;
    let mug = Sku::parse("MUG-1").unwrap();
    let picks = |arm| {
        let shop = host_sharing_kv(&host).shop();
        let mug = &mug;
        async move {
            let (source, picks) = recommended_products_in(&shop, &[(mug, 1.0)], &[mug], 2, arm)
                .await
                .unwrap();
            (
                source,
                picks.iter().map(|p| p.sku.to_string()).collect::<Vec<_>>(),
            )
        }
    };
    // Without lists the arm still personalizes: best-sellers of the shopper's category first.
    let (source, skus) = picks(Arm::CoPurchase).await;
    assert_eq!(
        (source, skus),
        (
            SuggestionSource::Personal,
            vec!["MUG-2".to_owned(), "POT-3".to_owned()]
        )
    );
    // With lists, what was bought with the mug comes first even from another category, in the
    // order of the list.
    let lists = together_list(&[("MUG-1", &["HAT-3", "TEE-2"])]);
    host.kv
        .put(&edge_core::snapshot::together_key(1), to_cbor(&lists));
    let (_, skus) = picks(Arm::CoPurchase).await;
    assert_eq!(skus, vec!["HAT-3".to_owned(), "TEE-2".to_owned()]);
    // The vector arm ignores the lists: the mug's neighbours are kitchen things.
    let (_, skus) = picks(Arm::Vector).await;
    assert!(
        skus.iter().all(|s| s == "MUG-2" || s == "POT-3"),
        "{skus:?}"
    );
}

#[tokio::test]
async fn a_listing_is_reordered_by_the_shoppers_taste_and_unchanged_without_one() {
    use edge_core::api::personal_order;
    let host = kitchen_and_apparel().await;
    let shop = host.shop();
    let sku = |s: &str| Sku::parse(s).unwrap();
    let listing: Vec<Sku> = ["MUG-1", "MUG-2", "POT-3", "TEE-1", "HAT-3", "GONE-1"]
        .map(sku)
        .to_vec();
    assert_eq!(
        personal_order(&shop, &[], &listing).await.unwrap(),
        listing,
        "no history: the merchant's order"
    );

    let (tee, shirt) = (sku("TEE-1"), sku("TEE-2"));
    let ranked = personal_order(&shop, &[(&tee, 1.0), (&shirt, 2.0)], &listing)
        .await
        .unwrap();
    let names: Vec<&str> = ranked.iter().map(Sku::as_str).collect();
    assert_eq!(
        &names[..2]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        &["HAT-3", "TEE-1"].into()
    );
    assert_eq!(
        &names[2..5]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        &["MUG-1", "MUG-2", "POT-3"].into()
    );
    assert_eq!(
        names[5], "GONE-1",
        "an unknown SKU keeps its place at the end"
    );
    assert_eq!(ranked.len(), listing.len());
}

#[tokio::test]
async fn personal_lists_keep_places_for_best_sellers_and_fall_back_without_an_index() {
    use edge_core::api::{recommended_products_in, SuggestionSource};
    use edge_core::behaviour::Arm;
    let host = kitchen_and_apparel().await;
    let tee = Sku::parse("TEE-1").unwrap();
    let skus = |picks: &[edge_core::ProductSummary]| {
        picks.iter().map(|p| p.sku.to_string()).collect::<Vec<_>>()
    };
    // Trending: the teapot. A shopper into apparel gets apparel, and the teapot last.
    host.kv.put(
        &edge_core::snapshot::trending_key(1),
        to_cbor(&vec![Sku::parse("POT-3").unwrap()]),
    );
    let shop = host_sharing_kv(&host).shop();
    let (source, picks) = recommended_products_in(&shop, &[(&tee, 1.0)], &[&tee], 4, Arm::Vector)
        .await
        .unwrap();
    let picks = skus(&picks);
    assert_eq!(source, SuggestionSource::Personal);
    assert_eq!(picks.len(), 4);
    assert_eq!(
        picks[3], "POT-3",
        "the last place is a best-seller's: {picks:?}"
    );
    assert!(
        picks[..2].iter().all(|s| s == "TEE-2" || s == "HAT-3"),
        "{picks:?}"
    );
    // Without an index the vector arm has nothing personal: best-sellers, trending first.
    host.kv.put(
        &vectors::manifest_key(&edge_core::similar::index_prefix(1)),
        b"garbage".to_vec(),
    );
    let shop = host_sharing_kv(&host).shop();
    let (source, picks) = recommended_products_in(&shop, &[(&tee, 1.0)], &[&tee], 3, Arm::Vector)
        .await
        .unwrap();
    assert_eq!(
        (source, skus(&picks)),
        (
            SuggestionSource::BestSellers,
            vec!["POT-3".into(), "MUG-1".into(), "MUG-2".into()]
        )
    );
}

#[tokio::test]
async fn product_places_follow_the_live_version() {
    let host = published().await;
    let shop = host.shop();
    let places = shop.catalog.positions().await.unwrap();
    let products = shop.catalog.products().await.unwrap();
    assert_eq!(places.len(), products.len());
    assert!(products
        .iter()
        .enumerate()
        .all(|(i, p)| places[&p.sku] == i as u32));
    // A new version in the other order: the places follow once the pointer is re-read.
    let mut catalog = Catalog::from_json(&catalog_json()).unwrap();
    catalog.products.reverse();
    host.kv
        .publish_snapshot(&catalog.products, host.clock.now_ms());
    host.clock.advance(POINTER_TTL_MS);
    let shop = host.shop();
    let places = shop.catalog.positions().await.unwrap();
    let last = catalog.products.len() as u32 - 1;
    assert_eq!(places[&catalog.products[0].sku], 0);
    assert_eq!(places[&catalog.products[last as usize].sku], last);
}

/// An order desk whose far side always fails with the given error (as the Spin host's origin can).
struct FailingDesk(edge_core::StoreError);

impl edge_core::checkout::OrderDesk for FailingDesk {
    fn checkout_priced(
        &self,
        _: edge_core::stock::OrderId,
        _: edge_core::order::CheckoutRequest,
        _: edge_core::checkout::PricedOrder,
    ) -> edge_core::store::BoxFuture<
        '_,
        Result<edge_core::checkout::CheckoutOutcome, edge_core::checkout::CheckoutError>,
    > {
        let e = self.0.clone();
        Box::pin(async move { Err(edge_core::checkout::CheckoutError::Store(e)) })
    }

    fn order<'a>(
        &'a self,
        _: &'a edge_core::stock::OrderId,
    ) -> edge_core::store::BoxFuture<
        'a,
        Result<Option<edge_core::order::Order>, edge_core::StoreError>,
    > {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
}

#[tokio::test]
async fn a_refusing_coordinator_is_502_and_an_unreachable_one_503() {
    use edge_core::StoreError;
    let host = published().await;
    let cases = [
        (
            StoreError::Protocol(
                "/coordinator/checkouts: the origin answered 401: bad token".into(),
            ),
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
        ),
        (
            StoreError::Unavailable("/coordinator/checkouts: connection refused".into()),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
    ];
    for (error, status, code) in cases {
        let mut shop = host.shop();
        shop.orders = Arc::new(FailingDesk(error.clone()));
        let app = router(shop);
        let (got, body) = buy(&app, "k-failing-desk", &[("MUG-1", 1)], "tok_visa").await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{error}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("/coordinator/checkouts")),
            "the message names the call: {body}"
        );
        let (got, body) =
            call_app(&app, "GET", "/api/orders/ord_0123456789abcdef", None, None).await;
        assert_eq!(got, status, "order read with {error}: {body}");
    }
    // Nothing was sold by the failed checkouts.
    let (_, body) = call(&host, "GET", "/api/stock/MUG-1", None, None).await;
    assert_eq!(body["available"], 3);
}
