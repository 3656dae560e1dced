//! The viewer gate: every request to the viewer is canonicalized and
//! classified by the viewer's route table, its resource resolved to the
//! studies it really belongs to (asked of the archive through a
//! [`StudyResolver`], never taken from the client's parent ids), each study
//! decided by the access service (view images, or download DICOM for class
//! D), and the decision written to the audit trail. Anything that cannot be
//! classified, resolved, decided or audited is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use espace_ps_access::viewer::{Class, Classification, Csp, RouteTable};
use espace_ps_access::Action;

use super::cache::TtlCache;
use super::resolver::{ResolveError, StudyResolver};
use super::Refusal;
use crate::access::Access;
use crate::audit::{AuditEvent, AuditSink, Event, Outcome};
use crate::session::SessionData;

mod downloads;
mod keys;
mod resolution;
mod window;

use keys::{DecisionKey, StudyEntry, StudyKey, StudyKeyRef};
use resolution::Studies;
use window::ViewWindow;
pub use window::AUDIT_WINDOW;

/// How long a decision is kept (also bounded by policy reloads and grants).
const DECISION_TTL: Duration = Duration::from_secs(60);
/// Entries kept in each cache; the least used go first beyond it.
const CACHE_CAP: usize = 100_000;

/// What the gate decided for one request.
#[derive(Debug)]
pub enum Verdict {
    /// Forward this canonical target.
    Forward(Forward),
    /// Answer this refusal.
    Refuse(Refusal),
}

#[derive(Debug, Clone)]
pub struct Forward {
    /// The origin-form target that was validated: exactly what is forwarded.
    pub target: String,
    pub class: Class,
    /// Whether DICOM bytes may flow back (checked again on the response's
    /// Content-Type, as defense in depth).
    pub may_download: bool,
    /// The Content-Security-Policy of the viewer's HTML pages (from the
    /// route table that decided).
    pub csp: Arc<Csp>,
    /// For a viewer page: the series its banner offers to download
    /// ([`downloads`]); empty otherwise.
    pub downloads: Vec<crate::inject::DownloadLink>,
    /// Whether the archive's answer, if DICOM JSON, is handed back to the
    /// resolver ([`Gate::learn_from_answer`]).
    pub learn: bool,
}

/// One viewer request, as the gate needs it.
pub struct ViewerRequest<'a> {
    /// The session cookie's value's [`crate::session::digest`]: decisions
    /// are cached per session, by it (never by the id itself).
    pub session_key: &'a Arc<str>,
    pub session: &'a SessionData,
    pub method: &'a str,
    /// The path and query as the client sent them.
    pub raw_target: &'a str,
    pub headers: &'a [(String, String)],
    pub client_ip: std::net::IpAddr,
    /// The request's id (`X-Request-Id`), for its audit records.
    pub request_id: &'a str,
}

pub struct Gate {
    /// The route table in force (read on every request without a lock, and
    /// replaced by a reload without waiting for them: `arc_swap`).
    table: ArcSwapOption<RouteTable>,
    /// The studies a resource belongs to ([`resolution`]).
    studies: Studies,
    access: Arc<Access>,
    audit: Arc<dyn AuditSink>,
    /// The decisions of a session on a study ([`StudyEntry`]).
    decisions: TtlCache<StudyKey, Arc<StudyEntry>>,
    /// What `Access::enrich` added to a successful record of a study (its
    /// patient, dossier, access path, policy), by the key of the decision
    /// that allowed it: the records' answers are taken as stable for a
    /// decision's lifetime, and a download audited on every request does
    /// not ask them again each time.
    enriched: TtlCache<DecisionKey, Arc<AuditEvent>>,
    /// What is on the trail already ([`window`]).
    window: ViewWindow,
    /// Bumped when a dossier grant is created: cached refusals must go.
    grant_epoch: AtomicU64,
}

fn cache<K, V>(ttl: Duration) -> TtlCache<K, V>
where
    K: std::hash::Hash + Eq + Clone,
    V: Clone,
{
    TtlCache::new(CACHE_CAP, ttl)
}

impl Gate {
    pub fn new(
        table: Option<RouteTable>,
        resolver: Arc<dyn StudyResolver>,
        access: Arc<Access>,
        audit: Arc<dyn AuditSink>,
    ) -> Gate {
        Gate {
            table: ArcSwapOption::new(table.map(Arc::new)),
            studies: Studies::new(resolver),
            access,
            audit,
            decisions: cache(DECISION_TTL),
            enriched: cache(DECISION_TTL),
            window: ViewWindow::new(),
            grant_epoch: AtomicU64::new(0),
        }
    }

    pub fn table(&self) -> Option<Arc<RouteTable>> {
        self.table.load_full()
    }

    /// Replaces the route table (policy reload).
    pub fn set_table(&self, table: Option<RouteTable>) {
        self.table.store(table.map(Arc::new));
        self.decisions.invalidate_all();
        self.enriched.invalidate_all();
    }

    /// A dossier grant was created: forget cached decisions.
    pub fn grants_changed(&self) {
        self.grant_epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The viewer page that shows a study (the portal's "Voir les images").
    pub async fn study_url(&self, study_uid: &str) -> Result<String, ResolveError> {
        self.studies.resolver().viewer_url(study_uid).await
    }

    /// An answer of the archive to a request this gate forwarded with
    /// [`Forward::learn`] (see [`StudyResolver::learn_from_answer`]).
    pub fn learn_from_answer(&self, body: &[u8]) {
        self.studies.resolver().learn_from_answer(body);
    }

    /// The decision for one viewer request.
    pub async fn check(&self, r: &ViewerRequest<'_>) -> Verdict {
        // Held across the awaits below (a resolution may wait for the
        // archive): a counted reference rather than `arc_swap`'s
        // short-lived guard.
        let table = self.table.load_full();
        let Some(table) = table.as_deref() else {
            return Verdict::Refuse(Refusal::Refused);
        };
        let canonical = match table.canonicalize(r.method, r.raw_target, r.headers) {
            Ok(c) => c,
            Err(reason) => {
                tracing::info!(%reason, "viewer request rejected");
                return Verdict::Refuse(Refusal::Malformed);
            }
        };
        let candidate = match table.classify(&canonical) {
            Classification::Candidate(c) => c,
            Classification::Denied(d) => {
                if d.class == Some(Class::Download) {
                    self.audit_best_effort(r.event(
                        Event::DicomDownload,
                        Outcome::Refused,
                        "",
                        &d.reason,
                    ))
                    .await;
                }
                tracing::info!(reason = %d.reason, "viewer request denied by the route table");
                return Verdict::Refuse(Refusal::Refused);
            }
        };
        if candidate.class == Class::SideEffect {
            return Verdict::Refuse(Refusal::Refused);
        }
        let download = candidate.class == Class::Download;
        let studies = if candidate.class == Class::Shell {
            Arc::default()
        } else {
            match self.studies.of_candidate(&candidate).await {
                Ok(s) if !s.is_empty() => s,
                Ok(_) => return Verdict::Refuse(Refusal::Refused),
                Err(e) => {
                    tracing::info!(error = %e, route = %candidate.route_id, "viewer resource not resolved");
                    if download {
                        self.audit_best_effort(r.event(
                            Event::DicomDownload,
                            Outcome::Refused,
                            "",
                            "unresolved",
                        ))
                        .await;
                    }
                    // The archive down is "try again later", not "no access";
                    // what it does not know is refused.
                    return Verdict::Refuse(match e {
                        ResolveError::Unreachable(_) => Refusal::Unavailable,
                        _ => Refusal::Refused,
                    });
                }
            }
        };
        let session = r.session_key;
        let action = if download {
            Action::DownloadDicom
        } else {
            Action::ViewImages
        };
        // One cache entry per study for all that follows (most requests
        // touch one study: no allocation for the list).
        let entries: smallvec::SmallVec<[Arc<StudyEntry>; 2]> = studies
            .iter()
            .map(|study| self.study_entry(session, study))
            .collect();
        for (study, entry) in studies.iter().zip(&entries) {
            let decided = self.decide_on(entry, r.session, action, study).await;
            if decided == Some(true) {
                continue;
            }
            // No decision (the records unreachable) refuses as a "no" does,
            // on the trail too, but the page says to try again later.
            let refusal = |r: Refusal| {
                if decided.is_none() {
                    Refusal::Unavailable
                } else {
                    r
                }
            };
            if !download {
                // A refused view is on the trail too, once per study per
                // window (a viewer asks for every frame: one record).
                if !self.window.refusal_on_trail(session, study) {
                    self.audit_best_effort(r.event(
                        Event::ImagesView,
                        Outcome::Refused,
                        study,
                        &candidate.route_id,
                    ))
                    .await;
                    self.window.refusal_recorded(session, study);
                }
                return Verdict::Refuse(refusal(Refusal::Refused));
            }
            let detail = self.download_detail(&candidate).await;
            self.audit_best_effort(r.event(Event::DicomDownload, Outcome::Refused, study, &detail))
                .await;
            // A viewer may still show the images: say why downloading is refused.
            let may_view = self
                .decide_on(entry, r.session, Action::ViewImages, study)
                .await;
            return Verdict::Refuse(match may_view {
                Some(true) => refusal(Refusal::DownloadRefused),
                Some(false) => refusal(Refusal::Refused),
                None => Refusal::Unavailable,
            });
        }
        // The trail: every download, and image views once per study per window.
        let detail = if download {
            self.download_detail(&candidate).await
        } else {
            String::new()
        };
        for (study, entry) in studies.iter().zip(&entries) {
            if download {
                let e = r.event(Event::DicomDownload, Outcome::Success, study, &detail);
                if !self.audit_or_refuse(session, r.session, e).await {
                    return Verdict::Refuse(Refusal::Unavailable);
                }
                continue;
            }
            if self.window.view_on_trail(entry, session, study) {
                continue;
            }
            let e = r.event(
                Event::ImagesView,
                Outcome::Success,
                study,
                candidate.class.code(),
            );
            if !self.audit_or_refuse(session, r.session, e).await {
                return Verdict::Refuse(Refusal::Unavailable);
            }
            // The window opens only once its record is stored: a failed
            // insert leaves it closed, so the next request is audited (or
            // refused) again rather than forwarded unaudited.
            self.window.view_recorded(entry, session, study);
        }
        let mut may_download = download;
        if !download && !studies.is_empty() {
            may_download = true;
            for (study, entry) in studies.iter().zip(&entries) {
                if self
                    .decide_on(entry, r.session, Action::DownloadDicom, study)
                    .await
                    != Some(true)
                {
                    may_download = false;
                    break;
                }
            }
        }
        let downloads = if candidate.class == Class::Shell {
            self.page_downloads(r, table, canonical.target_str(), session)
                .await
        } else {
            Vec::new()
        };
        Verdict::Forward(Forward {
            target: canonical.into_target(),
            class: candidate.class,
            may_download,
            csp: table.csp().clone(),
            downloads,
            learn: self.studies.resolver().learns_from_answers()
                && matches!(candidate.class, Class::Raw | Class::Search),
        })
    }

    /// May this session do `action` on this study? Cached briefly. None:
    /// no decision (the records unreachable), which callers refuse as a
    /// "no" and which is not cached.
    async fn decide(
        &self,
        session_key: &Arc<str>,
        session: &SessionData,
        action: Action,
        study_uid: &str,
    ) -> Option<bool> {
        let entry = self.study_entry(session_key, study_uid);
        self.decide_on(&entry, session, action, study_uid).await
    }

    /// [`Gate::decide`], with the study's cache entry already looked up.
    async fn decide_on(
        &self,
        entry: &StudyEntry,
        session: &SessionData,
        action: Action,
        study_uid: &str,
    ) -> Option<bool> {
        let slot = match action {
            Action::ViewImages => Some(&entry.view),
            Action::DownloadDicom => Some(&entry.download),
            _ => None,
        };
        if let Some(hit) = slot.and_then(|s| s.get()) {
            return Some(*hit);
        }
        match self.access.may_on_study(session, action, study_uid).await {
            Ok(allowed) => {
                // Two requests deciding at once decide alike: the first kept.
                if let Some(slot) = slot {
                    let _ = slot.set(allowed);
                }
                Some(allowed)
            }
            Err(e) => {
                tracing::error!(error = %e, "records unavailable for a viewer decision");
                None
            }
        }
    }

    fn study_key(&self, session_key: &Arc<str>, study_uid: &str) -> StudyKey {
        StudyKey {
            session: session_key.clone(),
            study: study_uid.to_owned(),
            generation: self.access.generation(),
            grant_epoch: self.grant_epoch.load(Ordering::Relaxed),
        }
    }

    /// The cache entry of this session on this study (an empty one, kept,
    /// when there was none).
    fn study_entry(&self, session_key: &Arc<str>, study_uid: &str) -> Arc<StudyEntry> {
        let key = StudyKeyRef {
            session: session_key,
            study: study_uid,
            generation: self.access.generation(),
            grant_epoch: self.grant_epoch.load(Ordering::Relaxed),
        };
        if let Some(entry) = self.decisions.get(&key) {
            return entry;
        }
        let entry = Arc::new(StudyEntry::default());
        self.decisions.insert(
            StudyKey {
                session: session_key.clone(),
                study: study_uid.to_owned(),
                generation: key.generation,
                grant_epoch: key.grant_epoch,
            },
            entry.clone(),
        );
        entry
    }

    async fn audit_best_effort(&self, e: AuditEvent) {
        if let Err(err) = self.audit.record(&e).await {
            tracing::error!(error = %err, event = e.event(), "audit write failed");
        }
    }

    /// Whether the record was stored (no record, no access).
    async fn audit_or_refuse(
        &self,
        session_key: &Arc<str>,
        session: &SessionData,
        e: AuditEvent,
    ) -> bool {
        // The patient, the dossier, how and by which policy: a records
        // failure here refuses too.
        let action = match Event::parse(e.event()) {
            Some(Event::DicomDownload) => Some(Action::DownloadDicom),
            Some(Event::ImagesView) => Some(Action::ViewImages),
            _ => None,
        };
        let key = match (action, e.study_uid()) {
            (Some(action), Some(study)) if e.outcome() == Outcome::Success.as_str() => {
                Some(DecisionKey {
                    study: self.study_key(session_key, study),
                    action,
                })
            }
            _ => None,
        };
        let cached = key.as_ref().and_then(|k| self.enriched.get(k));
        let e = match cached {
            Some(enriched) => e.completed_like(&enriched),
            None => match self.access.enrich(session, e).await {
                Ok(e) => {
                    if let Some(k) = key {
                        self.enriched.insert(k, Arc::new(e.clone()));
                    }
                    e
                }
                Err(err) => {
                    tracing::error!(error = %err, "records unavailable for an audit record: viewer request refused");
                    return false;
                }
            },
        };
        match self.audit.record(&e).await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(error = %err, "audit write failed: viewer request refused");
                false
            }
        }
    }
}

impl ViewerRequest<'_> {
    /// An audit record of this request (`resource` empty: none resolved).
    fn event(&self, event: Event, outcome: Outcome, resource: &str, detail: &str) -> AuditEvent {
        AuditEvent::new(event, outcome)
            .by(&self.session.professional)
            .client(self.client_ip)
            .request_id(self.request_id)
            .on(resource)
            .detail(detail)
    }
}
