//! The append-only audit trail: the one record of who did what, when, how
//! and with what outcome, on which patient's data. Logs and metrics never
//! carry these identities.
//!
//! - `event.rs`: what a record says ([`AuditEvent`] and its enums);
//! - `chain.rs`: the hash chains that make tampering visible, `verify`;
//! - `store.rs`: writing and reading the `audit_events` table;
//! - `export.rs`: the per-patient and per-professional export (in French);
//! - `purge.rs`: retention, segments purged under signed checkpoints;
//! - `ship.rs`: the second sink (a file or syslog), never blocking.

mod chain;
pub mod cli;
mod event;
pub mod export;
pub mod purge;
pub(crate) mod ship;

pub(crate) mod store;

pub use chain::{
    forge_rehash, parse_heads, spawn_head_logger, stored_heads, verify, verify_signed, Broken,
    ChainHead, HeadLogger, Verification, HEAD_LOG_MESSAGE,
};
pub use event::{AccessPath, AuditEvent, AuditMethod, Event, Outcome, SearchText};
pub use store::{AuditRecord, AuditSettings};

use crate::state::{DbError, PortalDb};

/// Where audit records go: the portal database in production, memory in
/// the gate's unit tests. An error means "not recorded": the caller
/// refuses what it was about to allow.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    async fn record(&self, e: &AuditEvent) -> Result<(), DbError>;
}

#[async_trait::async_trait]
impl AuditSink for PortalDb {
    async fn record(&self, e: &AuditEvent) -> Result<(), DbError> {
        self.audit(e).await
    }
}

/// An audit trail in memory (tests), that can be made to fail.
#[derive(Default)]
pub struct MemoryAudit {
    events: parking_lot::Mutex<Vec<AuditEvent>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryAudit {
    /// The records so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().clone()
    }

    /// Makes every later write fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl AuditSink for MemoryAudit {
    async fn record(&self, e: &AuditEvent) -> Result<(), DbError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(DbError::Query(sqlx::Error::PoolTimedOut));
        }
        self.events.lock().push(e.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
