//! What listing pages share: the product grid, facet links, sort links and pagination. Every
//! control is a plain link, so listings work without JavaScript and crawlers can follow them.

use edge_core::listing::{ListingPage, ListingQuery, PriceBand, Sort};
use edge_core::ProductSummary;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use std::collections::BTreeMap;

/// URL query keys a listing understands.
pub const LISTING_PARAMS: [&str; 6] = ["q", "price", "vendor", "tag", "sort", "page"];

/// The listing parameters of the current URL.
pub fn listing_params() -> Memo<BTreeMap<String, String>> {
    let query = use_query_map();
    Memo::new(move |_| {
        let query = query.read();
        LISTING_PARAMS
            .iter()
            .filter_map(|k| query.get(k).map(|v| (k.to_string(), v)))
            .collect()
    })
}

#[component]
pub fn ProductGrid(products: Vec<ProductSummary>) -> impl IntoView {
    view! {
        <ul class="grid">
            {products
                .into_iter()
                .map(|p| {
                    let href = format!("/p/{}", p.sku);
                    let price = price_tag(&p);
                    view! {
                        <li class="card" data-sku=p.sku.to_string()>
                            <a href=href>
                                <img src=p.image alt="" width="240" height="180" loading="lazy" />
                                <span class="category">{p.category}</span>
                                <h2 class="title">{p.title}</h2>
                                {price}
                            </a>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

/// A product's price: the sale price beside the struck-through list price when it is on sale.
pub fn price_tag(p: &ProductSummary) -> impl IntoView {
    match &p.sale_price {
        Some(sale) => view! {
            <span class="price on-sale"><s class="was">{p.price.to_string()}</s> " " <span class="sale">{sale.to_string()}</span></span>
        }
        .into_any(),
        None => view! { <span class="price">{p.price.to_string()}</span> }.into_any(),
    }
}

/// `base?fixed&query`: the link to this listing with `query`.
fn href(base: &str, fixed: &[(String, String)], query: &ListingQuery) -> String {
    let mut parts: Vec<String> = fixed
        .iter()
        .map(|(k, v)| format!("{k}={}", edge_core::listing::encode(v)))
        .collect();
    let q = query.to_query();
    if !q.is_empty() {
        parts.push(q);
    }
    if parts.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", parts.join("&"))
    }
}

/// A facet link: selecting a value goes back to page 1; selecting the active value clears it.
fn facet_link(label: String, count: u32, active: bool, link: String) -> impl IntoView {
    view! {
        <li class:active=active>
            <a href=link rel="nofollow" aria-current=active.then_some("true")>
                {label} " " <span class="count">"(" {count} ")"</span>
            </a>
        </li>
    }
}

/// Facets, sort, grid and pagination of one listing page.
#[component]
pub fn ListingView(
    /// Path of the listing (`/`, `/c/kitchen`, `/search`).
    base: String,
    /// Parameters every link keeps (the search query).
    fixed: Vec<(String, String)>,
    query: ListingQuery,
    page: ListingPage,
) -> impl IntoView {
    let link = |q: ListingQuery| href(&base, &fixed, &q);
    let first_page = |q: &ListingQuery| ListingQuery {
        page: 1,
        ..q.clone()
    };

    let price_links = page
        .facets
        .price
        .iter()
        .map(|(band, n)| {
            let active = query.price == Some(*band);
            let q = ListingQuery {
                price: (!active).then_some(*band),
                ..first_page(&query)
            };
            facet_link(price_label(*band, &page), *n, active, link(q))
        })
        .collect_view();
    let vendor_links = page
        .facets
        .vendors
        .iter()
        .map(|(vendor, n)| {
            let active = query.vendor.as_deref() == Some(vendor.as_str());
            let q = ListingQuery {
                vendor: (!active).then(|| vendor.clone()),
                ..first_page(&query)
            };
            facet_link(vendor.clone(), *n, active, link(q))
        })
        .collect_view();
    let tag_links = page
        .facets
        .tags
        .iter()
        .map(|(tag, n)| {
            let active = query.tag.as_deref() == Some(tag.as_str());
            let q = ListingQuery {
                tag: (!active).then(|| tag.clone()),
                ..first_page(&query)
            };
            facet_link(tag.clone(), *n, active, link(q))
        })
        .collect_view();
    let sort_links = Sort::ALL
        .into_iter()
        .map(|sort| {
            let active = query.sort == sort;
            let href = link(ListingQuery {
                sort,
                ..first_page(&query)
            });
            view! { <a href=href rel="nofollow" class:active=active>{sort.label()}</a> }
        })
        .collect_view();
    let prev = (page.page > 1).then(|| {
        link(ListingQuery {
            page: page.page - 1,
            ..query.clone()
        })
    });
    let next = (page.page < page.pages).then(|| {
        link(ListingQuery {
            page: page.page + 1,
            ..query.clone()
        })
    });
    let products = RwSignal::new(page.products);
    let personalized = RwSignal::new(false);
    // The merchant's order ("Featured") is re-ranked for a shopper with a history, in the
    // browser after hydration: the cached page stays the same for everyone. A sort the shopper
    // chose, and search results (best match first), are left alone.
    if query.sort == Sort::Featured && fixed.is_empty() && crate::data::may_have_history() {
        Effect::new(move |_| {
            let skus: Vec<String> =
                products.with_untracked(|p| p.iter().map(|p| p.sku.to_string()).collect());
            leptos::task::spawn_local(async move {
                let Ok(Some(order)) = crate::data::personal_order(skus).await else {
                    return;
                };
                // The listing may be gone by the time the answer comes (the shopper moved on):
                // then there is nothing to re-rank, and touching its signals would panic.
                let ranked = products.try_update(|list| {
                    list.sort_by_key(|p| {
                        order
                            .iter()
                            .position(|s| *s == p.sku.as_str())
                            .unwrap_or(usize::MAX)
                    });
                });
                if ranked.is_some() {
                    personalized.try_set(true);
                }
            });
        });
    }
    let clear = query.is_filtered().then(|| {
        link(ListingQuery {
            sort: query.sort,
            ..ListingQuery::default()
        })
    });

    view! {
        <div class="listing">
            <aside class="facets">
                {clear.map(|href| view! { <a class="clear-filters" href=href>"Clear filters"</a> })}
                <h3>"Price"</h3>
                <ul class="facet facet-price">{price_links}</ul>
                {(!page.facets.vendors.is_empty()).then(|| view! { <h3>"Brand"</h3> })}
                <ul class="facet facet-vendor">{vendor_links}</ul>
                {(!page.facets.tags.is_empty()).then(|| view! { <h3>"Tags"</h3> })}
                <ul class="facet facet-tag">{tag_links}</ul>
            </aside>
            <section class="results">
                <p class="summary">
                    <span class="total" data-total=page.total>{page.total} " products"</span>
                    <span class="sort">"Sort: " {sort_links}</span>
                </p>
                {move || personalized.get().then(|| view! { <p class="personalized-note" data-testid="personalized">"Ordered for you, from what you viewed"</p> })}
                {move || view! { <ProductGrid products=products.get() /> }}
                <nav class="pagination" aria-label="Pages">
                    {prev.map(|href| view! { <a rel="prev" href=href>"← Previous"</a> })}
                    <span class="page-of">"Page " {page.page} " of " {page.pages}</span>
                    {next.map(|href| view! { <a rel="next" href=href>"Next →"</a> })}
                </nav>
            </section>
        </div>
    }
}

/// Price band label in the listing's currency symbol, when the page has products to tell it.
fn price_label(band: PriceBand, page: &ListingPage) -> String {
    let symbol = page
        .products
        .first()
        .map(|p| {
            p.price
                .to_string()
                .chars()
                .take_while(|c| !c.is_ascii_digit())
                .collect::<String>()
        })
        .unwrap_or_default();
    match band {
        PriceBand::Under25 => format!("Under {symbol}25"),
        PriceBand::From25To50 => format!("{symbol}25 to {symbol}50"),
        PriceBand::From50To100 => format!("{symbol}50 to {symbol}100"),
        PriceBand::From100To200 => format!("{symbol}100 to {symbol}200"),
        PriceBand::Over200 => format!("{symbol}200 and up"),
    }
}
