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
    /// The database's writer thread could not be started (the process is out of threads).
    #[error("cannot start the writer of {}: {source}", path.display())]
    Thread {
        path: PathBuf,
        source: std::io::Error,
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
        let permit = {
            // Counted out on drop, so a caller that gives up while waiting leaves the queue too.
            let place = InQueue::join(&self.waiting);
            if place.ahead >= self.waiting_max {
                return Err(SerialError::Overloaded(place.ahead));
            }
            self.turn.clone().acquire_owned().await
        };
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

/// A place in a [`Serial`]'s queue, left when dropped.
struct InQueue<'a> {
    waiting: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> InQueue<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        let ahead = waiting.fetch_add(1, Ordering::AcqRel);
        Self { waiting, ahead }
    }
}

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks the value even after a panic under the lock: every user of a [`Serial`] connection
/// rolls back a transaction left open before starting its own, so nothing half-done survives.
fn lock<T>(value: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    value
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes that may wait for a [`GroupCommit`] writer before more are refused.
pub const GROUP_QUEUE_MAX: usize = 8_192;
/// Writes one group commit carries at most: bounds the time one fsync keeps callers waiting.
pub const GROUP_BATCH_MAX: usize = 256;

/// Why a [`GroupCommit`] write failed. Nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The write's own statement failed (a constraint, a corrupt value): its savepoint was
    /// rolled back, the rest of the group committed.
    #[error("{0}")]
    Write(String),
    /// The group's transaction failed (disk full, I/O error): transient, retry.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The queue is full or the writer has stopped: transient, retry with backoff.
    #[error("writer unavailable: {0}")]
    Unavailable(String),
}

/// One queued write: run inside the group's transaction, then told how the commit went.
trait GroupWrite: Send {
    /// Runs the write; `false` when it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Reports the result once the group's commit is known (and durable when `Ok`).
    fn complete(self: Box<Self>, commit: Result<(), String>);
}

struct Write<F, R> {
    write: Option<F>,
    result: Option<Result<R, String>>,
    reply: tokio::sync::oneshot::Sender<Result<R, GroupError>>,
}

impl<F, R> GroupWrite for Write<F, R>
where
    F: FnOnce(&Connection) -> rusqlite::Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(write) = self.write.take() else {
            return false;
        };
        // A panicking write must not take the writer thread (and every later write) with it.
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(conn))) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("the write panicked".to_owned()),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn complete(self: Box<Self>, commit: Result<(), String>) {
        let outcome = match (commit, self.result) {
            (Err(e), _) => Err(GroupError::Commit(e)),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Ok(()), Some(Err(e))) => Err(GroupError::Write(e)),
            (Ok(()), None) => Err(GroupError::Commit("the write was not run".into())),
        };
        // The caller may have stopped waiting; the write stands either way.
        let _ = self.reply.send(outcome);
    }
}

/// A database connection written by one thread in *group commits*: the writes waiting when
/// the previous commit finished go into one transaction, each in its own savepoint, and share
/// one fsync. Every write is still durable before its caller hears `Ok`, and a failed write
/// leaves nothing behind; under load, one fsync serves many callers instead of each paying one.
/// With a single caller it is one write, one commit, as before.
pub struct GroupCommit {
    queue: tokio::sync::mpsc::Sender<Box<dyn GroupWrite>>,
}

impl GroupCommit {
    /// Starts the writer thread on `conn`. It stops when the last handle is dropped.
    pub fn start(conn: Connection, name: &str) -> std::io::Result<Self> {
        let (queue, jobs) = tokio::sync::mpsc::channel(GROUP_QUEUE_MAX);
        std::thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn(move || write_groups(conn, jobs))?;
        Ok(Self { queue })
    }

    /// Runs `write` in the next group; its result once the group is committed.
    pub async fn write<R: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, GroupError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn GroupWrite> = Box::new(Write {
            write: Some(write),
            result: None,
            reply,
        });
        self.queue.try_send(job).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => {
                GroupError::Unavailable(format!("{GROUP_QUEUE_MAX} writes already queued"))
            }
            tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                GroupError::Unavailable("the writer has stopped".into())
            }
        })?;
        answer
            .await
            .map_err(|_| GroupError::Unavailable("the writer stopped mid-write".into()))?
    }
}

/// The writer thread: one transaction per group of queued writes, until every sender is gone.
fn write_groups(conn: Connection, mut jobs: tokio::sync::mpsc::Receiver<Box<dyn GroupWrite>>) {
    let mut group: Vec<Box<dyn GroupWrite>> = Vec::with_capacity(GROUP_BATCH_MAX);
    while let Some(first) = jobs.blocking_recv() {
        group.push(first);
        while group.len() < GROUP_BATCH_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let commit = run_group(&conn, &mut group).map_err(|e| e.to_string());
        if commit.is_err() && !conn.is_autocommit() {
            // Its own failure changes nothing: the next group's `begin_immediate` retries it.
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in group.drain(..) {
            job.complete(commit.clone());
        }
    }
}

fn run_group(conn: &Connection, group: &mut [Box<dyn GroupWrite>]) -> rusqlite::Result<()> {
    begin_immediate(conn)?;
    for job in group.iter_mut() {
        conn.execute_batch("SAVEPOINT write")?;
        if !job.run(conn) {
            conn.execute_batch("ROLLBACK TO write")?;
        }
        conn.execute_batch("RELEASE write")?;
    }
    conn.execute_batch("COMMIT")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str =
        "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0));";

    fn rows(path: &Path) -> Vec<(i64, i64)> {
        let conn = Connection::open(path).unwrap();
        let mut select = conn.prepare("SELECT k, v FROM t ORDER BY k").unwrap();
        select
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[tokio::test]
    async fn callers_that_give_up_leave_the_queue() {
        let serial = Arc::new(Serial::new(0u32, 2));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // One call holds the turn until released; the queue behind it holds at most 2.
        let busy = {
            let serial = serial.clone();
            tokio::spawn(async move {
                serial
                    .run(move |v| {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        *v += 1;
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        for _ in 0..10 {
            // Each waits, then gives up: without leaving the queue, the third would be refused.
            let waiting =
                tokio::time::timeout(Duration::from_millis(5), serial.run(|v| *v += 1)).await;
            assert!(waiting.is_err(), "it waited for the busy call");
        }
        let queued = serial.clone();
        let queued = tokio::spawn(async move { queued.run(|v| *v += 1).await });
        tokio::task::yield_now().await;
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(serial.with(|v| *v), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_commits_every_good_write_and_nothing_of_a_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let writer =
            Arc::new(GroupCommit::start(open_durable(&path, SCHEMA).unwrap(), "t").unwrap());
        let writes = (0..200i64).map(|k| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |conn| {
                        conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", [k, k])?;
                        // Every tenth write breaks a CHECK after its first statement succeeded.
                        if k % 10 == 0 {
                            conn.execute("UPDATE t SET v = -1 WHERE k = ?1", [k])?;
                        }
                        Ok(k)
                    })
                    .await
            })
        });
        let results = futures::future::join_all(writes).await;
        for (k, result) in results.into_iter().enumerate() {
            let result = result.unwrap();
            if k % 10 == 0 {
                assert!(
                    matches!(result, Err(GroupError::Write(_))),
                    "{k}: {result:?}"
                );
            } else {
                assert_eq!(result, Ok(k as i64));
            }
        }
        let stored = rows(&path);
        assert_eq!(
            stored.len(),
            180,
            "the failed writes left nothing, not even their insert"
        );
        assert!(stored.iter().all(|(k, v)| k == v && k % 10 != 0));
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let writer = GroupCommit::start(open_durable(&path, SCHEMA).unwrap(), "t").unwrap();
        let panicked = writer
            .write(|conn| -> rusqlite::Result<()> {
                conn.execute("INSERT INTO t (k, v) VALUES (1, 1)", [])?;
                panic!("a bug in a write")
            })
            .await;
        assert_eq!(
            panicked,
            Err(GroupError::Write("the write panicked".into()))
        );
        writer
            .write(|conn| conn.execute("INSERT INTO t (k, v) VALUES (2, 2)", []))
            .await
            .unwrap();
        assert_eq!(rows(&path), vec![(2, 2)]);
    }
}
