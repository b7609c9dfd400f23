//! One module per page.

mod browse;
mod cart;
mod listing;
mod not_found;
mod order;
mod personal;
mod pricing;
mod product;
pub mod seo;

pub use browse::{CategoryNav, CategoryPage, HomePage, SearchPage};
pub use cart::CartPage;
pub use not_found::NotFound;
pub use order::OrderPage;
pub use personal::{strip, PersonalizationToggle, RecentlyViewed, Recommended};
pub use product::ProductPage;

/// Marks the page being rendered as not cacheable: it shows a degraded view (a store was
/// unavailable or a stored value corrupt) that must not be served again from an edge cache.
/// The status stays 200: the rest of the page is real, and a broken value is not a server error.
pub(crate) fn degraded() {
    #[cfg(feature = "ssr")]
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
}

/// Marks the page being rendered as private to its visitor: never stored by a shared cache.
pub(crate) fn private() {
    #[cfg(feature = "ssr")]
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("private, no-store"),
        );
    }
}

/// Sets the HTTP status of the page being rendered (server only; a no-op in the browser).
pub(crate) fn set_status(status: u16) {
    #[cfg(feature = "ssr")]
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = axum::http::StatusCode::from_u16(status) {
            response.set_status(status);
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = status;
}
