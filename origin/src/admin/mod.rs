//! The origin admin API: JSON under `/admin/api/`, for the shop's staff, with real accounts.
//!
//! # Layout
//! - [`routes`]: the route table ([`routes::ROUTES`]): every route with who may call it, the
//!   guard that enforces it (session, role, CSRF), and the router built from it.
//! - [`accounts`]: accounts and roles (owner, staff, viewer), the owner's user routes, and the
//!   `origin admin create-owner` bootstrap.
//! - [`sessions`]: login (with [`lockout`] and [`totp`]), logout, session cookies, CSRF tokens.
//! - [`passwords`]: argon2id hashes.
//! - [`lockout`]: the failed-login throttle per account and per client IP.
//! - [`totp`]: the optional TOTP second factor (RFC 6238).
//! - [`orders`]: order search, one order with its history, status changes.
//! - [`outbox`]: a status change's follow-ups (returning stock, forwarding to the edge), retried
//!   until done.
//! - [`deliveries`]: the edge's outbox of orders the origin has not received, and "retry now".
//! - [`stock`]: one SKU's level, restock, adjust.
//! - [`audit`]: the append-only audit log and its CSV export.
//! - [`privacy`]: a shopper's data export and erasure (orders anonymised, not removed).
//! - [`reports`]: sales per day, average order value, top products, and an SVG chart.
//! - [`headers`]: the security headers on every `/admin` response.
//! - `admin.sqlite` is opened by [`store`].
//! - [`error`]: [`AdminError`], one status and code per refusal.
//! - [`ui`]: the admin UI: server-rendered Leptos pages under `/admin` whose forms post to
//!   Leptos server functions calling the same [`Admin`] methods.
//!
//! # Calling it without HTTP
//! Every state-changing route is a thin handler over a method of [`Admin`] taking the acting
//! [`sessions::Session`] ([`Admin::login`], [`Admin::change_status`], [`Admin::create_user`],
//! …), so the later Leptos admin's server functions can call the same code with the session
//! they resolved ([`Admin::session`]) and get the same checks, audit entries and errors.

pub mod accounts;
pub mod audit;
pub mod deliveries;
pub mod error;
pub mod headers;
pub mod lockout;
pub mod orders;
pub mod outbox;
pub mod passwords;
pub mod privacy;
pub mod reports;
pub mod routes;
pub mod sessions;
pub mod stock;
pub mod store;
pub mod totp;
pub mod ui;

pub use error::AdminError;
pub use outbox::EdgeTarget;
pub use passwords::HashCost;

use crate::coordinator::{OriginShards, OriginStock};
use crate::db::OpenError;
use crate::orders::OrderBook;
use axum::extract::rejection::JsonRejection;
use axum::Json;
use edge_core::snapshot::Clock;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::AdminDb;

/// How the admin API is set up.
#[derive(Clone, Debug, Default)]
pub struct AdminConfig {
    /// The cost of new password hashes ([`HashCost::Test`] in tests only).
    pub hash_cost: HashCost,
    /// Where order status changes are forwarded (`--edge-url`, `--edge-token`); `None`: the
    /// origin is the only copy that needs to know.
    pub edge: Option<EdgeTarget>,
}

/// The admin API's parts. Shared by its routes and its outbox loop.
pub struct Admin {
    pub db: AdminDb,
    pub book: OrderBook,
    pub stock: Arc<OriginStock>,
    pub config: AdminConfig,
    clock: Arc<dyn Clock>,
    /// A hash of a random password, verified against when a login names no account, so a
    /// login for an unknown e-mail takes as long as one with a wrong password. Made on first
    /// use (or by [`Admin::spawn_outbox`] at startup): at standard cost it takes a while, and
    /// tests that never log in should not pay for it.
    dummy_hash: Arc<std::sync::OnceLock<String>>,
    http: reqwest::Client,
    /// Intents of status changes running now (see [`outbox::Pending`]).
    in_flight: outbox::InFlight,
    /// The stock shards themselves, for listing every SKU's level ([`Admin::stock_levels`]);
    /// `None` when opened without them ([`Admin::with_shards`]).
    shards: Option<OriginShards>,
}

impl Admin {
    /// Opens `admin.sqlite` under `data_dir` (which must exist).
    pub fn open(
        data_dir: &Path,
        book: OrderBook,
        stock: Arc<OriginStock>,
        clock: Arc<dyn Clock>,
        config: AdminConfig,
    ) -> Result<Self, OpenError> {
        let db = AdminDb::open(data_dir)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(outbox::EDGE_TIMEOUT_MS))
            .build()
            .unwrap_or_default();
        Ok(Self {
            db,
            book,
            stock,
            config,
            clock,
            dummy_hash: Arc::default(),
            http,
            in_flight: Arc::default(),
            shards: None,
        })
    }

    /// Lets the admin list every SKU's level (the stock page) by reading the shards.
    pub fn with_shards(mut self, shards: OriginShards) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The dummy hash (see the field), made now if need be. Blocks: call on a blocking thread.
    fn dummy_hash_blocking(dummy: &std::sync::OnceLock<String>, cost: HashCost) -> String {
        dummy
            .get_or_init(|| {
                // Without randomness the password is all zeros: it only has to cost the same.
                let password =
                    edge_core::api::random_hex::<16>().unwrap_or_else(|_| "0".repeat(32));
                passwords::hash_password(&password, cost).unwrap_or_default()
            })
            .clone()
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Every `/admin` route (the JSON API and the UI), with the security headers on every
    /// response.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
            .merge(ui::routes(self.clone()))
            .layer(axum::middleware::map_response(
                headers::add_security_headers,
            ))
    }
}

/// A JSON body, or the extractor's complaint as a 400.
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, AdminError> {
    body.map(|Json(value)| value)
        .map_err(|e| AdminError::BadRequest(e.body_text()))
}
