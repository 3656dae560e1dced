//! What one audit record says: the event, its outcome, who, from where, on
//! which patient, dossier, study or report, how the access was allowed.

use std::net::IpAddr;

use crate::identity::{LoginMethod, Professional};

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
    /// A search by name: how many patients were listed and a keyed hash of
    /// the typed text (never the text itself).
    PatientSearch,
}

impl Event {
    /// Every event (docs and tests).
    pub const ALL: [Event; 15] = [
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
        Event::PatientSearch,
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
            Event::PatientSearch => "patient_search",
        }
    }

    /// The event of a stored name.
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Which typed column `.on(resource)` fills for this event.
    fn subject(self) -> Subject {
        match self {
            Event::PatientView => Subject::Patient,
            Event::DossierView
            | Event::DossierNumberAccess
            | Event::DossierNumberLocked
            | Event::DossierNumberUnlocked => Subject::Dossier,
            Event::ReportView => Subject::Report,
            Event::ImagesOpen | Event::ImagesView | Event::DicomDownload => Subject::Study,
            Event::Login
            | Event::HmSso
            | Event::Logout
            | Event::SessionRevoked
            | Event::SessionsRevoke
            | Event::PatientSearch => Subject::None,
        }
    }
}

enum Subject {
    Patient,
    Dossier,
    Report,
    Study,
    None,
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

/// The `access_path` column: why the professional could see the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPath {
    /// A care-team role on the dossier (from the records).
    CareTeam,
    /// A dossier-number grant (number and birth date typed on the portal).
    DossierGrant,
    /// Opened from Hopital Manager (the SSO's own patient context).
    HmSso,
}

impl AccessPath {
    pub const ALL: [AccessPath; 3] = [
        AccessPath::CareTeam,
        AccessPath::DossierGrant,
        AccessPath::HmSso,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AccessPath::CareTeam => "care_team",
            AccessPath::DossierGrant => "dossier_grant",
            AccessPath::HmSso => "hm_sso",
        }
    }
}

/// Typed text that is only ever stored as a keyed hash: its `Debug` never
/// shows it, and the store hashes it with the trail's key.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SearchText(pub(crate) String);

impl std::fmt::Debug for SearchText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchText(..)")
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
/// assert_eq!(e.report_id(), Some("CR-1"));
/// ```
///
/// (`.by(&professional)` sets the actor and the method). `.on(resource)`
/// fills the typed column the event is about (a report id for a report
/// view, a study UID for images, a dossier number for a dossier); the
/// typed methods (`.patient`, `.dossier`, `.study`, `.report`) set or add
/// the others. The fields are private: this constructor is the only way to
/// build a record; they are read with the methods of the same names
/// (`method_str`, `detail_str`, `via_str`, `policy_str` for those that are
/// also builders).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(Default))]
pub struct AuditEvent {
    /// The professional's national id, when known.
    pub(crate) actor: Option<String>,
    /// `login`, `hm_sso`, `logout`, …
    pub(crate) event: &'static str,
    /// How: `psc_card`, `psc_app`, `hm_sso`.
    pub(crate) method: Option<&'static str>,
    /// `success`, or `refused` with a reason code in `detail`.
    pub(crate) outcome: &'static str,
    pub(crate) client_addr: Option<String>,
    /// What was accessed, as the call site named it (kept for the reader
    /// of older rows; the typed columns below are the ones to query).
    pub(crate) resource: Option<String>,
    /// A reason code or short note, never a token or a secret.
    pub(crate) detail: Option<String>,
    pub(crate) patient_id: Option<String>,
    pub(crate) dossier: Option<String>,
    pub(crate) study_uid: Option<String>,
    pub(crate) report_id: Option<String>,
    pub(crate) access_path: Option<&'static str>,
    /// The `@id` of the policy that allowed (or forbade) it.
    pub(crate) policy: Option<String>,
    pub(crate) request_id: Option<String>,
    /// A name search's typed text: hashed with the trail's key when stored.
    pub(crate) search: Option<SearchText>,
    /// How many patients a search listed.
    pub(crate) result_count: Option<i64>,
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
    pub fn patient_id(&self) -> Option<&str> {
        self.patient_id.as_deref()
    }
    pub fn dossier_number(&self) -> Option<&str> {
        self.dossier.as_deref()
    }
    pub fn study_uid(&self) -> Option<&str> {
        self.study_uid.as_deref()
    }
    pub fn report_id(&self) -> Option<&str> {
        self.report_id.as_deref()
    }
    pub fn via_str(&self) -> Option<&'static str> {
        self.access_path
    }
    pub fn policy_str(&self) -> Option<&str> {
        self.policy.as_deref()
    }
    pub fn request_id_str(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    pub fn result_count(&self) -> Option<i64> {
        self.result_count
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
            patient_id: None,
            dossier: None,
            study_uid: None,
            report_id: None,
            access_path: None,
            policy: None,
            request_id: None,
            search: None,
            result_count: None,
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
    /// UID, national id. It also fills the typed column of the event's
    /// subject (see [`AuditEvent`]); an empty resource fills nothing.
    pub fn on(self, resource: impl Into<String>) -> AuditEvent {
        let resource: String = resource.into();
        let subject = Event::parse(self.event).map_or(Subject::None, Event::subject);
        let mut e = self;
        if !resource.is_empty() {
            let slot = match subject {
                Subject::Patient => Some(&mut e.patient_id),
                Subject::Dossier => Some(&mut e.dossier),
                Subject::Report => Some(&mut e.report_id),
                Subject::Study => Some(&mut e.study_uid),
                Subject::None => None,
            };
            if let Some(slot) = slot {
                slot.get_or_insert_with(|| resource.clone());
            }
        }
        AuditEvent {
            resource: Some(resource),
            ..e
        }
    }

    /// A reason code or short note, never a token or a secret.
    pub fn detail(self, detail: impl Into<String>) -> AuditEvent {
        AuditEvent {
            detail: Some(detail.into()),
            ..self
        }
    }

    /// The patient whose data this is (the records' patient id).
    pub fn patient(self, patient_id: impl Into<String>) -> AuditEvent {
        AuditEvent {
            patient_id: Some(patient_id.into()),
            ..self
        }
    }

    /// The dossier (visit) number.
    pub fn dossier(self, number: impl Into<String>) -> AuditEvent {
        AuditEvent {
            dossier: Some(number.into()),
            ..self
        }
    }

    /// The StudyInstanceUID.
    pub fn study(self, uid: impl Into<String>) -> AuditEvent {
        AuditEvent {
            study_uid: Some(uid.into()),
            ..self
        }
    }

    /// The report id.
    pub fn report(self, id: impl Into<String>) -> AuditEvent {
        AuditEvent {
            report_id: Some(id.into()),
            ..self
        }
    }

    /// How the access was allowed.
    pub fn via(self, path: AccessPath) -> AuditEvent {
        AuditEvent {
            access_path: Some(path.as_str()),
            ..self
        }
    }

    /// This record with what `enriched` (a record of the same access
    /// completed by `Access::enrich`) knows and this one does not yet: the
    /// patient, the dossier, how it was allowed and by which policy.
    pub fn completed_like(self, enriched: &AuditEvent) -> AuditEvent {
        AuditEvent {
            patient_id: self.patient_id.or_else(|| enriched.patient_id.clone()),
            dossier: self.dossier.or_else(|| enriched.dossier.clone()),
            access_path: self.access_path.or(enriched.access_path),
            policy: self.policy.or_else(|| enriched.policy.clone()),
            ..self
        }
    }

    /// The `@id` of the policy that decided (or the refusal's reason).
    pub fn policy(self, id: impl Into<String>) -> AuditEvent {
        AuditEvent {
            policy: Some(id.into()),
            ..self
        }
    }

    /// The request's id (`X-Request-Id`), to find its log lines.
    pub fn request_id(self, id: impl Into<String>) -> AuditEvent {
        AuditEvent {
            request_id: Some(id.into()),
            ..self
        }
    }

    /// A name search: the typed text (stored only as a keyed hash) and how
    /// many patients were listed.
    pub fn searched(self, text: &str, listed: usize) -> AuditEvent {
        AuditEvent {
            search: Some(SearchText(text.to_owned())),
            result_count: Some(i64::try_from(listed).unwrap_or(i64::MAX)),
            ..self
        }
    }
}
