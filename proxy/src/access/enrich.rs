//! What an audit record says about an access, beyond what its call site
//! knows: the patient and dossier of the study, report or dossier, and for
//! an allowed access how it was allowed (care team, dossier-number grant,
//! Hopital Manager SSO) and the `@id` of the policies that allowed it.

use espace_ps_access::{Action, Resource};

use super::{Access, AccessError, Owned, Way};
use crate::audit::{AccessPath, AuditEvent, Event, Outcome};
use crate::session::SessionData;

impl Access {
    /// `e` completed for `session`. A records failure is an error: the
    /// caller refuses (no complete record, no access).
    pub async fn enrich(
        &self,
        session: &SessionData,
        e: AuditEvent,
    ) -> Result<AuditEvent, AccessError> {
        let Some(event) = Event::parse(e.event()) else {
            return Ok(e);
        };
        let (owned, action) = match event {
            Event::ReportView => (e.report_id().map(Owned::Report), Some(Action::ViewReport)),
            Event::ImagesOpen | Event::ImagesView => {
                (e.study_uid().map(Owned::Study), Some(Action::ViewImages))
            }
            Event::DicomDownload => (e.study_uid().map(Owned::Study), Some(Action::DownloadDicom)),
            Event::DossierView => (
                e.dossier_number().map(Owned::Dossier),
                Some(Action::ViewDossier),
            ),
            Event::DossierNumberAccess | Event::DossierNumberLocked => {
                (e.dossier_number().map(Owned::Dossier), None)
            }
            Event::PatientView => (None, None),
            _ => return Ok(e),
        };
        let owner = match owned {
            Some(o) => self.facts.owner(o).await?,
            None => None,
        };
        let mut e = e;
        if let Some(o) = &owner {
            if e.dossier_number().is_none() {
                e = e.dossier(o.dossier.clone());
            }
            if e.patient_id().is_none() {
                e = e.patient(o.patient.clone());
            }
        }
        if e.outcome() != Outcome::Success.as_str() || e.via_str().is_some() {
            return Ok(e);
        }
        let p = &session.professional;
        match (event, &owner, action) {
            (Event::PatientView, _, _) => Ok(e.via(Way::CareTeam.path(p))),
            (Event::DossierNumberAccess, Some(o), _) => {
                let d = self.open_by_number_decision(session, &o.dossier, &o.patient);
                Ok(with_policies(
                    e.via(AccessPath::DossierGrant),
                    &d.policy_ids,
                ))
            }
            (_, Some(o), Some(action)) => {
                let resource = match event {
                    Event::ReportView => Resource::Report {
                        id: e.report_id().unwrap_or_default().to_owned(),
                        dossier_id: o.dossier.clone(),
                    },
                    Event::DossierView => Resource::Dossier {
                        id: o.dossier.clone(),
                        patient_id: o.patient.clone(),
                    },
                    _ => Resource::Study {
                        uid: e.study_uid().unwrap_or_default().to_owned(),
                        dossier_id: o.dossier.clone(),
                    },
                };
                match self
                    .allowed_on_dossier_via(session, action, resource, &o.dossier, true)
                    .await?
                {
                    Some(a) => Ok(with_policies(e.via(a.way.path(p)), &a.policies)),
                    None => Ok(e),
                }
            }
            _ => Ok(e),
        }
    }
}

fn with_policies(e: AuditEvent, ids: &[String]) -> AuditEvent {
    if ids.is_empty() {
        e
    } else {
        e.policy(ids.join(","))
    }
}
