//! Orders the edge placed that have not reached the origin yet: the edge's order outbox
//! (`GET {edge}/_admin/outbox`), for the admin to see why (the origin down, or refusing an
//! order), and the "retry now" (`POST {edge}/_admin/outbox/{id}/retry`) to send once the cause
//! is fixed: a refused order is otherwise tried again only every few minutes.
//!
//! Routes: `GET /admin/api/edge/outbox` (viewer) and `POST /admin/api/edge/outbox/{id}/retry`
//! (staff, audited as `edge_delivery.retry`). Both need the origin connected to its edge
//! (`--edge-url`, `--edge-token`): 409 without.

use super::error::AdminError;
use super::orders::order_id;
use super::sessions::Session;
use super::Admin;
use axum::extract::{Path as UrlPath, State};
use axum::{Extension, Json};
use edge_core::Money;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// One order waiting in the edge's outbox (the edge's `PendingDelivery`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeDelivery {
    pub order_id: String,
    pub placed_at_ms: u64,
    pub total: Money,
    pub next_try_ms: u64,
    /// Failed tries so far, and the last one's error and time.
    pub attempts: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_try_ms: Option<u64>,
    /// The origin refused the order (a 4xx): it waits until someone fixes the cause.
    pub refused: bool,
}

/// The edge's outbox: every order shard's waiting orders, oldest first, and the shards that
/// did not answer (their orders are not listed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeOutbox {
    pub deliveries: Vec<EdgeDelivery>,
    #[serde(default)]
    pub unreachable_shards: Vec<String>,
}

/// Longest edge answer quoted in an error.
const QUOTE_CHARS_MAX: usize = 300;

impl Admin {
    fn edge_target(&self) -> Result<&super::EdgeTarget, AdminError> {
        self.config.edge.as_ref().ok_or_else(|| {
            AdminError::Conflict(
                "the origin is not connected to an edge: start it with --edge-url and --edge-token"
                    .into(),
            )
        })
    }

    /// Sends `request` to the edge: its JSON answer, or why not (the edge's 404 stays one).
    async fn edge_call(&self, request: reqwest::RequestBuilder) -> Result<Value, AdminError> {
        let edge = self.edge_target()?;
        let response = request
            .bearer_auth(&edge.token)
            .send()
            .await
            .map_err(|e| AdminError::Unavailable(format!("edge unreachable: {e}")))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|e| {
                AdminError::Unavailable(format!("the edge's answer is not what was expected: {e}"))
            });
        }
        let quoted: String = body.chars().take(QUOTE_CHARS_MAX).collect();
        Err(match status.as_u16() {
            404 => AdminError::NotFound(quoted),
            // An edge without an outbox (Spin: checkouts run at the origin) says so.
            501 => AdminError::Conflict(format!("the edge has no such thing: {quoted}")),
            _ => AdminError::Unavailable(format!("the edge answered {status}: {quoted}")),
        })
    }

    /// The edge's outbox of orders the origin has not received.
    pub async fn edge_outbox(&self) -> Result<EdgeOutbox, AdminError> {
        let url = format!(
            "{}/_admin/outbox",
            self.edge_target()?.url.trim_end_matches('/')
        );
        let answer = self.edge_call(self.http.get(url)).await?;
        serde_json::from_value(answer).map_err(|e| {
            AdminError::Unavailable(format!("the edge's outbox is not what was expected: {e}"))
        })
    }

    /// Asks the edge to send a waiting order now (audited); the edge's answer.
    pub async fn retry_edge_delivery(
        &self,
        actor: &Session,
        raw_order: &str,
    ) -> Result<Value, AdminError> {
        let order = order_id(raw_order)?;
        let url = format!(
            "{}/_admin/outbox/{order}/retry",
            self.edge_target()?.url.trim_end_matches('/')
        );
        let answer = self.edge_call(self.http.post(url)).await?;
        let entry = actor
            .entry(
                self.now_ms(),
                "edge_delivery.retry",
                format!("order:{order}"),
            )
            .with_after(answer.clone());
        self.append_audit(entry).await?;
        Ok(answer)
    }
}

/// `GET /admin/api/edge/outbox` (viewer).
pub async fn list(State(admin): State<Arc<Admin>>) -> Result<Json<EdgeOutbox>, AdminError> {
    Ok(Json(admin.edge_outbox().await?))
}

/// `POST /admin/api/edge/outbox/{id}/retry` (staff).
pub async fn retry(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    UrlPath(raw): UrlPath<String>,
) -> Result<Json<Value>, AdminError> {
    let answer = admin.retry_edge_delivery(&session, &raw).await?;
    Ok(Json(json!({ "retry": answer })))
}
