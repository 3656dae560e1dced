//! The in-memory store (one instance).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{KvStore, StoreError};

/// One-instance store. Expired entries are never read (skipped, as if
/// absent), overwritten by the next write of their key, and swept every
/// few hundred writes.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    /// By store key: hex SHA-256 digests behind a prefix, which no client
    /// chooses, so a fast hash (foldhash, seeded per process) is enough.
    map: HashMap<String, (Vec<u8>, Instant), foldhash::fast::RandomState>,
    sets: HashMap<String, (std::collections::BTreeSet<String>, Instant)>,
    writes: u64,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryInner) -> T) -> T {
        let mut g = self.inner.lock();
        f(&mut g)
    }
}

impl MemoryInner {
    /// The value of a key not yet expired. An expired entry stays until
    /// the next sweep (every 256 writes) or overwrite, never read.
    fn live(&self, key: &str) -> Option<&Vec<u8>> {
        let now = Instant::now();
        self.map
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v)
    }

    fn insert(&mut self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.writes += 1;
        if self.writes % 256 == 0 {
            let now = Instant::now();
            self.map.retain(|_, (_, exp)| *exp > now);
            self.sets.retain(|_, (_, exp)| *exp > now);
        }
        self.map
            .insert(key.to_owned(), (value, Instant::now() + ttl));
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|m| m.live(key).cloned()))
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| m.insert(key, value.to_vec(), ttl));
        Ok(())
    }
    async fn del(&self, key: &str) -> Result<(), StoreError> {
        self.with(|m| {
            m.map.remove(key);
            m.sets.remove(key);
        });
        Ok(())
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|m| {
            let v = m.live(key).cloned();
            m.map.remove(key);
            v
        }))
    }
    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|m| {
            if m.live(key).is_some() {
                false
            } else {
                m.insert(key, Vec::new(), ttl);
                true
            }
        }))
    }
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|m| {
            if m.live(key).is_some() {
                m.insert(key, value.to_vec(), ttl);
                true
            } else {
                false
            }
        }))
    }
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| {
            let now = Instant::now();
            let entry = m
                .sets
                .entry(key.to_owned())
                .or_insert_with(|| (Default::default(), now));
            if entry.1 <= now {
                entry.0.clear();
            }
            entry.0.insert(member.to_owned());
            entry.1 = now + ttl;
        });
        Ok(())
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(|m| {
            if let Some((set, _)) = m.sets.get_mut(key) {
                set.remove(member);
                if set.is_empty() {
                    m.sets.remove(key);
                }
            }
        });
        Ok(())
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|m| match m.sets.get(key) {
            Some((set, exp)) if *exp > Instant::now() => set.iter().cloned().collect(),
            _ => Vec::new(),
        }))
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        Ok(self.with(|m| {
            let current = m
                .live(key)
                .map(|v| <[u8; 8]>::try_from(v.as_slice()).map_or(0, u64::from_be_bytes));
            match current {
                Some(n) => {
                    let n = n.saturating_add(1);
                    if let Some((v, _)) = m.map.get_mut(key) {
                        *v = n.to_be_bytes().to_vec();
                    }
                    n
                }
                None => {
                    m.insert(key, 1u64.to_be_bytes().to_vec(), window);
                    1
                }
            }
        }))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn count_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let now = Instant::now();
        Ok(self.with(|m| {
            m.map
                .iter()
                .filter(|(k, (_, exp))| *exp > now && k.starts_with(prefix))
                .count() as u64
        }))
    }
}
