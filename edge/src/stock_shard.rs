//! The `StockShard` Durable Object: the single writer of one shard's stock and holds.
//!
//! Levels and hold records live in the object's SQLite storage. The SQL API is synchronous, so
//! [`edge_core::stock::apply`] reads, decides and writes without yielding: concurrent requests
//! are applied strictly one after another and the last unit cannot be sold twice. Writes made
//! without an intervening `await` commit atomically, and the runtime holds the response until
//! they are durable (output gate), so an acknowledged hold or sale is never lost.
//!
//! Holds expire through the object's alarm, set to the earliest expiry. Browsers watching a
//! SKU's level hold a hibernatable WebSocket tagged with the SKU; every change is pushed to them.

use crate::live::{is_upgrade, level_message};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::stock::{
    apply, Hold, HoldState, OrderId, ShardReply, ShardRequest, ShardStorage, StockLevel,
    StorageFault, EXPIRE_BATCH_MAX,
};
use edge_core::Sku;
use serde::Deserialize;
use std::cell::Cell;
use std::collections::BTreeSet;
use worker::{
    durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS levels (
        sku TEXT PRIMARY KEY,
        available INTEGER NOT NULL CHECK (available >= 0),
        held INTEGER NOT NULL CHECK (held >= 0),
        sold INTEGER NOT NULL CHECK (sold >= 0),
        received INTEGER NOT NULL CHECK (received = available + held + sold)
    )",
    "CREATE TABLE IF NOT EXISTS holds (
        order_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        expires_at_ms INTEGER,
        record BLOB NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS holds_due ON holds (expires_at_ms) WHERE state = 'held'",
    // Levels written by the first release (available only) carry over as fresh stock.
    "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL)",
];
const MIGRATE_V1: &str =
    "INSERT OR IGNORE INTO levels SELECT sku, available, 0, 0, available FROM stock";

/// Live-level sockets one shard keeps; more are refused (the page falls back to polling).
const LIVE_SOCKETS_MAX: usize = 2_000;
/// `Expire` rounds one alarm runs before it re-arms itself.
const EXPIRE_ROUNDS_MAX: usize = 20;

#[durable_object]
pub struct StockShard {
    state: State,
    sql: SqlStorage,
    /// Set when the schema could not be created; every request then fails with it.
    schema_fault: Option<String>,
    /// The alarm time this instance last set or read (`None`: unknown since it started).
    alarm_at_ms: Cell<Option<u64>>,
}

impl DurableObject for StockShard {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        let schema_fault = SCHEMA
            .iter()
            .chain([&MIGRATE_V1, &"DELETE FROM stock"])
            .find_map(|statement| sql.exec(statement, None).err())
            .map(|e| e.to_string());
        Self {
            state,
            sql,
            schema_fault,
            alarm_at_ms: Cell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if let Some(fault) = &self.schema_fault {
            return Response::error(format!("stock schema unavailable: {fault}"), 503);
        }
        if is_upgrade(&req) {
            return self.watch(&req);
        }
        let body = req.bytes().await?;
        let request: ShardRequest = match from_cbor(&body) {
            Ok(request) => request,
            Err(e) => return Response::error(format!("malformed shard request: {e}"), 400),
        };
        // Which SKUs to push to watchers is only worked out when someone watches: a reserve or
        // commit with no open product page costs no extra read.
        let watched = !self.state.get_websockets().is_empty();
        let touched = if watched {
            self.touched_by(&request)
        } else {
            Some(BTreeSet::new())
        };
        // From here to the reply nothing awaits: the read-modify-write is atomic.
        let reply = match apply(&mut SqlShard(&self.sql), request, now_ms()) {
            Ok(reply) => reply,
            Err(fault) => return Response::error(fault.to_string(), 503),
        };
        let touched = touched.unwrap_or_else(|| self.touched_by_reply(&reply));
        self.push_levels(touched);
        if let ShardReply::Held { expires_at_ms } = reply {
            self.arm_alarm(Some(expires_at_ms)).await?;
        }
        Response::from_bytes(to_cbor(&reply))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_at_ms.set(None);
        for _ in 0..EXPIRE_ROUNDS_MAX {
            match apply(&mut SqlShard(&self.sql), ShardRequest::Expire, now_ms()) {
                Ok(ShardReply::Expired { released }) if (released as usize) < EXPIRE_BATCH_MAX => {
                    break
                }
                Ok(_) => {}
                Err(fault) => return Response::error(fault.to_string(), 503),
            }
        }
        self.push_levels(self.watched_skus());
        let next = SqlShard(&self.sql)
            .next_expiry()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.arm_alarm(next).await?;
        Response::ok("expired")
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        // Watchers only listen.
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

impl StockShard {
    /// Accepts a browser's WebSocket watching `?sku=` and sends it the current level.
    fn watch(&self, req: &Request) -> worker::Result<Response> {
        let url = req.url()?;
        let Some(sku) = url
            .query_pairs()
            .find(|(k, _)| k == "sku")
            .and_then(|(_, v)| Sku::parse(&v).ok())
        else {
            return Response::error("watching needs ?sku=<SKU>", 400);
        };
        if self.state.get_websockets().len() >= LIVE_SOCKETS_MAX {
            return Response::error("too many watchers on this shard; poll instead", 503);
        }
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[sku.as_str()]);
        if let Ok(Some(level)) = SqlShard(&self.sql).level(&sku) {
            let _ = pair
                .server
                .send_with_str(level_message(&sku, level.available));
        }
        Response::from_websocket(pair.client)
    }

    /// The SKUs a request changes, when the request names them.
    fn touched_by(&self, request: &ShardRequest) -> Option<BTreeSet<Sku>> {
        match request {
            ShardRequest::Reserve { lines, .. } => {
                Some(lines.iter().map(|l| l.sku.clone()).collect())
            }
            ShardRequest::Restock { sku, .. } => Some(BTreeSet::from([sku.clone()])),
            ShardRequest::Seed { levels, .. } => {
                Some(levels.iter().map(|(sku, _)| sku.clone()).collect())
            }
            ShardRequest::Commit { order }
            | ShardRequest::Release { order }
            | ShardRequest::Cancel { order } => {
                let hold = SqlShard(&self.sql).hold(order).ok().flatten();
                Some(
                    hold.map(|h| h.lines.into_iter().map(|l| l.sku).collect())
                        .unwrap_or_default(),
                )
            }
            ShardRequest::Level { .. } => Some(BTreeSet::new()),
            ShardRequest::Expire => None,
        }
    }

    fn touched_by_reply(&self, reply: &ShardReply) -> BTreeSet<Sku> {
        match reply {
            ShardReply::Expired { released: 0 } => BTreeSet::new(),
            _ => self.watched_skus(),
        }
    }

    fn watched_skus(&self) -> BTreeSet<Sku> {
        let sockets = self.state.get_websockets();
        sockets
            .iter()
            .flat_map(|ws| self.state.get_tags(ws))
            .filter_map(|t| Sku::parse(&t).ok())
            .collect()
    }

    /// Sends each touched SKU's level to the sockets watching it.
    fn push_levels(&self, skus: BTreeSet<Sku>) {
        for sku in skus {
            let sockets = self.state.get_websockets_with_tag(sku.as_str());
            if sockets.is_empty() {
                continue;
            }
            let Ok(Some(level)) = SqlShard(&self.sql).level(&sku) else {
                continue;
            };
            let message = level_message(&sku, level.available);
            for socket in sockets {
                let _ = socket.send_with_str(&message);
            }
        }
    }

    /// Makes the alarm fire by `due_ms` (a hold's expiry), unless it already does. A reserve
    /// passes its own hold's expiry, so arming costs no query; the alarm handler passes the
    /// earliest remaining one.
    async fn arm_alarm(&self, due_ms: Option<u64>) -> worker::Result<()> {
        let Some(due_ms) = due_ms else { return Ok(()) };
        if self.alarm_at_ms.get().is_some_and(|at| at <= due_ms) {
            return Ok(());
        }
        let storage = self.state.storage();
        let current = match self.alarm_at_ms.get() {
            Some(at) => Some(at),
            None => storage.get_alarm().await?.map(|at| at.max(0) as u64),
        };
        if current.is_none_or(|at| at > due_ms) {
            storage.set_alarm(crate::live::alarm_at(due_ms)).await?;
            self.alarm_at_ms.set(Some(due_ms));
        } else {
            self.alarm_at_ms.set(current);
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

struct SqlShard<'a>(&'a SqlStorage);

#[derive(Deserialize)]
struct LevelRow {
    available: f64,
    held: f64,
    sold: f64,
    received: f64,
}

#[derive(Deserialize)]
struct OrderRow {
    order_id: String,
}

fn fault(e: worker::Error) -> StorageFault {
    StorageFault(e.to_string())
}

/// A stored count back as an integer; SQLite hands numbers to JS as doubles.
fn count(value: f64, what: &str, sku: &Sku) -> Result<u64, StorageFault> {
    if value >= 0.0 && value <= 9_007_199_254_740_991.0 && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(StorageFault(format!(
            "stored {what} {value} for {sku} is not a unit count"
        )))
    }
}

fn count_u32(value: f64, what: &str, sku: &Sku) -> Result<u32, StorageFault> {
    u32::try_from(count(value, what, sku)?)
        .map_err(|_| StorageFault(format!("stored {what} for {sku} overflows")))
}

impl ShardStorage for SqlShard<'_> {
    fn level(&self, sku: &Sku) -> Result<Option<StockLevel>, StorageFault> {
        let rows: Vec<LevelRow> = self
            .0
            .exec(
                "SELECT available, held, sold, received FROM levels WHERE sku = ?",
                vec![sku.as_str().into()],
            )
            .and_then(|cursor| cursor.to_array())
            .map_err(fault)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(StockLevel {
            available: count_u32(row.available, "available", sku)?,
            held: count_u32(row.held, "held", sku)?,
            sold: count_u32(row.sold, "sold", sku)?,
            received: count(row.received, "received", sku)?,
        }))
    }

    fn set_level(&mut self, sku: &Sku, level: &StockLevel) -> Result<(), StorageFault> {
        let values: Vec<SqlStorageValue> = vec![
            sku.as_str().into(),
            i64::from(level.available).into(),
            i64::from(level.held).into(),
            i64::from(level.sold).into(),
            (level.received as i64).into(),
        ];
        self.0
            .exec(
                "INSERT INTO levels (sku, available, held, sold, received) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (sku) DO UPDATE SET available = excluded.available, held = excluded.held,
                 sold = excluded.sold, received = excluded.received",
                values,
            )
            .map(drop)
            .map_err(fault)
    }

    fn hold(&self, order: &OrderId) -> Result<Option<Hold>, StorageFault> {
        let rows = self
            .0
            .exec(
                "SELECT record FROM holds WHERE order_id = ?",
                vec![order.as_str().into()],
            )
            .map_err(fault)?;
        let Some(row) = rows.raw().next() else {
            return Ok(None);
        };
        match row.map_err(fault)?.into_iter().next() {
            Some(SqlStorageValue::Blob(bytes)) => from_cbor(&bytes)
                .map(Some)
                .map_err(|e| StorageFault(format!("hold record of {order}: {e}"))),
            other => Err(StorageFault(format!(
                "hold record of {order} is {other:?}, not a blob"
            ))),
        }
    }

    fn set_hold(&mut self, order: &OrderId, hold: &Hold) -> Result<(), StorageFault> {
        let (state, expires): (&str, SqlStorageValue) = match hold.state {
            HoldState::Held { expires_at_ms } => ("held", (expires_at_ms as i64).into()),
            HoldState::Committed => ("committed", SqlStorageValue::Null),
            HoldState::Released { .. } => ("released", SqlStorageValue::Null),
            HoldState::Cancelled => ("cancelled", SqlStorageValue::Null),
            HoldState::Received => ("received", SqlStorageValue::Null),
        };
        self.0
            .exec(
                "INSERT INTO holds (order_id, state, expires_at_ms, record) VALUES (?, ?, ?, ?)
                 ON CONFLICT (order_id) DO UPDATE SET state = excluded.state,
                 expires_at_ms = excluded.expires_at_ms, record = excluded.record",
                vec![
                    order.as_str().into(),
                    state.into(),
                    expires,
                    SqlStorageValue::Blob(to_cbor(hold)),
                ],
            )
            .map(drop)
            .map_err(fault)
    }

    fn due_holds(&self, now_ms: u64, limit: usize) -> Result<Vec<OrderId>, StorageFault> {
        let rows: Vec<OrderRow> = self
            .0
            .exec(
                "SELECT order_id FROM holds WHERE state = 'held' AND expires_at_ms <= ? ORDER BY expires_at_ms LIMIT ?",
                vec![(now_ms as i64).into(), (limit as i64).into()],
            )
            .and_then(|cursor| cursor.to_array())
            .map_err(fault)?;
        rows.into_iter()
            .map(|r| OrderId::parse(&r.order_id).map_err(StorageFault))
            .collect()
    }

    fn next_expiry(&self) -> Result<Option<u64>, StorageFault> {
        #[derive(Deserialize)]
        struct Next {
            next: Option<f64>,
        }
        let rows: Vec<Next> = self
            .0
            .exec(
                "SELECT MIN(expires_at_ms) AS next FROM holds WHERE state = 'held'",
                None,
            )
            .and_then(|cursor| cursor.to_array())
            .map_err(fault)?;
        Ok(rows.first().and_then(|r| r.next).map(|n| n.max(0.0) as u64))
    }
}
