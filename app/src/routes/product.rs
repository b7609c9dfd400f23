use crate::cart::use_cart;
use crate::data::{product_detail, stock_level, ProductWithStock};
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

/// How often the browser refreshes the stock line.
const STOCK_REFRESH_MS: u64 = 5_000;
/// At or below this many units the page says "only N left".
const LOW_STOCK_UNITS: u32 = 5;

#[component]
pub fn ProductPage() -> impl IntoView {
    let params = use_params_map();
    let sku = move || params.read().get("sku").unwrap_or_default();
    let detail = Resource::new(sku, product_detail);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading product…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(Some(detail)) => view! { <ProductView detail /> }.into_any(),
                    Ok(None) => {
                        super::set_status(404);
                        view! {
                            <Title text="Product not found" />
                            <section class="notice">
                                <h1>"Product not found"</h1>
                                <p>"We have no product with that code. " <a href="/">"See all products"</a></p>
                            </section>
                        }
                        .into_any()
                    }
                    Err(_) => {
                        super::degraded();
                        view! {
                            <Title text="Temporarily unavailable" />
                            <p class="notice">"This product is unavailable right now. Please try again shortly."</p>
                        }
                        .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProductView(detail: ProductWithStock) -> impl IntoView {
    let ProductWithStock { product, available } = detail;
    let cart = use_cart();
    let stock = RwSignal::new(available);
    let sku = product.sku.to_string();
    poll_stock(sku.clone(), stock);

    let in_cart = {
        let sku = sku.clone();
        move || cart.units_of(&sku)
    };
    let can_add = {
        let in_cart = in_cart.clone();
        move || stock.get().is_some_and(|units| units > in_cart())
    };
    let add = {
        let sku = sku.clone();
        move |_| cart.add(&sku, 1)
    };
    let description = product.description.chars().take(160).collect::<String>();
    view! {
        <Title text=product.title.clone() />
        <Meta name="description" content=description />
        <super::seo::ProductSeo product=product.clone() available />
        <article class="product" data-sku=sku>
            <img src=product.image.clone() alt=product.title.clone() width="480" height="360" />
            <div class="details">
                <span class="category">{product.category.clone()}</span>
                <h1 class="title">{product.title.clone()}</h1>
                <p class="price">{product.price.to_string()}</p>
                <p class="stock" data-available=move || stock.get().map(|u| u.to_string())>
                    {move || stock_text(stock.get())}
                </p>
                <button class="add-to-cart" on:click=add disabled=move || !can_add()>
                    "Add to cart"
                </button>
                <p class="in-cart">{move || match in_cart() {
                    0 => String::new(),
                    n => format!("{n} in your cart"),
                }}</p>
                <p class="description">{product.description.clone()}</p>
            </div>
        </article>
    }
}

fn stock_text(available: Option<u32>) -> String {
    match available {
        None => "Stock level unavailable".into(),
        Some(0) => "Out of stock".into(),
        Some(n) if n <= LOW_STOCK_UNITS => format!("Only {n} left in stock"),
        Some(n) => format!("{n} in stock"),
    }
}

/// Keeps `stock` fresh in the browser: re-reads the level every few seconds while the page is open.
fn poll_stock(sku: String, stock: RwSignal<Option<u32>>) {
    Effect::new(move |_| {
        let sku = sku.clone();
        let interval = set_interval_with_handle(
            move || {
                let sku = sku.clone();
                leptos::task::spawn_local(async move {
                    // A failed refresh keeps the last known level on screen.
                    if let Ok(level) = stock_level(sku).await {
                        stock.set(level);
                    }
                });
            },
            std::time::Duration::from_millis(STOCK_REFRESH_MS),
        );
        if let Ok(handle) = interval {
            on_cleanup(move || handle.clear());
        }
    });
}
