//! The cart page and the checkout form.
//!
//! The cart lives in the browser (see [`crate::cart`]); this page prices it from the catalog and
//! places the order through the `place_order` server function. The cart's lines are held for
//! the shopper under the checkout's idempotency key while they look at the page (the page says
//! until when); the checkout under that key sells exactly those holds. The key is kept until
//! the order is placed or definitely refused, so pressing the button again after a lost answer
//! (or reloading) finds the same order instead of buying twice; a changed cart gets a new key
//! and gives the old holds back.
//!
//! The shop prices the cart ([`price_cart`]) with its automatic promotions and the codes the
//! shopper enters, and the page shows the saving line by line; checkout prices it again on the
//! server, so what the page shows is never what is charged by itself.
//!
//! The edge's protection may refuse a hold or a checkout before its server function runs
//! (hoarding caps, rate limits, bot score); the call then ends in
//! [`CartCallError::Refused`] and the page shows the protection's message (on the hold notice,
//! or under the checkout button), not a failed call.

use super::pricing::{pricing_summary, Pricing};
use crate::cart::{use_cart, CartLine};
use crate::data::{
    cart_items, hold_cart, place_order, release_cart, CartCallError, CartHoldView, CartItem,
    PlaceOrderResult,
};
use edge_core::promo::PricedCart;
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
    // The codes entered, and the cart priced by the shop with them whenever it or they change.
    // Owned here, not by the cart view: placing the order empties the cart, which disposes the
    // view while this resource still runs once more.
    let codes = RwSignal::new(Vec::<String>::new());
    let pricing = LocalResource::new(move || {
        let (lines, codes) = (cart.lines(), codes.get());
        async move {
            if lines.is_empty() {
                return None;
            }
            price_cart(to_lines(&lines), codes.join(",")).await.ok()
        }
    });
    view! {
        <Title text="Your cart" />
        <section class="cart-page">
            <h1>"Your cart"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading your cart…"</p> }>
                {move || Suspend::new(async move {
                    match items.await {
                        Ok(items) if !cart.lines().is_empty() => view! { <CartView items codes pricing /> }.into_any(),
                        Ok(_) => view! { <p class="empty-cart" data-testid="empty-cart">"Your cart is empty. " <a href="/">"Keep shopping"</a></p> }.into_any(),
                        Err(_) => view! { <p class="notice">"Your cart cannot be shown right now. Please try again shortly."</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The cart priced by the shop: the catalog's prices, the automatic promotions and the codes
/// entered (comma-separated), with each refused code's reason.
#[server(prefix = "/_sfn", endpoint = "price-cart")]
pub async fn price_cart(lines: Vec<Line>, codes: String) -> Result<PricedCart, ServerFnError> {
    let shop = use_context::<edge_core::Shop>()
        .ok_or_else(|| ServerFnError::new("shop context missing"))?;
    let codes: Vec<String> = codes
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let now = shop.clock.now_ms();
    edge_core::checkout::preview_cart(
        shop.catalog.as_ref(),
        shop.stock.as_ref(),
        &lines,
        &codes,
        now,
    )
    .await
    .map_err(|e| ServerFnError::new(e.to_string()))
}

fn line_total(item: &CartItem, qty: u32) -> Money {
    Money::new(
        item.unit_price.minor.saturating_mul(u64::from(qty)),
        &item.unit_price.currency,
    )
}

#[component]
fn CartView(
    items: Vec<CartItem>,
    codes: RwSignal<Vec<String>>,
    pricing: LocalResource<Option<PricedCart>>,
) -> impl IntoView {
    let cart = use_cart();
    // Owned by the closures, not a `StoredValue`: a quantity change re-renders the page's
    // `Suspend` (it reads the cart), which disposes this view's owner while its total may still
    // run once more; a disposed value read there panics and leaves the page's tasks broken.
    let items = std::sync::Arc::new(items);
    let qty_of = move |sku: &str| cart.units_of(sku);
    // The priced cart, while it matches the cart's quantities (a stale one is not shown).
    let priced = move || {
        // `try_`: the order being placed empties the cart and takes this page away; a read
        // that comes after must find nothing, not panic.
        pricing
            .try_get()
            .flatten()
            .flatten()
            .filter(|p: &PricedCart| p.lines.iter().all(|l| l.qty == qty_of(l.sku.as_str())))
    };
    let total_items = items.clone();
    let total = move || {
        if let Some(priced) = priced() {
            return priced.total.to_string();
        }
        let currency = total_items
            .first()
            .map(|i| i.unit_price.currency.clone())
            .unwrap_or_else(|| "USD".into());
        let minor = total_items
            .iter()
            .map(|i| line_total(i, qty_of(&i.sku)).minor)
            .sum();
        Money::new(minor, &currency).to_string()
    };
    let rows = {
        items
            .iter()
            .cloned()
            .map(|item| {
                let sku = item.sku.clone();
                let (less, more, remove) = (sku.clone(), sku.clone(), sku.clone());
                let shown = item.clone();
                let row_sku = sku.clone();
                let saving_sku = sku.clone();
                let saving = move || {
                    let priced = priced()?;
                    let line = priced.lines.iter().find(|l| l.sku.as_str() == saving_sku)?;
                    (line.discount_minor > 0).then(|| format!("−{}", Money::new(line.discount_minor, &priced.currency)))
                };
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
                        <td class="line-saving" data-testid="line-saving">{saving}</td>
                        <td><button class="remove" on:click=move |_| cart.set_qty(&remove, 0)>"Remove"</button></td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <table class="cart-lines">
            <tbody>{rows}</tbody>
        </table>
        <CartSummary priced=Signal::derive(priced) codes />
        <p class="cart-total">"Total " <strong data-testid="cart-total">{total}</strong></p>
        <CheckoutForm codes pricing />
    }
}

/// Subtotal, each promotion's saving, shipping, and the discount code form with each refused
/// code's reason.
#[component]
fn CartSummary(priced: Signal<Option<PricedCart>>, codes: RwSignal<Vec<String>>) -> impl IntoView {
    let entered = RwSignal::new(String::new());
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let code = edge_core::promo::normalize_code(&entered.get_untracked());
        if !code.is_empty() && !codes.get_untracked().contains(&code) {
            codes.update(|c| c.push(code));
        }
        entered.set(String::new());
    };
    let summary = move || {
        let priced = priced.try_get().flatten()?;
        Some(pricing_summary(
            "cart",
            Pricing {
                subtotal: &priced.subtotal,
                discount: &priced.discount,
                shipping: &priced.shipping,
                applied: &priced.applied,
            },
        ))
    };
    let refused = move || {
        let priced = priced.try_get().flatten()?;
        let items = priced
            .rejected_codes
            .iter()
            .map(|r| view! { <li class="code-refused" data-testid="code-refused">{r.code.clone()} ": " {r.refusal.to_string()}</li> })
            .collect_view();
        Some(view! { <ul class="codes-refused" role="alert">{items}</ul> })
    };
    let chips = move || {
        codes
            .get()
            .into_iter()
            .map(|code| {
                let remove = code.clone();
                view! {
                    <li class="code" data-testid="code">{code.clone()}
                        <button type="button" class="remove-code" aria-label=format!("Remove code {code}")
                            on:click=move |_| codes.update(|c| c.retain(|x| x != &remove))>"×"</button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        {summary}
        <form class="promo-code" on:submit=apply>
            <label>"Discount code"
                <input type="text" name="code" autocomplete="off" maxlength="32" data-testid="code-input"
                    prop:value=move || entered.get() on:input=move |ev| entered.set(event_target_value(&ev)) />
            </label>
            <button type="submit" class="apply-code">"Apply"</button>
        </form>
        <ul class="codes">{chips}</ul>
        {refused}
    }
}

fn to_lines(lines: &[CartLine]) -> Vec<Line> {
    lines
        .iter()
        .filter_map(|l| {
            Some(Line {
                sku: Sku::parse(&l.sku).ok()?,
                qty: l.qty,
            })
        })
        .collect()
}

/// "12:34:56" in the shopper's time zone (UTC on the server, which never shows it).
fn clock_time(ms: u64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        String::from(date.to_locale_time_string("en-GB"))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let s = ms / 1000;
        format!(
            "{:02}:{:02}:{:02} UTC",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60
        )
    }
}

#[component]
fn CheckoutForm(
    codes: RwSignal<Vec<String>>,
    pricing: LocalResource<Option<PricedCart>>,
) -> impl IntoView {
    let cart = use_cart();
    let email = RwSignal::new(String::new());
    let token = RwSignal::new(TEST_CARDS[0].0.to_string());
    let message = RwSignal::new(None::<String>);
    // Bumped when a checkout ends without an order: its key is spent, hold again under a new one.
    let generation = RwSignal::new(0u32);
    let hold = LocalResource::new(move || {
        let lines = cart.lines();
        generation.track();
        async move {
            if lines.is_empty() {
                return None;
            }
            let key = checkout_key::for_cart(&lines);
            if let Some((old_key, old_lines)) = key.replaced {
                let _ = release_cart(to_lines(&old_lines), old_key).await;
            }
            let held = match hold_cart(to_lines(&lines), key.key).await {
                Ok(CartHoldView::Spent) => {
                    checkout_key::forget();
                    hold_cart(to_lines(&lines), checkout_key::for_cart(&lines).key).await
                }
                other => other,
            };
            match held {
                Ok(view) => Some(view),
                // The edge's protection refused to hold (too many units or holds, too many
                // tries): the shopper learns why and what to do, as the shop said it.
                Err(CartCallError::Refused { message, .. }) => Some(CartHoldView::Refused {
                    message: format!("We cannot hold these items for you: {message}."),
                }),
                Err(CartCallError::Failed(_)) => None,
            }
        }
    });
    let place = Action::new(
        move |(lines, email, token, codes): &(Vec<CartLine>, String, String, Vec<String>)| {
            let key = checkout_key::for_cart(lines).key;
            let lines = to_lines(lines);
            let (email, token, codes) = (email.clone(), token.clone(), codes.join(","));
            async move { place_order(lines, email, token, key, codes).await }
        },
    );
    Effect::new(move |_| {
        match place.value().get() {
        Some(Ok(PlaceOrderResult::Placed { order_id })) => {
            checkout_key::forget();
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/orders/{order_id}"), Default::default());
            // Emptied once the order page has taken over: emptying the cart re-renders (and
            // disposes) this form, which must not happen while this effect still runs.
            set_timeout(move || cart.clear(), std::time::Duration::ZERO);
        }
        Some(Ok(PlaceOrderResult::Refused { message: text, .. })) => {
            // A definite answer: nothing is held any more; the next attempt is a new checkout.
            checkout_key::forget();
            generation.update(|g| *g += 1);
            message.set(Some(text));
        }
        // Refused at the edge before the checkout ran: nothing was held or charged under the
        // key, so it stays for a later try.
        Some(Err(CartCallError::Refused { message: text, .. })) => {
            message.set(Some(format!("Your order was not placed: {text}. Nothing was charged.")))
        }
        Some(Err(CartCallError::Failed(_))) => {
            message.set(Some("We could not reach the shop. Please press the button again: you will not be charged twice.".into()))
        }
        None => {}
    }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        message.set(None);
        // Codes the shop already said do not apply are left out (the page shows why); the
        // server prices the order again and refuses any code that no longer applies.
        let refused: Vec<String> = pricing
            .try_get_untracked()
            .flatten()
            .flatten()
            .map(|p| p.rejected_codes.into_iter().map(|r| r.code).collect())
            .unwrap_or_default();
        let codes: Vec<String> = codes
            .get_untracked()
            .into_iter()
            .filter(|c| !refused.contains(&edge_core::promo::normalize_code(c)))
            .collect();
        place.dispatch((
            cart.lines(),
            email.get_untracked(),
            token.get_untracked(),
            codes,
        ));
    };
    let pending = place.pending();
    let pending = move || pending.try_get().unwrap_or(false);
    let hold_notice = move || match hold.try_get().flatten().flatten() {
        Some(CartHoldView::Held { expires_at_ms }) => view! {
            <p class="hold" data-testid="hold-expiry" data-expires-at=expires_at_ms.to_string()>
                "Your items are held for you until " <strong>{clock_time(expires_at_ms)}</strong>
            </p>
        }
        .into_any(),
        Some(CartHoldView::Refused { message }) => {
            view! { <p class="hold refused" data-testid="hold-refused">{message}</p> }.into_any()
        }
        _ => ().into_any(),
    };
    let cards = TEST_CARDS
        .map(|(value, label)| view! { <option value=value>{label}</option> })
        .to_vec();
    view! {
        {hold_notice}
        <form class="checkout" on:submit=submit>
            <label>"E-mail"
                <input type="email" name="email" required=true autocomplete="email"
                    prop:value=move || email.get() on:input=move |ev| email.set(event_target_value(&ev)) />
            </label>
            <label>"Card"
                <select name="payment_token" on:change=move |ev| token.set(event_target_value(&ev))>{cards}</select>
            </label>
            <button type="submit" class="place-order" disabled=move || pending() || cart.units() == 0>
                {move || if pending() { "Placing order…" } else { "Place order" }}
            </button>
            <p class="checkout-message" role="alert" data-testid="checkout-message">{move || message.try_get().flatten()}</p>
        </form>
    }
}

/// The idempotency key of the cart's checkout, kept in session storage with the lines it was
/// made for: the same lines reuse it (their holds, a retried submission); other lines get a new
/// one, and the caller gives back the old one's holds.
mod checkout_key {
    use crate::cart::CartLine;

    #[cfg(feature = "hydrate")]
    const STORAGE_KEY: &str = "edge-shop-checkout-key";

    pub struct CartKey {
        pub key: String,
        /// The key (and its lines) this one replaces, when the cart changed.
        pub replaced: Option<(String, Vec<CartLine>)>,
    }

    #[cfg(feature = "hydrate")]
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Stored {
        key: String,
        lines: Vec<CartLine>,
    }

    pub fn for_cart(lines: &[CartLine]) -> CartKey {
        #[cfg(feature = "hydrate")]
        {
            let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
            let stored: Option<Stored> = storage
                .as_ref()
                .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
                .and_then(|text| serde_json::from_str(&text).ok());
            let replaced = match stored {
                Some(stored) if stored.lines == lines => {
                    return CartKey {
                        key: stored.key,
                        replaced: None,
                    }
                }
                Some(stored) => Some((stored.key, stored.lines)),
                None => None,
            };
            let mut bytes = [0u8; 16];
            let key = match getrandom_03::fill(&mut bytes) {
                Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                Err(_) => format!("{:x}", js_sys::Date::now() as u64),
            };
            let fresh = Stored {
                key: key.clone(),
                lines: lines.to_vec(),
            };
            if let (Some(storage), Ok(text)) = (storage, serde_json::to_string(&fresh)) {
                let _ = storage.set_item(STORAGE_KEY, &text);
            }
            CartKey { key, replaced }
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let lines: Vec<String> = lines
                .iter()
                .map(|l| format!("{}x{}", l.sku, l.qty))
                .collect();
            CartKey {
                key: lines.join(","),
                replaced: None,
            }
        }
    }

    pub fn forget() {
        #[cfg(feature = "hydrate")]
        if let Some(storage) = web_sys::window().and_then(|w| w.session_storage().ok().flatten()) {
            let _ = storage.remove_item(STORAGE_KEY);
        }
    }
}
