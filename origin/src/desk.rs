//! The origin's order desk: checkouts of its own storefront run in process ([`LocalDesk`]) over
//! the SQLite coordinator and checkout log, and every placed order goes into the orders table.
//!
//! A placed order is delivered to the [`OrderBook`] right after the checkout, before the
//! shopper's 201. A delivery that fails does not fail the checkout (the order is already durable
//! in its checkout record); [`OriginDesk::recover`], run at startup and every few seconds,
//! delivers it later, and also finishes checkouts a crash left open (their holds would otherwise
//! sit until their TTL, and a paid order never reach the table).
//!
//! Checkouts of one order id run one at a time ([`OrderLocks`]): a shopper's retry and the
//! recovery loop never advance the same checkout concurrently, as on Cloudflare, where the
//! order's Durable Object is its single owner.

use crate::orders::{OrderBook, Unfinished};
use edge_core::checkout::{CheckoutError, CheckoutOutcome, LocalDesk, OrderDesk, PricedOrder};
use edge_core::order::{CheckoutRequest, Order};
use edge_core::snapshot::Clock;
use edge_core::stock::OrderId;
use edge_core::store::{BoxFuture, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Checkouts in flight at once before more are refused (503): bounds the lock table.
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

type LockTable = HashMap<OrderId, (Arc<tokio::sync::Mutex<()>>, usize)>;

/// One async lock per order id in flight; an entry lives only while someone holds or awaits it.
///
/// Like `edge_core::checkout::OrderTurns` (which `LocalDesk::checkout` takes, and this desk
/// bypasses by running the saga itself), plus what a long-running server needs: the table is
/// bounded, and a caller that gives up (its HTTP request dropped) mid-wait or mid-run is counted
/// out by a drop guard instead of leaving its entry behind.
#[derive(Default)]
pub struct OrderLocks {
    /// Each order's lock and how many callers hold or await it.
    locks: Mutex<LockTable>,
}

/// A caller's claim on an order's lock, from the moment it starts waiting; dropping it (after
/// the turn, or while still waiting) lets the next checkout of that order run.
pub struct OrderGuard<'a> {
    locks: &'a OrderLocks,
    id: OrderId,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl OrderLocks {
    fn table(&self) -> std::sync::MutexGuard<'_, LockTable> {
        // Nothing panics while the table is locked; a poisoned table is still consistent.
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the order's turn.
    pub async fn lock(&self, id: &OrderId) -> Result<OrderGuard<'_>, StoreError> {
        let lock = {
            let mut table = self.table();
            if table.len() >= CHECKOUTS_IN_FLIGHT_MAX && !table.contains_key(id) {
                return Err(StoreError::Unavailable(format!(
                    "{CHECKOUTS_IN_FLIGHT_MAX} checkouts are in flight; retry shortly"
                )));
            }
            let (lock, users) = table.entry(id.clone()).or_default();
            *users += 1;
            lock.clone()
        };
        // The claim exists before the wait, so a caller that gives up while waiting still
        // counts itself out.
        let mut claim = OrderGuard {
            locks: self,
            id: id.clone(),
            turn: None,
        };
        claim.turn = Some(lock.lock_owned().await);
        Ok(claim)
    }

    /// Order ids with a checkout in flight (tests: the table empties after use).
    pub fn in_flight(&self) -> usize {
        self.table().len()
    }
}

impl Drop for OrderGuard<'_> {
    fn drop(&mut self) {
        drop(self.turn.take());
        let mut table = self.locks.table();
        if let Some((_, users)) = table.get_mut(&self.id) {
            *users -= 1;
            if *users == 0 {
                table.remove(&self.id);
            }
        }
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
    locks: OrderLocks,
}

impl OriginDesk {
    pub fn new(local: LocalDesk, book: OrderBook) -> Self {
        Self {
            local,
            book,
            locks: OrderLocks::default(),
        }
    }

    pub fn locks(&self) -> &OrderLocks {
        &self.locks
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
            let _turn = self.locks.lock(&id).await?;
            let checkout = self.local.checkout_with();
            if state == Unfinished::Open {
                match checkout.resume(&id).await {
                    Ok(_) => report.resumed += 1,
                    Err(e) => {
                        eprintln!("origin: resuming checkout {id} failed (will retry): {e}");
                        report.failed += 1;
                        continue;
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
            let _turn = self.locks.lock(&order_id).await?;
            let outcome = self
                .local
                .checkout_with()
                .run_priced(order_id.clone(), request, priced)
                .await?;
            if matches!(outcome, CheckoutOutcome::Placed(_)) {
                self.deliver_now(&order_id).await;
            }
            Ok(outcome)
        })
    }

    fn order<'a>(
        &'a self,
        order_id: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<Order>, StoreError>> {
        self.local.order(order_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_checkout_per_order_at_a_time_and_no_entry_left_behind() {
        let locks = OrderLocks::default();
        let a = OrderId::parse("a").unwrap();
        let held = locks.lock(&a).await.unwrap();
        // A second caller for the same order waits; one that gives up leaves no entry.
        let waited = tokio::time::timeout(Duration::from_millis(10), locks.lock(&a)).await;
        assert!(waited.is_err(), "the same order must wait its turn");
        let b = locks.lock(&OrderId::parse("b").unwrap()).await.unwrap();
        assert_eq!(locks.in_flight(), 2);
        drop(held);
        drop(b);
        assert_eq!(locks.in_flight(), 0, "given-up waiters are counted out");
        drop(locks.lock(&a).await.unwrap());
        assert_eq!(locks.in_flight(), 0);
    }
}
