//! Server functions: what pages ask of the shop.
//!
//! On the server each body reads the [`edge_core::Shop`] provided as context; in the browser the
//! same call becomes a POST to `/_sfn/...` on the worker. Store failures come back as errors that
//! pages turn into a notice, never as a crash.

use edge_core::{Product, ProductSummary};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A product with its stock, for the product page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProductWithStock {
    pub product: Product,
    /// `None` when stock could not be read (the page says so instead of failing).
    pub available: Option<u32>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use edge_core::{Shop, Sku};
    use leptos::prelude::*;

    pub fn shop() -> Result<Shop, ServerFnError> {
        use_context::<Shop>().ok_or_else(|| ServerFnError::new("shop context missing"))
    }

    pub fn sku(raw: &str) -> Option<Sku> {
        Sku::parse(raw).ok()
    }

    /// Store errors are logged with their detail and shown to shoppers in general terms.
    pub fn unavailable(e: edge_core::StoreError) -> ServerFnError {
        leptos::logging::error!("store error: {e}");
        ServerFnError::new(format!("temporarily unavailable: {e}"))
    }
}

/// Every product, for the home page grid.
#[server(prefix = "/_sfn", endpoint = "products")]
pub async fn list_products() -> Result<Vec<ProductSummary>, ServerFnError> {
    let shop = ssr::shop()?;
    shop.catalog.products().await.map_err(ssr::unavailable)
}

/// A product and its live stock, or `None` for an unknown SKU.
#[server(prefix = "/_sfn", endpoint = "product")]
pub async fn product_detail(sku: String) -> Result<Option<ProductWithStock>, ServerFnError> {
    let shop = ssr::shop()?;
    let Some(sku) = ssr::sku(&sku) else { return Ok(None) };
    // Catalog (KV) and stock (shard) are independent: ask both at once.
    let (product, stock) = futures::join!(shop.catalog.product(&sku), shop.stock.level(&sku));
    let Some(product) = product.map_err(ssr::unavailable)? else { return Ok(None) };
    let available = match stock {
        Ok(level) => level,
        Err(e) => {
            leptos::logging::error!("stock level for {sku} unavailable: {e}");
            None
        }
    };
    Ok(Some(ProductWithStock { product, available }))
}

/// Units available now, for the live stock line; `None` for a SKU without stock.
#[server(prefix = "/_sfn", endpoint = "stock")]
pub async fn stock_level(sku: String) -> Result<Option<u32>, ServerFnError> {
    let shop = ssr::shop()?;
    let Some(sku) = ssr::sku(&sku) else { return Ok(None) };
    shop.stock.level(&sku).await.map_err(ssr::unavailable)
}
