//! Requests to the viewer: every one is canonicalized and classified by the
//! viewer's route table (`policies/viewers/*.toml`), its resource resolved
//! to the studies it really belongs to (asked of the viewer itself, never
//! taken from the client's parent ids), and each study decided by the policy
//! engine: view images, or download DICOM for class D. Anything that cannot
//! be classified, resolved or decided is refused.
//!
//! Also: what espace-ps asks the viewer for the portal (where a study opens).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use espace_ps_access::viewer::{
    Candidate, Class, Classification, IdKind, Level, ResourceRef, RouteTable,
};
use espace_ps_access::{Action, Resource};
use http::StatusCode;
use serde_json::Value;

use crate::app::App;
use crate::audit::AuditEvent;
use crate::pages::ErrorPage;
use crate::session::SessionData;
use crate::web::Resp;

/// How long what the viewer said about an id is kept.
const RESOLVE_TTL: Duration = Duration::from_secs(300);
/// How long a decision is kept (also bounded by policy reloads and grants).
const DECISION_TTL: Duration = Duration::from_secs(60);
/// Image views of one study are audited once per session per this window.
const AUDIT_WINDOW: Duration = Duration::from_secs(600);
/// Entries kept in each cache before it is emptied.
const CACHE_CAP: usize = 100_000;

pub const REFUSED: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Accès refusé",
    "Vous n'avez pas accès à cette ressource du visualiseur d'images.",
)
.with_reference("visualiseur-refus");
pub const DOWNLOAD_REFUSED: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Téléchargement non autorisé",
    "Le téléchargement des images au format DICOM est soumis à une habilitation que vous n'avez pas. Vous pouvez consulter les images dans le visualiseur.",
)
.with_reference("dicom-habilitation");
pub const MALFORMED: ErrorPage = ErrorPage::new(
    StatusCode::BAD_REQUEST,
    "Requête refusée",
    "Cette adresse n'est pas valide pour le visualiseur d'images.",
)
.with_reference("requete-invalide");

#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("viewer unreachable: {0}")]
    Unreachable(String),
    #[error("resource not found in the viewer")]
    NotFound,
    #[error("resource cannot be resolved: {0}")]
    Unresolvable(&'static str),
}

/// What the viewer guard decided for one request.
pub enum Verdict {
    /// Forward this canonical target.
    Forward(Forward),
    /// Answer this refusal.
    Refuse(Resp),
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
    pub csp: Arc<espace_ps_access::viewer::Csp>,
}

type Cache<V> = Mutex<HashMap<String, (V, Instant)>>;

fn cache_get<V: Clone>(c: &Cache<V>, key: &str, ttl: Duration) -> Option<V> {
    let g = c.lock().unwrap_or_else(|p| p.into_inner());
    g.get(key)
        .filter(|(_, at)| at.elapsed() < ttl)
        .map(|(v, _)| v.clone())
}

fn cache_put<V>(c: &Cache<V>, key: String, v: V) {
    let mut g = c.lock().unwrap_or_else(|p| p.into_inner());
    if g.len() >= CACHE_CAP {
        g.clear();
    }
    g.insert(key, (v, Instant::now()));
}

pub struct ViewerGuard {
    table: RwLock<Option<Arc<RouteTable>>>,
    /// `level:kind:id` → the StudyInstanceUIDs it belongs to.
    resolved: Cache<Arc<Vec<String>>>,
    /// session, action, study, policy generation, grant epoch → allowed.
    decisions: Cache<bool>,
    /// session, study → last image-view audit.
    audited: Cache<()>,
    /// Bumped when a dossier grant is created: cached refusals must go.
    grant_epoch: AtomicU64,
}

impl ViewerGuard {
    pub fn new(table: Option<RouteTable>) -> ViewerGuard {
        ViewerGuard {
            table: RwLock::new(table.map(Arc::new)),
            resolved: Mutex::default(),
            decisions: Mutex::default(),
            audited: Mutex::default(),
            grant_epoch: AtomicU64::new(0),
        }
    }

    pub fn table(&self) -> Option<Arc<RouteTable>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the route table (policy reload).
    pub fn set_table(&self, table: Option<RouteTable>) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table.map(Arc::new);
        self.decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// A dossier grant was created: forget cached decisions.
    pub fn grants_changed(&self) {
        self.grant_epoch.fetch_add(1, Ordering::Relaxed);
    }
}

/// Loads the route table named `name` from `policies_dir/viewers`.
pub fn load_table(
    policies_dir: &std::path::Path,
    name: &str,
) -> Result<Option<RouteTable>, String> {
    let tables = espace_ps_access::viewer::load_dir(policies_dir).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(tables.into_iter().find(|t| t.name() == name))
}

fn base(app: &App) -> String {
    let up = &app.config.upstream;
    format!("{}://{}", if up.tls { "https" } else { "http" }, up.address)
}

async fn get_json(app: &App, path: &str) -> Result<Value, ViewerError> {
    let r = app
        .viewer_http
        .get(format!("{}{path}", base(app)))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| ViewerError::Unreachable(e.to_string()))?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(ViewerError::NotFound);
    }
    r.error_for_status()
        .map_err(|e| ViewerError::Unreachable(e.to_string()))?
        .json()
        .await
        .map_err(|e| ViewerError::Unreachable(e.to_string()))
}

/// Orthanc's id of a DICOM UID at a level (server-side `/tools/lookup`).
async fn lookup(app: &App, uid: &str, level: &str) -> Result<String, ViewerError> {
    let found: Value = app
        .viewer_http
        .post(format!("{}/tools/lookup", base(app)))
        .body(uid.to_owned())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| ViewerError::Unreachable(e.to_string()))?
        .json()
        .await
        .map_err(|e| ViewerError::Unreachable(e.to_string()))?;
    found
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["Type"] == level)
        .and_then(|e| e["ID"].as_str())
        .map(str::to_owned)
        .ok_or(ViewerError::NotFound)
}

fn study_uid_of(v: &Value) -> Option<String> {
    v["MainDicomTags"]["StudyInstanceUID"]
        .as_str()
        .map(str::to_owned)
}

/// The StudyInstanceUIDs one resource really belongs to.
async fn resolve_one(
    app: &App,
    level: Level,
    kind: IdKind,
    id: &str,
) -> Result<Arc<Vec<String>>, ViewerError> {
    let key = format!("{level:?}:{kind:?}:{id}");
    if let Some(hit) = cache_get(&app.viewer.resolved, &key, RESOLVE_TTL) {
        return Ok(hit);
    }
    let orthanc_level = |l: Level| match l {
        Level::Patient => Some(("patients", "Patient")),
        Level::Study => Some(("studies", "Study")),
        Level::Series => Some(("series", "Series")),
        Level::Instance => Some(("instances", "Instance")),
        _ => None,
    };
    let (path_level, lookup_type) =
        orthanc_level(level).ok_or(ViewerError::Unresolvable("level"))?;
    let studies = match (kind, level) {
        (IdKind::DicomUid, Level::Study) => vec![id.to_owned()],
        (IdKind::DicomUid, _) | (IdKind::OrthancId, _) => {
            let orthanc_id = if kind == IdKind::DicomUid {
                lookup(app, id, lookup_type).await?
            } else {
                id.to_owned()
            };
            match level {
                Level::Study => {
                    let s = get_json(app, &format!("/studies/{orthanc_id}")).await?;
                    vec![study_uid_of(&s).ok_or(ViewerError::NotFound)?]
                }
                Level::Series | Level::Instance => {
                    let s = get_json(app, &format!("/{path_level}/{orthanc_id}/study")).await?;
                    vec![study_uid_of(&s).ok_or(ViewerError::NotFound)?]
                }
                Level::Patient => {
                    let list = get_json(app, &format!("/patients/{orthanc_id}/studies")).await?;
                    let uids: Vec<String> = list
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(study_uid_of)
                        .collect();
                    if uids.is_empty() {
                        return Err(ViewerError::NotFound);
                    }
                    uids
                }
                _ => return Err(ViewerError::Unresolvable("level")),
            }
        }
        (IdKind::PatientId, _) => return Err(ViewerError::Unresolvable("patient id")),
    };
    let studies = Arc::new(studies);
    // The parents of a study, series or instance never change, but a
    // patient gains studies: a cached list would let a new study of the
    // patient through undecided (its id listed by /patients/{id}).
    if level != Level::Patient {
        cache_put(&app.viewer.resolved, key, studies.clone());
    }
    Ok(studies)
}

/// Every study a candidate touches; unscoped, system-wide and body-listed
/// resources cannot be checked here and are refused.
async fn resolve(app: &App, c: &Candidate) -> Result<Vec<String>, ViewerError> {
    let mut out = Vec::new();
    match &c.resource {
        ResourceRef::One { kind, id } => {
            out.extend(resolve_one(app, c.level, *kind, id).await?.iter().cloned())
        }
        ResourceRef::List { kind, ids } => {
            let level = if c.level == Level::Listed {
                Level::Study
            } else {
                c.level
            };
            for id in ids {
                out.extend(resolve_one(app, level, *kind, id).await?.iter().cloned());
            }
        }
        ResourceRef::None => {}
        ResourceRef::System | ResourceRef::Unscoped { .. } => {
            return Err(ViewerError::Unresolvable("unscoped search"))
        }
        ResourceRef::Body { .. } => return Err(ViewerError::Unresolvable("ids in the body")),
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl App {
    /// May this session do `action` on this study? Cached briefly; the
    /// cache key carries the policy generation and the grant epoch.
    async fn decide_study(
        &self,
        session_key: &str,
        session: &SessionData,
        action: Action,
        study_uid: &str,
    ) -> bool {
        let key = format!(
            "{session_key}|{action:?}|{study_uid}|{}|{}",
            self.policies.generation(),
            self.viewer.grant_epoch.load(Ordering::Relaxed)
        );
        if let Some(hit) = cache_get(&self.viewer.decisions, &key, DECISION_TTL) {
            return hit;
        }
        let Some(records) = &self.records else {
            return false;
        };
        let allowed = match records.study(study_uid).await {
            Ok(Some(study)) => {
                let res = Resource::Study {
                    uid: study_uid.to_owned(),
                    dossier_id: study.dossier_number.clone(),
                };
                matches!(
                    self.decide_on_dossier(session, action, res, &study.dossier_number)
                        .await,
                    Ok(Some(_))
                )
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, "records unavailable for a viewer decision");
                return false;
            }
        };
        cache_put(&self.viewer.decisions, key, allowed);
        allowed
    }

    /// The decision for one viewer request.
    pub async fn check_viewer(
        &self,
        session_id: &str,
        session: &SessionData,
        method: &str,
        raw_target: &str,
        headers: &[(String, String)],
        client_ip: std::net::IpAddr,
    ) -> Verdict {
        let refuse = |page: &ErrorPage| Verdict::Refuse(self.error(page));
        let Some(table) = self.viewer.table() else {
            return refuse(&REFUSED);
        };
        let canonical = match table.canonicalize(method, raw_target, headers) {
            Ok(c) => c,
            Err(reason) => {
                tracing::info!(%reason, "viewer request rejected");
                return refuse(&MALFORMED);
            }
        };
        let session_key = crate::session::digest(session_id);
        let audit = |event: &'static str,
                     outcome: &'static str,
                     resource: String,
                     detail: String| AuditEvent {
            actor: Some(session.professional.national_id.as_str().to_owned()),
            event,
            method: Some(session.professional.login_method.as_str()),
            outcome,
            client_addr: Some(client_ip.to_string()),
            resource: Some(resource),
            detail: Some(detail),
        };
        let candidate = match table.classify(&canonical) {
            Classification::Candidate(c) => c,
            Classification::Denied(d) => {
                if d.class == Some(Class::Download) {
                    let _ = self
                        .db
                        .audit(&audit(
                            "dicom_download",
                            "refused",
                            String::new(),
                            d.reason.clone(),
                        ))
                        .await;
                }
                tracing::info!(reason = %d.reason, "viewer request denied by the route table");
                return refuse(&REFUSED);
            }
        };
        if candidate.class == Class::SideEffect {
            return refuse(&REFUSED);
        }
        let download = candidate.class == Class::Download;
        let studies = if candidate.class == Class::Shell {
            Vec::new()
        } else {
            match resolve(self, &candidate).await {
                Ok(s) if !s.is_empty() => s,
                Ok(_) => return refuse(&REFUSED),
                Err(e) => {
                    tracing::info!(error = %e, route = %candidate.route_id, "viewer resource not resolved");
                    if download {
                        let _ = self
                            .db
                            .audit(&audit(
                                "dicom_download",
                                "refused",
                                String::new(),
                                "unresolved".into(),
                            ))
                            .await;
                    }
                    return refuse(&REFUSED);
                }
            }
        };
        let action = if download {
            Action::DownloadDicom
        } else {
            Action::ViewImages
        };
        for study in &studies {
            if !self
                .decide_study(&session_key, session, action, study)
                .await
            {
                if download {
                    let _ = self
                        .db
                        .audit(&audit(
                            "dicom_download",
                            "refused",
                            study.clone(),
                            candidate.route_id.clone(),
                        ))
                        .await;
                    // A viewer may still show the images: say why downloading is refused.
                    let may_view = self
                        .decide_study(&session_key, session, Action::ViewImages, study)
                        .await;
                    return refuse(if may_view {
                        &DOWNLOAD_REFUSED
                    } else {
                        &REFUSED
                    });
                }
                return refuse(&REFUSED);
            }
        }
        // The trail: every download, and image views once per study per window.
        for study in &studies {
            let (record, window_key) = if download {
                (
                    Some(audit(
                        "dicom_download",
                        "success",
                        study.clone(),
                        candidate.route_id.clone(),
                    )),
                    None,
                )
            } else {
                let key = format!("{session_key}|{study}");
                if cache_get(&self.viewer.audited, &key, AUDIT_WINDOW).is_some() {
                    (None, None)
                } else {
                    (
                        Some(audit(
                            "images_view",
                            "success",
                            study.clone(),
                            candidate.class.code().to_owned(),
                        )),
                        Some(key),
                    )
                }
            };
            if let Some(e) = record {
                if let Err(err) = self.db.audit(&e).await {
                    tracing::error!(error = %err, "audit write failed: viewer request refused");
                    return refuse(&crate::pages::UNAVAILABLE);
                }
            }
            // The window opens only once its record is stored: a failed
            // insert leaves it closed, so the next request is audited (or
            // refused) again rather than forwarded unaudited.
            if let Some(key) = window_key {
                cache_put(&self.viewer.audited, key, ());
            }
        }
        let mut may_download = download;
        if !download && !studies.is_empty() {
            may_download = true;
            for study in &studies {
                if !self
                    .decide_study(&session_key, session, Action::DownloadDicom, study)
                    .await
                {
                    may_download = false;
                    break;
                }
            }
        }
        Verdict::Forward(Forward {
            target: canonical.target(),
            class: candidate.class,
            may_download,
            csp: table.csp().clone(),
        })
    }
}

/// Whether a response's Content-Type carries DICOM bytes or an archive.
pub fn is_dicom_content(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    matches!(
        essence,
        "application/dicom"
            | "application/x-dicom"
            | "application/zip"
            | "application/x-zip"
            | "application/x-zip-compressed"
            | "application/dicom+zip"
    ) || (essence == "multipart/related" && ct.contains("application/dicom"))
}

/// Media types of bulk bytes, compressed files and documents: what Orthanc
/// answers for raw element values (`/content/…`, the encapsulated PDF),
/// attachments (`compressed-data`), raw frames, NumPy dumps and `/pdf`.
const BULK_ESSENCES: &[&str] = &[
    "application/octet-stream",
    "application/gzip",
    "application/x-gzip",
    "application/pdf",
];

/// Whether a response's Content-Type carries bulk bytes, a compressed file
/// or a document (see [`BULK_ESSENCES`]), alone or as the parts of a
/// multipart body. DICOMweb frames for display
/// (`multipart/related; type="application/octet-stream"`) are not: a viewer
/// needs them to show the images.
fn is_bulk_content(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if BULK_ESSENCES.contains(&essence) {
        return true;
    }
    essence == "multipart/related"
        && BULK_ESSENCES
            .iter()
            .filter(|b| **b != "application/octet-stream")
            .any(|b| ct.contains(b))
}

/// Defense in depth, on the response of a request forwarded WITHOUT the
/// download permission: whether its body must not reach the client.
/// DICOM and archives never do; bulk bytes, gzip and PDF documents neither,
/// except for the viewer's own application files (class shell: no resource,
/// and the Orthanc Web Viewer serves its fonts as application/octet-stream).
pub fn must_cut_without_download(content_type: &str, class: Class) -> bool {
    is_dicom_content(content_type) || (class != Class::Shell && is_bulk_content(content_type))
}

/// The web viewer URL (through the proxy) that shows a study.
pub async fn viewer_url_for_study(app: &App, study_uid: &str) -> Result<String, ViewerError> {
    let study_id = lookup(app, study_uid, "Study").await?;
    let study = get_json(app, &format!("/studies/{study_id}")).await?;
    let series = study["Series"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(Value::as_str)
        .ok_or(ViewerError::NotFound)?;
    Ok(format!(
        "/web-viewer/app/viewer.html?series={}",
        urlencoding::encode(series)
    ))
}

#[cfg(test)]
mod tests {
    use super::{is_dicom_content, must_cut_without_download};
    use espace_ps_access::viewer::Class;

    #[test]
    fn dicom_content_types() {
        for ct in [
            "application/dicom",
            "Application/DICOM",
            "multipart/related; type=\"application/dicom\"; boundary=x",
            "application/zip",
        ] {
            assert!(is_dicom_content(ct), "{ct}");
        }
        for ct in [
            "image/jpeg",
            "application/dicom+json",
            "text/html",
            "multipart/related; type=\"image/jpeg\"",
        ] {
            assert!(!is_dicom_content(ct), "{ct}");
        }
    }

    #[test]
    fn bulk_documents_and_gzip_are_cut_without_download() {
        for class in [Class::Raw, Class::Rendered, Class::Search] {
            for ct in [
                "application/octet-stream",
                "Application/Octet-Stream; charset=binary",
                "application/gzip",
                "application/x-gzip",
                "application/pdf",
                "application/zip",
                "application/dicom",
                "multipart/related; type=\"application/pdf\"; boundary=x",
                "multipart/related; type=\"application/dicom\"; boundary=x",
            ] {
                assert!(must_cut_without_download(ct, class), "{ct} on {class}");
            }
            for ct in [
                "image/jpeg",
                "image/png",
                "application/json",
                "application/dicom+json",
                "text/html",
                // DICOMweb frames for display
                "multipart/related; type=\"application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\"; boundary=x",
            ] {
                assert!(!must_cut_without_download(ct, class), "{ct} on {class}");
            }
        }
        // The viewer application's own files: its fonts are octet-stream.
        assert!(!must_cut_without_download(
            "application/octet-stream",
            Class::Shell
        ));
        assert!(must_cut_without_download("application/zip", Class::Shell));
        assert!(must_cut_without_download("application/dicom", Class::Shell));
    }
}
