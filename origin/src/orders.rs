//! The orders system of record: `orders.sqlite` in the data dir (WAL, `synchronous=FULL`).
//!
//! # Tables
//! - `orders`: one row per acknowledged order, by id: e-mail, status, total (minor units and
//!   currency), when it was placed, and the whole [`Order`] as JSON (what the admin shows).
//! - `order_status_history`: the order's status changes, one row each, in order.
//! - `checkout_records`: the origin's own [`CheckoutLog`] (its storefront checkouts), each
//!   [`CheckoutRecord`] as CBOR with its phase (`open`, `placed`, `failed`) and whether it was
//!   delivered, indexed so the recovery loop finds the unfinished ones without a scan.
//!
//! # Intake
//! Orders arrive by [`OrderSink::deliver`] (the origin's own checkouts) or `POST
//! /internal/orders` (an edge's outbox). Both insert or ignore by id, so a retried delivery is
//! harmless: the first copy of an order is the record. Every write is fsynced before the caller
//! hears it succeeded; concurrent writes share a transaction and its fsync
//! ([`crate::db::GroupCommit`]), each in its own savepoint.

use crate::db::{self, GroupCommit, GroupError, OpenError, Serial, SerialError};
use crate::http::{authorize, RouteError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use edge_core::checkout::{CheckoutLog, CheckoutOutcome, CheckoutRecord, OrderSink};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{priced_total, Order, OrderStatus, EMAIL_LEN_MAX};
use edge_core::stock::{validate_lines, OrderId};
use edge_core::store::{BoxFuture, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Writes and reads that may wait for the orders database before more are refused (503).
pub const ORDERS_WAITING_MAX: usize = 8_192;
/// Largest order body `POST /internal/orders` accepts (50 lines with long titles fit easily).
pub const ORDER_BODY_BYTES_MAX: usize = 256 * 1024;
/// Most status changes one order may carry.
pub const ORDER_HISTORY_MAX: usize = 64;
/// Longest payment charge id accepted.
pub const CHARGE_ID_LEN_MAX: usize = 256;
/// Order ids one listing page returns at most, and by default.
pub const LIST_LIMIT_MAX: usize = 1_000;
pub const LIST_LIMIT_DEFAULT: usize = 100;

const ORDERS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL,
    status         TEXT NOT NULL,
    total_minor    INTEGER NOT NULL CHECK (total_minor >= 0),
    currency       TEXT NOT NULL,
    placed_at_ms   INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body           TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_placed ON orders (placed_at_ms);
CREATE TABLE IF NOT EXISTS order_status_history (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq      INTEGER NOT NULL,
    status   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    PRIMARY KEY (order_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkout_records (
    order_id      TEXT PRIMARY KEY NOT NULL,
    phase         TEXT NOT NULL CHECK (phase IN ('open', 'placed', 'failed')),
    delivered     INTEGER NOT NULL CHECK (delivered IN (0, 1)),
    started_at_ms INTEGER NOT NULL,
    record        BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS checkout_records_unfinished ON checkout_records (started_at_ms)
    WHERE phase = 'open' OR (phase = 'placed' AND delivered = 0);
";

/// Why the order book refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrdersError {
    /// The order is malformed: the sender must fix it, a retry will not help.
    #[error("invalid order: {0}")]
    Invalid(String),
    /// The database failed or is overloaded: transient, retry.
    #[error("orders database: {0}")]
    Storage(String),
}

impl From<SerialError> for OrdersError {
    fn from(e: SerialError) -> Self {
        OrdersError::Storage(e.to_string())
    }
}

impl From<GroupError> for OrdersError {
    fn from(e: GroupError) -> Self {
        OrdersError::Storage(e.to_string())
    }
}

impl From<rusqlite::Error> for OrdersError {
    fn from(e: rusqlite::Error) -> Self {
        OrdersError::Storage(e.to_string())
    }
}

impl From<OrdersError> for StoreError {
    fn from(e: OrdersError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Where an unfinished checkout stands, for the recovery loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// No outcome yet: resume it.
    Open,
    /// Placed, not yet in the orders table: deliver it.
    Undelivered,
}

/// The orders database. Cheap to clone: clones share its two connections.
#[derive(Clone)]
pub struct OrderBook {
    /// Every write goes through one writer thread in group commits: a checkout writes here
    /// four or five times, so under load the fsyncs of concurrent checkouts are shared.
    writer: Arc<GroupCommit>,
    /// Reads use their own connection (WAL: they see every committed write, and never wait
    /// for a commit in progress).
    conn: Arc<Serial<Connection>>,
    clock: Arc<dyn edge_core::snapshot::Clock>,
}

impl OrderBook {
    /// Opens (or creates) `orders.sqlite` under `data_dir`, which must exist.
    pub fn open(
        data_dir: &Path,
        clock: Arc<dyn edge_core::snapshot::Clock>,
    ) -> Result<Self, OpenError> {
        let path = db::orders_file(data_dir);
        let writer = db::open_durable(&path, ORDERS_SCHEMA)?;
        let reader = db::open_durable(&path, ORDERS_SCHEMA)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(|source| OpenError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let writer = GroupCommit::start(writer, "orders")
            .map_err(|e| OpenError::Thread { path, source: e })?;
        Ok(Self {
            writer: Arc::new(writer),
            conn: Arc::new(Serial::new(reader, ORDERS_WAITING_MAX)),
            clock,
        })
    }

    /// Stores an order unless one with its id is already stored. `Ok(true)` when it was new.
    pub async fn store(&self, order: &Order) -> Result<bool, OrdersError> {
        validate_order(order)?;
        let body = serde_json::to_string(order)
            .map_err(|e| OrdersError::Invalid(format!("cannot encode the order: {e}")))?;
        let order = order.clone();
        let received_at_ms = self.clock.now_ms();
        self.writer
            .write(move |conn| insert_order(conn, &order, &body, received_at_ms))
            .await
            .map_err(OrdersError::from)
    }

    /// The stored order, or `None`.
    pub async fn order(&self, id: &OrderId) -> Result<Option<Order>, OrdersError> {
        let id = id.clone();
        let body: Option<String> = self
            .conn
            .run(move |conn| {
                conn.prepare_cached("SELECT body FROM orders WHERE id = ?1")?
                    .query_row([id.as_str()], |row| row.get(0))
                    .optional()
            })
            .await??;
        body.map(|body| {
            serde_json::from_str(&body)
                .map_err(|e| OrdersError::Storage(format!("a stored order is corrupt: {e}")))
        })
        .transpose()
    }

    /// The SKUs of each order placed since `since_ms` and not cancelled, newest orders first, at
    /// most `limit` orders: what "bought together" counts co-purchases in.
    pub async fn baskets(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<Vec<String>>, OrdersError> {
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String)> = self
            .conn
            .run(move |conn| {
                let mut select = conn.prepare_cached(
                    "SELECT o.id, json_extract(l.value, '$.sku') FROM \
                     (SELECT id, body, placed_at_ms FROM orders WHERE placed_at_ms >= ?1 AND status != 'cancelled' \
                      ORDER BY placed_at_ms DESC LIMIT ?2) AS o, json_each(o.body, '$.lines') AS l \
                     ORDER BY o.placed_at_ms DESC, o.id",
                )?;
                let rows = select.query_map(params![since, limit], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await??;
        let mut baskets: Vec<Vec<String>> = Vec::new();
        let mut last: Option<String> = None;
        for (id, sku) in rows {
            if last.as_ref() != Some(&id) {
                baskets.push(Vec::new());
                last = Some(id);
            }
            if let Some(basket) = baskets.last_mut() {
                if !basket.contains(&sku) {
                    basket.push(sku);
                }
            }
        }
        Ok(baskets)
    }

    /// Up to `limit` stored order ids after `after`, in id order.
    pub async fn ids(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<String>, OrdersError> {
        let limit = limit.min(LIST_LIMIT_MAX) as i64;
        self.conn
            .run(move |conn| {
                let mut select = conn
                    .prepare_cached("SELECT id FROM orders WHERE id > ?1 ORDER BY id LIMIT ?2")?;
                let ids = select
                    .query_map(params![after.unwrap_or_default(), limit], |row| row.get(0))?;
                ids.collect::<Result<Vec<String>, _>>()
            })
            .await?
            .map_err(OrdersError::from)
    }

    /// The stored status history of an order, oldest first.
    pub async fn history(&self, id: &OrderId) -> Result<Vec<(String, u64)>, OrdersError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                let mut select = conn.prepare_cached(
                    "SELECT status, at_ms FROM order_status_history WHERE order_id = ?1 \
                     ORDER BY seq LIMIT ?2",
                )?;
                let rows = select
                    .query_map(params![id.as_str(), ORDER_HISTORY_MAX as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await?
            .map_err(OrdersError::from)
    }

    /// Checkouts started at or before `started_before_ms` that are still open, or placed but
    /// not delivered: oldest first, at most `limit`.
    pub async fn unfinished(
        &self,
        started_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<(OrderId, Unfinished)>, OrdersError> {
        let limit = limit.min(LIST_LIMIT_MAX) as i64;
        let rows: Vec<(String, String)> = self
            .conn
            .run(move |conn| {
                let mut select = conn.prepare_cached(
                    "SELECT order_id, phase FROM checkout_records \
                     WHERE (phase = 'open' OR (phase = 'placed' AND delivered = 0)) \
                     AND started_at_ms <= ?1 ORDER BY started_at_ms LIMIT ?2",
                )?;
                let rows = select.query_map(params![started_before_ms, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await??;
        rows.into_iter()
            .map(|(id, phase)| {
                let id = OrderId::parse(&id)
                    .map_err(|e| OrdersError::Storage(format!("stored order id {id:?}: {e}")))?;
                let state = if phase == "open" {
                    Unfinished::Open
                } else {
                    Unfinished::Undelivered
                };
                Ok((id, state))
            })
            .collect()
    }

    /// Runs `f` on the read connection on this thread (tests: inspect the tables).
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        self.conn.with(|conn| f(conn))
    }
}

/// Checks what the database and the admin rely on: bounded sizes, and a total that is the sum
/// of the lines less the recorded discounts plus shipping (an edge never prices an order any
/// other way).
fn validate_order(order: &Order) -> Result<(), OrdersError> {
    let invalid = |m: String| Err(OrdersError::Invalid(m));
    let lines: Vec<_> = order.lines.iter().map(|l| l.line()).collect();
    if let Err(e) = validate_lines(&lines) {
        return invalid(e);
    }
    let email = order.email.trim();
    if email.is_empty() || email.len() > EMAIL_LEN_MAX || !email.contains('@') {
        return invalid(format!("email {:?} is not an e-mail address", order.email));
    }
    if order.charge_id.len() > CHARGE_ID_LEN_MAX {
        return invalid(format!("charge_id is longer than {CHARGE_ID_LEN_MAX}"));
    }
    if order.history.len() > ORDER_HISTORY_MAX {
        return invalid(format!("more than {ORDER_HISTORY_MAX} status changes"));
    }
    if let Err(e) = order.total.validate() {
        return invalid(format!("total: {e}"));
    }
    if priced_total(&order.lines, order.pricing.as_ref()).as_ref() != Some(&order.total) {
        return invalid(format!(
            "total {} {} is not the sum of the lines less discounts plus shipping",
            order.total.minor, order.total.currency
        ));
    }
    if i64::try_from(order.total.minor).is_err() || i64::try_from(order.placed_at_ms).is_err() {
        return invalid("total or placed_at_ms is out of range".into());
    }
    Ok(())
}

/// Inserts the order and its history unless its id is stored; `true` when it was new.
fn insert_order(
    conn: &Connection,
    order: &Order,
    body: &str,
    received_at_ms: u64,
) -> rusqlite::Result<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO orders (id, email, status, total_minor, currency, placed_at_ms, \
             received_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            order.id.as_str(),
            order.email.trim(),
            order.status.as_str(),
            order.total.minor,
            order.total.currency,
            order.placed_at_ms,
            received_at_ms,
            body
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    let mut history = conn.prepare_cached(
        "INSERT INTO order_status_history (order_id, seq, status, at_ms) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (seq, change) in order.history.iter().enumerate() {
        history.execute(params![
            order.id.as_str(),
            seq as i64,
            change.status.as_str(),
            change.at_ms
        ])?;
    }
    Ok(true)
}

impl OrderSink for OrderBook {
    fn deliver<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self.store(order).await {
                Ok(_) => Ok(()),
                // An order this origin placed itself is well formed; if not, retrying cannot
                // help, so the error says so instead of looking transient.
                Err(OrdersError::Invalid(m)) => Err(StoreError::Protocol(m)),
                Err(e) => Err(e.into()),
            }
        })
    }
}

fn phase(record: &CheckoutRecord) -> &'static str {
    match record.outcome {
        None => "open",
        Some(CheckoutOutcome::Placed(_)) => "placed",
        Some(_) => "failed",
    }
}

impl CheckoutLog for OrderBook {
    fn get<'a>(
        &'a self,
        order: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<CheckoutRecord>, StoreError>> {
        Box::pin(async move {
            let id = order.clone();
            let bytes: Option<Vec<u8>> = self
                .conn
                .run(move |conn| {
                    conn.prepare_cached("SELECT record FROM checkout_records WHERE order_id = ?1")?
                        .query_row([id.as_str()], |row| row.get(0))
                        .optional()
                })
                .await
                .map_err(OrdersError::from)?
                .map_err(OrdersError::from)?;
            bytes
                .map(|bytes| {
                    from_cbor(&bytes).map_err(|e| StoreError::Corrupt {
                        key: format!("checkout_records/{order}"),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        })
    }

    fn put<'a>(&'a self, record: &'a CheckoutRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let id = record.order_id.to_string();
            let phase = phase(record);
            let delivered = record.delivered;
            let started_at_ms = record.started_at_ms;
            let bytes = to_cbor(record);
            self.writer
                .write(move |conn| {
                    conn.prepare_cached(
                        "INSERT INTO checkout_records (order_id, phase, delivered, started_at_ms, \
                         record) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (order_id) DO UPDATE SET \
                         phase = excluded.phase, delivered = excluded.delivered, \
                         record = excluded.record",
                    )?
                    .execute(params![
                        id,
                        phase,
                        delivered,
                        started_at_ms,
                        bytes
                    ])
                })
                .await
                .map_err(OrdersError::from)?;
            Ok(())
        })
    }
}

#[derive(Clone)]
struct IntakeState {
    book: OrderBook,
    token: String,
}

/// `/internal/orders...`, behind `Authorization: Bearer <token>`; 404 without a token.
pub fn routes(book: OrderBook, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new().route("/internal/{*rest}", get(disabled).post(disabled));
    };
    Router::new()
        .route("/internal/orders", get(list_orders).post(ingest_order))
        .route("/internal/orders/{id}", get(get_order))
        .layer(DefaultBodyLimit::max(ORDER_BODY_BYTES_MAX))
        .with_state(IntakeState { book, token })
}

async fn disabled() -> RouteError {
    RouteError::NotFound("the internal API is disabled: the origin has no token".into())
}

impl From<OrdersError> for RouteError {
    fn from(e: OrdersError) -> Self {
        match e {
            OrdersError::Invalid(m) => RouteError::BadRequest(m),
            OrdersError::Storage(m) => RouteError::Unavailable(m),
        }
    }
}

/// `POST /internal/orders`: 201 `{"stored": true}` for a new order, 200 `{"stored": false}`
/// for one already stored.
async fn ingest_order(
    State(intake): State<IntakeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RouteError> {
    authorize(&headers, &intake.token)?;
    let body = body.map_err(|e| RouteError::BadRequest(format!("cannot read the body: {e}")))?;
    let order: Order = serde_json::from_slice(&body)
        .map_err(|e| RouteError::BadRequest(format!("the body is not an order: {e}")))?;
    let stored = intake.book.store(&order).await?;
    let status = if stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "stored": stored }))).into_response())
}

async fn get_order(
    State(intake): State<IntakeState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, RouteError> {
    authorize(&headers, &intake.token)?;
    let id = OrderId::parse(&id).map_err(|e| RouteError::BadRequest(format!("order id: {e}")))?;
    match intake.book.order(&id).await? {
        Some(order) => Ok(([(header::CACHE_CONTROL, "no-store")], Json(order)).into_response()),
        None => Err(RouteError::NotFound(format!("no order {id}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /internal/orders?limit=&after=`: `{"ids": [...], "next": id or null}`, in id order;
/// pass `next` as `after` for the following page.
async fn list_orders(
    State(intake): State<IntakeState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, RouteError> {
    authorize(&headers, &intake.token)?;
    let Query(query) = query.map_err(|e| RouteError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(RouteError::BadRequest(format!(
            "limit must be 1 to {LIST_LIMIT_MAX}"
        )));
    }
    let ids = intake.book.ids(query.after, limit).await?;
    let next = (ids.len() == limit).then(|| ids.last().cloned()).flatten();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "ids": ids, "next": next })),
    )
        .into_response())
}

/// Orders one admin search page holds at most.
pub const SEARCH_PAGE_SIZE_MAX: usize = 100;
/// Longest free-text search accepted.
pub const SEARCH_TEXT_LEN_MAX: usize = 200;

/// What the admin's order search filters on; every field narrows, `None` does not.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// Placed at or after (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Placed before (ms since the epoch).
    pub to_ms: Option<u64>,
    /// The shopper's e-mail, exactly (case-insensitive).
    pub email: Option<String>,
    /// Orders with a line of this SKU.
    pub sku: Option<String>,
    /// Text in the order id, the e-mail or a line's title.
    pub text: Option<String>,
    /// Orders to skip (page × page size) and to return.
    pub offset: usize,
    pub limit: usize,
}

/// One row of a search result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrderSummary {
    pub id: String,
    pub email: String,
    pub status: String,
    pub total_minor: u64,
    pub currency: String,
    pub placed_at_ms: u64,
}

/// What [`OrderBook::change_status`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusMove {
    /// The order moved; it before and after.
    Moved {
        before: Box<Order>,
        after: Box<Order>,
    },
    /// The state machine forbids it; nothing changed.
    Illegal {
        from: OrderStatus,
    },
    NotFound,
}

/// `LIKE` text matching `text` anywhere, with `%`, `_` and `\` taken literally.
fn like_anywhere(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

impl OrderBook {
    /// The orders matching `filter`, newest first, and how many match in all.
    pub async fn search(
        &self,
        filter: OrderFilter,
    ) -> Result<(Vec<OrderSummary>, u64), OrdersError> {
        let limit = filter.limit.min(SEARCH_PAGE_SIZE_MAX) as i64;
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        self.conn
            .run(move |conn| {
                let mut clauses: Vec<&str> = Vec::new();
                let mut values: Vec<rusqlite::types::Value> = Vec::new();
                use rusqlite::types::Value as V;
                if let Some(status) = filter.status {
                    clauses.push("status = ?");
                    values.push(V::Text(status.as_str().into()));
                }
                if let Some(from_ms) = filter.from_ms {
                    clauses.push("placed_at_ms >= ?");
                    values.push(V::Integer(i64::try_from(from_ms).unwrap_or(i64::MAX)));
                }
                if let Some(to_ms) = filter.to_ms {
                    clauses.push("placed_at_ms < ?");
                    values.push(V::Integer(i64::try_from(to_ms).unwrap_or(i64::MAX)));
                }
                if let Some(email) = filter.email {
                    clauses.push("lower(email) = lower(?)");
                    values.push(V::Text(email.trim().into()));
                }
                if let Some(sku) = filter.sku {
                    clauses.push(
                        "EXISTS (SELECT 1 FROM json_each(orders.body, '$.lines') AS l \
                         WHERE json_extract(l.value, '$.sku') = ?)",
                    );
                    values.push(V::Text(sku));
                }
                if let Some(text) = filter.text {
                    clauses.push(
                        "(id LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\' OR EXISTS \
                         (SELECT 1 FROM json_each(orders.body, '$.lines') AS l \
                         WHERE json_extract(l.value, '$.title') LIKE ? ESCAPE '\\'))",
                    );
                    let pattern = like_anywhere(&text);
                    values.extend([
                        V::Text(pattern.clone()),
                        V::Text(pattern.clone()),
                        V::Text(pattern),
                    ]);
                }
                let mut clause = String::new();
                for (i, c) in clauses.iter().enumerate() {
                    clause.push_str(if i == 0 { " WHERE " } else { " AND " });
                    clause.push_str(c);
                }
                let total: u64 = conn.query_row(
                    &format!("SELECT COUNT(*) FROM orders{clause}"),
                    rusqlite::params_from_iter(values.iter()),
                    |row| row.get(0),
                )?;
                values.push(V::Integer(limit));
                values.push(V::Integer(offset));
                let mut select = conn.prepare(&format!(
                    "SELECT id, email, status, total_minor, currency, placed_at_ms FROM orders\
                     {clause} ORDER BY placed_at_ms DESC, id DESC LIMIT ? OFFSET ?"
                ))?;
                let rows = select.query_map(rusqlite::params_from_iter(values.iter()), |row| {
                    Ok(OrderSummary {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        status: row.get(2)?,
                        total_minor: row.get(3)?,
                        currency: row.get(4)?,
                        placed_at_ms: row.get(5)?,
                    })
                })?;
                Ok((rows.collect::<Result<Vec<_>, _>>()?, total))
            })
            .await?
            .map_err(|e: rusqlite::Error| OrdersError::from(e))
    }

    /// Moves an order to `to` if the state machine ([`OrderStatus::can_move_to`]) allows it,
    /// recording the change in its history; the check and the write are one transaction, so
    /// two admins moving one order at once cannot both win from the same status.
    pub async fn change_status(
        &self,
        id: &OrderId,
        to: OrderStatus,
        at_ms: u64,
    ) -> Result<StatusMove, OrdersError> {
        let id = id.clone();
        let moved = self
            .writer
            .write(
                move |conn| -> rusqlite::Result<Result<StatusMove, String>> {
                    let body: Option<String> = conn
                        .prepare_cached("SELECT body FROM orders WHERE id = ?1")?
                        .query_row([id.as_str()], |row| row.get(0))
                        .optional()?;
                    let Some(body) = body else {
                        return Ok(Ok(StatusMove::NotFound));
                    };
                    let before: Order = match serde_json::from_str(&body) {
                        Ok(order) => order,
                        Err(e) => return Ok(Err(format!("stored order {id} is corrupt: {e}"))),
                    };
                    if !before.status.can_move_to(to) {
                        return Ok(Ok(StatusMove::Illegal {
                            from: before.status,
                        }));
                    }
                    if before.history.len() >= ORDER_HISTORY_MAX {
                        return Ok(Err(format!(
                            "order {id} already has {ORDER_HISTORY_MAX} status changes"
                        )));
                    }
                    let mut after = before.clone();
                    after.set_status(to, at_ms);
                    let Ok(after_body) = serde_json::to_string(&after) else {
                        return Ok(Err(format!("cannot encode order {id}")));
                    };
                    conn.prepare_cached("UPDATE orders SET status = ?1, body = ?2 WHERE id = ?3")?
                        .execute(params![to.as_str(), after_body, id.as_str()])?;
                    conn.prepare_cached(
                        "INSERT INTO order_status_history (order_id, seq, status, at_ms) \
                     VALUES (?1, (SELECT COALESCE(MAX(seq) + 1, 0) FROM order_status_history \
                     WHERE order_id = ?1), ?2, ?3)",
                    )?
                    .execute(params![id.as_str(), to.as_str(), at_ms])?;
                    Ok(Ok(StatusMove::Moved {
                        before: Box::new(before),
                        after: Box::new(after),
                    }))
                },
            )
            .await?;
        moved.map_err(OrdersError::Storage)
    }
}

/// Orders one e-mail's export or erasure covers at most.
pub const ORDERS_PER_EMAIL_MAX: usize = 10_000;

impl OrderBook {
    /// Runs a read-only query on the read connection (reports, exports).
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, OrdersError> {
        self.conn
            .run(move |conn| f(conn))
            .await?
            .map_err(OrdersError::from)
    }

    /// Every order placed with `email` (case-insensitive), oldest first, at most
    /// [`ORDERS_PER_EMAIL_MAX`].
    pub async fn orders_by_email(&self, email: &str) -> Result<Vec<Order>, OrdersError> {
        let email = email.trim().to_owned();
        let bodies: Vec<String> = self
            .query(move |conn| {
                let mut select = conn.prepare_cached(
                    "SELECT body FROM orders WHERE lower(email) = lower(?1) \
                     ORDER BY placed_at_ms, id LIMIT ?2",
                )?;
                let rows = select
                    .query_map(params![email, ORDERS_PER_EMAIL_MAX as i64], |row| {
                        row.get(0)
                    })?;
                rows.collect()
            })
            .await?;
        bodies
            .iter()
            .map(|body| {
                serde_json::from_str(body)
                    .map_err(|e| OrdersError::Storage(format!("a stored order is corrupt: {e}")))
            })
            .collect()
    }

    /// Replaces `email` (case-insensitive) with `replacement` on every order placed with it,
    /// in the table and in the stored order; the number of orders changed. The orders stay
    /// (they are the shop's accounting records), only who placed them is forgotten.
    pub async fn anonymise_email(
        &self,
        email: &str,
        replacement: &str,
    ) -> Result<usize, OrdersError> {
        let (email, replacement) = (email.trim().to_owned(), replacement.to_owned());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE orders SET email = ?1, body = json_set(body, '$.email', ?1) \
                     WHERE lower(email) = lower(?2)",
                )?
                .execute(params![replacement, email])
            })
            .await
            .map_err(OrdersError::from)
    }
}
