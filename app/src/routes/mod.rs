//! One module per page.

mod browse;
mod listing;
mod not_found;
mod product;
pub mod seo;

pub use browse::{CategoryNav, CategoryPage, HomePage, SearchPage};
pub use not_found::NotFound;
pub use product::ProductPage;

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
