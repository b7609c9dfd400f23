//! Orders: what a checkout produces, what the origin keeps as the system of record, and what
//! the order page shows. Plain data, shared by every host and the browser bundle.

use crate::money::Money;
use crate::product::Sku;
use crate::stock::{validate_lines, Line, OrderId};
use serde::{Deserialize, Serialize};

/// Longest e-mail address accepted (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;
/// Longest payment token accepted.
pub const PAYMENT_TOKEN_LEN_MAX: usize = 128;

/// `POST /api/checkout`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub lines: Vec<Line>,
    pub email: String,
    pub payment_token: String,
    /// Discount codes the shopper entered (at most [`crate::promo::CODES_PER_CART_MAX`]).
    /// Left out of the encoding when empty, so a request's fingerprint is what it was before
    /// codes existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
}

impl CheckoutRequest {
    /// Checks the request's shape (lines, e-mail, token); stock and prices are checked later.
    pub fn validate(&self) -> Result<(), String> {
        validate_lines(&self.lines)?;
        let email = self.email.trim();
        let well_formed = email.len() <= EMAIL_LEN_MAX
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(format!("email {:?} is not an e-mail address", self.email));
        }
        if self.payment_token.is_empty() || self.payment_token.len() > PAYMENT_TOKEN_LEN_MAX {
            return Err(format!(
                "payment_token must be 1 to {PAYMENT_TOKEN_LEN_MAX} characters"
            ));
        }
        if self.codes.len() > crate::promo::CODES_PER_CART_MAX {
            return Err(format!(
                "at most {} discount codes per order",
                crate::promo::CODES_PER_CART_MAX
            ));
        }
        if let Some(bad) = self
            .codes
            .iter()
            .find(|c| c.len() > crate::promo::CODE_LEN_MAX || c.chars().any(|ch| ch.is_control()))
        {
            return Err(format!("discount code {bad:?} is malformed"));
        }
        Ok(())
    }

    /// A stable hash of the request, to tell a retry from a different request under one key.
    pub fn fingerprint(&self) -> u64 {
        crate::shard::fnv1a_64(&crate::codec::to_cbor(self))
    }
}

/// A priced line of an order: the price is the catalog's at checkout, never the client's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub title: String,
    pub qty: u32,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn line(&self) -> Line {
        Line {
            sku: self.sku.clone(),
            qty: self.qty,
        }
    }
}

/// Where an order is in its life. Checkout creates orders `Paid` (the payment is taken before
/// the order is acknowledged); the origin's admin moves them on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Packed,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
    ReturnRequested,
    ReturnReceived,
    Restocked,
    WrittenOff,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Paid => "paid",
            OrderStatus::Packed => "packed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::ReturnRequested => "return_requested",
            OrderStatus::ReturnReceived => "return_received",
            OrderStatus::Restocked => "restocked",
            OrderStatus::WrittenOff => "written_off",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        ALL_STATUSES.into_iter().find(|s| s.as_str() == raw)
    }

    /// The order state machine: placed -> paid -> packed -> shipped -> delivered; cancel before
    /// shipping; refund after a cancel of a paid order or a return received; return requested ->
    /// received -> restocked or written off.
    pub fn can_move_to(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Placed, Paid)
                | (Paid, Packed)
                | (Packed, Shipped)
                | (Shipped, Delivered)
                | (Placed | Paid | Packed, Cancelled)
                | (Cancelled, Refunded)
                | (Delivered, ReturnRequested)
                | (ReturnRequested, ReturnReceived)
                | (ReturnReceived, Restocked | WrittenOff)
                | (Restocked | WrittenOff, Refunded)
        )
    }

    /// Whether the order's units go back to stock on entering this status.
    pub fn returns_stock(self) -> bool {
        matches!(self, OrderStatus::Cancelled | OrderStatus::Restocked)
    }

    /// Whether the order's promotion usage (a limited code's use, in total and for its shopper)
    /// goes back on entering this status. Only a cancel gives it back: the order never went
    /// out, so the promotion was never redeemed. A restocking return does not: the order was
    /// delivered at its discounted price and the refund repays what was paid, so the code was
    /// redeemed; giving the use back would let a shopper buy, return and buy again with a
    /// once-per-shopper code, and let a capped code be redeemed past its cap.
    pub fn returns_promotion_uses(self) -> bool {
        matches!(self, OrderStatus::Cancelled)
    }

    /// What the shopper's order page says.
    pub fn label(self) -> &'static str {
        match self {
            OrderStatus::Placed => "Placed",
            OrderStatus::Paid => "Paid",
            OrderStatus::Packed => "Packed",
            OrderStatus::Shipped => "Shipped",
            OrderStatus::Delivered => "Delivered",
            OrderStatus::Cancelled => "Cancelled",
            OrderStatus::Refunded => "Refunded",
            OrderStatus::ReturnRequested => "Return requested",
            OrderStatus::ReturnReceived => "Return received",
            OrderStatus::Restocked => "Returned",
            OrderStatus::WrittenOff => "Returned",
        }
    }
}

pub const ALL_STATUSES: [OrderStatus; 11] = [
    OrderStatus::Placed,
    OrderStatus::Paid,
    OrderStatus::Packed,
    OrderStatus::Shipped,
    OrderStatus::Delivered,
    OrderStatus::Cancelled,
    OrderStatus::Refunded,
    OrderStatus::ReturnRequested,
    OrderStatus::ReturnReceived,
    OrderStatus::Restocked,
    OrderStatus::WrittenOff,
];

/// One step of an order's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at_ms: u64,
}

/// An acknowledged order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub email: String,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub status: OrderStatus,
    /// The payment gateway's charge id.
    pub charge_id: String,
    pub placed_at_ms: u64,
    pub history: Vec<StatusChange>,
    /// How promotions and shipping made up `total`; `None` when the total is just the sum of
    /// the lines (no promotion applied, no shipping charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<OrderPricing>,
}

/// How promotions and shipping made up an order's total:
/// `total = subtotal - discount + shipping`, where `subtotal` is the sum of the lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPricing {
    pub subtotal: Money,
    /// Taken off the lines (each applied promotion says which, line by line).
    pub discount: Money,
    /// The shipping charge after promotions.
    pub shipping: Money,
    /// The promotions applied, with their savings; the order's record of them.
    pub promotions: Vec<crate::promo::AppliedPromotion>,
}

/// The total an order's lines and pricing add up to; `None` on overflow, mixed currencies, or
/// a discount larger than the lines.
pub fn priced_total(lines: &[OrderLine], pricing: Option<&OrderPricing>) -> Option<Money> {
    let subtotal = total(lines)?;
    let Some(pricing) = pricing else {
        return Some(subtotal);
    };
    let same = |m: &Money| m.currency == subtotal.currency;
    if pricing.subtotal != subtotal || !same(&pricing.discount) || !same(&pricing.shipping) {
        return None;
    }
    let minor = subtotal
        .minor
        .checked_sub(pricing.discount.minor)?
        .checked_add(pricing.shipping.minor)?;
    Some(Money::new(minor, &subtotal.currency))
}

impl Order {
    /// Records a status change (the caller has checked it is allowed).
    pub fn set_status(&mut self, status: OrderStatus, at_ms: u64) {
        self.status = status;
        self.history.push(StatusChange { status, at_ms });
    }
}

/// The sum of `qty × unit_price` over lines in one currency; `None` on overflow, no lines or
/// mixed currencies.
pub fn total(lines: &[OrderLine]) -> Option<Money> {
    let currency = &lines.first()?.unit_price.currency;
    let mut minor: u64 = 0;
    for line in lines {
        if &line.unit_price.currency != currency {
            return None;
        }
        minor = minor.checked_add(line.unit_price.minor.checked_mul(u64::from(line.qty))?)?;
    }
    Some(Money::new(minor, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(email: &str, token: &str, lines: Vec<(&str, u32)>) -> CheckoutRequest {
        CheckoutRequest {
            lines: lines
                .into_iter()
                .map(|(s, qty)| Line {
                    sku: Sku::parse(s).unwrap(),
                    qty,
                })
                .collect(),
            email: email.into(),
            payment_token: token.into(),
            codes: Vec::new(),
        }
    }

    #[test]
    fn checkout_requests_are_validated() {
        assert!(request("a@b.co", "tok_visa", vec![("A", 1)])
            .validate()
            .is_ok());
        for bad in [
            request("nobody", "tok_visa", vec![("A", 1)]),
            request("a@b", "tok_visa", vec![("A", 1)]),
            request("a b@c.de", "tok_visa", vec![("A", 1)]),
            request("a@b.co", "", vec![("A", 1)]),
            request("a@b.co", "tok_visa", vec![]),
            request("a@b.co", "tok_visa", vec![("A", 0)]),
            request("a@b.co", "tok_visa", vec![("A", 1), ("A", 2)]),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let a = request("a@b.co", "tok_visa", vec![("A", 1)]);
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(
            a.fingerprint(),
            request("a@b.co", "tok_visa", vec![("A", 2)]).fingerprint()
        );
    }

    #[test]
    fn totals_are_exact_and_refuse_mixed_currencies() {
        let line = |minor, currency: &str, qty| OrderLine {
            sku: Sku::parse("A").unwrap(),
            title: "A".into(),
            qty,
            unit_price: Money::new(minor, currency),
        };
        assert_eq!(
            total(&[line(1999, "USD", 3), line(1, "USD", 1)]),
            Some(Money::new(5998, "USD"))
        );
        assert_eq!(total(&[line(1, "USD", 1), line(1, "EUR", 1)]), None);
        assert_eq!(total(&[line(u64::MAX, "USD", 2)]), None);
        assert_eq!(total(&[]), None);
        for status in ALL_STATUSES {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert!(!status.can_move_to(status), "{status:?} -> itself");
        }
        assert!(OrderStatus::Paid.can_move_to(OrderStatus::Cancelled));
        assert!(
            !OrderStatus::Shipped.can_move_to(OrderStatus::Cancelled),
            "no cancel after shipping"
        );
        assert!(!OrderStatus::Delivered.can_move_to(OrderStatus::Paid));
    }
}
