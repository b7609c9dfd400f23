//! The `OrderObject` Durable Object: one per order id, the checkout's owner and the order's
//! outbox.
//!
//! A checkout runs inside the object named by its order id, so every retry of one
//! `Idempotency-Key` reaches the same single-threaded owner and its [`CheckoutRecord`]. The
//! record is written to the object's SQLite storage before any hold is placed and again, with
//! the outcome, before the 201 leaves (the output gate holds the reply until it is durable).
//! A placed order stays in this outbox until the origin acknowledges it: the object's alarm
//! retries delivery with backoff, and also finishes checkouts a client abandoned mid-way.
//! Browsers on the order page hold a WebSocket here and see status changes as they happen.

use crate::live::{is_upgrade, order_message};
use crate::shard_stub::DurableShards;
use edge_core::checkout::{
    Checkout, CheckoutError, CheckoutLog, CheckoutOutcome, CheckoutRecord, OrderSink, PaymentError, PaymentGateway,
    TestGateway,
};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{CheckoutRequest, Order, OrderLine, OrderStatus};
use edge_core::stock::{OrderId, ShardRequest};
use edge_core::store::{BoxFuture, ShardedStock, StockCoordinator};
use edge_core::{Money, SkuShard, StoreError};
use serde::{Deserialize, Serialize};
use worker::send::SendFuture;
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, SqlStorage, SqlStorageValue, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS checkout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record BLOB NOT NULL
)";

/// Order-page sockets one order keeps.
const WATCHERS_MAX: usize = 100;
/// When an open checkout is looked at again if its client went away.
const RECOVERY_DELAY_MS: u64 = 30_000;
/// Bounds of the outbox's retry delay.
const RETRY_DELAY_MS_MIN: u64 = 1_000;
const RETRY_DELAY_MS_MAX: u64 = 5 * 60 * 1_000;

/// What the worker sends to run a checkout.
#[derive(Serialize, Deserialize)]
pub struct CheckoutCall {
    pub order_id: OrderId,
    pub request: CheckoutRequest,
    pub lines: Vec<OrderLine>,
    pub total: Money,
}

/// An admin's status change: `{"status": "shipped"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChangeBody {
    status: String,
}

#[durable_object]
pub struct OrderObject {
    state: State,
    env: Env,
    log: SqlLog,
    /// The stock shards, reached from here for the checkout's holds and for cancels.
    stock: ShardedStock<DurableShards>,
    schema_fault: Option<String>,
}

impl DurableObject for OrderObject {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let mut schema_fault = sql.exec(SCHEMA, None).err().map(|e| e.to_string());
        let stock = match env.durable_object(crate::STOCK_BINDING) {
            Ok(namespace) => Some(ShardedStock::new(DurableShards::new(namespace))),
            Err(e) => {
                schema_fault = Some(format!("no {} binding: {e}", crate::STOCK_BINDING));
                None
            }
        };
        let stock = stock.unwrap_or_else(|| ShardedStock::new(DurableShards::unbound()));
        Self { state, env, log: SqlLog(sql), stock, schema_fault }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if let Some(fault) = &self.schema_fault {
            return Response::error(format!("order schema unavailable: {fault}"), 503);
        }
        if is_upgrade(&req) {
            return self.watch();
        }
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/checkout") => {
                let call: CheckoutCall = match from_cbor(&req.bytes().await?) {
                    Ok(call) => call,
                    Err(e) => return Response::error(format!("malformed checkout call: {e}"), 400),
                };
                let result = self.checkout(call).await;
                Response::from_bytes(to_cbor(&result))
            }
            (Method::Get, "/order") => Response::from_bytes(to_cbor(&self.order())),
            (Method::Post, "/status") => {
                let body: StatusChangeBody = match serde_json::from_slice(&req.bytes().await?) {
                    Ok(body) => body,
                    Err(e) => return Response::error(format!("malformed status change: {e}"), 400),
                };
                self.change_status(&body.status).await
            }
            _ => Response::error("no such order route", 404),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let Ok(Some(record)) = self.log().read() else { return Response::ok("nothing to do") };
        let checkout = self.checkout_with();
        let next = match &record.outcome {
            None => match checkout.resume(&record.order_id).await {
                Ok(Some(CheckoutOutcome::Placed(_))) => Some(0),
                Ok(_) => None,
                Err(_) => Some(retry_delay_ms(record.started_at_ms)),
            },
            Some(CheckoutOutcome::Placed(order)) if !record.delivered => match self.origin() {
                Some(origin) => match checkout.deliver(&order.id, &origin).await {
                    Ok(_) => None,
                    Err(e) => {
                        worker::console_warn!("order {} not delivered to the origin yet: {e}", order.id);
                        Some(retry_delay_ms(order.placed_at_ms))
                    }
                },
                // No origin configured (a local demo without one): the order waits here.
                None => Some(RETRY_DELAY_MS_MAX),
            },
            Some(_) => None,
        };
        if let Some(delay_ms) = next {
            self.state.storage().set_alarm(worker::ScheduledTime::from((now_ms() + delay_ms) as i64)).await?;
        }
        Response::ok("done")
    }

    async fn websocket_message(&self, _ws: WebSocket, _message: WebSocketIncomingMessage) -> worker::Result<()> {
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _clean: bool) -> worker::Result<()> {
        let _ = ws.close(Some(code.clamp(1000, 4999) as u16), Some("bye"));
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        Ok(())
    }
}

impl OrderObject {
    fn log(&self) -> &SqlLog {
        &self.log
    }

    fn checkout_with(&self) -> Checkout<'_> {
        Checkout { stock: &self.stock, payments: &TestMode, log: &self.log, clock: &crate::kv_catalog::WorkerClock }
    }

    async fn checkout(&self, call: CheckoutCall) -> Result<CheckoutOutcome, CheckoutError> {
        let result = self.checkout_with().run(call.order_id, call.request, call.lines, call.total).await;
        let delay_ms = match &result {
            Ok(CheckoutOutcome::Placed(_)) => Some(0),
            Ok(_) => None,
            Err(_) => Some(RECOVERY_DELAY_MS),
        };
        if let Some(delay_ms) = delay_ms {
            let at = worker::ScheduledTime::from((now_ms() + delay_ms) as i64);
            if let Err(e) = self.state.storage().set_alarm(at).await {
                worker::console_warn!("cannot arm the order alarm: {e}");
            }
        }
        result
    }

    fn order(&self) -> Option<Order> {
        match self.log().read().ok()??.outcome? {
            CheckoutOutcome::Placed(order) => Some(order),
            _ => None,
        }
    }

    /// Moves the order along its state machine; a cancel or a restocking return gives the units
    /// back through their shards (idempotent: `Cancel` by order id).
    async fn change_status(&self, raw: &str) -> worker::Result<Response> {
        let Some(status) = OrderStatus::parse(raw) else {
            return Response::error(format!("unknown order status {raw:?}"), 400);
        };
        let Ok(Some(mut record)) = self.log().read() else { return Response::error("no such order", 404) };
        let Some(CheckoutOutcome::Placed(order)) = &mut record.outcome else {
            return Response::error("no such order", 404);
        };
        if order.status == status {
            return Response::from_json(&serde_json::json!({ "order": order }));
        }
        if !order.status.can_move_to(status) {
            let message = format!("an order that is {} cannot become {}", order.status.as_str(), status.as_str());
            return Ok(Response::error(message, 409)?);
        }
        if status.returns_stock() {
            let shards: std::collections::BTreeSet<SkuShard> = order.lines.iter().map(|l| SkuShard::of(&l.sku)).collect();
            for shard in shards {
                if let Err(e) = self.stock.on_shard(shard, ShardRequest::Cancel { order: order.id.clone() }).await {
                    return Response::error(format!("stock could not be returned: {e}; retry"), 503);
                }
            }
        }
        order.set_status(status, now_ms());
        let message = order_message(order);
        let body = serde_json::json!({ "order": order });
        if let Err(e) = self.log().write(&record) {
            return Response::error(e.to_string(), 503);
        }
        for socket in self.state.get_websockets() {
            let _ = socket.send_with_str(&message);
        }
        Response::from_json(&body)
    }

    fn watch(&self) -> worker::Result<Response> {
        let Some(order) = self.order() else { return Response::error("no such order", 404) };
        if self.state.get_websockets().len() >= WATCHERS_MAX {
            return Response::error("too many watchers on this order", 503);
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let _ = pair.server.send_with_str(order_message(&order));
        Response::from_websocket(pair.client)
    }

    fn origin(&self) -> Option<OriginOutbox> {
        let url = self.env.var("ORIGIN_URL").ok()?.to_string();
        let token = self
            .env
            .secret("ORIGIN_TOKEN")
            .map(|s| s.to_string())
            .or_else(|_| self.env.var("ORIGIN_TOKEN").map(|v| v.to_string()))
            .unwrap_or_default();
        (!url.is_empty()).then_some(OriginOutbox { url, token })
    }
}

/// The delay before the next try, growing with the age of what waits.
fn retry_delay_ms(since_ms: u64) -> u64 {
    (now_ms().saturating_sub(since_ms) / 4).clamp(RETRY_DELAY_MS_MIN, RETRY_DELAY_MS_MAX)
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// The checkout record in the object's SQLite storage (one row).
struct SqlLog(SqlStorage);

impl SqlLog {
    fn read(&self) -> Result<Option<CheckoutRecord>, StoreError> {
        let unavailable = |e: worker::Error| StoreError::Unavailable(format!("order storage: {e}"));
        let cursor = self.0.exec("SELECT record FROM checkout WHERE id = 1", None).map_err(unavailable)?;
        let Some(row) = cursor.raw().next() else { return Ok(None) };
        match row.map_err(unavailable)?.into_iter().next() {
            Some(SqlStorageValue::Blob(bytes)) => from_cbor(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { key: "checkout".into(), reason: e.to_string() }),
            other => Err(StoreError::Corrupt { key: "checkout".into(), reason: format!("{other:?} is not a blob") }),
        }
    }

    fn write(&self, record: &CheckoutRecord) -> Result<(), StoreError> {
        self.0
            .exec(
                "INSERT INTO checkout (id, record) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                vec![SqlStorageValue::Blob(to_cbor(record))],
            )
            .map(drop)
            .map_err(|e| StoreError::Unavailable(format!("order storage: {e}")))
    }
}

impl CheckoutLog for SqlLog {
    fn get<'a>(&'a self, _order: &'a OrderId) -> BoxFuture<'a, Result<Option<CheckoutRecord>, StoreError>> {
        Box::pin(std::future::ready(self.read()))
    }

    fn put<'a>(&'a self, record: &'a CheckoutRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.write(record)))
    }
}

/// The payment gateway in test mode, without state: the decision is the token's (see
/// [`TestGateway::decide`]) and the charge id the order's, so a repeated charge is the same one.
struct TestMode;

impl PaymentGateway for TestMode {
    fn charge<'a>(&'a self, order: &'a OrderId, _amount: &'a Money, token: &'a str) -> BoxFuture<'a, Result<String, PaymentError>> {
        Box::pin(std::future::ready(TestGateway::decide(token).map(|()| format!("ch_test_{order}"))))
    }

    fn refund<'a>(&'a self, _order: &'a OrderId) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The origin's order intake (`POST {ORIGIN_URL}/internal/orders`).
struct OriginOutbox {
    url: String,
    token: String,
}

impl OriginOutbox {
    async fn send(&self, order: &Order) -> Result<(), StoreError> {
        let unavailable = |e: worker::Error| StoreError::Unavailable(format!("origin: {e}"));
        let headers = worker::Headers::new();
        headers.set("content-type", "application/json").map_err(unavailable)?;
        headers.set("authorization", &format!("Bearer {}", self.token)).map_err(unavailable)?;
        let body = serde_json::to_string(order).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        let url = format!("{}/internal/orders", self.url.trim_end_matches('/'));
        let request = Request::new_with_init(&url, &init).map_err(unavailable)?;
        let response = worker::Fetch::Request(request).send().await.map_err(unavailable)?;
        match response.status_code() {
            200 | 201 => Ok(()),
            status => Err(StoreError::Unavailable(format!("origin answered {status}"))),
        }
    }
}

impl OrderSink for OriginOutbox {
    fn deliver<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SendFuture::new(self.send(order)))
    }
}
