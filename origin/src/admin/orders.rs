//! The admin's orders: search and pagination over the order book, one order with its full
//! history, and status changes along the order state machine.
//!
//! # A status change
//! `POST /admin/api/orders/{id}/status {"status", "note"?}` (staff):
//! 1. records the intent (order, new status, time, the audit entry to write) in `admin.sqlite`;
//! 2. moves the order in `orders.sqlite` if [`OrderStatus::can_move_to`] allows it — 409 with
//!    "an order that is shipped cannot become cancelled" otherwise — in one transaction;
//! 3. in one `admin.sqlite` transaction, appends the audit entry (who, the note, before and
//!    after), queues the follow-ups in the outbox ([`super::outbox`]) — a `stock_cancel` when
//!    the new status returns stock ([`OrderStatus::returns_stock`]), an `edge_status` when the
//!    origin forwards to an edge — and drops the intent;
//! 4. runs the order's follow-ups at once; those that fail stay queued and are retried.
//!
//! The reply says what happened to each follow-up (`"stock": "returned" | "queued" | "none"`,
//! `"edge": "delivered" | "queued" | "refused" | "off"`; `refused`: the edge answered 4xx, see
//! the audit log). The edge call waits at most [`super::outbox::EDGE_TIMEOUT_MS`], so a hanging
//! edge delays the reply by that much, once; the change stands either way. Stock goes back through the origin coordinator
//! with `ShardRequest::Cancel { order }` on every shard of the order's lines, and for a cancel
//! on the shards of its promotion usage counters (`edge_core::checkout::stock_returns`; a
//! restocking return keeps the code redeemed) (idempotent: a repeat changes nothing, an order
//! never sold here leaves a tombstone and no stock change);
//! the edge returns its own stock when it applies the status.
//!
//! Steps 2 and 3 are two files and two fsyncs. A crash between them leaves the intent: the
//! outbox loop ([`Admin::recover_intents`]) looks at the order's history and, if the change is
//! there, finishes step 3; if not, drops the intent. (Limit: two admins moving one order to the
//! same status in the same millisecond, then a crash, could get two audit entries.)

use super::error::AdminError;
use super::outbox::{self, Delivery, Kind};
use super::sessions::Session;
use super::{audit, json_body, Admin};
use crate::orders::{
    OrderFilter, OrderSummary, StatusMove, SEARCH_PAGE_SIZE_MAX, SEARCH_TEXT_LEN_MAX,
};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::{Extension, Json};
use edge_core::order::{Order, OrderStatus};
use edge_core::stock::OrderId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// Orders a page holds unless `page_size` says otherwise.
pub const PAGE_SIZE_DEFAULT: usize = 25;
/// Deepest page one may ask for.
pub const PAGE_MAX: usize = 10_000;
/// Longest note a status change may carry.
pub const NOTE_LEN_MAX: usize = 1_000;
/// Audit entries shown with one order.
pub const ORDER_AUDIT_MAX: usize = 200;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub email: Option<String>,
    pub sku: Option<String>,
    pub q: Option<String>,
    pub page: Option<usize>,
    pub page_size: Option<usize>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time bound: milliseconds since the epoch, or a UTC date `YYYY-MM-DD` (its midnight, or
/// with `end_of_day` the next midnight, so `to=2026-11-24` includes that whole day).
pub fn parse_time(raw: &str, end_of_day: bool) -> Result<u64, AdminError> {
    if let Ok(ms) = raw.parse::<u64>() {
        return Ok(ms);
    }
    let bad = || {
        AdminError::BadRequest(format!(
            "{raw:?} is neither ms since the epoch nor YYYY-MM-DD"
        ))
    };
    let parts: Vec<&str> = raw.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d) = (
        y.parse::<i64>().map_err(|_| bad())?,
        m.parse::<i64>().map_err(|_| bad())?,
        d.parse::<i64>().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d) + i64::from(end_of_day);
    u64::try_from(days * 86_400_000).map_err(|_| bad())
}

fn filter(query: ListQuery) -> Result<(OrderFilter, usize, usize), AdminError> {
    let page = query.page.unwrap_or(1);
    let page_size = query.page_size.unwrap_or(PAGE_SIZE_DEFAULT);
    if page == 0 || page > PAGE_MAX {
        return Err(AdminError::BadRequest(format!(
            "page must be 1 to {PAGE_MAX}"
        )));
    }
    if page_size == 0 || page_size > SEARCH_PAGE_SIZE_MAX {
        return Err(AdminError::BadRequest(format!(
            "page_size must be 1 to {SEARCH_PAGE_SIZE_MAX}"
        )));
    }
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(
            OrderStatus::parse(raw)
                .ok_or_else(|| AdminError::BadRequest(format!("no order status {raw:?}")))?,
        ),
        None => None,
    };
    if query
        .q
        .as_ref()
        .is_some_and(|q| q.len() > SEARCH_TEXT_LEN_MAX)
    {
        return Err(AdminError::BadRequest(format!(
            "q is longer than {SEARCH_TEXT_LEN_MAX}"
        )));
    }
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    Ok((
        OrderFilter {
            status,
            from_ms: nonempty(query.from)
                .map(|f| parse_time(&f, false))
                .transpose()?,
            to_ms: nonempty(query.to)
                .map(|t| parse_time(&t, true))
                .transpose()?,
            email: nonempty(query.email),
            sku: nonempty(query.sku),
            text: nonempty(query.q),
            offset: (page - 1) * page_size,
            limit: page_size,
        },
        page,
        page_size,
    ))
}

/// One page of an order search.
#[derive(Clone, Debug, Serialize)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    /// Orders matching in all.
    pub total: u64,
    pub page: usize,
    pub page_size: usize,
    /// The next page's number, if there are more.
    pub next: Option<usize>,
}

/// One status an order had, and since when.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub status: String,
    pub at_ms: u64,
}

/// One order as the admin shows it.
#[derive(Clone, Debug, Serialize)]
pub struct OrderDetail {
    pub order: Order,
    pub history: Vec<HistoryEntry>,
    /// The audit entries about this order, oldest first (who moved it, with which note).
    pub admin_actions: Vec<audit::Entry>,
    /// The statuses the state machine allows next (the UI offers these only).
    pub next_statuses: Vec<&'static str>,
}

/// `GET /admin/api/orders?status=&from=&to=&email=&sku=&q=&page=&page_size=` (viewer):
/// `{"orders": [...], "total", "page", "page_size", "next"}`, newest first.
pub async fn list(
    State(admin): State<Arc<Admin>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<OrderPage>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    Ok(Json(admin.search_orders(query).await?))
}

pub(crate) fn order_id(raw: &str) -> Result<OrderId, AdminError> {
    OrderId::parse(raw).map_err(|e| AdminError::BadRequest(format!("order id: {e}")))
}

/// `GET /admin/api/orders/{id}` (viewer): the order, its status history, and the admin's
/// audit entries about it (who moved it, with which note).
pub async fn show(
    State(admin): State<Arc<Admin>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OrderDetail>, AdminError> {
    let id = order_id(&id)?;
    Ok(Json(admin.order_detail(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /admin/api/orders/{id}/status {"status", "note"?}` (staff).
pub async fn change_status(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<StatusBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let body = json_body(body)?;
    let id = order_id(&id)?;
    Ok(Json(
        admin
            .change_status(&session, &id, &body.status, body.note)
            .await?,
    ))
}

/// `GET /admin/api/outbox` (viewer): follow-ups waiting for a retry.
pub async fn outbox(State(admin): State<Arc<Admin>>) -> Result<Json<Value>, AdminError> {
    let rows = admin.waiting_follow_ups().await?;
    Ok(Json(
        json!({ "waiting": rows, "edge": admin.config.edge.is_some() }),
    ))
}

impl Admin {
    /// The orders matching `query`, newest first, one page of them.
    pub async fn search_orders(&self, query: ListQuery) -> Result<OrderPage, AdminError> {
        let (filter, page, page_size) = filter(query)?;
        let (orders, total) = self.book.search(filter).await?;
        let next = (page as u64 * page_size as u64) < total;
        Ok(OrderPage {
            orders,
            total,
            page,
            page_size,
            next: next.then_some(page + 1),
        })
    }

    /// One order with its history, its audit entries and the statuses it may move to.
    pub async fn order_detail(&self, id: &OrderId) -> Result<OrderDetail, AdminError> {
        let order = self
            .book
            .order(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no order {id}")))?;
        let history = self.book.history(id).await?;
        let target = format!("order:{id}");
        let admin_actions = self
            .db
            .read(move |conn| Ok(audit::for_target(conn, &target, ORDER_AUDIT_MAX)?))
            .await?;
        let next_statuses = edge_core::order::ALL_STATUSES
            .into_iter()
            .filter(|s| order.status.can_move_to(*s))
            .map(|s| s.as_str())
            .collect();
        Ok(OrderDetail {
            order,
            history: history
                .into_iter()
                .map(|(status, at_ms)| HistoryEntry { status, at_ms })
                .collect(),
            admin_actions,
            next_statuses,
        })
    }

    /// Moves an order along the state machine (see the module doc); the reply body.
    pub async fn change_status(
        &self,
        actor: &Session,
        id: &OrderId,
        status: &str,
        note: Option<String>,
    ) -> Result<Value, AdminError> {
        let to = OrderStatus::parse(status)
            .ok_or_else(|| AdminError::BadRequest(format!("no order status {status:?}")))?;
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > NOTE_LEN_MAX)
        {
            return Err(AdminError::BadRequest(format!(
                "note is longer than {NOTE_LEN_MAX} characters"
            )));
        }
        // Refuse before moving the order: a change whose follow-ups cannot be queued must
        // not happen at all.
        let depth = self.db.read(|conn| Ok(outbox::depth(conn)?)).await?;
        if depth >= outbox::OUTBOX_MAX {
            return Err(AdminError::Unavailable(format!(
                "{depth} follow-ups are waiting (is the edge down?); retry once they drain"
            )));
        }
        let now_ms = self.now_ms();
        let entry = actor
            .entry(now_ms, "order.status", format!("order:{id}"))
            .with_after(json!({ "status": to, "note": note }));
        // The intent first: if the process dies after the order moved, the outbox loop finds
        // it and appends the audit entry and queues the follow-ups then.
        let intent = outbox::Intent {
            order: id.to_string(),
            status: to,
            at_ms: now_ms,
            entry,
        };
        let pending = self.record_intent(&intent).await?;
        let moved = match self.book.change_status(id, to, now_ms).await {
            Ok(moved) => moved,
            // Unknown whether it moved: the pending intent is resolved by the outbox loop.
            Err(e) => return Err(e.into()),
        };
        let (before, after) = match moved {
            StatusMove::NotFound => {
                pending.drop_intent(self).await?;
                return Err(AdminError::NotFound(format!("no order {id}")));
            }
            StatusMove::Illegal { from } => {
                pending.drop_intent(self).await?;
                return Err(AdminError::Conflict(format!(
                    "an order that is {} cannot become {}",
                    from.as_str(),
                    to.as_str()
                )));
            }
            StatusMove::Moved { before, after } => (before, after),
        };
        pending.finish(self, before.status).await.map_err(|e| {
            AdminError::Unavailable(format!(
                "order {id} is now {}, but its audit entry and follow-ups are still pending \
                 ({e}); the outbox loop will finish them",
                to.as_str()
            ))
        })?;
        let report = self.run_outbox_for(id).await;
        let stock = match report.get(&Kind::StockCancel) {
            Some(Delivery::Done) => "returned",
            Some(_) => "queued",
            None => "none",
        };
        let edge = match (self.config.edge.is_some(), report.get(&Kind::EdgeStatus)) {
            (false, _) => "off",
            (true, Some(Delivery::Done)) => "delivered",
            (true, Some(Delivery::GaveUp(_))) => "refused",
            (true, _) => "queued",
        };
        Ok(json!({
            "order": *after,
            "from": before.status,
            "to": after.status,
            "stock": stock,
            "edge": edge,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ms_parse_as_utc_bounds() {
        assert_eq!(parse_time("1970-01-01", false).unwrap(), 0);
        assert_eq!(parse_time("1970-01-01", true).unwrap(), 86_400_000);
        assert_eq!(parse_time("2026-11-24", false).unwrap(), 1_795_478_400_000);
        assert_eq!(parse_time("12345", true).unwrap(), 12_345);
        for bad in ["2026-13-01", "yesterday", "2026-11", "-5"] {
            assert!(parse_time(bad, false).is_err(), "{bad}");
        }
    }
}
