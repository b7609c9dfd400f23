//! The origin coordinator: all 16 stock shards in this process, each a single writer persisted
//! in its own SQLite file, reachable in process ([`OriginStock`]) and over HTTP for remote edges.
//!
//! # Shards
//! Shard `NN` lives in `shard-NN.sqlite` under the data dir ([`crate::db::shard_file`]).
//! [`SqliteShard`] implements [`ShardStorage`] over two tables, `stock_levels` and `holds`, and
//! [`SqliteShard::apply`] runs each [`edge_core::stock::apply`] inside one `BEGIN IMMEDIATE …
//! COMMIT`: the commit is fsynced (WAL, `synchronous=FULL`) before anyone sees the reply, and a
//! [`StorageFault`] part-way rolls everything back. The schema repeats the stock invariant as
//! `CHECK`s, so even a bug in `apply` cannot store a level that loses units.
//!
//! # Driving them
//! [`OriginShards`] keeps each shard's connection in a [`Serial`] (a std `Mutex` used only from
//! `spawn_blocking`, with a bounded queue in front), so one shard's fsync never blocks the
//! runtime or another shard. [`OriginShards::spawn_expiry`] sends `Expire` to every shard that
//! has a due hold, once a second; a hold is therefore released at most about a second late by
//! the timer, and exactly on time by any `Commit` that touches it (see `apply`).
//!
//! # Wire
//! [`routes`] serves `POST /coordinator/shards/{n}`: a CBOR [`ShardRequest`] in, the CBOR
//! [`ShardReply`] out, behind `Authorization: Bearer <token>`. 400 for a body that is not a
//! request, 404 for a shard index outside `0..16`, 503 when the shard's storage failed or is
//! overloaded (nothing was changed that the retry would double: every request is idempotent).
//!
//! [`desk_routes`] serves the order desk to edges that have no order owner of their own (Spin):
//! `POST /coordinator/checkouts` (a CBOR [`RemoteCheckout`] in, the CBOR
//! `Result<CheckoutOutcome, CheckoutError>` out) runs the checkout with its promotions on the
//! origin's [`crate::desk::OriginDesk`], as its own storefront does: the order records its
//! pricing, and the promotion usage counters are held and sold beside the lines on these shards,
//! so a usage limit holds across edges. A checkout whose amounts do not add up (or that claims a
//! counter no applied promotion uses) is refused with 400 and the reason. `GET
//! /coordinator/orders/{id}` answers the CBOR `Option<Order>`. Same token, same errors.

use crate::db::{self, OpenError, Serial, SerialError};
use crate::http::{authorize, RouteError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use edge_core::checkout::{OrderDesk, RemoteCheckout};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::shard::SHARD_COUNT;
use edge_core::snapshot::Clock;
use edge_core::stock::{
    self, Hold, HoldState, Line, MemoryShardStorage, OrderId, ShardReply, ShardRequest,
    ShardStorage, StorageFault, EXPIRE_BATCH_MAX,
};
use edge_core::store::{BoxFuture, ShardTransport, ShardedStock, StoreError};
use edge_core::{Sku, SkuShard, StockLevel};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Requests that may wait for one shard before more are refused with 503. A flash sale queues
/// at most one request per open checkout per shard; this is far above any sane concurrency.
pub const SHARD_WAITING_MAX: usize = 4_096;
/// How often the expiry timer looks for due holds.
pub const EXPIRE_TICK_MS: u64 = 1_000;
/// `Expire` rounds one shard gets per tick (each releases up to `EXPIRE_BATCH_MAX` holds);
/// the rest wait for the next tick, so one shard's backlog cannot starve the others.
const EXPIRE_ROUNDS_PER_TICK_MAX: usize = 8;
/// Largest request body on the wire: a seed of `SEED_BATCH_MAX` SKUs is well under it.
pub const SHARD_REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The `holds` table's columns and checks, shared by the schema and its migration.
macro_rules! holds_table {
    () => {
        "(
    order_id      TEXT PRIMARY KEY NOT NULL,
    state         TEXT NOT NULL
                  CHECK (state IN ('held', 'committed', 'released', 'expired', 'cancelled',
                                   'received')),
    expires_at_ms INTEGER CHECK ((state = 'held') = (expires_at_ms IS NOT NULL)),
    lines         BLOB NOT NULL
) WITHOUT ROWID;"
    };
}

/// One shard's tables. `received = available + held + sold` is checked by SQLite too, and a
/// hold has an expiry exactly when it is still held. The partial index holds only live holds:
/// `due_holds` and `next_expiry` read it, and it stays as small as the open checkouts.
const SHARD_SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS stock_levels (
    sku       TEXT PRIMARY KEY NOT NULL,
    available INTEGER NOT NULL CHECK (available BETWEEN 0 AND 4294967295),
    held      INTEGER NOT NULL CHECK (held BETWEEN 0 AND 4294967295),
    sold      INTEGER NOT NULL CHECK (sold BETWEEN 0 AND 4294967295),
    received  INTEGER NOT NULL CHECK (received >= 0),
    CHECK (received = available + held + sold)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds ",
    holds_table!(),
    "
CREATE INDEX IF NOT EXISTS holds_by_expiry ON holds (expires_at_ms) WHERE state = 'held';
"
);

/// Shard files made before restock receipts (`received` holds) have a `holds` table whose CHECK
/// refuses them; SQLite cannot change a CHECK in place, so the table is rebuilt, in one
/// transaction, with every row kept.
const MIGRATE_HOLDS_RECEIVED: &str = concat!(
    "
BEGIN IMMEDIATE;
CREATE TABLE holds_v2 ",
    holds_table!(),
    "
INSERT INTO holds_v2 (order_id, state, expires_at_ms, lines)
    SELECT order_id, state, expires_at_ms, lines FROM holds;
DROP TABLE holds;
ALTER TABLE holds_v2 RENAME TO holds;
CREATE INDEX holds_by_expiry ON holds (expires_at_ms) WHERE state = 'held';
COMMIT;
"
);

const SELECT_DUE: &str = "SELECT order_id FROM holds WHERE state = 'held' AND expires_at_ms <= ?1 \
     ORDER BY expires_at_ms LIMIT ?2";
const SELECT_NEXT_EXPIRY: &str = "SELECT MIN(expires_at_ms) FROM holds WHERE state = 'held'";

fn fault(e: rusqlite::Error) -> StorageFault {
    StorageFault(e.to_string())
}

/// One stock shard in one SQLite file.
pub struct SqliteShard {
    conn: Connection,
}

impl SqliteShard {
    /// Opens (or creates) the shard stored at `path`.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let conn = db::open_durable(path, SHARD_SCHEMA)?;
        let fail = |source| OpenError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let holds_sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'holds'",
                [],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if !holds_sql.contains("'received'") {
            conn.execute_batch(MIGRATE_HOLDS_RECEIVED).map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                fail(e)
            })?;
        }
        Ok(Self { conn })
    }

    /// Applies one request in one transaction: all of its writes are durable when this returns
    /// `Ok`, and none of them are when it returns `Err`.
    pub fn apply(
        &mut self,
        request: ShardRequest,
        now_ms: u64,
    ) -> Result<ShardReply, StorageFault> {
        db::begin_immediate(&self.conn).map_err(fault)?;
        let result = stock::apply(self, request, now_ms);
        db::finish(&self.conn, result, fault)
    }

    /// Every level and hold of the shard, as the reference storage, to check the whole shard
    /// ([`MemoryShardStorage::check`]). Reads the whole file: for tests and operators.
    pub fn to_memory(&self) -> Result<MemoryShardStorage, StorageFault> {
        let mut copy = MemoryShardStorage::default();
        let mut levels = self
            .conn
            .prepare("SELECT sku, available, held, sold, received FROM stock_levels")
            .map_err(fault)?;
        let rows = levels
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    StockLevel {
                        available: row.get(1)?,
                        held: row.get(2)?,
                        sold: row.get(3)?,
                        received: row.get(4)?,
                    },
                ))
            })
            .map_err(fault)?;
        for row in rows {
            let (sku, level) = row.map_err(fault)?;
            let sku =
                Sku::parse(&sku).map_err(|e| StorageFault(format!("stored SKU {sku:?}: {e}")))?;
            copy.set_level(&sku, &level)?;
        }
        let mut holds = self
            .conn
            .prepare("SELECT order_id, state, expires_at_ms, lines FROM holds")
            .map_err(fault)?;
        let rows = holds
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<u64>>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(fault)?;
        for row in rows {
            let (order, state, expires_at_ms, lines) = row.map_err(fault)?;
            let order = OrderId::parse(&order)
                .map_err(|e| StorageFault(format!("stored order id {order:?}: {e}")))?;
            copy.set_hold(&order, &decode_hold(&order, &state, expires_at_ms, &lines)?)?;
        }
        Ok(copy)
    }

    /// The raw connection: tests inject faults through it (a trigger that aborts a write).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn encode_state(state: HoldState) -> (&'static str, Option<u64>) {
    match state {
        HoldState::Held { expires_at_ms } => ("held", Some(expires_at_ms)),
        HoldState::Committed => ("committed", None),
        HoldState::Released { expired: false } => ("released", None),
        HoldState::Released { expired: true } => ("expired", None),
        HoldState::Cancelled => ("cancelled", None),
        HoldState::Received => ("received", None),
    }
}

fn decode_hold(
    order: &OrderId,
    state: &str,
    expires_at_ms: Option<u64>,
    lines: &[u8],
) -> Result<Hold, StorageFault> {
    let corrupt = |what: String| StorageFault(format!("hold of order {order} is corrupt: {what}"));
    let state = match (state, expires_at_ms) {
        ("held", Some(expires_at_ms)) => HoldState::Held { expires_at_ms },
        ("committed", None) => HoldState::Committed,
        ("released", None) => HoldState::Released { expired: false },
        ("expired", None) => HoldState::Released { expired: true },
        ("cancelled", None) => HoldState::Cancelled,
        ("received", None) => HoldState::Received,
        (other, at) => return Err(corrupt(format!("state {other:?} with expiry {at:?}"))),
    };
    let lines: Vec<Line> = from_cbor(lines).map_err(|e| corrupt(e.to_string()))?;
    Ok(Hold { lines, state })
}

impl ShardStorage for SqliteShard {
    fn level(&self, sku: &Sku) -> Result<Option<StockLevel>, StorageFault> {
        self.conn
            .prepare_cached(
                "SELECT available, held, sold, received FROM stock_levels WHERE sku = ?1",
            )
            .and_then(|mut select| {
                select
                    .query_row([sku.as_str()], |row| {
                        Ok(StockLevel {
                            available: row.get(0)?,
                            held: row.get(1)?,
                            sold: row.get(2)?,
                            received: row.get(3)?,
                        })
                    })
                    .optional()
            })
            .map_err(fault)
    }

    fn set_level(&mut self, sku: &Sku, level: &StockLevel) -> Result<(), StorageFault> {
        self.conn
            .prepare_cached(
                "INSERT INTO stock_levels (sku, available, held, sold, received) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (sku) DO UPDATE SET available = excluded.available, \
                 held = excluded.held, sold = excluded.sold, received = excluded.received",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    sku.as_str(),
                    level.available,
                    level.held,
                    level.sold,
                    level.received
                ])
            })
            .map(drop)
            .map_err(fault)
    }

    fn hold(&self, order: &OrderId) -> Result<Option<Hold>, StorageFault> {
        let row = self
            .conn
            .prepare_cached("SELECT state, expires_at_ms, lines FROM holds WHERE order_id = ?1")
            .and_then(|mut select| {
                select
                    .query_row([order.as_str()], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<u64>>(1)?,
                            row.get::<_, Vec<u8>>(2)?,
                        ))
                    })
                    .optional()
            })
            .map_err(fault)?;
        row.map(|(state, expires_at_ms, lines)| decode_hold(order, &state, expires_at_ms, &lines))
            .transpose()
    }

    fn set_hold(&mut self, order: &OrderId, hold: &Hold) -> Result<(), StorageFault> {
        let (state, expires_at_ms) = encode_state(hold.state);
        self.conn
            .prepare_cached(
                "INSERT INTO holds (order_id, state, expires_at_ms, lines) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, \
                 expires_at_ms = excluded.expires_at_ms, lines = excluded.lines",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    order.as_str(),
                    state,
                    expires_at_ms,
                    to_cbor(&hold.lines)
                ])
            })
            .map(drop)
            .map_err(fault)
    }

    fn due_holds(&self, now_ms: u64, limit: usize) -> Result<Vec<OrderId>, StorageFault> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut select = self.conn.prepare_cached(SELECT_DUE).map_err(fault)?;
        let ids = select
            .query_map(params![now_ms, limit], |row| row.get::<_, String>(0))
            .map_err(fault)?;
        ids.map(|id| {
            let id = id.map_err(fault)?;
            OrderId::parse(&id).map_err(|e| StorageFault(format!("stored order id {id:?}: {e}")))
        })
        .collect()
    }

    fn next_expiry(&self) -> Result<Option<u64>, StorageFault> {
        self.conn
            .prepare_cached(SELECT_NEXT_EXPIRY)
            .and_then(|mut select| select.query_row([], |row| row.get::<_, Option<u64>>(0)))
            .map_err(fault)
    }
}

/// Why a shard call did not produce a reply. All of them are transient for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardCallError {
    /// The shard's storage failed; the request changed nothing. Retry later.
    #[error("shard {shard:02}: {fault}")]
    Storage { shard: u16, fault: StorageFault },
    /// The shard's queue is full or its call failed. Retry with backoff.
    #[error("shard {shard:02}: {error}")]
    Busy { shard: u16, error: SerialError },
}

/// The 16 SQLite shards of this origin. Cheap to clone: clones share the shards.
#[derive(Clone)]
pub struct OriginShards {
    shards: Arc<Vec<Serial<SqliteShard>>>,
    clock: Arc<dyn Clock>,
    /// Holds released by [`Self::expire_due`] since start (for `/metrics`).
    expired_total: Arc<std::sync::atomic::AtomicU64>,
}

/// The origin's stock coordinator: every SKU routed to its SQLite shard, in process.
pub type OriginStock = ShardedStock<OriginShards>;

impl OriginShards {
    /// Opens (or creates) all shards under `data_dir`, which must exist.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        let shards = SkuShard::all()
            .map(|shard| {
                let shard = SqliteShard::open(&db::shard_file(data_dir, shard.index()))?;
                Ok(Serial::new(shard, SHARD_WAITING_MAX))
            })
            .collect::<Result<Vec<_>, OpenError>>()?;
        debug_assert_eq!(shards.len(), usize::from(SHARD_COUNT));
        Ok(Self {
            shards: Arc::new(shards),
            clock,
            expired_total: Arc::default(),
        })
    }

    fn serial(&self, shard: SkuShard) -> &Serial<SqliteShard> {
        // `SkuShard` indices are below SHARD_COUNT by construction, and there is one per index.
        &self.shards[usize::from(shard.index())]
    }

    /// Applies `request` on its shard, on a blocking thread, at the time the shard's turn comes.
    pub async fn apply(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> Result<ShardReply, ShardCallError> {
        let clock = self.clock.clone();
        let index = shard.index();
        self.serial(shard)
            .run(move |storage| storage.apply(request, clock.now_ms()))
            .await
            .map_err(|error| ShardCallError::Busy {
                shard: index,
                error,
            })?
            .map_err(|fault| ShardCallError::Storage {
                shard: index,
                fault,
            })
    }

    /// A copy of one shard's whole state (see [`SqliteShard::to_memory`]).
    pub async fn snapshot(&self, shard: SkuShard) -> Result<MemoryShardStorage, ShardCallError> {
        let index = shard.index();
        self.serial(shard)
            .run(|storage| storage.to_memory())
            .await
            .map_err(|error| ShardCallError::Busy {
                shard: index,
                error,
            })?
            .map_err(|fault| ShardCallError::Storage {
                shard: index,
                fault,
            })
    }

    /// Releases every due hold on every shard (up to a bound per tick); the holds released.
    pub async fn expire_due(&self) -> Result<u32, ShardCallError> {
        let mut released_total = 0;
        for shard in SkuShard::all() {
            for _ in 0..EXPIRE_ROUNDS_PER_TICK_MAX {
                let clock = self.clock.clone();
                let index = shard.index();
                // Only shards with a due hold take the write lock: an idle shard costs one read.
                let reply = self
                    .serial(shard)
                    .run(move |storage| {
                        let now_ms = clock.now_ms();
                        match storage.next_expiry()? {
                            Some(at_ms) if at_ms <= now_ms => {
                                storage.apply(ShardRequest::Expire, now_ms)
                            }
                            _ => Ok(ShardReply::Expired { released: 0 }),
                        }
                    })
                    .await
                    .map_err(|error| ShardCallError::Busy {
                        shard: index,
                        error,
                    })?
                    .map_err(|fault| ShardCallError::Storage {
                        shard: index,
                        fault,
                    })?;
                let ShardReply::Expired { released } = reply else {
                    break;
                };
                released_total += released;
                if (released as usize) < EXPIRE_BATCH_MAX {
                    break;
                }
            }
        }
        self.expired_total.fetch_add(
            u64::from(released_total),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(released_total)
    }

    /// Holds the expiry timer ([`Self::expire_due`]) has released since this process started.
    pub fn expired_total(&self) -> u64 {
        self.expired_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The expiry timer: [`Self::expire_due`] every [`EXPIRE_TICK_MS`], for as long as the
    /// runtime runs. A failed tick is reported and the next one tries again.
    pub fn spawn_expiry(&self) -> tokio::task::JoinHandle<()> {
        let shards = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(EXPIRE_TICK_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = shards.expire_due().await {
                    eprintln!("origin: expiring holds failed (retrying next tick): {e}");
                }
            }
        })
    }
}

impl ShardTransport for OriginShards {
    fn call(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        Box::pin(async move {
            self.apply(shard, request)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        })
    }
}

#[derive(Clone)]
struct WireState {
    shards: OriginShards,
    token: String,
}

/// `POST /coordinator/shards/{n}` for remote edges. Without a token the route answers 404, so
/// an origin started without one exposes no stock writes.
pub fn routes(shards: OriginShards, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new().route("/coordinator/{*rest}", post(disabled).get(disabled));
    };
    Router::new()
        .route("/coordinator/shards/{n}", post(shard_call))
        .layer(DefaultBodyLimit::max(SHARD_REQUEST_BYTES_MAX))
        .with_state(WireState { shards, token })
}

async fn disabled() -> RouteError {
    RouteError::NotFound("the coordinator is disabled: the origin has no token".into())
}

async fn shard_call(
    State(wire): State<WireState>,
    headers: HeaderMap,
    UrlPath(n): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RouteError> {
    authorize(&headers, &wire.token)?;
    let shard = n
        .parse::<u16>()
        .ok()
        .and_then(SkuShard::from_index)
        .ok_or_else(|| {
            RouteError::NotFound(format!(
                "no shard {n:?}; shards are 0 to {}",
                SHARD_COUNT - 1
            ))
        })?;
    let body = body.map_err(|e| RouteError::BadRequest(format!("cannot read the body: {e}")))?;
    let request: ShardRequest = from_cbor(&body)
        .map_err(|e| RouteError::BadRequest(format!("the body is not a shard request: {e}")))?;
    let reply = wire
        .shards
        .apply(shard, request)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/cbor"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        to_cbor(&reply),
    )
        .into_response())
}

/// `POST /coordinator/checkouts` and `GET /coordinator/orders/{id}`: the origin's order desk for
/// remote edges (see the module doc). Without a token nothing is served (the caller's 404).
pub fn desk_routes(desk: Arc<dyn OrderDesk>, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new();
    };
    Router::new()
        .route("/coordinator/checkouts", post(remote_checkout))
        .route("/coordinator/orders/{id}", axum::routing::get(remote_order))
        .layer(DefaultBodyLimit::max(SHARD_REQUEST_BYTES_MAX))
        .with_state(DeskState { desk, token })
}

#[derive(Clone)]
struct DeskState {
    desk: Arc<dyn OrderDesk>,
    token: String,
}

fn cbor_response(body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/cbor"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn remote_checkout(
    State(state): State<DeskState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RouteError> {
    authorize(&headers, &state.token)?;
    let body = body.map_err(|e| RouteError::BadRequest(format!("cannot read the body: {e}")))?;
    let call: RemoteCheckout = from_cbor(&body)
        .map_err(|e| RouteError::BadRequest(format!("the body is not a checkout: {e}")))?;
    let priced = call.priced();
    priced.check(&call.request.email).map_err(|e| {
        RouteError::BadRequest(format!(
            "checkout {} is not priced consistently: {e}",
            call.order_id
        ))
    })?;
    let result = state
        .desk
        .checkout_priced(call.order_id, call.request, priced)
        .await;
    Ok(cbor_response(to_cbor(&result)))
}

async fn remote_order(
    State(state): State<DeskState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, RouteError> {
    authorize(&headers, &state.token)?;
    let id = OrderId::parse(&id)
        .map_err(|_| RouteError::BadRequest(format!("invalid order id {id:?}")))?;
    let order = state
        .desk
        .order(&id)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    Ok(cbor_response(to_cbor(&order)))
}
