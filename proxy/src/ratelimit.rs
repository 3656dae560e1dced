//! Rate limits kept in the shared key-value store (memory or Redis, the
//! session store), so that a limit holds across every instance sharing it.
//!
//! A [`Limiter`] is one fixed-window counter per subject (an account, a
//! client address…): the first hit opens a window of `window`, every hit in
//! it counts, and a hit past `limit` is refused. The subject is hashed into
//! the store key. A store failure is an error: the caller refuses (503),
//! never lets the request through.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::METRICS;
use crate::session::{digest, KvStore, StoreError};

/// What a limiter says about one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; counted in `espace_rate_limited_total{endpoint=<name>}`.
    Over,
}

/// One rate limit on one kind of subject.
pub struct Limiter {
    store: Arc<dyn KvStore>,
    key_prefix: String,
    /// The metric label: a low-cardinality word, never a subject.
    name: &'static str,
    limit: u64,
    window: Duration,
}

impl Limiter {
    /// `prefix` is the store's key prefix (the sessions' `key_prefix`).
    pub fn new(
        store: Arc<dyn KvStore>,
        prefix: &str,
        name: &'static str,
        limit: u64,
        window: Duration,
    ) -> Limiter {
        Limiter {
            store,
            key_prefix: format!("{prefix}rl:{name}:"),
            name,
            limit,
            window,
        }
    }

    /// At most `limit` hits a minute.
    pub fn per_minute(
        store: Arc<dyn KvStore>,
        prefix: &str,
        name: &'static str,
        limit: u64,
    ) -> Limiter {
        Limiter::new(store, prefix, name, limit, Duration::from_secs(60))
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Counts one hit by `subject`.
    pub async fn hit(&self, subject: &str) -> Result<Verdict, StoreError> {
        self.hit_as(subject, self.name).await
    }

    /// Counts one hit by `subject`; a refusal is counted in the metric under
    /// `endpoint` (one limit shared by several endpoints, each counted apart).
    pub async fn hit_as(
        &self,
        subject: &str,
        endpoint: &'static str,
    ) -> Result<Verdict, StoreError> {
        let key = format!("{}{}", self.key_prefix, digest(subject));
        match self.store.incr_window(&key, self.window).await {
            Ok(n) if n <= self.limit => Ok(Verdict::Allowed),
            Ok(_) => {
                METRICS.rate_limited.with_label_values(&[endpoint]).inc();
                Ok(Verdict::Over)
            }
            Err(e) => {
                METRICS
                    .store_errors
                    .with_label_values(&["rate_limit"])
                    .inc();
                tracing::error!(error = %e, limit = self.name, "rate limit store failed");
                Err(e)
            }
        }
    }
}

/// Counts one hit on each `(limiter, subject)` in turn; `Over` at the first
/// limit exceeded (the later ones are not counted).
pub async fn hit_all(hits: &[(&Limiter, &str)]) -> Result<Verdict, StoreError> {
    for (limiter, subject) in hits {
        if limiter.hit(subject).await? == Verdict::Over {
            return Ok(Verdict::Over);
        }
    }
    Ok(Verdict::Allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MemoryStore;

    #[tokio::test]
    async fn a_fixed_window_per_subject() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let l = Limiter::new(store.clone(), "t:", "test", 3, Duration::from_millis(300));
        for _ in 0..3 {
            assert_eq!(l.hit("a").await.unwrap(), Verdict::Allowed);
        }
        assert_eq!(l.hit("a").await.unwrap(), Verdict::Over);
        assert_eq!(l.hit("a").await.unwrap(), Verdict::Over);
        // Another subject has its own count.
        assert_eq!(l.hit("b").await.unwrap(), Verdict::Allowed);
        // Another limiter on the same store too.
        let other = Limiter::new(store, "t:", "other", 1, Duration::from_secs(60));
        assert_eq!(other.hit("a").await.unwrap(), Verdict::Allowed);
        // The window ends: counting starts again.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(l.hit("a").await.unwrap(), Verdict::Allowed);
    }

    /// A store that fails every call.
    struct Down;

    #[async_trait::async_trait]
    impl KvStore for Down {
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), StoreError> {
            Err(StoreError::Timeout)
        }
        async fn del(&self, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Timeout)
        }
        async fn take(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn set_nx(&self, _: &str, _: Duration) -> Result<bool, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn incr_window(&self, _: &str, _: Duration) -> Result<u64, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn set_xx(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn set_add(&self, _: &str, _: &str, _: Duration) -> Result<(), StoreError> {
            Err(StoreError::Timeout)
        }
        async fn set_remove(&self, _: &str, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Timeout)
        }
        async fn set_members(&self, _: &str) -> Result<Vec<String>, StoreError> {
            Err(StoreError::Timeout)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Err(StoreError::Timeout)
        }
    }

    #[tokio::test]
    async fn a_store_failure_is_an_error_never_a_pass() {
        let l = Limiter::per_minute(Arc::new(Down), "t:", "test", 1000);
        assert!(l.hit("a").await.is_err());
        assert!(hit_all(&[(&l, "a")]).await.is_err());
    }

    #[tokio::test]
    async fn hit_all_stops_at_the_first_limit() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let a = Limiter::per_minute(store.clone(), "t:", "a", 1);
        let b = Limiter::per_minute(store, "t:", "b", 5);
        assert_eq!(
            hit_all(&[(&a, "x"), (&b, "x")]).await.unwrap(),
            Verdict::Allowed
        );
        assert_eq!(
            hit_all(&[(&a, "x"), (&b, "x")]).await.unwrap(),
            Verdict::Over
        );
        // b counted once only.
        for _ in 0..4 {
            assert_eq!(b.hit("x").await.unwrap(), Verdict::Allowed);
        }
        assert_eq!(b.hit("x").await.unwrap(), Verdict::Over);
    }
}
