//! The fakes the gate is tested with: an archive standing for Orthanc
//! ([`Archive`]) and the records and grants ([`Records`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use espace_ps_access::viewer::Level;
use espace_ps_access::DossierRoles;
use parking_lot::Mutex;

use super::{Persona, Study};
use crate::access::{AccessError, Facts, Owned, Owner};
use crate::viewer::{ResolveError, StudyResolver};

/// A fake archive: what Orthanc would answer about its resources. Unknown
/// ids are `NotFound`; `set_unreachable` makes every answer `Unreachable`.
#[derive(Default)]
pub(in crate::viewer) struct Archive {
    series: Mutex<HashMap<String, String>>,
    instances: Mutex<HashMap<String, String>>,
    /// Orthanc's own ids: (level, id) → StudyInstanceUIDs.
    ids: Mutex<HashMap<(Level, String), Vec<String>>>,
    /// StudyInstanceUID → its series: (SeriesInstanceUID, Orthanc id).
    study_series: Mutex<HashMap<String, Vec<(String, String)>>>,
    unreachable: AtomicBool,
    /// How many questions were asked (the resolution cache).
    pub asked: AtomicUsize,
}

impl Archive {
    /// An archive holding these studies (a patient's id lists all of theirs).
    pub fn with(studies: &[Study]) -> Archive {
        let a = Archive::default();
        for s in studies {
            a.add(s);
        }
        a
    }

    pub fn add(&self, s: &Study) {
        self.series.lock().insert(s.series_uid.into(), s.uid.into());
        self.study_series
            .lock()
            .entry(s.uid.into())
            .or_default()
            .push((s.series_uid.into(), s.seid.into()));
        self.instances
            .lock()
            .insert(s.instance_uid.into(), s.uid.into());
        let mut ids = self.ids.lock();
        for (level, id) in [
            (Level::Study, s.sid),
            (Level::Series, s.seid),
            (Level::Instance, s.iid),
        ] {
            ids.insert((level, id.into()), vec![s.uid.into()]);
        }
        let patient = ids.entry((Level::Patient, s.pid.into())).or_default();
        if !patient.iter().any(|u| u == s.uid) {
            patient.push(s.uid.into());
        }
    }

    /// Puts study `study_uid` under the patient `pid` (a new study arrives).
    pub fn add_to_patient(&self, pid: &str, study_uid: &str) {
        self.ids
            .lock()
            .entry((Level::Patient, pid.into()))
            .or_default()
            .push(study_uid.into());
    }

    /// Makes the synthetic ids of the bypass corpus (UIDs and Orthanc ids
    /// at any level) belong to `study_uid`.
    pub fn add_everywhere(&self, uids: &[&str], orthanc_ids: &[&str], study_uid: &str) {
        for u in uids {
            self.series.lock().insert((*u).into(), study_uid.into());
            self.instances.lock().insert((*u).into(), study_uid.into());
        }
        let mut ids = self.ids.lock();
        for id in orthanc_ids {
            for level in [Level::Patient, Level::Study, Level::Series, Level::Instance] {
                ids.insert((level, (*id).into()), vec![study_uid.into()]);
            }
        }
    }

    pub fn set_unreachable(&self, down: bool) {
        self.unreachable.store(down, Ordering::Relaxed);
    }

    fn ask(&self) -> Result<(), ResolveError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        if self.unreachable.load(Ordering::Relaxed) {
            return Err(ResolveError::Unreachable("fake archive down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl StudyResolver for Archive {
    async fn study_of_series(&self, series_uid: &str) -> Result<String, ResolveError> {
        self.ask()?;
        let found = self.series.lock().get(series_uid).cloned();
        found.ok_or(ResolveError::NotFound)
    }

    async fn study_of_instance(&self, sop_instance_uid: &str) -> Result<String, ResolveError> {
        self.ask()?;
        let found = self.instances.lock().get(sop_instance_uid).cloned();
        found.ok_or(ResolveError::NotFound)
    }

    async fn studies_of_archive_id(
        &self,
        level: Level,
        id: &str,
    ) -> Result<Vec<String>, ResolveError> {
        self.ask()?;
        let found = self.ids.lock().get(&(level, id.to_owned())).cloned();
        found.ok_or(ResolveError::NotFound)
    }

    async fn viewer_url(&self, study_uid: &str) -> Result<String, ResolveError> {
        Ok(format!("/web-viewer/app/viewer.html?study={study_uid}"))
    }

    /// As Orthanc's: `viewer.html?series={orthanc series id}`.
    fn page_resource(
        &self,
        target: &str,
    ) -> Option<(Level, espace_ps_access::viewer::IdKind, String)> {
        let id = target.strip_prefix("/web-viewer/app/viewer.html?series=")?;
        Some((
            Level::Series,
            espace_ps_access::viewer::IdKind::OrthancId,
            id.to_owned(),
        ))
    }

    async fn series_archives(
        &self,
        study_uid: &str,
    ) -> Result<Vec<crate::viewer::resolver::SeriesArchive>, ResolveError> {
        self.ask()?;
        let found = self.study_series.lock().get(study_uid).cloned();
        Ok(found
            .ok_or(ResolveError::NotFound)?
            .into_iter()
            .map(|(uid, id)| crate::viewer::resolver::SeriesArchive {
                series_uid: uid,
                label: "CT – CRANE".into(),
                instances: Some(2),
                archive_target: format!("/series/{id}/archive"),
            })
            .collect())
    }

    async fn series_uid_of_archive_id(&self, id: &str) -> Result<String, ResolveError> {
        self.ask()?;
        let found = self
            .study_series
            .lock()
            .values()
            .flatten()
            .find(|(_, i)| i == id)
            .cloned();
        found.map(|(uid, _)| uid).ok_or(ResolveError::NotFound)
    }
}

// ===================================================================== the records

/// Fake records and portal database: study → dossier, dossier → patient,
/// (dossier, RPPS) → care-team roles, (account, dossier) grants; `set_failing` makes every
/// answer an error.
#[derive(Default)]
pub(in crate::viewer) struct Records {
    studies: Mutex<HashMap<String, String>>,
    /// dossier → patient (a patient's dossiers are siblings).
    patients: Mutex<HashMap<String, String>>,
    roles: Mutex<HashMap<(String, String), Vec<String>>>,
    grants: Mutex<HashSet<(i64, String)>>,
    failing: AtomicBool,
}

impl Records {
    pub fn study(&self, uid: &str, dossier: &str) {
        self.studies.lock().insert(uid.into(), dossier.into());
    }

    /// Puts `dossier` under `patient` (its siblings are that patient's
    /// other dossiers).
    pub fn dossier_of_patient(&self, dossier: &str, patient: &str) {
        self.patients.lock().insert(dossier.into(), patient.into());
    }

    pub fn role(&self, dossier: &str, who: &Persona, roles: &[&str]) {
        self.roles.lock().insert(
            (dossier.into(), who.rpps().into()),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        );
    }

    pub fn grant(&self, who: &Persona, dossier: &str) {
        self.grants.lock().insert((who.account_id, dossier.into()));
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), AccessError> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(AccessError::NoRecords);
        }
        Ok(())
    }
}

#[async_trait]
impl Facts for Records {
    async fn owner(&self, of: Owned<'_>) -> Result<Option<Owner>, AccessError> {
        self.check()?;
        let dossier = match of {
            Owned::Study(uid) => match self.studies.lock().get(uid) {
                Some(d) => d.clone(),
                None => return Ok(None),
            },
            Owned::Dossier(n) => n.to_owned(),
            Owned::Report(_) => return Ok(None),
        };
        let patient = self.patients.lock().get(&dossier).cloned();
        Ok(patient.map(|patient| Owner { dossier, patient }))
    }

    async fn dossier_of_study(&self, study_uid: &str) -> Result<Option<String>, AccessError> {
        self.check()?;
        Ok(self.studies.lock().get(study_uid).cloned())
    }

    async fn roles_around_dossier(
        &self,
        dossier: &str,
        rpps: &str,
    ) -> Result<Vec<DossierRoles>, AccessError> {
        self.check()?;
        let patients = self.patients.lock();
        let patient = patients.get(dossier);
        let mut around: Vec<DossierRoles> = self
            .roles
            .lock()
            .iter()
            .filter(|((d, r), roles)| {
                r == rpps
                    && !roles.is_empty()
                    && (d == dossier || (patient.is_some() && patients.get(d) == patient))
            })
            .map(|((d, _), roles)| DossierRoles {
                dossier_id: d.clone(),
                roles: roles.clone(),
            })
            .collect();
        around.sort_by(|a, b| a.dossier_id.cmp(&b.dossier_id));
        Ok(around)
    }

    async fn has_grant(&self, account_id: i64, dossier: &str) -> Result<bool, AccessError> {
        self.check()?;
        Ok(self
            .grants
            .lock()
            .contains(&(account_id, dossier.to_owned())))
    }
}
