//! Promotions: the merchant's rules, published with the catalog snapshot, and the one pure
//! function that prices a cart with them.
//!
//! # Rules
//! A [`Promotion`] is automatic (no `code`) or redeemed with a code. Its [`Benefit`] is a
//! percentage or a fixed amount off the lines it targets, free shipping, buy X get Y, or a
//! percentage by spend tier. It may have a time window, a minimum order value (the undiscounted
//! subtotal), a total usage limit and a per-shopper limit. [`PromotionBook::validate`] names
//! the promotion and field of every problem.
//!
//! # Stacking
//! Candidates (automatic promotions, and those of the codes given) are considered one at a time
//! in a fixed order: higher `priority` first, then by id. A candidate is applied unless
//! - it is `exclusive` and something is already applied, or an applied one is `exclusive`;
//! - it and an applied one exclude each other (`excludes` names the other's id, either way);
//! - it would save nothing on what is left of the cart.
//!
//! Each applied promotion works on the line amounts the earlier ones left, so savings never
//! exceed what a line costs and the total can never go below the shipping charge.
//!
//! # Determinism
//! [`price_cart`] depends only on its arguments: lines are priced in SKU order, codes are
//! normalized (trimmed, upper-cased, deduplicated, sorted), every division rounds down and any
//! remainder is spread by SKU order. The same cart always prices the same.
//!
//! # Usage limits
//! A limit is enforced at checkout, not here: each applied promotion with a limit names the
//! counters it uses ([`PricedCart::usage`]), and the checkout holds one unit of each like stock
//! (see [`usage_sku`]), in the same saga as the cart's lines. The [`Usage`] passed to
//! [`price_cart`] only lets the cart say early that a code is used up.

use crate::money::Money;
use crate::product::Sku;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Promotions one catalog may hold; a bound on every cart's work.
pub const PROMOTIONS_MAX: usize = 500;
/// Longest promotion id.
pub const PROMOTION_ID_LEN_MAX: usize = 32;
/// Shortest and longest discount code.
pub const CODE_LEN_MIN: usize = 3;
pub const CODE_LEN_MAX: usize = 32;
/// Codes one cart may carry.
pub const CODES_PER_CART_MAX: usize = 5;
/// Longest promotion title (shown on the cart's saving lines).
pub const TITLE_LEN_MAX: usize = 100;
/// Spend tiers one promotion may have.
pub const TIERS_MAX: usize = 10;
/// Categories or SKUs one promotion may target.
pub const TARGETS_MAX: usize = 1_000;
/// Largest usage limit (it becomes a stock level of a usage counter).
pub const USAGE_LIMIT_MAX: u32 = crate::stock::RESTOCK_QTY_MAX;
/// The SKU prefix of usage counters; merchant SKUs may not start with it.
pub const USAGE_SKU_PREFIX: &str = "promo.";

/// The merchant's promotions and shipping rate, as published with a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionBook {
    /// The currency of every amount below (the catalog's); carts in another currency get no
    /// promotion and no shipping charge.
    pub currency: String,
    #[serde(default)]
    pub shipping: ShippingRate,
    #[serde(default)]
    pub promotions: Vec<Promotion>,
}

/// What shipping costs: a flat rate, free from a subtotal on. The default is free shipping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingRate {
    #[serde(default)]
    pub flat_minor: u64,
    /// Subtotal (before discounts) from which shipping is free.
    #[serde(default)]
    pub free_over_minor: Option<u64>,
}

impl ShippingRate {
    /// The charge for a cart whose undiscounted subtotal is `subtotal_minor`.
    pub fn charge(&self, subtotal_minor: u64) -> u64 {
        match self.free_over_minor {
            Some(free_over) if subtotal_minor >= free_over => 0,
            _ => self.flat_minor,
        }
    }
}

/// One promotion rule, as the merchant writes it in the catalog file's `promotions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// 1 to 32 of `A-Z a-z 0-9 - _`, unique: what orders record and `excludes` names.
    pub id: String,
    /// What the shopper sees on the saving line ("Summer sale: 20% off kitchen").
    pub title: String,
    /// The code a shopper enters (upper-case `A-Z 0-9 - _`); none: applies automatically.
    #[serde(default)]
    pub code: Option<String>,
    pub benefit: Benefit,
    /// Which lines it applies to; empty: every line.
    #[serde(default)]
    pub applies_to: Target,
    /// Active from (inclusive) and until (exclusive), milliseconds since the Unix epoch.
    #[serde(default)]
    pub starts_at_ms: Option<u64>,
    #[serde(default)]
    pub ends_at_ms: Option<u64>,
    /// The cart's subtotal before any discount must reach this.
    #[serde(default)]
    pub min_subtotal_minor: u64,
    /// Redemptions in total, across every shopper.
    #[serde(default)]
    pub usage_limit: Option<u32>,
    /// Redemptions per shopper (by e-mail address).
    #[serde(default)]
    pub per_shopper_limit: Option<u32>,
    /// Applies alone: never together with any other promotion.
    #[serde(default)]
    pub exclusive: bool,
    /// Ids of promotions never applied together with this one (either way round).
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Higher goes first when stacking (see the module doc); ties by id.
    #[serde(default)]
    pub priority: i32,
}

/// What a promotion gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Benefit {
    /// `percent` (1 to 100) off every targeted line.
    PercentOff { percent: u32 },
    /// `minor` off the targeted lines together, spread over them by amount.
    AmountOff { minor: u64 },
    /// No shipping charge.
    FreeShipping,
    /// Of every `buy + get` targeted units, the `get` cheapest are `percent` off (100: free).
    BuyXGetY {
        buy: u32,
        get: u32,
        #[serde(default = "hundred")]
        percent: u32,
    },
    /// `percent` off the targeted lines by the highest tier their subtotal reaches.
    TieredSpend { tiers: Vec<Tier> },
}

fn hundred() -> u32 {
    100
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub min_subtotal_minor: u64,
    pub percent: u32,
}

/// Lines a promotion targets: in one of `categories` (by name, case and punctuation aside) or
/// one of `skus` (a product's SKU covers its variants). Both empty: every line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub skus: Vec<Sku>,
}

impl Promotion {
    /// Whether `now_ms` is within its dates (from `starts_at_ms`, until `ends_at_ms`).
    fn runs_at(&self, now_ms: u64) -> bool {
        self.starts_at_ms.is_none_or(|start| start <= now_ms)
            && self.ends_at_ms.is_none_or(|end| now_ms < end)
    }
}

impl Target {
    fn matches(&self, line: &CartLine) -> bool {
        self.covers(&line.sku, &line.product, &line.category)
    }

    /// Whether a stock unit `sku` of `product`, in `category`, is targeted.
    fn covers(&self, sku: &Sku, product: &Sku, category: &str) -> bool {
        if self.categories.is_empty() && self.skus.is_empty() {
            return true;
        }
        self.categories
            .iter()
            .any(|c| crate::listing::same_slug(c, category))
            || self.skus.iter().any(|s| s == sku || s == product)
    }
}

/// One problem in the promotions: which promotion (position and id) and field, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionProblem {
    /// Zero-based position in `promotions`, or `None` for the shipping rate or the list.
    pub index: Option<usize>,
    pub id: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for PromotionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) if self.id.is_empty() => {
                write!(f, "promotions[{i}].{}: {}", self.field, self.message)
            }
            Some(i) => write!(
                f,
                "promotions[{i}] ({}).{}: {}",
                self.id, self.field, self.message
            ),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Normalizes a code as a shopper typed it: trimmed, upper-case.
pub fn normalize_code(raw: &str) -> String {
    raw.trim().to_ascii_uppercase()
}

impl PromotionBook {
    /// The places in the book of the automatic promotions within their dates at `now_ms`:
    /// shelf prices change only when this does.
    pub fn running_sales(&self, now_ms: u64) -> Vec<usize> {
        self.promotions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.code.is_none() && p.runs_at(now_ms))
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether an automatic promotion (one without a code) within its dates at `now_ms`
    /// targets stock unit `sku` of `product` in `category`: only such a unit can show a sale
    /// price. Cheap (no allocation), for listings that price every product.
    pub fn sale_may_apply(&self, sku: &Sku, product: &Sku, category: &str, now_ms: u64) -> bool {
        self.promotions.iter().any(|p| {
            p.code.is_none() && p.runs_at(now_ms) && p.applies_to.covers(sku, product, category)
        })
    }

    /// Every problem with the rules, each naming its promotion and field.
    pub fn validate(&self) -> Vec<PromotionProblem> {
        let mut problems = Vec::new();
        let mut file = |field: &str, message: String| {
            problems.push(PromotionProblem {
                index: None,
                id: String::new(),
                field: field.into(),
                message,
            })
        };
        if let Err(e) = Money::new(0, &self.currency).validate() {
            file("currency", e);
        }
        if self.promotions.len() > PROMOTIONS_MAX {
            file(
                "promotions",
                format!(
                    "{} promotions; at most {PROMOTIONS_MAX}",
                    self.promotions.len()
                ),
            );
        }
        if let Some(free_over) = self.shipping.free_over_minor {
            if free_over == 0 {
                file(
                    "shipping.free_over_minor",
                    "must be above 0 (leave it out for no free shipping threshold)".into(),
                );
            }
        }
        let ids: BTreeSet<&str> = self.promotions.iter().map(|p| p.id.as_str()).collect();
        let mut seen_ids = BTreeSet::new();
        let mut seen_codes = BTreeSet::new();
        for (i, promo) in self.promotions.iter().enumerate() {
            let mut bad = |field: &str, message: String| {
                problems.push(PromotionProblem {
                    index: Some(i),
                    id: promo.id.clone(),
                    field: field.into(),
                    message,
                })
            };
            if promo.id.is_empty()
                || promo.id.len() > PROMOTION_ID_LEN_MAX
                || !promo.id.chars().all(is_id_char)
            {
                bad(
                    "id",
                    format!("must be 1 to {PROMOTION_ID_LEN_MAX} of A-Z a-z 0-9 - _"),
                );
            } else if !seen_ids.insert(promo.id.as_str()) {
                bad("id", "is used by an earlier promotion".into());
            }
            let title = promo.title.trim();
            if title.is_empty() || title.chars().count() > TITLE_LEN_MAX {
                bad("title", format!("must be 1 to {TITLE_LEN_MAX} characters"));
            }
            if let Some(code) = &promo.code {
                let well_formed = (CODE_LEN_MIN..=CODE_LEN_MAX).contains(&code.len())
                    && code.chars().all(|c| {
                        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    });
                if !well_formed {
                    bad("code", format!("{code:?} must be {CODE_LEN_MIN} to {CODE_LEN_MAX} of upper-case A-Z, 0-9, - and _"));
                } else if !seen_codes.insert(code.as_str()) {
                    bad(
                        "code",
                        format!("{code} is the code of an earlier promotion"),
                    );
                }
            }
            let percent_ok = |p: u32| (1..=100).contains(&p);
            match &promo.benefit {
                Benefit::PercentOff { percent } if !percent_ok(*percent) => {
                    bad("benefit.percent", format!("{percent} is not 1 to 100"))
                }
                Benefit::AmountOff { minor: 0 } => {
                    bad("benefit.minor", "an amount off must be above 0".into())
                }
                Benefit::BuyXGetY { buy, get, percent } => {
                    if *buy == 0
                        || *get == 0
                        || buy.saturating_add(*get) > crate::stock::RESERVE_QTY_MAX
                    {
                        bad(
                            "benefit",
                            format!(
                                "buy and get must be at least 1 and together at most {}",
                                crate::stock::RESERVE_QTY_MAX
                            ),
                        );
                    }
                    if !percent_ok(*percent) {
                        bad("benefit.percent", format!("{percent} is not 1 to 100"));
                    }
                }
                Benefit::TieredSpend { tiers } => {
                    if tiers.is_empty() || tiers.len() > TIERS_MAX {
                        bad("benefit.tiers", format!("needs 1 to {TIERS_MAX} tiers"));
                    }
                    for (t, tier) in tiers.iter().enumerate() {
                        if !percent_ok(tier.percent) {
                            bad(
                                &format!("benefit.tiers[{t}].percent"),
                                format!("{} is not 1 to 100", tier.percent),
                            );
                        }
                        if t > 0 && tier.min_subtotal_minor <= tiers[t - 1].min_subtotal_minor {
                            bad(
                                &format!("benefit.tiers[{t}].min_subtotal_minor"),
                                "tiers must go up in spend".into(),
                            );
                        }
                    }
                }
                _ => {}
            }
            let target = &promo.applies_to;
            if target.categories.len() + target.skus.len() > TARGETS_MAX {
                bad(
                    "applies_to",
                    format!("at most {TARGETS_MAX} categories and SKUs"),
                );
            }
            if let Some(c) = target.categories.iter().find(|c| c.trim().is_empty()) {
                bad(
                    "applies_to.categories",
                    format!("{c:?} is not a category name"),
                );
            }
            if let (Some(start), Some(end)) = (promo.starts_at_ms, promo.ends_at_ms) {
                if start >= end {
                    bad(
                        "ends_at_ms",
                        format!("{end} is not after starts_at_ms {start}"),
                    );
                }
            }
            for (field, limit) in [
                ("usage_limit", promo.usage_limit),
                ("per_shopper_limit", promo.per_shopper_limit),
            ] {
                if limit.is_some_and(|n| n == 0 || n > USAGE_LIMIT_MAX) {
                    bad(
                        field,
                        format!("must be 1 to {USAGE_LIMIT_MAX} (leave it out for no limit)"),
                    );
                }
            }
            if let (Some(total), Some(each)) = (promo.usage_limit, promo.per_shopper_limit) {
                if each > total {
                    bad(
                        "per_shopper_limit",
                        format!("{each} is more than usage_limit {total}"),
                    );
                }
            }
            for other in &promo.excludes {
                if other == &promo.id {
                    bad("excludes", "a promotion cannot exclude itself".into());
                } else if !ids.contains(other.as_str()) {
                    bad("excludes", format!("no promotion has the id {other:?}"));
                }
            }
        }
        problems
    }

    /// The promotion with this (normalized) code.
    pub fn by_code(&self, code: &str) -> Option<&Promotion> {
        self.promotions
            .iter()
            .find(|p| p.code.as_deref() == Some(code))
    }
}

/// Parses and validates the catalog file's `promotions` (each entry's JSON text and line) and
/// `shipping`, against the catalog's `products` when they are valid: every problem as a
/// catalog problem naming the line, the promotion and the field at fault.
pub fn book_from_catalog(
    currency: &str,
    shipping: ShippingRate,
    entries: &[(&str, usize)],
    products: Option<&[crate::product::Product]>,
) -> Result<PromotionBook, Vec<crate::product::CatalogProblem>> {
    use crate::product::CatalogProblem;
    let mut problems = Vec::new();
    let mut promotions = Vec::with_capacity(entries.len());
    for (i, (text, line)) in entries.iter().enumerate() {
        match serde_json::from_str::<Promotion>(text) {
            Ok(promo) => promotions.push(promo),
            Err(e) => problems.push(CatalogProblem {
                entry: None,
                line: Some(line + e.line().saturating_sub(1)),
                field: format!("promotions[{i}]"),
                message: e.to_string(),
            }),
        }
    }
    if !problems.is_empty() {
        // Positions no longer match the parsed list: report the parse errors alone.
        return Err(problems);
    }
    let book = PromotionBook {
        currency: currency.to_owned(),
        shipping,
        promotions,
    };
    let mut found = book.validate();
    if let Some(products) = products {
        found.extend(unknown_targets(&book, products));
    }
    for problem in found {
        let line = problem
            .index
            .and_then(|i| entries.get(i))
            .map(|(_, line)| *line);
        let field = match problem.index {
            Some(i) if problem.id.is_empty() => format!("promotions[{i}].{}", problem.field),
            Some(i) => format!("promotions[{i}] ({}).{}", problem.id, problem.field),
            None => problem.field,
        };
        problems.push(CatalogProblem {
            entry: None,
            line,
            field,
            message: problem.message,
        });
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok(book)
    } else {
        Err(problems)
    }
}

/// Targets no product has: most likely a typo, which would silently make a sale apply to nothing.
fn unknown_targets(
    book: &PromotionBook,
    products: &[crate::product::Product],
) -> Vec<PromotionProblem> {
    let categories: BTreeSet<String> = products
        .iter()
        .map(|p| crate::listing::slug(&p.category))
        .collect();
    let skus: BTreeSet<&Sku> = products
        .iter()
        .flat_map(|p| std::iter::once(&p.sku).chain(p.variants.iter().map(|v| &v.sku)))
        .collect();
    let mut problems = Vec::new();
    for (i, promo) in book.promotions.iter().enumerate() {
        let mut bad = |field: &str, message: String| {
            problems.push(PromotionProblem {
                index: Some(i),
                id: promo.id.clone(),
                field: field.into(),
                message,
            })
        };
        for category in &promo.applies_to.categories {
            if !categories.contains(&crate::listing::slug(category)) {
                bad(
                    "applies_to.categories",
                    format!("no product is in the category {category:?}"),
                );
            }
        }
        for sku in &promo.applies_to.skus {
            if !skus.contains(sku) {
                bad(
                    "applies_to.skus",
                    format!("no product or variant has the SKU {sku}"),
                );
            }
        }
    }
    problems
}

/// One cart line as pricing sees it: the catalog's unit price, never the client's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: Sku,
    /// The product the SKU belongs to (itself, or the product of a variant).
    pub product: Sku,
    pub category: String,
    pub unit_price: Money,
    pub qty: u32,
}

/// Redemptions known so far (totals, and this shopper's), by promotion id. Only a hint for the
/// cart page: checkout enforces limits on the usage counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub total: BTreeMap<String, u32>,
    pub shopper: BTreeMap<String, u32>,
}

/// Why a code the shopper gave does nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CodeRefusal {
    Unknown,
    NotStarted,
    Ended,
    UsedUp,
    AlreadyUsed,
    /// The subtotal is below the promotion's minimum.
    BelowMinimum {
        min_subtotal: Money,
    },
    /// Nothing in the cart qualifies, or nothing is left to take off.
    NoSaving,
    /// It does not stack with an applied promotion.
    NotCombinable {
        with: String,
    },
    /// The cart is in another currency than the promotions.
    Currency,
    TooManyCodes,
}

impl fmt::Display for CodeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeRefusal::Unknown => f.write_str("this code does not exist"),
            CodeRefusal::NotStarted => f.write_str("this code is not valid yet"),
            CodeRefusal::Ended => f.write_str("this code has expired"),
            CodeRefusal::UsedUp => f.write_str("this code has been used up"),
            CodeRefusal::AlreadyUsed => f.write_str("you have already used this code"),
            CodeRefusal::BelowMinimum { min_subtotal } => {
                write!(f, "this code needs an order of at least {min_subtotal}")
            }
            CodeRefusal::NoSaving => f.write_str("nothing in your cart qualifies for this code"),
            CodeRefusal::NotCombinable { with } => {
                write!(f, "this code cannot be combined with {with}")
            }
            CodeRefusal::Currency => f.write_str("this code is not valid in your cart's currency"),
            CodeRefusal::TooManyCodes => write!(f, "at most {CODES_PER_CART_MAX} codes per order"),
        }
    }
}

/// A code that was given but does nothing, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedCode {
    pub code: String,
    #[serde(flatten)]
    pub refusal: CodeRefusal,
}

/// A promotion's saving on one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineSaving {
    pub sku: Sku,
    pub minor: u64,
}

/// A promotion that applies, with what it saves (line by line, and on shipping).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPromotion {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub code: Option<String>,
    /// Everything it saves: its line savings plus its shipping saving.
    pub saving: Money,
    #[serde(default)]
    pub lines: Vec<LineSaving>,
    #[serde(default)]
    pub shipping_saving_minor: u64,
}

/// A priced line: its undiscounted amount, the discount on it, and what it costs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: Sku,
    pub qty: u32,
    pub unit_price: Money,
    pub subtotal_minor: u64,
    pub discount_minor: u64,
    pub total_minor: u64,
}

/// A usage counter an applied promotion takes one unit of at checkout, and its limit (the
/// counter's level when first used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageClaim {
    pub sku: Sku,
    pub limit: u32,
}

/// A cart priced with its promotions. Every amount is in `currency`'s minor units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedCart {
    pub currency: String,
    /// In SKU order.
    pub lines: Vec<PricedLine>,
    /// In the order they were applied.
    pub applied: Vec<AppliedPromotion>,
    pub rejected_codes: Vec<RejectedCode>,
    pub subtotal: Money,
    pub discount: Money,
    /// The shipping charge before and after promotions.
    pub shipping_before: Money,
    pub shipping: Money,
    pub total: Money,
    /// Usage counters to hold at checkout, one unit each (see [`usage_sku`]).
    pub usage: Vec<UsageClaim>,
}

/// Why a cart cannot be priced at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("an order needs at least one line")]
    Empty,
    #[error("the lines' prices are in more than one currency")]
    MixedCurrencies,
    #[error("the order's amounts overflow")]
    Overflow,
}

/// The usage counter of promotion `id`: in total (`shopper == None`) or for one shopper (the
/// normalized e-mail address). Held like stock at checkout, so a limit holds under concurrency.
pub fn usage_sku(id: &str, shopper: Option<&str>) -> Sku {
    try_usage_sku(id, shopper)
        .expect("promotion ids and hex are SKU characters within the length limit")
}

/// [`usage_sku`] for a promotion id that was not validated with its book (one recorded on an
/// order that came over the wire): `None` when the id cannot make a SKU.
pub fn try_usage_sku(id: &str, shopper: Option<&str>) -> Option<Sku> {
    let raw = match shopper {
        None => format!("{USAGE_SKU_PREFIX}{id}"),
        Some(email) => {
            let email = email.trim().to_lowercase();
            format!(
                "{USAGE_SKU_PREFIX}{id}.s{:016x}",
                crate::shard::fnv1a_64(email.as_bytes())
            )
        }
    };
    Sku::parse(&raw).ok()
}

/// Whether a SKU is a promotion usage counter rather than merchandise.
pub fn is_usage_sku(sku: &Sku) -> bool {
    sku.as_str().starts_with(USAGE_SKU_PREFIX)
}

/// The promotion id of a usage counter.
pub fn usage_promotion(sku: &Sku) -> Option<&str> {
    let rest = sku.as_str().strip_prefix(USAGE_SKU_PREFIX)?;
    Some(rest.split('.').next().unwrap_or(rest))
}

fn money(minor: u64, currency: &str) -> Money {
    Money::new(minor, currency)
}

/// Products (by SKU) whose one unit shows a sale price at some moment, with that price: what
/// [`shelf_price`] gives each, for the ones it gives anything.
/// (Hashed with foldhash: a listing looks every product up.)
pub type ShelfSales = std::collections::HashMap<Sku, Money, foldhash::fast::FixedState>;

/// [`ShelfSales`] of `products` at `now_ms`. Products no running automatic promotion targets
/// cost a few comparisons; the others are priced like a cart of one unit.
pub fn shelf_sales<'a>(
    book: &PromotionBook,
    products: impl IntoIterator<Item = &'a crate::ProductSummary>,
    now_ms: u64,
) -> ShelfSales {
    products
        .into_iter()
        .filter(|p| book.sale_may_apply(&p.sku, &p.sku, &p.category, now_ms))
        .filter_map(|p| {
            Some((
                p.sku.clone(),
                sale_of_one(book, &CartLine::one_of(p), now_ms)?,
            ))
        })
        .collect()
}

impl CartLine {
    /// One unit of a listed product (its own SKU at its list price).
    pub fn one_of(product: &crate::ProductSummary) -> Self {
        CartLine {
            sku: product.sku.clone(),
            product: product.sku.clone(),
            category: product.category.clone(),
            unit_price: product.price.clone(),
            qty: 1,
        }
    }
}

/// The price one unit shows on listing and product pages: what a cart of just that unit costs
/// with the automatic promotions (no codes, before shipping), when they take anything off.
/// The cart prices the same way, so the shelf never promises what the cart does not give.
pub fn shelf_price(book: &PromotionBook, unit: &CartLine, now_ms: u64) -> Option<Money> {
    // Most products are on no sale: they skip pricing a cart.
    if !book.sale_may_apply(&unit.sku, &unit.product, &unit.category, now_ms) {
        return None;
    }
    sale_of_one(book, unit, now_ms)
}

/// [`shelf_price`] for a unit a running automatic promotion targets.
fn sale_of_one(book: &PromotionBook, unit: &CartLine, now_ms: u64) -> Option<Money> {
    let one = CartLine {
        qty: 1,
        ..unit.clone()
    };
    let priced = price_cart(
        book,
        std::slice::from_ref(&one),
        &[],
        now_ms,
        None,
        &Usage::default(),
    )
    .ok()?;
    let line = priced.lines.first()?;
    (line.discount_minor > 0).then(|| money(line.total_minor, &priced.currency))
}

/// `amount * percent / 100`, rounded down (the shop never gives more than it says).
fn percent_of(amount: u64, percent: u32) -> u64 {
    (u128::from(amount) * u128::from(percent.min(100)) / 100) as u64
}

/// Prices `lines` with the book's promotions and the given `codes` at `now_ms`, for a shopper
/// identified by `shopper` (the e-mail address; `None` on the cart page before checkout, when
/// per-shopper limits cannot be claimed yet). Pure and deterministic.
pub fn price_cart(
    book: &PromotionBook,
    lines: &[CartLine],
    codes: &[String],
    now_ms: u64,
    shopper: Option<&str>,
    usage: &Usage,
) -> Result<PricedCart, PricingError> {
    let mut lines: Vec<&CartLine> = lines.iter().collect();
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    let currency = lines
        .first()
        .ok_or(PricingError::Empty)?
        .unit_price
        .currency
        .clone();
    if lines.iter().any(|l| l.unit_price.currency != currency) {
        return Err(PricingError::MixedCurrencies);
    }
    let amounts: Vec<u64> = lines
        .iter()
        .map(|l| l.unit_price.minor.checked_mul(u64::from(l.qty)))
        .collect::<Option<_>>()
        .ok_or(PricingError::Overflow)?;
    let subtotal = amounts
        .iter()
        .try_fold(0u64, |acc, a| acc.checked_add(*a))
        .ok_or(PricingError::Overflow)?;
    let in_currency = book.currency == currency;
    let shipping_before = if in_currency {
        book.shipping.charge(subtotal)
    } else {
        0
    };
    subtotal
        .checked_add(shipping_before)
        .ok_or(PricingError::Overflow)?;

    let mut codes: Vec<String> = codes
        .iter()
        .map(|c| normalize_code(c))
        .filter(|c| !c.is_empty())
        .collect();
    codes.sort();
    codes.dedup();
    let mut rejected = Vec::new();
    if codes.len() > CODES_PER_CART_MAX {
        for code in codes.drain(CODES_PER_CART_MAX..) {
            rejected.push(RejectedCode {
                code,
                refusal: CodeRefusal::TooManyCodes,
            });
        }
    }
    // Candidates: every automatic promotion, and the promotion of each code given.
    let mut candidates: Vec<&Promotion> = Vec::new();
    for code in &codes {
        match book.by_code(code) {
            None => rejected.push(RejectedCode {
                code: code.clone(),
                refusal: CodeRefusal::Unknown,
            }),
            Some(_) if !in_currency => rejected.push(RejectedCode {
                code: code.clone(),
                refusal: CodeRefusal::Currency,
            }),
            Some(promo) => candidates.push(promo),
        }
    }
    if in_currency {
        candidates.extend(book.promotions.iter().filter(|p| p.code.is_none()));
    }
    candidates.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));

    let mut remaining = amounts.clone();
    let mut shipping = shipping_before;
    let mut applied: Vec<(&Promotion, AppliedPromotion)> = Vec::new();
    for promo in candidates {
        let refusal = if promo.starts_at_ms.is_some_and(|start| now_ms < start) {
            Some(CodeRefusal::NotStarted)
        } else if promo.ends_at_ms.is_some_and(|end| now_ms >= end) {
            Some(CodeRefusal::Ended)
        } else if promo
            .usage_limit
            .is_some_and(|n| usage.total.get(&promo.id).copied().unwrap_or(0) >= n)
        {
            Some(CodeRefusal::UsedUp)
        } else if promo
            .per_shopper_limit
            .is_some_and(|n| usage.shopper.get(&promo.id).copied().unwrap_or(0) >= n)
        {
            Some(CodeRefusal::AlreadyUsed)
        } else if subtotal < promo.min_subtotal_minor {
            Some(CodeRefusal::BelowMinimum {
                min_subtotal: money(promo.min_subtotal_minor, &currency),
            })
        } else if let Some((other, _)) = applied.iter().find(|(other, _)| {
            promo.exclusive
                || other.exclusive
                || promo.excludes.contains(&other.id)
                || other.excludes.contains(&promo.id)
        }) {
            Some(CodeRefusal::NotCombinable {
                with: other.title.clone(),
            })
        } else {
            let savings = line_savings(promo, &lines, &amounts, &remaining);
            let shipping_saving = if promo.benefit == Benefit::FreeShipping {
                shipping
            } else {
                0
            };
            let line_total: u64 = savings.iter().sum();
            if line_total == 0 && shipping_saving == 0 {
                Some(CodeRefusal::NoSaving)
            } else {
                for (left, saving) in remaining.iter_mut().zip(&savings) {
                    debug_assert!(
                        saving <= left,
                        "a saving never exceeds what is left of its line"
                    );
                    *left -= saving;
                }
                shipping -= shipping_saving;
                let applied_lines = lines
                    .iter()
                    .zip(&savings)
                    .filter(|(_, s)| **s > 0)
                    .map(|(l, s)| LineSaving {
                        sku: l.sku.clone(),
                        minor: *s,
                    })
                    .collect();
                let entry = AppliedPromotion {
                    id: promo.id.clone(),
                    title: promo.title.clone(),
                    code: promo.code.clone(),
                    saving: money(line_total + shipping_saving, &currency),
                    lines: applied_lines,
                    shipping_saving_minor: shipping_saving,
                };
                applied.push((promo, entry));
                None
            }
        };
        if let (Some(refusal), Some(code)) = (refusal, &promo.code) {
            rejected.push(RejectedCode {
                code: code.clone(),
                refusal,
            });
        }
    }
    rejected.sort_by(|a, b| a.code.cmp(&b.code));

    let priced_lines: Vec<PricedLine> = lines
        .iter()
        .zip(amounts.iter().zip(&remaining))
        .map(|(l, (amount, left))| PricedLine {
            sku: l.sku.clone(),
            qty: l.qty,
            unit_price: l.unit_price.clone(),
            subtotal_minor: *amount,
            discount_minor: amount - left,
            total_minor: *left,
        })
        .collect();
    let merchandise: u64 = remaining.iter().sum();
    let discount = subtotal - merchandise;
    let total = merchandise + shipping;
    debug_assert_eq!(
        total + discount + (shipping_before - shipping),
        subtotal + shipping_before
    );
    let mut usage_claims = Vec::new();
    for (promo, _) in &applied {
        if let Some(limit) = promo.usage_limit {
            usage_claims.push(UsageClaim {
                sku: usage_sku(&promo.id, None),
                limit,
            });
        }
        if let (Some(limit), Some(email)) = (promo.per_shopper_limit, shopper) {
            usage_claims.push(UsageClaim {
                sku: usage_sku(&promo.id, Some(email)),
                limit,
            });
        }
    }
    Ok(PricedCart {
        subtotal: money(subtotal, &currency),
        discount: money(discount, &currency),
        shipping_before: money(shipping_before, &currency),
        shipping: money(shipping, &currency),
        total: money(total, &currency),
        lines: priced_lines,
        applied: applied.into_iter().map(|(_, a)| a).collect(),
        rejected_codes: rejected,
        usage: usage_claims,
        currency,
    })
}

/// What `promo` takes off each line, given the lines' undiscounted `amounts` and what is
/// `remaining` of them. Never more than `remaining` per line.
fn line_savings(
    promo: &Promotion,
    lines: &[&CartLine],
    amounts: &[u64],
    remaining: &[u64],
) -> Vec<u64> {
    let targeted: Vec<bool> = lines.iter().map(|l| promo.applies_to.matches(l)).collect();
    let mut savings = vec![0u64; lines.len()];
    let percent_off = |savings: &mut Vec<u64>, percent: u32| {
        for (i, saving) in savings.iter_mut().enumerate() {
            if targeted[i] {
                *saving = percent_of(remaining[i], percent);
            }
        }
    };
    match &promo.benefit {
        Benefit::FreeShipping => {}
        Benefit::PercentOff { percent } => percent_off(&mut savings, *percent),
        Benefit::TieredSpend { tiers } => {
            let spend: u64 = (0..lines.len())
                .filter(|&i| targeted[i])
                .map(|i| amounts[i])
                .sum();
            let tier = tiers
                .iter()
                .filter(|t| spend >= t.min_subtotal_minor)
                .max_by_key(|t| t.min_subtotal_minor);
            if let Some(tier) = tier {
                percent_off(&mut savings, tier.percent);
            }
        }
        Benefit::AmountOff { minor } => {
            let pool: u64 = (0..lines.len())
                .filter(|&i| targeted[i])
                .map(|i| remaining[i])
                .sum();
            if pool == 0 {
                return savings;
            }
            let amount = (*minor).min(pool);
            // Pro rata, rounded down; the remainder one minor unit at a time in SKU order.
            let mut given = 0u64;
            for i in (0..lines.len()).filter(|&i| targeted[i]) {
                savings[i] =
                    (u128::from(amount) * u128::from(remaining[i]) / u128::from(pool)) as u64;
                given += savings[i];
            }
            let mut left = amount - given;
            while left > 0 {
                let before = left;
                for i in (0..lines.len()).filter(|&i| targeted[i]) {
                    if left > 0 && savings[i] < remaining[i] {
                        savings[i] += 1;
                        left -= 1;
                    }
                }
                assert!(
                    left < before,
                    "amount <= pool, so every round places a unit"
                );
            }
        }
        Benefit::BuyXGetY { buy, get, percent } => {
            let group = u64::from(*buy) + u64::from(*get);
            if *get == 0 {
                return savings;
            }
            let units: u64 = (0..lines.len())
                .filter(|&i| targeted[i])
                .map(|i| u64::from(lines[i].qty))
                .sum();
            let mut free = units / group * u64::from(*get);
            // The cheapest units are the discounted ones; ties by SKU (the lines' order).
            let mut order: Vec<usize> = (0..lines.len()).filter(|&i| targeted[i]).collect();
            order.sort_by_key(|&i| lines[i].unit_price.minor);
            for i in order {
                if free == 0 {
                    break;
                }
                let take = free.min(u64::from(lines[i].qty));
                free -= take;
                let full = lines[i].unit_price.minor.saturating_mul(take);
                savings[i] = percent_of(full, *percent).min(remaining[i]);
            }
        }
    }
    savings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, category: &str, unit: u64, qty: u32) -> CartLine {
        CartLine {
            sku: Sku::parse(sku).unwrap(),
            product: Sku::parse(sku).unwrap(),
            category: category.into(),
            unit_price: Money::new(unit, "USD"),
            qty,
        }
    }

    fn promo(id: &str, code: Option<&str>, benefit: Benefit) -> Promotion {
        Promotion {
            id: id.into(),
            title: format!("{id} title"),
            code: code.map(str::to_owned),
            benefit,
            applies_to: Target::default(),
            starts_at_ms: None,
            ends_at_ms: None,
            min_subtotal_minor: 0,
            usage_limit: None,
            per_shopper_limit: None,
            exclusive: false,
            excludes: Vec::new(),
            priority: 0,
        }
    }

    fn book(promotions: Vec<Promotion>) -> PromotionBook {
        PromotionBook {
            currency: "USD".into(),
            shipping: ShippingRate {
                flat_minor: 500,
                free_over_minor: Some(10_000),
            },
            promotions,
        }
    }

    fn price(book: &PromotionBook, lines: &[CartLine], codes: &[&str]) -> PricedCart {
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        price_cart(
            book,
            lines,
            &codes,
            1_000,
            Some("a@b.co"),
            &Usage::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_code_takes_a_percentage_off_and_says_so_line_by_line() {
        let b = book(vec![promo(
            "TEN",
            Some("SAVE10"),
            Benefit::PercentOff { percent: 10 },
        )]);
        let cart = price(
            &b,
            &[line("A", "kitchen", 1999, 2), line("B", "garden", 500, 1)],
            &[" save10 "],
        );
        assert_eq!(cart.subtotal.minor, 4498);
        assert_eq!(
            cart.lines
                .iter()
                .map(|l| l.discount_minor)
                .collect::<Vec<_>>(),
            [399, 50]
        );
        assert_eq!(cart.discount.minor, 449);
        assert_eq!(cart.shipping.minor, 500);
        assert_eq!(cart.total.minor, 4498 - 449 + 500);
        assert_eq!(cart.applied[0].code.as_deref(), Some("SAVE10"));
        let unknown = price(&b, &[line("A", "k", 100, 1)], &["NOPE"]);
        assert_eq!(
            unknown.rejected_codes,
            vec![RejectedCode {
                code: "NOPE".into(),
                refusal: CodeRefusal::Unknown
            }]
        );
        assert_eq!(unknown.discount.minor, 0);
    }

    #[test]
    fn amounts_off_are_spread_exactly_and_never_exceed_the_lines() {
        let b = book(vec![promo(
            "FIVE",
            Some("FIVE"),
            Benefit::AmountOff { minor: 1000 },
        )]);
        let cart = price(
            &b,
            &[line("A", "k", 333, 1), line("B", "k", 333, 2)],
            &["FIVE"],
        );
        assert_eq!(
            cart.lines.iter().map(|l| l.discount_minor).sum::<u64>(),
            999.min(1000)
        );
        assert_eq!(cart.total.minor, 500, "nothing left but shipping");
        let exact = price(
            &b,
            &[line("A", "k", 3000, 1), line("B", "k", 1000, 2)],
            &["FIVE"],
        );
        assert_eq!(
            exact
                .lines
                .iter()
                .map(|l| l.discount_minor)
                .collect::<Vec<_>>(),
            [600, 400]
        );
    }

    #[test]
    fn automatic_category_sales_buy_x_get_y_and_tiers() {
        let mut sale = promo("KITCHEN", None, Benefit::PercentOff { percent: 20 });
        sale.applies_to.categories = vec!["Kitchen".into()];
        let mut b3g1 = promo(
            "MUGS",
            None,
            Benefit::BuyXGetY {
                buy: 2,
                get: 1,
                percent: 100,
            },
        );
        b3g1.applies_to.skus = vec![Sku::parse("MUG").unwrap(), Sku::parse("CUP").unwrap()];
        let tiers = promo(
            "TIERS",
            None,
            Benefit::TieredSpend {
                tiers: vec![
                    Tier {
                        min_subtotal_minor: 5_000,
                        percent: 5,
                    },
                    Tier {
                        min_subtotal_minor: 20_000,
                        percent: 10,
                    },
                ],
            },
        );
        let b = book(vec![sale, b3g1, tiers]);
        // Kitchen 20% off; of three mugs/cups the cheapest is free; 10 000 spend reaches 5%.
        let cart = price(
            &b,
            &[
                line("MUG", "kitchen", 1000, 2),
                line("CUP", "dining", 500, 1),
                line("RUG", "home", 7500, 1),
            ],
            &[],
        );
        let ids: Vec<&str> = cart.applied.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["KITCHEN", "MUGS", "TIERS"]);
        let by_sku: BTreeMap<&str, u64> = cart
            .lines
            .iter()
            .map(|l| (l.sku.as_str(), l.discount_minor))
            .collect();
        // MUG: 400 (20%), then 5% of 1600 = 80. CUP: free (500). RUG: 5% of 7500 = 375.
        assert_eq!(
            by_sku,
            BTreeMap::from([("CUP", 500), ("MUG", 480), ("RUG", 375)])
        );
        assert_eq!(
            cart.shipping.minor, 0,
            "the undiscounted subtotal reaches free shipping"
        );
    }

    #[test]
    fn windows_minimums_limits_and_stacking_refuse_codes_with_reasons() {
        let mut late = promo("LATE", Some("LATE"), Benefit::PercentOff { percent: 5 });
        late.starts_at_ms = Some(2_000);
        let mut gone = promo("GONE", Some("GONE"), Benefit::PercentOff { percent: 5 });
        gone.ends_at_ms = Some(1_000);
        let mut big = promo("BIG", Some("BIG"), Benefit::AmountOff { minor: 100 });
        big.min_subtotal_minor = 5_000;
        let mut solo = promo("SOLO", Some("SOLO"), Benefit::PercentOff { percent: 50 });
        solo.exclusive = true;
        let mut ship = promo("SHIP", Some("SHIP"), Benefit::FreeShipping);
        ship.priority = 10;
        let mut limited = promo("LIM", Some("LIM"), Benefit::PercentOff { percent: 5 });
        limited.usage_limit = Some(50);
        limited.per_shopper_limit = Some(1);
        let b = book(vec![late, gone, big, solo, ship, limited]);
        let cart = price(
            &b,
            &[line("A", "k", 1000, 1)],
            &["LATE", "GONE", "BIG", "SOLO", "SHIP"],
        );
        let refusals: BTreeMap<&str, &CodeRefusal> = cart
            .rejected_codes
            .iter()
            .map(|r| (r.code.as_str(), &r.refusal))
            .collect();
        assert_eq!(refusals["LATE"], &CodeRefusal::NotStarted);
        assert_eq!(refusals["GONE"], &CodeRefusal::Ended);
        assert!(matches!(refusals["BIG"], CodeRefusal::BelowMinimum { .. }));
        assert_eq!(
            refusals["SOLO"],
            &CodeRefusal::NotCombinable {
                with: "SHIP title".into()
            }
        );
        assert_eq!(cart.applied.len(), 1);
        assert_eq!((cart.shipping.minor, cart.total.minor), (0, 1000));
        // Limits: the counters to hold at checkout, and a hint when known used up.
        let lim = price(&b, &[line("A", "k", 1000, 1)], &["LIM"]);
        assert_eq!(
            lim.usage,
            vec![
                UsageClaim {
                    sku: usage_sku("LIM", None),
                    limit: 50
                },
                UsageClaim {
                    sku: usage_sku("LIM", Some("A@B.co ")),
                    limit: 1
                },
            ]
        );
        let used = Usage {
            total: BTreeMap::from([("LIM".into(), 50)]),
            shopper: BTreeMap::new(),
        };
        let cart = price_cart(
            &b,
            &[line("A", "k", 1000, 1)],
            &["LIM".into()],
            1_000,
            None,
            &used,
        )
        .unwrap();
        assert_eq!(cart.rejected_codes[0].refusal, CodeRefusal::UsedUp);
        assert!(is_usage_sku(&usage_sku("LIM", Some("x@y.z"))));
        assert_eq!(
            usage_promotion(&usage_sku("LIM", Some("x@y.z"))),
            Some("LIM")
        );
    }

    #[test]
    fn excludes_work_either_way_round() {
        let mut a = promo("A", Some("AAA"), Benefit::PercentOff { percent: 10 });
        a.excludes = vec!["B".into()];
        let b = promo("B", Some("BBB"), Benefit::PercentOff { percent: 10 });
        let c = promo("C", Some("CCC"), Benefit::PercentOff { percent: 10 });
        let cart = price(
            &book(vec![a, b, c]),
            &[line("X", "k", 1000, 1)],
            &["AAA", "BBB", "CCC"],
        );
        let ids: Vec<&str> = cart.applied.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["A", "C"]);
        assert_eq!(cart.lines[0].discount_minor, 100 + 90);
    }

    #[test]
    fn invalid_rules_name_the_promotion_and_field() {
        let mut b = book(vec![
            promo("OK", Some("OK1"), Benefit::PercentOff { percent: 10 }),
            promo("OK", Some("ok1"), Benefit::PercentOff { percent: 0 }),
            promo(
                "T",
                None,
                Benefit::TieredSpend {
                    tiers: vec![
                        Tier {
                            min_subtotal_minor: 5,
                            percent: 5,
                        },
                        Tier {
                            min_subtotal_minor: 5,
                            percent: 10,
                        },
                    ],
                },
            ),
        ]);
        b.promotions[2].usage_limit = Some(0);
        b.promotions[2].excludes = vec!["NOPE".into()];
        let problems: Vec<String> = b.validate().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "promotions[1] (OK).id: is used by an earlier promotion",
                "promotions[1] (OK).code: \"ok1\" must be 3 to 32 of upper-case A-Z, 0-9, - and _",
                "promotions[1] (OK).benefit.percent: 0 is not 1 to 100",
                "promotions[2] (T).benefit.tiers[1].min_subtotal_minor: tiers must go up in spend",
                "promotions[2] (T).usage_limit: must be 1 to 1000000 (leave it out for no limit)",
                "promotions[2] (T).excludes: no promotion has the id \"NOPE\"",
            ]
        );
    }

    #[test]
    fn shelf_prices_show_automatic_promotions_only() {
        let mut sale = promo("SALE", None, Benefit::PercentOff { percent: 25 });
        sale.applies_to.categories = vec!["kitchen".into()];
        let mut big = promo("BIG", None, Benefit::AmountOff { minor: 500 });
        big.min_subtotal_minor = 5_000;
        let b = book(vec![
            sale,
            big,
            promo("CODE", Some("CODE"), Benefit::PercentOff { percent: 50 }),
        ]);
        assert_eq!(
            shelf_price(&b, &line("MUG", "Kitchen", 1_000, 3), 0),
            Some(Money::new(750, "USD"))
        );
        assert_eq!(
            shelf_price(&b, &line("RUG", "Home", 1_000, 1), 0),
            None,
            "no automatic promotion applies"
        );
        // A single unit over the minimum gets the amount off as well, as a cart of it would:
        // BIG before SALE (same priority, by id), so 8000 - 500, then 25% off the 7500 left.
        assert_eq!(
            shelf_price(&b, &line("POT", "Kitchen", 8_000, 1), 0),
            Some(Money::new(5_625, "USD"))
        );
    }

    #[test]
    fn carts_in_another_currency_get_no_promotions() {
        let b = book(vec![
            promo("P", None, Benefit::PercentOff { percent: 10 }),
            promo("C", Some("CODE"), Benefit::FreeShipping),
        ]);
        let mut eur = line("A", "k", 1000, 1);
        eur.unit_price.currency = "EUR".into();
        let cart = price(&b, &[eur], &["CODE"]);
        assert_eq!(
            (cart.discount.minor, cart.shipping.minor, cart.total.minor),
            (0, 0, 1000)
        );
        assert_eq!(cart.rejected_codes[0].refusal, CodeRefusal::Currency);
    }
}
