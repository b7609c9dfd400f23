//! The stable mapping of SKUs to stock shards.
//!
//! Each shard is one single-writer coordinator (a Durable Object on Cloudflare, a shard task in
//! the origin coordinator). The mapping must never change for a deployed shop, or stock would be
//! split across two owners: it is FNV-1a 64 of the SKU's bytes, modulo a fixed [`SHARD_COUNT`],
//! and tests pin both the hash and the mapping of known SKUs.

use crate::product::Sku;

/// Number of stock shards. Changing it moves SKUs between shards: only with a migration.
pub const SHARD_COUNT: u16 = 16;

/// One stock shard, `0..SHARD_COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkuShard(u16);

impl SkuShard {
    /// The shard that owns `sku`'s stock.
    pub fn of(sku: &Sku) -> Self {
        Self((fnv1a_64(sku.as_str().as_bytes()) % u64::from(SHARD_COUNT)) as u16)
    }

    pub fn from_index(index: u16) -> Option<Self> {
        (index < SHARD_COUNT).then_some(Self(index))
    }

    pub fn index(self) -> u16 {
        self.0
    }

    /// Name of the coordinator object for this shard (the Durable Object name on Cloudflare).
    pub fn object_name(self) -> String {
        format!("stock-shard-{:02}", self.0)
    }

    pub fn all() -> impl Iterator<Item = SkuShard> {
        (0..SHARD_COUNT).map(SkuShard)
    }
}

/// FNV-1a, 64-bit: tiny, fast, and fixed by its specification, so the mapping is stable across
/// Rust versions and hosts (unlike `std`'s randomly seeded hasher).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn mapping_of_known_skus_is_pinned() {
        // If this changes, deployed stock would move to other shards: bump only with a migration.
        let shard = |s: &str| SkuShard::of(&Sku::parse(s).unwrap()).index();
        assert_eq!(shard("a"), 12);
        assert_eq!(shard("foobar"), 8);
        assert_eq!(shard("MUG-001"), shard("MUG-001"));
    }

    #[test]
    fn skus_spread_over_every_shard() {
        let mut counts = [0u32; SHARD_COUNT as usize];
        for i in 0..1600 {
            let sku = Sku::parse(&format!("SKU-{i:05}")).unwrap();
            counts[SkuShard::of(&sku).index() as usize] += 1;
        }
        // 100 expected per shard; a broken hash would pile them into a few.
        assert!(
            counts.iter().all(|&c| (60..=140).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn shard_indices_are_bounded() {
        assert_eq!(SkuShard::all().count(), SHARD_COUNT as usize);
        assert!(SkuShard::from_index(SHARD_COUNT).is_none());
        assert_eq!(
            SkuShard::from_index(3).unwrap().object_name(),
            "stock-shard-03"
        );
    }
}
