//! The origin's SQLite files: opened all the same way (WAL, `synchronous=FULL`, a busy timeout),
//! and driven from async code one call at a time ([`Serial`]).
//!
//! WAL lets readers (a second connection in a test, `sqlite3` on the command line) look while
//! the single writer works; `synchronous=FULL` makes SQLite fsync the WAL on every commit, so a
//! commit that returned survives a power cut or a `kill -9`: the origin replies to nobody before
//! its change is durable.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a statement waits for another connection's lock before failing. Each file has one
/// writer in the origin, so only an outside reader (a test, an operator) can make it wait.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A database file could not be opened or prepared: fix the path or its permissions.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file system refused write-ahead logging (read-only or a network mount).
    #[error("database {} cannot use WAL (journal_mode is {mode:?}); put the data dir on a local, writable disk", path.display())]
    NoWal { path: PathBuf, mode: String },
}

/// Opens (creating when missing) a database file for durable writes, and runs `schema` on it.
/// `schema` must be idempotent (`CREATE ... IF NOT EXISTS`): it runs on every start.
pub fn open_durable(path: &Path, schema: &str) -> Result<Connection, OpenError> {
    let fail = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    // `journal_mode` answers with the mode it set: anything but "wal" (a read-only or
    // network file system) would silently weaken the durability promise, so it is an error.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(fail)?;
    conn.execute_batch(schema).map_err(fail)?;
    Ok(conn)
}

/// Starts a write transaction. `IMMEDIATE` takes the write lock now, so nothing read inside can
/// go stale before the commit. A transaction left open by a call that panicked is rolled back
/// first: its writes were never acknowledged.
pub fn begin_immediate(conn: &Connection) -> rusqlite::Result<()> {
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK")?;
    }
    conn.execute_batch("BEGIN IMMEDIATE")
}

/// Ends the transaction [`begin_immediate`] started: commits when `result` is `Ok` (an error if
/// the commit fails), rolls back otherwise, so a failure leaves nothing half written.
pub fn finish<R, E>(
    conn: &Connection,
    result: Result<R, E>,
    fault: impl Fn(rusqlite::Error) -> E,
) -> Result<R, E> {
    let outcome = match result {
        Ok(value) => conn.execute_batch("COMMIT").map(|()| value).map_err(&fault),
        Err(e) => Err(e),
    };
    if outcome.is_err() && !conn.is_autocommit() {
        // The rollback's own failure changes nothing: the next `begin_immediate` retries it.
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// The file name of stock shard `index` inside the data directory.
pub fn shard_file(data_dir: &Path, index: u16) -> PathBuf {
    data_dir.join(format!("shard-{index:02}.sqlite"))
}

/// The file name of the orders database inside the data directory.
pub fn orders_file(data_dir: &Path) -> PathBuf {
    data_dir.join("orders.sqlite")
}

/// A value (a database connection) used by one blocking thread at a time, from async code.
///
/// The value sits behind a std [`Mutex`]: it is only ever locked inside `spawn_blocking`, never
/// across an `.await`, so the async runtime's threads never wait on SQLite or an fsync. Callers
/// take their turn on a one-permit semaphore first, so waiting requests are parked tasks, not
/// parked threads; at most `waiting_max` may wait, the next is refused as overloaded.
pub struct Serial<T> {
    value: Arc<Mutex<T>>,
    turn: Arc<Semaphore>,
    waiting: AtomicUsize,
    waiting_max: usize,
}

/// Why a [`Serial`] call did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// Too many requests are already queued: transient, retry with backoff.
    #[error("overloaded: {0} requests already waiting")]
    Overloaded(usize),
    /// The call panicked (a bug); the value is still usable, the call's effect is unknown.
    #[error("the storage call failed: {0}")]
    Failed(String),
}

impl<T: Send + 'static> Serial<T> {
    pub fn new(value: T, waiting_max: usize) -> Self {
        Self {
            value: Arc::new(Mutex::new(value)),
            turn: Arc::new(Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
            waiting_max,
        }
    }

    /// Runs `f` on the value on a blocking thread once it is this call's turn. A caller that
    /// stops waiting (its request was dropped) after `f` started does not stop `f`: a started
    /// write always finishes, and the turn is given back only then.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> Result<R, SerialError> {
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        if queued >= self.waiting_max {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SerialError::Overloaded(queued));
        }
        let permit = self.turn.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let permit = permit.map_err(|e| SerialError::Failed(e.to_string()))?;
        let value = self.value.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = permit;
            f(&mut lock(&value))
        })
        .await
        .map_err(|e| SerialError::Failed(e.to_string()))
    }

    /// Runs `f` on the value on this thread (tests and tools outside the runtime).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut lock(&self.value))
    }
}

/// Locks the value even after a panic under the lock: every user of a [`Serial`] connection
/// rolls back a transaction left open before starting its own, so nothing half-done survives.
fn lock<T>(value: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    value
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
