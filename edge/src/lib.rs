//! The Cloudflare Worker: the storefront on workerd.
//!
//! Thin by design: it builds a [`Shop`] from the worker's bindings and hands the request to the
//! host-agnostic router in `app::ssr` (pages, server functions, `/api`) plus the admin routes.
//!
//! # Layout
//! - [`kv_catalog`]: [`edge_core::CatalogStore`] over the `CATALOG` KV namespace (CBOR values).
//! - [`shard_stub`]: [`edge_core::store::ShardTransport`] over the `STOCK` Durable Object namespace.
//! - [`stock_shard`]: the `StockShard` Durable Object, one per shard, stock in its SQLite storage.
//!
//! Static files (`public/`, including the hydrate bundle in `public/pkg`) are served by the
//! Workers assets binding before the worker runs.

mod kv_catalog;
mod shard_stub;
mod stock_shard;

use axum::routing::get;
use edge_core::store::ShardedStock;
use edge_core::Shop;
use std::sync::Arc;
use tower_service::Service;
use worker::{event, Context, Env, HttpRequest};

pub use stock_shard::StockShard;

/// Binding names, as declared in `wrangler.toml`.
const CATALOG_BINDING: &str = "CATALOG";
const STOCK_BINDING: &str = "STOCK";
const ADMIN_TOKEN_BINDING: &str = "ADMIN_TOKEN";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn shop(env: &Env) -> worker::Result<Shop> {
    let catalog = kv_catalog::KvCatalog::new(env.kv(CATALOG_BINDING)?);
    let stock = ShardedStock::new(shard_stub::DurableShards::new(env.durable_object(STOCK_BINDING)?));
    Ok(Shop { catalog: Arc::new(catalog), stock: Arc::new(stock) })
}

/// The admin token, from a secret (production) or a plain var (`wrangler dev --var`).
fn admin_token(env: &Env) -> Option<String> {
    env.secret(ADMIN_TOKEN_BINDING)
        .map(|s| s.to_string())
        .or_else(|_| env.var(ADMIN_TOKEN_BINDING).map(|v| v.to_string()))
        .ok()
}

#[event(fetch)]
async fn fetch(
    req: HttpRequest,
    env: Env,
    _ctx: Context,
) -> worker::Result<axum::http::Response<axum::body::Body>> {
    let shop = shop(&env)?;
    let mut router = app::ssr::storefront_router(shop.clone(), app::ssr::leptos_options())
        .merge(edge_core::api::admin_router(shop, admin_token(&env)))
        .route("/healthz", get(|| async { "ok" }));
    Ok(router.call(req).await?)
}
