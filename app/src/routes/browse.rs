//! The three listing pages: home (every product), a category, and search results.

use super::listing::{listing_params, ListingView};
use crate::data::{browse, list_categories, BrowseError};
use edge_core::listing::ListingQuery;
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;
use std::collections::BTreeMap;

/// Loads and renders one listing. `scope` adds what the URL path implies (the category).
#[component]
fn Browse(base: Signal<String>, scope: Signal<Vec<(String, String)>>) -> impl IntoView {
    let params = listing_params();
    let request = move || {
        let mut all: BTreeMap<String, String> = params.get();
        all.extend(scope.get());
        all
    };
    let page = Resource::new(request, browse);
    // A transition keeps the current listing on screen while the next one (another facet, sort
    // or page) loads, instead of flashing a placeholder.
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading products…"</p> }>
            {move || Suspend::new(async move {
                let params = params.get_untracked();
                let query = ListingQuery::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap_or_default();
                let fixed: Vec<(String, String)> = params.get("q").map(|q| vec![("q".to_string(), q.clone())]).unwrap_or_default();
                match page.await {
                    Ok(Ok(page)) => view! { <ListingView base=base.get_untracked() fixed query page /> }.into_any(),
                    Ok(Err(BrowseError::BadQuery(message))) => {
                        super::set_status(400);
                        view! { <p class="notice">"This listing address is not valid: " {message}</p> }.into_any()
                    }
                    Ok(Err(BrowseError::NoSuchCategory)) => {
                        super::set_status(404);
                        view! {
                            <Title text="Category not found" />
                            <section class="notice"><h1>"Category not found"</h1><p><a href="/">"See all products"</a></p></section>
                        }
                        .into_any()
                    }
                    Err(_) => {
                        super::degraded();
                        view! { <p class="notice">"Products are unavailable right now. Please try again shortly."</p> }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// Links to every category, with counts.
#[component]
pub fn CategoryNav() -> impl IntoView {
    let categories = Resource::new(|| (), |_| list_categories());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                categories.await.ok().map(|list| {
                    view! {
                        <nav class="categories" aria-label="Categories">
                            {list.into_iter().map(|c| {
                                let href = format!("/c/{}", c.slug);
                                view! { <a href=href>{c.name} " " <span class="count">{c.products}</span></a> }
                            }).collect_view()}
                        </nav>
                    }
                })
            })}
        </Suspense>
    }
}

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="All products" />
        <Meta name="description" content="Everything in the Edge Shop, served from the nearest edge." />
        <super::seo::Canonical path="/".into() />
        <h1>"All products"</h1>
        <super::Recommended />
        <super::RecentlyViewed />
        <Browse base=Signal::derive(|| "/".to_string()) scope=Signal::derive(Vec::new) />
    }
}

#[component]
pub fn CategoryPage() -> impl IntoView {
    let params = use_params_map();
    let slug = Signal::derive(move || params.read().get("slug").unwrap_or_default());
    let base = Signal::derive(move || format!("/c/{}", slug.get()));
    let scope = Signal::derive(move || vec![("category".to_string(), slug.get())]);
    let name = move || {
        let slug = slug.get();
        let mut chars = slug.chars();
        chars
            .next()
            .map(|c| {
                c.to_uppercase()
                    .chain(chars)
                    .collect::<String>()
                    .replace('-', " ")
            })
            .unwrap_or_default()
    };
    view! {
        <Title text=name />
        <Meta name="description" content=move || format!("{} at the Edge Shop.", name()) />
        <super::seo::Canonical path=base.get_untracked() />
        <h1>{name}</h1>
        <Browse base scope />
    }
}

#[component]
pub fn SearchPage() -> impl IntoView {
    let params = listing_params();
    let q = move || params.read().get("q").cloned().unwrap_or_default();
    view! {
        <Title text=move || format!("Search: {}", q()) />
        <Meta name="robots" content="noindex" />
        <h1>"Search"</h1>
        <form class="search-form" action="/search" method="get" role="search">
            <input type="search" name="q" value=q placeholder="Search products" aria-label="Search products" />
            <button type="submit">"Search"</button>
        </form>
        <Browse base=Signal::derive(|| "/search".to_string()) scope=Signal::derive(Vec::new) />
    }
}
