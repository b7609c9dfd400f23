//! `admin.sqlite` in the data dir: admin accounts, their sessions, the login throttle, the
//! append-only audit log and the edge-forwarding outbox. Opened like every origin database
//! ([`crate::db::open_durable`]: WAL, `synchronous=FULL`), so an acknowledged admin action (a
//! new user, a revoked session, an audit entry) survives a crash.
//!
//! Admin traffic is a few requests a second at most, so one connection in a [`Serial`] does
//! both reads and writes; each multi-statement change is one `BEGIN IMMEDIATE … COMMIT`.

use super::error::AdminError;
use crate::db::{self, OpenError, Serial};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Admin requests that may wait for the database before more are refused (503).
pub const ADMIN_WAITING_MAX: usize = 1_024;

/// The tables. The audit log refuses UPDATE and DELETE in SQLite itself (triggers), so no
/// code path, present or future, can rewrite what happened.
const ADMIN_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'staff', 'viewer')),
    password_hash TEXT NOT NULL,
    totp_secret   BLOB,
    totp_enabled  INTEGER NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash       TEXT PRIMARY KEY NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS login_throttle (
    key             TEXT PRIMARY KEY NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_ms INTEGER NOT NULL,
    locked_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    actor      TEXT,
    ip         TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    before     TEXT,
    after      TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target, id);
CREATE TABLE IF NOT EXISTS outbox (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    kind               TEXT NOT NULL CHECK (kind IN ('edge_status', 'stock_cancel')),
    order_id           TEXT NOT NULL,
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error         TEXT,
    created_at_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_order ON outbox (order_id, id);
CREATE TABLE IF NOT EXISTS pending_changes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL,
    status   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    entry    TEXT NOT NULL
);
";

/// Brings a file made by an earlier version up to [`ADMIN_SCHEMA`]: columns added since.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_last_step: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('users') WHERE name = 'totp_last_step'",
        [],
        |row| row.get(0),
    )?;
    if !has_last_step {
        conn.execute_batch(
            "ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    Ok(())
}

/// The admin database file inside the data directory.
pub fn admin_file(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sqlite")
}

/// The admin database. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct AdminDb {
    conn: Arc<Serial<Connection>>,
}

impl AdminDb {
    /// Opens (or creates) `admin.sqlite` under `data_dir`, which must exist.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        let path = admin_file(data_dir);
        let conn = db::open_durable(&path, ADMIN_SCHEMA)?;
        migrate(&conn).map_err(|source| OpenError::Sqlite { path, source })?;
        Ok(Self {
            conn: Arc::new(Serial::new(conn, ADMIN_WAITING_MAX)),
        })
    }

    /// Runs `f` on the connection in one write transaction: committed when it returns `Ok`,
    /// rolled back (nothing written) when it returns `Err`.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, AdminError> + Send + 'static,
    ) -> Result<R, AdminError> {
        self.conn
            .run(move |conn| {
                db::begin_immediate(conn)?;
                let result = f(conn);
                db::finish(conn, result, AdminError::from)
            })
            .await?
    }

    /// Runs `f` on the connection outside a transaction (reads).
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, AdminError> + Send + 'static,
    ) -> Result<R, AdminError> {
        self.conn.run(move |conn| f(conn)).await?
    }

    /// Runs `f` on this thread (the `create-owner` command, tests).
    pub fn blocking<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        self.conn.with(|conn| f(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_from_before_totp_replay_protection_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(admin_file(dir.path())).unwrap();
        old.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
             role TEXT NOT NULL, password_hash TEXT NOT NULL, totp_secret BLOB, \
             totp_enabled INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0, \
             created_at_ms INTEGER NOT NULL); \
             INSERT INTO users (email, role, password_hash, created_at_ms) \
             VALUES ('a@b.co', 'owner', 'x', 1);",
        )
        .unwrap();
        drop(old);
        let db = AdminDb::open(dir.path()).unwrap();
        let step: i64 = db.blocking(|conn| {
            conn.query_row("SELECT totp_last_step FROM users", [], |r| r.get(0))
                .unwrap()
        });
        assert_eq!(step, 0);
        // Opening again is a no-op.
        drop(db);
        AdminDb::open(dir.path()).unwrap();
    }
}
