//! The server side: one axum router serving the storefront pages, their server functions and the
//! JSON API, for any host that can supply a [`Shop`].

use crate::{shell, App, BUNDLE_NAME};
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
pub fn register_server_functions() {
    use leptos::server_fn::axum::register_explicit;
    register_explicit::<crate::data::ListProducts>();
    register_explicit::<crate::data::ProductDetail>();
    register_explicit::<crate::data::StockLevel>();
}

/// Pages (server-rendered, then hydrated), server functions and `/api/...`. Unknown paths render
/// the app's "not found" page with status 404.
pub fn storefront_router(shop: Shop, options: LeptosOptions) -> Router {
    register_server_functions();
    let routes = generate_route_list(App);
    let context = {
        let shop = shop.clone();
        move || provide_context(shop.clone())
    };
    let app_shell = {
        let options = options.clone();
        move || shell(options.clone())
    };
    let not_found = render_app_async_with_context(context.clone(), app_shell.clone());
    Router::new()
        .leptos_routes_with_context(&options, routes, context, app_shell)
        .fallback(move |req| not_found(req))
        .with_state(options)
        .merge(edge_core::api::router(shop))
}
