//! `BenchCounter`: the smallest useful Durable Object, one SQLite counter increment per request.
//!
//! The stock benchmark (`cargo run --release -p shop-e2e --bin bench`) divides a stock shard's
//! reserves per second by this object's increments per second, measured in the same run through
//! the same worker path, so the ratio shows what the stock protocol costs over a bare durable
//! write. Reached only through `POST /_admin/bench/counter` (admin token).

use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

#[durable_object]
pub struct BenchCounter {
    sql: SqlStorage,
}

impl DurableObject for BenchCounter {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        let _ = sql.exec(
            "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
            None,
        );
        let _ = sql.exec("INSERT OR IGNORE INTO counter (id, n) VALUES (1, 0)", None);
        Self { sql }
    }

    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        match self
            .sql
            .exec("UPDATE counter SET n = n + 1 WHERE id = 1", None)
        {
            Ok(_) => Response::ok("counted"),
            Err(e) => Response::error(e.to_string(), 503),
        }
    }
}
