//! A shopper's data rights (GDPR articles 15 and 17), for owners:
//!
//! - `GET /admin/api/privacy/export?email=`: every order the e-mail placed, as JSON, to hand to
//!   the shopper.
//! - `POST /admin/api/privacy/erase {email}`: the e-mail is replaced on every order with an
//!   anonymous placeholder (`erased-<12 hex>@invalid`, the same for one e-mail so its orders
//!   still group together). The orders themselves stay: they are the shop's accounting records,
//!   and the stock they sold must still add up.
//!
//! Both are audited, but by a SHA-256 of the e-mail, never the e-mail itself: the audit log is
//! append-only, so an e-mail written there could never be erased. Limits: only the origin's
//! copy is erased (an edge's copy of an order and its order page are not reached yet), and
//! admin accounts' own e-mails in the audit log stay.

use super::error::AdminError;
use super::sessions::Session;
use super::{json_body, Admin};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::{Extension, Json};
use edge_core::order::EMAIL_LEN_MAX;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailQuery {
    pub email: String,
}

/// The e-mail, trimmed, or a 400.
fn email(raw: &str) -> Result<String, AdminError> {
    let email = raw.trim();
    if email.is_empty() || email.len() > EMAIL_LEN_MAX || !email.contains('@') {
        return Err(AdminError::BadRequest(format!(
            "{raw:?} is not an e-mail address"
        )));
    }
    Ok(email.to_owned())
}

/// What the audit log keeps of an e-mail: enough to match a later request, not to read it.
pub fn email_digest(email: &str) -> String {
    Sha256::digest(email.trim().to_lowercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The placeholder an erased e-mail becomes.
pub fn erased_email(email: &str) -> String {
    format!("erased-{}@invalid", &email_digest(email)[..12])
}

/// `GET /admin/api/privacy/export?email=` (owner).
pub async fn export(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    query: Result<Query<EmailQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let (email, orders) = admin.privacy_export(&session, &query.email).await?;
    Ok(Json(json!({ "email": email, "orders": orders })))
}

/// `POST /admin/api/privacy/erase {email}` (owner): `{"orders_anonymised": n, "replaced_by"}`.
pub async fn erase(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    body: Result<Json<EmailQuery>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let erased = admin
        .privacy_erase(&session, &json_body(body)?.email)
        .await?;
    Ok(Json(json!(erased)))
}

/// What an erasure did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Erased {
    pub orders_anonymised: usize,
    pub replaced_by: String,
}

impl Admin {
    /// Every order `raw_email` placed (audited by the e-mail's digest): the e-mail, trimmed,
    /// and the orders.
    pub async fn privacy_export(
        &self,
        actor: &Session,
        raw_email: &str,
    ) -> Result<(String, Vec<edge_core::order::Order>), AdminError> {
        let email = email(raw_email)?;
        let orders = self.book.orders_by_email(&email).await?;
        self.audit_privacy(
            actor,
            "privacy.export",
            &email,
            json!({ "orders": orders.len() }),
        )
        .await?;
        Ok((email, orders))
    }

    /// Replaces `raw_email` on every order with its placeholder (audited by the digest).
    pub async fn privacy_erase(
        &self,
        actor: &Session,
        raw_email: &str,
    ) -> Result<Erased, AdminError> {
        let email = email(raw_email)?;
        let replaced_by = erased_email(&email);
        let orders_anonymised = self.book.anonymise_email(&email, &replaced_by).await?;
        let erased = Erased {
            orders_anonymised,
            replaced_by,
        };
        self.audit_privacy(actor, "privacy.erase", &email, json!(erased))
            .await?;
        Ok(erased)
    }

    async fn audit_privacy(
        &self,
        actor: &Session,
        action: &str,
        email: &str,
        after: Value,
    ) -> Result<(), AdminError> {
        let entry = actor
            .entry(
                self.now_ms(),
                action,
                format!("email-sha256:{}", email_digest(email)),
            )
            .with_after(after);
        self.append_audit(entry).await
    }
}
