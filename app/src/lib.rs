//! The Leptos storefront.
//!
//! Rendered on the server inside the edge worker (feature `ssr`) and hydrated in the browser
//! (feature `hydrate`), from the same components.
//!
//! # Layout
//! - [`shell`] and [`App`]: the HTML document and the router.
//! - [`routes`]: one module per page (home grid, product page, not found).
//! - [`data`]: server functions, the only way pages get data. On the server they read the
//!   [`edge_core::Shop`] provided as context; in the browser they call the worker over HTTP.
//! - [`cart`]: the shopper's cart, kept in the browser (local storage) and shown in the header.
//! - [`live`]: WebSocket subscriptions for live stock levels and order status (browser only).
//! - [`ssr`] (feature `ssr`): the axum router that serves the app and the JSON API.

pub mod cart;
pub mod data;
pub mod live;
pub mod routes;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

/// Name of the hydrate bundle in `/pkg` (`NAME.js`, `NAME_bg.wasm`): content-hashed by
/// `scripts/build.sh`, which passes it in at compile time.
pub const BUNDLE_NAME: &str = match option_env!("SHOP_BUNDLE_NAME") {
    Some(name) => name,
    None => "shop",
};

/// The stylesheet's URL, content-hashed the same way.
pub const STYLE_HREF: &str = match option_env!("SHOP_STYLE_HREF") {
    Some(href) => href,
    None => "/pkg/style.css",
};

/// The whole HTML document around [`App`], rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    cart::Cart::provide();
    // Marks the page once the browser has hydrated it, so tests (and styles) can tell.
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet href=STYLE_HREF />
        <Title formatter=|page: String| format!("{page} · Edge Shop") />
        <Router>
            <header class="site-header">
                <A href="/" attr:class="brand">"Edge Shop"</A>
                <form class="header-search" action="/search" method="get" role="search">
                    <input type="search" name="q" placeholder="Search" aria-label="Search products" />
                </form>
                <cart::CartBadge />
            </header>
            <routes::CategoryNav />
            <main>
                <Routes fallback=routes::NotFound>
                    <Route path=path!("/") view=routes::HomePage ssr=SsrMode::Async />
                    <Route path=path!("/c/:slug") view=routes::CategoryPage ssr=SsrMode::Async />
                    <Route path=path!("/search") view=routes::SearchPage ssr=SsrMode::Async />
                    <Route path=path!("/p/:sku") view=routes::ProductPage ssr=SsrMode::Async />
                    <Route path=path!("/cart") view=routes::CartPage />
                    <Route path=path!("/orders/:id") view=routes::OrderPage ssr=SsrMode::Async />
                </Routes>
            </main>
            <footer class="site-footer">"Served from the edge · prices include tax · " <routes::PersonalizationToggle /></footer>
        </Router>
    }
}
