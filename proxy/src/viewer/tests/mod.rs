//! Unit tests of the viewer [`Gate`] without a viewer: the shipped route
//! table (`policies/viewers/orthanc.toml`), the shipped Cedar policies (a
//! temporary copy, so a test may habilitate or reload), a fake archive
//! standing for Orthanc ([`Archive`]), fake records and grants ([`Records`])
//! and the in-memory audit trail. The same requests go to a real Orthanc in
//! `tests/it/viewer.rs`; here every case runs in milliseconds and says the
//! exact decision: the canonical target forwarded, or the refusal.
//!
//! - `matrix`: who (care team, habilitated, grant, outsider) gets which
//!   route class on which study.
//! - `corpus`: the access crate's bypass corpus (`bypass-corpus.toml`).
//! - `orthanc_corpus`: the crafted requests of the Orthanc integration test.
//! - `audit`: download records, the image-view window, no record no access.
//! - `resolve`: what the archive says, never the client's parent ids.
//! - `cache`: reloads, grants and records failures never answered from a cache.
//! - `reload`: a reload naming another `[resolver]` is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use espace_ps_access::viewer::Class;
use espace_ps_access::Engine;

use super::{Gate, Refusal, Verdict, ViewerRequest};
use crate::access::Access;
use crate::audit::{AuditEvent, MemoryAudit};
use crate::identity::{LoginMethod, NationalId, Professional};
use crate::session::SessionData;

mod audit;
mod cache;
mod corpus;
mod downloads;
mod fakes;
mod matrix;
mod orthanc_corpus;
mod reload;
mod resolve;

use fakes::{Archive, Records};

// ===================================================================== the archive

/// One study as the archive and the records know it: DICOM UIDs, Orthanc
/// ids (44 characters, lower-case hex), its patient and its dossier.
#[derive(Debug, Clone, Copy)]
pub(super) struct Study {
    pub uid: &'static str,
    pub series_uid: &'static str,
    pub instance_uid: &'static str,
    pub sid: &'static str,
    pub seid: &'static str,
    pub iid: &'static str,
    pub pid: &'static str,
    pub dossier: &'static str,
}

/// SCANAP Françoise's SCANNER CEREBRAL: on Élise's care team.
pub(super) const SCANNER: Study = Study {
    uid: "1.2.250.1.59.1",
    series_uid: "1.2.250.1.59.1.1",
    instance_uid: "1.2.250.1.59.1.1.1",
    sid: "5ca00000-00000000-00000000-00000000-00000001",
    seid: "5ca00000-00000000-00000000-00000000-00000002",
    iid: "5ca00000-00000000-00000000-00000000-00000003",
    pid: "9a700000-00000000-00000000-00000000-00000001",
    dossier: "D-SCANNER",
};

/// SCANAP Françoise's FEMUR (same patient, another dossier): Noël opens it
/// by its number (a grant), which does not open SCANNER to him; Élise, on
/// SCANNER's care team, sees it through the patient's whole history (the
/// shipped `care-team-whole-patient`), for viewing only.
pub(super) const FEMUR: Study = Study {
    uid: "1.2.250.1.59.2",
    series_uid: "1.2.250.1.59.2.1",
    instance_uid: "1.2.250.1.59.2.1.1",
    sid: "fe300000-00000000-00000000-00000000-00000001",
    seid: "fe300000-00000000-00000000-00000000-00000002",
    iid: "fe300000-00000000-00000000-00000000-00000003",
    pid: SCANNER.pid,
    dossier: "D-FEMUR",
};

/// SCANAP Jean-Baptiste's study: on nobody's care team here.
pub(super) const OTHER: Study = Study {
    uid: "1.2.250.1.59.3",
    series_uid: "1.2.250.1.59.3.1",
    instance_uid: "1.2.250.1.59.3.1.1",
    sid: "07e00000-00000000-00000000-00000000-00000001",
    seid: "07e00000-00000000-00000000-00000000-00000002",
    iid: "07e00000-00000000-00000000-00000000-00000003",
    pid: "9a700000-00000000-00000000-00000000-00000002",
    dossier: "D-OTHER",
};

// ===================================================================== who asks

/// A signed-in professional with one session.
#[derive(Debug, Clone, Copy)]
pub(super) struct Persona {
    pub name: &'static str,
    pub national_id: &'static str,
    pub account_id: i64,
    pub session_id: &'static str,
}

impl Persona {
    pub fn rpps(&self) -> &'static str {
        &self.national_id[1..]
    }

    /// The same professional in another session (another browser).
    pub fn other_session(self, session_id: &'static str) -> Persona {
        Persona { session_id, ..self }
    }

    pub fn session(&self) -> SessionData {
        let id = NationalId::parse(self.national_id).expect("valid national id");
        SessionData {
            professional: Professional::new(
                id,
                self.name.into(),
                "TEST".into(),
                LoginMethod::PscCard,
            ),
            account_id: self.account_id,
            csrf_token: "csrf".into(),
            created_at: 0,
            last_seen: 0,
            id_token: None,
            recent_patients: Vec::new(),
        }
    }
}

pub(super) const ELISE: Persona = Persona {
    name: "Élise",
    national_id: "899700123450",
    account_id: 1,
    session_id: "session-elise",
};
pub(super) const NOEL: Persona = Persona {
    name: "Noël",
    national_id: "899700345673",
    account_id: 2,
    session_id: "session-noel",
};
pub(super) const INES: Persona = Persona {
    name: "Inès",
    national_id: "899700456785",
    account_id: 3,
    session_id: "session-ines",
};

pub(super) const CLIENT_IP: &str = "192.0.2.7";

// ===================================================================== the gate

/// A gate over the fake archive and records, with the shipped table and
/// policies (copied to `policies`, where a test may edit and reload them).
pub(super) struct World {
    pub gate: Gate,
    pub archive: Arc<Archive>,
    pub records: Arc<Records>,
    pub audit: Arc<MemoryAudit>,
    pub access: Arc<Access>,
    pub policies: tempfile::TempDir,
}

/// The repository's `policies/`.
fn shipped_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Writes `rpps` as the members of `[groups.<group>]` in `dir/groups.toml`.
pub(super) fn set_group(dir: &Path, group: &str, rpps: &[&str]) {
    let path = dir.join("groups.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut out, mut in_group, mut done) = (String::new(), false, false);
    for line in text.lines() {
        if line.starts_with('[') {
            in_group = line.trim() == format!("[groups.{group}]");
        }
        if in_group && !done && line.trim_start().starts_with("rpps") {
            let list: Vec<String> = rpps.iter().map(|r| format!("\"{r}\"")).collect();
            out.push_str(&format!("rpps = [{}]\n", list.join(", ")));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "no rpps list in [groups.{group}]");
    std::fs::write(&path, out).unwrap();
}

impl World {
    /// The three studies in the archive and the records; Élise on
    /// SCANNER's care team (`MT`), Noël with a grant on FEMUR, Inès on
    /// nothing; `habilitated` in the DICOM download group.
    pub fn new(habilitated: &[&Persona]) -> World {
        let w = World::bare(habilitated);
        w.records.role(SCANNER.dossier, &ELISE, &["MT"]);
        w.records.grant(&NOEL, FEMUR.dossier);
        w
    }

    /// The three studies, nobody on a care team, no grant.
    pub fn bare(habilitated: &[&Persona]) -> World {
        let archive = Arc::new(Archive::with(&[SCANNER, FEMUR, OTHER]));
        let records = Arc::new(Records::default());
        for s in [SCANNER, FEMUR, OTHER] {
            records.study(s.uid, s.dossier);
            records.dossier_of_patient(s.dossier, s.pid);
        }
        World::with(archive, records, habilitated)
    }

    pub fn with(archive: Arc<Archive>, records: Arc<Records>, habilitated: &[&Persona]) -> World {
        let policies = tempfile::tempdir().unwrap();
        copy_dir(&shipped_policies(), policies.path());
        let rpps: Vec<&str> = habilitated.iter().map(|p| p.rpps()).collect();
        set_group(policies.path(), "dicom-download", &rpps);
        let engine = Engine::load(policies.path()).unwrap_or_else(|e| panic!("{e}"));
        let access = Arc::new(Access::new(engine, records.clone()));
        let audit = Arc::new(MemoryAudit::default());
        let gate = Gate::new(
            Some(table(policies.path())),
            archive.clone(),
            access.clone(),
            audit.clone(),
        );
        World {
            gate,
            archive,
            records,
            audit,
            access,
            policies,
        }
    }

    /// `who` asks for `method target` with these headers.
    pub async fn ask(
        &self,
        who: &Persona,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Verdict {
        let session = who.session();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let session_key: std::sync::Arc<str> = crate::session::digest(who.session_id).into();
        self.gate
            .check(&ViewerRequest {
                session_key: &session_key,
                session: &session,
                method,
                raw_target: target,
                headers: &headers,
                client_ip: CLIENT_IP.parse().unwrap(),
                request_id: "t-1",
            })
            .await
    }

    pub async fn get(&self, who: &Persona, target: &str) -> Got {
        Got::of(&self.ask(who, "GET", target, &[]).await)
    }

    /// The audit records of `who`: (event, outcome, resource, detail).
    pub fn trail(&self, who: &Persona) -> Vec<(String, String, String, String)> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.actor() == Some(who.national_id))
            .map(|e| {
                (
                    e.event().to_owned(),
                    e.outcome().to_owned(),
                    e.resource().unwrap_or_default().to_owned(),
                    e.detail_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// The shipped Orthanc route table, from a policies directory.
pub(super) fn table(dir: &Path) -> espace_ps_access::viewer::RouteTable {
    super::load_table(dir, "orthanc")
        .expect("route table loads")
        .expect("an orthanc table")
}

// ===================================================================== verdicts

/// A verdict, comparable: what was forwarded, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Got {
    Forward {
        target: String,
        class: Class,
        may_download: bool,
    },
    Refuse(Refusal),
}

impl Got {
    pub fn of(v: &Verdict) -> Got {
        match v {
            Verdict::Forward(f) => Got::Forward {
                target: f.target.clone(),
                class: f.class,
                may_download: f.may_download,
            },
            Verdict::Refuse(r) => Got::Refuse(*r),
        }
    }

    pub fn forward(target: &str, class: Class, may_download: bool) -> Got {
        Got::Forward {
            target: target.to_owned(),
            class,
            may_download,
        }
    }

    pub fn is_forward(&self) -> bool {
        matches!(self, Got::Forward { .. })
    }
}

/// Every audit record carries who, how and from where.
pub(super) fn assert_event_context(e: &AuditEvent, who: &Persona) {
    assert_eq!(e.actor(), Some(who.national_id));
    assert_eq!(e.method_str(), Some("psc_card"));
    assert_eq!(e.client_addr(), Some(CLIENT_IP));
}

/// Fills the placeholders of a target with a study's ids.
pub(super) fn fill(t: &str, s: &Study) -> String {
    t.replace("{S}", s.uid)
        .replace("{SE}", s.series_uid)
        .replace("{I}", s.instance_uid)
        .replace("{sid}", s.sid)
        .replace("{seid}", s.seid)
        .replace("{iid}", s.iid)
        .replace("{pid}", s.pid)
}
