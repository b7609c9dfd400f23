//! Request ids: one per request to the worker, sent along on every call it makes to the origin
//! (`X-Request-Id`), so the origin's log lines can be matched to the edge request behind them.
//!
//! The id is the request's own `X-Request-Id` when it is acceptable (1 to [`LEN_MAX`] of
//! `A-Z a-z 0-9 - _ . :`, the origin's rule too), else its `cf-ray` (Cloudflare's id of the
//! request), else 16 random bytes in hex. The response echoes it.
//!
//! The worker has no task-local storage, so [`scoped`] wraps a request's future and makes its
//! id [`current`] while (and only while) that future is polled: code that runs synchronously
//! inside it, such as the order stub building its call to the `OrderShard`, sees the right id
//! even when requests interleave in one isolate. The `OrderShard` keeps the id of a checkout's
//! request in memory and sends it with the order's delivery to `/internal/orders`; a delivery
//! retried after the object was evicted gets a fresh id.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The header an id travels in.
pub const HEADER: &str = "x-request-id";
/// Longest id taken from a request.
pub const LEN_MAX: usize = 128;

thread_local! {
    /// The id of the request whose future is being polled, if any.
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// `raw` if it is an acceptable request id.
pub fn valid(raw: &str) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= LEN_MAX
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(raw)
}

/// A new random id.
pub fn fresh() -> String {
    // Without randomness the id is all zeros: it only correlates log lines, it guards nothing.
    edge_core::api::random_hex::<16>().unwrap_or_else(|_| "0".repeat(32))
}

/// The id of an incoming request (see the module doc).
pub fn of_request(headers: &axum::http::HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(valid)
            .map(str::to_owned)
    };
    header(HEADER)
        .or_else(|| header("cf-ray"))
        .unwrap_or_else(fresh)
}

/// The id of the request being served now, or a fresh one outside any (an alarm).
pub fn current_or_fresh() -> String {
    CURRENT
        .with(|current| current.borrow().clone())
        .unwrap_or_else(fresh)
}

/// `future`, with `id` current while it is polled.
pub fn scoped<F: Future>(id: String, future: F) -> Scoped<F> {
    Scoped {
        id,
        inner: Box::pin(future),
    }
}

pub struct Scoped<F> {
    id: String,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let previous = CURRENT.with(|current| current.replace(Some(this.id.clone())));
        let polled = this.inner.as_mut().poll(cx);
        CURRENT.with(|current| *current.borrow_mut() = previous);
        polled
    }
}
