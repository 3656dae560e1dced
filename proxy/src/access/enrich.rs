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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use espace_ps_access::Engine;

    use super::super::{Facts, Owner};
    use super::*;
    use crate::identity::{LoginMethod, NationalId, Professional};

    /// One patient P1 with one dossier D1, its study 1.2.3 and report CR-1;
    /// the professional is on its care team (`MT`) or holds a grant.
    struct OneDossier {
        care_team: bool,
        grant: bool,
    }

    #[async_trait]
    impl Facts for OneDossier {
        async fn owner(&self, of: Owned<'_>) -> Result<Option<Owner>, AccessError> {
            let known = matches!(
                of,
                Owned::Study("1.2.3") | Owned::Report("CR-1") | Owned::Dossier("D1")
            );
            Ok(known.then(|| Owner {
                dossier: "D1".into(),
                patient: "P1".into(),
            }))
        }
        async fn dossier_of_study(&self, uid: &str) -> Result<Option<String>, AccessError> {
            Ok((uid == "1.2.3").then(|| "D1".into()))
        }
        async fn roles_around_dossier(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Vec<espace_ps_access::DossierRoles>, AccessError> {
            Ok(if self.care_team {
                vec![espace_ps_access::DossierRoles {
                    dossier_id: "D1".into(),
                    roles: vec!["MT".into()],
                }]
            } else {
                Vec::new()
            })
        }
        async fn has_grant(&self, _: i64, _: &str) -> Result<bool, AccessError> {
            Ok(self.grant)
        }
    }

    fn access(care_team: bool, grant: bool) -> Access {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let engine = Engine::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        Access::new(engine, Arc::new(OneDossier { care_team, grant }))
    }

    fn session(method: LoginMethod) -> SessionData {
        SessionData {
            professional: Professional::new(
                NationalId::parse("899700123450").unwrap(),
                "Élise".into(),
                "TEST".into(),
                method,
            ),
            account_id: 1,
            csrf_token: "csrf".into(),
            created_at: 0,
            last_seen: 0,
            id_token: None,
            recent_patients: Vec::new(),
        }
    }

    async fn enriched(a: &Access, s: &SessionData, e: AuditEvent) -> AuditEvent {
        a.enrich(s, e).await.unwrap()
    }

    /// Each allowed access names its patient, dossier, path and policy.
    #[tokio::test]
    async fn accesses_name_the_patient_the_path_and_the_policy() {
        let card = session(LoginMethod::PscCard);
        let care = access(true, false);
        let e = enriched(
            &care,
            &card,
            AuditEvent::new(Event::ImagesView, Outcome::Success).on("1.2.3"),
        )
        .await;
        assert_eq!(
            (
                e.patient_id(),
                e.dossier_number(),
                e.via_str(),
                e.policy_str()
            ),
            (Some("P1"), Some("D1"), Some("care_team"), Some("care-team"))
        );
        let e = enriched(
            &care,
            &session(LoginMethod::HmSso),
            AuditEvent::new(Event::ReportView, Outcome::Success).on("CR-1"),
        )
        .await;
        assert_eq!((e.patient_id(), e.via_str()), (Some("P1"), Some("hm_sso")));
        let granted = access(false, true);
        let e = enriched(
            &granted,
            &card,
            AuditEvent::new(Event::DossierView, Outcome::Success).on("D1"),
        )
        .await;
        assert_eq!(
            (e.patient_id(), e.via_str(), e.policy_str()),
            (Some("P1"), Some("dossier_grant"), Some("dossier-grant"))
        );
        let e = enriched(
            &granted,
            &card,
            AuditEvent::new(Event::DossierNumberAccess, Outcome::Success).on("D1"),
        )
        .await;
        assert_eq!(
            (e.patient_id(), e.via_str(), e.policy_str()),
            (
                Some("P1"),
                Some("dossier_grant"),
                Some("open-dossier-by-number")
            )
        );
    }

    /// A refusal names the patient it was about, not a path or a policy;
    /// what the records do not know stays as the call site wrote it.
    #[tokio::test]
    async fn refusals_and_unknowns() {
        let card = session(LoginMethod::PscCard);
        let none = access(false, false);
        let e = enriched(
            &none,
            &card,
            AuditEvent::new(Event::DicomDownload, Outcome::Refused).on("1.2.3"),
        )
        .await;
        assert_eq!(
            (e.patient_id(), e.via_str(), e.policy_str()),
            (Some("P1"), None, None)
        );
        let unknown = AuditEvent::new(Event::ImagesView, Outcome::Success).on("9.9.9");
        assert_eq!(enriched(&none, &card, unknown.clone()).await, unknown);
        let login = AuditEvent::new(Event::Login, Outcome::Success);
        assert_eq!(enriched(&none, &card, login.clone()).await, login);
    }
}
