//! What search engines and link previews read: canonical URLs, Open Graph, JSON-LD.

use edge_core::Product;
use leptos::prelude::*;
use leptos_meta::{Link, Meta};

/// The site's origin (`https://shop.example`) from the request being rendered; empty in the
/// browser, where links stay relative.
pub fn origin() -> String {
    #[cfg(feature = "ssr")]
    if let Some(parts) = use_context::<axum::http::request::Parts>() {
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let host = host.or_else(|| parts.uri.authority().map(|a| a.to_string()));
        let scheme = parts.uri.scheme_str().unwrap_or("https");
        if let Some(host) = host {
            return format!("{scheme}://{host}");
        }
    }
    String::new()
}

pub fn absolute(path: &str) -> String {
    format!("{}{path}", origin())
}

#[component]
pub fn Canonical(path: String) -> impl IntoView {
    view! { <Link rel="canonical" href=absolute(&path) /> }
}

/// A price as schema.org writes it: a decimal string in the currency's major unit.
fn decimal(money: &edge_core::Money) -> String {
    if money.to_string().contains('.') {
        format!("{}.{:02}", money.minor / 100, money.minor % 100)
    } else {
        money.minor.to_string()
    }
}

/// `schema.org/Product` with its offer, as JSON-LD. The offer's price is the price shown: the
/// `sale` price when automatic promotions discount the product now, with the list price as its
/// strikethrough price.
pub fn product_json_ld(
    product: &Product,
    sale: Option<&edge_core::Money>,
    available: Option<u32>,
    url: &str,
) -> String {
    let price = decimal(sale.unwrap_or(&product.price));
    let list_price = sale.map(|_| {
        serde_json::json!({
            "@type": "UnitPriceSpecification",
            "priceType": "https://schema.org/StrikethroughPrice",
            "price": decimal(&product.price),
            "priceCurrency": product.price.currency,
        })
    });
    let availability = match available {
        Some(0) => "https://schema.org/OutOfStock",
        Some(_) => "https://schema.org/InStock",
        None => "https://schema.org/LimitedAvailability",
    };
    let mut value = serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Product",
        "sku": product.sku,
        "name": product.title,
        "description": product.description,
        "image": absolute(&product.image).replace(&format!("{}https://", origin()), "https://"),
        "category": product.category,
        "brand": (!product.vendor.is_empty()).then(|| serde_json::json!({"@type": "Brand", "name": product.vendor})),
        "offers": {
            "@type": "Offer",
            "url": url,
            "price": price,
            "priceCurrency": product.price.currency,
            "availability": availability,
        },
    });
    if let Some(list_price) = list_price {
        value["offers"]["priceSpecification"] = list_price;
    }
    // `</` cannot end the script element early once escaped.
    value.to_string().replace("</", "<\\/")
}

/// Canonical URL, Open Graph tags and JSON-LD for a product page.
#[component]
pub fn ProductSeo(
    product: Product,
    sale: Option<edge_core::Money>,
    available: Option<u32>,
) -> impl IntoView {
    let url = absolute(&format!("/p/{}", product.sku));
    let image = if product.image.starts_with("https://") {
        product.image.clone()
    } else {
        absolute(&product.image)
    };
    let description: String = product.description.chars().take(200).collect();
    let json_ld = product_json_ld(&product, sale.as_ref(), available, &url);
    view! {
        <Link rel="canonical" href=url.clone() />
        <Meta property="og:type" content="product" />
        <Meta property="og:title" content=product.title.clone() />
        <Meta property="og:description" content=description />
        <Meta property="og:url" content=url />
        <Meta property="og:image" content=image />
        <script type="application/ld+json" inner_html=json_ld></script>
    }
}
