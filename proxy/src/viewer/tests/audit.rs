//! The trail the gate writes: every download attempt (success or refusal),
//! image views once per session and study per window, and no record, no
//! access: an audit write that fails refuses what it was about to allow,
//! and leaves the window closed.

use espace_ps_access::viewer::Class;

use super::{assert_event_context, Got, World, ELISE, FEMUR, INES, OTHER, SCANNER};
use crate::viewer::Refusal;

fn rows(r: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    r.iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
        .collect()
}

#[tokio::test]
async fn gate_audits_image_views_once_per_session_and_study() {
    let w = World::new(&[]);
    w.records.role(FEMUR.dossier, &ELISE, &["MT"]);
    let preview = format!("/instances/{}/preview", SCANNER.iid);
    let tags = format!("/instances/{}/tags", SCANNER.iid);
    let femur = format!("/instances/{}/preview", FEMUR.iid);
    // (who, target, images_view records of Élise so far)
    let steps = [
        (ELISE, preview.as_str(), 1),
        (ELISE, preview.as_str(), 1),
        (ELISE, tags.as_str(), 1),
        (ELISE, femur.as_str(), 2),
        (ELISE.other_session("session-elise-2"), preview.as_str(), 3),
        (ELISE.other_session("session-elise-2"), tags.as_str(), 3),
        (ELISE, "/web-viewer/app/viewer.html", 3),
    ];
    for (who, target, views) in steps {
        assert!(w.get(&who, target).await.is_forward(), "{target}");
        let got = w
            .trail(&ELISE)
            .iter()
            .filter(|r| r.0 == "images_view")
            .count();
        assert_eq!(got, views, "after {} {target}", who.session_id);
    }
    // A reload and a new grant forget the cached decisions, not the
    // window: the studies already on the trail are not recorded again.
    w.gate.set_table(Some(super::table(w.policies.path())));
    assert!(w.get(&ELISE, &preview).await.is_forward());
    w.gate.grants_changed();
    assert!(w.get(&ELISE, &femur).await.is_forward());
    assert_eq!(
        w.trail(&ELISE),
        rows(&[
            ("images_view", "success", SCANNER.uid, "V"),
            ("images_view", "success", FEMUR.uid, "V"),
            ("images_view", "success", SCANNER.uid, "V"),
        ])
    );
    for e in w.audit.events() {
        assert_event_context(&e, &ELISE);
    }
}

#[tokio::test]
async fn gate_audits_every_download_attempt() {
    let plain = World::new(&[]);
    let hab = World::new(&[&ELISE]);
    let file = format!("/instances/{}/file", SCANNER.iid);
    let archive = format!("/studies/{}/archive", SCANNER.sid);
    // Not on OTHER's care team (FEMUR, a sibling dossier of her patient,
    // she may view since issue 11: a download there is "not habilitated").
    let other = format!("/instances/{}/file", OTHER.iid);
    let unknown = "/instances/00000000-00000000-00000000-00000000-00000000/file";

    // Habilitated: each download is recorded, however many.
    for _ in 0..2 {
        assert_eq!(
            hab.get(&ELISE, &file).await,
            Got::forward(&file, Class::Download, true)
        );
    }
    assert_eq!(
        hab.get(&ELISE, &archive).await,
        Got::forward(&archive, Class::Download, true)
    );
    let trail = hab.trail(&ELISE);
    assert_eq!(trail.len(), 3, "{trail:?}");
    for (event, outcome, resource, route) in &trail {
        assert_eq!(
            (event.as_str(), outcome.as_str(), resource.as_str()),
            ("dicom_download", "success", SCANNER.uid)
        );
        assert!(!route.is_empty(), "the route id is the detail");
    }

    // Not habilitated, not on the care team, unknown, denied by the table:
    // refused, and recorded with what is known.
    let dl_refused = Got::Refuse(Refusal::DownloadRefused);
    let refused = Got::Refuse(Refusal::Refused);
    assert_eq!(plain.get(&ELISE, &file).await, dl_refused);
    assert_eq!(plain.get(&ELISE, &other).await, refused);
    assert_eq!(plain.get(&ELISE, unknown).await, refused);
    let denied = "/jobs/abc/archive";
    assert_eq!(plain.get(&ELISE, denied).await, refused);
    let trail = plain.trail(&ELISE);
    let got: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("dicom_download", "refused", SCANNER.uid),
            ("dicom_download", "refused", OTHER.uid),
            ("dicom_download", "refused", ""),
            ("dicom_download", "refused", ""),
        ]
    );
    assert_eq!(trail[2].3, "unresolved");
    assert!(!trail[3].3.is_empty(), "the table's reason is the detail");
    // The outsider's attempt is recorded too; the shell is not audited.
    assert_eq!(plain.get(&INES, &file).await, refused);
    assert!(plain
        .get(&INES, "/web-viewer/app/viewer.html")
        .await
        .is_forward());
    assert_eq!(
        plain.trail(&INES),
        rows(&[("dicom_download", "refused", SCANNER.uid, &trail[0].3)])
    );
}

#[tokio::test]
async fn gate_refuses_while_the_audit_cannot_be_written() {
    let w = World::new(&[]);
    let hab = World::new(&[&ELISE]);
    let preview = format!("/instances/{}/preview", SCANNER.iid);
    let file = format!("/instances/{}/file", SCANNER.iid);
    let unavailable = Got::Refuse(Refusal::Unavailable);

    w.audit.set_failing(true);
    hab.audit.set_failing(true);
    // No record, no access: neither the view nor the download goes through.
    assert_eq!(w.get(&ELISE, &preview).await, unavailable);
    assert_eq!(w.get(&ELISE, &preview).await, unavailable, "window opened");
    assert_eq!(hab.get(&ELISE, &file).await, unavailable);
    // A refusal stays a refusal (its record is best effort).
    assert_eq!(
        w.get(&ELISE, &file).await,
        Got::Refuse(Refusal::DownloadRefused)
    );
    assert!(w.audit.events().is_empty());

    w.audit.set_failing(false);
    hab.audit.set_failing(false);
    let forward = Got::forward(&preview, Class::Rendered, false);
    assert_eq!(w.get(&ELISE, &preview).await, forward);
    assert_eq!(w.get(&ELISE, &preview).await, forward);
    assert_eq!(
        w.trail(&ELISE),
        rows(&[("images_view", "success", SCANNER.uid, "V")]),
        "the first view after the failure is the one recorded"
    );
    assert_eq!(
        hab.get(&ELISE, &file).await,
        Got::forward(&file, Class::Download, true)
    );
    assert_eq!(hab.trail(&ELISE).len(), 1);
}

/// A download repeated within a decision's lifetime is recorded whole (the
/// patient, the dossier, how it was allowed, by which policy) without
/// asking the records again: the enrichment is kept with the decision.
/// After a policy reload it is asked again (a records failure then
/// refuses, as unavailable).
#[tokio::test]
async fn repeated_downloads_are_recorded_whole_from_the_kept_enrichment() {
    let hab = World::new(&[&ELISE]);
    let file = format!("/instances/{}/file", SCANNER.iid);
    let allowed = Got::forward(&file, Class::Download, true);
    assert_eq!(hab.get(&ELISE, &file).await, allowed);
    // The records down: the decision and the enrichment are kept.
    hab.records.set_failing(true);
    assert_eq!(hab.get(&ELISE, &file).await, allowed);
    let events = hab.audit.events();
    assert_eq!(events.len(), 2);
    let whole = |e: &crate::audit::AuditEvent| {
        (
            e.patient_id().map(str::to_owned),
            e.dossier_number().map(str::to_owned),
            e.via_str(),
            e.policy_str().map(str::to_owned),
        )
    };
    let first = whole(&events[0]);
    assert!(
        first.0.is_some() && first.1.is_some() && first.2.is_some() && first.3.is_some(),
        "{first:?}"
    );
    assert_eq!(whole(&events[1]), first);
    // A reload forgets both: the records are asked, and fail.
    hab.gate.set_table(Some(super::table(hab.policies.path())));
    assert_eq!(
        hab.get(&ELISE, &file).await,
        Got::Refuse(Refusal::Unavailable)
    );
}
