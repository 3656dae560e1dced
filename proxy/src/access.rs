//! The bridge between a request and the policy engine: who asks (from the
//! session), what they hold on a dossier (care-team roles from the records,
//! a dossier-number grant from the portal database), and the engine's
//! answer. No access rule lives here: this module only gathers facts.

use espace_ps_access::{
    AccessRequest, Action, DossierRoles, Professional, RequestContext, Resource, Via,
};

use crate::app::App;
use crate::identity;
use crate::session::SessionData;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("records unavailable: {0}")]
    Records(#[from] espace_ps_records::RecordsError),
    #[error("portal database unavailable: {0}")]
    Db(#[from] crate::state::DbError),
    #[error("no records configured")]
    NoRecords,
}

/// The professional as the policy engine sees them.
pub fn professional(p: &identity::Professional) -> Professional {
    Professional::from(p)
}

pub use crate::clock::now_secs;

/// How a professional reaches one dossier, once the engine said yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Way {
    CareTeam,
    Grant,
}

impl App {
    /// Asks the engine. An error in the engine is a "no".
    pub fn decide(
        &self,
        session: &SessionData,
        action: Action,
        resource: Resource,
        via: Via,
        care_team: Vec<DossierRoles>,
    ) -> bool {
        let req = AccessRequest {
            professional: professional(&session.professional),
            action,
            resource,
            context: RequestContext {
                via,
                care_team,
                now: now_secs(),
                ..Default::default()
            },
        };
        let d = self.policies.decide(&req);
        if !d.errors.is_empty() {
            tracing::warn!(errors = d.errors.len(), "policy evaluation errors: denied");
        }
        d.allowed
    }

    /// May this professional do `action` on `resource`, which belongs to
    /// `dossier`? Tries the care team, then a dossier-number grant.
    pub async fn decide_on_dossier(
        &self,
        session: &SessionData,
        action: Action,
        resource: Resource,
        dossier: &str,
    ) -> Result<Option<Way>, AccessError> {
        self.decide_on_dossier_via(session, action, resource, dossier, true)
            .await
    }

    /// As [`App::decide_on_dossier`]; with `allow_grant` false, only the
    /// care team counts (a grant opens its dossier alone, not the patient).
    pub async fn decide_on_dossier_via(
        &self,
        session: &SessionData,
        action: Action,
        resource: Resource,
        dossier: &str,
        allow_grant: bool,
    ) -> Result<Option<Way>, AccessError> {
        let records = self.records.as_ref().ok_or(AccessError::NoRecords)?;
        let roles = match &session.professional.rpps {
            Some(rpps) => records.roles_on_dossier(dossier, rpps).await?,
            None => Vec::new(),
        };
        let care_team = vec![DossierRoles {
            dossier_id: dossier.to_owned(),
            roles,
        }];
        if self.decide(
            session,
            action,
            resource.clone(),
            Via::CareTeam,
            care_team.clone(),
        ) {
            return Ok(Some(Way::CareTeam));
        }
        if allow_grant
            && self.db.has_grant(session.account_id, dossier).await?
            && self.decide(
                session,
                action,
                resource,
                Via::Grant {
                    dossier_id: dossier.to_owned(),
                },
                care_team,
            )
        {
            return Ok(Some(Way::Grant));
        }
        Ok(None)
    }
}

impl App {
    /// May this professional open `dossier` by its number, the birth date
    /// having matched the record?
    pub fn may_open_by_number(&self, session: &SessionData, dossier: &str, patient: &str) -> bool {
        let req = AccessRequest {
            professional: professional(&session.professional),
            action: Action::OpenDossierByNumber,
            resource: Resource::Dossier {
                id: dossier.to_owned(),
                patient_id: patient.to_owned(),
            },
            context: RequestContext {
                via: Via::CareTeam,
                birth_date_verified: true,
                now: now_secs(),
                ..Default::default()
            },
        };
        self.policies.decide(&req).allowed
    }
}
