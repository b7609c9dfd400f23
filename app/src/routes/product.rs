use crate::cart::use_cart;
use crate::data::{product_detail, record_event, stock_level, ProductWithStock};
use edge_core::Sku;
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};
use std::collections::BTreeMap;

/// How often the browser re-reads the stock line besides the live updates (a safety net).
const STOCK_POLL_MS: u64 = 30_000;
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
    let ProductWithStock {
        product,
        levels,
        similar,
        together,
        sales,
    } = detail;
    let together = (!together.is_empty()).then(|| {
        view! {
            <section class="together" data-testid="bought-together">
                <h2>"Frequently bought together"</h2>
                {super::strip(together)}
            </section>
        }
    });
    let similar = (!similar.is_empty()).then(|| {
        view! {
            <section class="similar" data-testid="similar-items">
                <h2>"Similar items"</h2>
                {super::strip(similar)}
            </section>
        }
    });
    let cart = use_cart();
    let units: Vec<String> = product
        .stock_units()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let levels = RwSignal::new(
        levels
            .into_iter()
            .collect::<BTreeMap<String, Option<u32>>>(),
    );
    // The selected stock unit comes from `?variant=`, so each variant has a URL and choosing one
    // is a client-side navigation after hydration (a plain link before).
    let query = use_query_map();
    let selected = {
        let units = units.clone();
        Memo::new(move |_| {
            let wanted = query.read().get("variant");
            wanted
                .filter(|w| units.contains(w))
                .unwrap_or_else(|| units[0].clone())
        })
    };
    live_stock(selected, levels);

    let level = move || levels.with(|l| l.get(&selected.get()).copied().flatten());
    let in_cart = move || cart.units_of(&selected.get());
    let can_add = move || level().is_some_and(|units| units > in_cart());
    // The shopper's behaviour, recorded from the browser (never on the cached page itself).
    let product_sku = product.sku.to_string();
    {
        let sku = product_sku.clone();
        Effect::new(move |_| {
            let sku = sku.clone();
            leptos::task::spawn_local(async move {
                let _ = record_event(sku, "viewed".into()).await;
            });
        });
    }
    let add = move |_| {
        cart.add(&selected.get_untracked(), 1);
        let sku = product_sku.clone();
        leptos::task::spawn_local(async move {
            let _ = record_event(sku, "carted".into()).await;
        });
    };
    // What search engines read is the first unit's offer, as the page first shows it.
    let first_sale = sales
        .iter()
        .find(|(s, _)| *s == units[0])
        .map(|(_, sale)| sale.clone());
    // The list price, and the sale price when automatic promotions discount the unit now.
    let price = {
        let product = product.clone();
        move || {
            let unit = selected.get();
            let list = Sku::parse(&unit)
                .ok()
                .and_then(|s| product.price_of(&s).map(ToString::to_string))
                .unwrap_or_default();
            match sales.iter().find(|(s, _)| *s == unit) {
                Some((_, sale)) => view! { <s class="was">{list}</s> " " <span class="sale">{sale.to_string()}</span> }.into_any(),
                None => list.into_any(),
            }
        }
    };
    let variant_links = (!product.variants.is_empty()).then(|| {
        let names = product.options.join(" / ");
        let links = product
            .variants
            .iter()
            .map(|v| {
                let sku = v.sku.to_string();
                let href = format!("/p/{}?variant={sku}", product.sku);
                let active = {
                    let sku = sku.clone();
                    Signal::derive(move || selected.get() == sku)
                };
                view! {
                    <a class="variant" href=href data-sku=sku.clone() aria-current=move || active.get().then_some("true") class:active=active>
                        {v.label()}
                    </a>
                }
            })
            .collect_view();
        let label = names.clone();
        view! { <div class="variants" role="group" aria-label=label><span class="variant-name">{names}</span>{links}</div> }
    });
    let description = product.description.chars().take(160).collect::<String>();
    let first_level = levels.with_untracked(|l| l.get(&units[0]).copied().flatten());
    view! {
        <Title text=product.title.clone() />
        <Meta name="description" content=description />
        <super::seo::ProductSeo product=product.clone() sale=first_sale available=first_level />
        <article class="product" data-sku=product.sku.to_string()>
            <img src=product.image.clone() alt=product.title.clone() width="480" height="360" />
            <div class="details">
                <span class="category">{product.category.clone()}</span>
                <h1 class="title">{product.title.clone()}</h1>
                <p class="price">{price}</p>
                {variant_links}
                <p class="stock" data-sku=move || selected.get() data-available=move || level().map(|u| u.to_string())>
                    {move || stock_text(level())}
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
        {together}
        {similar}
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

/// Keeps the selected unit's level live in the browser: the SKU's stock shard pushes every
/// change over a WebSocket (see [`crate::live`]); a slow poll covers a socket that cannot connect.
fn live_stock(selected: Memo<String>, levels: RwSignal<BTreeMap<String, Option<u32>>>) {
    #[derive(serde::Deserialize)]
    struct LiveLevel {
        sku: String,
        available: u32,
    }
    Effect::new(move |_| {
        let sku = selected.get();
        crate::live::watch(format!("/api/stock/{sku}/live"), move |text| {
            if let Ok(live) = serde_json::from_str::<LiveLevel>(&text) {
                levels.update(|l| {
                    l.insert(live.sku, Some(live.available));
                });
            }
        });
    });
    Effect::new(move |_| {
        let interval = set_interval_with_handle(
            move || {
                let sku = selected.get_untracked();
                leptos::task::spawn_local(async move {
                    // A failed refresh keeps the last known level on screen.
                    if let Ok(level) = stock_level(sku.clone()).await {
                        // Unless the page is gone meanwhile.
                        levels.try_update(|l| {
                            l.insert(sku, level);
                        });
                    }
                });
            },
            std::time::Duration::from_millis(STOCK_POLL_MS),
        );
        if let Ok(handle) = interval {
            on_cleanup(move || handle.clear());
        }
    });
}
