//! The typed access request the proxy builds, and the decision it gets back.
//!
//! These types are the whole vocabulary between the proxy and the policy
//! engine. The engine turns them into Cedar entities and context itself
//! (see `docs/policies.md` for the Cedar side). They also serialize, so the
//! policy test cases in `policies/tests/*.toml` use the same shapes.

use serde::{Deserialize, Serialize};

// === impl Professional ===

/// The signed-in health professional as the policy engine sees them (the
/// Cedar principal), built from the identity model's
/// [`espace_ps_identity::Professional`] with `From`.
///
/// Groups are not part of this type: the engine resolves them from the
/// administrator's `groups.toml` on every decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Professional {
    /// National identifier (`idNat_PS` in Pro Santé Connect). Always present;
    /// the Cedar principal is `EspacePs::Professional::"<national_id>"`.
    pub national_id: String,
    /// RPPS number. `None` for professionals registered in ADELI only: they
    /// never match a care team (care teams are recorded by RPPS).
    #[serde(default)]
    pub rpps: Option<String>,
    /// Profession codes (e.g. `10` médecin).
    #[serde(default)]
    pub professions: Vec<String>,
    /// Savoir-faire (specialty) codes (e.g. `SM44` radiodiagnostic).
    #[serde(default)]
    pub savoir_faire: Vec<String>,
    /// How the professional signed in.
    pub login_method: LoginMethod,
}

/// How a professional signed in: the one enum of the identity model.
pub use espace_ps_identity::LoginMethod;

impl From<&espace_ps_identity::Professional> for Professional {
    /// The professional as the policy engine sees them: the identity model
    /// without names (they never decide anything).
    fn from(p: &espace_ps_identity::Professional) -> Professional {
        Professional {
            national_id: p.national_id.as_str().to_owned(),
            rpps: p.rpps.clone(),
            professions: p.professions.clone(),
            savoir_faire: p.savoir_faire.clone(),
            login_method: p.login_method,
        }
    }
}

// === impl Action ===

/// What the professional wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// List a patient in name-search results (user guide 2.1). Resource: a patient.
    SearchPatients,
    /// See a dossier (a patient's venue) and its exam list (3.1.2). Resource: a dossier.
    ViewDossier,
    /// Read a report (compte rendu). Resource: a report.
    ViewReport,
    /// Display images in the viewer. Resource: a dossier, study or series.
    ViewImages,
    /// Download DICOM (3.1.3). Resource: a dossier, study or series.
    DownloadDicom,
    /// Open a dossier by its number and the patient's birth date (2.2).
    /// Resource: a dossier.
    OpenDossierByNumber,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 6] = [
        Action::SearchPatients,
        Action::ViewDossier,
        Action::ViewReport,
        Action::ViewImages,
        Action::DownloadDicom,
        Action::OpenDossierByNumber,
    ];

    /// The Cedar action id (`EspacePs::Action::"<this>"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SearchPatients => "search_patients",
            Action::ViewDossier => "view_dossier",
            Action::ViewReport => "view_report",
            Action::ViewImages => "view_images",
            Action::DownloadDicom => "download_dicom",
            Action::OpenDossierByNumber => "open_dossier_by_number",
        }
    }

    /// Parse a Cedar action id.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

// === impl Resource ===

/// What the action touches, with the parents the proxy resolved from the
/// hospital records (never from client-supplied ids).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resource {
    /// A patient (identity, for search results).
    Patient { id: String },
    /// A dossier: one venue of a patient.
    Dossier { id: String, patient_id: String },
    /// A report of a dossier.
    Report { id: String, dossier_id: String },
    /// A study, by Study Instance UID.
    Study { uid: String, dossier_id: String },
    /// A series, by Series Instance UID.
    Series {
        uid: String,
        study_uid: String,
        dossier_id: String,
    },
}

impl Resource {
    /// The dossier this resource belongs to (`None` for a patient).
    pub fn dossier_id(&self) -> Option<&str> {
        match self {
            Resource::Patient { .. } => None,
            Resource::Dossier { id, .. } => Some(id),
            Resource::Report { dossier_id, .. }
            | Resource::Study { dossier_id, .. }
            | Resource::Series { dossier_id, .. } => Some(dossier_id),
        }
    }
}

// === impl RequestContext ===

/// Facts about this request that are not attributes of the principal or the
/// resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestContext {
    /// Where the access comes from.
    #[serde(default)]
    pub via: Via,
    /// The professional's roles on dossiers, as role codes from the hospital
    /// record, matched on the professional's RPPS.
    ///
    /// - For a dossier, report, study or series: at least the entry of the
    ///   resource's dossier (only that entry feeds `context.roles`); entries
    ///   for the patient's other dossiers feed `context.patient_roles`.
    /// - For a patient (search): one entry per dossier of that patient.
    #[serde(default)]
    pub care_team: Vec<DossierRoles>,
    /// For `open_dossier_by_number`: the birth date typed by the
    /// professional matched the patient's record.
    #[serde(default)]
    pub birth_date_verified: bool,
    /// Now, in unix seconds.
    #[serde(default)]
    pub now: i64,
}

/// Where the access to a dossier comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Search by name / home page: the professional's care-team roles.
    #[default]
    CareTeam,
    /// A dossier-number grant the proxy recorded for (professional, dossier).
    Grant {
        /// The one dossier the grant is for.
        dossier_id: String,
    },
}

/// The professional's roles on one dossier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DossierRoles {
    pub dossier_id: String,
    /// Role codes as the records carry them (e.g. `MT` for médecin traitant).
    pub roles: Vec<String>,
}

// === impl AccessRequest ===

/// One access question: may this professional do this action on this
/// resource, in this context?
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    pub professional: Professional,
    pub action: Action,
    pub resource: Resource,
    #[serde(default)]
    pub context: RequestContext,
}

// === impl Decision ===

/// The engine's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `true` only when a permit matched, no forbid matched, and nothing
    /// failed (deny by default).
    pub allowed: bool,
    /// The `@id` of the policies that decided: the permits that matched for
    /// an allow, the forbids that matched for a deny. Empty when nothing
    /// matched (the default deny) or the request could not be built.
    pub policy_ids: Vec<String>,
    /// Errors met while building or evaluating the request. Any error makes
    /// the decision a deny.
    pub errors: Vec<String>,
}

impl Decision {
    pub(crate) fn deny_with_error(error: String) -> Decision {
        Decision {
            allowed: false,
            policy_ids: Vec::new(),
            errors: vec![error],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_principal_is_built_from_the_identity_model() {
        let id = espace_ps_identity::NationalId::parse("899700123450").unwrap();
        let mut p = espace_ps_identity::Professional::new(
            id,
            "Élise".into(),
            "Martin-Dupré".into(),
            LoginMethod::PscApp,
        );
        p.professions = vec!["10".into()];
        p.savoir_faire = vec!["SM54".into()];
        assert_eq!(
            Professional::from(&p),
            Professional {
                national_id: "899700123450".into(),
                rpps: Some("99700123450".into()),
                professions: vec!["10".into()],
                savoir_faire: vec!["SM54".into()],
                login_method: LoginMethod::PscApp,
            }
        );
    }
}
