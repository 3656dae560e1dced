//! The access service: the bridge between a request and the policy engine.
//! It gathers the facts (who asks, from the session; what they hold on a
//! dossier: care-team roles from the records, a dossier-number grant from
//! the portal database) and asks the engine. No access rule lives here.

use std::sync::Arc;

use async_trait::async_trait;
use espace_ps_access::{
    AccessRequest, Action, Decision, DossierRoles, Engine, Professional, RequestContext, Resource,
    Via,
};

use crate::audit::AccessPath;
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

impl Way {
    /// The access path an audit record names: a care-team access of a
    /// session opened from Hopital Manager is the SSO's.
    pub fn path(&self, p: &identity::Professional) -> AccessPath {
        match self {
            Way::Grant => AccessPath::DossierGrant,
            Way::CareTeam if p.login_method == identity::LoginMethod::HmSso => AccessPath::HmSso,
            Way::CareTeam => AccessPath::CareTeam,
        }
    }
}

/// An access the engine allowed: how, and the `@id` of the policies that
/// said yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub way: Way,
    pub policies: Vec<String>,
}

/// Something that belongs to one dossier of one patient (audit records).
#[derive(Debug, Clone, Copy)]
pub enum Owned<'a> {
    Study(&'a str),
    Report(&'a str),
    Dossier(&'a str),
}

/// The dossier and patient something belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub dossier: String,
    pub patient: String,
}

/// The facts a decision needs from the hospital's records and the portal
/// database. A failure is an error, which the caller turns into a "no".
#[async_trait]
pub trait Facts: Send + Sync {
    /// The dossier and patient a study, report or dossier belongs to (the
    /// audit trail's patient column). None: unknown (the default).
    async fn owner(&self, of: Owned<'_>) -> Result<Option<Owner>, AccessError> {
        let _ = of;
        Ok(None)
    }
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
    async fn owner(&self, of: Owned<'_>) -> Result<Option<Owner>, AccessError> {
        let records = self.records.as_ref().ok_or(AccessError::NoRecords)?;
        let dossier = match of {
            Owned::Study(uid) => {
                return Ok(records.study(uid).await?.map(|s| Owner {
                    dossier: s.dossier_number,
                    patient: s.patient_id,
                }))
            }
            Owned::Report(id) => match records.report(id).await? {
                Some(r) => r.dossier_number,
                None => return Ok(None),
            },
            Owned::Dossier(n) => n.to_owned(),
        };
        Ok(records.dossier(&dossier).await?.map(|d| Owner {
            dossier: d.dossier_number,
            patient: d.patient_id,
        }))
    }

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
        self.policies.in_group(crate::revocation::REVOKED_GROUP, p)
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
        self.decision(session, action, resource, via, care_team)
            .allowed
    }

    /// The engine's whole answer (the policies that decided). An error in
    /// the engine is a "no".
    pub fn decision(
        &self,
        session: &SessionData,
        action: Action,
        resource: Resource,
        via: Via,
        care_team: Vec<DossierRoles>,
    ) -> Decision {
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
        count_decision(action, d.allowed, !d.errors.is_empty());
        d
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
        Ok(self
            .allowed_on_dossier_via(session, action, resource, dossier, allow_grant)
            .await?
            .map(|a| a.way))
    }

    /// As [`Access::decide_on_dossier_via`], with the policies that allowed.
    pub async fn allowed_on_dossier_via(
        &self,
        session: &SessionData,
        action: Action,
        resource: Resource,
        dossier: &str,
        allow_grant: bool,
    ) -> Result<Option<Allowed>, AccessError> {
        // The care team around the dossier (every dossier of its patient):
        // the policies decide whether a role on a sibling opens this one.
        let care_team = match &session.professional.rpps {
            Some(rpps) => self.facts.roles_around_dossier(dossier, rpps).await?,
            None => Vec::new(),
        };
        let d = self.decision(
            session,
            action,
            resource.clone(),
            Via::CareTeam,
            care_team.clone(),
        );
        if d.allowed {
            return Ok(Some(Allowed {
                way: Way::CareTeam,
                policies: d.policy_ids,
            }));
        }
        if allow_grant && self.facts.has_grant(session.account_id, dossier).await? {
            let d = self.decision(
                session,
                action,
                resource,
                Via::Grant {
                    dossier_id: dossier.to_owned(),
                },
                care_team,
            );
            if d.allowed {
                return Ok(Some(Allowed {
                    way: Way::Grant,
                    policies: d.policy_ids,
                }));
            }
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
        self.open_by_number_decision(session, dossier, patient)
            .allowed
    }

    fn open_by_number_decision(
        &self,
        session: &SessionData,
        dossier: &str,
        patient: &str,
    ) -> Decision {
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
        let d = self.policies.decide(&req);
        count_decision(Action::OpenDossierByNumber, d.allowed, !d.errors.is_empty());
        d
    }
}

/// Counts a decision in `espace_policy_decisions_total`: an evaluation
/// error that denied is counted as `error`, not `deny`.
fn count_decision(action: Action, allowed: bool, errors: bool) {
    use crate::metrics::DecisionOutcome;
    let outcome = match (allowed, errors) {
        (true, _) => DecisionOutcome::Allow,
        (false, false) => DecisionOutcome::Deny,
        (false, true) => DecisionOutcome::Error,
    };
    crate::metrics::count_decision(action, outcome);
}

mod enrich;
