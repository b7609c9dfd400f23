//! Live updates for browsers: WebSockets held by the Durable Object that owns the data.
//!
//! `GET /api/stock/{sku}/live` reaches the SKU's `StockShard`, `GET /api/orders/{id}/live` the
//! order's `OrderObject`; each object accepts the socket (hibernatable) and pushes a small JSON
//! message whenever what the page shows changes. The worker only forwards the upgrade.

use axum::body::Body;
use axum::http::{Response as HttpResponse, StatusCode};
use edge_core::order::Order;
use edge_core::Sku;
use serde_json::json;
use worker::{Request, Stub};

/// An alarm time from milliseconds since the epoch. (`ScheduledTime::from(i64)` is an offset
/// from now, not a time.)
pub fn alarm_at(ms_since_epoch: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(worker::js_sys::Date::new(
        &worker::wasm_bindgen::JsValue::from_f64(ms_since_epoch as f64),
    ))
}

/// Whether a request asks for a WebSocket.
pub fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get("upgrade")
        .ok()
        .flatten()
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// What a stock watcher receives.
pub fn level_message(sku: &Sku, available: u32) -> String {
    json!({ "sku": sku, "available": available }).to_string()
}

/// What an order watcher receives: the order's status and its history.
pub fn order_message(order: &Order) -> String {
    json!({ "id": order.id, "status": order.status, "label": order.status.label(), "history": order.history }).to_string()
}

/// Forwards a WebSocket upgrade to an object and hands its socket back to the client.
pub async fn forward_upgrade(stub: Stub, url: &str) -> worker::Result<HttpResponse<Body>> {
    let mut init = worker::RequestInit::new();
    let headers = worker::Headers::new();
    headers.set("upgrade", "websocket")?;
    init.with_headers(headers);
    let response = stub
        .fetch_with_request(Request::new_with_init(url, &init)?)
        .await?;
    Ok(HttpResponse::from(response))
}

/// A plain-text refusal for a request that is not an upgrade.
pub fn upgrade_required() -> HttpResponse<Body> {
    let mut response = HttpResponse::new(Body::from("this endpoint speaks WebSocket only"));
    *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
    response
}
