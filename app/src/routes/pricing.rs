//! How promotions and shipping make up a total: on the cart page (what the cart would cost
//! now) and the order page (what the order recorded).

use edge_core::promo::AppliedPromotion;
use edge_core::Money;
use leptos::prelude::*;

/// What a pricing summary shows.
pub struct Pricing<'a> {
    pub subtotal: &'a Money,
    /// Taken off the lines.
    pub discount: &'a Money,
    /// The shipping charge after promotions.
    pub shipping: &'a Money,
    /// Each promotion applied, with its saving.
    pub applied: &'a [AppliedPromotion],
}

/// Subtotal, savings and shipping, then each promotion's saving. `of` ("cart", "order")
/// prefixes the test ids: `{of}-summary`, `{of}-discount`, `{of}-shipping`, `{of}-saving`.
pub fn pricing_summary(of: &'static str, pricing: Pricing<'_>) -> impl IntoView {
    let savings = pricing
        .applied
        .iter()
        .map(|a| {
            let code = a
                .code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            view! {
                <li class="saving" data-testid=format!("{of}-saving") data-promotion=a.id.clone()>
                    {a.title.clone()}{code} " −" {a.saving.to_string()}
                </li>
            }
        })
        .collect_view();
    let shipping = if pricing.shipping.minor == 0 {
        "Free".to_owned()
    } else {
        pricing.shipping.to_string()
    };
    view! {
        <dl class="pricing-summary" data-testid=format!("{of}-summary")>
            <dt>"Subtotal"</dt><dd>{pricing.subtotal.to_string()}</dd>
            <dt>"Savings"</dt><dd data-testid=format!("{of}-discount")>{format!("−{}", pricing.discount)}</dd>
            <dt>"Shipping"</dt><dd data-testid=format!("{of}-shipping")>{shipping}</dd>
        </dl>
        <ul class="savings">{savings}</ul>
    }
}
