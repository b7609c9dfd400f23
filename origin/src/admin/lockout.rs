//! The login throttle: failed logins are counted per account and per client IP, and past a
//! free allowance each further failure locks the key for twice as long as the last, up to
//! [`LOCK_S_MAX`]. While a key is locked, logins for it are refused before the password is
//! even checked ("locked, try again in N s", 429 with `Retry-After`), so a guesser gets a
//! handful of tries an hour, not thousands a second.
//!
//! The IP allowance is larger than the account's: one office behind one NAT address may hold
//! every staff member. A successful login clears its account's count (not its IP's, so one
//! valid account cannot launder a guessing run from the same address). Counts are forgotten
//! [`FORGET_AFTER_MS`] after a key's last failure. The table is bounded: forgotten keys are
//! pruned whenever a failure is recorded, and past [`THROTTLE_KEYS_MAX`] keys the stalest go.

use rusqlite::{params, Connection, OptionalExtension};

/// Failures an account gets before the first lock.
pub const ACCOUNT_FAILURES_FREE: u32 = 5;
/// Failures one client IP gets (over every account) before the first lock.
pub const IP_FAILURES_FREE: u32 = 20;
/// The first lock, doubled on every further failure.
pub const LOCK_S_BASE: u64 = 30;
/// The longest lock.
pub const LOCK_S_MAX: u64 = 3_600;
/// A key with no failure for this long starts over.
pub const FORGET_AFTER_MS: u64 = 24 * 3_600 * 1_000;
/// Keys the throttle keeps at most: a spray from many addresses cannot grow it without bound;
/// past it the keys whose last failure is oldest are forgotten first.
pub const THROTTLE_KEYS_MAX: u64 = 100_000;

/// The throttle key of an account (by normalized e-mail) or of a client IP.
pub fn account_key(email: &str) -> String {
    format!("account:{email}")
}

pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// How long a lock lasts after the `failures`-th failure, if it locks at all.
pub fn lock_s(failures: u32, free: u32) -> Option<u64> {
    let over = failures.checked_sub(free)?;
    // 30 s · 2^over, saturating well before the shift could overflow.
    Some(
        LOCK_S_BASE
            .saturating_mul(1u64 << over.min(20))
            .min(LOCK_S_MAX),
    )
}

/// Seconds left on `key`'s lock at `now_ms` (rounded up), or `None` when it is not locked.
pub fn locked_for_s(conn: &Connection, key: &str, now_ms: u64) -> rusqlite::Result<Option<u64>> {
    let until: Option<u64> = conn
        .prepare_cached("SELECT locked_until_ms FROM login_throttle WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    Ok(until
        .filter(|&until| until > now_ms)
        .map(|until| (until - now_ms).div_ceil(1_000)))
}

/// Counts a failure for `key`; the lock it now has in seconds, if any.
pub fn record_failure(
    conn: &Connection,
    key: &str,
    free: u32,
    now_ms: u64,
) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("DELETE FROM login_throttle WHERE last_failure_ms < ?1")?
        .execute([now_ms.saturating_sub(FORGET_AFTER_MS)])?;
    let failures: u32 = conn
        .prepare_cached("SELECT failures FROM login_throttle WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let failures = failures.saturating_add(1);
    let lock = lock_s(failures, free);
    let locked_until_ms = lock.map_or(0, |s| now_ms + s * 1_000);
    conn.prepare_cached(
        "INSERT INTO login_throttle (key, failures, last_failure_ms, locked_until_ms) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
         last_failure_ms = excluded.last_failure_ms, locked_until_ms = excluded.locked_until_ms",
    )?
    .execute(params![key, failures, now_ms, locked_until_ms])?;
    prune_to(conn, THROTTLE_KEYS_MAX)?;
    Ok(lock)
}

/// Forgets the stalest keys until at most `keys_max` are left.
pub fn prune_to(conn: &Connection, keys_max: u64) -> rusqlite::Result<()> {
    let keys: u64 = conn.query_row("SELECT COUNT(*) FROM login_throttle", [], |r| r.get(0))?;
    if keys > keys_max {
        conn.prepare_cached(
            "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle \
             ORDER BY last_failure_ms LIMIT ?1)",
        )?
        .execute([keys - keys_max])?;
    }
    Ok(())
}

/// Forgets `key`'s failures (a successful login).
pub fn clear(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM login_throttle WHERE key = ?1")?
        .execute([key])
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stalest_keys_go_first_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::store::AdminDb::open(dir.path()).unwrap();
        db.blocking(|conn| {
            for n in 0..10u64 {
                record_failure(conn, &ip_key(&format!("10.0.0.{n}")), 20, 1_000 + n).unwrap();
            }
            prune_to(conn, 4).unwrap();
            let mut keys: Vec<String> = conn
                .prepare("SELECT key FROM login_throttle ORDER BY key")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            keys.sort();
            assert_eq!(
                keys,
                ["ip:10.0.0.6", "ip:10.0.0.7", "ip:10.0.0.8", "ip:10.0.0.9"]
            );
        });
    }

    #[test]
    fn locks_start_after_the_allowance_and_double_up_to_the_cap() {
        assert_eq!(lock_s(4, 5), None);
        assert_eq!(lock_s(5, 5), Some(30));
        assert_eq!(lock_s(6, 5), Some(60));
        assert_eq!(lock_s(7, 5), Some(120));
        assert_eq!(lock_s(20, 5), Some(LOCK_S_MAX));
        assert_eq!(lock_s(u32::MAX, 5), Some(LOCK_S_MAX));
    }
}
