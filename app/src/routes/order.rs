//! The order page: what was bought and where the order is, updated live as the shop moves it
//! along (the order's Durable Object pushes each status change over a WebSocket).

use super::pricing::{pricing_summary, Pricing};
use crate::data::order_detail;
use edge_core::order::{Order, OrderStatus};
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

#[component]
pub fn OrderPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let order = Resource::new(id, order_detail);
    view! {
        // Order pages are private to whoever has the link: keep them out of search engines.
        <Meta name="robots" content="noindex" />
        <Suspense fallback=|| view! { <p class="loading">"Loading your order…"</p> }>
            {move || Suspend::new(async move {
                match order.await {
                    Ok(Some(order)) => {
                        super::private();
                        view! { <OrderView order /> }.into_any()
                    }
                    Ok(None) => {
                        super::set_status(404);
                        view! {
                            <Title text="Order not found" />
                            <section class="notice"><h1>"Order not found"</h1><p>"Check the link in your confirmation."</p></section>
                        }
                        .into_any()
                    }
                    Err(_) => {
                        super::degraded();
                        view! { <Title text="Temporarily unavailable" /><p class="notice">"Your order cannot be shown right now. Please try again shortly."</p> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// What a live message carries (see the worker's `live::order_message`).
#[derive(serde::Deserialize)]
struct LiveStatus {
    status: OrderStatus,
}

#[component]
fn OrderView(order: Order) -> impl IntoView {
    let status = RwSignal::new(order.status);
    let history = RwSignal::new(order.history.clone());
    crate::live::watch(format!("/api/orders/{}/live", order.id), move |text| {
        if let Ok(live) = serde_json::from_str::<LiveStatus>(&text) {
            status.set(live.status);
        }
        #[derive(serde::Deserialize)]
        struct LiveHistory {
            history: Vec<edge_core::order::StatusChange>,
        }
        if let Ok(live) = serde_json::from_str::<LiveHistory>(&text) {
            history.set(live.history);
        }
    });
    let lines = order
        .lines
        .iter()
        .map(|line| {
            view! {
                <li class="order-line" data-sku=line.sku.to_string()>
                    <span class="qty">{line.qty}" × "</span>
                    <a href=format!("/p/{}", line.sku)>{line.title.clone()}</a>
                    <span class="unit-price">{line.unit_price.to_string()}</span>
                </li>
            }
        })
        .collect_view();
    // What the shop's pricing recorded: each promotion's saving, shipping, and the subtotal.
    let pricing = order.pricing.as_ref().map(|pricing| {
        pricing_summary(
            "order",
            Pricing {
                subtotal: &pricing.subtotal,
                discount: &pricing.discount,
                shipping: &pricing.shipping,
                applied: &pricing.promotions,
            },
        )
    });
    view! {
        <Title text=format!("Order {}", order.id) />
        <section class="order" data-order-id=order.id.to_string()>
            <h1>"Thank you for your order"</h1>
            <p class="order-id">"Order " <code>{order.id.to_string()}</code></p>
            <p class="order-status">"Status: "
                <strong data-testid="order-status" data-status=move || status.get().as_str()>{move || status.get().label()}</strong>
            </p>
            <ul class="order-lines">{lines}</ul>
            {pricing}
            <p class="order-total">"Total " <strong data-testid="order-total">{order.total.to_string()}</strong></p>
            <p class="order-email">"Confirmation sent to " {order.email.clone()}</p>
            <ol class="order-history">
                {move || history.get().into_iter().map(|change| view! { <li>{change.status.label()}</li> }).collect_view()}
            </ol>
        </section>
    }
}
