//! What the portal's templates and JSON answers receive: one struct per page
//! or answer, serialized as is. A template reads exactly these fields (the
//! templates run in strict mode: a field missing here fails the render).
//! The JSON answers keep their fields in declaration order.

use serde::Serialize;

use crate::session::RecentPatient;

/// `/portail/patients/{id}`, as a link.
fn patient_url(id: &str) -> String {
    format!("/portail/patients/{}", urlencoding::encode(id))
}

/// `/portail/dossiers/{n}`, as a link.
pub fn dossier_url(number: &str) -> String {
    format!("/portail/dossiers/{}", urlencoding::encode(number))
}

/// `/portail/comptes-rendus/{id}`.
pub fn report_url(id: &str) -> String {
    format!("/portail/comptes-rendus/{}", urlencoding::encode(id))
}

/// `/portail/dossiers/{n}/vu`: the home page's "Marquer comme vu" (every
/// report of the dossier).
pub fn dossier_seen_url(number: &str) -> String {
    format!("/portail/dossiers/{}/vu", urlencoding::encode(number))
}

/// `/portail/comptes-rendus/{id}/vu`: the "Marquer comme vu" form's target.
pub fn seen_url(id: &str) -> String {
    format!("/portail/comptes-rendus/{}/vu", urlencoding::encode(id))
}

fn sex_symbol(sex: &str) -> &'static str {
    match sex {
        "F" => "♀",
        "M" => "♂",
        _ => "⚲",
    }
}

fn sex_label(sex: &str) -> &'static str {
    match sex {
        "F" => "Femme",
        "M" => "Homme",
        _ => "Sexe non précisé",
    }
}

// === patients ===

/// A patient as the pages show one (search results, "Mes dernières
/// recherches", page headers).
#[derive(Debug, Clone, Serialize)]
pub struct PatientView {
    pub id: String,
    pub sex: String,
    pub sex_symbol: &'static str,
    pub sex_label: &'static str,
    pub family_name: String,
    pub given_name: String,
    /// `jj/mm/aaaa`.
    pub birth_date: String,
    pub url: String,
    /// [`PatientData`] as JSON, for the page's script ("Mes dernières
    /// recherches" kept in the browser).
    pub data: String,
}

/// The `data-patient` attribute's JSON.
#[derive(Debug, Serialize)]
struct PatientData<'a> {
    id: &'a str,
    sex: &'a str,
    family_name: &'a str,
    given_name: &'a str,
    birth_date: &'a str,
    /// The dossier opened by its number, when the entry links to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    dossier: Option<&'a str>,
}

impl PatientView {
    pub fn of(r: &RecentPatient) -> PatientView {
        let data = PatientData {
            id: &r.id,
            sex: &r.sex,
            family_name: &r.family_name,
            given_name: &r.given_name,
            birth_date: &r.birth_date,
            dossier: r.dossier.as_deref(),
        };
        PatientView {
            id: r.id.clone(),
            sex: r.sex.clone(),
            sex_symbol: sex_symbol(&r.sex),
            sex_label: sex_label(&r.sex),
            family_name: r.family_name.clone(),
            given_name: r.given_name.clone(),
            birth_date: r.birth_date.clone(),
            // A dossier opened by its number links to that dossier: the
            // grant does not open the patient's page.
            url: match &r.dossier {
                Some(n) => dossier_url(n),
                None => patient_url(&r.id),
            },
            data: serde_json::to_string(&data).unwrap_or_default(),
        }
    }
}

// === session ===

/// `GET /api/portail/session` ("Rester connecté"): how long the session,
/// just touched, has left.
#[derive(Debug, Serialize)]
pub struct SessionAnswer {
    pub remaining_ms: i64,
}

// === search ===

/// `GET /portail/recherche`.
#[derive(Debug, Serialize)]
pub struct SearchPage {
    pub q: String,
    /// Fewer than 2 characters: not searched.
    pub too_short: bool,
    pub patients: Vec<PatientView>,
    /// Searched, nothing found.
    pub none: bool,
    /// More patients than shown.
    pub truncated: bool,
}

/// `GET /api/portail/patients?q=`: the answer.
#[derive(Debug, Serialize)]
pub struct SearchAnswer {
    pub patients: Vec<PatientHit>,
    pub truncated: bool,
}

/// One patient of [`SearchAnswer`].
#[derive(Debug, Serialize)]
pub struct PatientHit {
    pub id: String,
    pub sex: String,
    pub family_name: String,
    pub given_name: String,
    /// `jj/mm/aaaa`.
    pub birth_date: String,
    pub url: String,
}

impl PatientHit {
    pub fn of(r: RecentPatient) -> PatientHit {
        PatientHit {
            url: patient_url(&r.id),
            id: r.id,
            sex: r.sex,
            family_name: r.family_name,
            given_name: r.given_name,
            birth_date: r.birth_date,
        }
    }
}

// === home ===

/// `GET /`.
#[derive(Debug, Serialize)]
pub struct HomePage {
    /// The dossiers not listed: "Et 1 autre résultat non vu…", "Et 12
    /// autres résultats non vus…".
    pub more: Option<String>,
    pub results: Vec<UnseenResult>,
    /// "Mes dernières recherches".
    pub recent: Vec<PatientView>,
    pub unseen_days: u32,
    /// Search by name needs an RPPS number.
    pub has_rpps: bool,
}

/// One of the home page's "Derniers résultats non vus": a dossier with its
/// unseen report(s) (user guide 3.1.1).
#[derive(Debug, Serialize)]
pub struct UnseenResult {
    pub patient: PatientView,
    /// The acts of its unseen reports' exams (a report's title without an exam).
    pub act: String,
    /// `jj/mm/aaaa`: the exam of its newest unseen report.
    pub date: String,
    pub dossier: String,
    /// "Marquer comme vu": every report of the dossier.
    pub seen_url: String,
    /// Its unseen reports, newest first.
    pub reports: Vec<ReportLink>,
}

// === dossier by number ===

/// `GET /portail/dossier`, and the form again after a refused attempt.
#[derive(Debug, Serialize)]
pub struct DossierForm<'a> {
    pub error: Option<&'a str>,
    /// The grant on this dossier has expired: the form is offered again.
    pub expired: bool,
    pub numero: String,
    pub naissance: String,
}

// === patient and dossier ===

/// `GET /portail/patients/{id}` and `GET /portail/dossiers/{n}` (one venue).
#[derive(Debug, Serialize)]
pub struct PatientPage {
    pub patient: PatientView,
    pub venues: Vec<Venue>,
    /// One dossier's page.
    pub single: bool,
    /// Opened through a dossier-number grant: that dossier only.
    pub by_number: bool,
}

/// One venue (dossier) of a patient page.
#[derive(Debug, Serialize)]
pub struct Venue {
    pub number: String,
    /// The exams' acts, or "Venue".
    pub title: String,
    /// `jj/mm/aaaa`.
    pub date: String,
    pub reports: Vec<ReportLink>,
    pub multiple_images: bool,
    pub images: Vec<ImagesLink>,
}

#[derive(Debug, Serialize)]
pub struct ReportLink {
    pub title: String,
    pub date: String,
    pub url: String,
}

/// A study to open in the viewer.
#[derive(Debug, Serialize)]
pub struct ImagesLink {
    pub act: String,
    pub date: String,
    pub url: String,
}

// === report ===

/// `GET /portail/comptes-rendus/{id}`.
#[derive(Debug, Serialize)]
pub struct ReportPage {
    pub report: ReportView,
    pub patient: Option<PatientView>,
}

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub title: String,
    /// `jj/mm/aaaa`.
    pub date: String,
    pub paragraphs: Vec<String>,
    /// The dossier's number (the printed report's header).
    pub dossier_number: String,
    pub dossier_url: String,
    /// The "Marquer comme vu" button's target, when this visit did not mark it.
    pub seen_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent() -> RecentPatient {
        RecentPatient {
            id: "P 1/é".into(),
            sex: "F".into(),
            family_name: "MARTIN".into(),
            given_name: "Jeanne".into(),
            birth_date: "13/08/1961".into(),
            dossier: None,
        }
    }

    /// The fields (and their order) the pages and the script read.
    #[test]
    fn patient_views_serialize_as_the_pages_read_them() {
        let v = serde_json::to_string(&PatientView::of(&recent())).unwrap();
        assert_eq!(
            v,
            r#"{"id":"P 1/é","sex":"F","sex_symbol":"♀","sex_label":"Femme","family_name":"MARTIN","given_name":"Jeanne","birth_date":"13/08/1961","url":"/portail/patients/P%201%2F%C3%A9","data":"{\"id\":\"P 1/é\",\"sex\":\"F\",\"family_name\":\"MARTIN\",\"given_name\":\"Jeanne\",\"birth_date\":\"13/08/1961\"}"}"#
        );
        let answer = SearchAnswer {
            patients: vec![PatientHit::of(recent())],
            truncated: false,
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"patients":[{"id":"P 1/é","sex":"F","family_name":"MARTIN","given_name":"Jeanne","birth_date":"13/08/1961","url":"/portail/patients/P%201%2F%C3%A9"}],"truncated":false}"#
        );
    }

    /// A dossier opened by its number: "Mes dernières recherches" links to
    /// that dossier, and the browser's copy knows it.
    #[test]
    fn a_dossier_opened_by_number_links_to_the_dossier() {
        let v = PatientView::of(&RecentPatient {
            dossier: Some("2024 0001".into()),
            ..recent()
        });
        assert_eq!(v.url, "/portail/dossiers/2024%200001");
        assert!(v.data.ends_with(r#","dossier":"2024 0001"}"#), "{}", v.data);
    }

    #[test]
    fn sex_is_shown_with_a_symbol_and_a_label() {
        for (sex, symbol, label) in [
            ("F", "♀", "Femme"),
            ("M", "♂", "Homme"),
            ("U", "⚲", "Sexe non précisé"),
            ("", "⚲", "Sexe non précisé"),
        ] {
            let v = PatientView::of(&RecentPatient {
                sex: sex.into(),
                ..recent()
            });
            assert_eq!((v.sex_symbol, v.sex_label), (symbol, label), "{sex}");
        }
    }
}
