//! The access crate's bypass corpus (`bypass-corpus.toml`, read through
//! `espace_ps_access::viewer::corpus`), replayed through the whole gate.
//!
//! Every id the corpus uses (UIDs such as `1.2` or `1.2.3.4` at any level,
//! the Orthanc ids `11111111-…`, `22222222-…`, `33333333-…`) belongs, in the
//! fake archive, to the study `1.2` of a dossier on Élise's care team; `9.9`,
//! which the corpus only ever gives as a parent that lies, is a study of a
//! dossier she may not see. So a case's decision follows from its expected
//! classification alone:
//!
//! | corpus `expect`                      | Élise (care team) | Élise habilitated | Inès (outsider) |
//! |--------------------------------------|-------------------|-------------------|-----------------|
//! | `rejected`                           | Malformed         | Malformed         | Malformed       |
//! | `denied`, or resource system/unscoped/body | Refused     | Refused           | Refused         |
//! | `shell`                              | forward           | forward           | forward         |
//! | `D`                                  | DownloadRefused   | forward, download | Refused         |
//! | `R`, `V`, `Q`                        | forward           | forward, download | Refused         |
//!
//! A forward carries the canonical target (the one the table's
//! canonicalization gives, never the raw one) and the case's class.

use std::sync::Arc;

use espace_ps_access::viewer::corpus::{bypass_corpus, CorpusCase};
use espace_ps_access::viewer::Class;

use super::{Archive, Got, Persona, Records, World, ELISE, INES};
use crate::viewer::Refusal;

const VISIBLE: &str = "1.2";
const DOSSIER: &str = "D-CORPUS";

fn corpus_world(habilitated: &[&Persona]) -> World {
    let archive = Archive::default();
    archive.add_everywhere(
        &["1.2", "1.3", "1.4", "1.2.3", "1.2.4", "1.2.3.4", "8.8"],
        &[
            "11111111-11111111-11111111-11111111-11111111",
            "22222222-22222222-22222222-22222222-22222222",
            "33333333-33333333-33333333-33333333-33333333",
        ],
        VISIBLE,
    );
    let records = Records::default();
    for uid in ["1.2", "1.3", "1.4", "1.2.3"] {
        records.study(uid, DOSSIER);
    }
    records.study("9.9", "D-ELSEWHERE");
    records.role(DOSSIER, &ELISE, &["MT"]);
    World::with(Arc::new(archive), Arc::new(records), habilitated)
}

/// The decision a case must get, for (habilitated, outsider).
fn expected(case: &CorpusCase, canonical: Option<&str>, hab: bool, outsider: bool) -> Got {
    let refused = Got::Refuse(Refusal::Refused);
    match case.expect.as_str() {
        "rejected" => return Got::Refuse(Refusal::Malformed),
        "denied" => return refused,
        _ => {}
    }
    if matches!(
        case.resource.as_deref(),
        Some("system" | "unscoped" | "body")
    ) {
        return refused;
    }
    let class = Class::from_code(&case.expect).expect("a class code");
    let target = canonical.expect("a candidate has a canonical target");
    match class {
        Class::Shell => Got::forward(target, class, false),
        _ if outsider => refused,
        Class::Download if !hab => Got::Refuse(Refusal::DownloadRefused),
        _ => Got::forward(target, class, hab),
    }
}

#[tokio::test]
async fn gate_replays_the_bypass_corpus() {
    let cases = bypass_corpus();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let plain = corpus_world(&[]);
    let hab = corpus_world(&[&ELISE]);
    let table = plain.gate.table().expect("a table");
    let mut failures = Vec::new();
    let mut decisions = 0;
    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let owned: Vec<(String, String)> = case.headers.clone();
        let canonical = table
            .canonicalize(&case.method, &case.target, &owned)
            .ok()
            .map(|c| c.target());
        for (world, who, habilitated, outsider) in [
            (&plain, ELISE, false, false),
            (&hab, ELISE, true, false),
            (&plain, INES, false, true),
        ] {
            let before = world.trail(&who).len();
            let got = Got::of(&world.ask(&who, &case.method, &case.target, &headers).await);
            decisions += 1;
            let want = expected(case, canonical.as_deref(), habilitated, outsider);
            if got != want {
                failures.push(format!(
                    "{} ({} {}) for {} (habilitated: {habilitated}): got {got:?}, expected {want:?}",
                    case.name, case.method, case.target, who.name
                ));
            }
            // A request classified as a download is audited, refused or not.
            let new: Vec<_> = world.trail(&who).split_off(before);
            let downloads = new.iter().filter(|r| r.0 == "dicom_download").count();
            let is_download = case.expect == "D" || case.class.as_deref() == Some("D");
            if is_download && downloads != 1 {
                failures.push(format!(
                    "{} for {} (habilitated: {habilitated}): {downloads} dicom_download records",
                    case.name, who.name
                ));
            }
            if !is_download && case.class.is_some() && downloads != 0 {
                failures.push(format!(
                    "{}: a dicom_download record for a {:?} request",
                    case.name, case.class
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {decisions} decisions failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
