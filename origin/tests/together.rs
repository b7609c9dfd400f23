//! "Bought together" from end to end on a real origin: checkouts and behaviour events in,
//! `GET /internal/together` out, `fetch_together` turning variant SKUs into products, and a
//! publish that the storefront API then serves from the snapshot.

use origin::publish::{fetch_together, load_catalog, publish, EdgeAdmin};
use origin::server::{Origin, OriginConfig};
use serde_json::{json, Value};
use std::sync::Arc;

const TOKEN: &str = "together-test-token";

const CATALOG: &str = r#"{"currency": "USD", "products": [
  {"sku": "MUG", "title": "Mug", "price_minor": 1400, "category": "kitchen", "image": "/i.svg", "stock": 50},
  {"sku": "TEA", "title": "Tea", "price_minor": 900, "category": "pantry", "image": "/i.svg", "stock": 50},
  {"sku": "POT", "title": "Teapot", "price_minor": 3900, "category": "kitchen", "image": "/i.svg", "stock": 50},
  {"sku": "CAP", "title": "Cap", "price_minor": 1900, "category": "apparel", "image": "/i.svg", "stock": 50},
  {"sku": "TEE", "title": "Tee", "price_minor": 2500, "category": "apparel", "image": "/i.svg",
   "options": ["Size"], "variants": [
     {"sku": "TEE", "options": ["S"], "price_minor": 2500, "stock": 20},
     {"sku": "TEE-M", "options": ["M"], "price_minor": 2500, "stock": 20}]}
]}"#;

async fn serve(origin: Arc<Origin>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = origin.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn checkout(http: &reqwest::Client, url: &str, key: &str, skus: &[&str]) {
    let lines: Vec<Value> = skus.iter().map(|s| json!({"sku": s, "qty": 1})).collect();
    let res = http
        .post(format!("{url}/api/checkout"))
        .header("idempotency-key", key)
        .json(&json!({"lines": lines, "email": "a@b.co", "payment_token": "tok_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{key}: {}", res.text().await.unwrap());
}

#[tokio::test]
async fn co_purchases_and_co_views_reach_the_published_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let catalog_path = dir.path().join("catalog.json");
    std::fs::write(&catalog_path, CATALOG).unwrap();
    let origin = Arc::new(
        Origin::open(OriginConfig {
            data_dir: dir.path().join("data"),
            catalog: Some(catalog_path.clone()),
            token: Some(TOKEN.into()),
        })
        .await
        .unwrap(),
    );
    let url = serve(origin.clone()).await;
    let http = reqwest::Client::new();

    // Two orders put the mug with tea, one with the medium tee (a variant); the cap is only
    // ever looked at with the mug.
    checkout(&http, &url, "o1", &["MUG", "TEA"]).await;
    checkout(&http, &url, "o2", &["MUG", "TEA", "TEE-M"]).await;
    checkout(&http, &url, "o3", &["POT"]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = |visitor: &str, sku: &str, at_ms: u64| json!({"visitor": visitor, "sku": sku, "kind": "viewed", "at_ms": at_ms});
    let events = json!({"events": [
        event("v1", "MUG", now - 60_000), event("v1", "CAP", now - 50_000),
        // Two hours later: a new session, so the tea is not co-viewed with the cap.
        event("v1", "TEA", now + 2 * 60 * 60 * 1_000),
    ], "dropped": 0});
    let res = http
        .post(format!("{url}/internal/events"))
        .bearer_auth(TOKEN)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = http
        .get(format!("{url}/internal/together"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the lists are behind the token");
    let raw: Value = http
        .get(format!("{url}/internal/together"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partners = |sku: &str| -> Vec<(String, u64)> {
        raw["products"][sku]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["sku"].as_str().unwrap().to_owned(),
                    p["score"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        partners("MUG"),
        vec![("TEA".into(), 6), ("TEE-M".into(), 3), ("CAP".into(), 1)]
    );
    assert_eq!(partners("CAP"), vec![("MUG".into(), 1)]);
    assert!(partners("POT").is_empty(), "bought alone: {raw}");

    // The views rank as trending (the other list a publish takes from the origin).
    let trending = origin::publish::fetch_trending(&url, TOKEN).await.unwrap();
    let trending: Vec<&str> = trending.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        trending,
        vec!["CAP", "MUG", "TEA"],
        "one view each, ties by SKU"
    );

    // Variant SKUs become their product.
    let mut catalog = load_catalog(&catalog_path).unwrap();
    catalog.together = fetch_together(&url, TOKEN, &catalog).await.unwrap();
    let sku = |s: &str| edge_core::Sku::parse(s).unwrap();
    assert_eq!(
        catalog.together[&sku("MUG")],
        vec![sku("TEA"), sku("TEE"), sku("CAP")]
    );
    assert_eq!(catalog.together[&sku("TEE")], vec![sku("MUG"), sku("TEA")]);
    let err = fetch_together(&url, "wrong", &catalog).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // Published with the snapshot, served by the storefront API.
    publish(&EdgeAdmin::new(&url, TOKEN).unwrap(), &catalog, |_, _| {})
        .await
        .unwrap();
    let body: Value = loop {
        // The origin's catalog reader re-reads the pointer after its short TTL.
        let body: Value = http
            .get(format!("{url}/api/products/MUG/together"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !body["together"].as_array().unwrap().is_empty() {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let skus: Vec<&str> = body["together"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, vec!["TEA", "TEE", "CAP"]);
}
