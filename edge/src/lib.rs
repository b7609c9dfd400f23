//! The Cloudflare Worker: the storefront on workerd.
//!
//! Thin by design: it builds a [`Shop`] from the worker's bindings and hands the request to the
//! host-agnostic router in `app::ssr` (pages, server functions, `/api`) plus the admin routes.
//!
//! # Layout
//! - [`kv_catalog`]: Workers KV (`CATALOG`) under the snapshot catalog reader, its per-isolate
//!   cache and clock.
//! - [`shard_stub`]: [`edge_core::store::ShardTransport`] over the `STOCK` Durable Object namespace.
//! - [`stock_shard`]: the `StockShard` Durable Object, one per shard, stock in its SQLite storage.
//!
//! Static files (`public/`, including the hydrate bundle in `public/pkg`) are served by the
//! Workers assets binding before the worker runs.

mod kv_catalog;
mod shard_stub;
mod stock_shard;

use axum::http::HeaderValue;
use axum::routing::get;
use edge_core::snapshot::SnapshotCatalog;
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

type Catalog = SnapshotCatalog<kv_catalog::WorkersKv>;

/// The shop for one request; the catalog reader is returned too, to report its KV reads.
fn shop(env: &Env) -> worker::Result<(Shop, Arc<Catalog>)> {
    let kv = kv_catalog::WorkersKv::new(env.kv(CATALOG_BINDING)?);
    let clock = Arc::new(kv_catalog::WorkerClock);
    let catalog = Arc::new(SnapshotCatalog::new(
        kv,
        kv_catalog::isolate_cache(),
        clock.clone(),
    ));
    let stock = ShardedStock::new(shard_stub::DurableShards::new(
        env.durable_object(STOCK_BINDING)?,
    ));
    let shop = Shop {
        catalog: catalog.clone(),
        stock: Arc::new(stock),
        levels: kv_catalog::isolate_levels(),
        clock,
    };
    Ok((shop, catalog))
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
    let (shop, catalog) = shop(&env)?;
    let mut router = app::ssr::storefront_router(shop.clone(), app::ssr::leptos_options())
        .merge(edge_core::api::admin_router(
            shop,
            Arc::new(kv_catalog::WorkersKv::new(env.kv(CATALOG_BINDING)?)),
            admin_token(&env),
        ))
        .route("/healthz", get(|| async { "ok" }));
    let mut response = router.call(req).await?;
    // What the catalog cost this request, for tests and benchmarks: `reads=0` on a warm page.
    let headers = response.headers_mut();
    if let Ok(timing) = HeaderValue::from_str(&format!("kv;desc=\"reads={}\"", catalog.kv_reads()))
    {
        headers.insert("server-timing", timing);
    }
    if let Some(version) = catalog.pinned_version() {
        headers.insert("x-catalog-version", HeaderValue::from(version));
    }
    Ok(response)
}
