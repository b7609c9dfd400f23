//! Stock: the single-writer state machine of one shard, and the wire protocol to reach it.
//!
//! A shard applies [`ShardRequest`]s one at a time to its [`ShardStorage`]. Every method of the
//! storage is synchronous on purpose: a host must not yield between reading a level and writing
//! it back, or two reservations could both see the last unit (the Durable Object's SQLite API and
//! a `Mutex`-guarded map both give that).

use crate::product::Sku;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest quantity one reservation may take; bounds a single request's effect.
pub const RESERVE_QTY_MAX: u32 = 1_000;
/// Largest number of SKUs one seed request may carry.
pub const SEED_BATCH_MAX: usize = 10_000;

/// Result of asking for `qty` units of a SKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReserveOutcome {
    /// The units were taken; `remaining` are still available.
    Reserved { remaining: u32 },
    /// Not enough stock; nothing was taken.
    Insufficient { available: u32 },
}

/// Takes `qty` units from `available` if there are enough. Stock never goes below zero.
pub fn reserve(available: u32, qty: u32) -> ReserveOutcome {
    match available.checked_sub(qty) {
        Some(remaining) => ReserveOutcome::Reserved { remaining },
        None => ReserveOutcome::Insufficient { available },
    }
}

/// A request to one shard. CBOR-encoded when it crosses a process or isolate boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardRequest {
    Level { sku: Sku },
    Reserve { sku: Sku, qty: u32 },
    /// Sets levels for SKUs; with `overwrite == false` existing levels are kept (first publish only).
    Seed { levels: Vec<(Sku, u32)>, overwrite: bool },
}

/// A shard's answer to a [`ShardRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardReply {
    /// `None`: the shard holds no stock record for the SKU (unknown SKU).
    Level { available: Option<u32> },
    /// `None`: unknown SKU.
    Reserve { outcome: Option<ReserveOutcome> },
    Seeded { written: u32, kept: u32 },
    /// The request was refused as malformed; nothing changed.
    Rejected { reason: String },
}

/// A shard's storage failed (its database is unreadable or full); the request changed nothing
/// it could not finish and may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard storage fault: {0}")]
pub struct StorageFault(pub String);

/// Storage of one shard's stock levels. Synchronous so a read-modify-write cannot interleave.
pub trait ShardStorage {
    fn level(&self, sku: &Sku) -> Result<Option<u32>, StorageFault>;
    fn set_level(&mut self, sku: &Sku, available: u32) -> Result<(), StorageFault>;
}

/// Applies one request to a shard's storage. The only code that changes stock.
pub fn apply(storage: &mut impl ShardStorage, request: ShardRequest) -> Result<ShardReply, StorageFault> {
    let reply = match request {
        ShardRequest::Level { sku } => ShardReply::Level { available: storage.level(&sku)? },
        ShardRequest::Reserve { qty, .. } if qty == 0 || qty > RESERVE_QTY_MAX => {
            ShardReply::Rejected { reason: format!("qty must be 1 to {RESERVE_QTY_MAX}") }
        }
        ShardRequest::Reserve { sku, qty } => {
            let Some(available) = storage.level(&sku)? else {
                return Ok(ShardReply::Reserve { outcome: None });
            };
            let outcome = reserve(available, qty);
            if let ReserveOutcome::Reserved { remaining } = outcome {
                debug_assert_eq!(remaining + qty, available, "reserve must take exactly qty");
                storage.set_level(&sku, remaining)?;
            }
            ShardReply::Reserve { outcome: Some(outcome) }
        }
        ShardRequest::Seed { levels, .. } if levels.len() > SEED_BATCH_MAX => {
            ShardReply::Rejected { reason: format!("at most {SEED_BATCH_MAX} SKUs per seed") }
        }
        ShardRequest::Seed { levels, overwrite } => {
            let (mut written, mut kept) = (0, 0);
            for (sku, available) in levels {
                if overwrite || storage.level(&sku)?.is_none() {
                    storage.set_level(&sku, available)?;
                    written += 1;
                } else {
                    kept += 1;
                }
            }
            ShardReply::Seeded { written, kept }
        }
    };
    Ok(reply)
}

/// A shard's storage in process memory: the native test host's, and the reference behaviour.
#[derive(Debug, Default)]
pub struct MemoryShardStorage(BTreeMap<Sku, u32>);

impl ShardStorage for MemoryShardStorage {
    fn level(&self, sku: &Sku) -> Result<Option<u32>, StorageFault> {
        Ok(self.0.get(sku).copied())
    }
    fn set_level(&mut self, sku: &Sku, available: u32) -> Result<(), StorageFault> {
        self.0.insert(sku.clone(), available);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type MapStorage = MemoryShardStorage;

    fn run(s: &mut MapStorage, request: ShardRequest) -> ShardReply {
        apply(s, request).expect("map storage does not fail")
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn seeded(level: u32) -> MapStorage {
        let mut s = MapStorage::default();
        run(&mut s, ShardRequest::Seed { levels: vec![(sku("A"), level)], overwrite: true });
        s
    }

    #[test]
    fn reserve_takes_units_until_none_left() {
        let mut s = seeded(3);
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            outcomes.push(run(&mut s, ShardRequest::Reserve { sku: sku("A"), qty: 1 }));
        }
        let remaining: Vec<_> = outcomes
            .iter()
            .map(|r| match r {
                ShardReply::Reserve { outcome: Some(ReserveOutcome::Reserved { remaining }) } => {
                    Some(*remaining)
                }
                ShardReply::Reserve { outcome: Some(ReserveOutcome::Insufficient { available: 0 }) } => {
                    None
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(remaining, vec![Some(2), Some(1), Some(0), None, None]);
        assert_eq!(s.0.get(&sku("A")).copied(), Some(0));
    }

    #[test]
    fn insufficient_reserve_changes_nothing_and_reports_available() {
        let mut s = seeded(2);
        let reply = run(&mut s, ShardRequest::Reserve { sku: sku("A"), qty: 3 });
        assert_eq!(
            reply,
            ShardReply::Reserve { outcome: Some(ReserveOutcome::Insufficient { available: 2 }) }
        );
        assert_eq!(s.0.get(&sku("A")).copied(), Some(2));
    }

    #[test]
    fn unknown_sku_and_bad_quantities() {
        let mut s = seeded(2);
        assert_eq!(
            run(&mut s, ShardRequest::Reserve { sku: sku("B"), qty: 1 }),
            ShardReply::Reserve { outcome: None }
        );
        assert_eq!(run(&mut s, ShardRequest::Level { sku: sku("B") }), ShardReply::Level { available: None });
        for qty in [0, RESERVE_QTY_MAX + 1] {
            let reply = run(&mut s, ShardRequest::Reserve { sku: sku("A"), qty });
            assert!(matches!(reply, ShardReply::Rejected { .. }), "qty {qty}: {reply:?}");
        }
        assert_eq!(s.0.get(&sku("A")).copied(), Some(2));
    }

    #[test]
    fn seed_without_overwrite_keeps_live_stock() {
        let mut s = seeded(2);
        run(&mut s, ShardRequest::Reserve { sku: sku("A"), qty: 1 });
        let reply = run(
            &mut s,
            ShardRequest::Seed { levels: vec![(sku("A"), 50), (sku("B"), 7)], overwrite: false },
        );
        assert_eq!(reply, ShardReply::Seeded { written: 1, kept: 1 });
        assert_eq!(s.0.get(&sku("A")).copied(), Some(1));
        assert_eq!(s.0.get(&sku("B")).copied(), Some(7));
    }

    #[test]
    fn never_below_zero_for_any_sequence() {
        // Exhaustive over small levels and quantities: the level only ever drops by exactly qty.
        for start in 0..20u32 {
            for qty in 1..25u32 {
                let mut s = seeded(start);
                let before = s.0.get(&sku("A")).copied().unwrap();
                run(&mut s, ShardRequest::Reserve { sku: sku("A"), qty });
                let after = s.0.get(&sku("A")).copied().unwrap();
                assert!(after == before || after + qty == before);
                assert_eq!(after == before, qty > start);
            }
        }
    }
}
