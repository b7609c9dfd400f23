//! Stock: the single-writer state machine of one shard, and the wire protocol to reach it.
//!
//! A shard owns the stock of its SKUs ([`crate::shard::SkuShard::of`]) and the holds orders
//! place on them. It applies [`ShardRequest`]s one at a time to its [`ShardStorage`] through
//! [`apply`], the only code that changes stock. Every storage method is synchronous on purpose:
//! a host must not yield between reading a level and writing it back, or two reservations could
//! both see the last unit (the Durable Object's SQLite API and a `Mutex`-guarded connection both
//! give that). A host runs each `apply` in one storage transaction, so a fault part-way through
//! leaves nothing half written.
//!
//! # Holds
//! `Reserve` moves units from *available* to *held* for an order, all lines of the order on this
//! shard or none; `Commit` moves them to *sold*; `Release`, or the hold's TTL running out, moves
//! them back. Every operation is idempotent by order id: a repeated or reordered message finds the
//! order's hold record and answers from it. A `Release` of an order the shard has never seen
//! leaves a tombstone, so a `Reserve` that arrives after it (reordered) holds nothing.
//!
//! # Invariant
//! For every SKU, `received == available + held + sold`, where `received` is the initial level
//! plus every restock and adjustment; all counts are unsigned, so nothing goes below zero.
//! [`StockLevel::check`] asserts it before every write.

use crate::product::Sku;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Largest quantity one order line may take; bounds a single request's effect.
pub const RESERVE_QTY_MAX: u32 = 1_000;
/// Largest number of SKUs one seed request may carry.
pub const SEED_BATCH_MAX: usize = 10_000;
/// Most lines in one order.
pub const ORDER_LINES_MAX: usize = 50;
/// Largest single restock.
pub const RESTOCK_QTY_MAX: u32 = 1_000_000;
/// Shortest and longest hold a reservation may ask for.
pub const HOLD_TTL_MS_MIN: u64 = 1_000;
pub const HOLD_TTL_MS_MAX: u64 = 60 * 60 * 1_000;
/// Holds one `Expire` releases at most; the host calls again while more are due.
pub const EXPIRE_BATCH_MAX: usize = 500;
/// Longest order id.
pub const ORDER_ID_LEN_MAX: usize = 64;

/// An order's identifier: 1 to 64 characters of `A-Z a-z 0-9 - _`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > ORDER_ID_LEN_MAX {
            return Err(format!(
                "order id must be 1 to {ORDER_ID_LEN_MAX} characters long"
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_".contains(*c)))
        {
            return Err(format!(
                "order id contains {bad:?}; allowed are letters, digits, '-' and '_'"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderId {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> String {
        id.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `qty` units of one SKU. Unknown fields are refused: a client cannot send a price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub sku: Sku,
    pub qty: u32,
}

/// Checks an order's lines: 1 to [`ORDER_LINES_MAX`], each SKU once, each qty 1 to
/// [`RESERVE_QTY_MAX`].
pub fn validate_lines(lines: &[Line]) -> Result<(), String> {
    if lines.is_empty() || lines.len() > ORDER_LINES_MAX {
        return Err(format!(
            "an order has 1 to {ORDER_LINES_MAX} lines, got {}",
            lines.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for line in lines {
        if line.qty == 0 || line.qty > RESERVE_QTY_MAX {
            return Err(format!(
                "qty of {} must be 1 to {RESERVE_QTY_MAX}, got {}",
                line.sku, line.qty
            ));
        }
        if !seen.insert(&line.sku) {
            return Err(format!("SKU {} appears on more than one line", line.sku));
        }
    }
    Ok(())
}

/// One SKU's stock. `received` is everything that ever came in (initial level, restocks,
/// adjustments); the other three say where it is now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    pub received: u64,
}

impl StockLevel {
    /// A new SKU with `available` units and nothing held or sold.
    pub fn fresh(available: u32) -> Self {
        Self {
            available,
            held: 0,
            sold: 0,
            received: u64::from(available),
        }
    }

    /// The stock invariant: every unit received is available, held or sold.
    pub fn check(&self, sku: &Sku) -> Result<(), StorageFault> {
        let accounted = u64::from(self.available) + u64::from(self.held) + u64::from(self.sold);
        if accounted == self.received {
            Ok(())
        } else {
            Err(StorageFault(format!(
                "stock invariant broken for {sku}: received {} but available {} + held {} + sold {} = {accounted}",
                self.received, self.available, self.held, self.sold
            )))
        }
    }

    fn hold(&mut self, qty: u32) {
        self.available -= qty;
        self.held += qty;
    }

    fn unhold(&mut self, qty: u32, sold: bool) -> Result<(), String> {
        self.held = self
            .held
            .checked_sub(qty)
            .ok_or_else(|| format!("releasing {qty} but only {} held", self.held))?;
        if sold {
            self.sold = self.sold.checked_add(qty).ok_or("sold count overflow")?;
        } else {
            self.available = self
                .available
                .checked_add(qty)
                .ok_or("available count overflow")?;
        }
        Ok(())
    }

    fn unsell(&mut self, qty: u32) -> Result<(), String> {
        self.sold = self
            .sold
            .checked_sub(qty)
            .ok_or_else(|| format!("cancelling {qty} but only {} sold", self.sold))?;
        self.available = self
            .available
            .checked_add(qty)
            .ok_or("available count overflow")?;
        Ok(())
    }
}

/// The receipt a restock runs under, derived from the caller's idempotency key: a retry of the
/// same key finds the same receipt. Never an order's id (those start `o` or `r` + hex).
pub fn receipt_for_key(key: &str) -> OrderId {
    let a = crate::shard::fnv1a_64(key.as_bytes());
    let b = crate::shard::fnv1a_64(&[key.as_bytes(), b"\x00receipt"].concat());
    OrderId::parse(&format!("receipt-{a:016x}{b:016x}")).expect("hex is a valid id")
}

/// Where an order's hold on this shard stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldState {
    Held {
        expires_at_ms: u64,
    },
    Committed,
    /// Returned to stock: released by the caller (`expired == false`) or by its TTL.
    Released {
        expired: bool,
    },
    /// Sold, then cancelled: the units went back to available.
    Cancelled,
    /// Not an order: a restock receipt, whose line is the units it added. Kept so a repeated
    /// restock (a resubmitted form, a retried call) adds nothing.
    Received,
}

/// An order's lines on one shard and their state. Kept after commit or release, so repeated
/// messages are answered the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub lines: Vec<Line>,
    pub state: HoldState,
}

/// A request to one shard. CBOR-encoded when it crosses a process or isolate boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardRequest {
    Level {
        sku: Sku,
    },
    /// Holds every line for `order` for `ttl_ms`, or nothing.
    Reserve {
        order: OrderId,
        lines: Vec<Line>,
        ttl_ms: u64,
    },
    /// Turns the order's hold into a sale.
    Commit {
        order: OrderId,
    },
    /// Returns the order's hold to stock.
    Release {
        order: OrderId,
    },
    /// Undoes a sale: a committed order's units go back to available (a cancel before shipping,
    /// or a checkout that could not commit on every shard). A held order is released.
    Cancel {
        order: OrderId,
    },
    /// Releases holds whose TTL has run out (the host's alarm or timer sends it).
    Expire,
    /// Adds units that arrived. With a `receipt`, at most once: a repeat answers the current
    /// level with `repeated` set, and the receipt cannot be reused for other units.
    Restock {
        sku: Sku,
        qty: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        receipt: Option<OrderId>,
    },
    /// Sets levels for SKUs; with `overwrite == false` existing levels are kept (first publish only).
    Seed {
        levels: Vec<(Sku, u32)>,
        overwrite: bool,
    },
}

/// A shard's answer to a [`ShardRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardReply {
    /// `None`: the shard holds no stock record for the SKU (unknown SKU).
    Level {
        level: Option<StockLevel>,
    },
    /// The order's lines are held until `expires_at_ms`.
    Held {
        expires_at_ms: u64,
    },
    /// Nothing was held: `sku` has only `available` units.
    Insufficient {
        sku: Sku,
        available: u32,
    },
    /// Nothing was held: the shard has no stock record for `sku`.
    UnknownSku {
        sku: Sku,
    },
    /// The order's hold is sold.
    Committed,
    /// The order's hold is (or was already) back in stock; `expired` when its TTL ran out.
    Released {
        expired: bool,
    },
    /// Commit of an order the shard holds nothing for (never reserved here).
    NotHeld,
    /// Release of an order that was already sold: use `Cancel`.
    AlreadyCommitted,
    /// The order's sale is undone (or was already).
    Cancelled,
    Expired {
        released: u32,
    },
    Restocked {
        level: StockLevel,
        /// The restock's receipt was already recorded: nothing was added this time.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeated: bool,
    },
    Seeded {
        written: u32,
        kept: u32,
    },
    /// The request was refused as malformed; nothing changed.
    Rejected {
        reason: String,
    },
}

/// A shard's storage failed (its database is unreadable or full); the request changed nothing
/// it could not finish and may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard storage fault: {0}")]
pub struct StorageFault(pub String);

/// Storage of one shard: stock levels and hold records. Synchronous so a read-modify-write
/// cannot interleave; a host wraps each [`apply`] in one transaction.
pub trait ShardStorage {
    fn level(&self, sku: &Sku) -> Result<Option<StockLevel>, StorageFault>;
    fn set_level(&mut self, sku: &Sku, level: &StockLevel) -> Result<(), StorageFault>;
    fn hold(&self, order: &OrderId) -> Result<Option<Hold>, StorageFault>;
    fn set_hold(&mut self, order: &OrderId, hold: &Hold) -> Result<(), StorageFault>;
    /// Orders still `Held` whose expiry is at or before `now_ms`, at most `limit`.
    fn due_holds(&self, now_ms: u64, limit: usize) -> Result<Vec<OrderId>, StorageFault>;
    /// The earliest expiry among `Held` orders: when the host should next send `Expire`.
    fn next_expiry(&self) -> Result<Option<u64>, StorageFault>;
}

fn write_level(
    storage: &mut impl ShardStorage,
    sku: &Sku,
    level: &StockLevel,
) -> Result<(), StorageFault> {
    level.check(sku)?;
    storage.set_level(sku, level)
}

/// Applies one request to a shard's storage at time `now_ms`. The only code that changes stock.
pub fn apply(
    storage: &mut impl ShardStorage,
    request: ShardRequest,
    now_ms: u64,
) -> Result<ShardReply, StorageFault> {
    match request {
        ShardRequest::Level { sku } => Ok(ShardReply::Level {
            level: storage.level(&sku)?,
        }),
        ShardRequest::Reserve {
            order,
            lines,
            ttl_ms,
        } => reserve(storage, &order, lines, ttl_ms, now_ms),
        ShardRequest::Commit { order } => commit(storage, &order, now_ms),
        ShardRequest::Release { order } => release(storage, &order, now_ms),
        ShardRequest::Cancel { order } => match storage.hold(&order)? {
            Some(hold) if hold.state == HoldState::Committed => {
                finish(storage, &order, hold, HoldState::Cancelled)?;
                Ok(ShardReply::Cancelled)
            }
            Some(Hold {
                state: HoldState::Cancelled,
                ..
            }) => Ok(ShardReply::Cancelled),
            _ => release(storage, &order, now_ms),
        },
        ShardRequest::Expire => {
            let due = storage.due_holds(now_ms, EXPIRE_BATCH_MAX)?;
            let mut released = 0;
            for order in due {
                if let Some(hold) = storage.hold(&order)? {
                    if matches!(hold.state, HoldState::Held { .. }) {
                        finish(storage, &order, hold, HoldState::Released { expired: true })?;
                        released += 1;
                    }
                }
            }
            Ok(ShardReply::Expired { released })
        }
        ShardRequest::Restock { qty, .. } if qty == 0 || qty > RESTOCK_QTY_MAX => {
            Ok(ShardReply::Rejected {
                reason: format!("restock qty must be 1 to {RESTOCK_QTY_MAX}"),
            })
        }
        ShardRequest::Restock { sku, qty, receipt } => {
            let lines = vec![Line { sku, qty }];
            let sku = &lines[0].sku;
            if let Some(receipt) = &receipt {
                if let Some(hold) = storage.hold(receipt)? {
                    return Ok(
                        if hold.state == HoldState::Received && hold.lines == lines {
                            ShardReply::Restocked {
                                level: storage.level(sku)?.unwrap_or_default(),
                                repeated: true,
                            }
                        } else {
                            ShardReply::Rejected {
                                reason: format!(
                                    "receipt {receipt} was already used for something else"
                                ),
                            }
                        },
                    );
                }
            }
            let mut level = storage.level(sku)?.unwrap_or_default();
            let Some(available) = level.available.checked_add(qty) else {
                return Ok(ShardReply::Rejected {
                    reason: format!("restocking {sku} by {qty} overflows its level"),
                });
            };
            level.available = available;
            level.received += u64::from(qty);
            write_level(storage, sku, &level)?;
            if let Some(receipt) = &receipt {
                storage.set_hold(
                    receipt,
                    &Hold {
                        lines,
                        state: HoldState::Received,
                    },
                )?;
            }
            Ok(ShardReply::Restocked {
                level,
                repeated: false,
            })
        }
        ShardRequest::Seed { levels, .. } if levels.len() > SEED_BATCH_MAX => {
            Ok(ShardReply::Rejected {
                reason: format!("at most {SEED_BATCH_MAX} SKUs per seed"),
            })
        }
        ShardRequest::Seed { levels, overwrite } => {
            let (mut written, mut kept) = (0, 0);
            for (sku, available) in levels {
                let level = match storage.level(&sku)? {
                    None => StockLevel::fresh(available),
                    // A correction: what is held or sold stays, `received` follows the new level.
                    Some(old) if overwrite => StockLevel {
                        available,
                        received: u64::from(available) + u64::from(old.held) + u64::from(old.sold),
                        ..old
                    },
                    Some(_) => {
                        kept += 1;
                        continue;
                    }
                };
                write_level(storage, &sku, &level)?;
                written += 1;
            }
            Ok(ShardReply::Seeded { written, kept })
        }
    }
}

fn reserve(
    storage: &mut impl ShardStorage,
    order: &OrderId,
    lines: Vec<Line>,
    ttl_ms: u64,
    now_ms: u64,
) -> Result<ShardReply, StorageFault> {
    if let Err(reason) = validate_lines(&lines) {
        return Ok(ShardReply::Rejected { reason });
    }
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ttl_ms) {
        return Ok(ShardReply::Rejected {
            reason: format!("ttl_ms must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX}"),
        });
    }
    if let Some(hold) = storage.hold(order)? {
        if hold.state == HoldState::Received {
            return Ok(not_an_order(order));
        }
        // A repeated (or late) reserve: answer from the record, never hold twice.
        if hold.lines != lines && !hold.lines.is_empty() {
            return Ok(ShardReply::Rejected {
                reason: format!("order {order} already holds different lines"),
            });
        }
        return match hold.state {
            HoldState::Held { expires_at_ms } if expires_at_ms > now_ms => {
                Ok(ShardReply::Held { expires_at_ms })
            }
            HoldState::Held { .. } => {
                finish(storage, order, hold, HoldState::Released { expired: true })?;
                Ok(ShardReply::Released { expired: true })
            }
            HoldState::Committed => Ok(ShardReply::Committed),
            HoldState::Released { expired } => Ok(ShardReply::Released { expired }),
            HoldState::Cancelled => Ok(ShardReply::Cancelled),
            HoldState::Received => Ok(not_an_order(order)),
        };
    }
    // Read every level first; write only when all lines fit.
    let mut levels = Vec::with_capacity(lines.len());
    for line in &lines {
        let Some(level) = storage.level(&line.sku)? else {
            return Ok(ShardReply::UnknownSku {
                sku: line.sku.clone(),
            });
        };
        if level.available < line.qty {
            return Ok(ShardReply::Insufficient {
                sku: line.sku.clone(),
                available: level.available,
            });
        }
        levels.push(level);
    }
    for (line, mut level) in lines.iter().zip(levels) {
        let before = level;
        level.hold(line.qty);
        debug_assert_eq!(
            before.available - level.available,
            line.qty,
            "a hold takes exactly qty"
        );
        write_level(storage, &line.sku, &level)?;
    }
    let expires_at_ms = now_ms.saturating_add(ttl_ms);
    storage.set_hold(
        order,
        &Hold {
            lines,
            state: HoldState::Held { expires_at_ms },
        },
    )?;
    Ok(ShardReply::Held { expires_at_ms })
}

fn commit(
    storage: &mut impl ShardStorage,
    order: &OrderId,
    now_ms: u64,
) -> Result<ShardReply, StorageFault> {
    let Some(hold) = storage.hold(order)? else {
        return Ok(ShardReply::NotHeld);
    };
    match hold.state {
        HoldState::Held { expires_at_ms } if expires_at_ms > now_ms => {
            finish(storage, order, hold, HoldState::Committed)?;
            Ok(ShardReply::Committed)
        }
        // Past its TTL: the units go back even if no `Expire` ran yet, so the TTL is exact.
        HoldState::Held { .. } => {
            finish(storage, order, hold, HoldState::Released { expired: true })?;
            Ok(ShardReply::Released { expired: true })
        }
        HoldState::Committed => Ok(ShardReply::Committed),
        HoldState::Released { expired } => Ok(ShardReply::Released { expired }),
        HoldState::Cancelled => Ok(ShardReply::Cancelled),
        HoldState::Received => Ok(not_an_order(order)),
    }
}

fn release(
    storage: &mut impl ShardStorage,
    order: &OrderId,
    now_ms: u64,
) -> Result<ShardReply, StorageFault> {
    let Some(hold) = storage.hold(order)? else {
        // A tombstone: a reserve for this order that arrives later holds nothing.
        let tombstone = Hold {
            lines: Vec::new(),
            state: HoldState::Released { expired: false },
        };
        storage.set_hold(order, &tombstone)?;
        return Ok(ShardReply::Released { expired: false });
    };
    match hold.state {
        HoldState::Held { expires_at_ms } => {
            let expired = expires_at_ms <= now_ms;
            finish(storage, order, hold, HoldState::Released { expired })?;
            Ok(ShardReply::Released { expired })
        }
        HoldState::Committed => Ok(ShardReply::AlreadyCommitted),
        HoldState::Released { expired } => Ok(ShardReply::Released { expired }),
        HoldState::Cancelled => Ok(ShardReply::Cancelled),
        HoldState::Received => Ok(not_an_order(order)),
    }
}

/// The answer to an order request whose id is a restock receipt's: nothing changes.
fn not_an_order(id: &OrderId) -> ShardReply {
    ShardReply::Rejected {
        reason: format!("{id} is a restock receipt, not an order"),
    }
}

/// Moves a `Held` order's units to sold (`Committed`) or back to available (`Released`), or a
/// `Committed` order's sold units back to available (`Cancelled`).
fn finish(
    storage: &mut impl ShardStorage,
    order: &OrderId,
    hold: Hold,
    to: HoldState,
) -> Result<(), StorageFault> {
    for line in &hold.lines {
        let mut level = storage.level(&line.sku)?.ok_or_else(|| {
            StorageFault(format!(
                "order {order} holds {} which has no stock record",
                line.sku
            ))
        })?;
        let moved = match (hold.state, to) {
            (HoldState::Held { .. }, HoldState::Committed) => level.unhold(line.qty, true),
            (HoldState::Held { .. }, HoldState::Released { .. }) => level.unhold(line.qty, false),
            (HoldState::Committed, HoldState::Cancelled) => level.unsell(line.qty),
            (from, to) => Err(format!("no move from {from:?} to {to:?}")),
        };
        moved.map_err(|e| StorageFault(format!("order {order}, {}: {e}", line.sku)))?;
        write_level(storage, &line.sku, &level)?;
    }
    storage.set_hold(
        order,
        &Hold {
            lines: hold.lines,
            state: to,
        },
    )
}

/// A shard's storage in process memory: the native test host's, and the reference behaviour.
#[derive(Debug, Default, Clone)]
pub struct MemoryShardStorage {
    levels: BTreeMap<Sku, StockLevel>,
    holds: BTreeMap<OrderId, Hold>,
}

impl MemoryShardStorage {
    pub fn levels(&self) -> impl Iterator<Item = (&Sku, &StockLevel)> {
        self.levels.iter()
    }

    pub fn holds(&self) -> impl Iterator<Item = (&OrderId, &Hold)> {
        self.holds.iter()
    }

    /// Checks the whole shard: each level's invariant, and that `held` is exactly the sum of
    /// the lines of `Held` orders and `sold` at least that of `Committed` ones (seeding can
    /// set `sold` only through history, so it is exact here too).
    pub fn check(&self) -> Result<(), String> {
        let mut held: BTreeMap<&Sku, u64> = BTreeMap::new();
        let mut sold: BTreeMap<&Sku, u64> = BTreeMap::new();
        for hold in self.holds.values() {
            let into = match hold.state {
                HoldState::Held { .. } => &mut held,
                HoldState::Committed => &mut sold,
                HoldState::Released { .. } | HoldState::Cancelled | HoldState::Received => continue,
            };
            for line in &hold.lines {
                *into.entry(&line.sku).or_default() += u64::from(line.qty);
            }
        }
        for (sku, level) in &self.levels {
            level.check(sku).map_err(|e| e.0)?;
            let want_held = held.get(sku).copied().unwrap_or(0);
            let want_sold = sold.get(sku).copied().unwrap_or(0);
            if u64::from(level.held) != want_held || u64::from(level.sold) != want_sold {
                return Err(format!(
                    "{sku}: level says held {} sold {}, hold records say held {want_held} sold {want_sold}",
                    level.held, level.sold
                ));
            }
        }
        Ok(())
    }
}

impl ShardStorage for MemoryShardStorage {
    fn level(&self, sku: &Sku) -> Result<Option<StockLevel>, StorageFault> {
        Ok(self.levels.get(sku).copied())
    }
    fn set_level(&mut self, sku: &Sku, level: &StockLevel) -> Result<(), StorageFault> {
        self.levels.insert(sku.clone(), *level);
        Ok(())
    }
    fn hold(&self, order: &OrderId) -> Result<Option<Hold>, StorageFault> {
        Ok(self.holds.get(order).cloned())
    }
    fn set_hold(&mut self, order: &OrderId, hold: &Hold) -> Result<(), StorageFault> {
        self.holds.insert(order.clone(), hold.clone());
        Ok(())
    }
    fn due_holds(&self, now_ms: u64, limit: usize) -> Result<Vec<OrderId>, StorageFault> {
        Ok(self
            .holds
            .iter()
            .filter(|(_, h)| matches!(h.state, HoldState::Held { expires_at_ms } if expires_at_ms <= now_ms))
            .map(|(id, _)| id.clone())
            .take(limit)
            .collect())
    }
    fn next_expiry(&self) -> Result<Option<u64>, StorageFault> {
        Ok(self
            .holds
            .values()
            .filter_map(|h| match h.state {
                HoldState::Held { expires_at_ms } => Some(expires_at_ms),
                _ => None,
            })
            .min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 60_000;

    fn run(s: &mut MemoryShardStorage, request: ShardRequest, now_ms: u64) -> ShardReply {
        let reply = apply(s, request, now_ms).expect("memory storage does not fail");
        s.check().expect("shard invariant");
        reply
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn order(s: &str) -> OrderId {
        OrderId::parse(s).unwrap()
    }

    fn line(s: &str, qty: u32) -> Line {
        Line { sku: sku(s), qty }
    }

    fn reserve(o: &str, lines: Vec<Line>) -> ShardRequest {
        ShardRequest::Reserve {
            order: order(o),
            lines,
            ttl_ms: TTL,
        }
    }

    fn seeded(levels: &[(&str, u32)]) -> MemoryShardStorage {
        let mut s = MemoryShardStorage::default();
        let levels = levels.iter().map(|(k, v)| (sku(k), *v)).collect();
        run(
            &mut s,
            ShardRequest::Seed {
                levels,
                overwrite: true,
            },
            0,
        );
        s
    }

    fn level(s: &MemoryShardStorage, k: &str) -> (u32, u32, u32) {
        let l = s.level(&sku(k)).unwrap().unwrap();
        (l.available, l.held, l.sold)
    }

    #[test]
    fn hold_commit_and_release_move_units() {
        let mut s = seeded(&[("A", 5), ("B", 5)]);
        assert_eq!(
            run(&mut s, reserve("o1", vec![line("A", 2), line("B", 1)]), 10),
            ShardReply::Held {
                expires_at_ms: 10 + TTL
            }
        );
        assert_eq!(level(&s, "A"), (3, 2, 0));
        assert_eq!(
            run(&mut s, ShardRequest::Commit { order: order("o1") }, 20),
            ShardReply::Committed
        );
        assert_eq!(level(&s, "A"), (3, 0, 2));
        assert_eq!(level(&s, "B"), (4, 0, 1));
        run(&mut s, reserve("o2", vec![line("A", 3)]), 30);
        assert_eq!(
            run(&mut s, ShardRequest::Release { order: order("o2") }, 40),
            ShardReply::Released { expired: false }
        );
        assert_eq!(level(&s, "A"), (3, 0, 2));
    }

    #[test]
    fn every_operation_is_idempotent_by_order() {
        let mut s = seeded(&[("A", 5)]);
        let first = run(&mut s, reserve("o1", vec![line("A", 2)]), 0);
        assert_eq!(
            run(&mut s, reserve("o1", vec![line("A", 2)]), 5),
            first,
            "a repeated reserve answers the same"
        );
        assert_eq!(level(&s, "A"), (3, 2, 0));
        run(&mut s, ShardRequest::Commit { order: order("o1") }, 6);
        assert_eq!(
            run(&mut s, ShardRequest::Commit { order: order("o1") }, 7),
            ShardReply::Committed
        );
        assert_eq!(
            run(&mut s, reserve("o1", vec![line("A", 2)]), 8),
            ShardReply::Committed
        );
        assert_eq!(
            run(&mut s, ShardRequest::Release { order: order("o1") }, 9),
            ShardReply::AlreadyCommitted
        );
        assert_eq!(level(&s, "A"), (3, 0, 2));
        assert!(matches!(
            run(&mut s, reserve("o1", vec![line("A", 1)]), 10),
            ShardReply::Rejected { .. }
        ));
    }

    #[test]
    fn cancel_undoes_a_sale_once() {
        let mut s = seeded(&[("A", 5)]);
        run(&mut s, reserve("o1", vec![line("A", 2)]), 0);
        run(&mut s, ShardRequest::Commit { order: order("o1") }, 1);
        assert_eq!(
            run(&mut s, ShardRequest::Cancel { order: order("o1") }, 2),
            ShardReply::Cancelled
        );
        assert_eq!(
            run(&mut s, ShardRequest::Cancel { order: order("o1") }, 3),
            ShardReply::Cancelled
        );
        assert_eq!(
            run(&mut s, ShardRequest::Commit { order: order("o1") }, 4),
            ShardReply::Cancelled
        );
        assert_eq!(level(&s, "A"), (5, 0, 0));
        run(&mut s, reserve("o2", vec![line("A", 1)]), 5);
        assert_eq!(
            run(&mut s, ShardRequest::Cancel { order: order("o2") }, 6),
            ShardReply::Released { expired: false }
        );
        assert_eq!(level(&s, "A"), (5, 0, 0));
    }

    #[test]
    fn release_before_reserve_leaves_a_tombstone() {
        let mut s = seeded(&[("A", 5)]);
        assert_eq!(
            run(
                &mut s,
                ShardRequest::Release {
                    order: order("late")
                },
                0
            ),
            ShardReply::Released { expired: false }
        );
        assert_eq!(
            run(&mut s, reserve("late", vec![line("A", 1)]), 1),
            ShardReply::Released { expired: false }
        );
        assert_eq!(level(&s, "A"), (5, 0, 0));
        assert_eq!(
            run(
                &mut s,
                ShardRequest::Commit {
                    order: order("never")
                },
                2
            ),
            ShardReply::NotHeld
        );
    }

    #[test]
    fn a_reserve_is_all_lines_or_none() {
        let mut s = seeded(&[("A", 5), ("B", 1)]);
        assert_eq!(
            run(&mut s, reserve("o1", vec![line("A", 2), line("B", 2)]), 0),
            ShardReply::Insufficient {
                sku: sku("B"),
                available: 1
            }
        );
        assert_eq!(
            run(&mut s, reserve("o2", vec![line("A", 1), line("Z", 1)]), 0),
            ShardReply::UnknownSku { sku: sku("Z") }
        );
        assert_eq!((level(&s, "A"), level(&s, "B")), ((5, 0, 0), (1, 0, 0)));
        // A refused order left no record: the same id may try again.
        assert_eq!(
            run(&mut s, reserve("o1", vec![line("A", 2)]), 0),
            ShardReply::Held { expires_at_ms: TTL }
        );
    }

    #[test]
    fn holds_expire_by_alarm_or_on_touch() {
        let mut s = seeded(&[("A", 5)]);
        run(&mut s, reserve("o1", vec![line("A", 2)]), 0);
        run(&mut s, reserve("o2", vec![line("A", 2)]), 100);
        assert_eq!(s.next_expiry().unwrap(), Some(TTL));
        assert_eq!(
            run(&mut s, ShardRequest::Expire, TTL - 1),
            ShardReply::Expired { released: 0 }
        );
        assert_eq!(
            run(&mut s, ShardRequest::Expire, TTL),
            ShardReply::Expired { released: 1 }
        );
        assert_eq!(level(&s, "A"), (3, 2, 0));
        // o2 is past its TTL but no alarm ran: a commit must not sell it.
        assert_eq!(
            run(
                &mut s,
                ShardRequest::Commit { order: order("o2") },
                TTL + 100
            ),
            ShardReply::Released { expired: true }
        );
        assert_eq!(level(&s, "A"), (5, 0, 0));
        assert_eq!(s.next_expiry().unwrap(), None);
    }

    #[test]
    fn restock_and_seed_keep_the_invariant() {
        let mut s = seeded(&[("A", 2)]);
        run(&mut s, reserve("o1", vec![line("A", 1)]), 0);
        run(&mut s, ShardRequest::Commit { order: order("o1") }, 0);
        run(&mut s, reserve("o2", vec![line("A", 1)]), 0);
        let ShardReply::Restocked { level: l, .. } = run(
            &mut s,
            ShardRequest::Restock {
                sku: sku("A"),
                qty: 10,
                receipt: None,
            },
            0,
        ) else {
            panic!("restock")
        };
        assert_eq!((l.available, l.held, l.sold, l.received), (10, 1, 1, 12));
        let reply = run(
            &mut s,
            ShardRequest::Seed {
                levels: vec![(sku("A"), 50), (sku("B"), 7)],
                overwrite: false,
            },
            0,
        );
        assert_eq!(
            reply,
            ShardReply::Seeded {
                written: 1,
                kept: 1
            }
        );
        assert_eq!(level(&s, "A"), (10, 1, 1));
        run(
            &mut s,
            ShardRequest::Seed {
                levels: vec![(sku("A"), 4)],
                overwrite: true,
            },
            0,
        );
        let l = s.level(&sku("A")).unwrap().unwrap();
        assert_eq!((l.available, l.held, l.sold, l.received), (4, 1, 1, 6));
    }

    #[test]
    fn a_restock_with_a_receipt_adds_its_units_once() {
        let mut s = seeded(&[("A", 2)]);
        let receipt = receipt_for_key("delivery 7");
        assert_ne!(receipt, receipt_for_key("delivery 8"));
        let restock = |qty, receipt: &OrderId| ShardRequest::Restock {
            sku: sku("A"),
            qty,
            receipt: Some(receipt.clone()),
        };
        let first = run(&mut s, restock(5, &receipt), 0);
        let again = run(&mut s, restock(5, &receipt), 1);
        let (
            ShardReply::Restocked {
                level: l1,
                repeated: false,
            },
            ShardReply::Restocked {
                level: l2,
                repeated: true,
            },
        ) = (&first, &again)
        else {
            panic!("{first:?} then {again:?}")
        };
        assert_eq!((l1.available, l1.received), (7, 7));
        assert_eq!(l1, l2, "the repeat added nothing");
        // The receipt cannot cover other units, nor be used as an order.
        for request in [
            restock(6, &receipt),
            ShardRequest::Restock {
                sku: sku("B"),
                qty: 5,
                receipt: Some(receipt.clone()),
            },
            ShardRequest::Reserve {
                order: receipt.clone(),
                lines: vec![line("A", 1)],
                ttl_ms: HOLD_TTL_MS_MAX,
            },
            ShardRequest::Commit {
                order: receipt.clone(),
            },
            ShardRequest::Release {
                order: receipt.clone(),
            },
            ShardRequest::Cancel {
                order: receipt.clone(),
            },
        ] {
            let reply = run(&mut s, request.clone(), 2);
            assert!(
                matches!(reply, ShardReply::Rejected { .. }),
                "{request:?}: {reply:?}"
            );
        }
        assert_eq!(level(&s, "A"), (7, 0, 0));
        assert_eq!(s.level(&sku("B")).unwrap(), None);
        // Without a receipt every restock counts.
        let plain = ShardRequest::Restock {
            sku: sku("A"),
            qty: 1,
            receipt: None,
        };
        run(&mut s, plain.clone(), 3);
        run(&mut s, plain, 3);
        assert_eq!(level(&s, "A"), (9, 0, 0));
    }

    #[test]
    fn malformed_requests_change_nothing() {
        let mut s = seeded(&[("A", 2)]);
        let bad = [
            reserve("o", vec![]),
            reserve("o", vec![line("A", 0)]),
            reserve("o", vec![line("A", RESERVE_QTY_MAX + 1)]),
            reserve("o", vec![line("A", 1), line("A", 1)]),
            ShardRequest::Reserve {
                order: order("o"),
                lines: vec![line("A", 1)],
                ttl_ms: 0,
            },
            ShardRequest::Reserve {
                order: order("o"),
                lines: vec![line("A", 1)],
                ttl_ms: HOLD_TTL_MS_MAX + 1,
            },
            ShardRequest::Restock {
                sku: sku("A"),
                qty: 0,
                receipt: None,
            },
        ];
        for request in bad {
            let reply = run(&mut s, request.clone(), 0);
            assert!(
                matches!(reply, ShardReply::Rejected { .. }),
                "{request:?}: {reply:?}"
            );
        }
        assert_eq!(level(&s, "A"), (2, 0, 0));
        assert!(s.hold(&order("o")).unwrap().is_none());
        assert!(OrderId::parse("has space").is_err() && OrderId::parse("").is_err());
    }

    #[test]
    fn never_below_zero_for_any_sequence() {
        // Exhaustive over small levels and quantities: available only ever drops by exactly qty.
        for start in 0..20u32 {
            for qty in 1..25u32 {
                let mut s = seeded(&[("A", start)]);
                run(&mut s, reserve("o", vec![line("A", qty)]), 0);
                let (available, held, _) = level(&s, "A");
                assert_eq!(available + held, start);
                assert_eq!(held == 0, qty > start);
            }
        }
    }
}
