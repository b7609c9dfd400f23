//! The cart page and the checkout form.
//!
//! The cart lives in the browser (see [`crate::cart`]); this page prices it from the catalog and
//! places the order through the `place_order` server function. The idempotency key of a
//! submission is kept until the order is placed or definitely refused, so pressing the button
//! again after a lost answer (or reloading) finds the same order instead of buying twice.

use crate::cart::{use_cart, CartLine};
use crate::data::{cart_items, place_order, CartItem, PlaceOrderResult};
use edge_core::stock::Line;
use edge_core::{Money, Sku};
use leptos::prelude::*;
use leptos_meta::Title;

/// The test-mode cards a shopper can pick (the gateway's test tokens).
const TEST_CARDS: [(&str, &str); 3] = [
    ("tok_visa", "Visa (test): succeeds"),
    ("tok_declined", "Card (test): declined"),
    ("tok_timeout", "Card (test): gateway timeout"),
];

#[component]
pub fn CartPage() -> impl IntoView {
    let cart = use_cart();
    // The cart is only known after hydration; the server renders the empty state.
    let skus = Memo::new(move |_| cart.lines().into_iter().map(|l| l.sku).collect::<Vec<_>>());
    let items = Resource::new(move || skus.get(), cart_items);
    view! {
        <Title text="Your cart" />
        <section class="cart-page">
            <h1>"Your cart"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading your cart…"</p> }>
                {move || Suspend::new(async move {
                    match items.await {
                        Ok(items) if !cart.lines().is_empty() => view! { <CartView items /> }.into_any(),
                        Ok(_) => view! { <p class="empty-cart" data-testid="empty-cart">"Your cart is empty. " <a href="/">"Keep shopping"</a></p> }.into_any(),
                        Err(_) => view! { <p class="notice">"Your cart cannot be shown right now. Please try again shortly."</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn line_total(item: &CartItem, qty: u32) -> Money {
    Money::new(item.unit_price.minor.saturating_mul(u64::from(qty)), &item.unit_price.currency)
}

#[component]
fn CartView(items: Vec<CartItem>) -> impl IntoView {
    let cart = use_cart();
    let items = StoredValue::new(items);
    let qty_of = move |sku: &str| cart.units_of(sku);
    let total = move || {
        items.with_value(|items| {
            let currency = items.first().map(|i| i.unit_price.currency.clone()).unwrap_or_else(|| "USD".into());
            let minor = items.iter().map(|i| line_total(i, qty_of(&i.sku)).minor).sum();
            Money::new(minor, &currency).to_string()
        })
    };
    let rows = items.with_value(|items| {
        items
            .iter()
            .cloned()
            .map(|item| {
                let sku = item.sku.clone();
                let (less, more, remove) = (sku.clone(), sku.clone(), sku.clone());
                let shown = item.clone();
                let row_sku = sku.clone();
                view! {
                    <tr class="cart-line" data-sku=sku.clone()>
                        <td><img src=item.image.clone() alt="" width="64" height="48" /></td>
                        <td class="title"><a href=format!("/p/{sku}")>{item.title.clone()}</a></td>
                        <td class="unit-price">{item.unit_price.to_string()}</td>
                        <td class="qty">
                            <button class="less" aria-label="One less" on:click=move |_| cart.set_qty(&less, qty_of(&less).saturating_sub(1))>"−"</button>
                            <span class="qty-value">{move || qty_of(&row_sku)}</span>
                            <button class="more" aria-label="One more" on:click=move |_| cart.set_qty(&more, qty_of(&more) + 1)>"+"</button>
                        </td>
                        <td class="line-total">{move || line_total(&shown, qty_of(&shown.sku)).to_string()}</td>
                        <td><button class="remove" on:click=move |_| cart.set_qty(&remove, 0)>"Remove"</button></td>
                    </tr>
                }
            })
            .collect_view()
    });
    view! {
        <table class="cart-lines">
            <tbody>{rows}</tbody>
        </table>
        <p class="cart-total">"Total " <strong data-testid="cart-total">{total}</strong></p>
        <CheckoutForm />
    }
}

#[component]
fn CheckoutForm() -> impl IntoView {
    let cart = use_cart();
    let email = RwSignal::new(String::new());
    let token = RwSignal::new(TEST_CARDS[0].0.to_string());
    let message = RwSignal::new(None::<String>);
    let place = Action::new(move |(lines, email, token): &(Vec<CartLine>, String, String)| {
        let key = checkout_key::for_cart(lines, email, token);
        let lines: Vec<Line> =
            lines.iter().filter_map(|l| Some(Line { sku: Sku::parse(&l.sku).ok()?, qty: l.qty })).collect();
        let (email, token) = (email.clone(), token.clone());
        async move { place_order(lines, email, token, key).await }
    });
    Effect::new(move |_| match place.value().get() {
        Some(Ok(PlaceOrderResult::Placed { order_id })) => {
            checkout_key::forget();
            cart.clear();
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/orders/{order_id}"), Default::default());
        }
        Some(Ok(PlaceOrderResult::Refused { message: text, .. })) => {
            // A definite answer: the next attempt is a new checkout.
            checkout_key::forget();
            message.set(Some(text));
        }
        Some(Err(_)) => message.set(Some("We could not reach the shop. Please press the button again: you will not be charged twice.".into())),
        None => {}
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        message.set(None);
        place.dispatch((cart.lines(), email.get_untracked(), token.get_untracked()));
    };
    let cards = TEST_CARDS.map(|(value, label)| view! { <option value=value>{label}</option> }).to_vec();
    view! {
        <form class="checkout" on:submit=submit>
            <label>"E-mail"
                <input type="email" name="email" required=true autocomplete="email"
                    prop:value=move || email.get() on:input=move |ev| email.set(event_target_value(&ev)) />
            </label>
            <label>"Card"
                <select name="payment_token" on:change=move |ev| token.set(event_target_value(&ev))>{cards}</select>
            </label>
            <button type="submit" class="place-order" disabled=move || place.pending().get() || cart.units() == 0>
                {move || if place.pending().get() { "Placing order…" } else { "Place order" }}
            </button>
            <p class="checkout-message" role="alert" data-testid="checkout-message">{move || message.get()}</p>
        </form>
    }
}

/// The idempotency key of the checkout in progress, kept in session storage with what it was
/// made for: the same cart, e-mail and card reuse it; anything else gets a new one.
mod checkout_key {
    use crate::cart::CartLine;

    #[cfg(feature = "hydrate")]
    const STORAGE_KEY: &str = "edge-shop-checkout-key";

    fn fingerprint(lines: &[CartLine], email: &str, token: &str) -> String {
        let lines: Vec<String> = lines.iter().map(|l| format!("{}x{}", l.sku, l.qty)).collect();
        format!("{}|{email}|{token}", lines.join(","))
    }

    pub fn for_cart(lines: &[CartLine], email: &str, token: &str) -> String {
        let print = fingerprint(lines, email, token);
        #[cfg(feature = "hydrate")]
        {
            let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
            if let Some(stored) = storage.as_ref().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten()) {
                if let Some((key, for_print)) = stored.split_once(' ') {
                    if for_print == print {
                        return key.to_owned();
                    }
                }
            }
            let mut bytes = [0u8; 16];
            let key = match getrandom_03::fill(&mut bytes) {
                Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                Err(_) => format!("{:x}", js_sys::Date::now() as u64),
            };
            if let Some(storage) = storage {
                let _ = storage.set_item(STORAGE_KEY, &format!("{key} {print}"));
            }
            key
        }
        #[cfg(not(feature = "hydrate"))]
        print
    }

    pub fn forget() {
        #[cfg(feature = "hydrate")]
        if let Some(storage) = web_sys::window().and_then(|w| w.session_storage().ok().flatten()) {
            let _ = storage.remove_item(STORAGE_KEY);
        }
    }
}
