//! The admin API's one error type: each variant is one HTTP status and one `error` code in the
//! origin's JSON error shape (`{"error": code, "message": text}`), so a client (and the later
//! Leptos UI's server functions) can branch on the code and show the message as is.

use crate::db::SerialError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Why an admin request was refused. None is a bare 500: storage trouble is `Unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Malformed input: fix the request, retrying will not help.
    #[error("{0}")]
    BadRequest(String),
    /// No session, an expired one, or wrong credentials: log in (again).
    #[error("{0}")]
    Unauthorized(String),
    /// The password was right but the account has TOTP: send `totp` too.
    #[error("this account needs a TOTP code: send `totp`")]
    TotpRequired,
    /// The session's role may not do this, or the CSRF token is missing or wrong.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (an illegal order transition, an e-mail
    /// already taken): re-read and decide again.
    #[error("{0}")]
    Conflict(String),
    /// Too many failed logins: wait `retry_after_s` seconds.
    #[error("locked, try again in {retry_after_s} s")]
    Locked { retry_after_s: u64 },
    /// Storage failed or is overloaded: transient, retry with backoff.
    #[error("{0}")]
    Unavailable(String),
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Unauthorized(_) | AdminError::TotpRequired => StatusCode::UNAUTHORIZED,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "bad_request",
            AdminError::Unauthorized(_) => "unauthorized",
            AdminError::TotpRequired => "totp_required",
            AdminError::Forbidden(_) => "forbidden",
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) => "conflict",
            AdminError::Locked { .. } => "locked",
            AdminError::Unavailable(_) => "unavailable",
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let AdminError::Locked { retry_after_s } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

impl From<rusqlite::Error> for AdminError {
    fn from(e: rusqlite::Error) -> Self {
        AdminError::Unavailable(format!("admin database: {e}"))
    }
}

impl From<SerialError> for AdminError {
    fn from(e: SerialError) -> Self {
        AdminError::Unavailable(format!("admin database: {e}"))
    }
}

impl From<crate::orders::OrdersError> for AdminError {
    fn from(e: crate::orders::OrdersError) -> Self {
        match e {
            crate::orders::OrdersError::Invalid(m) => AdminError::BadRequest(m),
            crate::orders::OrdersError::Storage(m) => AdminError::Unavailable(m),
        }
    }
}

impl From<edge_core::store::StoreError> for AdminError {
    fn from(e: edge_core::store::StoreError) -> Self {
        AdminError::Unavailable(format!("stock: {e}"))
    }
}
