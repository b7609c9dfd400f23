//! The Cloudflare Worker: the storefront on workerd.
//!
//! Thin by design: it builds a [`Shop`] from the worker's bindings and hands the request to the
//! host-agnostic router in `app::ssr` (pages, server functions, `/api`) plus the admin routes.
//!
//! # Layout
//! - [`kv_catalog`]: Workers KV (`CATALOG`) under the snapshot catalog reader, its per-isolate
//!   cache and clock.
//! - [`shard_stub`]: [`edge_core::store::ShardTransport`] over the `STOCK` Durable Object namespace.
//! - [`stock_shard`]: the `StockShard` Durable Object, one per shard, stock and holds in its
//!   SQLite storage, hold expiry by alarm, live levels over WebSocket.
//! - [`order_stub`]: [`edge_core::checkout::OrderDesk`] over the `ORDERS` namespace.
//! - [`order_object`]: the `OrderShard` Durable Object, one per order shard: runs checkouts,
//!   keeps placed orders in its outbox until the origin has them, pushes status changes.
//! - [`live`]: WebSocket forwarding and the live messages.
//! - [`request_id`]: one id per request, sent to the origin as `X-Request-Id` and echoed.
//! - [`bench_counter`]: a bare Durable Object counter, the stock benchmark's baseline.
//!
//! Static files (`public/`, including the hydrate bundle in `public/pkg`) are served by the
//! Workers assets binding before the worker runs.

mod bench_counter;
mod kv_catalog;
mod live;
mod order_object;
mod order_stub;
mod request_id;
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

pub use bench_counter::BenchCounter;
pub use order_object::OrderShard;
pub use stock_shard::StockShard;

/// Binding names, as declared in `wrangler.toml`.
const CATALOG_BINDING: &str = "CATALOG";
const STOCK_BINDING: &str = "STOCK";
const ORDERS_BINDING: &str = "ORDERS";
const BENCH_BINDING: &str = "BENCH";
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
        orders: Arc::new(order_stub::DurableOrders::new(
            env.durable_object(ORDERS_BINDING)?,
        )),
    };
    Ok((shop, catalog))
}

/// The behaviour cookie's signing secret (`PERSONALIZATION_SECRET`, a secret in production);
/// without it personalization is off.
fn personalization(env: &Env) -> app::ssr::Personalization {
    let secret = env
        .secret("PERSONALIZATION_SECRET")
        .map(|s| s.to_string())
        .or_else(|_| env.var("PERSONALIZATION_SECRET").map(|v| v.to_string()))
        .ok()
        .filter(|s| s.len() >= 16);
    app::ssr::Personalization {
        secret: secret.map(|s| std::sync::Arc::from(s.into_bytes().into_boxed_slice())),
        events: isolate_events(),
    }
}

/// The isolate's edge protection (rate limits, hoarding caps, bot score; see
/// `edge_core::protect`): on unless the `PROTECTION` var is `off` (for a benchmark that means
/// to measure the shards rather than the limits).
fn isolate_protection(env: &Env) -> Option<edge_core::protect::Protection> {
    static PROTECTION: std::sync::OnceLock<edge_core::protect::Protection> =
        std::sync::OnceLock::new();
    let off = env
        .var("PROTECTION")
        .map(|v| v.to_string())
        .is_ok_and(|v| v == "off");
    (!off).then(|| {
        let make = || {
            edge_core::protect::Protection::new(
                Default::default(),
                Arc::new(kv_catalog::WorkerClock),
            )
        };
        PROTECTION.get_or_init(make).clone()
    })
}

/// Behaviour events recorded in this isolate, waiting to go to the origin.
fn isolate_events() -> Arc<edge_core::events::EventQueue> {
    static EVENTS: std::sync::OnceLock<Arc<edge_core::events::EventQueue>> =
        std::sync::OnceLock::new();
    EVENTS.get_or_init(Arc::default).clone()
}

/// Sends a due batch of behaviour events to the origin (`POST {ORIGIN_URL}/internal/events`)
/// after the response, without holding it up; a failed send is counted as dropped.
fn flush_events(env: &Env, ctx: &Context, request_id: &str) {
    let queue = isolate_events();
    let Some(batch) = queue.take_due(worker::Date::now().as_millis(), false) else {
        return;
    };
    let Some(url) = env
        .var("ORIGIN_URL")
        .ok()
        .map(|v| v.to_string())
        .filter(|u| !u.is_empty())
    else {
        queue.lost(&batch);
        return;
    };
    let token = env
        .secret("ORIGIN_TOKEN")
        .map(|s| s.to_string())
        .or_else(|_| env.var("ORIGIN_TOKEN").map(|v| v.to_string()))
        .unwrap_or_default();
    let request_id = request_id.to_owned();
    ctx.wait_until(async move {
        let sent = async {
            let headers = worker::Headers::new();
            headers.set("content-type", "application/json")?;
            headers.set("authorization", &format!("Bearer {token}"))?;
            headers.set(request_id::HEADER, &request_id)?;
            let body = serde_json::to_string(&batch)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            let mut init = worker::RequestInit::new();
            init.with_method(worker::Method::Post)
                .with_headers(headers)
                .with_body(Some(body.into()));
            let request = worker::Request::new_with_init(
                &format!("{}/internal/events", url.trim_end_matches('/')),
                &init,
            )?;
            let response = worker::Fetch::Request(request).send().await?;
            match response.status_code() {
                200..=299 => Ok(()),
                status => Err(worker::Error::RustError(format!(
                    "origin answered {status}"
                ))),
            }
        };
        if let Err(e) = sent.await {
            worker::console_warn!("behaviour events not delivered: {e}");
            queue.lost(&batch);
        }
    });
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
    ctx: Context,
) -> worker::Result<axum::http::Response<axum::body::Body>> {
    let (shop, catalog) = shop(&env)?;
    let token = admin_token(&env);
    let mut router = app::ssr::storefront_router(
        shop.clone(),
        app::ssr::leptos_options(),
        personalization(&env),
    )
    .merge(edge_core::api::admin_router(
        shop,
        Arc::new(kv_catalog::WorkersKv::new(env.kv(CATALOG_BINDING)?)),
        token.clone(),
    ))
    .merge(live_routes(&env, token.clone())?)
    .route("/healthz", get(|| async { "ok" }));
    if let Some(protection) = isolate_protection(&env) {
        router = router
            .layer(axum::middleware::from_fn_with_state(
                protection.clone(),
                edge_core::protect::Protection::layer,
            ))
            .merge(edge_core::protect::admin_router(protection, token));
    }
    let request_id = request_id::of_request(req.headers());
    let mut response = request_id::scoped(request_id.clone(), router.call(req)).await?;
    flush_events(&env, &ctx, &request_id);
    // What the catalog cost this request, for tests and benchmarks: `reads=0` on a warm page.
    let headers = response.headers_mut();
    if let Ok(timing) = HeaderValue::from_str(&format!("kv;desc=\"reads={}\"", catalog.kv_reads()))
    {
        headers.insert("server-timing", timing);
    }
    if let Some(version) = catalog.pinned_version() {
        headers.insert("x-catalog-version", HeaderValue::from(version));
    }
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert(request_id::HEADER, id);
    }
    Ok(response)
}

/// Routes that reach a Durable Object directly: live WebSockets, and order status changes
/// (which the origin's admin sends).
fn live_routes(env: &Env, token: Option<String>) -> worker::Result<axum::Router> {
    use axum::extract::Path;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use edge_core::stock::OrderId;
    use edge_core::{Sku, SkuShard};

    let shards = Arc::new(shard_stub::DurableShards::new(
        env.durable_object(STOCK_BINDING)?,
    ));
    let orders = Arc::new(order_stub::DurableOrders::new(
        env.durable_object(ORDERS_BINDING)?,
    ));
    let bad = |message: String| (StatusCode::BAD_REQUEST, message).into_response();
    let unavailable = |e: String| (StatusCode::SERVICE_UNAVAILABLE, e).into_response();

    let stock_live = move |Path(sku): Path<String>, headers: HeaderMap| {
        let shards = shards.clone();
        worker::send::SendFuture::new(async move {
            if !wants_upgrade(&headers) {
                return live::upgrade_required();
            }
            let Ok(sku) = Sku::parse(&sku) else {
                return bad(format!("invalid SKU {sku:?}"));
            };
            let stub = match shards.stub(SkuShard::of(&sku)) {
                Ok(stub) => stub,
                Err(e) => return unavailable(e.to_string()),
            };
            let url = format!("https://stock-shard/live?sku={sku}");
            live::forward_upgrade(stub, &url)
                .await
                .unwrap_or_else(|e| unavailable(e.to_string()))
        })
    };
    let order_orders = orders.clone();
    let order_live = move |Path(id): Path<String>, headers: HeaderMap| {
        let orders = order_orders.clone();
        worker::send::SendFuture::new(async move {
            if !wants_upgrade(&headers) {
                return live::upgrade_required();
            }
            let Ok(id) = OrderId::parse(&id) else {
                return bad(format!("invalid order id {id:?}"));
            };
            match orders.stub(&id) {
                Ok(stub) => live::forward_upgrade(stub, &format!("https://order/live?order={id}"))
                    .await
                    .unwrap_or_else(|e| unavailable(e.to_string())),
                Err(e) => unavailable(e.to_string()),
            }
        })
    };
    // The outbox of orders the origin has not acknowledged, and "retry now" for one of them.
    let outbox_orders = orders.clone();
    let outbox = move || {
        let orders = outbox_orders.clone();
        worker::send::SendFuture::new(async move {
            let (deliveries, unreachable) = orders.outbox().await;
            axum::Json(serde_json::json!({
                "deliveries": deliveries,
                "unreachable_shards": unreachable,
            }))
            .into_response()
        })
    };
    // Requests the order's shard answers itself: "retry now", and status changes (which the
    // origin's admin sends).
    let forward = move |path: &'static str| {
        let orders = orders.clone();
        move |Path(id): Path<String>, body: axum::body::Bytes| {
            let orders = orders.clone();
            worker::send::SendFuture::new(async move {
                let Ok(id) = OrderId::parse(&id) else {
                    return bad(format!("invalid order id {id:?}"));
                };
                match orders.forward(&id, path, &body).await {
                    Ok(response) => axum::http::Response::from(response),
                    Err(e) => unavailable(e.to_string()),
                }
            })
        }
    };
    let counters = env.durable_object(BENCH_BINDING)?;
    let bench_counter = move || {
        let counters = counters.clone();
        worker::send::SendFuture::new(async move {
            let stub = match counters.get_by_name("counter") {
                Ok(stub) => stub,
                Err(e) => return unavailable(e.to_string()),
            };
            match stub.fetch_with_str("https://counter/").await {
                Ok(response) => axum::http::Response::from(response),
                Err(e) => unavailable(e.to_string()),
            }
        })
    };
    // Every `/_admin` route here needs the admin token.
    let admin = axum::Router::new()
        .route("/_admin/bench/counter", post(bench_counter))
        .route("/_admin/orders/{id}/status", post(forward("/status")))
        .route("/_admin/outbox", get(outbox))
        .route("/_admin/outbox/{id}/retry", post(forward("/outbox/retry")))
        .route_layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let allowed = authorized(request.headers(), token.as_deref());
                async move {
                    if !allowed {
                        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                            .into_response();
                    }
                    next.run(request).await
                }
            },
        ));
    Ok(axum::Router::new()
        .route("/api/stock/{sku}/live", get(stock_live))
        .route("/api/orders/{id}/live", get(order_live))
        .merge(admin))
}

fn wants_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The bearer token check of the admin routes, for the routes defined here.
fn authorized(headers: &axum::http::HeaderMap, token: Option<&str>) -> bool {
    token.is_some_and(|token| edge_core::api::bearer_matches(headers, token))
}
