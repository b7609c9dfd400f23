//! Recently read stock levels, kept per isolate, for *showing* stock on pages.
//!
//! A product page shows a level at most [`LEVEL_TTL_MS`] old instead of asking the shard on
//! every render (the page's browser code then refreshes it live). Decisions never use this
//! cache: reservations always go to the shard that owns the SKU.

use crate::product::Sku;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// How stale a shown level may be.
pub const LEVEL_TTL_MS: u64 = 2_000;
/// SKUs whose level is kept.
pub const LEVEL_CACHE_ENTRIES: usize = 10_000;

pub struct LevelCache {
    levels: Mutex<LruCache<Sku, (Option<u32>, u64)>>,
}

impl Default for LevelCache {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(LEVEL_CACHE_ENTRIES).expect("non-zero");
        Self {
            levels: Mutex::new(LruCache::new(capacity)),
        }
    }
}

impl LevelCache {
    /// The level read less than [`LEVEL_TTL_MS`] before `now_ms`, if any (`Some(None)`: unknown SKU).
    pub fn fresh(&self, sku: &Sku, now_ms: u64) -> Option<Option<u32>> {
        let mut levels = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        match levels.get(sku) {
            Some(&(level, at)) if now_ms.saturating_sub(at) < LEVEL_TTL_MS => Some(level),
            _ => None,
        }
    }

    /// The last level read for a SKU however old (for filtering suggestions, never for selling).
    pub fn last_known(&self, sku: &Sku) -> Option<Option<u32>> {
        let levels = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        levels.peek(sku).map(|&(level, _)| level)
    }

    pub fn record(&self, sku: &Sku, level: Option<u32>, now_ms: u64) {
        self.levels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(sku.clone(), (level, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_expire_after_the_ttl() {
        let cache = LevelCache::default();
        let sku = Sku::parse("A").unwrap();
        assert_eq!(cache.fresh(&sku, 0), None);
        cache.record(&sku, Some(4), 1_000);
        assert_eq!(cache.fresh(&sku, 1_000 + LEVEL_TTL_MS - 1), Some(Some(4)));
        assert_eq!(cache.fresh(&sku, 1_000 + LEVEL_TTL_MS), None);
        cache.record(&sku, None, 5_000);
        assert_eq!(
            cache.fresh(&sku, 5_001),
            Some(None),
            "unknown SKUs are remembered too"
        );
    }
}
