//! Personal parts of pages, filled in the browser after hydration: the server-rendered page
//! stays the same for everyone (so shared caches can keep it), then these ask the edge, with
//! the shopper's behaviour cookie, what to show.

use crate::data::{
    personalization_state, recently_viewed, recommended, record_click, set_personalization,
};
use edge_core::ProductSummary;
use leptos::prelude::*;

/// "Recently viewed": the shopper's last products, newest first; nothing when there are none.
#[component]
pub fn RecentlyViewed() -> impl IntoView {
    let recent = LocalResource::new(recently_viewed);
    move || {
        let products = recent.get().and_then(Result::ok).unwrap_or_default();
        (!products.is_empty()).then(|| {
            view! {
                <section class="recent" data-testid="recently-viewed">
                    <h2>"Recently viewed"</h2>
                    {strip(products)}
                </section>
            }
        })
    }
}

/// A horizontal strip of product links.
pub fn strip(products: Vec<ProductSummary>) -> impl IntoView {
    let items = products
        .into_iter()
        .map(|p| {
            let price = super::listing::price_tag(&p);
            view! {
                <li class="strip-item" data-sku=p.sku.to_string()>
                    <a href=format!("/p/{}", p.sku)>
                        <img src=p.image alt="" width="120" height="90" loading="lazy" />
                        <span class="title">{p.title}</span>
                        {price}
                    </a>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="strip">{items}</ul> }
}

/// "Recommended for you" from the shopper's recent behaviour (searched in the vector index at
/// the edge), or "Popular right now" (best-sellers) without it.
#[component]
pub fn Recommended() -> impl IntoView {
    let suggestions = LocalResource::new(recommended);
    move || {
        let suggestions = suggestions.get().and_then(Result::ok)?;
        (!suggestions.products.is_empty()).then(|| {
            let (title, source) =
                if suggestions.personal { ("Recommended for you", "personal") } else { ("Popular right now", "best_sellers") };
            let arm = suggestions.arm.clone();
            // A click on a personal suggestion counts for its experiment arm.
            let clicked = move |ev: leptos::ev::MouseEvent| {
                let Some(arm) = arm.clone() else { return };
                let sku = event_target_sku(&ev);
                if let Some(sku) = sku {
                    leptos::task::spawn_local(async move {
                        let _ = record_click(sku, arm).await;
                    });
                }
            };
            view! {
                <section class="recommended" data-testid="recommended" data-source=source data-arm=suggestions.arm.clone() on:click=clicked>
                    <h2>{title}</h2>
                    {strip(suggestions.products)}
                </section>
            }
        })
    }
}

/// The SKU of the strip item an event happened in (`data-sku` of the nearest `li`).
fn event_target_sku(ev: &leptos::ev::MouseEvent) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let target = ev.target()?.dyn_into::<web_sys::Element>().ok()?;
        target
            .closest("li[data-sku]")
            .ok()??
            .get_attribute("data-sku")
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}

/// The footer's switch for personalization (absent when the shop has it off).
#[component]
pub fn PersonalizationToggle() -> impl IntoView {
    let state = LocalResource::new(personalization_state);
    let toggle = Action::new(move |enabled: &bool| {
        let enabled = *enabled;
        async move { set_personalization(enabled).await }
    });
    Effect::new(move |_| {
        if toggle.value().get().is_some() {
            state.refetch();
        }
    });
    move || {
        match state.get().and_then(Result::ok).flatten() {
        Some(on) => view! {
            <span class="personalization" data-testid="personalization" data-on=on.to_string()>
                {if on { "Recommendations use what you viewed here. " } else { "Personalization is off. " }}
                <button class="link" on:click=move |_| { toggle.dispatch(!on); }>
                    {if on { "Turn off" } else { "Turn on" }}
                </button>
            </span>
        }
        .into_any(),
        None => ().into_any(),
    }
    }
}
