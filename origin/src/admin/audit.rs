//! The audit log: one row per admin action (logins that worked or failed, logouts, account
//! changes, order transitions, stock changes, edge deliveries given up), with who, when, from
//! where, what, and the state before and after as JSON.
//!
//! Append-only twice over: this module has no update or delete, and `admin.sqlite` has
//! triggers that abort any UPDATE or DELETE on `audit_log`. An action's entry is written in the
//! same transaction as the action's own admin-database change, so neither exists without the
//! other. Read it with `GET /admin/api/audit?page=` or export it as CSV
//! (`GET /admin/api/audit.csv`, newest first, at most [`CSV_ROWS_MAX`] rows).
//!
//! The log is the one table allowed to grow without a bound, on purpose: a few rows per admin
//! action, kilobytes a day. Archiving old years is an operator's job (copy the file, start a
//! new one); nothing in the origin deletes from it.

use super::error::AdminError;
use super::Admin;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// Entries one page of `GET /admin/api/audit` holds.
pub const AUDIT_PAGE_SIZE: usize = 100;
/// Pages one may ask for at most (deeper history: the CSV export, or `sqlite3`).
pub const AUDIT_PAGE_MAX: usize = 10_000;
/// Rows one CSV export carries at most, newest first.
pub const CSV_ROWS_MAX: usize = 100_000;

/// An entry to append.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NewEntry {
    pub at_ms: u64,
    /// The account's e-mail, the e-mail a failed login tried, or the tool that acted.
    pub actor: Option<String>,
    pub ip: Option<String>,
    /// What happened, as `noun.verb` (`login.failed`, `order.status`, `stock.restock`, …).
    pub action: String,
    /// What it happened to (`user:3`, `order:o-1`, `sku:MUG-1`).
    pub target: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl NewEntry {
    pub fn with_before(mut self, before: Value) -> Self {
        self.before = Some(before);
        self
    }

    pub fn with_after(mut self, after: Value) -> Self {
        self.after = Some(after);
        self
    }
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub at_ms: u64,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Appends an entry (inside the caller's transaction, when it has one).
pub fn append(conn: &Connection, entry: &NewEntry) -> rusqlite::Result<()> {
    let text = |v: &Option<Value>| v.as_ref().map(|v| v.to_string());
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, actor, ip, action, target, before, after) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        entry.at_ms,
        entry.actor,
        entry.ip,
        entry.action,
        entry.target,
        text(&entry.before),
        text(&entry.after)
    ])
    .map(drop)
}

const ENTRY_COLUMNS: &str = "id, at_ms, actor, ip, action, target, before, after";

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let json = |i| -> rusqlite::Result<Option<Value>> {
        let text: Option<String> = row.get(i)?;
        // A value that is not JSON (written by hand) is shown as the string it is.
        Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))))
    };
    Ok(Entry {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        actor: row.get(2)?,
        ip: row.get(3)?,
        action: row.get(4)?,
        target: row.get(5)?,
        before: json(6)?,
        after: json(7)?,
    })
}

/// Up to `limit` entries after skipping `offset`, newest first.
pub fn newest(conn: &Connection, offset: usize, limit: usize) -> rusqlite::Result<Vec<Entry>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log ORDER BY id DESC LIMIT ?1 OFFSET ?2"
    ))?;
    let rows = select.query_map(params![limit as i64, offset as i64], row_to_entry)?;
    rows.collect()
}

/// Up to `limit` entries whose target is `target`, oldest first (an order's admin history).
pub fn for_target(conn: &Connection, target: &str, limit: usize) -> rusqlite::Result<Vec<Entry>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE target = ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = select.query_map(params![target, limit as i64], row_to_entry)?;
    rows.collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub page: Option<usize>,
}

/// `GET /admin/api/audit?page=` (owner): `{"entries": [...], "page", "page_size", "next"}`,
/// newest first; pages count from 1.
pub async fn list(
    State(admin): State<Arc<Admin>>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let page = query.page.unwrap_or(1);
    let (entries, next) = admin.audit_page(page).await?;
    Ok(Json(json!({
        "entries": entries,
        "page": page,
        "page_size": AUDIT_PAGE_SIZE,
        "next": next,
    })))
}

impl Admin {
    /// Appends `entry` in a transaction of its own (for actions whose change lives elsewhere:
    /// a shard file, the orders, the edge).
    pub async fn append_audit(&self, entry: NewEntry) -> Result<(), AdminError> {
        self.db.write(move |conn| Ok(append(conn, &entry)?)).await
    }

    /// Page `page` (from 1) of the log, newest first, and the next page's number if any.
    pub async fn audit_page(&self, page: usize) -> Result<(Vec<Entry>, Option<usize>), AdminError> {
        if page == 0 || page > AUDIT_PAGE_MAX {
            return Err(AdminError::BadRequest(format!(
                "page must be 1 to {AUDIT_PAGE_MAX}"
            )));
        }
        let offset = (page - 1) * AUDIT_PAGE_SIZE;
        let entries = self
            .db
            .read(move |conn| Ok(newest(conn, offset, AUDIT_PAGE_SIZE + 1)?))
            .await?;
        let more = entries.len() > AUDIT_PAGE_SIZE;
        let entries = entries.into_iter().take(AUDIT_PAGE_SIZE).collect();
        Ok((entries, more.then_some(page + 1)))
    }
}

/// A cell as a spreadsheet should show it: text starting with `=`, `+`, `-` or `@` is prefixed
/// with `'` so a crafted e-mail or note cannot run as a formula when the export is opened.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The entries as CSV (RFC 4180 quoting by the `csv` crate), with a header row.
pub fn to_csv(entries: &[Entry]) -> Result<Vec<u8>, AdminError> {
    let fail = |e: csv::Error| AdminError::Unavailable(format!("cannot write CSV: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "id", "at_ms", "actor", "ip", "action", "target", "before", "after",
    ])
    .map_err(fail)?;
    for e in entries {
        let json = |v: &Option<Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
        out.write_record([
            e.id.to_string(),
            e.at_ms.to_string(),
            cell(e.actor.as_deref().unwrap_or("")),
            cell(e.ip.as_deref().unwrap_or("")),
            cell(&e.action),
            cell(e.target.as_deref().unwrap_or("")),
            cell(&json(&e.before)),
            cell(&json(&e.after)),
        ])
        .map_err(fail)?;
    }
    out.into_inner()
        .map_err(|e| AdminError::Unavailable(format!("cannot write CSV: {e}")))
}

/// `GET /admin/api/audit.csv` (owner): the log as a CSV download, newest first.
pub async fn export_csv(State(admin): State<Arc<Admin>>) -> Result<Response, AdminError> {
    let entries = admin
        .db
        .read(|conn| Ok(newest(conn, 0, CSV_ROWS_MAX)?))
        .await?;
    let body = to_csv(&entries)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let entry = Entry {
            id: 1,
            at_ms: 5,
            actor: Some("=HYPERLINK(\"x\")".into()),
            ip: None,
            action: "order.status".into(),
            target: Some("order:a,b".into()),
            before: Some(json!({"status": "paid"})),
            after: Some(json!({"note": "line1\nline2"})),
        };
        let text = String::from_utf8(to_csv(&[entry]).unwrap()).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[2], "'=HYPERLINK(\"x\")");
        assert_eq!(&row[5], "order:a,b");
        assert_eq!(&row[6], r#"{"status":"paid"}"#);
        assert_eq!(&row[7], r#"{"note":"line1\nline2"}"#);
        assert!(text.contains("\"order:a,b\""), "{text}");
    }
}
