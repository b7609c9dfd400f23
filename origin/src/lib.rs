//! The origin: the server behind the edge (health now; orders, admin and analytics to come) and
//! the merchant's publish command.
//!
//! # Layout
//! - [`server`]: the axum router of the origin server.
//! - [`publish`]: validates a catalog file and publishes it to an edge's admin API, which writes
//!   the products to KV and seeds stock in the shards.

pub mod publish;
pub mod server;
