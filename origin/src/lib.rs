//! The origin: the server behind the edge (stock coordinator, orders system of record, and a
//! self-hosted storefront API) and the merchant's publish command.
//!
//! # Layout
//! - [`analytics`]: behaviour events from the edges (`POST /internal/events`) in
//!   `analytics.sqlite`, and trending products computed from them.
//! - [`together`]: "bought together" lists from co-purchases (orders) and co-views (events),
//!   `GET /internal/together`, published with the snapshot.
//! - [`server`]: [`server::Origin`], which opens the data dir and composes every route; the
//!   startup steps and errors of `origin serve`.
//! - [`coordinator`]: the 16 stock shards, each a single writer in its own SQLite file
//!   ([`coordinator::SqliteShard`]), in process ([`coordinator::OriginStock`]), with the hold
//!   expiry timer and the CBOR wire route `POST /coordinator/shards/{n}` for remote edges.
//! - [`orders`]: the orders system of record in `orders.sqlite` ([`orders::OrderBook`]): the
//!   orders and their status history, the origin's checkout log, and the `/internal/orders`
//!   intake for edges' outboxes.
//! - [`desk`]: the origin's own checkouts: run in process, delivered to the order book at once,
//!   and finished by a recovery loop after a crash.
//! - [`db`]: opening SQLite files durably (WAL, `synchronous=FULL`), one transaction per call,
//!   and [`db::Serial`], which drives a connection from async code on blocking threads.
//! - [`admin`]: the staff's admin API under `/admin/api/` in `admin.sqlite`: argon2id accounts
//!   with roles (owner, staff, viewer), session cookies with CSRF tokens, login lockout and
//!   TOTP, order search and status changes (returning stock, forwarded to the edge through a
//!   retried outbox), stock restock/adjust, and an append-only audit log; one route table.
//! - [`metrics`]: `GET /metrics` (Prometheus text): requests and latencies by area, orders by
//!   status, the admin outbox's depth, holds expired; behind the bearer token.
//! - [`request_log`]: a request id per request (taken from the edge's `X-Request-Id`, echoed)
//!   and one JSON log line per request on stderr.
//! - [`http`]: the JSON error shape and bearer-token check of the origin's own routes.
//! - [`publish`]: validates a catalog file and publishes it as a versioned snapshot to the catalog
//!   KV (through an edge's admin API, or [`cloudflare`]'s API), seeding stock through the edge.
//! - [`cloudflare`]: the Cloudflare API as a catalog KV target.
//! - [`shopify`]: importing a Shopify product export (CSV) as a catalog.
//!
//! # Data flow
//! A checkout on the origin's storefront (`POST /api/checkout`) is priced from the catalog KV,
//! holds its lines on the SQLite shards, is charged, sold, recorded in the checkout log, and
//! written to the orders table, each step fsynced before the next. An edge reaches the same
//! shards over `/coordinator/shards/{n}` and sends its placed orders to `/internal/orders`.

pub mod admin;
pub mod analytics;
pub mod cloudflare;
pub mod coordinator;
pub mod db;
pub mod desk;
pub mod http;
pub mod metrics;
pub mod orders;
pub mod publish;
pub mod request_log;
pub mod server;
pub mod shopify;
pub mod together;
