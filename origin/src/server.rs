//! The origin server: the SQLite stock coordinator, the orders system of record, and the
//! storefront API of a self-hosted shop, as one axum router.
//!
//! # Routes
//! - `/healthz`: liveness.
//! - `/api/...`: the storefront JSON API ([`edge_core::api::router`]) over the catalog in an
//!   in-process KV and the SQLite coordinator; checkouts run in process ([`OriginDesk`]).
//! - `/_admin/...`: the edge admin API ([`edge_core::api::admin_router`]): stock levels and the
//!   raw catalog KV.
//! - `/coordinator/shards/{n}`: the shard wire protocol for remote edges ([`coordinator`]).
//! - `/internal/orders...`: the orders intake for edges' outboxes ([`crate::orders`]).
//! - `/admin/api/...`: the staff's admin API ([`crate::admin`]): its own accounts, sessions and
//!   roles, not the bearer token.
//! - `/metrics`: Prometheus text ([`crate::metrics`]); every request above is counted.
//!
//! `/_admin`, `/coordinator`, `/internal` and `/metrics` need `Authorization: Bearer <token>`;
//! an origin started without a token answers 404 on them.
//!
//! # Startup
//! [`Origin::open`] creates the data dir, opens `shard-00.sqlite` … `shard-15.sqlite`,
//! `orders.sqlite` and `admin.sqlite` in it, and, given a catalog, publishes it into the KV and
//! seeds its stock *without* overwriting live levels, so a restart keeps what was sold.
//! [`Origin::spawn_background`] starts the hold-expiry timer, the checkout recovery loop and
//! the admin outbox's retry loop.

use crate::admin::{Admin, AdminConfig};
use crate::coordinator::{self, OriginShards, OriginStock};
use crate::db::OpenError;
use crate::desk::{OriginDesk, SystemClock};
use crate::orders::{self, OrderBook};
use crate::publish::{load_catalog, PublishError};
use axum::routing::get;
use axum::{Json, Router};
use edge_core::api::{admin_router, router as api_router};
use edge_core::checkout::{LocalDesk, TestGateway};
use edge_core::levels::LevelCache;
use edge_core::memory::MemoryKv;
use edge_core::snapshot::{CatalogCache, Clock, SnapshotCatalog};
use edge_core::store::{SeedReport, StockCoordinator, StoreError};
use edge_core::Shop;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// The health route alone (also part of [`Origin::router`]).
pub fn router() -> Router {
    Router::new().route(
        "/healthz",
        get(|| async { Json(json!({ "status": "ok", "service": "origin" })) }),
    )
}

/// What `origin serve` was told.
#[derive(Clone, Debug)]
pub struct OriginConfig {
    pub data_dir: PathBuf,
    /// A catalog file (JSON, or a Shopify CSV) to publish and seed stock from at startup.
    pub catalog: Option<PathBuf>,
    /// Guards `/coordinator`, `/internal` and `/_admin`; `None` disables them.
    pub token: Option<String>,
}

/// Why the origin could not start. Each says what to fix; none is retried.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data dir {}: {source} (is it writable?)", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot load the catalog {}: {source}", path.display())]
    Catalog { path: PathBuf, source: PublishError },
    #[error("cannot seed stock from the catalog: {0}")]
    Seed(StoreError),
    #[error(transparent)]
    Analytics(#[from] crate::analytics::AnalyticsError),
}

/// A running origin's parts. The router and the background tasks share them.
pub struct Origin {
    pub shards: OriginShards,
    pub stock: Arc<OriginStock>,
    pub book: OrderBook,
    pub desk: Arc<OriginDesk>,
    pub kv: Arc<MemoryKv>,
    /// The staff's admin API: accounts, sessions, audit log, order and stock changes.
    pub admin: Arc<Admin>,
    /// Request counters of every route, read by `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Behaviour events from the edges, and what is computed from them.
    pub analytics: crate::analytics::Analytics,
    /// Stock written by the catalog seed at startup (`kept` counts SKUs with live stock).
    pub seeded: SeedReport,
    cache: Arc<CatalogCache>,
    levels: Arc<LevelCache>,
    clock: Arc<dyn Clock>,
    token: Option<String>,
}

impl Origin {
    /// Opens the data dir's databases and publishes the catalog, if any (the admin API with
    /// its defaults: standard password hashing, no edge to forward to).
    pub async fn open(config: OriginConfig) -> Result<Self, StartError> {
        Self::open_with(config, AdminConfig::default()).await
    }

    /// [`Self::open`] with the admin API set up by `admin`.
    pub async fn open_with(config: OriginConfig, admin: AdminConfig) -> Result<Self, StartError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        // The databases hold shoppers' e-mails: a data dir inside a working tree (the default
        // `origin-data`) must never be committed by accident. Failing to write it is harmless.
        let ignore = config.data_dir.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(
                &ignore,
                "# Written by `origin serve`: databases, never commit.\n*\n",
            );
        }
        let shards = OriginShards::open(&config.data_dir, clock.clone())?;
        let book = OrderBook::open(&config.data_dir, clock.clone())?;
        let analytics = crate::analytics::Analytics::open(&config.data_dir)?;
        let stock = Arc::new(OriginStock::new(shards.clone()));
        let local = LocalDesk {
            stock: stock.clone(),
            payments: Arc::new(TestGateway::default()),
            log: Arc::new(book.clone()),
            clock: clock.clone(),
            turns: Arc::default(),
        };
        let desk = Arc::new(OriginDesk::new(local, book.clone()));
        let admin = Arc::new(
            Admin::open(
                &config.data_dir,
                book.clone(),
                stock.clone(),
                clock.clone(),
                admin,
            )?
            .with_shards(shards.clone()),
        );
        let kv = Arc::new(MemoryKv::default());
        let mut seeded = SeedReport::default();
        if let Some(path) = &config.catalog {
            let catalog = load_catalog(path).map_err(|source| StartError::Catalog {
                path: path.clone(),
                source,
            })?;
            kv.publish_catalog(&catalog, clock.now_ms());
            // `overwrite = false`: SKUs that already have stock (a restart) keep their levels.
            seeded = stock
                .seed(catalog.levels.clone(), false)
                .await
                .map_err(StartError::Seed)?;
        }
        Ok(Self {
            shards,
            stock,
            book,
            desk,
            kv,
            admin,
            metrics: Arc::default(),
            analytics,
            seeded,
            cache: Arc::new(CatalogCache::default()),
            levels: Arc::new(LevelCache::default()),
            clock,
            token: config.token.filter(|t| !t.is_empty()),
        })
    }

    /// A shop for one request: its catalog reader pins one snapshot version, as on the edge.
    fn shop(&self) -> Shop {
        Shop {
            catalog: Arc::new(SnapshotCatalog::new(
                self.kv.clone(),
                self.cache.clone(),
                self.clock.clone(),
            )),
            stock: self.stock.clone(),
            orders: self.desk.clone(),
            levels: self.levels.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Every route of the origin.
    pub fn router(self: &Arc<Self>) -> Router {
        let origin = self.clone();
        // The edge routers take a `Shop`, whose catalog reader is per request: build them per
        // request, behind the routes that are the same for every request.
        let storefront = tower::service_fn(move |request: axum::extract::Request| {
            let shop = origin.shop();
            let app = api_router(shop.clone()).merge(admin_router(
                shop,
                origin.kv.clone(),
                origin.token.clone(),
            ));
            tower::ServiceExt::oneshot(app, request)
        });
        router()
            .merge(coordinator::routes(self.shards.clone(), self.token.clone()))
            .merge(coordinator::desk_routes(
                self.desk.clone(),
                self.token.clone(),
            ))
            .merge(orders::routes(self.book.clone(), self.token.clone()))
            .merge(self.admin.router())
            .merge(crate::metrics::routes(
                crate::metrics::Sources {
                    metrics: self.metrics.clone(),
                    book: self.book.clone(),
                    admin: self.admin.clone(),
                    shards: self.shards.clone(),
                },
                self.token.clone(),
            ))
            .merge(crate::analytics::routes(
                self.analytics.clone(),
                self.token.clone(),
            ))
            .merge(crate::together::routes(
                self.book.clone(),
                self.analytics.clone(),
                self.token.clone(),
            ))
            .fallback_service(storefront)
            .layer(axum::middleware::from_fn_with_state(
                self.metrics.clone(),
                crate::metrics::Metrics::track,
            ))
            // Outermost: the id and the log line cover every route, and the time of all of it.
            .layer(axum::middleware::from_fn(crate::request_log::track))
    }

    /// Starts the hold-expiry timer, the checkout recovery loop (which runs once now) and the
    /// admin outbox's retry loop.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            self.shards.spawn_expiry(),
            self.desk.spawn_recovery(),
            self.admin.spawn_outbox(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn healthz_reports_ok_and_unknown_paths_404() {
        let res = router()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["status"],
            "ok"
        );
        let res = router()
            .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
