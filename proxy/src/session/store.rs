//! The store interface of sessions: a key-value store with expiry, and its
//! errors.

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unreachable: {0}")]
    Unreachable(String),
    #[error("TLS to the session store refused: {0}")]
    Tls(String),
    #[error("session store timed out")]
    Timeout,
    #[error("session record unreadable: {0}")]
    Corrupt(String),
}

/// A key-value store with expiry: what a session store needs and no more.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    async fn del(&self, key: &str) -> Result<(), StoreError>;
    /// Get and delete in one step (single use).
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Set only if absent; true when this call set it.
    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Set only if present (never re-creates a deleted key); true when
    /// this call set it.
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
    /// Adds `member` to the set at `key` and sets the set's expiry to `ttl`.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Removes `member` from the set at `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// The members of the set at `key` (empty when absent).
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Adds one to the counter at `key` and returns its new value, in one
    /// atomic step. A counter that does not exist (or has expired) starts at
    /// 1 and lives `window` from then: a fixed window (rate limits).
    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}
