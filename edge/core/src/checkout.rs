//! Checkout across shards: hold every line, take the payment, sell, and record the order so it
//! reaches the origin.
//!
//! A cart may span several shards. [`Checkout::run`] reserves the order's lines on every shard
//! involved (all-or-nothing per shard, by order id), charges the payment, then commits every
//! shard. A definite failure (not enough stock, a declined or timed-out payment, a hold that ran
//! out) releases every hold and refunds a charge; a transient one (a shard or the gateway
//! unreachable) leaves the checkout open, to be finished by a retry with the same order id or
//! by the host's recovery timer ([`Checkout::resume`]): every step is idempotent by order id,
//! so running the whole checkout again from the top is always safe.
//!
//! The [`CheckoutRecord`] is written before the first hold and again with the outcome before
//! the caller acknowledges it, so an acknowledged order is durable in the host's
//! [`CheckoutLog`] (the order's Durable Object, or the origin's database), and stays in its
//! outbox until [`Checkout::deliver`] hands it to the origin.

use crate::money::Money;
use crate::order::{CheckoutRequest, Order, OrderLine, OrderPricing, OrderStatus, StatusChange};
use crate::product::Sku;
use crate::promo::{CartLine, PricedCart, UsageClaim};
use crate::shard::SkuShard;
use crate::snapshot::Clock;
use crate::stock::{Line, OrderId, ShardReply, ShardRequest};
use crate::store::{unexpected, BoxFuture, CatalogStore, StockCoordinator, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How long a checkout's holds last: enough for a slow payment, short enough that an abandoned
/// checkout returns its units soon.
pub const CHECKOUT_HOLD_TTL_MS: u64 = 10 * 60 * 1_000;

/// How a checkout ended. Every variant but `Placed` sold nothing and charged nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutOutcome {
    Placed(Order),
    Insufficient {
        sku: Sku,
        available: u32,
    },
    UnknownSku {
        sku: Sku,
    },
    Declined {
        reason: String,
    },
    PaymentTimeout,
    /// A hold ran out before the order could be sold (a very slow payment): nothing sold,
    /// any charge refunded.
    HoldExpired,
}

/// A checkout as its host keeps it: the request, its prices, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRecord {
    pub order_id: OrderId,
    pub fingerprint: u64,
    pub request: CheckoutRequest,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub started_at_ms: u64,
    /// Set before the payment is attempted: a failure after it must refund.
    pub charging: bool,
    pub outcome: Option<CheckoutOutcome>,
    /// The origin has acknowledged the placed order (the outbox entry is done).
    pub delivered: bool,
    /// How promotions and shipping made up `total` (see [`Order::pricing`]).
    #[serde(default)]
    pub pricing: Option<OrderPricing>,
    /// Promotion usage counters the checkout holds one unit of, beside its lines, under
    /// [`usage_order_id`]: sold with the order, returned when it fails, so a limited
    /// promotion is never redeemed past its limit.
    #[serde(default)]
    pub usage: Vec<UsageClaim>,
}

/// A checkout's prices: its lines from the catalog, the total to charge, and what promotions
/// did (none: the total is the lines' sum).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedOrder {
    pub lines: Vec<OrderLine>,
    pub total: Money,
    #[serde(default)]
    pub pricing: Option<OrderPricing>,
    #[serde(default)]
    pub usage: Vec<UsageClaim>,
}

impl PricedOrder {
    /// An order without promotions: the total is what the lines add up to.
    pub fn unpromoted(lines: Vec<OrderLine>, total: Money) -> Self {
        Self {
            lines,
            total,
            pricing: None,
            usage: Vec::new(),
        }
    }

    /// Checks a priced order that was priced elsewhere (a remote edge's checkout, see
    /// [`RemoteCheckout`]) before an order desk runs it: the total is the lines less the
    /// discount plus shipping ([`crate::order::priced_total`], as the origin checks every order
    /// it records), and each usage claim is the counter of an applied promotion, in total or for
    /// the shopper `email`, claimed once. The error says what does not add up.
    pub fn check(&self, email: &str) -> Result<(), String> {
        let Some(expected) = crate::order::priced_total(&self.lines, self.pricing.as_ref()) else {
            return Err(
                "the lines and pricing do not add up: mixed currencies, an overflow, a discount \
                        larger than the lines, or a pricing subtotal that is not the lines' sum"
                    .into(),
            );
        };
        if expected != self.total {
            return Err(format!(
                "total {} {} is not the lines less the discount plus shipping ({} {})",
                self.total.minor, self.total.currency, expected.minor, expected.currency
            ));
        }
        let applied = self.pricing.as_ref().map_or(&[][..], |p| &p.promotions[..]);
        let mut claimed = std::collections::BTreeSet::new();
        for claim in &self.usage {
            let counts_an_applied_promotion = applied.iter().any(|promotion| {
                [None, Some(email)].into_iter().any(|shopper| {
                    crate::promo::try_usage_sku(&promotion.id, shopper).as_ref() == Some(&claim.sku)
                })
            });
            if !counts_an_applied_promotion {
                return Err(format!(
                    "usage claim {} is not a counter of a promotion the order applies",
                    claim.sku
                ));
            }
            if !claimed.insert(&claim.sku) {
                return Err(format!("usage claim {} is made twice", claim.sku));
            }
        }
        Ok(())
    }
}

/// The order id a checkout's promotion usage is held under. Distinct from the order's own id
/// because a shard keeps one hold per order id, and a cart held ahead of checkout already
/// holds its lines under that one.
pub fn usage_order_id(order: &OrderId) -> OrderId {
    let a = crate::shard::fnv1a_64(order.as_str().as_bytes());
    let b = crate::shard::fnv1a_64(&[order.as_str().as_bytes(), b"\x00usage"].concat());
    OrderId::parse(&format!("u{a:016x}{b:016x}")).expect("hex is a valid order id")
}

/// Prices a checkout with the snapshot's promotions at `now_ms`: the catalog's prices (never
/// the client's), the codes the shopper gave, their e-mail address for per-shopper limits.
/// A code that cannot be applied refuses the checkout (the shopper would otherwise pay a
/// price they did not see), with the reason in the message.
pub async fn price_order(
    catalog: &dyn CatalogStore,
    request: &CheckoutRequest,
    now_ms: u64,
) -> Result<(PricedOrder, PricedCart), CheckoutError> {
    let book = catalog.promotions().await?;
    let (lines, cart) = cart_lines(catalog, &request.lines).await?;
    let email = request.email.trim();
    let priced = crate::promo::price_cart(
        &book,
        &cart,
        &request.codes,
        now_ms,
        Some(email),
        &Default::default(),
    )
    .map_err(|e| CheckoutError::Invalid(e.to_string()))?;
    if let Some(refused) = priced.rejected_codes.first() {
        return Err(CheckoutError::Invalid(format!(
            "discount code {}: {}",
            refused.code, refused.refusal
        )));
    }
    let pricing = (!priced.applied.is_empty() || priced.shipping.minor > 0).then(|| OrderPricing {
        subtotal: priced.subtotal.clone(),
        discount: priced.discount.clone(),
        shipping: priced.shipping.clone(),
        promotions: priced.applied.clone(),
    });
    let order = PricedOrder {
        lines,
        total: priced.total.clone(),
        pricing,
        usage: priced.usage.clone(),
    };
    debug_assert_eq!(
        crate::order::priced_total(&order.lines, order.pricing.as_ref()).as_ref(),
        Some(&order.total)
    );
    Ok((order, priced))
}

/// A cart priced for showing (the cart page): like [`price_order`], but before the shopper is
/// known, with refused codes in the result rather than an error, and codes whose usage counter
/// is empty shown as used up (one counter read per limited code given).
pub async fn preview_cart(
    catalog: &dyn CatalogStore,
    stock: &dyn StockCoordinator,
    lines: &[Line],
    codes: &[String],
    now_ms: u64,
) -> Result<PricedCart, CheckoutError> {
    crate::stock::validate_lines(lines).map_err(CheckoutError::Invalid)?;
    let book = catalog.promotions().await?;
    let (_, cart) = cart_lines(catalog, lines).await?;
    let mut usage = crate::promo::Usage::default();
    let given = codes.iter().take(crate::promo::CODES_PER_CART_MAX);
    for promo in given.filter_map(|c| book.by_code(&crate::promo::normalize_code(c))) {
        let Some(limit) = promo.usage_limit else {
            continue;
        };
        let level = stock
            .level(&crate::promo::usage_sku(&promo.id, None))
            .await?;
        if let Some(level) = level {
            usage
                .total
                .insert(promo.id.clone(), limit.saturating_sub(level.available));
        }
    }
    crate::promo::price_cart(&book, &cart, codes, now_ms, None, &usage)
        .map_err(|e| CheckoutError::Invalid(e.to_string()))
}

/// The catalog's lines for an order (title and price) and for promotions (product, category).
async fn cart_lines(
    catalog: &dyn CatalogStore,
    request: &[Line],
) -> Result<(Vec<OrderLine>, Vec<CartLine>), CheckoutError> {
    let mut lines = Vec::with_capacity(request.len());
    let mut cart = Vec::with_capacity(request.len());
    for line in request {
        let product = catalog.unit(&line.sku).await?;
        let Some((product, unit_price)) = product
            .as_ref()
            .and_then(|p| Some((p, p.price_of(&line.sku)?.clone())))
        else {
            return Err(CheckoutError::Invalid(format!(
                "the catalog has no SKU {}",
                line.sku
            )));
        };
        cart.push(CartLine {
            sku: line.sku.clone(),
            product: product.sku.clone(),
            category: product.category.clone(),
            unit_price: unit_price.clone(),
            qty: line.qty,
        });
        lines.push(OrderLine {
            sku: line.sku.clone(),
            title: product.title.clone(),
            qty: line.qty,
            unit_price,
        });
    }
    Ok((lines, cart))
}

/// Why a checkout could not run at all. Its outcomes (stock, payment) are [`CheckoutOutcome`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CheckoutError {
    /// The request is malformed or names SKUs the catalog does not sell: fix it, do not retry.
    #[error("{0}")]
    Invalid(String),
    /// The idempotency key was used before for a different request.
    #[error("this Idempotency-Key was already used for a different checkout")]
    KeyReused,
    /// A shard, the log or the gateway is unreachable: retry with the same key.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a payment failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("payment declined: {0}")]
    Declined(String),
    #[error("the payment gateway timed out")]
    Timeout,
    #[error("the payment gateway is unreachable: {0}")]
    Unavailable(String),
}

/// A payment service. Both calls are idempotent by order id, as real gateways' are by key.
pub trait PaymentGateway: Send + Sync {
    /// Charges `amount`; the charge id on success. Charging an order again returns its charge.
    fn charge<'a>(
        &'a self,
        order: &'a OrderId,
        amount: &'a Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<String, PaymentError>>;
    /// Refunds the order's charge in full; nothing to do when it was never charged.
    fn refund<'a>(&'a self, order: &'a OrderId) -> BoxFuture<'a, Result<(), PaymentError>>;
}

/// Where a host keeps checkout records. `put` is durable before it returns.
pub trait CheckoutLog: Send + Sync {
    fn get<'a>(
        &'a self,
        order: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<CheckoutRecord>, StoreError>>;
    fn put<'a>(&'a self, record: &'a CheckoutRecord) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The origin's order intake, as the outbox sees it. Idempotent by order id.
pub trait OrderSink: Send + Sync {
    fn deliver<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// One checkout's collaborators.
pub struct Checkout<'a> {
    pub stock: &'a dyn StockCoordinator,
    pub payments: &'a dyn PaymentGateway,
    pub log: &'a dyn CheckoutLog,
    pub clock: &'a dyn Clock,
}

/// What every shard said to one round of requests.
struct Round {
    replies: Vec<(SkuShard, Result<ShardReply, StoreError>)>,
}

impl Round {
    fn transient(&self) -> Option<StoreError> {
        self.replies
            .iter()
            .find_map(|(_, r)| r.as_ref().err().cloned())
    }
}

impl Checkout<'_> {
    /// Starts (or, for a known order id, continues or answers) a checkout.
    pub async fn run(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        lines: Vec<OrderLine>,
        total: Money,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        self.run_priced(order_id, request, PricedOrder::unpromoted(lines, total))
            .await
    }

    /// [`Checkout::run`] with promotions: the order records `priced.pricing`, and the usage
    /// counters are held and sold with the lines.
    pub async fn run_priced(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        priced: PricedOrder,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let PricedOrder {
            lines,
            total,
            pricing,
            usage,
        } = priced;
        let fingerprint = request.fingerprint();
        let record = match self.log.get(&order_id).await? {
            Some(record) if record.fingerprint != fingerprint => {
                return Err(CheckoutError::KeyReused)
            }
            Some(record) => record,
            None => {
                let record = CheckoutRecord {
                    order_id,
                    fingerprint,
                    request,
                    lines,
                    total,
                    started_at_ms: self.clock.now_ms(),
                    charging: false,
                    outcome: None,
                    delivered: false,
                    pricing,
                    usage,
                };
                self.log.put(&record).await?;
                record
            }
        };
        self.advance(record).await
    }

    /// Finishes a checkout that was left open (the host's timer calls this for open records).
    pub async fn resume(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<CheckoutOutcome>, CheckoutError> {
        match self.log.get(order_id).await? {
            None => Ok(None),
            Some(record) => self.advance(record).await.map(Some),
        }
    }

    /// Hands a placed, undelivered order to the origin and marks it delivered. `Ok(false)` when
    /// there was nothing to deliver.
    pub async fn deliver(
        &self,
        order_id: &OrderId,
        sink: &dyn OrderSink,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.log.get(order_id).await? else {
            return Ok(false);
        };
        let Some(CheckoutOutcome::Placed(order)) = &record.outcome else {
            return Ok(false);
        };
        if record.delivered {
            return Ok(false);
        }
        sink.deliver(order).await?;
        record.delivered = true;
        self.log.put(&record).await?;
        Ok(true)
    }

    async fn advance(&self, mut record: CheckoutRecord) -> Result<CheckoutOutcome, CheckoutError> {
        if let Some(outcome) = &record.outcome {
            return Ok(outcome.clone());
        }
        let by_shard = holds_of(&record);
        if !record.usage.is_empty() {
            // A usage counter starts at its limit the first time any checkout uses it; seeding
            // never overwrites, so every checkout may ask.
            let seeds = record.usage.iter().map(|claim| {
                let request = ShardRequest::Seed {
                    levels: vec![(claim.sku.clone(), claim.limit)],
                    overwrite: false,
                };
                self.stock.on_shard(SkuShard::of(&claim.sku), request)
            });
            for reply in futures::future::join_all(seeds).await {
                match reply? {
                    ShardReply::Seeded { .. } => {}
                    other => return Err(unexpected(other).into()),
                }
            }
        }
        let reserves = self
            .round(&by_shard, |order, lines| ShardRequest::Reserve {
                order,
                lines,
                ttl_ms: CHECKOUT_HOLD_TTL_MS,
            })
            .await;
        if let Some(failure) = reserve_failure(&reserves) {
            return self.fail(record, &by_shard, failure).await;
        }
        if let Some(e) = reserves.transient() {
            // Holds stay (they expire on their own); a retry or the recovery timer continues.
            return Err(e.into());
        }
        // Every shard holds (or, when this is a retry after a crash, already sold) the lines.
        if !record.charging {
            record.charging = true;
            self.log.put(&record).await?;
        }
        let charge_id = match self
            .payments
            .charge(
                &record.order_id,
                &record.total,
                &record.request.payment_token,
            )
            .await
        {
            Ok(charge_id) => charge_id,
            Err(PaymentError::Declined(reason)) => {
                return self
                    .fail(record, &by_shard, CheckoutOutcome::Declined { reason })
                    .await
            }
            // Whether money moved is unknown: refund by order id (a no-op if it did not).
            Err(PaymentError::Timeout | PaymentError::Unavailable(_)) => {
                return self
                    .fail(record, &by_shard, CheckoutOutcome::PaymentTimeout)
                    .await
            }
        };
        let commits = self
            .round(&by_shard, |order, _| ShardRequest::Commit { order })
            .await;
        if let Some(e) = commits.transient() {
            return Err(e.into());
        }
        let all_sold = commits
            .replies
            .iter()
            .all(|(_, r)| matches!(r, Ok(ShardReply::Committed)));
        if !all_sold {
            // A hold ran out on some shard before its commit: undo the shards that sold.
            return self
                .fail(record, &by_shard, CheckoutOutcome::HoldExpired)
                .await;
        }
        let now = self.clock.now_ms();
        let order = Order {
            id: record.order_id.clone(),
            email: record.request.email.trim().to_owned(),
            lines: record.lines.clone(),
            total: record.total.clone(),
            status: OrderStatus::Paid,
            charge_id,
            placed_at_ms: now,
            history: vec![
                StatusChange {
                    status: OrderStatus::Placed,
                    at_ms: record.started_at_ms,
                },
                StatusChange {
                    status: OrderStatus::Paid,
                    at_ms: now,
                },
            ],
            pricing: record.pricing.clone(),
        };
        record.outcome = Some(CheckoutOutcome::Placed(order));
        self.log.put(&record).await?;
        Ok(record.outcome.expect("just set"))
    }

    /// Returns every hold, refunds a possible charge and records `outcome`.
    ///
    /// Holds are returned with `Release`, which cannot undo a sale: a `Release` delayed in the
    /// network and delivered after a retry of this checkout sold the order is harmless. Only
    /// when a shard's hold ended for good (`HoldExpired`: released or cancelled, so the order
    /// can never be placed) are sales on the other shards undone with `Cancel`.
    async fn fail(
        &self,
        mut record: CheckoutRecord,
        by_shard: &Holds,
        outcome: CheckoutOutcome,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let undo_sales = outcome == CheckoutOutcome::HoldExpired;
        let undo = self
            .round(by_shard, |order, _| {
                if undo_sales {
                    ShardRequest::Cancel { order }
                } else {
                    ShardRequest::Release { order }
                }
            })
            .await;
        for (_, reply) in undo.replies {
            match reply? {
                ShardReply::Released { .. } | ShardReply::Cancelled => {}
                // Sold by an earlier run of this checkout that then failed to record its outcome:
                // that run's commit round finished, so the order is placeable; a retry places it.
                ShardReply::AlreadyCommitted => {
                    return Err(StoreError::Unavailable(format!(
                        "order {} was sold on a shard during a retry; retry",
                        record.order_id
                    ))
                    .into())
                }
                other => return Err(unexpected(other).into()),
            }
        }
        if record.charging {
            self.payments
                .refund(&record.order_id)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        record.outcome = Some(outcome);
        self.log.put(&record).await?;
        Ok(record.outcome.expect("just set"))
    }

    /// Sends one request per shard and holder, concurrently.
    async fn round(
        &self,
        by_shard: &Holds,
        request: impl Fn(OrderId, Vec<Line>) -> ShardRequest,
    ) -> Round {
        let calls = by_shard.iter().map(|((shard, holder), lines)| {
            let request = request(holder.clone(), lines.clone());
            async move { (*shard, self.stock.on_shard(*shard, request).await) }
        });
        Round {
            replies: futures::future::join_all(calls).await,
        }
    }
}

/// Checkouts and orders as a storefront request sees them. The host decides where they run:
/// in process ([`LocalDesk`]: the origin, the native test host) or in the order's Durable
/// Object on Cloudflare.
///
/// The host must let runs of one order id take turns: a checkout, the recovery timer's
/// [`Checkout::resume`] and the outbox's [`Checkout::deliver`]. The saga is safe against any
/// number of retries, but not against two runs at once: a run that read the record earlier
/// writes it back stale, reopening or replacing a placed order, changing an outcome a client
/// was already answered, or dropping the `charging` marker, so a charge goes unrefunded
/// (`tests/simulation.rs`, `Mutant::Unserialized`). A single-threaded owner is not enough
/// by itself: a Durable Object interleaves requests at every outgoing fetch. [`OrderTurns`]
/// gives the turns; [`LocalDesk`] takes them for its checkouts.
pub trait OrderDesk: Send + Sync {
    /// Runs, continues or answers the checkout of `order_id` without promotions (see
    /// [`Checkout::run`]).
    fn checkout(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        lines: Vec<OrderLine>,
        total: Money,
    ) -> BoxFuture<'_, Result<CheckoutOutcome, CheckoutError>> {
        self.checkout_priced(order_id, request, PricedOrder::unpromoted(lines, total))
    }
    /// Runs, continues or answers the checkout of `order_id` with its promotions (see
    /// [`Checkout::run_priced`]): every host carries the pricing and the usage claims to where
    /// the order is owned, so the order records its savings and a usage limit holds.
    fn checkout_priced(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        priced: PricedOrder,
    ) -> BoxFuture<'_, Result<CheckoutOutcome, CheckoutError>>;
    /// A placed order, as the shopper's order page shows it.
    fn order<'a>(
        &'a self,
        order_id: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<Order>, StoreError>>;
}

/// A checkout handed to a remote order desk (the origin's `POST /coordinator/checkouts`, for
/// hosts without an order owner of their own, such as Spin): the arguments of
/// [`OrderDesk::checkout_priced`], in CBOR. The answer is a CBOR
/// `Result<CheckoutOutcome, CheckoutError>`. The desk checks the pricing ([`PricedOrder::check`])
/// before it runs the checkout.
///
/// `pricing` and `usage` are left out when there are none, so a checkout without promotions is
/// encoded as before they existed, and a message from an edge that predates them reads as one
/// without. (An origin that predates them would ignore them: deploy the origin first.)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteCheckout {
    pub order_id: OrderId,
    pub request: CheckoutRequest,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<OrderPricing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageClaim>,
}

impl RemoteCheckout {
    pub fn new(order_id: OrderId, request: CheckoutRequest, priced: PricedOrder) -> Self {
        let PricedOrder {
            lines,
            total,
            pricing,
            usage,
        } = priced;
        Self {
            order_id,
            request,
            lines,
            total,
            pricing,
            usage,
        }
    }

    /// The order's prices, as [`OrderDesk::checkout_priced`] takes them.
    pub fn priced(&self) -> PricedOrder {
        PricedOrder {
            lines: self.lines.clone(),
            total: self.total.clone(),
            pricing: self.pricing.clone(),
            usage: self.usage.clone(),
        }
    }
}

/// What gives an order's stock back when it enters `status`; nothing unless
/// [`OrderStatus::returns_stock`]. `Cancel` of the order on every shard of its lines and, when
/// the status also gives promotion uses back ([`OrderStatus::returns_promotion_uses`]: a cancel,
/// not a return), `Cancel` of [`usage_order_id`] on every shard the order's usage counters may
/// be held on. Every request is idempotent by order id: a retry or a second cancel gives
/// nothing back twice.
///
/// The usage counters come from the order itself: each applied promotion's counter in total
/// and for the order's shopper, as [`price_order`] claims them. Every host can work them out
/// from the order alone (the origin's admin has nothing else), orders placed before this
/// existed included. A shard may be named that holds nothing under that id (a promotion
/// without a limit): the `Cancel` there leaves a tombstone, harmless for a placed order, whose
/// usage id never reserves again.
pub fn stock_returns(order: &Order, status: OrderStatus) -> Vec<(SkuShard, ShardRequest)> {
    if !status.returns_stock() {
        return Vec::new();
    }
    let line_shards: std::collections::BTreeSet<SkuShard> =
        order.lines.iter().map(|l| SkuShard::of(&l.sku)).collect();
    let mut returns: Vec<(SkuShard, ShardRequest)> = line_shards
        .into_iter()
        .map(|shard| {
            (
                shard,
                ShardRequest::Cancel {
                    order: order.id.clone(),
                },
            )
        })
        .collect();
    if status.returns_promotion_uses() {
        let holder = usage_order_id(&order.id);
        let promotions = order.pricing.iter().flat_map(|p| &p.promotions);
        let counters = promotions.flat_map(|p| {
            [None, Some(order.email.as_str())]
                .into_iter()
                .filter_map(|shopper| crate::promo::try_usage_sku(&p.id, shopper))
        });
        let usage_shards: std::collections::BTreeSet<SkuShard> =
            counters.map(|sku| SkuShard::of(&sku)).collect();
        returns.extend(usage_shards.into_iter().map(|shard| {
            (
                shard,
                ShardRequest::Cancel {
                    order: holder.clone(),
                },
            )
        }));
    }
    returns
}

/// Sends [`stock_returns`] for `order` entering `status`, concurrently. Idempotent; an error
/// (a shard unreachable or answering out of protocol) is for the caller to retry.
pub async fn return_stock(
    stock: &dyn StockCoordinator,
    order: &Order,
    status: OrderStatus,
) -> Result<(), StoreError> {
    let calls = stock_returns(order, status)
        .into_iter()
        .map(|(shard, request)| stock.on_shard(shard, request));
    for reply in futures::future::join_all(calls).await {
        match reply? {
            ShardReply::Cancelled | ShardReply::Released { .. } => {}
            other => return Err(unexpected(other)),
        }
    }
    Ok(())
}

/// Turns per order id: runs of one order (checkout, resume, deliver, status change) wait for
/// each other; runs of different orders do not. Entries live only while someone holds or waits.
/// A long-running server bounds the table ([`Self::bounded`], [`Self::try_run`]); a Durable
/// Object's is bounded by the requests it has in flight.
#[derive(Default)]
pub struct OrderTurns {
    locks: Mutex<BTreeMap<OrderId, Arc<futures::lock::Mutex<()>>>>,
    /// Orders busy at once before [`Self::try_run`] refuses another.
    max: Option<usize>,
}

impl OrderTurns {
    /// Turns that [`Self::try_run`] refuses once `max` orders are busy.
    pub fn bounded(max: usize) -> Self {
        Self {
            locks: Mutex::default(),
            max: Some(max),
        }
    }

    /// Runs `work` when it is `order`'s turn. A caller dropped while waiting or working gives
    /// its turn back and leaves no entry behind.
    pub async fn run<T>(&self, order: &OrderId, work: impl std::future::Future<Output = T>) -> T {
        let entry = TurnEntry {
            turns: self,
            order,
            lock: self
                .entry(order, false)
                .expect("unbounded entries always exist"),
        };
        let _turn = entry.lock.lock().await;
        work.await
    }

    /// [`Self::run`], or `Unavailable` at once when the table is bounded and full (an order
    /// already busy still waits for its turn).
    pub async fn try_run<T>(
        &self,
        order: &OrderId,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, StoreError> {
        let entry = TurnEntry {
            turns: self,
            order,
            lock: self.entry(order, true)?,
        };
        let _turn = entry.lock.lock().await;
        Ok(work.await)
    }

    fn entry(
        &self,
        order: &OrderId,
        bounded: bool,
    ) -> Result<Arc<futures::lock::Mutex<()>>, StoreError> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(max) = self.max.filter(|_| bounded) {
            if locks.len() >= max && !locks.contains_key(order) {
                return Err(StoreError::Unavailable(format!(
                    "{max} orders are in flight; retry shortly"
                )));
            }
        }
        Ok(locks.entry(order.clone()).or_default().clone())
    }

    /// Orders with a run in progress or waiting (bounded by the host's concurrency).
    pub fn busy(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A caller's claim on an order's entry in [`OrderTurns`]; the last one out removes it.
struct TurnEntry<'a> {
    turns: &'a OrderTurns,
    order: &'a OrderId,
    lock: Arc<futures::lock::Mutex<()>>,
}

impl Drop for TurnEntry<'_> {
    fn drop(&mut self) {
        let mut locks = self.turns.locks.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else holds or waits, the entry can go.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(self.order);
        }
    }
}

/// An [`OrderDesk`] that runs checkouts in this process, one run per order id at a time.
#[derive(Clone)]
pub struct LocalDesk {
    pub stock: Arc<dyn StockCoordinator>,
    pub payments: Arc<dyn PaymentGateway>,
    pub log: Arc<dyn CheckoutLog>,
    pub clock: Arc<dyn Clock>,
    pub turns: Arc<OrderTurns>,
}

impl LocalDesk {
    pub fn checkout_with(&self) -> Checkout<'_> {
        Checkout {
            stock: &*self.stock,
            payments: &*self.payments,
            log: &*self.log,
            clock: &*self.clock,
        }
    }
}

impl OrderDesk for LocalDesk {
    fn checkout_priced(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        priced: PricedOrder,
    ) -> BoxFuture<'_, Result<CheckoutOutcome, CheckoutError>> {
        Box::pin(async move {
            let id = order_id.clone();
            self.turns
                .run(
                    &id,
                    self.checkout_with().run_priced(order_id, request, priced),
                )
                .await
        })
    }

    fn order<'a>(
        &'a self,
        order_id: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<Order>, StoreError>> {
        Box::pin(async move {
            Ok(self.log.get(order_id).await?.and_then(|r| match r.outcome {
                Some(CheckoutOutcome::Placed(order)) => Some(order),
                _ => None,
            }))
        })
    }
}

/// The definite reason a round of reserves failed, if any shard refused.
fn reserve_failure(round: &Round) -> Option<CheckoutOutcome> {
    round.replies.iter().find_map(|(_, reply)| match reply {
        Ok(ShardReply::Insufficient { sku, available }) => Some(CheckoutOutcome::Insufficient {
            sku: sku.clone(),
            available: *available,
        }),
        Ok(ShardReply::UnknownSku { sku }) => {
            Some(CheckoutOutcome::UnknownSku { sku: sku.clone() })
        }
        Ok(ShardReply::Released { .. } | ShardReply::Cancelled) => {
            Some(CheckoutOutcome::HoldExpired)
        }
        Ok(ShardReply::Held { .. } | ShardReply::Committed) | Err(_) => None,
        Ok(ShardReply::Rejected { reason }) => Some(CheckoutOutcome::Declined {
            reason: format!("rejected: {reason}"),
        }),
        Ok(_) => Some(CheckoutOutcome::HoldExpired),
    })
}

/// What a checkout holds: its lines per shard under its order id, and one unit of each promotion
/// usage counter per shard under [`usage_order_id`].
type Holds = BTreeMap<(SkuShard, OrderId), Vec<Line>>;

fn holds_of(record: &CheckoutRecord) -> Holds {
    let lines = group_by_shard(record.lines.iter().map(OrderLine::line));
    let mut holds: Holds = lines
        .into_iter()
        .map(|(shard, lines)| ((shard, record.order_id.clone()), lines))
        .collect();
    let usage = group_by_shard(record.usage.iter().map(|claim| Line {
        sku: claim.sku.clone(),
        qty: 1,
    }));
    let holder = usage_order_id(&record.order_id);
    holds.extend(
        usage
            .into_iter()
            .map(|(shard, lines)| ((shard, holder.clone()), lines)),
    );
    holds
}

/// Lines grouped by their shard, in the order given: the grouping a checkout reserves with, so
/// holds placed ahead of it ([`hold_cart`]) match what it reserves.
fn group_by_shard(lines: impl IntoIterator<Item = Line>) -> BTreeMap<SkuShard, Vec<Line>> {
    let mut by_shard: BTreeMap<SkuShard, Vec<Line>> = BTreeMap::new();
    for line in lines {
        by_shard
            .entry(SkuShard::of(&line.sku))
            .or_default()
            .push(line);
    }
    by_shard
}

/// How holding a cart went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartHold {
    /// Every line is held for the order until `expires_at_ms`; a checkout under the same
    /// order id sells these holds.
    Held { expires_at_ms: u64 },
    /// Nothing is held: a line cannot be had (`available` of `sku` left).
    Refused { sku: Option<Sku>, available: u32 },
    /// The order id was used up (checked out, released or expired): hold under a new one.
    Spent,
}

/// Holds a cart's lines for `order` before checkout, so the cart page can show the shopper
/// their units are reserved and until when. All shards or none: a refusal releases the rest.
/// Idempotent like every shard operation; [`release_cart`] gives the units back when the
/// cart changes (and spends the order id).
pub async fn hold_cart(
    stock: &dyn StockCoordinator,
    order: &OrderId,
    lines: &[Line],
) -> Result<CartHold, StoreError> {
    let by_shard = group_by_shard(lines.iter().cloned());
    let calls = by_shard.iter().map(|(shard, lines)| {
        let request = ShardRequest::Reserve {
            order: order.clone(),
            lines: lines.clone(),
            ttl_ms: CHECKOUT_HOLD_TTL_MS,
        };
        stock.on_shard(*shard, request)
    });
    let replies = futures::future::join_all(calls).await;
    let mut expires_at_ms = u64::MAX;
    let mut outcome = None;
    for reply in replies {
        match reply? {
            ShardReply::Held { expires_at_ms: at } => expires_at_ms = expires_at_ms.min(at),
            ShardReply::Insufficient { sku, available } => {
                outcome.get_or_insert(CartHold::Refused {
                    sku: Some(sku),
                    available,
                });
            }
            ShardReply::UnknownSku { sku } => {
                outcome.get_or_insert(CartHold::Refused {
                    sku: Some(sku),
                    available: 0,
                });
            }
            ShardReply::Rejected { .. }
            | ShardReply::Released { .. }
            | ShardReply::Committed
            | ShardReply::Cancelled => {
                outcome.get_or_insert(CartHold::Spent);
            }
            other => return Err(unexpected(other)),
        }
    }
    match outcome {
        None => Ok(CartHold::Held { expires_at_ms }),
        Some(refusal) => {
            release_cart(stock, order, lines).await?;
            Ok(refusal)
        }
    }
}

/// Returns a cart's holds for `order` to stock (and spends the order id). Idempotent; a sold
/// order is left sold.
pub async fn release_cart(
    stock: &dyn StockCoordinator,
    order: &OrderId,
    lines: &[Line],
) -> Result<(), StoreError> {
    let shards = group_by_shard(lines.iter().cloned()).into_keys();
    let calls = shards.map(|shard| {
        stock.on_shard(
            shard,
            ShardRequest::Release {
                order: order.clone(),
            },
        )
    });
    for reply in futures::future::join_all(calls).await {
        match reply? {
            ShardReply::Released { .. } | ShardReply::AlreadyCommitted | ShardReply::Cancelled => {}
            other => return Err(unexpected(other)),
        }
    }
    Ok(())
}

/// A gateway in test mode, like a real one's: `tok_visa` succeeds, `tok_declined` declines,
/// `tok_timeout` times out (having charged nothing); anything else is declined as unknown.
/// Charges are kept so tests can check that nothing is charged without an order.
#[derive(Default)]
pub struct TestGateway {
    charges: Mutex<BTreeMap<OrderId, TestCharge>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCharge {
    pub id: String,
    pub amount: Money,
    pub refunded: bool,
}

impl TestGateway {
    pub fn charges(&self) -> BTreeMap<OrderId, TestCharge> {
        self.charges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The charge decision for a token, without any state (what every call would answer).
    pub fn decide(token: &str) -> Result<(), PaymentError> {
        match token {
            "tok_visa" => Ok(()),
            "tok_declined" => Err(PaymentError::Declined("your card was declined".into())),
            "tok_timeout" => Err(PaymentError::Timeout),
            other => Err(PaymentError::Declined(format!(
                "unknown test token {other:?}"
            ))),
        }
    }
}

impl PaymentGateway for TestGateway {
    fn charge<'a>(
        &'a self,
        order: &'a OrderId,
        amount: &'a Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<String, PaymentError>> {
        Box::pin(async move {
            let mut charges = self.charges.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(charge) = charges.get(order) {
                return Ok(charge.id.clone());
            }
            Self::decide(token)?;
            let id = format!("ch_test_{order}");
            charges.insert(
                order.clone(),
                TestCharge {
                    id: id.clone(),
                    amount: amount.clone(),
                    refunded: false,
                },
            );
            Ok(id)
        })
    }

    fn refund<'a>(&'a self, order: &'a OrderId) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(async move {
            if let Some(charge) = self
                .charges
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(order)
            {
                charge.refunded = true;
            }
            Ok(())
        })
    }
}

/// Checkout records in memory: the native test host's log.
#[derive(Default)]
pub struct MemoryCheckoutLog {
    records: Mutex<BTreeMap<OrderId, CheckoutRecord>>,
}

impl MemoryCheckoutLog {
    pub fn records(&self) -> BTreeMap<OrderId, CheckoutRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl CheckoutLog for MemoryCheckoutLog {
    fn get<'a>(
        &'a self,
        order: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<CheckoutRecord>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(order)
                .cloned())
        })
    }
    fn put<'a>(&'a self, record: &'a CheckoutRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(record.order_id.clone(), record.clone());
            Ok(())
        })
    }
}

/// Derives an order id from a client's `Idempotency-Key`: the same key always names the same
/// order. 128 bits of two independent FNV-1a hashes, so ids do not reveal the key.
pub fn order_id_for_key(key: &str) -> OrderId {
    let a = crate::shard::fnv1a_64(key.as_bytes());
    let b = crate::shard::fnv1a_64(&[key.as_bytes(), b"\x00order"].concat());
    OrderId::parse(&format!("o{a:016x}{b:016x}")).expect("hex is a valid order id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{ManualClock, MemoryStock};
    use crate::order::total;
    use futures::executor::block_on;

    struct Host {
        stock: MemoryStock,
        payments: TestGateway,
        log: MemoryCheckoutLog,
        clock: Arc<ManualClock>,
    }

    impl Host {
        fn new(levels: &[(&str, u32)]) -> Self {
            let clock = Arc::new(ManualClock::default());
            let host = Host {
                stock: MemoryStock::with_clock(clock.clone()),
                payments: TestGateway::default(),
                log: MemoryCheckoutLog::default(),
                clock,
            };
            block_on(
                host.stock
                    .seed(levels.iter().map(|(s, n)| (sku(s), *n)).collect(), true),
            )
            .unwrap();
            host
        }

        fn checkout(&self) -> Checkout<'_> {
            Checkout {
                stock: &self.stock,
                payments: &self.payments,
                log: &self.log,
                clock: &*self.clock,
            }
        }

        fn run(
            &self,
            id: &str,
            token: &str,
            lines: &[(&str, u32)],
        ) -> Result<CheckoutOutcome, CheckoutError> {
            let request = CheckoutRequest {
                lines: lines
                    .iter()
                    .map(|(s, qty)| Line {
                        sku: sku(s),
                        qty: *qty,
                    })
                    .collect(),
                email: "shopper@example.com".into(),
                payment_token: token.into(),
                codes: Vec::new(),
            };
            let priced: Vec<OrderLine> = request
                .lines
                .iter()
                .map(|l| OrderLine {
                    sku: l.sku.clone(),
                    title: l.sku.to_string(),
                    qty: l.qty,
                    unit_price: Money::new(500, "USD"),
                })
                .collect();
            let total = total(&priced).unwrap();
            block_on(
                self.checkout()
                    .run(OrderId::parse(id).unwrap(), request, priced, total),
            )
        }

        fn level(&self, s: &str) -> (u32, u32, u32) {
            let l = block_on(self.stock.level(&sku(s))).unwrap().unwrap();
            (l.available, l.held, l.sold)
        }
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    /// Two SKUs on different shards, so checkouts span shards.
    fn two_shard_skus() -> (&'static str, &'static str) {
        let candidates = [
            "APP-001", "KIT-001", "MUG-001", "TEE-001", "BAG-001", "CAP-001",
        ];
        for a in candidates {
            for b in candidates {
                if SkuShard::of(&sku(a)) != SkuShard::of(&sku(b)) {
                    return (a, b);
                }
            }
        }
        unreachable!("the candidates span shards")
    }

    #[test]
    fn a_paid_checkout_sells_on_every_shard_and_is_idempotent() {
        let (a, b) = two_shard_skus();
        let host = Host::new(&[(a, 5), (b, 5)]);
        let CheckoutOutcome::Placed(order) = host.run("o1", "tok_visa", &[(a, 2), (b, 1)]).unwrap()
        else {
            panic!("placed")
        };
        assert_eq!(order.total, Money::new(1500, "USD"));
        assert_eq!((host.level(a), host.level(b)), ((3, 0, 2), (4, 0, 1)));
        let again = host.run("o1", "tok_visa", &[(a, 2), (b, 1)]).unwrap();
        assert_eq!(
            again,
            CheckoutOutcome::Placed(order),
            "a retry returns the same order"
        );
        assert_eq!((host.level(a), host.level(b)), ((3, 0, 2), (4, 0, 1)));
        assert_eq!(
            host.run("o1", "tok_visa", &[(a, 1)]),
            Err(CheckoutError::KeyReused)
        );
        assert_eq!(host.payments.charges().len(), 1);
    }

    #[test]
    fn any_refusal_releases_every_hold_and_refunds() {
        let (a, b) = two_shard_skus();
        let host = Host::new(&[(a, 5), (b, 1)]);
        assert_eq!(
            host.run("o1", "tok_visa", &[(a, 2), (b, 2)]).unwrap(),
            CheckoutOutcome::Insufficient {
                sku: sku(b),
                available: 1
            }
        );
        assert!(matches!(
            host.run("o2", "tok_declined", &[(a, 2), (b, 1)]).unwrap(),
            CheckoutOutcome::Declined { .. }
        ));
        assert_eq!(
            host.run("o3", "tok_timeout", &[(a, 2)]).unwrap(),
            CheckoutOutcome::PaymentTimeout
        );
        assert_eq!(
            host.run("o4", "tok_visa", &[(a, 1), ("NOPE", 1)]).unwrap(),
            CheckoutOutcome::UnknownSku { sku: sku("NOPE") }
        );
        assert_eq!((host.level(a), host.level(b)), ((5, 0, 0), (1, 0, 0)));
        assert!(host.payments.charges().values().all(|c| c.refunded));
    }

    #[test]
    fn a_hold_that_ran_out_before_commit_sells_nothing() {
        let (a, b) = two_shard_skus();
        let host = Host::new(&[(a, 5), (b, 5)]);
        let checkout = host.checkout();
        let id = OrderId::parse("slow").unwrap();
        // The holds were placed long ago (a crash after reserving), then the checkout resumes.
        block_on(host.stock.on_shard(
            SkuShard::of(&sku(a)),
            ShardRequest::Reserve {
                order: id.clone(),
                lines: vec![Line {
                    sku: sku(a),
                    qty: 1,
                }],
                ttl_ms: CHECKOUT_HOLD_TTL_MS,
            },
        ))
        .unwrap();
        host.clock.advance(CHECKOUT_HOLD_TTL_MS + 1);
        let outcome = host.run("slow", "tok_visa", &[(a, 1), (b, 1)]).unwrap();
        assert_eq!(outcome, CheckoutOutcome::HoldExpired);
        assert_eq!((host.level(a), host.level(b)), ((5, 0, 0), (5, 0, 0)));
        assert_eq!(
            block_on(checkout.resume(&id)).unwrap(),
            Some(CheckoutOutcome::HoldExpired)
        );
    }

    #[test]
    fn a_held_cart_checks_out_with_its_holds_and_a_changed_cart_gives_them_back() {
        let (a, b) = two_shard_skus();
        let host = Host::new(&[(a, 5), (b, 5)]);
        let lines = |qa: u32, qb: u32| {
            vec![
                Line {
                    sku: sku(a),
                    qty: qa,
                },
                Line {
                    sku: sku(b),
                    qty: qb,
                },
            ]
        };
        let id = OrderId::parse("cart1").unwrap();
        let held = block_on(hold_cart(&host.stock, &id, &lines(2, 1))).unwrap();
        assert_eq!(
            held,
            CartHold::Held {
                expires_at_ms: CHECKOUT_HOLD_TTL_MS
            }
        );
        assert_eq!(
            block_on(hold_cart(&host.stock, &id, &lines(2, 1))).unwrap(),
            held,
            "holding again is the same hold"
        );
        assert_eq!((host.level(a), host.level(b)), ((3, 2, 0), (4, 1, 0)));
        // Checkout under the same id sells exactly the held units.
        assert!(matches!(
            host.run("cart1", "tok_visa", &[(a, 2), (b, 1)]).unwrap(),
            CheckoutOutcome::Placed(_)
        ));
        assert_eq!((host.level(a), host.level(b)), ((3, 0, 2), (4, 0, 1)));
        // A cart that changed: the old holds go back, the old id is spent.
        let id2 = OrderId::parse("cart2").unwrap();
        block_on(hold_cart(&host.stock, &id2, &lines(1, 1))).unwrap();
        block_on(release_cart(&host.stock, &id2, &lines(1, 1))).unwrap();
        assert_eq!((host.level(a), host.level(b)), ((3, 0, 2), (4, 0, 1)));
        assert_eq!(
            block_on(hold_cart(&host.stock, &id2, &lines(1, 1))).unwrap(),
            CartHold::Spent
        );
        // A line that cannot be had holds nothing anywhere.
        let id3 = OrderId::parse("cart3").unwrap();
        let refused = block_on(hold_cart(&host.stock, &id3, &lines(1, 9))).unwrap();
        assert_eq!(
            refused,
            CartHold::Refused {
                sku: Some(sku(b)),
                available: 4
            }
        );
        assert_eq!((host.level(a), host.level(b)), ((3, 0, 2), (4, 0, 1)));
    }

    #[test]
    fn runs_of_one_order_take_turns_and_leave_nothing_behind() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let turns = OrderTurns::default();
        let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let id = OrderId::parse("o1").unwrap();
        let run = || async {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Yield once, so the other runs get polled while this one is inside.
            let mut yielded = false;
            futures::future::poll_fn(|cx| {
                if yielded {
                    std::task::Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
            inside.fetch_sub(1, Ordering::SeqCst);
        };
        let runs = (0..5).map(|_| turns.run(&id, run()));
        block_on(futures::future::join_all(runs));
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two runs of one order overlapped"
        );
        assert_eq!(turns.busy(), 0);
        // A caller dropped mid-run gives its turn back.
        let mut dropped = Box::pin(turns.run(&id, futures::future::pending::<()>()));
        assert!(futures::FutureExt::now_or_never(&mut dropped).is_none());
        assert_eq!(turns.busy(), 1);
        drop(dropped);
        assert_eq!(turns.busy(), 0);
        // Bounded: a new order is refused while the table is full; a busy one still queues.
        let bounded = OrderTurns::bounded(1);
        let mut busy = Box::pin(bounded.try_run(&id, futures::future::pending::<()>()));
        assert!(futures::FutureExt::now_or_never(&mut busy).is_none());
        let other = OrderId::parse("o2").unwrap();
        assert!(matches!(
            block_on(bounded.try_run(&other, async {})),
            Err(StoreError::Unavailable(_))
        ));
        let mut queued = Box::pin(bounded.try_run(&id, async {}));
        assert!(futures::FutureExt::now_or_never(&mut queued).is_none());
        drop(busy);
        assert!(block_on(queued).is_ok());
        assert_eq!(bounded.busy(), 0);
        assert!(block_on(bounded.try_run(&other, async {})).is_ok());
        assert_eq!(block_on(turns.run(&id, async { 7 })), 7);
    }

    #[test]
    fn a_cancel_returns_the_lines_and_the_promotion_uses_and_a_return_only_the_lines() {
        let order_id = OrderId::parse("o1").unwrap();
        let promotion = |id: &str| crate::promo::AppliedPromotion {
            id: id.into(),
            title: id.into(),
            code: None,
            saving: Money::new(100, "USD"),
            lines: Vec::new(),
            shipping_saving_minor: 0,
        };
        let order = Order {
            id: order_id.clone(),
            email: "A@b.co".into(),
            lines: vec![OrderLine {
                sku: sku("MUG-1"),
                title: "Mug".into(),
                qty: 2,
                unit_price: Money::new(500, "USD"),
            }],
            total: Money::new(900, "USD"),
            status: OrderStatus::Paid,
            charge_id: "ch".into(),
            placed_at_ms: 0,
            history: Vec::new(),
            pricing: Some(OrderPricing {
                subtotal: Money::new(1_000, "USD"),
                discount: Money::new(100, "USD"),
                shipping: Money::new(0, "USD"),
                // An id that cannot make a SKU (a bad order from the wire) is passed over.
                promotions: vec![promotion("FIVE"), promotion("not a sku id")],
            }),
        };
        let cancel = |order: &OrderId, skus: &[Sku]| -> Vec<(SkuShard, ShardRequest)> {
            let shards: std::collections::BTreeSet<SkuShard> =
                skus.iter().map(SkuShard::of).collect();
            shards
                .into_iter()
                .map(|shard| {
                    (
                        shard,
                        ShardRequest::Cancel {
                            order: order.clone(),
                        },
                    )
                })
                .collect()
        };
        let lines = cancel(&order_id, &[sku("MUG-1")]);
        let counters = [
            crate::promo::usage_sku("FIVE", None),
            crate::promo::usage_sku("FIVE", Some("a@b.co")),
        ];
        let uses = cancel(&usage_order_id(&order_id), &counters);
        assert_eq!(
            stock_returns(&order, OrderStatus::Cancelled),
            [lines.clone(), uses].concat()
        );
        assert_eq!(stock_returns(&order, OrderStatus::Restocked), lines);
        assert_eq!(stock_returns(&order, OrderStatus::Refunded), []);
        assert_eq!(
            stock_returns(
                &Order {
                    pricing: None,
                    ..order.clone()
                },
                OrderStatus::Cancelled
            ),
            lines
        );
    }

    #[test]
    fn a_priced_order_from_elsewhere_is_checked_before_it_runs() {
        let line = OrderLine {
            sku: sku("MUG-1"),
            title: "Mug".into(),
            qty: 2,
            unit_price: Money::new(500, "USD"),
        };
        let claim = |id: &str, shopper| crate::promo::UsageClaim {
            sku: crate::promo::usage_sku(id, shopper),
            limit: 3,
        };
        let priced = PricedOrder {
            lines: vec![line],
            total: Money::new(1_200, "USD"),
            pricing: Some(OrderPricing {
                subtotal: Money::new(1_000, "USD"),
                discount: Money::new(100, "USD"),
                shipping: Money::new(300, "USD"),
                promotions: vec![crate::promo::AppliedPromotion {
                    id: "FIVE".into(),
                    title: "Five".into(),
                    code: Some("FIVE".into()),
                    saving: Money::new(100, "USD"),
                    lines: Vec::new(),
                    shipping_saving_minor: 0,
                }],
            }),
            usage: vec![claim("FIVE", None), claim("FIVE", Some("a@b.co"))],
        };
        assert_eq!(priced.check(" A@b.co"), Ok(()));
        let refusal = |change: &dyn Fn(&mut PricedOrder)| {
            let mut bad = priced.clone();
            change(&mut bad);
            bad.check("a@b.co").unwrap_err()
        };
        assert_eq!(
            refusal(&|p| p.total.minor = 1_100),
            "total 1100 USD is not the lines less the discount plus shipping (1200 USD)"
        );
        assert!(refusal(&|p| p.pricing = None).starts_with("total 1200 USD is not"));
        assert!(
            refusal(&|p| p.pricing.as_mut().unwrap().discount.minor = 2_000)
                .starts_with("the lines and pricing do not add up")
        );
        assert_eq!(
            refusal(&|p| p.usage.push(claim("FIVE", Some("c@d.co")))),
            format!(
                "usage claim {} is not a counter of a promotion the order applies",
                crate::promo::usage_sku("FIVE", Some("c@d.co"))
            )
        );
        assert_eq!(
            refusal(&|p| p.usage.push(claim("FIVE", None))),
            "usage claim promo.FIVE is made twice"
        );
        assert!(refusal(&|p| p.usage.push(claim("OTHER", None)))
            .starts_with("usage claim promo.OTHER is not"));
    }

    #[test]
    fn order_ids_from_keys_are_stable_and_distinct() {
        assert_eq!(order_id_for_key("k1"), order_id_for_key("k1"));
        assert_ne!(order_id_for_key("k1"), order_id_for_key("k2"));
        assert_eq!(order_id_for_key("k1").as_str().len(), 33);
    }
}
