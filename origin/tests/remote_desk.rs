//! The order desk for edges without an order owner of their own (Spin):
//! `POST /coordinator/checkouts` runs a CBOR `RemoteCheckout` on the origin's desk and answers the
//! CBOR outcome; the order is in the orders table at once and `GET /coordinator/orders/{id}`
//! returns it. Retries answer the same order; the token guards both routes. Checkouts carry
//! their promotions: the order records its pricing, usage limits hold under concurrency, amounts
//! that do not add up are refused, and a cancel in the origin's admin gives a code's use back.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use edge_core::checkout::{CheckoutError, CheckoutOutcome, OrderDesk, RemoteCheckout};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{CheckoutRequest, Order, OrderLine, OrderPricing};
use edge_core::promo::{usage_sku, AppliedPromotion, LineSaving, UsageClaim};
use edge_core::stock::{Line, OrderId};
use edge_core::store::StockCoordinator;
use edge_core::{Money, Sku};
use http_body_util::BodyExt;
use origin::server::{Origin, OriginConfig};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "desk-token";

async fn origin(dir: &tempfile::TempDir) -> Arc<Origin> {
    let config = OriginConfig {
        data_dir: dir.path().to_path_buf(),
        catalog: None,
        token: Some(TOKEN.into()),
    };
    Arc::new(Origin::open(config).await.expect("origin opens"))
}

fn checkout(order: &str, sku: &Sku, qty: u32, token: &str) -> RemoteCheckout {
    let unit_price = Money::new(1_250, "USD");
    RemoteCheckout {
        order_id: OrderId::parse(order).unwrap(),
        request: CheckoutRequest {
            lines: vec![Line {
                sku: sku.clone(),
                qty,
            }],
            email: "spin@example.com".into(),
            payment_token: token.into(),
            codes: Vec::new(),
        },
        lines: vec![OrderLine {
            sku: sku.clone(),
            title: "Mug".into(),
            qty,
            unit_price: unit_price.clone(),
        }],
        total: Money::new(1_250 * u64::from(qty), "USD"),
        pricing: None,
        usage: Vec::new(),
    }
}

/// Two mugs with the code FIVE, as a Spin edge prices them (`price_order`): $5 off the order,
/// $3 shipping, one unit of FIVE's usage counter (limit `limit`) claimed.
fn priced_checkout(order: &str, sku: &Sku, email: &str, limit: u32) -> RemoteCheckout {
    let mut call = checkout(order, sku, 2, "tok_visa");
    call.request.email = email.into();
    call.request.codes = vec!["FIVE".into()];
    call.pricing = Some(OrderPricing {
        subtotal: Money::new(2_500, "USD"),
        discount: Money::new(500, "USD"),
        shipping: Money::new(300, "USD"),
        promotions: vec![AppliedPromotion {
            id: "FIVE".into(),
            title: "$5 off".into(),
            code: Some("FIVE".into()),
            saving: Money::new(500, "USD"),
            lines: vec![LineSaving {
                sku: sku.clone(),
                minor: 500,
            }],
            shipping_saving_minor: 0,
        }],
    });
    call.total = Money::new(2_500 - 500 + 300, "USD");
    call.usage = vec![UsageClaim {
        sku: usage_sku("FIVE", None),
        limit,
    }];
    call
}

/// `(available, held, sold)` of a SKU at the origin; `None` when it has no stock record.
async fn level(origin: &Arc<Origin>, sku: &Sku) -> Option<(u32, u32, u32)> {
    let level = origin.stock.level(sku).await.unwrap()?;
    Some((level.available, level.held, level.sold))
}

async fn outcome_of(
    origin: &Arc<Origin>,
    call_: &RemoteCheckout,
) -> Result<CheckoutOutcome, CheckoutError> {
    let (status, body) = call(origin, post(call_, TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    from_cbor(&body).unwrap()
}

async fn call(origin: &Arc<Origin>, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = origin.router().oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

/// An origin (its data in a temp dir, kept alive by the returned guard) with `qty` of MUG-1.
async fn with_mugs(qty: u32) -> (tempfile::TempDir, Arc<Origin>, Sku) {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(&dir).await;
    let sku = Sku::parse("MUG-1").unwrap();
    origin
        .stock
        .seed(vec![(sku.clone(), qty)], true)
        .await
        .unwrap();
    (dir, origin, sku)
}

fn post(call: &RemoteCheckout, token: &str) -> Request<Body> {
    Request::post("/coordinator/checkouts")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(to_cbor(call)))
        .unwrap()
}

#[tokio::test]
async fn a_remote_checkout_places_the_order_at_the_origin_once() {
    let (_dir, origin, sku) = with_mugs(3).await;

    let call_a = checkout("spin-order-1", &sku, 2, "tok_visa");
    let (status, body) = call(&origin, post(&call_a, TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let first: Result<CheckoutOutcome, CheckoutError> = from_cbor(&body).unwrap();
    let Ok(CheckoutOutcome::Placed(order)) = first.clone() else {
        panic!("not placed: {first:?}")
    };
    assert_eq!(order.id.as_str(), "spin-order-1");
    assert_eq!(
        origin.stock.level(&sku).await.unwrap().unwrap().available,
        1
    );

    // A retry (the edge lost the answer) gets the same order and sells nothing more.
    let (_, body) = call(&origin, post(&call_a, TOKEN)).await;
    let retried: Result<CheckoutOutcome, CheckoutError> = from_cbor(&body).unwrap();
    assert_eq!(retried, first);
    assert_eq!(
        origin.stock.level(&sku).await.unwrap().unwrap().available,
        1
    );

    let get = Request::get("/coordinator/orders/spin-order-1")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&origin, get).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Option<Order> = from_cbor(&body).unwrap();
    assert_eq!(stored.map(|o| o.id), Some(order.id));

    // More than is left: refused, nothing held.
    let (_, body) = call(
        &origin,
        post(&checkout("spin-order-2", &sku, 2, "tok_visa"), TOKEN),
    )
    .await;
    let refused: Result<CheckoutOutcome, CheckoutError> = from_cbor(&body).unwrap();
    assert!(
        matches!(refused, Ok(ref outcome) if !matches!(outcome, CheckoutOutcome::Placed(_))),
        "{refused:?}"
    );
    assert_eq!(
        origin.stock.level(&sku).await.unwrap().unwrap().available,
        1
    );
}

#[tokio::test]
async fn the_desk_routes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(&dir).await;
    let sku = Sku::parse("MUG-1").unwrap();
    let (status, _) = call(
        &origin,
        post(&checkout("spin-order-3", &sku, 1, "tok_visa"), "wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let get = Request::get("/coordinator/orders/spin-order-3")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(&origin, get).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let garbage = Request::post("/coordinator/checkouts")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(vec![0xff, 0x00]))
        .unwrap();
    let (status, _) = call(&origin, garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_remote_checkout_with_promotions_is_recorded_with_its_pricing_and_holds_its_code() {
    let (_dir, origin, sku) = with_mugs(10).await;

    let call_a = priced_checkout("spin-promo-1", &sku, "a@b.co", 5);
    let placed = outcome_of(&origin, &call_a).await;
    let Ok(CheckoutOutcome::Placed(order)) = placed else {
        panic!("not placed: {placed:?}")
    };
    assert_eq!(order.total, Money::new(2_300, "USD"));
    assert_eq!(order.pricing, call_a.pricing);
    // In the orders table (what the admin and the reports read) with its pricing.
    let stored = origin
        .book
        .order(&order.id)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        (stored.total, stored.pricing),
        (order.total.clone(), call_a.pricing.clone())
    );
    // One use of FIVE sold beside the two mugs; a retry sells nothing more.
    assert_eq!(
        level(&origin, &usage_sku("FIVE", None)).await,
        Some((4, 0, 1))
    );
    assert_eq!(
        outcome_of(&origin, &call_a).await,
        Ok(CheckoutOutcome::Placed(order))
    );
    assert_eq!(
        level(&origin, &usage_sku("FIVE", None)).await,
        Some((4, 0, 1))
    );
    assert_eq!(level(&origin, &sku).await, Some((8, 0, 2)));
}

/// 40 Spin checkouts race for a code limited to 5 uses: exactly 5 are placed, the rest are
/// refused on the code's counter, and only the winners' mugs are sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_limited_to_5_uses_is_redeemed_exactly_5_times_by_40_remote_checkouts() {
    let (_dir, origin, sku) = with_mugs(200).await;
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let (origin, sku) = (origin.clone(), sku.clone());
            tokio::spawn(async move {
                let call_n = priced_checkout(&format!("race-{n}"), &sku, &format!("s{n}@e.co"), 5);
                outcome_of(&origin, &call_n).await
            })
        })
        .collect();
    let (mut won, mut used_up) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(CheckoutOutcome::Placed(order)) => {
                assert_eq!(order.pricing.unwrap().promotions[0].id, "FIVE");
                won += 1;
            }
            Ok(CheckoutOutcome::Insufficient { sku, available: 0 })
                if sku == usage_sku("FIVE", None) =>
            {
                used_up += 1
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((won, used_up), (5, 35));
    assert_eq!(
        level(&origin, &usage_sku("FIVE", None)).await,
        Some((0, 0, 5))
    );
    assert_eq!(level(&origin, &sku).await, Some((190, 0, 10)));
}

#[tokio::test]
async fn a_remote_checkout_whose_amounts_do_not_add_up_is_refused_with_the_reason() {
    let (_dir, origin, sku) = with_mugs(10).await;

    let mut wrong_total = priced_checkout("spin-bad-1", &sku, "a@b.co", 5);
    wrong_total.total = Money::new(2_200, "USD");
    let mut wrong_subtotal = priced_checkout("spin-bad-2", &sku, "a@b.co", 5);
    wrong_subtotal.pricing.as_mut().unwrap().subtotal = Money::new(2_600, "USD");
    let mut stray_claim = priced_checkout("spin-bad-3", &sku, "a@b.co", 5);
    stray_claim.usage.push(UsageClaim {
        sku: usage_sku("OTHER", None),
        limit: 1,
    });
    let mut unpriced_claim = checkout("spin-bad-4", &sku, 1, "tok_visa");
    unpriced_claim.usage = stray_claim.usage.clone();
    for (bad, reason) in [
        (
            &wrong_total,
            "total 2200 USD is not the lines less the discount plus shipping (2300 USD)",
        ),
        (&wrong_subtotal, "the lines and pricing do not add up"),
        (
            &stray_claim,
            "usage claim promo.OTHER is not a counter of a promotion the order applies",
        ),
        (
            &unpriced_claim,
            "usage claim promo.FIVE is not a counter of a promotion the order applies",
        ),
    ] {
        let (status, body) = call(&origin, post(bad, TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "checkout {} is not priced consistently: ",
                bad.order_id
            )) && message.contains(reason),
            "{message:?} should say {reason:?}"
        );
        assert_eq!(
            origin.desk.order(&bad.order_id).await.unwrap(),
            None,
            "no checkout run"
        );
        assert_eq!(
            origin.book.order(&bad.order_id).await.unwrap(),
            None,
            "nothing recorded"
        );
    }
    assert_eq!(
        level(&origin, &sku).await,
        Some((10, 0, 0)),
        "nothing held or sold"
    );
    assert_eq!(
        level(&origin, &usage_sku("FIVE", None)).await,
        None,
        "no counter seeded"
    );
}

/// A Spin order cancelled in the origin's admin gives its code's use back (the admin outbox
/// cancels the usage hold on the origin's shards beside the lines); only once.
#[tokio::test]
async fn a_cancel_in_the_origin_admin_gives_a_spin_orders_code_use_back_once() {
    use origin::admin::{accounts, AdminConfig, HashCost};
    const OWNER: &str = "owner@shop.test";
    const PASSWORD: &str = "correct horse battery staple";
    let dir = tempfile::tempdir().unwrap();
    let config = OriginConfig {
        data_dir: dir.path().to_path_buf(),
        catalog: None,
        token: Some(TOKEN.into()),
    };
    let admin = AdminConfig {
        hash_cost: HashCost::Test,
        edge: None,
    };
    let origin = Arc::new(
        Origin::open_with(config, admin)
            .await
            .expect("origin opens"),
    );
    let now_ms = origin.admin.now_ms();
    accounts::create_owner(dir.path(), OWNER, PASSWORD, HashCost::Test, now_ms).unwrap();
    let sku = Sku::parse("MUG-1").unwrap();
    origin
        .stock
        .seed(vec![(sku.clone(), 10)], true)
        .await
        .unwrap();
    let counter = usage_sku("FIVE", None);

    let first = outcome_of(&origin, &priced_checkout("spin-first", &sku, "a@b.co", 1)).await;
    assert!(matches!(first, Ok(CheckoutOutcome::Placed(_))), "{first:?}");
    let second = outcome_of(&origin, &priced_checkout("spin-second", &sku, "c@d.co", 1)).await;
    assert_eq!(
        second,
        Ok(CheckoutOutcome::Insufficient {
            sku: counter.clone(),
            available: 0
        })
    );

    let login = Request::post("/admin/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({ "email": OWNER, "password": PASSWORD }).to_string(),
        ))
        .unwrap();
    let response = origin.router().oneshot(login).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let csrf = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = |id: &str| {
        Request::post(format!("/admin/api/orders/{id}/status"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .body(Body::from(r#"{"status": "cancelled"}"#))
            .unwrap()
    };
    let (status, body) = call(&origin, cancel("spin-first")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        level(&origin, &counter).await,
        Some((1, 0, 0)),
        "the use is back"
    );
    assert_eq!(level(&origin, &sku).await, Some((10, 0, 0)), "and the mugs");

    let third = outcome_of(&origin, &priced_checkout("spin-third", &sku, "c@d.co", 1)).await;
    assert!(matches!(third, Ok(CheckoutOutcome::Placed(_))), "{third:?}");
    // A second cancel of the same order is refused and gives nothing back.
    let (status, _) = call(&origin, cancel("spin-first")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(level(&origin, &counter).await, Some((0, 0, 1)));
}
