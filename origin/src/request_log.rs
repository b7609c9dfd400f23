//! One request id per request, and one JSON log line per request.
//!
//! Every request gets an id: the `X-Request-Id` it came with (the edge sends its own on every
//! call, so one id follows a shopper's request from the edge to the origin), when that is 1 to
//! [`REQUEST_ID_LEN_MAX`] characters of `A-Z a-z 0-9 - _ . :`, otherwise 16 random bytes in hex.
//! The response echoes it as `X-Request-Id`, and handlers can read it as the
//! [`RequestId`] request extension.
//!
//! With logging on ([`enable`]; `origin serve` turns it on unless `ORIGIN_LOG=off`) each
//! request writes one line to stderr when it is answered:
//! `{"ts_ms", "request_id", "method", "path", "status", "latency_ms"}`. The path is logged
//! without its query string: admin searches carry shoppers' e-mails.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The header a request id travels in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest request id taken from a request (a `cf-ray` is 20, a UUID 36).
pub const REQUEST_ID_LEN_MAX: usize = 128;

/// Whether requests are logged (off by default: tests and embedders run the router quietly).
static LOGGING: AtomicBool = AtomicBool::new(false);

/// Turns the per-request log lines on (or off) for this process.
pub fn enable(on: bool) {
    LOGGING.store(on, Ordering::Relaxed);
}

/// A request's id, as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// `raw` if it is an acceptable request id.
pub fn valid_request_id(raw: &str) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= REQUEST_ID_LEN_MAX
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(raw)
}

fn fresh_request_id() -> String {
    // Without randomness the id is all zeros: it only correlates log lines, it guards nothing.
    edge_core::api::random_hex::<16>().unwrap_or_else(|_| "0".repeat(32))
}

/// The middleware: `router.layer(axum::middleware::from_fn(request_log::track))`.
pub async fn track(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(valid_request_id)
        .map(str::to_owned)
        .unwrap_or_else(fresh_request_id);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if LOGGING.load(Ordering::Relaxed) {
        let ts_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = serde_json::json!({
            "ts_ms": ts_ms,
            "request_id": id,
            "method": method.as_str(),
            "path": path,
            "status": response.status().as_u16(),
            // Microsecond precision is plenty for a log line.
            "latency_ms": (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1_000.0,
        });
        eprintln!("{line}");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/x",
                get(|axum::Extension(RequestId(id)): axum::Extension<RequestId>| async move { id }),
            )
            .layer(axum::middleware::from_fn(track))
    }

    #[tokio::test]
    async fn a_valid_id_is_kept_and_echoed_and_a_bad_one_replaced() {
        let res = app()
            .oneshot(
                axum::http::Request::get("/x")
                    .header("x-request-id", "8f2a-cf-ray:LHR")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "8f2a-cf-ray:LHR");
        for bad in ["", "has space", "<script>", &"a".repeat(129)] {
            let res = app()
                .oneshot(
                    axum::http::Request::get("/x")
                        .header("x-request-id", bad)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(id.len(), 32, "{bad:?} -> {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
