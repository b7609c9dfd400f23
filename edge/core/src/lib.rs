//! Host-agnostic core of the edge storefront.
//!
//! Everything here runs the same on Cloudflare Workers, on Spin and in a native test process;
//! the hosts only supply storage and transport by implementing the traits in [`store`].
//!
//! # Layout
//! - [`money`]: prices as integer minor units with their currency, and how they are shown.
//! - [`product`]: SKUs, products, the merchant catalog file and its validation.
//! - [`promo`]: promotion rules published with the catalog, and the pure cart pricing with them.
//! - [`codec`]: CBOR (ciborium) encoding of everything stored in KV or sent to a shard.
//! - [`levels`]: recently read stock levels, per isolate, for showing (never deciding).
//! - [`listing`]: category listings: slugs, facets, filters, sorting, pages.
//! - [`search`]: the text search index built at publish time and ranked at the edge.
//! - [`shard`]: the stable SKU -> stock shard mapping.
//! - [`similar`]: the similar-items index published with a snapshot, and searching it.
//! - [`snapshot`]: versioned catalog snapshots in KV and the cached, version-pinned reader.
//! - [`stock`]: the per-shard stock state machine (holds, commit, release, expiry, restock) and
//!   the shard wire protocol.
//! - [`order`]: checkout requests and orders (plain data, also in the browser bundle).
//! - [`checkout`] (feature `server`): the all-or-nothing checkout across shards, the payment
//!   gateway and checkout-log traits, the test gateway and the order desk.
//! - [`store`]: the traits a host implements (catalog store, shard transport) and [`store::Shop`].
//! - [`behaviour`] (feature `server`): the shopper's recent events in a signed, bounded cookie,
//!   and their recency weights, for personalization at the edge.
//! - [`events`] (feature `server`): the bounded per-isolate queue of behaviour events bound for
//!   the origin's analytics.
//! - [`protect`] (feature `server`): rate limits per client, hoarding caps per shopper and a
//!   bot score at checkout, as one bounded-memory axum middleware, with a log of its decisions.
//! - [`memory`] (feature `server`): in-memory stores, the native test host.
//! - [`api`] (feature `server`): the JSON API and admin routes as an axum router.
//!
//! # Data flow
//! A merchant catalog (JSON) is validated into [`product::Catalog`], published as an immutable
//! snapshot of CBOR values (see [`snapshot`]), and its stock levels seed the shards. A shopper request reads products
//! through [`store::CatalogStore`] and stock through [`store::StockCoordinator`], which routes each
//! SKU to exactly one shard ([`shard::SkuShard::of`]); that shard is the only writer of its stock.

pub mod codec;
pub mod levels;
pub mod listing;
pub mod money;
pub mod order;
pub mod product;
pub mod promo;
pub mod search;
pub mod shard;
pub mod similar;
pub mod snapshot;
pub mod stock;
pub mod store;

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod behaviour;
#[cfg(feature = "server")]
pub mod checkout;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "server")]
pub mod memory;
#[cfg(feature = "server")]
pub mod protect;

pub use money::Money;
pub use product::{Catalog, Product, ProductSummary, Sku};
pub use shard::SkuShard;
pub use stock::{OrderId, StockLevel};
pub use store::{CatalogStore, Shop, StockCoordinator, StoreError};
