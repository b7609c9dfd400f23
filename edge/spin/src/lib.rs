//! The storefront on Fermyon Spin: the same Leptos pages, server functions, JSON API and admin
//! routes as the Cloudflare worker (`edge/`), as a Spin HTTP component for `wasm32-wasip2`.
//!
//! Thin by design, like the worker: each request builds a [`Shop`] from Spin's resources and
//! hands it to the host-agnostic router in `app::ssr` plus [`edge_core::api::admin_router`].
//! Spin instantiates the component afresh for every request, so nothing is cached across
//! requests (the catalog reader's cache, stock levels and the behaviour-event queue live for
//! one request).
//!
//! # Layout
//! - [`key_value`]: Spin's key-value store (`default`) under the snapshot catalog reader, and as
//!   the raw store `/_admin/kv` publishes into.
//! - [`origin`]: stock ([`edge_core::store::ShardTransport`]) and checkouts
//!   ([`edge_core::checkout::OrderDesk`]) at the origin coordinator over outbound HTTP, the
//!   same CBOR protocol and SKU → shard mapping as the Durable Objects; behaviour events too.
//! - [`executor`]: the executor Leptos spawns on (wasip2 has no wasm-bindgen one).
//! - [`send`]: `Send` for single-threaded SDK values.
//!
//! # Configuration
//! The component's `environment` (`spin.toml`): `ORIGIN_URL`, `ORIGIN_TOKEN` (the origin's
//! bearer token), `ADMIN_TOKEN` (guards `/_admin`), `PERSONALIZATION_SECRET` (≥ 16 chars; without
//! it personalization is off). Static files (`public/`) are served by Spin's file server
//! component in front of this one, as the Workers assets binding does on Cloudflare.
//!
//! # What differs from Cloudflare
//! Edge protection keeps its counters in the key-value store between requests
//! (`edge_core::protect::carry`) rather than in isolate memory. No Durable Objects, so no
//! WebSockets: `/api/stock/{sku}/live` and `/api/orders/{id}/live`
//! answer 501 and pages show the level or status of their last load. Checkouts run at the
//! origin, which records the order before answering, so there is no outbox;
//! `/_admin/orders/{id}/status` answers 501 (status changes are made in the origin's admin), as
//! do `/_admin/outbox` and its retry.

mod executor;
mod key_value;
mod origin;
mod send;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use edge_core::snapshot::{CatalogCache, Clock, SnapshotCatalog};
use edge_core::store::ShardedStock;
use edge_core::Shop;
use http_body_util::BodyExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use std::sync::Arc;
use tower_service::Service;

/// The wall clock (WASI `wall-clock`), in milliseconds since the Unix epoch.
struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A variable of the component's `environment`, `None` when unset or empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The component's `wasi:http/incoming-handler`. The SDK's buffered `Request`/`Response` types
/// keep headers in a map, which would merge repeated `Set-Cookie`s; this reads and writes the
/// WASI request and response directly instead, header by header.
#[spin_sdk::http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    executor::init();
    executor::drive(async move {
        let response = match read_request(request).await {
            Ok(request) => serve(request).await,
            Err(e) => {
                let mut response =
                    Response::new(format!("cannot read the request: {e}").into_bytes());
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response
            }
        };
        write_response(response, response_out).await;
    })
    .await
}

/// The WASI request as an `http` one. Spin gives the authority apart from the headers (`host`
/// is not a header in wasi:http); pages build absolute URLs from `Host`, so it is put back.
async fn read_request(request: IncomingRequest) -> Result<Request<Vec<u8>>, String> {
    let mut builder = Request::builder()
        .method(axum::http::Method::from(request.method()))
        .uri(request.uri());
    let mut has_host = false;
    for (name, value) in request.headers().entries() {
        has_host |= name.eq_ignore_ascii_case("host");
        builder = builder.header(name, value);
    }
    if let Some(authority) = request.authority().filter(|_| !has_host) {
        builder = builder.header("host", authority);
    }
    let body = request
        .into_body()
        .await
        .map_err(|e| format!("body: {e}"))?;
    builder.body(body).map_err(|e| e.to_string())
}

/// Writes `response` with every header as given (repeated ones stay repeated).
async fn write_response(response: Response<Vec<u8>>, response_out: ResponseOutparam) {
    let (parts, body) = response.into_parts();
    let headers = Fields::new();
    for (name, value) in &parts.headers {
        if let Err(e) = headers.append(&name.as_str().to_owned(), &value.as_bytes().to_vec()) {
            eprintln!("response header {name} dropped: {e:?}");
        }
    }
    let outgoing = OutgoingResponse::new(headers);
    if outgoing.set_status_code(parts.status.as_u16()).is_err() {
        eprintln!("status {} refused", parts.status);
    }
    if let Err(e) = response_out.set_with_body(outgoing, body).await {
        eprintln!("response body not written: {e}");
    }
}

async fn serve(request: Request<Vec<u8>>) -> Response<Vec<u8>> {
    let clock = Arc::new(SystemClock);
    let origin = origin::Origin::new(
        &env("ORIGIN_URL").unwrap_or_default(),
        &env("ORIGIN_TOKEN").unwrap_or_default(),
    );
    let catalog = Arc::new(SnapshotCatalog::new(
        key_value::SpinKv::new(),
        Arc::new(CatalogCache::default()),
        clock.clone(),
    ));
    let shop = Shop {
        catalog: catalog.clone(),
        stock: Arc::new(ShardedStock::new(origin::OriginShards {
            origin: origin.clone(),
        })),
        levels: Arc::default(),
        clock: clock.clone(),
        orders: Arc::new(origin::OriginOrders {
            origin: origin.clone(),
        }),
    };
    let personalization = app::ssr::Personalization {
        secret: env("PERSONALIZATION_SECRET")
            .filter(|s| s.len() >= 16)
            .map(|s| Arc::from(s.into_bytes().into_boxed_slice())),
        events: Arc::default(),
    };
    let events = personalization.events.clone();
    // Edge protection as on Cloudflare, its state carried through the key-value store
    // (`edge_core::protect::carry`): this instance lives for one request.
    let protection = edge_core::protect::Protection::new(Default::default(), clock.clone());
    let state = key_value::SpinKv::new();
    let owners = edge_core::protect::owners_of(request.headers());
    let admin_view = request.uri().path() == "/_admin/protection";
    if let Err(e) = edge_core::protect::carry::load(&state, &protection, &owners, admin_view).await
    {
        eprintln!("protection state not loaded (this request runs without it): {e}");
    }
    let mut router =
        app::ssr::storefront_router(shop.clone(), app::ssr::leptos_options(), personalization)
            .merge(edge_core::api::admin_router(
                shop,
                Arc::new(key_value::SpinKv::new()),
                env("ADMIN_TOKEN"),
            ))
            .merge(durable_object_routes())
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                protection.clone(),
                edge_core::protect::Protection::layer,
            ))
            .merge(edge_core::protect::admin_router(
                protection.clone(),
                env("ADMIN_TOKEN"),
            ));

    let (parts, body) = request.into_parts();
    let response = match router
        .call(Request::from_parts(parts, Body::from(body)))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    };
    origin::send_events(&origin, &events, clock.now_ms()).await;
    if let Err(e) = edge_core::protect::carry::save(&state, &protection).await {
        eprintln!("protection state not saved: {e}");
    }
    let (mut parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => {
            eprintln!("response body failed: {e}");
            parts.status = StatusCode::SERVICE_UNAVAILABLE;
            Vec::new()
        }
    };
    // What the catalog cost this request, as on Cloudflare (here every request starts cold).
    if let Ok(timing) = HeaderValue::from_str(&format!("kv;desc=\"reads={}\"", catalog.kv_reads()))
    {
        parts.headers.insert("server-timing", timing);
    }
    if let Some(version) = catalog.pinned_version() {
        parts
            .headers
            .insert("x-catalog-version", HeaderValue::from(version));
    }
    Response::from_parts(parts, body)
}

/// The routes that need a Durable Object on Cloudflare: 501 here, saying why.
fn durable_object_routes() -> axum::Router {
    let not_here = |what: &'static str| {
        move || async move {
            let body = serde_json::json!({ "error": "not_implemented", "message": what });
            (StatusCode::NOT_IMPLEMENTED, axum::Json(body)).into_response()
        }
    };
    axum::Router::new()
        .route(
            "/api/stock/{sku}/live",
            get(not_here(
                "live stock needs WebSockets, which this host (Spin) does not offer",
            )),
        )
        .route(
            "/api/orders/{id}/live",
            get(not_here(
                "live order status needs WebSockets, which this host (Spin) does not offer",
            )),
        )
        .route(
            "/_admin/orders/{id}/status",
            post(not_here(
                "on Spin, order status changes are made in the origin's admin",
            )),
        )
        .route(
            "/_admin/outbox",
            get(not_here(
                "on Spin, checkouts run at the origin, which records each order before it is acknowledged: there is no outbox",
            )),
        )
        .route(
            "/_admin/outbox/{id}/retry",
            post(not_here(
                "on Spin, checkouts run at the origin, which records each order before it is acknowledged: there is no outbox",
            )),
        )
}
