//! Behaviour analytics: the events edges send in batches (`POST /internal/events`), kept in
//! `analytics.sqlite`, and what is computed from them: popularity ("trending") and a summary.
//!
//! Events are best effort (edges drop them when their queue is full or a send fails, and say
//! how many), so this database is not fsynced per batch like the orders: `synchronous=NORMAL`
//! under WAL loses at most the last batches on a power cut, never corrupts.

use crate::http::{authorize, RouteError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use edge_core::behaviour::EventKind;
use edge_core::events::{EventBatch, BATCH_EVENTS_MAX};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    visitor TEXT NOT NULL,
    sku TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at_ms);
CREATE TABLE IF NOT EXISTS dropped (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL);
INSERT OR IGNORE INTO dropped (id, count) VALUES (1, 0);
";

/// Longest visitor id accepted.
const VISITOR_LEN_MAX: usize = 64;
/// Most products a trending list returns.
pub const TRENDING_MAX: usize = 100;
/// Longest window a trending list looks back over.
const TRENDING_DAYS_MAX: u64 = 90;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("analytics storage: {0}")]
    Storage(#[from] rusqlite::Error),
}

/// The analytics database. One connection behind a lock: writes are small batches.
#[derive(Clone)]
pub struct Analytics {
    conn: Arc<Mutex<Connection>>,
}

/// A product's weight in recent behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trending {
    pub sku: String,
    pub views: u64,
    pub carts: u64,
    pub purchases: u64,
    /// views + 2 × carts + 3 × purchases (the edge's event weights).
    pub score: u64,
}

fn kind_name(kind: EventKind) -> &'static str {
    kind.as_str()
}

/// One experiment arm's exposure and clicks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// The experiment (events are tagged `experiment/arm`; untagged ones are from `recs-1`).
    pub experiment: String,
    pub arm: String,
    /// Recommendations shown, and by how many visitors.
    pub shown: u64,
    pub visitors: u64,
    pub clicked: u64,
    /// clicked / shown.
    pub click_through: f64,
}

impl Analytics {
    pub fn open(data_dir: &Path) -> Result<Self, AnalyticsError> {
        let path = data_dir.join("analytics.sqlite");
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            // Databases from before experiments lack the arm column.
            let has_arm = conn.prepare("SELECT arm FROM events LIMIT 0").is_ok();
            if !has_arm {
                conn.execute_batch("ALTER TABLE events ADD COLUMN arm TEXT")?;
            }
            Ok(conn)
        };
        let conn = open().map_err(|source| AnalyticsError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a batch in one transaction; the count stored.
    pub fn ingest(&self, batch: &EventBatch) -> Result<usize, AnalyticsError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (visitor, sku, kind, at_ms, arm) VALUES (?, ?, ?, ?, ?)",
            )?;
            for event in &batch.events {
                insert.execute(params![
                    event.visitor,
                    event.sku.as_str(),
                    kind_name(event.kind),
                    event.at_ms as i64,
                    event.arm
                ])?;
            }
        }
        tx.execute(
            "UPDATE dropped SET count = count + ? WHERE id = 1",
            params![batch.dropped as i64],
        )?;
        tx.commit()?;
        Ok(batch.events.len())
    }

    /// The `limit` products with the most weighted events since `since_ms`, best first.
    pub fn trending(&self, since_ms: u64, limit: usize) -> Result<Vec<Trending>, AnalyticsError> {
        let conn = self.conn();
        let mut query = conn.prepare_cached(
            "SELECT sku,
                    SUM(kind = 'viewed'), SUM(kind = 'carted'), SUM(kind = 'purchased'),
                    SUM(CASE kind WHEN 'viewed' THEN 1 WHEN 'carted' THEN 2 WHEN 'purchased' THEN 3 ELSE 0 END) AS score
             FROM events WHERE at_ms >= ? AND kind IN ('viewed', 'carted', 'purchased')
             GROUP BY sku ORDER BY score DESC, sku LIMIT ?",
        )?;
        let rows = query.query_map(
            params![since_ms as i64, limit.min(TRENDING_MAX) as i64],
            |row| {
                Ok(Trending {
                    sku: row.get(0)?,
                    views: row.get::<_, i64>(1)? as u64,
                    carts: row.get::<_, i64>(2)? as u64,
                    purchases: row.get::<_, i64>(3)? as u64,
                    score: row.get::<_, i64>(4)? as u64,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The products each visitor viewed or carted since `since_ms`, one list per browsing session
    /// (a gap of more than `gap_ms` starts a new one), in the order first seen; from at most
    /// `events_max` most recent events. What "bought together" counts co-views in.
    pub fn sessions(
        &self,
        since_ms: u64,
        gap_ms: u64,
        events_max: usize,
    ) -> Result<Vec<Vec<String>>, AnalyticsError> {
        let conn = self.conn();
        let mut query = conn.prepare_cached(
            "SELECT visitor, sku, at_ms FROM
               (SELECT visitor, sku, at_ms FROM events
                WHERE at_ms >= ? AND kind IN ('viewed', 'carted') ORDER BY at_ms DESC LIMIT ?)
             ORDER BY visitor, at_ms",
        )?;
        let rows = query.query_map(params![since_ms as i64, events_max as i64], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut sessions: Vec<Vec<String>> = Vec::new();
        let mut last: Option<(String, i64)> = None;
        for row in rows {
            let (visitor, sku, at_ms) = row?;
            let continues = last
                .as_ref()
                .is_some_and(|(v, t)| *v == visitor && at_ms.saturating_sub(*t) <= gap_ms as i64);
            if !continues {
                sessions.push(Vec::new());
            }
            last = Some((visitor, at_ms));
            if let Some(session) = sessions.last_mut() {
                if !session.contains(&sku) {
                    session.push(sku);
                }
            }
        }
        Ok(sessions)
    }

    /// Exposure, clicks and click-through per experiment and arm.
    pub fn experiments(&self) -> Result<Vec<ArmReport>, AnalyticsError> {
        let conn = self.conn();
        let mut query = conn.prepare_cached(
            "SELECT arm, SUM(kind = 'shown'), COUNT(DISTINCT CASE WHEN kind = 'shown' THEN visitor END),
                    SUM(kind = 'clicked')
             FROM events WHERE arm IS NOT NULL GROUP BY arm ORDER BY arm",
        )?;
        let rows = query.query_map([], |row| {
            let shown = row.get::<_, i64>(1)? as u64;
            let clicked = row.get::<_, i64>(3)? as u64;
            let tag: String = row.get(0)?;
            let (experiment, arm) = tag.split_once('/').unwrap_or(("recs-1", tag.as_str()));
            Ok(ArmReport {
                experiment: experiment.to_owned(),
                arm: arm.to_owned(),
                shown,
                visitors: row.get::<_, i64>(2)? as u64,
                clicked,
                click_through: if shown == 0 {
                    0.0
                } else {
                    clicked as f64 / shown as f64
                },
            })
        })?;
        let mut arms: Vec<ArmReport> = rows.collect::<Result<_, _>>()?;
        arms.sort_by(|a, b| (&a.experiment, &a.arm).cmp(&(&b.experiment, &b.arm)));
        Ok(arms)
    }

    /// Events stored, distinct visitors, and events edges reported dropped.
    pub fn summary(&self) -> Result<(u64, u64, u64), AnalyticsError> {
        let conn = self.conn();
        let (events, visitors): (i64, i64) = conn.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT visitor) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let dropped: i64 =
            conn.query_row("SELECT count FROM dropped WHERE id = 1", [], |r| r.get(0))?;
        Ok((events as u64, visitors as u64, dropped as u64))
    }
}

#[derive(Clone)]
struct RouteState {
    analytics: Analytics,
    token: String,
}

/// `/internal/events` (intake), `/internal/trending`, `/internal/events/summary`, behind the
/// origin token; without one they are absent.
pub fn routes(analytics: Analytics, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new();
    };
    Router::new()
        .route("/internal/events", post(ingest))
        .route("/internal/events/summary", get(summary))
        .route("/internal/trending", get(trending))
        .route("/internal/experiments", get(experiments))
        .with_state(RouteState { analytics, token })
}

fn storage(e: AnalyticsError) -> RouteError {
    RouteError::Unavailable(e.to_string())
}

async fn ingest(
    State(state): State<RouteState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, RouteError> {
    authorize(&headers, &state.token)?;
    let body = body.map_err(|e| RouteError::BadRequest(format!("cannot read the body: {e}")))?;
    let batch: EventBatch = serde_json::from_slice(&body)
        .map_err(|e| RouteError::BadRequest(format!("not an event batch: {e}")))?;
    if batch.events.len() > BATCH_EVENTS_MAX {
        return Err(RouteError::BadRequest(format!(
            "at most {BATCH_EVENTS_MAX} events per batch"
        )));
    }
    if let Some(bad) = batch
        .events
        .iter()
        .find(|e| e.visitor.is_empty() || e.visitor.len() > VISITOR_LEN_MAX)
    {
        return Err(RouteError::BadRequest(format!(
            "visitor id {:?} must be 1 to {VISITOR_LEN_MAX} characters",
            bad.visitor
        )));
    }
    let analytics = state.analytics.clone();
    let stored = tokio::task::spawn_blocking(move || analytics.ingest(&batch))
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(storage)?;
    Ok(Json(json!({ "stored": stored })))
}

#[derive(Deserialize)]
struct TrendingQuery {
    limit: Option<usize>,
    days: Option<u64>,
}

async fn trending(
    State(state): State<RouteState>,
    headers: HeaderMap,
    Query(query): Query<TrendingQuery>,
) -> Result<Json<serde_json::Value>, RouteError> {
    authorize(&headers, &state.token)?;
    let days = query.days.unwrap_or(7).clamp(1, TRENDING_DAYS_MAX);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let since_ms = now_ms.saturating_sub(days * 24 * 60 * 60 * 1_000);
    let analytics = state.analytics.clone();
    let limit = query.limit.unwrap_or(10);
    let list = tokio::task::spawn_blocking(move || analytics.trending(since_ms, limit))
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(storage)?;
    Ok(Json(json!({ "days": days, "products": list })))
}

async fn experiments(
    State(state): State<RouteState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, RouteError> {
    authorize(&headers, &state.token)?;
    let analytics = state.analytics.clone();
    let arms = tokio::task::spawn_blocking(move || analytics.experiments())
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(storage)?;
    // The running experiment's arms, and every experiment's.
    let current = edge_core::behaviour::RECOMMENDATIONS_EXPERIMENT;
    let running: Vec<&ArmReport> = arms.iter().filter(|a| a.experiment == current).collect();
    Ok(Json(
        json!({ "experiment": current, "arms": running, "all": arms }),
    ))
}

async fn summary(
    State(state): State<RouteState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, RouteError> {
    authorize(&headers, &state.token)?;
    let analytics = state.analytics.clone();
    let (events, visitors, dropped) = tokio::task::spawn_blocking(move || analytics.summary())
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(storage)?;
    Ok(Json(
        json!({ "events": events, "visitors": visitors, "dropped": dropped }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use edge_core::events::AnalyticsEvent;
    use edge_core::Sku;
    use tower::ServiceExt;

    fn event(visitor: &str, sku: &str, kind: EventKind, at_ms: u64) -> AnalyticsEvent {
        AnalyticsEvent {
            visitor: visitor.into(),
            sku: Sku::parse(sku).unwrap(),
            kind,
            at_ms,
            arm: None,
        }
    }

    async fn post(app: &Router, token: &str, body: String) -> StatusCode {
        let request = Request::post("/internal/events")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body))
            .unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn batches_are_stored_and_rank_products_by_weighted_events() {
        let dir = tempfile::tempdir().unwrap();
        let analytics = Analytics::open(dir.path()).unwrap();
        let app = routes(analytics.clone(), Some("t".into()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let batch = EventBatch {
            events: vec![
                event("v1", "MUG", EventKind::Viewed, now),
                event("v2", "MUG", EventKind::Viewed, now),
                event("v1", "TEE", EventKind::Purchased, now),
                event(
                    "v1",
                    "OLD",
                    EventKind::Purchased,
                    now - 30 * 24 * 60 * 60 * 1_000,
                ),
            ],
            dropped: 3,
        };
        assert_eq!(
            post(&app, "t", serde_json::to_string(&batch).unwrap()).await,
            StatusCode::OK
        );
        assert_eq!(
            post(&app, "wrong", serde_json::to_string(&batch).unwrap()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post(&app, "t", "{not json".into()).await,
            StatusCode::BAD_REQUEST
        );
        let bad = EventBatch {
            events: vec![event("", "MUG", EventKind::Viewed, now)],
            dropped: 0,
        };
        assert_eq!(
            post(&app, "t", serde_json::to_string(&bad).unwrap()).await,
            StatusCode::BAD_REQUEST
        );
        let trending = analytics
            .trending(now - 7 * 24 * 60 * 60 * 1_000, 10)
            .unwrap();
        let ranked: Vec<(&str, u64)> = trending.iter().map(|t| (t.sku.as_str(), t.score)).collect();
        assert_eq!(
            ranked,
            vec![("TEE", 3), ("MUG", 2)],
            "the month-old purchase is outside the week"
        );
        assert_eq!(analytics.summary().unwrap(), (4, 2, 3));

        // Exposure and clicks per arm; they do not count as trending.
        let shown = |v: &str, arm: &str, kind| AnalyticsEvent {
            arm: Some(arm.into()),
            ..event(v, "HAT", kind, now)
        };
        let batch = EventBatch {
            events: vec![
                shown("v1", "recs-2/vector", EventKind::Shown),
                shown("v1", "recs-2/vector", EventKind::Shown),
                shown("v1", "recs-2/vector", EventKind::Clicked),
                shown("v2", "recs-2/co_purchase", EventKind::Shown),
                // Untagged: recorded under recs-1, whose vector arm is another population.
                shown("v3", "vector", EventKind::Shown),
                shown("v3", "affinity", EventKind::Shown),
            ],
            dropped: 0,
        };
        assert_eq!(
            post(&app, "t", serde_json::to_string(&batch).unwrap()).await,
            StatusCode::OK
        );
        let arms = analytics.experiments().unwrap();
        let by_arm: Vec<(&str, &str, u64, u64, f64)> = arms
            .iter()
            .map(|a| {
                (
                    a.experiment.as_str(),
                    a.arm.as_str(),
                    a.shown,
                    a.clicked,
                    a.click_through,
                )
            })
            .collect();
        assert_eq!(
            by_arm,
            vec![
                ("recs-1", "affinity", 1, 0, 0.0),
                ("recs-1", "vector", 1, 0, 0.0),
                ("recs-2", "co_purchase", 1, 0, 0.0),
                ("recs-2", "vector", 2, 1, 0.5),
            ]
        );
        let request = Request::get("/internal/experiments")
            .header("authorization", "Bearer t")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(
            &axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap(),
        )
        .unwrap();
        let running: Vec<&str> = body["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["arm"].as_str().unwrap())
            .collect();
        assert_eq!(
            (body["experiment"].as_str(), running),
            (Some("recs-2"), vec!["co_purchase", "vector"])
        );
        assert!(analytics
            .trending(0, 10)
            .unwrap()
            .iter()
            .all(|t| t.sku != "HAT"));
    }
}
