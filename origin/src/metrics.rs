//! `GET /metrics`: the origin's numbers in the Prometheus text format (version 0.0.4), behind
//! the origin's bearer token (Prometheus sends it with `authorization: {credentials: …}`);
//! 404 without a token, like `/internal`.
//!
//! - `origin_http_requests_total{area, code}`: requests answered, by the first path segment's
//!   area (`admin`, `api`, `internal`, `coordinator`, `other`) and status class (`2xx` …).
//! - `origin_http_request_duration_seconds{area}`: a latency histogram per area.
//! - `origin_orders{status}`: orders in the order book by status (counted at scrape time).
//! - `origin_admin_outbox_depth`: admin follow-ups waiting (stock returns, edge forwards).
//! - `origin_holds_expired_total`: holds the expiry timer released since start.
//!
//! Counting is a handful of relaxed atomic adds per request (fixed label sets, no map, no lock),
//! so the layer ([`Metrics::track`]) costs the storefront's hot path next to nothing.

use crate::admin::Admin;
use crate::coordinator::OriginShards;
use crate::http::{authorize, RouteError};
use crate::orders::OrderBook;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The areas requests are counted in, by their path's first segment.
pub const AREAS: [&str; 5] = ["admin", "api", "internal", "coordinator", "other"];
const CODES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS_S: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Area {
    by_code: [AtomicU64; CODES.len()],
    /// Requests at or under each bucket's bound (cumulative is computed at scrape time).
    buckets: [AtomicU64; BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Request counters, shared by the layer and the `/metrics` route.
#[derive(Default)]
pub struct Metrics {
    areas: [Area; AREAS.len()],
}

fn area_of(path: &str) -> usize {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let area = match first {
        "_admin" => "internal",
        "admin" | "api" | "internal" | "coordinator" => first,
        _ => "other",
    };
    AREAS
        .iter()
        .position(|a| *a == area)
        .unwrap_or(AREAS.len() - 1)
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, path: &str, status: u16, elapsed_us: u64) {
        let area = &self.areas[area_of(path)];
        let code = usize::from(status / 100).clamp(1, 5) - 1;
        area.by_code[code].fetch_add(1, Ordering::Relaxed);
        area.count.fetch_add(1, Ordering::Relaxed);
        area.sum_us.fetch_add(elapsed_us, Ordering::Relaxed);
        let seconds = elapsed_us as f64 / 1e6;
        if let Some(bucket) = BUCKETS_S.iter().position(|b| seconds <= *b) {
            area.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The middleware: `router.layer(from_fn_with_state(metrics, Metrics::track))`.
    pub async fn track(
        State(metrics): State<Arc<Metrics>>,
        request: Request,
        next: Next,
    ) -> Response {
        let path = request.uri().path().to_owned();
        let started = Instant::now();
        let response = next.run(request).await;
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        metrics.record(&path, response.status().as_u16(), elapsed_us);
        response
    }

    /// The request counters in the text format.
    pub fn render_requests(&self, out: &mut String) {
        out.push_str(
            "# HELP origin_http_requests_total Requests answered, by area and status class.\n",
        );
        out.push_str("# TYPE origin_http_requests_total counter\n");
        for (name, area) in AREAS.iter().zip(&self.areas) {
            for (code, count) in CODES.iter().zip(&area.by_code) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "origin_http_requests_total{{area=\"{name}\",code=\"{code}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# HELP origin_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE origin_http_request_duration_seconds histogram\n");
        for (name, area) in AREAS.iter().zip(&self.areas) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS_S.iter().zip(&area.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "origin_http_request_duration_seconds_bucket{{area=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = area.count.load(Ordering::Relaxed);
            let sum_s = area.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "origin_http_request_duration_seconds_bucket{{area=\"{name}\",le=\"+Inf\"}} {count}\n\
                 origin_http_request_duration_seconds_sum{{area=\"{name}\"}} {sum_s}\n\
                 origin_http_request_duration_seconds_count{{area=\"{name}\"}} {count}"
            );
        }
    }
}

/// What the `/metrics` route reads besides the counters.
#[derive(Clone)]
pub struct Sources {
    pub metrics: Arc<Metrics>,
    pub book: OrderBook,
    pub admin: Arc<Admin>,
    pub shards: OriginShards,
}

#[derive(Clone)]
struct MetricsState {
    sources: Sources,
    token: String,
}

/// `GET /metrics` behind the bearer token; 404 without one.
pub fn routes(sources: Sources, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new().route("/metrics", get(disabled));
    };
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState { sources, token })
}

async fn disabled() -> RouteError {
    RouteError::NotFound("metrics are disabled: the origin has no token".into())
}

async fn scrape(
    State(state): State<MetricsState>,
    headers: HeaderMap,
) -> Result<Response, RouteError> {
    authorize(&headers, &state.token)?;
    let sources = &state.sources;
    let mut out = String::new();
    sources.metrics.render_requests(&mut out);
    let by_status: Vec<(String, u64)> = sources
        .book
        .query(|conn| {
            let mut select =
                conn.prepare_cached("SELECT status, COUNT(*) FROM orders GROUP BY status")?;
            let rows = select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    out.push_str("# HELP origin_orders Orders in the order book, by status.\n");
    out.push_str("# TYPE origin_orders gauge\n");
    for (status, count) in by_status {
        // Statuses are the state machine's snake_case names: nothing to escape.
        let _ = writeln!(out, "origin_orders{{status=\"{status}\"}} {count}");
    }
    let depth = sources
        .admin
        .db
        .read(|conn| Ok(crate::admin::outbox::depth(conn)?))
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    let _ = writeln!(
        out,
        "# HELP origin_admin_outbox_depth Admin follow-ups waiting for a retry.\n\
         # TYPE origin_admin_outbox_depth gauge\norigin_admin_outbox_depth {depth}\n\
         # HELP origin_holds_expired_total Holds released by the expiry timer since start.\n\
         # TYPE origin_holds_expired_total counter\norigin_holds_expired_total {}",
        sources.shards.expired_total()
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_area_code_and_bucket() {
        let metrics = Metrics::default();
        metrics.record("/admin/api/login", 401, 3_000);
        metrics.record("/admin/api/me", 200, 700_000);
        metrics.record("/api/products", 200, 1);
        metrics.record("/_admin/stock", 200, 1);
        metrics.record("/favicon.ico", 404, 1);
        let mut out = String::new();
        metrics.render_requests(&mut out);
        for line in [
            "origin_http_requests_total{area=\"admin\",code=\"4xx\"} 1",
            "origin_http_requests_total{area=\"admin\",code=\"2xx\"} 1",
            "origin_http_requests_total{area=\"internal\",code=\"2xx\"} 1",
            "origin_http_requests_total{area=\"other\",code=\"4xx\"} 1",
            "origin_http_request_duration_seconds_bucket{area=\"admin\",le=\"0.005\"} 1",
            "origin_http_request_duration_seconds_bucket{area=\"admin\",le=\"0.5\"} 1",
            "origin_http_request_duration_seconds_bucket{area=\"admin\",le=\"1\"} 2",
            "origin_http_request_duration_seconds_count{area=\"admin\"} 2",
            "origin_http_request_duration_seconds_sum{area=\"admin\"} 0.703",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
        }
    }
}
