//! `espace-ps audit export`: every access to one patient's data (the
//! patient's right of access: who saw my record, and when), or every access
//! by one professional (the hospital's own controls), in French, as CSV,
//! JSON or an HTML page ready to print.
//!
//! A patient's rows are found by the `patient_id` column (index
//! `audit_events_patient_at`), a professional's by `actor` (index
//! `audit_events_actor_at`), each in time order within `[from, to)`.

use std::net::IpAddr;

use serde::Serialize;
use sqlx::Row;

use crate::identity::NationalId;
use crate::state::{DbError, PortalDb};

/// Whose accesses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The records' patient id.
    Patient(String),
    /// A professional's national id (an RPPS is given as `8` + RPPS).
    Professional(String),
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Html,
}

/// One access, as the export shows it (the JSON keys are these names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub date_heure: String,
    pub professionnel: String,
    pub rpps: String,
    pub patient: String,
    pub action: String,
    pub element: String,
    pub acces: String,
    pub resultat: String,
    pub provenance: String,
}

const HEADERS: [&str; 9] = [
    "Date et heure",
    "Professionnel",
    "RPPS",
    "Patient",
    "Action",
    "Élément consulté",
    "Accès",
    "Résultat",
    "Provenance",
];

/// The events a patient's export lists (the accesses to their data).
const PATIENT_EVENTS: &str = "'patient_view', 'dossier_view', 'report_view', 'images_open', \
     'images_view', 'dicom_download', 'dossier_number_access', 'dossier_number_locked', \
     'dossier_number_unlocked'";

/// The national id of `--professional`: an RPPS (11 digits) or a national id.
pub fn professional_id(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let id = if raw.len() == 11 && raw.bytes().all(|b| b.is_ascii_digit()) {
        format!("8{raw}")
    } else {
        raw.to_owned()
    };
    NationalId::parse(&id)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// The accesses of `subject` in `[from_ms, to_ms)`, oldest first.
pub async fn lines(
    db: &PortalDb,
    subject: &Subject,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Line>, DbError> {
    let (filter, key) = match subject {
        Subject::Patient(id) => (
            format!("a.patient_id = $1 AND a.event IN ({PATIENT_EVENTS})"),
            id,
        ),
        Subject::Professional(id) => ("a.actor = $1".to_owned(), id),
    };
    let by_patient = matches!(subject, Subject::Patient(_));
    let sql = format!(
        "SELECT a.at_ms, a.actor, c.given_name, c.family_name, c.rpps, a.event, a.outcome, \
         a.detail, a.patient_id, a.dossier, a.report_id, a.study_uid, a.access_path, a.method, \
         a.client_addr \
         FROM audit_events a LEFT JOIN accounts c ON c.national_id = a.actor \
         WHERE {filter} AND a.at_ms >= $2 AND a.at_ms < $3 ORDER BY a.at_ms, a.id"
    );
    let rows = sqlx::query(&sql)
        .bind(key.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(db.pool())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let actor: Option<String> = r.try_get(1)?;
        let given: Option<String> = r.try_get(2)?;
        let family: Option<String> = r.try_get(3)?;
        let rpps: Option<String> = r.try_get(4)?;
        let event: String = r.try_get(5)?;
        let outcome: String = r.try_get(6)?;
        let detail: Option<String> = r.try_get(7)?;
        let patient: Option<String> = r.try_get(8)?;
        let dossier: Option<String> = r.try_get(9)?;
        let report: Option<String> = r.try_get(10)?;
        let study: Option<String> = r.try_get(11)?;
        let path: Option<String> = r.try_get(12)?;
        let method: Option<String> = r.try_get(13)?;
        let client: Option<String> = r.try_get(14)?;
        let rpps = rpps.or_else(|| {
            actor
                .as_deref()
                .and_then(|a| NationalId::parse(a).ok())
                .and_then(|n| n.rpps().map(str::to_owned))
        });
        let professionnel = match (given, family) {
            (Some(g), Some(f)) => format!("{g} {f}"),
            _ => actor.clone().unwrap_or_else(|| "ligne de commande".into()),
        };
        out.push(Line {
            date_heure: paris_time(r.try_get(0)?),
            professionnel,
            rpps: rpps.unwrap_or_default(),
            patient: if by_patient {
                String::new()
            } else {
                patient.unwrap_or_default()
            },
            action: action_fr(&event).to_owned(),
            element: element_fr(dossier, report, study),
            acces: access_fr(path.as_deref(), method.as_deref()),
            resultat: match outcome.as_str() {
                "success" => "autorisé".to_owned(),
                _ => format!("refusé ({})", detail.unwrap_or_default()),
            },
            provenance: origin_fr(client.as_deref()).to_owned(),
        });
    }
    Ok(out)
}

/// Epoch milliseconds as the date and time in France (metropolitan).
pub fn paris_time(at_ms: i64) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(at_ms) else {
        return at_ms.to_string();
    };
    match jiff::tz::TimeZone::get("Europe/Paris") {
        Ok(tz) => ts.to_zoned(tz).strftime("%d/%m/%Y %H:%M:%S").to_string(),
        Err(_) => format!("{} UTC", ts.strftime("%d/%m/%Y %H:%M:%S")),
    }
}

/// The first instant of `date` (YYYY-MM-DD) in France, in epoch ms.
pub fn paris_day_start_ms(date: &str) -> Result<i64, String> {
    let d: jiff::civil::Date = date
        .parse()
        .map_err(|_| format!("{date:?}: a date is written YYYY-MM-DD"))?;
    let tz = jiff::tz::TimeZone::get("Europe/Paris").map_err(|e| e.to_string())?;
    let z = d.to_zoned(tz).map_err(|e| e.to_string())?;
    Ok(z.timestamp().as_millisecond())
}

/// The first instant after `date` in France (`--to` includes its day).
pub fn paris_day_end_ms(date: &str) -> Result<i64, String> {
    let d: jiff::civil::Date = date
        .parse()
        .map_err(|_| format!("{date:?}: a date is written YYYY-MM-DD"))?;
    let next = d.tomorrow().map_err(|e| e.to_string())?;
    paris_day_start_ms(&next.to_string())
}

fn action_fr(event: &str) -> &'static str {
    match event {
        "patient_view" => "Consultation du dossier patient",
        "dossier_view" => "Consultation d'un dossier (séjour)",
        "report_view" => "Lecture d'un compte rendu",
        "images_open" => "Ouverture des images depuis le portail",
        "images_view" => "Affichage des images",
        "dicom_download" => "Téléchargement des images (DICOM)",
        "dossier_number_access" => "Accès par numéro de dossier",
        "dossier_number_locked" => "Numéro de dossier verrouillé (trop d'essais)",
        "dossier_number_unlocked" => "Numéro de dossier déverrouillé",
        "patient_search" => "Recherche de patients par nom",
        "login" => "Connexion (Pro Santé Connect)",
        "hm_sso" => "Connexion depuis Hopital Manager",
        "logout" => "Déconnexion",
        "session_revoked" => "Session révoquée",
        "sessions_revoke" => "Révocation des sessions",
        _ => "Autre",
    }
}

fn element_fr(dossier: Option<String>, report: Option<String>, study: Option<String>) -> String {
    let mut parts = Vec::new();
    if let Some(d) = dossier {
        parts.push(format!("dossier {d}"));
    }
    if let Some(r) = report {
        parts.push(format!("compte rendu {r}"));
    }
    if let Some(s) = study {
        parts.push(format!("examen {s}"));
    }
    parts.join(", ")
}

fn access_fr(path: Option<&str>, method: Option<&str>) -> String {
    let path = match path {
        Some("care_team") => "équipe de soins",
        Some("dossier_grant") => "numéro de dossier et date de naissance",
        Some("hm_sso") => "Hopital Manager (équipe de soins)",
        _ => "",
    };
    let login = match method {
        Some("psc_card") => "carte CPS",
        Some("psc_app") => "e-CPS",
        Some("hm_sso") => "Hopital Manager",
        Some("cli") => "ligne de commande",
        _ => "",
    };
    match (path.is_empty(), login.is_empty()) {
        (false, false) => format!("{path} ; connexion {login}"),
        (false, true) => path.to_owned(),
        (true, false) => format!("connexion {login}"),
        (true, true) => String::new(),
    }
}

/// Where the request came from: the hospital's network (a private,
/// loopback or link-local address, as the gateways give them) or outside.
fn origin_fr(client: Option<&str>) -> &'static str {
    let Some(ip) = client.and_then(|c| c.parse::<IpAddr>().ok()) else {
        return "";
    };
    let internal = match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if internal {
        "réseau de l'établissement"
    } else {
        "extérieur (Internet)"
    }
}

/// The export in `format`; `title` heads the HTML page.
pub fn render(lines: &[Line], format: Format, title: &str) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(lines).map_err(|e| e.to_string()),
        Format::Csv => {
            // `;` and a byte-order mark: what a French spreadsheet opens as is.
            let mut w = csv::WriterBuilder::new()
                .delimiter(b';')
                .from_writer(vec![0xEF, 0xBB, 0xBF]);
            w.write_record(HEADERS).map_err(|e| e.to_string())?;
            for l in lines {
                w.write_record([
                    &l.date_heure,
                    &l.professionnel,
                    &l.rpps,
                    &l.patient,
                    &l.action,
                    &l.element,
                    &l.acces,
                    &l.resultat,
                    &l.provenance,
                ])
                .map_err(|e| e.to_string())?;
            }
            let bytes = w.into_inner().map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        }
        Format::Html => {
            #[derive(Serialize)]
            struct Page<'a> {
                title: &'a str,
                headers: [&'static str; 9],
                lines: &'a [Line],
                none: bool,
            }
            let mut hb = handlebars::Handlebars::new();
            hb.set_strict_mode(true);
            hb.render_template(
                HTML,
                &Page {
                    title,
                    headers: HEADERS,
                    lines,
                    none: lines.is_empty(),
                },
            )
            .map_err(|e| e.to_string())
        }
    }
}

const HTML: &str = r#"<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<title>{{title}}</title>
<style>
body { font-family: sans-serif; font-size: 10pt; margin: 1.5cm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #888; padding: 3px 5px; text-align: left; vertical-align: top; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; }
@page { size: A4 landscape; margin: 1cm; }
</style>
</head>
<body>
<h1>{{title}}</h1>
{{#if none}}<p>Aucun accès enregistré sur cette période.</p>{{else}}
<table>
<thead><tr>{{#each headers}}<th scope="col">{{this}}</th>{{/each}}</tr></thead>
<tbody>
{{#each lines}}<tr><td>{{date_heure}}</td><td>{{professionnel}}</td><td>{{rpps}}</td><td>{{patient}}</td><td>{{action}}</td><td>{{element}}</td><td>{{acces}}</td><td>{{resultat}}</td><td>{{provenance}}</td></tr>
{{/each}}</tbody>
</table>{{/if}}
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Times are shown in France's time, summer and winter; `--to`
    /// includes its whole day.
    #[test]
    fn dates_are_french_local_time() {
        // 2026-07-14T10:00:00Z is noon in Paris (summer), 2026-01-14T10:00Z 11:00.
        assert_eq!(paris_time(1_784_023_200_000), "14/07/2026 12:00:00");
        assert_eq!(paris_time(1_768_384_800_000), "14/01/2026 11:00:00");
        assert_eq!(
            paris_day_start_ms("2026-07-14").unwrap(),
            1_784_023_200_000 - 12 * 3_600_000
        );
        assert_eq!(
            paris_day_end_ms("2026-07-14").unwrap() - paris_day_start_ms("2026-07-14").unwrap(),
            86_400_000
        );
        assert!(paris_day_start_ms("14/07/2026").is_err());
    }

    #[test]
    fn professional_is_an_rpps_or_a_national_id() {
        assert_eq!(professional_id("99700123450").unwrap(), "899700123450");
        assert_eq!(professional_id("899700123450").unwrap(), "899700123450");
        assert!(professional_id("99700123451").is_err(), "bad check digit");
        assert!(professional_id("x").is_err());
    }

    #[test]
    fn origin_and_access_in_french() {
        assert_eq!(origin_fr(Some("10.20.0.7")), "réseau de l'établissement");
        assert_eq!(origin_fr(Some("203.0.113.9")), "extérieur (Internet)");
        assert_eq!(
            access_fr(Some("dossier_grant"), Some("psc_app")),
            "numéro de dossier et date de naissance ; connexion e-CPS"
        );
    }

    /// The HTML page escapes what it shows; the CSV quotes what needs it.
    #[test]
    fn renderings_escape() {
        let l = Line {
            date_heure: "01/01/2026 10:00:00".into(),
            professionnel: "<b>Jeanne</b>; \"X\"".into(),
            rpps: "99700123450".into(),
            patient: String::new(),
            action: action_fr("report_view").into(),
            element: "compte rendu CR-1".into(),
            acces: String::new(),
            resultat: "autorisé".into(),
            provenance: String::new(),
        };
        let html = render(std::slice::from_ref(&l), Format::Html, "Accès").unwrap();
        assert!(html.contains("&lt;b&gt;Jeanne"), "{html}");
        let csv = render(std::slice::from_ref(&l), Format::Csv, "").unwrap();
        assert!(csv.contains("\"<b>Jeanne</b>; \"\"X\"\"\""), "{csv}");
        assert!(csv.starts_with("\u{feff}Date et heure;Professionnel;RPPS"));
        let json = render(&[l], Format::Json, "").unwrap();
        assert!(json.contains("\"action\": \"Lecture d'un compte rendu\""));
    }
}
