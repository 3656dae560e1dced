//! The append-only audit trail: the one record of who did what, when, how
//! and with what outcome. Logs and metrics never carry these identities.

use sqlx::Row;

use crate::state::{now_ms, DbError, PortalDb};

/// One audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// The professional's national id, when known.
    pub actor: Option<String>,
    /// `login`, `hm_sso`, `logout`, …
    pub event: &'static str,
    /// How: `psc_card`, `psc_app`, `hm_sso`.
    pub method: Option<&'static str>,
    /// `success`, or `refused` with a reason code in `detail`.
    pub outcome: &'static str,
    pub client_addr: Option<String>,
    /// What was accessed (later: dossier, study…).
    pub resource: Option<String>,
    /// A reason code or short note, never a token or a secret.
    pub detail: Option<String>,
}

/// A stored audit record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub actor: Option<String>,
    pub event: String,
    pub method: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

impl PortalDb {
    pub async fn audit(&self, e: &AuditEvent) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit_events (at_ms, actor, event, method, outcome, client_addr, resource, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now_ms())
        .bind(e.actor.as_deref())
        .bind(e.event)
        .bind(e.method)
        .bind(e.outcome)
        .bind(e.client_addr.as_deref())
        .bind(e.resource.as_deref())
        .bind(e.detail.as_deref())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest records first (operations and tests).
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT at_ms, actor, event, method, outcome, client_addr, detail \
             FROM audit_events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditRecord {
                    at_ms: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    event: r.try_get(2)?,
                    method: r.try_get(3)?,
                    outcome: r.try_get(4)?,
                    client_addr: r.try_get(5)?,
                    detail: r.try_get(6)?,
                })
            })
            .collect()
    }
}

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
