//! What the origin's own routes (`/coordinator`, `/internal`) share: one JSON error shape,
//! `{"error": code, "message": text}` (the edge API's), and the bearer-token check.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Why an origin route refused a request. Each variant is one status; none is a 500.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Malformed request: the caller must fix it, retrying will not help.
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// Storage failed or is overloaded: transient, retry with backoff.
    #[error("{0}")]
    Unavailable(String),
}

impl RouteError {
    pub fn status(&self) -> StatusCode {
        match self {
            RouteError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RouteError::Unauthorized => StatusCode::UNAUTHORIZED,
            RouteError::NotFound(_) => StatusCode::NOT_FOUND,
            RouteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            RouteError::BadRequest(_) => "bad_request",
            RouteError::Unauthorized => "unauthorized",
            RouteError::NotFound(_) => "not_found",
            RouteError::Unavailable(_) => "unavailable",
        }
    }
}

impl IntoResponse for RouteError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Checks `Authorization: Bearer <token>`.
pub fn authorize(headers: &HeaderMap, token: &str) -> Result<(), RouteError> {
    if edge_core::api::bearer_matches(headers, token) {
        Ok(())
    } else {
        Err(RouteError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        assert!(authorize(&bearer("Bearer s3cret"), "s3cret").is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "s3cret",
            "Basic s3cret",
        ] {
            assert!(authorize(&bearer(wrong), "s3cret").is_err(), "{wrong}");
        }
        assert!(authorize(&HeaderMap::new(), "s3cret").is_err());
    }
}
