//! The admin outbox: what a status change must do besides moving the order, kept in
//! `admin.sqlite` until done, so an unreachable edge or a busy stock shard delays it but never
//! loses it.
//!
//! # Kinds
//! - `stock_cancel`: `ShardRequest::Cancel { order }` on every shard of the order's lines, on the
//!   origin's coordinator (idempotent); for a cancel also on the shards of its promotion usage
//!   counters, so a limited code's use comes back (not for a restocking return: see
//!   [`OrderStatus::returns_promotion_uses`] and `edge_core::checkout::stock_returns`).
//! - `edge_status`: `POST {edge}/_admin/orders/{id}/status {"status"}` with the edge admin token,
//!   so the edge updates its copy, returns its own stock and pushes the change to the shopper's
//!   open order page.
//!
//! # Intents
//! A status change first records its [`Intent`] (`pending_changes`), then moves the order in
//! `orders.sqlite`, then audits it, queues its rows here and drops the intent in one
//! `admin.sqlite` transaction. An intent left behind (a crash between the two files) is
//! resolved by the loop before each tick's deliveries ([`Admin::recover_intents`]): finished if
//! the order's history has the change, dropped if not. Intents still running in this process
//! are skipped.
//!
//! # Delivery
//! Follow-ups of one order run strictly in the order they were queued (only the oldest waiting
//! row of an order is ever due), so an edge sees `cancelled` before `refunded`. A change runs its
//! order's follow-ups at once ([`Admin::run_outbox_for`]); what fails waits
//! `RETRY_MS_BASE · 2^attempts` (at most [`RETRY_MS_MAX`]) and is retried by the background loop
//! ([`Admin::spawn_outbox`], every [`OUTBOX_TICK_MS`], at most [`OUTBOX_BATCH_MAX`] rows a tick).
//! An edge that answers 4xx (unknown order 404, illegal move 409) will answer the same forever:
//! the row is dropped with an `outbox.gave_up` audit entry. Network errors, timeouts, 5xx and 429
//! are retried without limit in count, but the queue holds at most [`OUTBOX_MAX`] rows: past it,
//! status changes are refused (503) until it drains, rather than queueing without bound.

use super::audit::{self, NewEntry};
use super::error::AdminError;
use super::Admin;
use edge_core::checkout::stock_returns;
use edge_core::order::OrderStatus;
use edge_core::stock::{OrderId, ShardReply};
use edge_core::store::StockCoordinator;
use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Rows the outbox holds at most; a status change is refused past it.
pub const OUTBOX_MAX: u64 = 10_000;
/// Rows one background tick runs at most.
pub const OUTBOX_BATCH_MAX: usize = 64;
/// How often the background loop looks for due rows.
pub const OUTBOX_TICK_MS: u64 = 1_000;
/// The first retry's delay, doubled on each failure, capped at [`RETRY_MS_MAX`].
pub const RETRY_MS_BASE: u64 = 1_000;
pub const RETRY_MS_MAX: u64 = 5 * 60 * 1_000;
/// Rows `GET /admin/api/outbox` lists at most.
pub const OUTBOX_LIST_MAX: usize = 200;
/// How long one call to the edge may take.
pub const EDGE_TIMEOUT_MS: u64 = 5_000;
/// Longest error text kept on a row.
const ERROR_LEN_MAX: usize = 500;

/// What a row asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    StockCancel,
    EdgeStatus,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::StockCancel => "stock_cancel",
            Kind::EdgeStatus => "edge_status",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "stock_cancel" => Some(Kind::StockCancel),
            "edge_status" => Some(Kind::EdgeStatus),
            _ => None,
        }
    }
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Done,
    /// Transient: retried later.
    Retry(String),
    /// Permanent: dropped (and audited).
    GaveUp(String),
}

/// A waiting row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub id: i64,
    pub kind: String,
    pub order_id: String,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at_ms: u64,
    pub last_error: Option<String>,
}

/// Where an origin forwards order status changes.
#[derive(Clone, Debug)]
pub struct EdgeTarget {
    /// The edge's base URL, e.g. `https://shop.example.com`.
    pub url: String,
    /// The edge's admin bearer token.
    pub token: String,
}

pub fn enqueue(
    conn: &Connection,
    kind: Kind,
    order: &str,
    status: OrderStatus,
    now_ms: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (kind, order_id, status, next_attempt_at_ms, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![kind.as_str(), order, status.as_str(), now_ms])
    .map(drop)
}

pub fn depth(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
}

const ROW_COLUMNS: &str =
    "o.id, o.kind, o.order_id, o.status, o.attempts, o.next_attempt_at_ms, o.last_error";

fn to_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: row.get(0)?,
        kind: row.get(1)?,
        order_id: row.get(2)?,
        status: row.get(3)?,
        attempts: row.get(4)?,
        next_attempt_at_ms: row.get(5)?,
        last_error: row.get(6)?,
    })
}

/// Every waiting row, oldest first (at most `limit`).
pub fn waiting(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Row>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox o ORDER BY o.id LIMIT ?1"
    ))?;
    let rows = select.query_map([limit as i64], to_row)?;
    rows.collect()
}

/// Rows due at `now_ms` that head their order's queue, oldest first; only `order` when given.
fn due(
    conn: &Connection,
    now_ms: u64,
    order: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Row>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox o WHERE o.next_attempt_at_ms <= ?1 \
         AND (?2 IS NULL OR o.order_id = ?2) \
         AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.order_id = o.order_id AND p.id < o.id) \
         ORDER BY o.id LIMIT ?3"
    ))?;
    let rows = select.query_map(params![now_ms, order, limit as i64], to_row)?;
    rows.collect()
}

/// The delay before attempt `attempts + 1`.
pub fn retry_delay_ms(attempts: u32) -> u64 {
    RETRY_MS_BASE
        .saturating_mul(1u64 << attempts.min(20))
        .min(RETRY_MS_MAX)
}

fn clip(mut text: String) -> String {
    if text.len() > ERROR_LEN_MAX {
        let mut end = ERROR_LEN_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A status change about to be made: kept in `pending_changes` until its audit entry and
/// follow-ups are written (see [`super::orders`]).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Intent {
    pub order: String,
    pub status: OrderStatus,
    pub at_ms: u64,
    /// The audit entry to append (its `before` is filled in when the change is known).
    pub entry: NewEntry,
}

/// Intents recovered at most per outbox tick.
pub const INTENTS_PER_TICK_MAX: usize = 64;

/// Ids of intents whose change is still running in this process: recovery leaves them alone.
pub(crate) type InFlight = Arc<std::sync::Mutex<BTreeSet<i64>>>;

fn in_flight_lock(set: &InFlight) -> std::sync::MutexGuard<'_, BTreeSet<i64>> {
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A recorded intent of a running change. Dropped without [`Pending::finish`] or
/// [`Pending::drop_intent`] (an error, a dropped request), it is left to recovery.
pub struct Pending {
    id: i64,
    intent: Intent,
    in_flight: InFlight,
}

impl Drop for Pending {
    fn drop(&mut self) {
        in_flight_lock(&self.in_flight).remove(&self.id);
    }
}

impl Pending {
    /// The change happened: audit it, queue its follow-ups, forget the intent.
    pub async fn finish(self, admin: &Admin, before: OrderStatus) -> Result<(), AdminError> {
        let (id, intent, edge) = (self.id, self.intent.clone(), admin.config.edge.is_some());
        admin
            .db
            .write(move |conn| finalize(conn, id, &intent, Some(before), edge))
            .await
    }

    /// The change was refused: forget the intent.
    pub async fn drop_intent(self, admin: &Admin) -> Result<(), AdminError> {
        let id = self.id;
        admin
            .db
            .write(move |conn| {
                conn.execute("DELETE FROM pending_changes WHERE id = ?1", [id])?;
                Ok(())
            })
            .await
    }
}

/// Appends the intent's audit entry and queues its follow-ups, unless it was already finished
/// (its row is gone): each intent is finished at most once.
fn finalize(
    conn: &Connection,
    id: i64,
    intent: &Intent,
    before: Option<OrderStatus>,
    edge: bool,
) -> Result<(), AdminError> {
    if conn.execute("DELETE FROM pending_changes WHERE id = ?1", [id])? == 0 {
        return Ok(());
    }
    let mut entry = intent.entry.clone();
    entry.before = Some(json!({ "status": before }));
    audit::append(conn, &entry)?;
    if intent.status.returns_stock() {
        enqueue(
            conn,
            Kind::StockCancel,
            &intent.order,
            intent.status,
            intent.at_ms,
        )?;
    }
    if edge {
        enqueue(
            conn,
            Kind::EdgeStatus,
            &intent.order,
            intent.status,
            intent.at_ms,
        )?;
    }
    Ok(())
}

/// Records an intent (outside any running change: tests use it to stage a crash).
pub fn record_intent(conn: &Connection, intent: &Intent) -> Result<i64, AdminError> {
    let entry = serde_json::to_string(&intent.entry)
        .map_err(|e| AdminError::Unavailable(format!("cannot encode an audit entry: {e}")))?;
    conn.execute(
        "INSERT INTO pending_changes (order_id, status, at_ms, entry) VALUES (?1, ?2, ?3, ?4)",
        params![intent.order, intent.status.as_str(), intent.at_ms, entry],
    )?;
    Ok(conn.last_insert_rowid())
}

impl Admin {
    /// Records `intent` durably and marks it running in this process.
    pub async fn record_intent(&self, intent: &Intent) -> Result<Pending, AdminError> {
        let stored = intent.clone();
        let id = self
            .db
            .write(move |conn| record_intent(conn, &stored))
            .await?;
        in_flight_lock(&self.in_flight).insert(id);
        Ok(Pending {
            id,
            intent: intent.clone(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// Resolves intents left by a crash (or a failed write): finished when the order's history
    /// has the change (same status, same time), dropped when it does not. The number resolved.
    pub async fn recover_intents(&self) -> Result<usize, AdminError> {
        let rows: Vec<(i64, String, String, u64, String)> = self
            .db
            .read(|conn| {
                let mut select = conn.prepare_cached(
                    "SELECT id, order_id, status, at_ms, entry FROM pending_changes                      ORDER BY id LIMIT ?1",
                )?;
                let rows = select.query_map([INTENTS_PER_TICK_MAX as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        let mut resolved = 0;
        for (id, order, status, at_ms, entry) in rows {
            if in_flight_lock(&self.in_flight).contains(&id) {
                continue;
            }
            let (Some(status), Ok(entry), Ok(order_id)) = (
                OrderStatus::parse(&status),
                serde_json::from_str::<NewEntry>(&entry),
                OrderId::parse(&order),
            ) else {
                // Unreadable: nothing can be finished from it.
                self.db
                    .write(move |conn| {
                        conn.execute("DELETE FROM pending_changes WHERE id = ?1", [id])?;
                        Ok(())
                    })
                    .await?;
                continue;
            };
            let stored = self.book.order(&order_id).await?;
            let history = stored.map(|o| o.history).unwrap_or_default();
            let happened = history
                .iter()
                .position(|c| c.status == status && c.at_ms == at_ms);
            let intent = Intent {
                order,
                status,
                at_ms,
                entry,
            };
            let edge = self.config.edge.is_some();
            self.db
                .write(move |conn| match happened {
                    Some(i) => {
                        let before = i
                            .checked_sub(1)
                            .and_then(|b| history.get(b))
                            .map(|c| c.status);
                        finalize(conn, id, &intent, before, edge)
                    }
                    None => {
                        conn.execute("DELETE FROM pending_changes WHERE id = ?1", [id])?;
                        Ok(())
                    }
                })
                .await?;
            resolved += 1;
        }
        Ok(resolved)
    }

    /// The follow-ups still waiting, next due first (at most [`OUTBOX_LIST_MAX`]).
    pub async fn waiting_follow_ups(&self) -> Result<Vec<Row>, AdminError> {
        self.db
            .read(|conn| Ok(waiting(conn, OUTBOX_LIST_MAX)?))
            .await
    }

    /// Runs `order`'s due follow-ups now, in order, stopping at the first that must wait;
    /// how each kind went.
    pub async fn run_outbox_for(&self, order: &OrderId) -> BTreeMap<Kind, Delivery> {
        let mut report = BTreeMap::new();
        // Each pass removes or postpones the row it ran, so two passes per kind suffice.
        for _ in 0..8 {
            let now_ms = self.now_ms();
            let order = order.to_string();
            let rows = match self
                .db
                .read(move |conn| Ok(due(conn, now_ms, Some(&order), 1)?))
                .await
            {
                Ok(rows) => rows,
                Err(_) => break,
            };
            let Some(row) = rows.into_iter().next() else {
                break;
            };
            let kind = Kind::parse(&row.kind);
            let delivery = self.run_row(&row).await;
            let waiting = matches!(delivery, Delivery::Retry(_));
            if let Some(kind) = kind {
                report.insert(kind, delivery);
            }
            if waiting {
                break;
            }
        }
        report
    }

    /// Runs up to [`OUTBOX_BATCH_MAX`] due rows (one per order at a time); the rows run.
    /// Intents left by a crash are resolved first ([`Self::recover_intents`]).
    pub async fn run_outbox_due(&self) -> Result<usize, AdminError> {
        self.recover_intents().await?;
        let now_ms = self.now_ms();
        let rows = self
            .db
            .read(move |conn| Ok(due(conn, now_ms, None, OUTBOX_BATCH_MAX)?))
            .await?;
        let mut blocked = BTreeSet::new();
        let mut ran = 0;
        for row in rows {
            if blocked.contains(&row.order_id) {
                continue;
            }
            ran += 1;
            if matches!(self.run_row(&row).await, Delivery::Retry(_)) {
                blocked.insert(row.order_id.clone());
            }
        }
        Ok(ran)
    }

    /// The background retry loop (see the module doc).
    pub fn spawn_outbox(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let admin = self.clone();
        let (dummy, cost) = (self.dummy_hash.clone(), self.config.hash_cost);
        tokio::task::spawn_blocking(move || Admin::dummy_hash_blocking(&dummy, cost));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(OUTBOX_TICK_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = admin.run_outbox_due().await {
                    eprintln!("origin: admin outbox failed (retrying next tick): {e}");
                }
            }
        })
    }

    /// Attempts one row and records the outcome: deleted when done or given up (audited),
    /// postponed with its error otherwise.
    async fn run_row(&self, row: &Row) -> Delivery {
        let delivery = match (Kind::parse(&row.kind), OrderId::parse(&row.order_id)) {
            (Some(Kind::StockCancel), Ok(order)) => match OrderStatus::parse(&row.status) {
                Some(status) => self.return_stock(&order, status).await,
                None => Delivery::GaveUp(format!(
                    "unreadable status {:?} on row {}",
                    row.status, row.id
                )),
            },
            (Some(Kind::EdgeStatus), Ok(order)) => self.forward_to_edge(&order, &row.status).await,
            _ => Delivery::GaveUp(format!("unreadable row {} ({})", row.id, row.kind)),
        };
        let now_ms = self.now_ms();
        let (id, attempts) = (row.id, row.attempts);
        let entry = NewEntry {
            at_ms: now_ms,
            actor: Some("origin outbox".into()),
            action: "outbox.gave_up".into(),
            target: Some(format!("order:{}", row.order_id)),
            before: Some(json!({ "kind": row.kind, "status": row.status, "attempts": attempts })),
            ..NewEntry::default()
        };
        let outcome = delivery.clone();
        let recorded = self
            .db
            .write(move |conn| {
                match outcome {
                    Delivery::Done => {
                        conn.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
                    }
                    Delivery::GaveUp(reason) => {
                        conn.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
                        audit::append(conn, &entry.with_after(json!({ "reason": reason })))?;
                    }
                    Delivery::Retry(error) => {
                        conn.execute(
                            "UPDATE outbox SET attempts = ?1, next_attempt_at_ms = ?2, \
                             last_error = ?3 WHERE id = ?4",
                            params![
                                attempts + 1,
                                now_ms + retry_delay_ms(attempts),
                                clip(error),
                                id
                            ],
                        )?;
                    }
                }
                Ok(())
            })
            .await;
        match recorded {
            Ok(()) => delivery,
            // Not recorded: the row stays as it was and runs again (every kind is idempotent).
            Err(e) => Delivery::Retry(e.to_string()),
        }
    }

    /// What the order's move to `status` gives back ([`stock_returns`]): `Cancel` on every shard
    /// of the order's lines and, for a cancel, of its promotion usage counters.
    async fn return_stock(&self, order: &OrderId, status: OrderStatus) -> Delivery {
        let stored = match self.book.order(order).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Delivery::GaveUp(format!("no order {order}")),
            Err(e) => return Delivery::Retry(e.to_string()),
        };
        for (shard, request) in stock_returns(&stored, status) {
            match self.stock.on_shard(shard, request).await {
                Ok(ShardReply::Cancelled | ShardReply::Released { .. }) => {}
                Ok(ShardReply::Rejected { reason }) => return Delivery::GaveUp(reason),
                Ok(other) => return Delivery::GaveUp(format!("unexpected reply {other:?}")),
                Err(e) => return Delivery::Retry(e.to_string()),
            }
        }
        Delivery::Done
    }

    /// `POST {edge}/_admin/orders/{id}/status`.
    async fn forward_to_edge(&self, order: &OrderId, status: &str) -> Delivery {
        let Some(edge) = &self.config.edge else {
            return Delivery::GaveUp("the origin no longer forwards to an edge".into());
        };
        let url = format!(
            "{}/_admin/orders/{}/status",
            edge.url.trim_end_matches('/'),
            order
        );
        let sent = self
            .http
            .post(&url)
            .bearer_auth(&edge.token)
            .json(&json!({ "status": status }))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Delivery::Retry(format!("edge unreachable: {e}")),
        };
        let code = response.status();
        if code.is_success() {
            return Delivery::Done;
        }
        let body = response.text().await.unwrap_or_default();
        let error = clip(format!("edge answered {code}: {body}"));
        if edge_core::store::refusal_is_final(code.as_u16()) {
            Delivery::GaveUp(error)
        } else {
            Delivery::Retry(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_delay_ms(0), 1_000);
        assert_eq!(retry_delay_ms(1), 2_000);
        assert_eq!(retry_delay_ms(5), 32_000);
        assert_eq!(retry_delay_ms(30), RETRY_MS_MAX);
    }
}
