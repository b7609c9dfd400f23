//! The `OrderShard` Durable Object: the owner of the checkouts and orders of one order shard,
//! and their outbox to the origin.
//!
//! An order id maps to one of [`ORDER_SHARD_COUNT`] shards (FNV-1a of the id), so every retry of
//! one `Idempotency-Key` reaches the same object and its [`CheckoutRecord`]; a shard interleaves
//! many checkouts while they wait on stock shards (each step is idempotent by order id, so even
//! two concurrent tries of one order are safe). A record is written to the object's SQLite
//! storage before any hold is placed and again, with the outcome, before the 201 leaves (the
//! output gate holds the reply until it is durable). A placed order stays in the outbox until
//! the origin acknowledges it: the object's alarm retries delivery with backoff, and also
//! finishes checkouts a client abandoned mid-way. Browsers on an order page hold a WebSocket
//! here, tagged with the order id, and see status changes as they happen.
//!
//! (One object per order would also work on Cloudflare; a bounded set of shards keeps local
//! `wrangler dev` from creating a database per order, and lets one alarm sweep many orders.)

use crate::live::{is_upgrade, order_message};
use crate::shard_stub::DurableShards;
use edge_core::checkout::{
    Checkout, CheckoutError, CheckoutLog, CheckoutOutcome, CheckoutRecord, OrderSink, OrderTurns,
    PaymentError, PaymentGateway, TestGateway,
};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{CheckoutRequest, Order, OrderLine, OrderStatus};
use edge_core::stock::OrderId;
use edge_core::store::{BoxFuture, ShardedStock};
use edge_core::{Money, StoreError};
use serde::{Deserialize, Serialize};
use worker::send::SendFuture;
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, SqlStorage,
    SqlStorageValue, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

/// Number of order shards. Changing it moves orders between objects: only with a migration.
pub const ORDER_SHARD_COUNT: u64 = 32;

/// The name of the object that owns `order`.
pub fn order_shard_name(order: &OrderId) -> String {
    shard_name(edge_core::shard::fnv1a_64(order.as_str().as_bytes()) % ORDER_SHARD_COUNT)
}

/// The name of order shard `n` (below [`ORDER_SHARD_COUNT`]).
pub fn shard_name(n: u64) -> String {
    format!("order-shard-{n:02}")
}

const SCHEMA: [&str; 3] = [
    // `due_at_ms` is set while the alarm has work on the row: an open checkout to finish or a
    // placed order to deliver; NULL once it is settled.
    "CREATE TABLE IF NOT EXISTS checkouts (
        order_id TEXT PRIMARY KEY,
        record BLOB NOT NULL,
        due_at_ms INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS checkouts_due ON checkouts (due_at_ms) WHERE due_at_ms IS NOT NULL",
    // A placed order's failed deliveries to the origin, for the admin; gone once delivered.
    // `refused`: the origin's last answer was a refusal that a retry will not change by itself.
    "CREATE TABLE IF NOT EXISTS deliveries (
        order_id TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        last_try_ms INTEGER NOT NULL,
        refused INTEGER NOT NULL
    )",
];

/// Order-page sockets one shard keeps.
const WATCHERS_MAX: usize = 2_000;
/// When an open checkout is looked at again if its client went away.
const RECOVERY_DELAY_MS: u64 = 30_000;
/// Bounds of the outbox's retry delay.
const RETRY_DELAY_MS_MIN: u64 = 1_000;
const RETRY_DELAY_MS_MAX: u64 = 5 * 60 * 1_000;
/// Checkout request ids an object remembers for its deliveries.
const REQUEST_IDS_MAX: usize = 1_000;
/// Rows one alarm works through before re-arming.
const ALARM_BATCH_MAX: i64 = 50;
/// Waiting deliveries one shard lists for the admin.
pub const OUTBOX_LIST_MAX: i64 = 200;

/// A placed order the origin has not acknowledged yet, as the admin's outbox lists it.
#[derive(Serialize, Deserialize)]
pub struct PendingDelivery {
    pub order_id: OrderId,
    pub placed_at_ms: u64,
    pub total: Money,
    /// When the alarm tries it next.
    pub next_try_ms: u64,
    /// Failed tries so far, the last one's error and time.
    pub attempts: u64,
    pub last_error: Option<String>,
    pub last_try_ms: Option<u64>,
    /// The origin refused the order (a 4xx): retries go on, slowly, until the origin is fixed.
    pub refused: bool,
}

/// What the worker sends to run a checkout.
#[derive(Serialize, Deserialize)]
pub struct CheckoutCall {
    pub order_id: OrderId,
    pub request: CheckoutRequest,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    /// What promotions did (see [`edge_core::checkout::PricedOrder`]); absent from callers
    /// that predate promotions.
    #[serde(default)]
    pub pricing: Option<edge_core::order::OrderPricing>,
    #[serde(default)]
    pub usage: Vec<edge_core::promo::UsageClaim>,
}

/// An admin's status change: `{"status": "shipped"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChangeBody {
    status: String,
}

#[durable_object]
pub struct OrderShard {
    state: State,
    env: Env,
    log: SqlLog,
    /// The stock shards, reached from here for the checkout's holds and for cancels.
    stock: ShardedStock<DurableShards>,
    /// Runs of one order (checkout, alarm work, status change) take turns: the object
    /// interleaves requests at every outgoing fetch, and a run that read a record earlier
    /// must not write it back over another's.
    turns: OrderTurns,
    schema_fault: Option<String>,
    /// The request id of each recent checkout's request, sent with the order's delivery to
    /// the origin; in memory only, at most [`REQUEST_IDS_MAX`] (an evicted object's deliveries
    /// get fresh ids).
    request_ids: std::cell::RefCell<std::collections::BTreeMap<OrderId, String>>,
}

impl DurableObject for OrderShard {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let mut schema_fault = SCHEMA
            .iter()
            .find_map(|s| sql.exec(s, None).err())
            .map(|e| e.to_string());
        let stock = match env.durable_object(crate::STOCK_BINDING) {
            Ok(namespace) => ShardedStock::new(DurableShards::new(namespace)),
            Err(e) => {
                schema_fault = Some(format!("no {} binding: {e}", crate::STOCK_BINDING));
                ShardedStock::new(DurableShards::unbound())
            }
        };
        Self {
            state,
            env,
            log: SqlLog(sql),
            stock,
            turns: OrderTurns::default(),
            schema_fault,
            request_ids: Default::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if let Some(fault) = &self.schema_fault {
            return Response::error(format!("order schema unavailable: {fault}"), 503);
        }
        let url = req.url()?;
        let order = url
            .query_pairs()
            .find(|(k, _)| k == "order")
            .and_then(|(_, v)| OrderId::parse(&v).ok());
        if is_upgrade(&req) {
            return match order {
                Some(order) => self.watch(&order),
                None => Response::error("watching needs ?order=<id>", 400),
            };
        }
        match (req.method(), req.path().as_str(), order) {
            (Method::Post, "/checkout", _) => {
                let call: CheckoutCall = match from_cbor(&req.bytes().await?) {
                    Ok(call) => call,
                    Err(e) => return Response::error(format!("malformed checkout call: {e}"), 400),
                };
                let request_id = req.headers().get(crate::request_id::HEADER).ok().flatten();
                if let Some(id) = request_id.as_deref().and_then(crate::request_id::valid) {
                    let mut ids = self.request_ids.borrow_mut();
                    if ids.len() >= REQUEST_IDS_MAX {
                        ids.pop_first();
                    }
                    ids.insert(call.order_id.clone(), id.to_owned());
                }
                let result = self.checkout(call).await;
                Response::from_bytes(to_cbor(&result))
            }
            (Method::Get, "/order", Some(order)) => {
                Response::from_bytes(to_cbor(&self.order(&order)))
            }
            (Method::Get, "/outbox", _) => match self.log.pending_deliveries(OUTBOX_LIST_MAX) {
                Ok(pending) => Response::from_json(&pending),
                Err(e) => Response::error(e.to_string(), 503),
            },
            // In the order's turn: a try under way finishes (and sets its own next try) first.
            (Method::Post, "/outbox/retry", Some(order)) => {
                self.turns.run(&order, self.retry_now(&order)).await
            }
            (Method::Post, "/status", Some(order)) => {
                let body: StatusChangeBody = match serde_json::from_slice(&req.bytes().await?) {
                    Ok(body) => body,
                    Err(e) => return Response::error(format!("malformed status change: {e}"), 400),
                };
                self.turns
                    .run(&order, self.change_status(&order, &body.status))
                    .await
            }
            _ => Response::error("no such order route", 404),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let due = match self.log.due(now_ms(), ALARM_BATCH_MAX) {
            Ok(due) => due,
            Err(e) => return Response::error(e.to_string(), 503),
        };
        for order_id in due {
            // The record is read inside the order's turn (`work_on`), after any run before it.
            let next = self.turns.run(&order_id, self.work_on(&order_id)).await;
            if let Err(e) = self.log.set_due(&order_id, next) {
                worker::console_warn!("order {order_id}: {e}");
            }
        }
        self.arm_alarm().await?;
        Response::ok("done")
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _clean: bool,
    ) -> worker::Result<()> {
        let _ = ws.close(Some(code.clamp(1000, 4999) as u16), Some("bye"));
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        Ok(())
    }
}

impl OrderShard {
    fn checkout_with(&self) -> Checkout<'_> {
        Checkout {
            stock: &self.stock,
            payments: &TestMode,
            log: &self.log,
            clock: &crate::kv_catalog::WorkerClock,
        }
    }

    async fn checkout(&self, call: CheckoutCall) -> Result<CheckoutOutcome, CheckoutError> {
        let order_id = call.order_id.clone();
        let checkout = self.checkout_with();
        let priced = edge_core::checkout::PricedOrder {
            lines: call.lines,
            total: call.total,
            pricing: call.pricing,
            usage: call.usage,
        };
        let run = checkout.run_priced(call.order_id, call.request, priced);
        let result = self.turns.run(&order_id, run).await;
        let due = match &result {
            Ok(CheckoutOutcome::Placed(_)) => Some(now_ms()),
            Ok(_) => None,
            Err(_) => Some(now_ms() + RECOVERY_DELAY_MS),
        };
        if due.is_some() {
            if let Err(e) = self.log.set_due(&order_id, due) {
                worker::console_warn!("order {order_id}: {e}");
            } else if let Err(e) = self.arm_alarm().await {
                worker::console_warn!("cannot arm the order alarm: {e}");
            }
        }
        result
    }

    /// Finishes an open checkout or delivers a placed order; when to look at it again, if ever.
    /// Reads the record itself: it runs in the order's turn, after any run before it.
    async fn work_on(&self, order_id: &OrderId) -> Option<u64> {
        let record = match self.log.read(order_id) {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(_) => return Some(now_ms() + RETRY_DELAY_MS_MAX),
        };
        let record = &record;
        let checkout = self.checkout_with();
        match &record.outcome {
            None => match checkout.resume(&record.order_id).await {
                Ok(Some(CheckoutOutcome::Placed(_))) => Some(now_ms()),
                Ok(_) => None,
                Err(_) => Some(now_ms() + retry_delay_ms(record.started_at_ms)),
            },
            Some(CheckoutOutcome::Placed(order)) if !record.delivered => {
                // Without an origin (a local demo) the order waits here, looked at again now
                // and then, until one is configured.
                let origin = self.origin();
                let no_origin = origin.is_none();
                let delivered = match origin {
                    None => Err(StoreError::Unavailable(
                        "no ORIGIN_URL is configured".into(),
                    )),
                    Some(mut origin) => {
                        let remembered = self.request_ids.borrow().get(&order.id).cloned();
                        origin.request_id = remembered.unwrap_or_else(crate::request_id::fresh);
                        checkout.deliver(&order.id, &origin).await
                    }
                };
                match delivered {
                    Ok(_) => {
                        self.request_ids.borrow_mut().remove(&order.id);
                        if let Err(e) = self.log.delivered(&order.id) {
                            worker::console_warn!("order {}: {e}", order.id);
                        }
                        None
                    }
                    Err(e) => {
                        // A refusal stays one until someone fixes the origin or the order: the
                        // order is kept (it was acknowledged) and tried at the slowest pace.
                        let refused = matches!(e, StoreError::Protocol(_));
                        if refused {
                            worker::console_error!("the origin refused order {}: {e}", order.id);
                        } else {
                            worker::console_warn!(
                                "order {} not delivered to the origin yet: {e}",
                                order.id
                            );
                        }
                        let now = now_ms();
                        if let Err(e) = self.log.delivery_failed(&order.id, &e, refused, now) {
                            worker::console_warn!("order {}: {e}", order.id);
                        }
                        Some(if refused || no_origin {
                            now + RETRY_DELAY_MS_MAX
                        } else {
                            now + retry_delay_ms(order.placed_at_ms)
                        })
                    }
                }
            }
            Some(_) => None,
        }
    }

    /// Points the alarm at the earliest due row, if any.
    async fn arm_alarm(&self) -> worker::Result<()> {
        let next = self
            .log
            .next_due()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        if let Some(next) = next {
            let storage = self.state.storage();
            let current = storage.get_alarm().await?.map(|at| at.max(0) as u64);
            if current.is_none_or(|at| at > next) {
                storage.set_alarm(crate::live::alarm_at(next)).await?;
            }
        }
        Ok(())
    }

    /// The admin's "retry now" for a waiting delivery (e.g. once the origin is fixed): due now.
    async fn retry_now(&self, order_id: &OrderId) -> worker::Result<Response> {
        let waiting = match self.log.read(order_id) {
            Ok(Some(record)) => {
                matches!(record.outcome, Some(CheckoutOutcome::Placed(_))) && !record.delivered
            }
            Ok(None) => false,
            Err(e) => return Response::error(e.to_string(), 503),
        };
        if !waiting {
            return Response::error(
                format!("order {order_id} is not waiting for delivery to the origin"),
                404,
            );
        }
        let now = now_ms();
        if let Err(e) = self.log.set_due(order_id, Some(now)) {
            return Response::error(e.to_string(), 503);
        }
        self.arm_alarm().await?;
        Response::from_json(&serde_json::json!({ "order_id": order_id, "next_try_ms": now }))
    }

    fn order(&self, order: &OrderId) -> Option<Order> {
        match self.log.read(order).ok()??.outcome? {
            CheckoutOutcome::Placed(order) => Some(order),
            _ => None,
        }
    }

    /// Moves the order along its state machine; a cancel or a restocking return gives the units
    /// back through their shards, and a cancel its promotion uses too (idempotent: `Cancel` by
    /// order id; see `edge_core::checkout::stock_returns`).
    async fn change_status(&self, order_id: &OrderId, raw: &str) -> worker::Result<Response> {
        let Some(status) = OrderStatus::parse(raw) else {
            return Response::error(format!("unknown order status {raw:?}"), 400);
        };
        let Ok(Some(mut record)) = self.log.read(order_id) else {
            return Response::error("no such order", 404);
        };
        let Some(CheckoutOutcome::Placed(order)) = &mut record.outcome else {
            return Response::error("no such order", 404);
        };
        if order.status == status {
            return Response::from_json(&serde_json::json!({ "order": order }));
        }
        if !order.status.can_move_to(status) {
            let message = format!(
                "an order that is {} cannot become {}",
                order.status.as_str(),
                status.as_str()
            );
            return Response::error(message, 409);
        }
        if let Err(e) = edge_core::checkout::return_stock(&self.stock, order, status).await {
            return Response::error(format!("stock could not be returned: {e}; retry"), 503);
        }
        order.set_status(status, now_ms());
        let message = order_message(order);
        let body = serde_json::json!({ "order": order });
        if let Err(e) = self.log.write(&record) {
            return Response::error(e.to_string(), 503);
        }
        for socket in self.state.get_websockets_with_tag(order_id.as_str()) {
            let _ = socket.send_with_str(&message);
        }
        Response::from_json(&body)
    }

    fn watch(&self, order_id: &OrderId) -> worker::Result<Response> {
        let Some(order) = self.order(order_id) else {
            return Response::error("no such order", 404);
        };
        if self.state.get_websockets().len() >= WATCHERS_MAX {
            return Response::error("too many watchers on this order shard", 503);
        }
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[order_id.as_str()]);
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
        (!url.is_empty()).then_some(OriginOutbox {
            url,
            token,
            request_id: String::new(),
        })
    }
}

/// The delay before the next try, growing with the age of what waits.
fn retry_delay_ms(since_ms: u64) -> u64 {
    (now_ms().saturating_sub(since_ms) / 4).clamp(RETRY_DELAY_MS_MIN, RETRY_DELAY_MS_MAX)
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// A non-negative SQL number (SQLite may hand integers back as floats); `None` for NULL.
fn as_u64(value: &SqlStorageValue) -> Option<u64> {
    match value {
        SqlStorageValue::Integer(n) => Some((*n).max(0) as u64),
        SqlStorageValue::Float(n) => Some(n.max(0.0) as u64),
        _ => None,
    }
}

/// Checkout records in the object's SQLite storage, by order id.
struct SqlLog(SqlStorage);

fn unavailable(e: worker::Error) -> StoreError {
    StoreError::Unavailable(format!("order storage: {e}"))
}

fn decode(order: &str, row: Vec<SqlStorageValue>) -> Result<CheckoutRecord, StoreError> {
    match row.into_iter().next() {
        Some(SqlStorageValue::Blob(bytes)) => from_cbor(&bytes).map_err(|e| StoreError::Corrupt {
            key: order.to_owned(),
            reason: e.to_string(),
        }),
        other => Err(StoreError::Corrupt {
            key: order.to_owned(),
            reason: format!("{other:?} is not a blob"),
        }),
    }
}

impl SqlLog {
    fn read(&self, order: &OrderId) -> Result<Option<CheckoutRecord>, StoreError> {
        let cursor = self
            .0
            .exec(
                "SELECT record FROM checkouts WHERE order_id = ?",
                vec![order.as_str().into()],
            )
            .map_err(unavailable)?;
        let Some(row) = cursor.raw().next() else {
            return Ok(None);
        };
        decode(order.as_str(), row.map_err(unavailable)?).map(Some)
    }

    fn write(&self, record: &CheckoutRecord) -> Result<(), StoreError> {
        self.0
            .exec(
                "INSERT INTO checkouts (order_id, record) VALUES (?, ?)
                 ON CONFLICT (order_id) DO UPDATE SET record = excluded.record",
                vec![
                    record.order_id.as_str().into(),
                    SqlStorageValue::Blob(to_cbor(record)),
                ],
            )
            .map(drop)
            .map_err(unavailable)
    }

    fn set_due(&self, order: &OrderId, due_at_ms: Option<u64>) -> Result<(), StoreError> {
        let due: SqlStorageValue = due_at_ms.map_or(SqlStorageValue::Null, |at| (at as i64).into());
        self.0
            .exec(
                "UPDATE checkouts SET due_at_ms = ? WHERE order_id = ?",
                vec![due, order.as_str().into()],
            )
            .map(drop)
            .map_err(unavailable)
    }

    /// Orders whose due time has come, oldest first.
    fn due(&self, now_ms: u64, limit: i64) -> Result<Vec<OrderId>, StoreError> {
        let cursor = self
            .0
            .exec(
                "SELECT order_id FROM checkouts WHERE due_at_ms <= ? ORDER BY due_at_ms LIMIT ?",
                vec![(now_ms as i64).into(), limit.into()],
            )
            .map_err(unavailable)?;
        cursor
            .raw()
            .map(|row| match row.map_err(unavailable)?.into_iter().next() {
                Some(SqlStorageValue::String(id)) => {
                    OrderId::parse(&id).map_err(|reason| StoreError::Corrupt { key: id, reason })
                }
                other => Err(StoreError::Corrupt {
                    key: "checkouts".into(),
                    reason: format!("order id {other:?}"),
                }),
            })
            .collect()
    }

    fn delivery_failed(
        &self,
        order: &OrderId,
        error: &StoreError,
        refused: bool,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.0
            .exec(
                "INSERT INTO deliveries (order_id, attempts, last_error, last_try_ms, refused)
                 VALUES (?, 1, ?, ?, ?)
                 ON CONFLICT (order_id) DO UPDATE SET attempts = attempts + 1,
                   last_error = excluded.last_error, last_try_ms = excluded.last_try_ms,
                   refused = excluded.refused",
                vec![
                    order.as_str().into(),
                    error.to_string().into(),
                    (at_ms as i64).into(),
                    i64::from(refused).into(),
                ],
            )
            .map(drop)
            .map_err(unavailable)
    }

    fn delivered(&self, order: &OrderId) -> Result<(), StoreError> {
        self.0
            .exec(
                "DELETE FROM deliveries WHERE order_id = ?",
                vec![order.as_str().into()],
            )
            .map(drop)
            .map_err(unavailable)
    }

    /// Placed orders waiting for the origin, next try first (at most `limit` rows looked at).
    fn pending_deliveries(&self, limit: i64) -> Result<Vec<PendingDelivery>, StoreError> {
        let cursor = self
            .0
            .exec(
                "SELECT c.order_id, c.record, c.due_at_ms, d.attempts, d.last_error,
                        d.last_try_ms, d.refused
                 FROM checkouts c LEFT JOIN deliveries d ON d.order_id = c.order_id
                 WHERE c.due_at_ms IS NOT NULL ORDER BY c.due_at_ms LIMIT ?",
                vec![limit.into()],
            )
            .map_err(unavailable)?;
        let int = |v: Option<&SqlStorageValue>| v.and_then(as_u64);
        let mut pending = Vec::new();
        for row in cursor.raw() {
            let mut cells = row.map_err(unavailable)?.into_iter();
            let Some(SqlStorageValue::String(id)) = cells.next() else {
                continue;
            };
            let record = match decode(&id, cells.next().into_iter().collect()) {
                Ok(record) => record,
                Err(e) => {
                    worker::console_error!("outbox listing skips order {id}: {e}");
                    continue;
                }
            };
            let (Some(CheckoutOutcome::Placed(order)), false) = (record.outcome, record.delivered)
            else {
                continue;
            };
            // due_at_ms, then the deliveries columns (NULL before any failed try).
            let rest: Vec<SqlStorageValue> = cells.collect();
            pending.push(PendingDelivery {
                order_id: order.id,
                placed_at_ms: order.placed_at_ms,
                total: order.total,
                next_try_ms: int(rest.first()).unwrap_or(0),
                attempts: int(rest.get(1)).unwrap_or(0),
                last_error: match rest.get(2) {
                    Some(SqlStorageValue::String(e)) => Some(e.clone()),
                    _ => None,
                },
                last_try_ms: int(rest.get(3)),
                refused: int(rest.get(4)) == Some(1),
            });
        }
        Ok(pending)
    }

    fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let cursor = self
            .0
            .exec("SELECT MIN(due_at_ms) FROM checkouts", None)
            .map_err(unavailable)?;
        let Some(row) = cursor.raw().next() else {
            return Ok(None);
        };
        Ok(row.map_err(unavailable)?.first().and_then(as_u64))
    }
}

impl CheckoutLog for SqlLog {
    fn get<'a>(
        &'a self,
        order: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<CheckoutRecord>, StoreError>> {
        Box::pin(std::future::ready(self.read(order)))
    }

    fn put<'a>(&'a self, record: &'a CheckoutRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.write(record)))
    }
}

/// The payment gateway in test mode, without state: the decision is the token's (see
/// [`TestGateway::decide`]) and the charge id the order's, so a repeated charge is the same one.
struct TestMode;

impl PaymentGateway for TestMode {
    fn charge<'a>(
        &'a self,
        order: &'a OrderId,
        _amount: &'a Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<String, PaymentError>> {
        Box::pin(std::future::ready(
            TestGateway::decide(token).map(|()| format!("ch_test_{order}")),
        ))
    }

    fn refund<'a>(&'a self, _order: &'a OrderId) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The origin's order intake (`POST {ORIGIN_URL}/internal/orders`).
struct OriginOutbox {
    url: String,
    token: String,
    /// Sent as `X-Request-Id` (see [`crate::request_id`]); none when empty.
    request_id: String,
}

impl OriginOutbox {
    async fn send(&self, order: &Order) -> Result<(), StoreError> {
        let unavailable = |e: worker::Error| StoreError::Unavailable(format!("origin: {e}"));
        let headers = worker::Headers::new();
        headers
            .set("content-type", "application/json")
            .map_err(unavailable)?;
        headers
            .set("authorization", &format!("Bearer {}", self.token))
            .map_err(unavailable)?;
        if !self.request_id.is_empty() {
            headers
                .set(crate::request_id::HEADER, &self.request_id)
                .map_err(unavailable)?;
        }
        let body = serde_json::to_string(order).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let url = format!("{}/internal/orders", self.url.trim_end_matches('/'));
        let request = Request::new_with_init(&url, &init).map_err(unavailable)?;
        let mut response = worker::Fetch::Request(request)
            .send()
            .await
            .map_err(unavailable)?;
        match response.status_code() {
            200 | 201 => Ok(()),
            status if edge_core::store::refusal_is_final(status) => {
                let detail = response.text().await.unwrap_or_default();
                let detail: String = detail.chars().take(300).collect();
                Err(StoreError::Protocol(format!(
                    "origin refused the order ({status}): {detail}"
                )))
            }
            status => Err(StoreError::Unavailable(format!("origin answered {status}"))),
        }
    }
}

impl OrderSink for OriginOutbox {
    fn deliver<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SendFuture::new(self.send(order)))
    }
}
