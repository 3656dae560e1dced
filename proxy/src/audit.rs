//! The append-only audit trail: the one record of who did what, when, how
//! and with what outcome. Logs and metrics never carry these identities.

use std::net::IpAddr;

use sqlx::Row;

use crate::identity::{LoginMethod, Professional};
use crate::state::{now_ms, DbError, PortalDb};

/// What happened: the `event` column. The stored names are fixed (the
/// trail is read by SQL, in operations and in the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A Pro Santé Connect login, or its refusal.
    Login,
    /// A Hopital Manager single sign-on, or its refusal.
    HmSso,
    /// A logout.
    Logout,
    /// A session ended at load because its professional was revoked.
    SessionRevoked,
    /// `espace-ps sessions revoke` (resource: the national id).
    SessionsRevoke,
    /// A dossier opened (or refused) by number and birth date.
    DossierNumberAccess,
    /// A dossier number ran out of its daily failure budget.
    DossierNumberLocked,
    /// `espace-ps dossiers unlock`.
    DossierNumberUnlocked,
    /// A patient page (every dossier the care team may see).
    PatientView,
    /// One dossier's page.
    DossierView,
    /// A report.
    ReportView,
    /// The portal's link to a study in the viewer.
    ImagesOpen,
    /// Images shown by the viewer (once per study per session per window).
    ImagesView,
    /// A DICOM download through the viewer, or its refusal.
    DicomDownload,
}

impl Event {
    /// Every event (docs and tests).
    pub const ALL: [Event; 14] = [
        Event::Login,
        Event::HmSso,
        Event::Logout,
        Event::SessionRevoked,
        Event::SessionsRevoke,
        Event::DossierNumberAccess,
        Event::DossierNumberLocked,
        Event::DossierNumberUnlocked,
        Event::PatientView,
        Event::DossierView,
        Event::ReportView,
        Event::ImagesOpen,
        Event::ImagesView,
        Event::DicomDownload,
    ];

    /// The name stored in the trail.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Login => "login",
            Event::HmSso => "hm_sso",
            Event::Logout => "logout",
            Event::SessionRevoked => "session_revoked",
            Event::SessionsRevoke => "sessions_revoke",
            Event::DossierNumberAccess => "dossier_number_access",
            Event::DossierNumberLocked => "dossier_number_locked",
            Event::DossierNumberUnlocked => "dossier_number_unlocked",
            Event::PatientView => "patient_view",
            Event::DossierView => "dossier_view",
            Event::ReportView => "report_view",
            Event::ImagesOpen => "images_open",
            Event::ImagesView => "images_view",
            Event::DicomDownload => "dicom_download",
        }
    }
}

/// The `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused: the reason code goes in `detail`.
    Refused,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Refused => "refused",
        }
    }
}

/// The `method` column: how the actor signed in, or where the action came
/// from when no session is involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditMethod {
    /// A signed-in professional's login method (`psc_card`, `psc_app`, `hm_sso`).
    Login(LoginMethod),
    /// A Pro Santé Connect login refused before the card or app is known (`psc`).
    Psc,
    /// A Hopital Manager launch refused before a session exists (`hm_sso`).
    HmSso,
    /// The command line (`cli`).
    Cli,
}

impl AuditMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMethod::Login(m) => m.as_str(),
            AuditMethod::Psc => "psc",
            AuditMethod::HmSso => "hm_sso",
            AuditMethod::Cli => "cli",
        }
    }
}

/// One audit record. Build it with [`AuditEvent::new`] and the methods
/// that follow it, e.g. for a signed-in request:
///
/// ```
/// # use espace_ps::audit::{AuditEvent, Event, Outcome};
/// # let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
/// let e = AuditEvent::new(Event::ReportView, Outcome::Success)
///     .client(ip)
///     .on("CR-1");
/// assert_eq!(e.event(), "report_view");
/// ```
///
/// (`.by(&professional)` sets the actor and the method). The fields are
/// private: this constructor is the only way to build a record; they are
/// read with the methods of the same names
/// (`method_str`, `detail_str` for the two that are also builders).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(Default))]
pub struct AuditEvent {
    /// The professional's national id, when known.
    actor: Option<String>,
    /// `login`, `hm_sso`, `logout`, …
    event: &'static str,
    /// How: `psc_card`, `psc_app`, `hm_sso`.
    method: Option<&'static str>,
    /// `success`, or `refused` with a reason code in `detail`.
    outcome: &'static str,
    client_addr: Option<String>,
    /// What was accessed (later: dossier, study…).
    resource: Option<String>,
    /// A reason code or short note, never a token or a secret.
    detail: Option<String>,
}

// === impl AuditEvent ===

impl AuditEvent {
    pub fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }
    pub fn event(&self) -> &'static str {
        self.event
    }
    pub fn method_str(&self) -> Option<&'static str> {
        self.method
    }
    pub fn outcome(&self) -> &'static str {
        self.outcome
    }
    pub fn client_addr(&self) -> Option<&str> {
        self.client_addr.as_deref()
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    pub fn detail_str(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// A record of `event` with `outcome`, nothing else known yet.
    pub fn new(event: Event, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            actor: None,
            event: event.as_str(),
            method: None,
            outcome: outcome.as_str(),
            client_addr: None,
            resource: None,
            detail: None,
        }
    }

    /// Done by this professional: the actor (national id) and the method
    /// (how they signed in).
    pub fn by(self, professional: &Professional) -> AuditEvent {
        AuditEvent {
            actor: Some(professional.national_id.as_str().to_owned()),
            ..self.method(AuditMethod::Login(professional.login_method))
        }
    }

    /// The method alone, when no professional is known (a refused login,
    /// the command line).
    pub fn method(self, method: AuditMethod) -> AuditEvent {
        AuditEvent {
            method: Some(method.as_str()),
            ..self
        }
    }

    /// The client's address (after `server.trusted_gateways`).
    pub fn client(self, addr: IpAddr) -> AuditEvent {
        AuditEvent {
            client_addr: Some(addr.to_string()),
            ..self
        }
    }

    /// What was accessed: a patient id, dossier number, report id, study
    /// UID, national id.
    pub fn on(self, resource: impl Into<String>) -> AuditEvent {
        AuditEvent {
            resource: Some(resource.into()),
            ..self
        }
    }

    /// A reason code or short note, never a token or a secret.
    pub fn detail(self, detail: impl Into<String>) -> AuditEvent {
        AuditEvent {
            detail: Some(detail.into()),
            ..self
        }
    }
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
        .await
        .inspect_err(|_| crate::metrics::METRICS.audit_write_failures.inc())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NationalId;

    /// The stored names: changing one breaks every query of the trail.
    #[test]
    fn stored_names_are_fixed() {
        let names: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "login",
                "hm_sso",
                "logout",
                "session_revoked",
                "sessions_revoke",
                "dossier_number_access",
                "dossier_number_locked",
                "dossier_number_unlocked",
                "patient_view",
                "dossier_view",
                "report_view",
                "images_open",
                "images_view",
                "dicom_download",
            ]
        );
        assert_eq!(Outcome::Success.as_str(), "success");
        assert_eq!(Outcome::Refused.as_str(), "refused");
        let methods = [
            AuditMethod::Login(LoginMethod::PscCard),
            AuditMethod::Login(LoginMethod::PscApp),
            AuditMethod::Login(LoginMethod::HmSso),
            AuditMethod::Psc,
            AuditMethod::HmSso,
            AuditMethod::Cli,
        ];
        let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        assert_eq!(
            methods,
            ["psc_card", "psc_app", "hm_sso", "psc", "hm_sso", "cli"]
        );
    }

    /// The constructor gives the records the struct literals gave.
    #[test]
    fn constructor_builds_the_same_records() {
        let p = Professional::new(
            NationalId::parse("899700123450").unwrap(),
            "Jeanne".into(),
            "MARTIN".into(),
            LoginMethod::PscCard,
        );
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            AuditEvent::new(Event::DossierNumberAccess, Outcome::Refused)
                .by(&p)
                .client(ip)
                .on("D-1")
                .detail("no_match"),
            AuditEvent {
                actor: Some("899700123450".into()),
                event: "dossier_number_access",
                method: Some("psc_card"),
                outcome: "refused",
                client_addr: Some("192.0.2.7".into()),
                resource: Some("D-1".into()),
                detail: Some("no_match".into()),
            }
        );
        assert_eq!(
            AuditEvent::new(Event::SessionsRevoke, Outcome::Success)
                .method(AuditMethod::Cli)
                .on("899700123450")
                .detail("recorded"),
            AuditEvent {
                actor: None,
                event: "sessions_revoke",
                method: Some("cli"),
                outcome: "success",
                client_addr: None,
                resource: Some("899700123450".into()),
                detail: Some("recorded".into()),
            }
        );
        assert_eq!(
            AuditEvent::new(Event::Login, Outcome::Refused)
                .method(AuditMethod::Psc)
                .client(ip),
            AuditEvent {
                event: "login",
                method: Some("psc"),
                outcome: "refused",
                client_addr: Some("192.0.2.7".into()),
                ..Default::default()
            }
        );
    }
}
