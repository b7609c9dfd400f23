//! Edge protection in front of the JSON API on the native host, driven with `oneshot` and a
//! hand-moved clock: bursts get 429 with `Retry-After` and recover, one shopper cannot hoard
//! while others still buy, automated-looking checkouts are refused, and memory stays bounded.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use edge_core::api::router;
use edge_core::memory::{memory_desk, ManualClock, MemoryKv, MemoryStock};
use edge_core::protect::{
    carry, owners_of, Action, Protection, ProtectionConfig, RouteClass, CLIENT_COOKIE,
};
use edge_core::snapshot::{CatalogCache, KvRead, SnapshotCatalog};
use edge_core::{Catalog, Shop, StockCoordinator};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

struct Host {
    kv: Arc<MemoryKv>,
    cache: Arc<CatalogCache>,
    clock: Arc<ManualClock>,
    stock: Arc<MemoryStock>,
    orders: Arc<edge_core::checkout::LocalDesk>,
    protection: Protection,
}

async fn host(config: ProtectionConfig) -> Host {
    let clock = Arc::new(ManualClock::default());
    clock.advance(1_000_000);
    let stock = Arc::new(MemoryStock::with_clock(clock.clone()));
    let host = Host {
        kv: Arc::default(),
        cache: Arc::default(),
        orders: Arc::new(memory_desk(stock.clone(), clock.clone())),
        protection: Protection::new(config, clock.clone()),
        clock,
        stock,
    };
    let catalog = json!({"currency": "USD", "products": [
        {"sku": "MUG-1", "title": "Blue Mug", "price_minor": 1200, "category": "Kitchen", "image": "/i.svg", "stock": 100},
        {"sku": "POT-2", "title": "Teapot", "price_minor": 3000, "category": "Kitchen", "image": "/i.svg", "stock": 100}
    ]});
    let catalog = Catalog::from_json(&catalog.to_string()).unwrap();
    host.kv.publish_snapshot(&catalog.products, 0);
    host.stock.seed(catalog.levels.clone(), true).await.unwrap();
    host
}

impl Host {
    /// The API behind the protection, plus stand-ins for a page and the hold server function.
    fn app(&self) -> Router {
        self.app_with(self.protection.clone())
    }

    fn app_with(&self, protection: Protection) -> Router {
        let shop = Shop {
            catalog: Arc::new(SnapshotCatalog::new(
                self.kv.clone(),
                self.cache.clone(),
                self.clock.clone(),
            )),
            stock: self.stock.clone(),
            levels: Arc::default(),
            clock: self.clock.clone(),
            orders: self.orders.clone(),
        };
        router(shop)
            .route(
                "/p/{sku}",
                // As the storefront's pages are: cached at the edge for everyone.
                axum::routing::get(|| async {
                    (
                        [(header::CACHE_CONTROL, "public, max-age=0, s-maxage=30")],
                        "a product page",
                    )
                }),
            )
            .route("/_sfn/hold-cart", post(|| async { "held" }))
            .route("/_sfn/release-cart", post(|| async { "released" }))
            .layer(axum::middleware::from_fn_with_state(
                protection,
                Protection::layer,
            ))
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        client: (&str, &str),
        body: Option<(&str, String)>,
    ) -> (StatusCode, Option<String>, Value) {
        self.send_keyed(method, uri, client, body, None).await
    }

    async fn send_keyed(
        &self,
        method: &str,
        uri: &str,
        client: (&str, &str),
        body: Option<(&str, String)>,
        key: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let req = request(method, uri, client, body, key);
        answer(self.app().oneshot(req).await.unwrap()).await
    }

    /// [`Host::send_keyed`] as a host that keeps no memory between requests (Spin) runs it: a
    /// fresh protection per request, loaded from and saved to `store` (`protect::carry`).
    async fn send_carried(
        &self,
        store: &MemoryKv,
        method: &str,
        uri: &str,
        client: (&str, &str),
        body: Option<(&str, String)>,
        key: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let req = request(method, uri, client, body, key);
        let protection = Protection::new(self.protection.config().clone(), self.clock.clone());
        carry::load(store, &protection, &owners_of(req.headers()), false)
            .await
            .unwrap();
        let res = self
            .app_with(protection.clone())
            .oneshot(req)
            .await
            .unwrap();
        carry::save(store, &protection).await.unwrap();
        answer(res).await
    }
}

fn request(
    method: &str,
    uri: &str,
    client: (&str, &str),
    body: Option<(&str, String)>,
    key: Option<&str>,
) -> Request<Body> {
    let (ip, cookie) = client;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("cf-connecting-ip", ip);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    if !cookie.is_empty() {
        req = req.header(header::COOKIE, format!("{CLIENT_COOKIE}={cookie}"));
    }
    let body = match body {
        Some((content_type, body)) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Body::from(body)
        }
        None => Body::empty(),
    };
    req.body(body).unwrap()
}

async fn answer(res: axum::response::Response) -> (StatusCode, Option<String>, Value) {
    let status = res.status();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl Host {
    async fn checkout(
        &self,
        client: (&str, &str),
        key: &str,
        sku: &str,
        qty: u32,
    ) -> (StatusCode, Value) {
        let body = json!({"lines": [{"sku": sku, "qty": qty}], "email": "a@b.co", "payment_token": "tok_visa"});
        let body = Some(("application/json", body.to_string()));
        let (status, _, value) = self
            .send_keyed("POST", "/api/checkout", client, body, Some(key))
            .await;
        (status, value)
    }

    /// A person: looks at a page, then takes their time.
    async fn browse(&self, client: (&str, &str)) {
        assert_eq!(
            self.send("GET", "/p/MUG-1", client, None).await.0,
            StatusCode::OK
        );
        self.clock.advance(10_000);
    }
}

const ALICE: (&str, &str) = ("203.0.113.7", "00000000000a11ce");
const BOB: (&str, &str) = ("198.51.100.2", "0000000000000b0b");

#[tokio::test]
async fn a_burst_of_searches_gets_429_with_retry_after_and_recovers_after_the_window() {
    let host = host(ProtectionConfig::default()).await;
    let host = &host;
    let search =
        |client| async move { host.send("GET", "/api/products?q=mug", client, None).await };
    for n in 0..60 {
        assert_eq!(
            search(ALICE).await.0,
            StatusCode::OK,
            "search {n} is within the budget"
        );
    }
    let (status, retry, body) = search(ALICE).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        retry.as_deref(),
        Some("1"),
        "one search comes back every second (60 a minute)"
    );
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many search requests"),
        "{body}"
    );
    // Someone else is not affected.
    assert_eq!(search(BOB).await.0, StatusCode::OK);
    // Waiting as told brings one request back; a whole window brings the whole budget back.
    host.clock.advance(1_000);
    assert_eq!(search(ALICE).await.0, StatusCode::OK);
    assert_eq!(search(ALICE).await.0, StatusCode::TOO_MANY_REQUESTS);
    host.clock.advance(60_000);
    for _ in 0..60 {
        assert_eq!(search(ALICE).await.0, StatusCode::OK);
    }
    assert_eq!(search(ALICE).await.0, StatusCode::TOO_MANY_REQUESTS);
    let decisions = host.protection.decisions();
    assert!(decisions
        .iter()
        .all(|d| d.action == Action::RateLimited && d.route == RouteClass::Search));
    assert_eq!(decisions.len(), 3);
}

#[tokio::test]
async fn dropping_the_cookie_does_not_escape_the_per_ip_budget() {
    let host = host(ProtectionConfig::default()).await;
    let mut limited = 0;
    for _ in 0..300 {
        // No cookie: every request is a new client, but the same IP (4 clients' budget: 240).
        let (status, ..) = host
            .send("GET", "/api/products?q=mug", ("192.0.2.1", ""), None)
            .await;
        limited += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(limited, 60);
}

#[tokio::test]
async fn one_shopper_cannot_hoard_a_sku_while_others_still_buy() {
    let host = host(ProtectionConfig {
        units_per_sku_max: 5,
        ..ProtectionConfig::default()
    })
    .await;
    host.browse(ALICE).await;
    host.browse(BOB).await;
    assert_eq!(
        host.checkout(ALICE, "a1", "MUG-1", 3).await.0,
        StatusCode::CREATED
    );
    // A retry of the same checkout is not counted twice.
    assert_eq!(
        host.checkout(ALICE, "a1", "MUG-1", 3).await.0,
        StatusCode::CREATED
    );
    let (status, body) = host.checkout(ALICE, "a2", "MUG-1", 3).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "hold_limit");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 5 of MUG-1"),
        "{body}"
    );
    // Other SKUs, and other shoppers, are fine.
    assert_eq!(
        host.checkout(ALICE, "a3", "POT-2", 2).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        host.checkout(BOB, "b1", "MUG-1", 5).await.0,
        StatusCode::CREATED
    );
    let mug = host
        .stock
        .level(&edge_core::Sku::parse("MUG-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mug.sold, 3 + 5);
    // After the window the shopper may buy again.
    host.clock.advance(ProtectionConfig::default().window_ms);
    assert_eq!(
        host.checkout(ALICE, "a4", "MUG-1", 3).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn concurrent_holds_per_shopper_are_capped_and_released_holds_free_a_slot() {
    let host = host(ProtectionConfig {
        holds_max: 2,
        ..ProtectionConfig::default()
    })
    .await;
    let hold = |client, key: &str, sku: &str| {
        let form =
            format!("lines%5B0%5D%5Bsku%5D={sku}&lines%5B0%5D%5Bqty%5D=1&idempotency_key={key}");
        let host = &host;
        async move {
            host.send(
                "POST",
                "/_sfn/hold-cart",
                client,
                Some(("application/x-www-form-urlencoded", form)),
            )
            .await
        }
    };
    assert_eq!(hold(ALICE, "k1", "MUG-1").await.0, StatusCode::OK);
    assert_eq!(hold(ALICE, "k2", "POT-2").await.0, StatusCode::OK);
    assert_eq!(
        hold(ALICE, "k2", "POT-2").await.0,
        StatusCode::OK,
        "the same hold again is no new hold"
    );
    let (status, _, body) = hold(ALICE, "k3", "POT-2").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("hold_limit"))
    );
    assert_eq!(
        hold(BOB, "k9", "MUG-1").await.0,
        StatusCode::OK,
        "another shopper still holds"
    );
    // Releasing one frees a slot; so does a hold running out.
    let release =
        "lines%5B0%5D%5Bsku%5D=MUG-1&lines%5B0%5D%5Bqty%5D=1&idempotency_key=k1".to_owned();
    host.send(
        "POST",
        "/_sfn/release-cart",
        ALICE,
        Some(("application/x-www-form-urlencoded", release)),
    )
    .await;
    assert_eq!(hold(ALICE, "k3", "POT-2").await.0, StatusCode::OK);
    assert_eq!(
        hold(ALICE, "k4", "MUG-1").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    host.clock.advance(ProtectionConfig::default().hold_ttl_ms);
    assert_eq!(hold(ALICE, "k4", "MUG-1").await.0, StatusCode::OK);
}

#[tokio::test]
async fn automated_looking_checkouts_are_refused_and_every_decision_has_its_reason() {
    let host = host(ProtectionConfig::default()).await;
    // A person who browsed first checks out.
    host.browse(ALICE).await;
    assert_eq!(
        host.checkout(ALICE, "a1", "MUG-1", 1).await.0,
        StatusCode::CREATED
    );
    // A client that never looked at a page and fires a burst of requests is refused.
    const BOT: (&str, &str) = ("192.0.2.66", "00000000000000b7");
    for _ in 0..40 {
        host.send("GET", "/api/products", BOT, None).await;
    }
    let (status, body) = host.checkout(BOT, "b1", "MUG-1", 1).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "checkout_refused");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("looks automated"));
    // Impossible timing: a checkout a moment after the first page view raises the score.
    const QUICK: (&str, &str) = ("192.0.2.67", "0000000000000099");
    host.send("GET", "/p/MUG-1", QUICK, None).await;
    let decisions = host.protection.decisions();
    let reasons: Vec<(&str, Action, u32)> = decisions
        .iter()
        .map(|d| (d.reason.as_str(), d.action, d.bot_score))
        .collect();
    assert_eq!(
        reasons,
        [
            ("no bot signals", Action::Allowed, 0),
            (
                "no page views before checkout; 41 requests in 10 s",
                Action::Bot,
                90
            )
        ]
    );
    host.checkout(QUICK, "q1", "MUG-1", 1).await;
    let last = host.protection.decisions().pop().unwrap();
    assert_eq!((last.action, last.bot_score), (Action::Allowed, 40));
    assert!(
        last.reason
            .starts_with("checkout 0 ms after the first page view"),
        "{}",
        last.reason
    );
    // The admin sees them, newest first, behind the token.
    let admin = edge_core::protect::admin_router(host.protection.clone(), Some("t0ken".into()));
    let req = Request::get("/_admin/protection")
        .header(header::AUTHORIZATION, "Bearer t0ken")
        .body(Body::empty())
        .unwrap();
    let res = admin.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body["decisions"][0]["client"],
        "192.0.2.67|0000000000000099"
    );
    assert_eq!(body["decisions"][1]["action"], "bot");
    let anonymous = admin
        .oneshot(
            Request::get("/_admin/protection")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn new_clients_get_a_cookie_and_memory_stays_bounded() {
    let host = host(ProtectionConfig {
        clients_max: 100,
        ..ProtectionConfig::default()
    })
    .await;
    let req = Request::get("/p/MUG-1")
        .header("cf-connecting-ip", "192.0.2.9")
        .body(Body::empty())
        .unwrap();
    let page = host.app().oneshot(req).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers().get(header::SET_COOKIE).is_none(),
        "a page cached for everyone must not carry one client's cookie"
    );
    // Nor is such a visit remembered: it could never be told apart from the next one.
    for n in 0..50 {
        let req = Request::get(format!("/p/MUG-{n}"))
            .header("cf-connecting-ip", "192.0.2.10")
            .body(Body::empty())
            .unwrap();
        host.app().oneshot(req).await.unwrap();
    }
    assert_eq!(
        host.protection.sizes().1,
        0,
        "cookie-less page views fill the client map"
    );
    // The first server-function call (hydration makes one) gets it.
    let req = Request::post("/_sfn/hold-cart")
        .header("cf-connecting-ip", "192.0.2.9")
        .body(Body::empty())
        .unwrap();
    let res = host.app().oneshot(req).await.unwrap();
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        cookie.starts_with(&format!("{CLIENT_COOKIE}=")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    for n in 0..2_000u32 {
        let ip = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
        host.send(
            "GET",
            "/api/products?q=mug",
            (&ip, "00000000000000aa"),
            None,
        )
        .await;
    }
    let (buckets, clients, shoppers) = host.protection.sizes();
    assert!(
        buckets <= 100 && clients <= 100 && shoppers <= 100,
        "{buckets} {clients} {shoppers}"
    );
}

#[tokio::test]
async fn a_bot_dropping_its_cookie_still_hits_the_address_hoarding_cap() {
    // 2 units per shopper, so 8 per address (ip_factor 4).
    let host = host(ProtectionConfig {
        units_per_sku_max: 2,
        ..ProtectionConfig::default()
    })
    .await;
    let mut held = 0;
    for n in 0..10 {
        // A fresh cookie every time, one address.
        let cookie = format!("{n:016x}");
        let form =
            format!("lines%5B0%5D%5Bsku%5D=MUG-1&lines%5B0%5D%5Bqty%5D=2&idempotency_key=bot-{n}");
        let (status, _, body) = host
            .send(
                "POST",
                "/_sfn/hold-cart",
                ("192.0.2.50", &cookie),
                Some(("application/x-www-form-urlencoded", form)),
            )
            .await;
        match status {
            StatusCode::OK => held += 2,
            StatusCode::TOO_MANY_REQUESTS => assert!(
                body["message"].as_str().unwrap().contains("per address"),
                "{body}"
            ),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(held, 8, "four holds of 2 reach the address cap of 8 units");
}

/// On a host that keeps no memory between requests, the limits still hold: each request's
/// protection is fresh, loaded from the store and saved back (`protect::carry`).
#[tokio::test]
async fn limits_hold_across_per_request_instances_through_the_store() {
    let host = host(ProtectionConfig::default()).await;
    let config = host.protection.config().clone();
    let store = MemoryKv::default();
    let checkout = |key: String, qty: u32| {
        let body = json!({"lines": [{"sku": "MUG-1", "qty": qty}], "email": "a@b.co", "payment_token": "tok_visa"});
        (Some(("application/json", body.to_string())), key)
    };
    let client = ("198.51.100.7", "00000000000000d1");
    // A view first, so the bot score stays low; then the hoarding cap, one unit per checkout.
    host.send_carried(&store, "GET", "/p/MUG-1", client, None, None)
        .await;
    host.clock.advance(config.human_checkout_ms_min);
    for n in 0..config.units_per_sku_max {
        let (body, key) = checkout(format!("c-{n}"), 1);
        let (status, _, value) = host
            .send_carried(&store, "POST", "/api/checkout", client, body, Some(&key))
            .await;
        assert_eq!(status, StatusCode::CREATED, "checkout {n}: {value}");
    }
    let (body, key) = checkout("c-over".into(), 1);
    let (status, _, value) = host
        .send_carried(&store, "POST", "/api/checkout", client, body, Some(&key))
        .await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("hold_limit")),
        "{value}"
    );

    // The rate budget too: searches past it get 429, and it refills with time.
    let searcher = ("198.51.100.8", "00000000000000d2");
    for n in 0..config.search.requests {
        let (status, _, _) = host
            .send_carried(&store, "GET", "/api/products?q=mug", searcher, None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "search {n}");
    }
    let (status, retry, _) = host
        .send_carried(&store, "GET", "/api/products?q=mug", searcher, None, None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let wait_s: u64 = retry.expect("Retry-After").parse().unwrap();
    host.clock.advance(wait_s * 1_000);
    let (status, _, _) = host
        .send_carried(&store, "GET", "/api/products?q=mug", searcher, None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "after Retry-After");

    // The decisions reach the admin's view through the store.
    let admin = Protection::new(config.clone(), host.clock.clone());
    carry::load(&store, &admin, &[], true).await.unwrap();
    let actions: Vec<Action> = admin.decisions().iter().map(|d| d.action).collect();
    assert!(
        actions.contains(&Action::Hoarding) && actions.contains(&Action::RateLimited),
        "{actions:?}"
    );
    assert!(
        admin.own_decisions().is_empty(),
        "carried decisions are not the admin request's own"
    );
}

/// The store holds a bounded number of owners: a slot keeps the most recently seen.
#[tokio::test]
async fn the_carried_state_stays_bounded_per_slot() {
    let host = host(ProtectionConfig::default()).await;
    let store = MemoryKv::default();
    // Addresses whose owners (`ip:{ip}`) share one slot.
    let slot = carry::slot_key("ip:203.0.113.0");
    let crowd: Vec<String> = (0..200_000u32)
        .map(|n| format!("203.0.{}.{}", n >> 8, n & 255))
        .filter(|ip| carry::slot_key(&format!("ip:{ip}")) == slot)
        .take(carry::OWNERS_PER_SLOT + 3)
        .collect();
    assert_eq!(
        crowd.len(),
        carry::OWNERS_PER_SLOT + 3,
        "not enough addresses in one slot"
    );
    for ip in &crowd {
        host.clock.advance(1_000);
        let (status, _, _) = host
            .send_carried(&store, "GET", "/api/products?q=mug", (ip, ""), None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let kept: std::collections::BTreeMap<String, carry::Carried> =
        edge_core::codec::from_cbor(&store.get(&slot).await.unwrap().unwrap()).unwrap();
    let owners: Vec<&String> = kept.keys().filter(|o| o.starts_with("ip:")).collect();
    assert!(
        kept.len() <= carry::OWNERS_PER_SLOT,
        "{} owners in one slot",
        kept.len()
    );
    for ip in &crowd[crowd.len() - 3..] {
        assert!(
            owners.contains(&&format!("ip:{ip}")),
            "a recent owner was dropped: {ip}"
        );
    }
    assert!(
        !owners.contains(&&format!("ip:{}", crowd[0])),
        "the stalest owner was kept"
    );
}
