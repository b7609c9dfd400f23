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
use super::{audit, json_body, Admin};
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
    let email = email(&query.email)?;
    let orders = admin.book.orders_by_email(&email).await?;
    let entry = session
        .entry(
            admin.now_ms(),
            "privacy.export",
            format!("email-sha256:{}", email_digest(&email)),
        )
        .with_after(json!({ "orders": orders.len() }));
    admin
        .db
        .write(move |conn| Ok(audit::append(conn, &entry)?))
        .await?;
    Ok(Json(json!({ "email": email, "orders": orders })))
}

/// `POST /admin/api/privacy/erase {email}` (owner): `{"orders_anonymised": n, "replaced_by"}`.
pub async fn erase(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    body: Result<Json<EmailQuery>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let email = email(&json_body(body)?.email)?;
    let replacement = erased_email(&email);
    let changed = admin.book.anonymise_email(&email, &replacement).await?;
    let entry = session
        .entry(
            admin.now_ms(),
            "privacy.erase",
            format!("email-sha256:{}", email_digest(&email)),
        )
        .with_after(json!({ "orders_anonymised": changed, "replaced_by": replacement }));
    admin
        .db
        .write(move |conn| Ok(audit::append(conn, &entry)?))
        .await?;
    Ok(Json(json!({
        "orders_anonymised": changed,
        "replaced_by": replacement,
    })))
}
