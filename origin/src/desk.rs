//! The origin's order desk: checkouts of its own storefront run in process ([`LocalDesk`]) over
//! the SQLite coordinator and checkout log, and every placed order goes into the orders table.
//!
//! A placed order is delivered to the [`OrderBook`] right after the checkout, before the
//! shopper's 201. A delivery that fails does not fail the checkout (the order is already durable
//! in its checkout record); [`OriginDesk::recover`], run at startup and every few seconds,
//! delivers it later, and also finishes checkouts a crash left open (their holds would otherwise
//! sit until their TTL, and a paid order never reach the table).
//!
//! Checkouts of one order id run one at a time (`edge_core::checkout::OrderTurns`, bounded to
//! [`CHECKOUTS_IN_FLIGHT_MAX`] orders): a shopper's retry and the recovery loop never advance the
//! same checkout concurrently, as on Cloudflare, where the order's Durable Object is its single
//! owner.

use crate::orders::{OrderBook, Unfinished};
use edge_core::checkout::{
    CheckoutError, CheckoutOutcome, LocalDesk, OrderDesk, OrderTurns, PricedOrder,
};
use edge_core::order::{CheckoutRequest, Order};
use edge_core::snapshot::Clock;
use edge_core::stock::OrderId;
use edge_core::store::{BoxFuture, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Checkouts in flight at once before more are refused (503): bounds the turns table.
pub const CHECKOUTS_IN_FLIGHT_MAX: usize = 10_000;
/// An open checkout younger than this is probably still running: recovery leaves it alone.
pub const RESUME_AFTER_MS: u64 = 5_000;
/// How often recovery looks for unfinished checkouts.
pub const RECOVERY_TICK_MS: u64 = 3_000;
/// Unfinished checkouts one recovery pass handles; the rest wait for the next pass.
pub const RECOVERY_BATCH_MAX: usize = 500;

/// The wall clock, in milliseconds since the Unix epoch.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// What one recovery pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Open checkouts run to an outcome.
    pub resumed: u32,
    /// Placed orders newly written to the orders table.
    pub delivered: u32,
    /// Checkouts that failed again (transient): the next pass retries them.
    pub failed: u32,
}

/// The [`OrderDesk`] of the origin's storefront.
pub struct OriginDesk {
    pub local: LocalDesk,
    pub book: OrderBook,
    turns: OrderTurns,
}

impl OriginDesk {
    pub fn new(local: LocalDesk, book: OrderBook) -> Self {
        Self {
            local,
            book,
            turns: OrderTurns::bounded(CHECKOUTS_IN_FLIGHT_MAX),
        }
    }

    /// The orders' turns (tests: nothing is left busy after use).
    pub fn turns(&self) -> &OrderTurns {
        &self.turns
    }

    /// Delivers a placed order; a failure is reported and left to recovery.
    async fn deliver_now(&self, id: &OrderId) {
        if let Err(e) = self.local.checkout_with().deliver(id, &self.book).await {
            eprintln!("origin: order {id} placed, delivery deferred to recovery: {e}");
        }
    }

    /// One recovery pass: resumes checkouts open for more than [`RESUME_AFTER_MS`] and
    /// delivers placed orders that are not in the orders table yet.
    pub async fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let now_ms = self.local.clock.now_ms();
        let cutoff_ms = now_ms.saturating_sub(RESUME_AFTER_MS);
        let unfinished = self.book.unfinished(cutoff_ms, RECOVERY_BATCH_MAX).await?;
        let mut report = RecoveryReport::default();
        for (id, state) in unfinished {
            let pass = async {
                let checkout = self.local.checkout_with();
                if state == Unfinished::Open {
                    match checkout.resume(&id).await {
                        Ok(_) => report.resumed += 1,
                        Err(e) => {
                            eprintln!("origin: resuming checkout {id} failed (will retry): {e}");
                            report.failed += 1;
                            return;
                        }
                    }
                }
                match checkout.deliver(&id, &self.book).await {
                    Ok(true) => report.delivered += 1,
                    Ok(false) => {}
                    Err(e) => {
                        eprintln!("origin: delivering order {id} failed (will retry): {e}");
                        report.failed += 1;
                    }
                }
            };
            self.turns.try_run(&id, pass).await?;
        }
        Ok(report)
    }

    /// Runs [`Self::recover`] now and then every [`RECOVERY_TICK_MS`], for as long as the
    /// runtime runs.
    pub fn spawn_recovery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let desk = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(RECOVERY_TICK_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match desk.recover().await {
                    Ok(report) if report != RecoveryReport::default() => {
                        eprintln!("origin: recovery: {report:?}");
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("origin: recovery pass failed (retrying): {e}"),
                }
            }
        })
    }
}

impl OrderDesk for OriginDesk {
    fn checkout_priced(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        priced: PricedOrder,
    ) -> BoxFuture<'_, Result<CheckoutOutcome, CheckoutError>> {
        Box::pin(async move {
            let run = async {
                let outcome = self
                    .local
                    .checkout_with()
                    .run_priced(order_id.clone(), request, priced)
                    .await?;
                if matches!(outcome, CheckoutOutcome::Placed(_)) {
                    self.deliver_now(&order_id).await;
                }
                Ok(outcome)
            };
            self.turns.try_run(&order_id, run).await?
        })
    }

    fn order<'a>(
        &'a self,
        order_id: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<Order>, StoreError>> {
        self.local.order(order_id)
    }
}
