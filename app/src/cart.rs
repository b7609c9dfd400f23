//! The cart: lines kept in the browser's local storage and a badge in the header.
//!
//! The server renders an empty cart (it has no cart state); after hydration the stored cart is
//! loaded, so the badge matches what the shopper added on earlier pages.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Distinct SKUs a cart may hold; bounds what local storage keeps.
pub const CART_LINES_MAX: usize = 50;
/// Units of one SKU a cart may hold.
pub const CART_LINE_QTY_MAX: u32 = 99;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub qty: u32,
}

/// Adds `qty` of `sku` to `lines` within the cart's bounds; returns whether anything was added.
pub fn add_line(lines: &mut Vec<CartLine>, sku: &str, qty: u32) -> bool {
    if let Some(line) = lines.iter_mut().find(|l| l.sku == sku) {
        let new_qty = (line.qty + qty).min(CART_LINE_QTY_MAX);
        let added = new_qty != line.qty;
        line.qty = new_qty;
        return added;
    }
    if lines.len() >= CART_LINES_MAX || qty == 0 {
        return false;
    }
    lines.push(CartLine {
        sku: sku.to_owned(),
        qty: qty.min(CART_LINE_QTY_MAX),
    });
    true
}

/// The shopper's cart, shared through context.
#[derive(Clone, Copy)]
pub struct Cart {
    lines: RwSignal<Vec<CartLine>>,
}

impl Cart {
    /// Creates the cart, provides it as context, and loads the stored cart once hydrated.
    pub fn provide() -> Self {
        let cart = Cart {
            lines: RwSignal::new(Vec::new()),
        };
        provide_context(cart);
        Effect::new(move |_| {
            if let Some(stored) = storage::load() {
                cart.lines.set(stored);
            }
        });
        cart
    }

    pub fn units(&self) -> u32 {
        self.lines.with(|lines| lines.iter().map(|l| l.qty).sum())
    }

    pub fn units_of(&self, sku: &str) -> u32 {
        self.lines
            .with(|lines| lines.iter().find(|l| l.sku == sku).map_or(0, |l| l.qty))
    }

    pub fn lines(&self) -> Vec<CartLine> {
        self.lines.get()
    }

    /// Sets a line's quantity (0 removes it).
    pub fn set_qty(&self, sku: &str, qty: u32) {
        self.lines.update(|lines| {
            if qty == 0 {
                lines.retain(|l| l.sku != sku);
            } else if let Some(line) = lines.iter_mut().find(|l| l.sku == sku) {
                line.qty = qty.min(CART_LINE_QTY_MAX);
            }
        });
        self.lines.with_untracked(|lines| storage::save(lines));
    }

    pub fn clear(&self) {
        self.lines.set(Vec::new());
        storage::save(&[]);
    }

    pub fn add(&self, sku: &str, qty: u32) {
        let mut added = false;
        self.lines.update(|lines| added = add_line(lines, sku, qty));
        if added {
            self.lines.with_untracked(|lines| storage::save(lines));
        }
    }
}

pub fn use_cart() -> Cart {
    expect_context::<Cart>()
}

#[component]
pub fn CartBadge() -> impl IntoView {
    let cart = use_cart();
    view! {
        <a class="cart" href="/cart" aria-live="polite">
            "Cart "
            <span class="cart-badge" data-testid="cart-badge">{move || cart.units()}</span>
        </a>
    }
}

#[cfg(feature = "hydrate")]
mod storage {
    use super::{CartLine, CART_LINES_MAX};

    /// Local storage key of the cart.
    const STORAGE_KEY: &str = "edge-shop-cart";

    fn local_storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    /// The stored cart; anything unreadable counts as an empty cart rather than an error.
    pub fn load() -> Option<Vec<CartLine>> {
        let text = local_storage()?.get_item(STORAGE_KEY).ok()??;
        let mut lines: Vec<CartLine> = serde_json::from_str(&text).ok()?;
        lines.truncate(CART_LINES_MAX);
        Some(lines)
    }

    pub fn save(lines: &[CartLine]) {
        if let (Some(storage), Ok(text)) = (local_storage(), serde_json::to_string(lines)) {
            let _ = storage.set_item(STORAGE_KEY, &text);
        }
    }
}

#[cfg(not(feature = "hydrate"))]
mod storage {
    use super::CartLine;

    pub fn load() -> Option<Vec<CartLine>> {
        None
    }

    pub fn save(_lines: &[CartLine]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_merges_lines_and_respects_bounds() {
        let mut lines = Vec::new();
        assert!(add_line(&mut lines, "A", 1));
        assert!(add_line(&mut lines, "A", 2));
        assert_eq!(
            lines,
            vec![CartLine {
                sku: "A".into(),
                qty: 3
            }]
        );
        assert!(add_line(&mut lines, "A", 500));
        assert_eq!(lines[0].qty, CART_LINE_QTY_MAX);
        assert!(!add_line(&mut lines, "A", 1), "a full line takes no more");
        for i in 1..CART_LINES_MAX {
            assert!(add_line(&mut lines, &format!("S{i}"), 1));
        }
        assert!(!add_line(&mut lines, "one-too-many", 1));
        assert_eq!(lines.len(), CART_LINES_MAX);
    }
}
