//! The `StockShard` Durable Object: the single writer of one shard's stock.
//!
//! Levels live in the object's SQLite storage. The SQL API is synchronous, so a request reads,
//! decides and writes without yielding: concurrent reservations are applied strictly one after
//! another and the last unit cannot be sold twice. The runtime holds the response until the
//! write is durable (output gate), so an acknowledged reservation is never lost.

use edge_core::codec::{from_cbor, to_cbor};
use edge_core::stock::{apply, ShardRequest, ShardStorage, StorageFault};
use edge_core::Sku;
use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0)
)";

#[durable_object]
pub struct StockShard {
    sql: SqlStorage,
    /// Set when the schema could not be created; every request then fails with it.
    schema_fault: Option<String>,
}

impl DurableObject for StockShard {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        let schema_fault = sql.exec(SCHEMA, None).err().map(|e| e.to_string());
        Self { sql, schema_fault }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if let Some(fault) = &self.schema_fault {
            return Response::error(format!("stock schema unavailable: {fault}"), 503);
        }
        let body = req.bytes().await?;
        let request: ShardRequest = match from_cbor(&body) {
            Ok(request) => request,
            Err(e) => return Response::error(format!("malformed shard request: {e}"), 400),
        };
        // From here to the reply nothing awaits: the read-modify-write is atomic.
        match apply(&mut SqlShard(&self.sql), request) {
            Ok(reply) => Response::from_bytes(to_cbor(&reply)),
            Err(fault) => Response::error(fault.to_string(), 503),
        }
    }
}

struct SqlShard<'a>(&'a SqlStorage);

#[derive(Deserialize)]
struct LevelRow {
    available: f64,
}

impl ShardStorage for SqlShard<'_> {
    fn level(&self, sku: &Sku) -> Result<Option<u32>, StorageFault> {
        let rows: Vec<LevelRow> = self
            .0
            .exec(
                "SELECT available FROM stock WHERE sku = ?",
                vec![sku.as_str().into()],
            )
            .and_then(|cursor| cursor.to_array())
            .map_err(|e| StorageFault(e.to_string()))?;
        match rows.first() {
            None => Ok(None),
            Some(row)
                if row.available >= 0.0
                    && row.available <= f64::from(u32::MAX)
                    && row.available.fract() == 0.0 =>
            {
                Ok(Some(row.available as u32))
            }
            Some(row) => Err(StorageFault(format!(
                "stored level {} for {sku} is not a unit count",
                row.available
            ))),
        }
    }

    fn set_level(&mut self, sku: &Sku, available: u32) -> Result<(), StorageFault> {
        self.0
            .exec(
                "INSERT INTO stock (sku, available) VALUES (?, ?)
                 ON CONFLICT (sku) DO UPDATE SET available = excluded.available",
                vec![sku.as_str().into(), i64::from(available).into()],
            )
            .map(drop)
            .map_err(|e| StorageFault(e.to_string()))
    }
}
