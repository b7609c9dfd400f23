//! The origin: the server behind the edge (health now; orders, admin and analytics to come) and
//! the merchant's publish command.
//!
//! # Layout
//! - [`server`]: the axum router of the origin server.
//! - [`publish`]: validates a catalog file and publishes it as a versioned snapshot to the catalog
//!   KV (through an edge's admin API, or [`cloudflare`]'s API), seeding stock through the edge.
//! - [`cloudflare`]: the Cloudflare API as a catalog KV target.
//! - [`shopify`]: importing a Shopify product export (CSV) as a catalog.

pub mod cloudflare;
pub mod publish;
pub mod server;
pub mod shopify;
