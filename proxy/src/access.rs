//! The access service: the bridge between a request and the policy engine.
//! It gathers the facts (who asks, from the session; what they hold on a
//! dossier: care-team roles from the records, a dossier-number grant from
//! the portal database) and asks the engine. No access rule lives here.

use std::sync::Arc;

use async_trait::async_trait;
use espace_ps_access::{
    AccessRequest, Action, DossierRoles, Engine, Professional, RequestContext, Resource, Via,
};

use crate::identity;
use crate::session::SessionData;
use crate::state::PortalDb;

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

/// The facts a decision needs from the hospital's records and the portal
/// database. A failure is an error, which the caller turns into a "no".
#[async_trait]
pub trait Facts: Send + Sync {
    /// The dossier a study belongs to (None: a study the records do not know).
    async fn dossier_of_study(&self, study_uid: &str) -> Result<Option<String>, AccessError>;
    /// The care-team roles this RPPS holds around this dossier: one entry
    /// per dossier of the same patient (this one included) whose care team
    /// lists them. The engine reads the dossier's own entry as
    /// `context.roles` and all of them as `context.patient_roles` (the
    /// patient's whole history, `care-team-whole-patient.cedar`).
    async fn roles_around_dossier(
        &self,
        dossier: &str,
        rpps: &str,
    ) -> Result<Vec<DossierRoles>, AccessError>;
    /// Whether this account holds a live dossier-number grant on this dossier.
    async fn has_grant(&self, account_id: i64, dossier: &str) -> Result<bool, AccessError>;
}

/// The facts as the records (read-only) and the portal database hold them.
pub struct StoredFacts {
    pub records: Option<espace_ps_records::Records>,
    pub db: PortalDb,
}

#[async_trait]
impl Facts for StoredFacts {
    async fn dossier_of_study(&self, study_uid: &str) -> Result<Option<String>, AccessError> {
        let records = self.records.as_ref().ok_or(AccessError::NoRecords)?;
        Ok(records.study(study_uid).await?.map(|s| s.dossier_number))
    }

    async fn roles_around_dossier(
        &self,
        dossier: &str,
        rpps: &str,
    ) -> Result<Vec<DossierRoles>, AccessError> {
        let records = self.records.as_ref().ok_or(AccessError::NoRecords)?;
        Ok(records
            .roles_around_dossier(dossier, rpps)
            .await?
            .into_iter()
            .map(|(dossier_id, roles)| DossierRoles { dossier_id, roles })
            .collect())
    }

    async fn has_grant(&self, account_id: i64, dossier: &str) -> Result<bool, AccessError> {
        Ok(self.db.has_grant(account_id, dossier).await?)
    }
}

/// Every access question goes through here: one policy engine, one source
/// of facts.
pub struct Access {
    policies: Engine,
    facts: Arc<dyn Facts>,
}

impl Access {
    pub fn new(policies: Engine, facts: Arc<dyn Facts>) -> Access {
        Access { policies, facts }
    }

    /// The policy engine (reloads, groups).
    pub fn policies(&self) -> &Engine {
        &self.policies
    }

    /// The generation of the policies in force: bumped by every reload.
    pub fn generation(&self) -> u64 {
        self.policies.generation()
    }

    /// Whether the policies' `revoked` group lists this professional.
    pub fn in_revoked_group(&self, p: &identity::Professional) -> bool {
        self.policies
            .snapshot()
            .in_group(crate::revocation::REVOKED_GROUP, p)
    }

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

    /// As [`Access::decide_on_dossier`]; with `allow_grant` false, only the
    /// care team counts (a grant opens its dossier alone, not the patient).
    /// The care team is read around the dossier (every dossier of its
    /// patient): the policies decide whether a role on a sibling dossier
    /// opens this one.
    pub async fn decide_on_dossier_via(
        &self,
        session: &SessionData,
        action: Action,
        resource: Resource,
        dossier: &str,
        allow_grant: bool,
    ) -> Result<Option<Way>, AccessError> {
        let care_team = match &session.professional.rpps {
            Some(rpps) => self.facts.roles_around_dossier(dossier, rpps).await?,
            None => Vec::new(),
        };
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
            && self.facts.has_grant(session.account_id, dossier).await?
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

    /// May this session do `action` (view images, download DICOM) on this
    /// study? A study the records do not know: no.
    pub async fn may_on_study(
        &self,
        session: &SessionData,
        action: Action,
        study_uid: &str,
    ) -> Result<bool, AccessError> {
        let Some(dossier) = self.facts.dossier_of_study(study_uid).await? else {
            return Ok(false);
        };
        let res = Resource::Study {
            uid: study_uid.to_owned(),
            dossier_id: dossier.clone(),
        };
        Ok(self
            .decide_on_dossier(session, action, res, &dossier)
            .await?
            .is_some())
    }

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
