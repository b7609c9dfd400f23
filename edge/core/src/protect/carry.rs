//! The protection's state carried between requests through a key-value store, for hosts that
//! keep no memory from one request to the next (Spin instantiates the component per request).
//!
//! A request loads the entries of its owners ([`super::owners_of`]: its client and its address)
//! into a fresh [`Protection`], runs the layer as usual, and saves what the protection then holds.
//!
//! # Layout and bounds
//! Owners are spread over [`SLOTS`] keys `protect/slot/{n}` (by hash), each a CBOR map of at most
//! [`OWNERS_PER_SLOT`] owners; a slot that would hold more drops the least recently seen. The
//! store thus holds at most `SLOTS × OWNERS_PER_SLOT` owners, whatever the traffic. Decisions
//! go to one ring, `protect/decisions`, of the newest [`DECISIONS_KEPT`].
//!
//! # Precision
//! Each save reads its slot again and replaces only its own owners, but two requests of one
//! owner at the same moment each save what they saw, so one's counts can be lost: under
//! concurrency the limits are approximate, as across Cloudflare isolates. Stock and promotion
//! limits stay exact at the shards whatever gets through. A store that fails leaves the request
//! unprotected (logged by the host) rather than refused.

use super::{Bucket, ClientState, Decision, Protection, RouteClass, ShopperState};
use crate::codec::{from_cbor, to_cbor};
use crate::shard::fnv1a_64;
use crate::snapshot::{KvRead, KvWrite};
use crate::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Keys the owners are spread over.
pub const SLOTS: u64 = 4_096;
/// Owners one slot keeps at most (the least recently seen go first).
pub const OWNERS_PER_SLOT: usize = 8;
/// Decisions the ring keeps, newest last.
pub const DECISIONS_KEPT: usize = 200;
/// The key of the decisions ring.
pub const DECISIONS_KEY: &str = "protect/decisions";

/// One owner's entries: its rate buckets, what its requests showed, its recent orders.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Carried {
    pub(super) buckets: Vec<(RouteClass, Bucket)>,
    pub(super) client: Option<ClientState>,
    pub(super) shopper: Option<ShopperState>,
    /// When the request that saved it ran.
    pub(super) seen_ms: u64,
}

type Slot = BTreeMap<String, Carried>;

/// The key of the slot `owner` lives in.
pub fn slot_key(owner: &str) -> String {
    format!("protect/slot/{}", fnv1a_64(owner.as_bytes()) % SLOTS)
}

/// A slot's owners; an unreadable value counts as empty (it is rewritten on the next save).
async fn read_slot(kv: &dyn KvRead, key: &str) -> Result<Slot, StoreError> {
    Ok(kv
        .get(key)
        .await?
        .and_then(|bytes| from_cbor(&bytes).ok())
        .unwrap_or_default())
}

/// A protection for one request, holding what earlier requests left for its `owners`; with
/// `decisions`, the recorded decisions too (for the admin's view).
pub async fn load(
    kv: &dyn KvRead,
    protection: &Protection,
    owners: &[String],
    decisions: bool,
) -> Result<(), StoreError> {
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    for owner in owners {
        let key = slot_key(owner);
        if !slots.contains_key(&key) {
            let slot = read_slot(kv, &key).await?;
            slots.insert(key.clone(), slot);
        }
        if let Some(carried) = slots.get_mut(&key).and_then(|slot| slot.remove(owner)) {
            protection.carry_in(owner, carried);
        }
    }
    if decisions {
        let ring: Vec<Decision> = kv
            .get(DECISIONS_KEY)
            .await?
            .and_then(|bytes| from_cbor(&bytes).ok())
            .unwrap_or_default();
        protection.carry_in_decisions(ring);
    }
    Ok(())
}

/// Saves what `protection` holds for the next requests, and appends its own decisions.
pub async fn save<K: KvWrite>(kv: &K, protection: &Protection) -> Result<(), StoreError> {
    let mut by_slot: BTreeMap<String, Vec<(String, Carried)>> = BTreeMap::new();
    for (owner, carried) in protection.carry_out() {
        by_slot
            .entry(slot_key(&owner))
            .or_default()
            .push((owner, carried));
    }
    for (key, owners) in by_slot {
        let mut slot = read_slot(kv, &key).await?;
        slot.extend(owners);
        while slot.len() > OWNERS_PER_SLOT {
            let stalest = slot
                .iter()
                .min_by_key(|(_, c)| c.seen_ms)
                .map(|(owner, _)| owner.clone());
            slot.remove(&stalest.expect("a slot over its bound is not empty"));
        }
        kv.put(&key, to_cbor(&slot)).await?;
    }
    let own = protection.own_decisions();
    if !own.is_empty() {
        let mut ring: Vec<Decision> = kv
            .get(DECISIONS_KEY)
            .await?
            .and_then(|bytes| from_cbor(&bytes).ok())
            .unwrap_or_default();
        ring.extend(own);
        let excess = ring.len().saturating_sub(DECISIONS_KEPT);
        ring.drain(..excess);
        kv.put(DECISIONS_KEY, to_cbor(&ring)).await?;
    }
    Ok(())
}
