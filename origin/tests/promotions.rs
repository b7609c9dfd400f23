//! Promotions in the merchant's catalog file: `shopctl validate` refuses bad rules with the
//! line, promotion and field at fault, and a publish carries them to the edge, which prices
//! checkouts with them.

use edge_core::api::{admin_router, place, router};
use edge_core::checkout::CheckoutOutcome;
use edge_core::memory::{memory_desk, ManualClock, MemoryKv, MemoryStock};
use edge_core::order::CheckoutRequest;
use edge_core::snapshot::{CatalogCache, SnapshotCatalog};
use edge_core::stock::Line;
use edge_core::{Catalog, Shop, Sku};
use origin::publish::{publish, EdgeAdmin};
use std::process::Command;
use std::sync::Arc;

const TOKEN: &str = "promotions-test-token";

fn catalog_text(promotions: &str) -> String {
    format!(
        r#"{{"currency": "USD",
"shipping": {{"flat_minor": 500, "free_over_minor": 5000}},
"products": [
  {{"sku": "MUG-1", "title": "Mug", "price_minor": 1200, "category": "Kitchen", "image": "/i.svg", "stock": 10}},
  {{"sku": "BOOK-1", "title": "Book", "price_minor": 2000, "category": "Books", "image": "/i.svg", "stock": 10}}
],
"promotions": [
{promotions}
]}}"#
    )
}

const GOOD: &str = r#"  {"id": "WELCOME", "title": "10% off your order", "code": "WELCOME10", "benefit": {"type": "percent_off", "percent": 10}, "per_shopper_limit": 1},
  {"id": "KITCHEN", "title": "Kitchen sale", "benefit": {"type": "amount_off", "minor": 200}, "applies_to": {"categories": ["kitchen"]}}"#;

#[test]
fn shopctl_validate_names_the_line_promotion_and_field_of_bad_rules() {
    let dir = std::env::temp_dir().join(format!("promotions-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    let rules = r#"  {"id": "WELCOME", "title": "10% off", "code": "welcome", "benefit": {"type": "percent_off", "percent": 10}},
  {"id": "TIERS", "title": "Spend more", "benefit": {"type": "tiered_spend", "tiers": []}, "starts_at_ms": 5, "ends_at_ms": 1}"#;
    std::fs::write(&bad, catalog_text(rules)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shopctl"))
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 8: promotions[0] (WELCOME).code: \"welcome\" must be 3 to 32 of upper-case A-Z, 0-9, - and _",
        "line 9: promotions[1] (TIERS).benefit.tiers: needs 1 to 10 tiers",
        "line 9: promotions[1] (TIERS).ends_at_ms: 1 is not after starts_at_ms 5",
    ] {
        assert!(stderr.contains(expected), "{expected} missing from:\n{stderr}");
    }
    let good = dir.join("good.json");
    std::fs::write(&good, catalog_text(GOOD)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shopctl"))
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_publish_carries_the_promotions_to_the_edge_which_prices_checkouts_with_them() {
    let kv = Arc::new(MemoryKv::default());
    let stock = Arc::new(MemoryStock::in_memory());
    let cache = Arc::new(CatalogCache::default());
    let clock = Arc::new(ManualClock::default());
    let orders = Arc::new(memory_desk(stock.clone(), clock.clone()));
    let shop = {
        let (kv, stock, cache, clock, orders) = (
            kv.clone(),
            stock.clone(),
            cache.clone(),
            clock.clone(),
            orders.clone(),
        );
        move || Shop {
            catalog: Arc::new(SnapshotCatalog::new(
                kv.clone(),
                cache.clone(),
                clock.clone(),
            )),
            stock: stock.clone(),
            levels: Arc::default(),
            clock: clock.clone(),
            orders: orders.clone(),
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = {
        let (shop, kv) = (shop.clone(), kv.clone());
        tower::service_fn(move |req: axum::extract::Request| {
            let shop = shop();
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

    let catalog = Catalog::from_json(&catalog_text(GOOD)).unwrap();
    let edge = EdgeAdmin::new(&url, TOKEN).unwrap();
    publish(&edge, &catalog, |_, _| {}).await.unwrap();

    let request = |email: &str, codes: &[&str]| CheckoutRequest {
        lines: vec![
            Line {
                sku: Sku::parse("MUG-1").unwrap(),
                qty: 1,
            },
            Line {
                sku: Sku::parse("BOOK-1").unwrap(),
                qty: 1,
            },
        ],
        email: email.into(),
        payment_token: "tok_visa".into(),
        codes: codes.iter().map(|c| c.to_string()).collect(),
    };
    // 3200: the kitchen sale takes 200 off the mug, the code 10% of the 3000 left; shipping 500.
    let outcome = place(&shop(), Some("promo-1"), request("a@b.co", &["welcome10"]))
        .await
        .unwrap();
    let CheckoutOutcome::Placed(order) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(order.total.minor, 3_200 - 200 - 300 + 500);
    let pricing = order.pricing.unwrap();
    assert_eq!(
        pricing
            .promotions
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["KITCHEN", "WELCOME"]
    );
    // Once per shopper.
    let again = place(&shop(), Some("promo-2"), request("a@b.co", &["WELCOME10"]))
        .await
        .unwrap();
    assert!(
        matches!(again, CheckoutOutcome::Insufficient { ref sku, .. } if edge_core::promo::is_usage_sku(sku)),
        "{again:?}"
    );
}

/// The origin's own storefront (`origin serve --catalog`) prices with the file's promotions,
/// and its orders table accepts the discounted order (total = lines - discount + shipping).
#[tokio::test]
async fn the_origin_storefront_prices_promotions_and_stores_the_discounted_order() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use origin::server::{Origin, OriginConfig};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.json");
    std::fs::write(&file, catalog_text(GOOD)).unwrap();
    let origin = Arc::new(
        Origin::open(OriginConfig {
            data_dir: dir.path().join("data"),
            catalog: Some(file),
            token: Some(TOKEN.into()),
        })
        .await
        .unwrap(),
    );
    let send = |method: &str, uri: &str, body: Option<String>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"));
        if body.is_some() {
            request = request
                .header("content-type", "application/json")
                .header("idempotency-key", "origin-promo");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let app = origin.router();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        }
    };
    let body = serde_json::json!({"lines": [{"sku": "MUG-1", "qty": 1}], "email": "a@b.co",
                                  "payment_token": "tok_visa", "codes": ["WELCOME10"]});
    let (status, placed) = send("POST", "/api/checkout", Some(body.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    // 1200 - 200 (kitchen) - 100 (10% of 1000) + 500 shipping.
    assert_eq!(placed["total"]["minor"], 1_400);
    let id = placed["order_id"].as_str().unwrap();
    let (status, stored) = send("GET", &format!("/internal/orders/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored, placed["order"],
        "the orders table holds the discounted order with its pricing"
    );
}
