//! Demo health professionals the dev IdP can sign in as.
//!
//! RPPS numbers are test numbers in the `99700…` range used by the PSC
//! sandbox; each ends with a Luhn check digit. National ids are `8` + RPPS
//! (11 digits) or `0` + ADELI (9 digits).

use espace_ps_identity::{NationalId, NationalIdError};
use serde::{Deserialize, Serialize};

/// Dr Élise Martin-Dupré, médecin généraliste (SM54).
pub const ELISE_MARTIN_DUPRE: &str = "899700123450";
/// Dr Hervé Lefèvre, radiologue (SM44).
pub const HERVE_LEFEVRE: &str = "899700234562";
/// Dr Noël Bénard, cardiologue (SM04).
pub const NOEL_BENARD: &str = "899700345673";
/// Dr Inès Haddad-Leclère, pédiatre (SM40).
pub const INES_HADDAD_LECLERE: &str = "899700456785";
/// François Kerguélen, masseur-kinésithérapeute, ADELI only.
pub const FRANCOIS_KERGUELEN: &str = "0759970013";

/// Every default demo national id, in display order.
pub const DEMO_NATIONAL_IDS: [&str; 5] = [
    ELISE_MARTIN_DUPRE,
    HERVE_LEFEVRE,
    NOEL_BENARD,
    INES_HADDAD_LECLERE,
    FRANCOIS_KERGUELEN,
];

/// The fictional hospital every default professional works at. Department
/// `99` does not exist, so the FINESS number cannot clash with a real one.
pub const DEMO_HOSPITAL_NAME: &str = "CENTRE HOSPITALIER DE DÉMONSTRATION";
/// FINESS number of the demo hospital site.
pub const DEMO_HOSPITAL_FINESS: &str = "990000011";

/// One professional shown on the sign-in page, with what userinfo returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoProfessional {
    /// `8` + RPPS (11 digits) or `0` + ADELI (9 digits): `SubjectNameID`.
    pub national_id: String,
    /// `M` or `MME` (`SubjectRefPro.codeCivilite`).
    pub civility: String,
    /// `DR` for doctors, empty otherwise (`codeCiviliteDexercice`).
    pub practice_civility: String,
    pub given_name: String,
    pub family_name: String,
    /// `10` = médecin, `70` = masseur-kinésithérapeute.
    pub profession_code: String,
    /// Shown on the sign-in page, e.g. "Médecin".
    pub profession_label: String,
    /// `C` = civil (`codeCategorieProfessionnelle`).
    pub professional_category: String,
    /// `S` = spécialité ordinale, empty if none.
    pub skill_type: String,
    /// e.g. `SM54`, empty if none (`codeSavoirFaire`).
    pub skill_code: String,
    /// Shown on the sign-in page, e.g. "Médecine générale".
    pub skill_label: String,
    /// `SubjectOrganization` / `raisonSocialeSite`.
    pub organization_name: String,
    /// `numeroFinessSite`; `SubjectOrganizationID` is `1` + this.
    pub organization_finess: String,
}

// === impl DemoProfessional ===

impl DemoProfessional {
    /// The default demo cast: four doctors with RPPS numbers and one
    /// ADELI-only physiotherapist.
    pub fn defaults() -> Vec<Self> {
        vec![
            doctor(
                ELISE_MARTIN_DUPRE,
                "MME",
                "Élise",
                "Martin-Dupré",
                "SM54",
                "Médecine générale",
            ),
            doctor(
                HERVE_LEFEVRE,
                "M",
                "Hervé",
                "Lefèvre",
                "SM44",
                "Radio-diagnostic",
            ),
            doctor(
                NOEL_BENARD,
                "M",
                "Noël",
                "Bénard",
                "SM04",
                "Cardiologie et maladies vasculaires",
            ),
            doctor(
                INES_HADDAD_LECLERE,
                "MME",
                "Inès",
                "Haddad-Leclère",
                "SM40",
                "Pédiatrie",
            ),
            Self {
                national_id: FRANCOIS_KERGUELEN.into(),
                civility: "M".into(),
                practice_civility: String::new(),
                given_name: "François".into(),
                family_name: "Kerguélen".into(),
                profession_code: "70".into(),
                profession_label: "Masseur-kinésithérapeute".into(),
                professional_category: "C".into(),
                skill_type: String::new(),
                skill_code: String::new(),
                skill_label: String::new(),
                organization_name: DEMO_HOSPITAL_NAME.into(),
                organization_finess: DEMO_HOSPITAL_FINESS.into(),
            },
        ]
    }

    /// "Dr Élise Martin-Dupré" or "François Kerguélen".
    pub fn display_name(&self) -> String {
        let prefix = if self.practice_civility == "DR" {
            "Dr "
        } else {
            ""
        };
        format!("{prefix}{} {}", self.given_name, self.family_name)
    }

    /// "Médecin – Médecine générale (SM54)" or "Masseur-kinésithérapeute".
    pub fn role_label(&self) -> String {
        if self.skill_code.is_empty() {
            self.profession_label.clone()
        } else {
            format!(
                "{} – {} ({})",
                self.profession_label, self.skill_label, self.skill_code
            )
        }
    }

    /// The register the national id comes from: `RPPS` or `ADELI`.
    pub fn register(&self) -> &'static str {
        if self.national_id.starts_with('0') {
            "ADELI"
        } else {
            "RPPS"
        }
    }

    /// The national id without its one-digit type prefix (the RPPS or ADELI number).
    pub fn register_number(&self) -> &str {
        self.national_id.get(1..).unwrap_or_default()
    }
}

fn doctor(
    national_id: &str,
    civility: &str,
    given_name: &str,
    family_name: &str,
    skill_code: &str,
    skill_label: &str,
) -> DemoProfessional {
    DemoProfessional {
        national_id: national_id.into(),
        civility: civility.into(),
        practice_civility: "DR".into(),
        given_name: given_name.into(),
        family_name: family_name.into(),
        profession_code: "10".into(),
        profession_label: "Médecin".into(),
        professional_category: "C".into(),
        skill_type: "S".into(),
        skill_code: skill_code.into(),
        skill_label: skill_label.into(),
        organization_name: DEMO_HOSPITAL_NAME.into(),
        organization_finess: DEMO_HOSPITAL_FINESS.into(),
    }
}

/// Why a national id is not acceptable; `None` if it is. Parsed by the
/// identity model (RPPS with its Luhn key, or ADELI), digits only.
pub(crate) fn national_id_problem(id: &str) -> Option<&'static str> {
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return Some("must contain digits only");
    }
    match NationalId::parse_rpps_or_adeli(id) {
        Ok(_) => None,
        Err(NationalIdError::BadCheckDigit) => Some("the RPPS number's Luhn check digit is wrong"),
        Err(_) => Some("must be 8 + an 11-digit RPPS number or 0 + a 9-digit ADELI number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espace_ps_identity::luhn_valid;

    #[test]
    fn default_rpps_numbers_are_test_numbers_with_a_luhn_check_digit() {
        for p in DemoProfessional::defaults() {
            assert_eq!(national_id_problem(&p.national_id), None, "{p:?}");
            if p.register() == "RPPS" {
                assert!(p.register_number().starts_with("99700"));
                assert_eq!(p.register_number().len(), 11);
                assert!(luhn_valid(p.register_number()));
            }
        }
    }

    #[test]
    fn luhn_rejects_a_changed_digit() {
        assert!(luhn_valid("99700123450"));
        assert!(!luhn_valid("99700123451"));
        assert!(!luhn_valid("99700123540"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("9970012345a"));
        assert_eq!(
            national_id_problem("899700123451"),
            Some("the RPPS number's Luhn check digit is wrong")
        );
    }

    #[test]
    fn defaults_match_the_public_constants_and_include_an_adeli_professional() {
        let ids: Vec<String> = DemoProfessional::defaults()
            .into_iter()
            .map(|p| p.national_id)
            .collect();
        assert_eq!(ids, DEMO_NATIONAL_IDS);
        let doctors = DemoProfessional::defaults()
            .into_iter()
            .filter(|p| p.profession_code == "10")
            .count();
        assert!(doctors >= 4);
        assert!(ids.iter().any(|id| id.starts_with('0') && id.len() == 10));
    }
}
