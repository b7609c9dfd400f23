//! Security headers on every response under `/admin` (the JSON API and the UI's HTML),
//! as one tower layer (`axum::middleware::map_response(add_security_headers)`, applied
//! by [`super::Admin::router`]) so no route can leave them out:
//!
//! - `Content-Security-Policy`: scripts, styles and everything else from the origin itself only
//!   (no `unsafe-inline`, no `eval`), no plugins, and `frame-ancestors 'none'` (no framing,
//!   hence no clickjacking); `form-action 'self'` and `base-uri 'none'` close the rest.
//! - `Strict-Transport-Security`: browsers use HTTPS only for a year (the `Secure` session
//!   cookie needs it anyway).
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` (admin URLs carry order
//!   ids and e-mails: never sent to another site; the UI's form posts need it on their own
//!   site, where a refused action goes back to the page it came from), `X-Frame-Options: DENY`
//!   for browsers without CSP level 2.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;

/// The admin's content security policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Adds the headers to a response (overwriting any a handler set).
pub async fn add_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
