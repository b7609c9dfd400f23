//! The orders system of record: intake by id (idempotent), the `/internal/orders` routes, the
//! checkout log, and the origin's storefront placing orders into it (and recovering them).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use edge_core::checkout::{CheckoutLog, CheckoutOutcome, CheckoutRecord, OrderSink};
use edge_core::memory::ManualClock;
use edge_core::order::{CheckoutRequest, Order, OrderLine, OrderStatus, StatusChange};
use edge_core::snapshot::Clock;
use edge_core::stock::{Line, OrderId};
use edge_core::store::StockCoordinator;
use edge_core::{Money, Sku};
use http_body_util::BodyExt;
use origin::desk::{RecoveryReport, SystemClock, RESUME_AFTER_MS};
use origin::orders::{routes, OrderBook, Unfinished};
use origin::server::{Origin, OriginConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "intake-token";

fn order(id: &str, qty: u32) -> Order {
    let line = OrderLine {
        sku: Sku::parse("MUG-1").unwrap(),
        title: "Mug".into(),
        qty,
        unit_price: Money::new(1200, "USD"),
    };
    Order {
        id: OrderId::parse(id).unwrap(),
        email: "shopper@example.com".into(),
        lines: vec![line],
        total: Money::new(1200 * u64::from(qty), "USD"),
        status: OrderStatus::Paid,
        charge_id: format!("ch_{id}"),
        placed_at_ms: 1_000,
        history: vec![
            StatusChange {
                status: OrderStatus::Placed,
                at_ms: 900,
            },
            StatusChange {
                status: OrderStatus::Paid,
                at_ms: 1_000,
            },
        ],
        pricing: None,
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<String>,
    idempotency_key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body)
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn intake_stores_each_order_once_and_answers_the_documented_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let book = OrderBook::open(dir.path(), Arc::new(ManualClock::default())).unwrap();
    let app = routes(book.clone(), Some(TOKEN.into()));
    let o1 = serde_json::to_string(&order("o1", 2)).unwrap();

    let (status, body) = call(
        &app,
        "POST",
        "/internal/orders",
        Some(TOKEN),
        Some(o1.clone()),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::CREATED, json!({"stored": true}))
    );
    let (status, body) = call(
        &app,
        "POST",
        "/internal/orders",
        Some(TOKEN),
        Some(o1.clone()),
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"stored": false})));

    let (status, body) = call(&app, "GET", "/internal/orders/o1", Some(TOKEN), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<Order>(body).unwrap(),
        order("o1", 2)
    );
    let (status, body) = call(
        &app,
        "GET",
        "/internal/orders/nope",
        Some(TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Refusals: no or wrong token, malformed JSON, a total that is not the lines' sum.
    let (status, body) = call(
        &app,
        "POST",
        "/internal/orders",
        None,
        Some(o1.clone()),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _) = call(
        &app,
        "GET",
        "/internal/orders/o1",
        Some("wrong"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(
        &app,
        "POST",
        "/internal/orders",
        Some(TOKEN),
        Some("{".into()),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    assert!(body["message"].is_string());
    let mut cheap = order("o2", 2);
    cheap.total = Money::new(1, "USD");
    let (status, _) = call(
        &app,
        "POST",
        "/internal/orders",
        Some(TOKEN),
        Some(serde_json::to_string(&cheap).unwrap()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut bad_id = serde_json::to_value(order("o3", 1)).unwrap();
    bad_id["id"] = json!("has space");
    let (status, _) = call(
        &app,
        "POST",
        "/internal/orders",
        Some(TOKEN),
        Some(bad_id.to_string()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The row's columns and the status history are stored next to the JSON body.
    let (email, status, total, currency, history): (String, String, i64, String, i64) = book.with_connection(|c| {
        c.query_row(
            "SELECT email, status, total_minor, currency, \
             (SELECT COUNT(*) FROM order_status_history WHERE order_id = id) FROM orders WHERE id = 'o1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
    });
    assert_eq!(
        (
            email.as_str(),
            status.as_str(),
            total,
            currency.as_str(),
            history
        ),
        ("shopper@example.com", "paid", 2400, "USD", 2)
    );
    assert_eq!(
        book.history(&OrderId::parse("o1").unwrap()).await.unwrap(),
        vec![("placed".to_string(), 900), ("paid".to_string(), 1_000)]
    );
    let count: i64 = book.with_connection(|c| {
        c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(count, 1, "refused and repeated orders stored nothing");
}

#[tokio::test]
async fn listing_pages_through_ids_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let book = OrderBook::open(dir.path(), Arc::new(ManualClock::default())).unwrap();
    for i in 0..5 {
        assert!(book.store(&order(&format!("o{i}"), 1)).await.unwrap());
    }
    let app = routes(book, Some(TOKEN.into()));
    let (status, page) = call(
        &app,
        "GET",
        "/internal/orders?limit=2",
        Some(TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, page.clone()),
        (StatusCode::OK, json!({"ids": ["o0", "o1"], "next": "o1"}))
    );
    let (_, page) = call(
        &app,
        "GET",
        "/internal/orders?limit=2&after=o3",
        Some(TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(page, json!({"ids": ["o4"], "next": null}));
    for bad in ["limit=0", "limit=1001", "limit=x", "bogus=1"] {
        let (status, _) = call(
            &app,
            "GET",
            &format!("/internal/orders?{bad}"),
            Some(TOKEN),
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Without a token the intake does not exist.
    let closed = routes(
        OrderBook::open(dir.path(), Arc::new(ManualClock::default())).unwrap(),
        None,
    );
    let (status, _) = call(&closed, "GET", "/internal/orders/o1", Some(""), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn record(
    id: &str,
    started_at_ms: u64,
    outcome: Option<CheckoutOutcome>,
    sku: &str,
) -> CheckoutRecord {
    let line = OrderLine {
        sku: Sku::parse(sku).unwrap(),
        title: sku.into(),
        qty: 1,
        unit_price: Money::new(1400, "USD"),
    };
    CheckoutRecord {
        order_id: OrderId::parse(id).unwrap(),
        fingerprint: 7,
        request: CheckoutRequest {
            lines: vec![Line {
                sku: line.sku.clone(),
                qty: 1,
            }],
            email: "a@b.co".into(),
            payment_token: "tok_visa".into(),
            codes: Vec::new(),
        },
        lines: vec![line],
        total: Money::new(1400, "USD"),
        started_at_ms,
        charging: false,
        outcome,
        delivered: false,
        pricing: None,
        usage: Vec::new(),
    }
}

#[tokio::test]
async fn the_checkout_log_round_trips_and_finds_unfinished_checkouts() {
    let dir = tempfile::tempdir().unwrap();
    let book = OrderBook::open(dir.path(), Arc::new(ManualClock::default())).unwrap();
    let open = record("open1", 100, None, "A");
    let placed = record(
        "placed1",
        200,
        Some(CheckoutOutcome::Placed(order("placed1", 1))),
        "A",
    );
    let failed = record("failed1", 300, Some(CheckoutOutcome::PaymentTimeout), "A");
    let young = record("young1", 5_000, None, "A");
    for r in [&open, &placed, &failed, &young] {
        book.put(r).await.unwrap();
    }
    assert_eq!(book.get(&open.order_id).await.unwrap(), Some(open.clone()));
    assert_eq!(
        book.get(&OrderId::parse("none").unwrap()).await.unwrap(),
        None
    );
    assert_eq!(
        book.unfinished(1_000, 10).await.unwrap(),
        vec![
            (open.order_id.clone(), Unfinished::Open),
            (placed.order_id.clone(), Unfinished::Undelivered)
        ]
    );
    let mut delivered = placed.clone();
    delivered.delivered = true;
    book.put(&delivered).await.unwrap();
    assert_eq!(
        book.unfinished(1_000, 10).await.unwrap(),
        vec![(open.order_id.clone(), Unfinished::Open)]
    );
    assert_eq!(book.unfinished(1_000, 0).await.unwrap(), vec![]);
    // A corrupt record is reported as corrupt, not as missing and not as a panic.
    rusqlite::Connection::open(origin::db::orders_file(dir.path()))
        .unwrap()
        .execute(
            "UPDATE checkout_records SET record = x'ff00' WHERE order_id = 'open1'",
            [],
        )
        .unwrap();
    assert!(matches!(
        book.get(&open.order_id).await,
        Err(edge_core::StoreError::Corrupt { .. })
    ));
    // The sink is the same intake: idempotent by id.
    book.deliver(&order("s1", 1)).await.unwrap();
    book.deliver(&order("s1", 1)).await.unwrap();
    assert!(book
        .order(&OrderId::parse("s1").unwrap())
        .await
        .unwrap()
        .is_some());
}

const CATALOG: &str = r#"{"currency": "USD", "products": [
  {"sku": "KIT-001", "title": "Mug", "price_minor": 1400, "category": "kitchen", "image": "/i.svg", "stock": 5},
  {"sku": "KIT-002", "title": "Pan", "price_minor": 4900, "category": "kitchen", "image": "/i.svg", "stock": 1}
]}"#;

async fn origin_with_catalog(dir: &tempfile::TempDir) -> Arc<Origin> {
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, CATALOG).unwrap();
    Arc::new(
        Origin::open(OriginConfig {
            data_dir: dir.path().join("data"),
            catalog: Some(catalog),
            token: Some(TOKEN.into()),
        })
        .await
        .unwrap(),
    )
}

#[tokio::test]
async fn storefront_checkouts_land_in_the_orders_table_and_restarts_keep_stock() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin_with_catalog(&dir).await;
    assert_eq!((origin.seeded.written, origin.seeded.kept), (2, 0));
    let ignore = std::fs::read_to_string(dir.path().join("data/.gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "*"),
        "the data dir ignores itself: {ignore}"
    );
    let app = origin.router();
    let body = json!({"lines": [{"sku": "KIT-001", "qty": 2}, {"sku": "KIT-002", "qty": 1}],
                      "email": "a@b.co", "payment_token": "tok_visa"})
    .to_string();
    let (status, placed) = call(
        &app,
        "POST",
        "/api/checkout",
        None,
        Some(body.clone()),
        Some("key-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let id = placed["order_id"].as_str().unwrap().to_owned();
    assert_eq!(placed["total"]["minor"], 2 * 1400 + 4900);
    let (status, again) = call(
        &app,
        "POST",
        "/api/checkout",
        None,
        Some(body.clone()),
        Some("key-1"),
    )
    .await;
    assert_eq!(
        (status, &again["order_id"]),
        (StatusCode::CREATED, &placed["order_id"])
    );
    let (status, stored) = call(
        &app,
        "GET",
        &format!("/internal/orders/{id}"),
        Some(TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stored, placed["order"],
        "the orders table holds the acknowledged order"
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/checkout",
        None,
        Some(body),
        Some("key-2"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "only one pan");
    let (status, level) = call(
        &app,
        "GET",
        "/_admin/stock/KIT-001",
        Some(TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        level["level"],
        json!({"available": 3, "held": 0, "sold": 2, "received": 5})
    );
    assert_eq!(
        call(&app, "GET", "/healthz", None, None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(origin.desk.turns().busy(), 0, "order turns are given back");
    drop(app);
    drop(origin);

    // A restart with the same catalog keeps live stock and finds the order again.
    let origin = origin_with_catalog(&dir).await;
    assert_eq!((origin.seeded.written, origin.seeded.kept), (0, 2));
    let app = origin.router();
    let (_, level) = call(
        &app,
        "GET",
        "/_admin/stock/KIT-001",
        Some(TOKEN),
        None,
        None,
    )
    .await;
    assert_eq!(level["level"]["sold"], 2);
    let (status, shown) = call(&app, "GET", &format!("/api/orders/{id}"), None, None, None).await;
    assert_eq!((status, &shown["id"]), (StatusCode::OK, &json!(id)));
}

#[tokio::test]
async fn recovery_finishes_open_checkouts_and_delivers_placed_orders() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin_with_catalog(&dir).await;
    let long_ago = SystemClock.now_ms() - RESUME_AFTER_MS - 1_000;
    // A crash after the record was written and the hold placed, before the payment.
    let open = record("crashed1", long_ago, None, "KIT-001");
    origin.book.put(&open).await.unwrap();
    let sku = Sku::parse("KIT-001").unwrap();
    origin
        .stock
        .on_shard(
            edge_core::SkuShard::of(&sku),
            edge_core::stock::ShardRequest::Reserve {
                order: open.order_id.clone(),
                lines: vec![Line {
                    sku: sku.clone(),
                    qty: 1,
                }],
                ttl_ms: 600_000,
            },
        )
        .await
        .unwrap();
    // A crash after the order was placed, before it reached the orders table.
    let placed = record(
        "crashed2",
        long_ago,
        Some(CheckoutOutcome::Placed(order("crashed2", 1))),
        "KIT-001",
    );
    origin.book.put(&placed).await.unwrap();
    // A checkout still running (young) is left alone.
    let young = record("running1", SystemClock.now_ms(), None, "KIT-001");
    origin.book.put(&young).await.unwrap();

    let report = origin.desk.recover().await.unwrap();
    assert_eq!(
        report,
        RecoveryReport {
            resumed: 1,
            delivered: 2,
            failed: 0
        }
    );
    for id in ["crashed1", "crashed2"] {
        assert!(
            origin
                .book
                .order(&OrderId::parse(id).unwrap())
                .await
                .unwrap()
                .is_some(),
            "{id}"
        );
    }
    assert!(origin.book.order(&young.order_id).await.unwrap().is_none());
    let level = origin.stock.level(&sku).await.unwrap().unwrap();
    assert_eq!(
        (level.available, level.held, level.sold),
        (4, 0, 1),
        "the resumed order sold its unit"
    );
    assert_eq!(
        origin.desk.recover().await.unwrap(),
        RecoveryReport::default(),
        "nothing left to do"
    );
}

#[tokio::test]
async fn startup_errors_are_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"currency": "USD", "products": [{"sku": "has space"}]}"#,
    )
    .unwrap();
    let config = |data_dir, catalog| OriginConfig {
        data_dir,
        catalog,
        token: None,
    };
    let err = Origin::open(config(dir.path().join("d1"), Some(bad)))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad.json"), "{err}");
    let err = Origin::open(config(
        dir.path().join("d2"),
        Some(dir.path().join("missing.json")),
    ))
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("missing.json"), "{err}");
    // A data dir under a file cannot be created.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = Origin::open(config(file.join("data"), None))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("data dir"), "{err}");
}
