//! The viewer path's caches: bounded (`quick_cache`: the least useful
//! entries go first beyond the capacity) and with entries that expire a
//! fixed time after they were written. Read on every viewer request, so a
//! read takes one shard lock and no allocation.

use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::Equivalent;

pub struct TtlCache<K, V> {
    entries: Cache<K, (V, Instant)>,
    ttl: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> TtlCache<K, V> {
        TtlCache {
            entries: Cache::new(capacity),
            ttl,
        }
    }

    /// The value, if written less than the time to live ago.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let (value, written) = self.entries.get(key)?;
        if written.elapsed() < self.ttl {
            return Some(value);
        }
        // Expired: gone, unless written again meanwhile.
        self.entries
            .remove_if(key, |(_, at)| at.elapsed() >= self.ttl);
        None
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.get(key).is_some()
    }

    pub fn insert(&self, key: K, value: V) {
        self.entries.insert(key, (value, Instant::now()));
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.entries.remove(key);
    }

    pub fn invalidate_all(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_capacity_holds() {
        let fresh: TtlCache<String, u32> = TtlCache::new(100, Duration::from_secs(60));
        fresh.insert("a".into(), 1);
        assert_eq!(fresh.get("a"), Some(1));
        assert!(fresh.contains_key("a"));
        fresh.invalidate_all();
        assert_eq!(fresh.get("a"), None);
        // A time to live of zero: every entry is expired when read.
        let expired: TtlCache<String, u32> = TtlCache::new(100, Duration::ZERO);
        expired.insert("a".into(), 1);
        assert_eq!(expired.get("a"), None);
        assert!(!expired.contains_key("a"));
        let big: TtlCache<u32, u32> = TtlCache::new(100, Duration::from_secs(60));
        for i in 0..10_000 {
            big.insert(i, i);
        }
        let kept = (0..10_000).filter(|i| big.contains_key(i)).count();
        assert!(kept <= 200, "{kept} entries kept past a capacity of 100");
    }
}
