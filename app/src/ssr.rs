//! The server side: one axum router serving the storefront pages, their server functions and the
//! JSON API, for any host that can supply a [`Shop`].

use crate::{shell, App, BUNDLE_NAME};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use edge_core::Shop;
use leptos::config::LeptosOptions;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, render_app_async_with_context, LeptosRoutes};

/// Options for rendering: where the hydrate bundle lives (`/pkg/shop.js`).
pub fn leptos_options() -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(BUNDLE_NAME)
        .site_pkg_dir("pkg")
        .env(leptos::config::Env::PROD)
        .build()
}

/// Registers the server functions. Hosts without static constructors (wasm) need this explicit
/// step; registering twice is harmless.
fn register_server_functions() {
    use leptos::server_fn::axum::register_explicit;
    register_explicit::<crate::data::ListCategories>();
    register_explicit::<crate::data::Browse>();
    register_explicit::<crate::data::ProductDetail>();
    register_explicit::<crate::data::StockLevel>();
    register_explicit::<crate::data::CartItems>();
    register_explicit::<crate::data::PlaceOrder>();
    register_explicit::<crate::data::OrderDetail>();
    register_explicit::<crate::data::HoldCart>();
    register_explicit::<crate::data::ReleaseCart>();
    register_explicit::<crate::data::RecordEvent>();
    register_explicit::<crate::data::RecentlyViewed>();
    register_explicit::<crate::data::PersonalizationState>();
    register_explicit::<crate::data::SetPersonalization>();
    register_explicit::<crate::data::Recommended>();
    register_explicit::<crate::data::RecordClick>();
    register_explicit::<crate::data::PersonalOrder>();
}

thread_local! {
    /// The app's route list, walked once per isolate (or thread) instead of on every request;
    /// server functions are registered at the same time.
    static ROUTES: Vec<leptos_axum::AxumRouteListing> = {
        register_server_functions();
        generate_route_list(App)
    };
}

/// Pages (server-rendered, then hydrated), server functions and `/api/...`. Unknown paths render
/// the app's "not found" page with status 404.
/// The shop's personalization secret (signs the behaviour cookie); `None` turns personalization
/// off: nothing is recorded, pages show generic lists.
#[derive(Clone, Default)]
pub struct Personalization {
    pub secret: Option<std::sync::Arc<[u8]>>,
    /// Where recorded events wait for the host to send them to the origin's analytics.
    pub events: std::sync::Arc<edge_core::events::EventQueue>,
}

pub fn storefront_router(
    shop: Shop,
    options: LeptosOptions,
    personalization: Personalization,
) -> Router {
    let routes = ROUTES.with(Clone::clone);
    let recommend_personalization = personalization.clone();
    let context = {
        let shop = shop.clone();
        move || {
            provide_context(shop.clone());
            provide_context(personalization.clone());
            allow_this_renders_scripts();
        }
    };
    let app_shell = {
        let options = options.clone();
        move || shell(options.clone())
    };
    let not_found = render_app_async_with_context(context.clone(), app_shell.clone());
    let pages = Router::new()
        .leptos_routes_with_context(&options, routes, context, app_shell)
        .fallback(move |req| not_found(req))
        .with_state(options)
        .layer(axum::middleware::map_response(html_cache_headers));
    let sitemap_shop = shop.clone();
    let recommend_shop = shop.clone();
    pages
        .route(
            "/sitemap.xml",
            get(move |headers: HeaderMap| sitemap(sitemap_shop.clone(), headers)),
        )
        .route("/robots.txt", get(robots))
        .route(
            "/api/recommendations",
            get(move |headers: HeaderMap| {
                recommendations(
                    recommend_shop.clone(),
                    recommend_personalization.clone(),
                    headers,
                )
            }),
        )
        .merge(edge_core::api::router(shop))
        .layer(axum::middleware::map_response(security_headers))
}

/// The storefront's content security policy. No inline script runs without the nonce of its
/// render: leptos_axum makes a random one per page render (`leptos::nonce::provide_nonce`,
/// 128 bits from the platform's randomness), puts it on every script it writes (the hydration
/// loader of `HydrationScripts`, the resolved-resources data of `SsrMode::Async`), and
/// [`allow_this_renders_scripts`] names it in this header. Responses that are no page (JSON,
/// server functions, the sitemap) get the policy without a nonce: no inline script at all.
/// `'wasm-unsafe-eval'` lets the hydrate bundle compile its WebAssembly; inline styles stay
/// allowed (Leptos writes none, but a style attribute cannot run code).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; \
         script-src 'self'{nonce} 'wasm-unsafe-eval'; connect-src 'self'; \
         object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    )
}

/// Sets this page render's CSP (with the render's nonce) on its response. Runs in the render's
/// context, after leptos_axum provided the nonce and the response options.
fn allow_this_renders_scripts() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Headers every storefront response carries. The CSP forbids framing, plugins, foreign base
/// URLs and inline scripts; a page's own set it first, with its nonce (see
/// [`content_security_policy`]), and is kept.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(value) = HeaderValue::from_str(&content_security_policy(None)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}

/// `GET /api/recommendations`: what the home page's "Recommended for you" shows, for the
/// shopper of the request's history cookie (best-sellers without one, or when opted out).
async fn recommendations(
    shop: Shop,
    personalization: Personalization,
    headers: HeaderMap,
) -> Response {
    let header = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let history = personalization
        .secret
        .and_then(|secret| edge_core::behaviour::history_from_cookies(header, &secret))
        .unwrap_or_default();
    let weights = history.weights(shop.clock.now_ms() / 1000);
    let seen = history.seen();
    match edge_core::api::recommended_products(
        &shop,
        &weights,
        &seen,
        crate::data::RECOMMENDED_SHOWN,
    )
    .await
    {
        Ok((source, products)) => (
            [(header::CACHE_CONTROL, "private, no-store")],
            axum::Json(serde_json::json!({ "source": source, "products": products })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Pages may be served from an edge cache for a short while and revalidated in the background;
/// the live parts (stock, cart) refresh in the browser.
pub const HTML_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=30, stale-while-revalidate=300";

async fn html_cache_headers(mut response: Response) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html
        && response.status() == StatusCode::OK
        && !response.headers().contains_key(header::CACHE_CONTROL)
    {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(HTML_CACHE_CONTROL),
        );
    }
    response
}

/// URLs one sitemap file may list (the sitemaps.org limit).
const SITEMAP_URLS_MAX: usize = 50_000;

fn origin_of(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if host.starts_with("127.0.0.1") || host.starts_with("localhost") {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The home page, every category and every product of the live snapshot.
async fn sitemap(shop: Shop, headers: HeaderMap) -> Response {
    let origin = origin_of(&headers);
    let (categories, products) = futures::join!(shop.catalog.categories(), shop.catalog.products());
    let (Ok(categories), Ok(products)) = (categories, products) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "30")],
            "catalog unavailable",
        )
            .into_response();
    };
    let paths = std::iter::once("/".to_string())
        .chain(categories.iter().map(|c| format!("/c/{}", c.slug)))
        .chain(products.iter().map(|p| format!("/p/{}", p.sku)))
        .take(SITEMAP_URLS_MAX);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n");
    for path in paths {
        xml.push_str(&format!(
            "  <url><loc>{}</loc></url>\n",
            xml_escape(&format!("{origin}{path}"))
        ));
    }
    xml.push_str("</urlset>\n");
    (
        [
            (header::CONTENT_TYPE, "application/xml"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        xml,
    )
        .into_response()
}

async fn robots(headers: HeaderMap) -> Response {
    let body = format!(
        "User-agent: *\nDisallow: /api/\nDisallow: /_sfn/\nDisallow: /_admin/\nDisallow: /search\nSitemap: {}/sitemap.xml\n",
        origin_of(&headers)
    );
    (
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
