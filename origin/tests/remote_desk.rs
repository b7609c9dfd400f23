//! The order desk for edges without an order owner of their own (Spin):
//! `POST /coordinator/checkouts` runs a CBOR `RemoteCheckout` on the origin's desk and answers the
//! CBOR outcome; the order is in the orders table at once and `GET /coordinator/orders/{id}`
//! returns it. Retries answer the same order; the token guards both routes.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use edge_core::checkout::{CheckoutError, CheckoutOutcome, RemoteCheckout};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{CheckoutRequest, Order, OrderLine};
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
    }
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

fn post(call: &RemoteCheckout, token: &str) -> Request<Body> {
    Request::post("/coordinator/checkouts")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(to_cbor(call)))
        .unwrap()
}

#[tokio::test]
async fn a_remote_checkout_places_the_order_at_the_origin_once() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(&dir).await;
    let sku = Sku::parse("MUG-1").unwrap();
    origin
        .stock
        .seed(vec![(sku.clone(), 3)], true)
        .await
        .unwrap();

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
