//! The role matrix of `viewer_matrix_against_orthanc`, through the gate: each
//! route of each class, for each professional, on a study they may see and
//! on one they may not, with the exact decision.

use espace_ps_access::viewer::Class;

use super::{fill, Got, Persona, World, ELISE, FEMUR, INES, NOEL, OTHER, SCANNER};
use crate::viewer::Refusal;

/// What one cell must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// Forwarded, DICOM bytes may not flow back.
    Fwd,
    /// Forwarded, DICOM bytes may flow back (the habilitation).
    FwdD,
    /// "Téléchargement non autorisé": may view, not download.
    DlRef,
    /// "Accès refusé".
    Ref,
    /// No such study for this professional (Inès sees none).
    NA,
}
use Cell::*;

const D: Class = Class::Download;
const R: Class = Class::Raw;
const V: Class = Class::Rendered;
const Q: Class = Class::Search;
const X: Class = Class::SideEffect;

const WADO: &str = "/wado?requestType=WADO&studyUID={S}&seriesUID={SE}&objectUID={I}";

/// (label, class, method, target, visible, invisible)
type Row = (
    &'static str,
    Class,
    &'static str,
    &'static str,
    [Cell; 4],
    [Cell; 4],
);

/// One route per row. Columns: Élise (care team `MT` on SCANNER), Élise
/// holding the DICOM download habilitation, Noël (FEMUR opened by its
/// number: a grant), Inès (outsider). `visible` is on SCANNER for Élise,
/// FEMUR for Noël; `invisible` is on OTHER for Élise, SCANNER for Noël and
/// Inès. A forwarded target is the row's target, exactly.
///
/// (label, class, method, target, visible, invisible)
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    ("D /instances/{id}/file", D, "GET", "/instances/{iid}/file", [DlRef, FwdD, DlRef, NA], [Ref, Ref, Ref, Ref]),
    ("D /studies/{id}/archive", D, "GET", "/studies/{sid}/archive", [DlRef, FwdD, DlRef, NA], [Ref, Ref, Ref, Ref]),
    ("D /series/{id}/media", D, "GET", "/series/{seid}/media", [DlRef, FwdD, DlRef, NA], [Ref, Ref, Ref, Ref]),
    ("D WADO-RS /dicom-web/studies/{uid}", D, "GET", "/dicom-web/studies/{S}", [DlRef, FwdD, DlRef, NA], [Ref, Ref, Ref, Ref]),
    ("D WADO-URI contentType=application/dicom", D, "GET", "/wado?requestType=WADO&studyUID={S}&seriesUID={SE}&objectUID={I}&contentType=application/dicom", [DlRef, FwdD, DlRef, NA], [Ref, Ref, Ref, Ref]),
    ("D WADO-RS ?accept=application/zip", D, "GET", "/dicom-web/studies/{S}?accept=application/zip", [DlRef, FwdD, DlRef, NA], [Ref, Ref, Ref, Ref]),
    ("R /instances/{id}/tags", R, "GET", "/instances/{iid}/tags", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("R /dicom-web/studies/{s}/metadata", R, "GET", "/dicom-web/studies/{S}/metadata", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("R DICOMweb …/instances/{i}/frames/1", R, "GET", "/dicom-web/studies/{S}/series/{SE}/instances/{I}/frames/1", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("V /instances/{id}/preview", V, "GET", "/instances/{iid}/preview", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("V DICOMweb …/instances/{i}/rendered", V, "GET", "/dicom-web/studies/{S}/series/{SE}/instances/{I}/rendered", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("V WADO-URI default (JPEG)", V, "GET", WADO, [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("V /web-viewer/series/{id}", V, "GET", "/web-viewer/series/{seid}", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("Q QIDO ?StudyInstanceUID=uid", Q, "GET", "/dicom-web/studies?StudyInstanceUID={S}", [Fwd, FwdD, Fwd, NA], [Ref, Ref, Ref, Ref]),
    ("Q /dicom-web/studies (unscoped)", Q, "GET", "/dicom-web/studies", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
    ("Q /studies (unscoped)", Q, "GET", "/studies", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
    ("X POST /tools/lookup", X, "POST", "/tools/lookup", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
    ("X GET /modalities", X, "GET", "/modalities", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
    ("X POST /instances", X, "POST", "/instances", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
    ("X POST /studies/{id}/modify", X, "POST", "/studies/{sid}/modify", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
    ("X DELETE /studies/{id}", X, "DELETE", "/studies/{sid}", [Ref, Ref, Ref, Ref], [Ref, Ref, Ref, Ref]),
];

/// (column, persona, world, visible study, invisible study). Worlds: 0
/// plain, 1 Élise habilitated, 2 plain (a trail of its own). The last row
/// is Élise on FEMUR, a sibling dossier of her patient where she holds no
/// role: since issue 11 she views it like SCANNER (the patient's whole
/// history, `care-team-whole-patient`), where Noël's grant on FEMUR still
/// refuses him SCANNER (column 2's invisible study).
const PERSONAS: [(usize, Persona, usize, Option<super::Study>, super::Study); 5] = [
    (0, ELISE, 0, Some(SCANNER), OTHER),
    (1, ELISE, 1, Some(SCANNER), OTHER),
    (2, NOEL, 0, Some(FEMUR), SCANNER),
    (3, INES, 0, None, SCANNER),
    (0, ELISE, 2, Some(FEMUR), OTHER),
];

fn expected(cell: Cell, class: Class, target: &str) -> Option<Got> {
    Some(match cell {
        Fwd => Got::forward(target, class, false),
        FwdD => Got::forward(target, class, true),
        DlRef => Got::Refuse(Refusal::DownloadRefused),
        Ref => Got::Refuse(Refusal::Refused),
        NA => return None,
    })
}

#[tokio::test]
async fn gate_role_matrix() {
    let worlds = [World::new(&[]), World::new(&[&ELISE]), World::new(&[])];
    let mut failures = Vec::new();
    let mut cells = 0;
    for (col, who, w, visible, invisible) in PERSONAS {
        let world = &worlds[w];
        let hab = w == 1;
        // Side effects are the last rows: one that got through would be
        // seen before the rest.
        let (mut d_attempts, mut d_forwarded, mut viewed) = (0, 0, false);
        for (label, class, method, target, vis, inv) in MATRIX {
            for (study, cell) in [(visible, vis[col]), (Some(invisible), inv[col])] {
                let Some(study) = study else { continue };
                let Some(want) = expected(cell, *class, &fill(target, &study)) else {
                    continue;
                };
                let got =
                    super::Got::of(&world.ask(&who, method, &fill(target, &study), &[]).await);
                cells += 1;
                if got != want {
                    failures.push(format!(
                        "{} (habilitated: {hab}) · {label} · {}: got {got:?}, expected {want:?}",
                        who.name, study.dossier
                    ));
                }
                if *class == D {
                    d_attempts += 1;
                    d_forwarded += usize::from(got.is_forward());
                } else if got.is_forward() {
                    viewed = true;
                }
            }
        }
        // The trail: one dicom_download per attempt (refused or not), one
        // images_view for the visible study however many views (the window).
        let trail = world.trail(&who);
        let downloads: Vec<_> = trail.iter().filter(|r| r.0 == "dicom_download").collect();
        let successes = downloads.iter().filter(|r| r.1 == "success").count();
        let views: Vec<&str> = trail
            .iter()
            .filter(|r| r.0 == "images_view" && r.1 == "success")
            .map(|r| r.2.as_str())
            .collect();
        // A refused view is on the trail too, once per study (the window),
        // and only for a study that was refused.
        let refused_views: Vec<&str> = trail
            .iter()
            .filter(|r| r.0 == "images_view" && r.1 == "refused")
            .map(|r| r.2.as_str())
            .collect();
        let mut once = refused_views.clone();
        once.dedup();
        if once.len() != refused_views.len() || refused_views.iter().any(|s| views.contains(s)) {
            failures.push(format!(
                "audit of {}: refused images_view {refused_views:?} (views {views:?})",
                who.name
            ));
        }
        let want_views: Vec<&str> = match (viewed, visible) {
            (true, Some(s)) => vec![s.uid],
            _ => vec![],
        };
        if downloads.len() != d_attempts || successes != d_forwarded || views != want_views {
            failures.push(format!(
                "audit of {} (habilitated: {hab}): {} dicom_download for {d_attempts} attempts, \
                 {successes} successes for {d_forwarded} forwarded, images_view {views:?} \
                 instead of {want_views:?}",
                who.name,
                downloads.len()
            ));
        }
    }
    // Each route: twice for each of four columns with a visible study, once for Inès.
    assert_eq!(cells, MATRIX.len() * 9);
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Noël before and after opening FEMUR by its number: the grant is seen at
/// once (`grants_changed`), and opens FEMUR only, not SCANNER of the same
/// patient.
#[tokio::test]
async fn gate_grant_opens_its_dossier_alone() {
    let fresh = World::bare(&[]);
    let preview = |s: &super::Study| format!("/instances/{}/preview", s.iid);
    let refused = Got::Refuse(Refusal::Refused);
    assert_eq!(fresh.get(&NOEL, &preview(&FEMUR)).await, refused);
    fresh.records.grant(&NOEL, FEMUR.dossier);
    fresh.gate.grants_changed();
    assert_eq!(
        fresh.get(&NOEL, &preview(&FEMUR)).await,
        Got::forward(&preview(&FEMUR), V, false)
    );
    assert_eq!(fresh.get(&NOEL, &preview(&SCANNER)).await, refused);
    assert_eq!(
        fresh.get(&NOEL, &format!("/patients/{}", FEMUR.pid)).await,
        refused,
        "a grant opens its dossier, not the patient's other studies"
    );
}

/// The patient's whole history through the gate (user guide 2.1): Élise,
/// on SCANNER's care team only, views FEMUR (a sibling dossier) and the
/// patient as a whole, but may not download from FEMUR even habilitated
/// (viewing only); Noël's grant on FEMUR never opens SCANNER nor the
/// patient; Inès, on no care team, gets nothing.
#[tokio::test]
async fn gate_sibling_dossier_is_viewed_through_the_care_team_only() {
    let w = World::new(&[&ELISE]);
    let preview = |s: &super::Study| format!("/instances/{}/preview", s.iid);
    let file = |s: &super::Study| format!("/instances/{}/file", s.iid);
    let patient = format!("/patients/{}", FEMUR.pid);
    assert_eq!(
        w.get(&ELISE, &preview(&FEMUR)).await,
        Got::forward(&preview(&FEMUR), V, false)
    );
    assert_eq!(
        w.get(&ELISE, &patient).await,
        Got::forward(&patient, R, false)
    );
    assert_eq!(
        w.get(&ELISE, &file(&FEMUR)).await,
        Got::Refuse(Refusal::DownloadRefused)
    );
    assert_eq!(
        w.get(&ELISE, &file(&SCANNER)).await,
        Got::forward(&file(&SCANNER), D, true)
    );
    let refused = Got::Refuse(Refusal::Refused);
    assert_eq!(w.get(&NOEL, &preview(&SCANNER)).await, refused);
    assert_eq!(w.get(&NOEL, &patient).await, refused);
    assert_eq!(w.get(&INES, &preview(&FEMUR)).await, refused);
}
