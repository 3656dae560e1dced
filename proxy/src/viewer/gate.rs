//! The viewer gate: every request to the viewer is canonicalized and
//! classified by the viewer's route table, its resource resolved to the
//! studies it really belongs to (asked of the archive through a
//! [`StudyResolver`], never taken from the client's parent ids), each study
//! decided by the access service (view images, or download DICOM for class
//! D), and the decision written to the audit trail. Anything that cannot be
//! classified, resolved, decided or audited is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use espace_ps_access::viewer::{
    Candidate, Class, Classification, Csp, IdKind, Level, ResourceRef, RouteTable,
};
use espace_ps_access::Action;

use super::cache::TtlCache;
use super::resolver::{ResolveError, StudyResolver};
use super::Refusal;
use crate::access::Access;
use crate::audit::{AuditEvent, AuditSink, Event, Outcome};
use crate::session::SessionData;

mod downloads;

/// How long what the archive said about an id is kept.
const RESOLVE_TTL: Duration = Duration::from_secs(300);
/// How long a decision is kept (also bounded by policy reloads and grants).
const DECISION_TTL: Duration = Duration::from_secs(60);
/// Image views of one study are audited once per session per this window.
pub const AUDIT_WINDOW: Duration = Duration::from_secs(600);
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

/// One session and one study, as cached: the policy generation and the
/// grant epoch are part of the key, so a reload or a new grant is never
/// answered from the cache.
#[derive(Clone, PartialEq, Eq, Hash)]
struct StudyKey {
    session: Arc<str>,
    study: String,
    generation: u64,
    grant_epoch: u64,
}

/// A [`StudyKey`] borrowed, to look one up without allocating: its fields
/// hash as the key's do (`&str` as `String` and `Arc<str>`).
#[derive(Hash)]
struct StudyKeyRef<'a> {
    session: &'a str,
    study: &'a str,
    generation: u64,
    grant_epoch: u64,
}

impl quick_cache::Equivalent<StudyKey> for StudyKeyRef<'_> {
    fn equivalent(&self, key: &StudyKey) -> bool {
        *self.session == *key.session
            && self.study == key.study
            && self.generation == key.generation
            && self.grant_epoch == key.grant_epoch
    }
}

/// What a resource id resolves from: (level, kind, id).
#[derive(Clone, PartialEq, Eq, Hash)]
struct ResolvedKey {
    level: Level,
    kind: IdKind,
    id: String,
}

/// A [`ResolvedKey`] borrowed (hashes as the key does).
#[derive(Hash)]
struct ResolvedKeyRef<'a> {
    level: Level,
    kind: IdKind,
    id: &'a str,
}

impl quick_cache::Equivalent<ResolvedKey> for ResolvedKeyRef<'_> {
    fn equivalent(&self, key: &ResolvedKey) -> bool {
        self.level == key.level && self.kind == key.kind && self.id == key.id
    }
}

/// A cached decision of one action (the key of what it enriched).
#[derive(Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    study: StudyKey,
    action: Action,
}

/// What is known of one session on one study, kept as one cache entry: a
/// viewer asks for every frame of a study, and each frame then costs one
/// lookup (view, download, and whether the view is on the trail), not three.
#[derive(Default)]
struct StudyEntry {
    view: OnceLock<bool>,
    download: OnceLock<bool>,
    /// The end of the audit window of this session's image views of this
    /// study (milliseconds since [`Gate::epoch`]) once known; 0 before.
    /// The `audited` cache stays the authority: this only spares its lookup.
    view_audited_until: AtomicU64,
}

pub struct Gate {
    /// The route table in force (read on every request without a lock, and
    /// replaced by a reload without waiting for them: `arc_swap`).
    table: ArcSwapOption<RouteTable>,
    resolver: Arc<dyn StudyResolver>,
    access: Arc<Access>,
    audit: Arc<dyn AuditSink>,
    /// (level, kind, id) → the StudyInstanceUIDs it belongs to.
    resolved: TtlCache<ResolvedKey, Arc<Vec<String>>>,
    /// The decisions of a session on a study ([`StudyEntry`]).
    decisions: TtlCache<StudyKey, Arc<StudyEntry>>,
    /// What `Access::enrich` added to a successful record of a study (its
    /// patient, dossier, access path, policy), by the key of the decision
    /// that allowed it: the records' answers are taken as stable for a
    /// decision's lifetime, and a download audited on every request does
    /// not ask them again each time.
    enriched: TtlCache<DecisionKey, Arc<AuditEvent>>,
    /// (session, study) → when the window of its audited image view
    /// opened (milliseconds since `epoch`).
    audited: TtlCache<(Arc<str>, String), u64>,
    /// The origin of the gate's millisecond clock.
    epoch: Instant,
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
            resolver,
            access,
            audit,
            resolved: cache(RESOLVE_TTL),
            decisions: cache(DECISION_TTL),
            enriched: cache(DECISION_TTL),
            audited: cache(AUDIT_WINDOW),
            epoch: Instant::now(),
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
        self.resolver.viewer_url(study_uid).await
    }

    /// An answer of the archive to a request this gate forwarded with
    /// [`Forward::learn`] (see [`StudyResolver::learn_from_answer`]).
    pub fn learn_from_answer(&self, body: &[u8]) {
        self.resolver.learn_from_answer(body);
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
            match self.resolve(&candidate).await {
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
                let key = (session.clone(), format!("refused {study}"));
                if !self.audited.contains_key(&key) {
                    self.audit_best_effort(r.event(
                        Event::ImagesView,
                        Outcome::Refused,
                        study,
                        &candidate.route_id,
                    ))
                    .await;
                    self.audited.insert(key, self.now_ms());
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
            if self.view_on_trail(entry, session, study) {
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
            self.view_recorded(entry, session, study);
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
            learn: self.resolver.learns_from_answers()
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

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether an image view of this study by this session is on the trail
    /// within the current window.
    fn view_on_trail(&self, entry: &StudyEntry, session_key: &Arc<str>, study: &str) -> bool {
        let now = self.now_ms();
        if now < entry.view_audited_until.load(Ordering::Relaxed) {
            return true;
        }
        let key = (session_key.clone(), study.to_owned());
        match self.audited.get(&key) {
            Some(opened) => {
                let until = opened.saturating_add(AUDIT_WINDOW.as_millis() as u64);
                entry.view_audited_until.store(until, Ordering::Relaxed);
                now < until
            }
            None => false,
        }
    }

    /// An image view's record is stored: its window opens.
    fn view_recorded(&self, entry: &StudyEntry, session_key: &Arc<str>, study: &str) {
        let now = self.now_ms();
        self.audited
            .insert((session_key.clone(), study.to_owned()), now);
        entry.view_audited_until.store(
            now.saturating_add(AUDIT_WINDOW.as_millis() as u64),
            Ordering::Relaxed,
        );
    }

    /// Every study a candidate touches; unscoped, system-wide and
    /// body-listed resources cannot be checked here and are refused.
    async fn resolve(&self, c: &Candidate) -> Result<Arc<Vec<String>>, ResolveError> {
        let mut out = Vec::new();
        // Listed resources (`/tools/create-archive?resources=…`) are studies,
        // whether one id or several is listed.
        let level = if c.level == Level::Listed {
            Level::Study
        } else {
            c.level
        };
        match &c.resource {
            // Sorted and deduplicated already, shared with the cache.
            ResourceRef::One { kind, id } => return self.resolve_one(level, *kind, id).await,
            ResourceRef::List { kind, ids } => {
                for id in ids {
                    out.extend(self.resolve_one(level, *kind, id).await?.iter().cloned());
                }
            }
            ResourceRef::None => {}
            ResourceRef::System | ResourceRef::Unscoped { .. } => {
                return Err(ResolveError::Unresolvable("unscoped search"))
            }
            ResourceRef::Body { .. } => return Err(ResolveError::Unresolvable("ids in the body")),
        }
        out.sort();
        out.dedup();
        Ok(Arc::new(out))
    }

    /// The StudyInstanceUIDs one resource really belongs to.
    async fn resolve_one(
        &self,
        level: Level,
        kind: IdKind,
        id: &str,
    ) -> Result<Arc<Vec<String>>, ResolveError> {
        if let Some(hit) = self.resolved.get(&ResolvedKeyRef { level, kind, id }) {
            return Ok(hit);
        }
        let mut studies = match (kind, level) {
            (IdKind::DicomUid, Level::Study) => vec![id.to_owned()],
            (IdKind::DicomUid, Level::Series) => vec![self.resolver.study_of_series(id).await?],
            (IdKind::DicomUid, Level::Instance) => {
                vec![self.resolver.study_of_instance(id).await?]
            }
            (IdKind::DicomUid, _) => return Err(ResolveError::Unresolvable("level")),
            (IdKind::OrthancId, _) => self.resolver.studies_of_archive_id(level, id).await?,
            (IdKind::PatientId, _) => return Err(ResolveError::Unresolvable("patient id")),
        };
        studies.sort();
        studies.dedup();
        let studies = Arc::new(studies);
        // The parents of a study, series or instance never change, but a
        // patient gains studies: a cached list would let a new study of the
        // patient through undecided (its id listed by /patients/{id}).
        if level != Level::Patient {
            let key = ResolvedKey {
                level,
                kind,
                id: id.to_owned(),
            };
            self.resolved.insert(key, studies.clone());
        }
        Ok(studies)
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

#[cfg(test)]
mod key_tests {
    use super::*;

    /// A borrowed key that hashed or compared otherwise than its owned key
    /// would miss every time: each frame would decide and resolve again.
    #[test]
    fn borrowed_keys_find_the_entries_of_owned_keys() {
        let decisions: TtlCache<StudyKey, u32> = TtlCache::new(100, Duration::from_secs(60));
        let session: Arc<str> = "digest-of-a-session".into();
        decisions.insert(
            StudyKey {
                session: session.clone(),
                study: "1.2.3".into(),
                generation: 7,
                grant_epoch: 2,
            },
            1,
        );
        let borrowed = |study, generation, grant_epoch| StudyKeyRef {
            session: &session,
            study,
            generation,
            grant_epoch,
        };
        assert_eq!(decisions.get(&borrowed("1.2.3", 7, 2)), Some(1));
        assert_eq!(decisions.get(&borrowed("1.2.4", 7, 2)), None);
        assert_eq!(decisions.get(&borrowed("1.2.3", 8, 2)), None, "a reload");
        assert_eq!(decisions.get(&borrowed("1.2.3", 7, 3)), None, "a grant");
        let other = StudyKeyRef {
            session: "digest-of-another",
            ..borrowed("1.2.3", 7, 2)
        };
        assert_eq!(decisions.get(&other), None);

        let resolved: TtlCache<ResolvedKey, u32> = TtlCache::new(100, Duration::from_secs(60));
        resolved.insert(
            ResolvedKey {
                level: Level::Series,
                kind: IdKind::DicomUid,
                id: "1.2.3.4".into(),
            },
            2,
        );
        let look = |level, kind, id| resolved.get(&ResolvedKeyRef { level, kind, id });
        assert_eq!(look(Level::Series, IdKind::DicomUid, "1.2.3.4"), Some(2));
        assert_eq!(look(Level::Instance, IdKind::DicomUid, "1.2.3.4"), None);
        assert_eq!(look(Level::Series, IdKind::OrthancId, "1.2.3.4"), None);
        assert_eq!(look(Level::Series, IdKind::DicomUid, "1.2.3.5"), None);
    }
}
