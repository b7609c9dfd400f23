//! The admin's stock: read one SKU's level, restock it, or set its available units, all on
//! the origin's coordinator (the 16 SQLite shards), each change audited with the level before
//! and after and the reason given.
//!
//! - `GET /admin/api/stock/{sku}` (viewer): `{sku, available, held, sold, received}`.
//! - `POST /admin/api/stock/{sku}/restock {qty, reason}` (staff): `ShardRequest::Restock`, units
//!   that arrived (`received` and `available` grow by `qty`). With an `Idempotency-Key` header
//!   (the admin UI's form carries one per rendering), at most once per key: a repeat adds
//!   nothing and answers `"repeated": true`; a key reused for other units is a 409.
//! - `POST /admin/api/stock/{sku}/adjust {available, reason}` (staff): a correction after a
//!   count, `ShardRequest::Seed { overwrite: true }` for that SKU: `available` becomes the given
//!   number, held and sold units stay, and `received` follows, so `received = available + held +
//!   sold` still holds.
//!
//! Limit: the stock change (a shard file) and its audit entry (`admin.sqlite`) are two commits;
//! a crash between them keeps the change without its entry. A keyed restock can be retried
//! (its repeat is audited too, marked `repeated`); an adjust sets a level, so a retry of it
//! is harmless, but neither is recovered by an intent as a status change is.

use super::error::AdminError;
use super::sessions::Session;
use super::{json_body, Admin};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use edge_core::api::{idempotency_key, restock_receipt};
use edge_core::stock::RESTOCK_QTY_MAX;
use edge_core::store::{Restocked, StockCoordinator};
use edge_core::{Sku, StockLevel};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Longest reason a stock change may carry.
pub const REASON_LEN_MAX: usize = 500;

fn sku(raw: &str) -> Result<Sku, AdminError> {
    Sku::parse(raw).map_err(|e| AdminError::BadRequest(format!("sku: {e}")))
}

fn reason(raw: &str) -> Result<String, AdminError> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX {
        return Err(AdminError::BadRequest(format!(
            "reason must be 1 to {REASON_LEN_MAX} characters: say why the stock changes"
        )));
    }
    Ok(reason.to_owned())
}

fn level_json(sku: &Sku, level: &StockLevel) -> Value {
    json!({
        "sku": sku,
        "available": level.available,
        "held": level.held,
        "sold": level.sold,
        "received": level.received,
    })
}

/// `GET /admin/api/stock/{sku}` (viewer).
pub async fn show(
    State(admin): State<Arc<Admin>>,
    UrlPath(raw): UrlPath<String>,
) -> Result<Json<Value>, AdminError> {
    let sku = sku(&raw)?;
    let level = admin
        .stock
        .level(&sku)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no stock record for {sku}")))?;
    Ok(Json(level_json(&sku, &level)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    pub qty: u32,
    pub reason: String,
}

/// `POST /admin/api/stock/{sku}/restock {qty, reason}` (staff, optional `Idempotency-Key`):
/// the level after, and whether this was a repeat.
pub async fn restock(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    UrlPath(raw): UrlPath<String>,
    body: Result<Json<Restock>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let body = json_body(body)?;
    let key = idempotency_key(&headers).map_err(AdminError::BadRequest)?;
    let (sku, done) = admin
        .restock(&session, &raw, body.qty, &body.reason, key)
        .await?;
    let mut answer = level_json(&sku, &done.level);
    answer["repeated"] = done.repeated.into();
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjust {
    pub available: u32,
    pub reason: String,
}

/// `POST /admin/api/stock/{sku}/adjust {available, reason}` (staff): the level after.
pub async fn adjust(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    UrlPath(raw): UrlPath<String>,
    body: Result<Json<Adjust>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let body = json_body(body)?;
    let (sku, after) = admin
        .adjust(&session, &raw, body.available, &body.reason)
        .await?;
    Ok(Json(level_json(&sku, &after)))
}

/// SKUs the stock list shows at most.
pub const STOCK_LIST_MAX: usize = 500;

impl Admin {
    /// Restocks `raw_sku` by `qty` units that arrived (audited with `reason`), at most once per
    /// idempotency `key` (a repeat adds nothing, is audited as `repeated`, and says so).
    pub async fn restock(
        &self,
        actor: &Session,
        raw_sku: &str,
        qty: u32,
        reason_text: &str,
        key: Option<&str>,
    ) -> Result<(Sku, Restocked), AdminError> {
        let sku = sku(raw_sku)?;
        let reason = reason(reason_text)?;
        if qty == 0 || qty > RESTOCK_QTY_MAX {
            return Err(AdminError::BadRequest(format!(
                "qty must be 1 to {RESTOCK_QTY_MAX}"
            )));
        }
        let receipt = restock_receipt(key).map_err(AdminError::BadRequest)?;
        let before = self.stock.level(&sku).await?;
        let done = self
            .stock
            .restock(&sku, qty, receipt.as_ref())
            .await?
            .map_err(AdminError::Conflict)?;
        let mut request = json!({ "qty": qty, "reason": reason });
        if let Some(receipt) = &receipt {
            request["receipt"] = receipt.as_str().into();
            request["repeated"] = done.repeated.into();
        }
        self.audit_stock(actor, "stock.restock", &sku, before, done.level, request)
            .await?;
        Ok((sku, done))
    }

    /// Sets `raw_sku`'s available units after a count (audited with `reason`): the level after.
    pub async fn adjust(
        &self,
        actor: &Session,
        raw_sku: &str,
        available: u32,
        reason_text: &str,
    ) -> Result<(Sku, StockLevel), AdminError> {
        let sku = sku(raw_sku)?;
        let reason = reason(reason_text)?;
        let before = self.stock.level(&sku).await?;
        self.stock
            .seed(vec![(sku.clone(), available)], true)
            .await?;
        let after = self.stock.level(&sku).await?.ok_or_else(|| {
            AdminError::Unavailable(format!("{sku} has no level after the adjust"))
        })?;
        self.audit_stock(
            actor,
            "stock.adjust",
            &sku,
            before,
            after,
            json!({ "available": available, "reason": reason }),
        )
        .await?;
        Ok((sku, after))
    }

    /// Every SKU's level whose SKU starts with `prefix`, in SKU order, at most
    /// [`STOCK_LIST_MAX`] (and whether there were more). Needs the shards
    /// ([`Admin::with_shards`]); without them, the empty list.
    pub async fn stock_levels(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(Sku, StockLevel)>, bool), AdminError> {
        let Some(shards) = &self.shards else {
            return Ok((Vec::new(), false));
        };
        let mut levels = Vec::new();
        for shard in edge_core::SkuShard::all() {
            let storage = shards
                .snapshot(shard)
                .await
                .map_err(|e| AdminError::Unavailable(e.to_string()))?;
            levels.extend(
                storage
                    .levels()
                    .filter(|(sku, _)| sku.as_str().starts_with(prefix))
                    .map(|(sku, level)| (sku.clone(), *level)),
            );
        }
        levels.sort_by(|a, b| a.0.cmp(&b.0));
        let more = levels.len() > STOCK_LIST_MAX;
        levels.truncate(STOCK_LIST_MAX);
        Ok((levels, more))
    }

    async fn audit_stock(
        &self,
        actor: &Session,
        action: &str,
        sku: &Sku,
        before: Option<StockLevel>,
        after: StockLevel,
        request: Value,
    ) -> Result<(), AdminError> {
        let mut after_json = level_json(sku, &after);
        after_json["request"] = request;
        let entry = actor
            .entry(self.now_ms(), action, format!("sku:{sku}"))
            .with_before(before.map_or(Value::Null, |b| level_json(sku, &b)))
            .with_after(after_json);
        self.append_audit(entry).await
    }
}
