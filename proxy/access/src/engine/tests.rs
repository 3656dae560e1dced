//! Tests of the default policies, deny-by-default behaviour and reloads.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::model::*;
use crate::{Engine, ReloadOutcome};

// === fixtures ===

pub(crate) fn shipped_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// A temporary copy of the shipped policy directory.
pub(crate) fn copy_policies() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&shipped_policies(), tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

fn engine() -> Engine {
    Engine::load(shipped_policies()).expect("shipped policies load")
}

fn doctor() -> Professional {
    Professional {
        national_id: "810001234567".into(),
        rpps: Some("10001234567".into()),
        professions: vec!["10".into()],
        savoir_faire: vec!["SM54".into()],
        login_method: LoginMethod::PscCard,
    }
}

fn adeli_only() -> Professional {
    Professional {
        national_id: "0751234567".into(),
        rpps: None,
        professions: vec!["60".into()],
        savoir_faire: vec![],
        login_method: LoginMethod::PscCard,
    }
}

fn dossier(id: &str) -> Resource {
    Resource::Dossier {
        id: id.into(),
        patient_id: "P1".into(),
    }
}

fn series(dossier_id: &str) -> Resource {
    Resource::Series {
        uid: "1.2.250.1.1.2".into(),
        study_uid: "1.2.250.1.1".into(),
        dossier_id: dossier_id.into(),
    }
}

fn report(dossier_id: &str) -> Resource {
    Resource::Report {
        id: format!("CR-{dossier_id}"),
        dossier_id: dossier_id.into(),
    }
}

fn study(dossier_id: &str) -> Resource {
    Resource::Study {
        uid: "1.2.250.1.1".into(),
        dossier_id: dossier_id.into(),
    }
}

/// Care-team context: `roles` on dossier A, nothing on dossier B.
fn on_a(roles: &[&str]) -> RequestContext {
    RequestContext {
        via: Via::CareTeam,
        care_team: vec![
            DossierRoles {
                dossier_id: "D-A".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            },
            DossierRoles {
                dossier_id: "D-B".into(),
                roles: vec![],
            },
        ],
        birth_date_verified: false,
        now: 1_700_000_000,
    }
}

fn grant(dossier_id: &str) -> RequestContext {
    RequestContext {
        via: Via::Grant {
            dossier_id: dossier_id.into(),
        },
        care_team: vec![],
        birth_date_verified: false,
        now: 1_700_000_000,
    }
}

fn req(
    p: Professional,
    action: Action,
    resource: Resource,
    context: RequestContext,
) -> AccessRequest {
    AccessRequest {
        professional: p,
        action,
        resource,
        context,
    }
}

fn allowed(e: &Engine, r: AccessRequest) -> bool {
    let d = e.decide(&r);
    assert!(d.errors.is_empty() || !d.allowed, "{d:?}");
    d.allowed
}

/// Engine on a copy of the shipped set whose groups.toml is `groups`.
fn engine_with_groups(groups: &str) -> (tempfile::TempDir, Engine) {
    let tmp = copy_policies();
    // The shipped test cases assert that nobody holds the habilitation.
    std::fs::remove_dir_all(tmp.path().join("tests")).expect("rm tests");
    std::fs::write(tmp.path().join("groups.toml"), groups).expect("write groups");
    let e = Engine::load(tmp.path()).expect("load");
    (tmp, e)
}

// === the shipped set ===

#[test]
fn shipped_set_loads_and_its_test_cases_pass() {
    let e = engine();
    assert_eq!(e.generation(), 1);
    let snap = e.snapshot();
    assert_eq!(
        snap.policy_ids(),
        vec![
            "care-team",
            "care-team-whole-patient",
            "dicom-download-habilitation",
            "dossier-grant",
            "open-dossier-by-number",
            "revoked"
        ]
    );
}

#[test]
fn engine_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Engine>();
}

// === care-team ===

#[test]
fn every_default_care_team_role_opens_the_dossier() {
    let e = engine();
    for role in ["MR", "MT", "CO", "PR", "AD"] {
        for (action, resource) in [
            (Action::ViewDossier, dossier("D-A")),
            (Action::ViewReport, report("D-A")),
            (Action::ViewImages, series("D-A")),
            (Action::ViewImages, study("D-A")),
            (Action::ViewImages, dossier("D-A")),
        ] {
            let d = e.decide(&req(doctor(), action, resource, on_a(&[role])));
            assert!(d.allowed, "{role} {action:?}: {d:?}");
            assert_eq!(d.policy_ids, vec!["care-team"]);
        }
    }
}

/// The shipped default (user guide 2.1): a role on one dossier of the
/// patient opens the patient's other dossiers, their reports and images,
/// for viewing, through the care team (search), never through a grant.
/// (Before issue 11 the shipped rule was per dossier: D-B was refused.)
#[test]
fn correspondent_on_dossier_a_sees_dossier_b_of_the_same_patient() {
    let e = engine();
    let ctx = on_a(&["CO"]);
    let d = e.decide(&req(
        doctor(),
        Action::ViewDossier,
        dossier("D-A"),
        ctx.clone(),
    ));
    assert_eq!((d.allowed, d.policy_ids), (true, vec!["care-team".into()]));
    for (action, resource) in [
        (Action::ViewDossier, dossier("D-B")),
        (Action::ViewReport, report("D-B")),
        (Action::ViewImages, series("D-B")),
        (Action::ViewImages, study("D-B")),
    ] {
        let d = e.decide(&req(doctor(), action, resource.clone(), ctx.clone()));
        assert!(d.allowed, "{action:?} {resource:?}: {d:?}");
        assert_eq!(d.policy_ids, vec!["care-team-whole-patient"]);
    }
    // Viewing only: no download from D-B, even habilitated.
    let (_tmp, hab) = engine_with_groups(RADIOLOGY_GROUPS);
    assert!(!allowed(
        &hab,
        req(doctor(), Action::DownloadDicom, series("D-B"), ctx.clone())
    ));
    // Not through a grant on D-A, with or without a role there.
    let mut via_grant = grant("D-A");
    assert!(!allowed(
        &e,
        req(
            doctor(),
            Action::ViewDossier,
            dossier("D-B"),
            via_grant.clone()
        )
    ));
    via_grant.care_team = ctx.care_team.clone();
    assert!(!allowed(
        &e,
        req(doctor(), Action::ViewDossier, dossier("D-B"), via_grant)
    ));
    // Nor for an unlisted role, nor without an RPPS.
    assert!(!allowed(
        &e,
        req(
            doctor(),
            Action::ViewDossier,
            dossier("D-B"),
            on_a(&["infirmier"])
        )
    ));
    assert!(!allowed(
        &e,
        req(adeli_only(), Action::ViewDossier, dossier("D-B"), ctx)
    ));
}

/// The opt-in of docs/policies.md 6.6: without `care-team-whole-patient`
/// and with `opt-in/care-team-per-dossier.toml` among the test cases, the
/// set loads and D-B is refused; the same cases refuse the shipped set
/// (they do tell the two rules apart).
#[test]
fn per_dossier_opt_in_loads_with_its_own_cases_and_refuses_dossier_b() {
    let opt_in = shipped_policies().join("opt-in/care-team-per-dossier.toml");
    let tmp = copy_policies();
    std::fs::remove_file(tmp.path().join("care-team-whole-patient.cedar")).expect("rm policy");
    std::fs::remove_file(tmp.path().join("tests/care-team-whole-patient.toml")).expect("rm cases");
    std::fs::copy(&opt_in, tmp.path().join("tests/care-team-per-dossier.toml")).expect("copy");
    let e = Engine::load(tmp.path()).unwrap_or_else(|err| panic!("{err}"));
    let ctx = on_a(&["CO"]);
    assert!(allowed(
        &e,
        req(doctor(), Action::ViewDossier, dossier("D-A"), ctx.clone())
    ));
    for (action, resource) in [
        (Action::ViewDossier, dossier("D-B")),
        (Action::ViewReport, report("D-B")),
        (Action::ViewImages, series("D-B")),
    ] {
        assert!(!allowed(&e, req(doctor(), action, resource, ctx.clone())));
    }
    // The opt-in's cases against the shipped default: refused.
    let shipped = copy_policies();
    std::fs::copy(
        &opt_in,
        shipped.path().join("tests/care-team-per-dossier.toml"),
    )
    .expect("copy");
    let Err(err) = Engine::load(shipped.path()) else {
        panic!("the opt-in's cases passed on the shipped default, which opens D-B");
    };
    assert!(
        err.to_string()
            .contains("correspondant on A does not see dossier B"),
        "{err}"
    );
}

#[test]
fn unlisted_role_and_no_role_are_denied() {
    let e = engine();
    let d = e.decide(&req(
        doctor(),
        Action::ViewDossier,
        dossier("D-A"),
        on_a(&["infirmier_coordinateur"]),
    ));
    assert!(!d.allowed);
    assert!(d.policy_ids.is_empty(), "default deny: {d:?}");
    assert!(!allowed(
        &e,
        req(doctor(), Action::ViewDossier, dossier("D-A"), on_a(&[]))
    ));
}

#[test]
fn adeli_only_professional_never_matches_a_care_team() {
    let e = engine();
    let ctx = on_a(&["MT"]);
    assert!(!allowed(
        &e,
        req(
            adeli_only(),
            Action::ViewDossier,
            dossier("D-A"),
            ctx.clone()
        )
    ));
    assert!(!allowed(
        &e,
        req(
            adeli_only(),
            Action::SearchPatients,
            Resource::Patient { id: "P1".into() },
            ctx
        )
    ));
    // An empty RPPS counts as none.
    let mut p = doctor();
    p.rpps = Some(String::new());
    assert!(!allowed(
        &e,
        req(p, Action::ViewDossier, dossier("D-A"), on_a(&["MT"]))
    ));
    // ... but a dossier-number grant works for them.
    assert!(allowed(
        &e,
        req(
            adeli_only(),
            Action::ViewDossier,
            dossier("D-A"),
            grant("D-A")
        )
    ));
}

#[test]
fn hopital_manager_sso_and_ecps_follow_the_same_rules() {
    let e = engine();
    for login in [
        LoginMethod::HmSso,
        LoginMethod::PscApp,
        LoginMethod::PscCard,
    ] {
        let mut p = doctor();
        p.login_method = login;
        assert!(allowed(
            &e,
            req(
                p.clone(),
                Action::ViewDossier,
                dossier("D-A"),
                on_a(&["MT"])
            )
        ));
        // The patient's whole history, whatever the login (before issue
        // 11: refused to every login method alike).
        assert!(allowed(
            &e,
            req(p, Action::ViewDossier, dossier("D-B"), on_a(&["MT"]))
        ));
    }
}

// === search ===

#[test]
fn search_lists_a_patient_visible_through_one_dossier() {
    let e = engine();
    let patient = Resource::Patient { id: "P1".into() };
    let d = e.decide(&req(
        doctor(),
        Action::SearchPatients,
        patient.clone(),
        on_a(&["CO"]),
    ));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policy_ids, vec!["care-team"]);
    // No care-team role on any dossier: not listed.
    assert!(!allowed(
        &e,
        req(doctor(), Action::SearchPatients, patient.clone(), on_a(&[]))
    ));
    assert!(!allowed(
        &e,
        req(
            doctor(),
            Action::SearchPatients,
            patient.clone(),
            on_a(&["infirmier"])
        )
    ));
    // A dossier-number grant never lists the patient.
    assert!(!allowed(
        &e,
        req(doctor(), Action::SearchPatients, patient, grant("D-A"))
    ));
}

#[test]
fn search_reaches_every_dossier_of_the_patient() {
    let e = engine();
    let mut ctx = on_a(&["MT"]);
    ctx.care_team.push(DossierRoles {
        dossier_id: "D-C".into(),
        roles: vec!["PR".into()],
    });
    assert!(allowed(
        &e,
        req(doctor(), Action::ViewDossier, dossier("D-A"), ctx.clone())
    ));
    assert!(allowed(
        &e,
        req(doctor(), Action::ViewDossier, dossier("D-C"), ctx.clone())
    ));
    // D-B, where no role is held, is opened by the whole-patient rule only.
    let d = e.decide(&req(doctor(), Action::ViewDossier, dossier("D-B"), ctx));
    assert_eq!(d.policy_ids, vec!["care-team-whole-patient"]);
}

// === dossier number and birth date ===

#[test]
fn open_by_number_needs_the_birth_date() {
    let e = engine();
    let mut ctx = grant("D-A");
    ctx.via = Via::CareTeam;
    assert!(!allowed(
        &e,
        req(
            adeli_only(),
            Action::OpenDossierByNumber,
            dossier("D-A"),
            ctx.clone()
        )
    ));
    ctx.birth_date_verified = true;
    let d = e.decide(&req(
        adeli_only(),
        Action::OpenDossierByNumber,
        dossier("D-A"),
        ctx,
    ));
    assert!(d.allowed);
    assert_eq!(d.policy_ids, vec!["open-dossier-by-number"]);
}

#[test]
fn dossier_grant_opens_that_dossier_alone() {
    let e = engine();
    let ctx = grant("D-A");
    for (action, resource) in [
        (Action::ViewDossier, dossier("D-A")),
        (Action::ViewReport, report("D-A")),
        (Action::ViewImages, series("D-A")),
        (Action::ViewImages, study("D-A")),
    ] {
        let d = e.decide(&req(doctor(), action, resource, ctx.clone()));
        assert!(d.allowed, "{action:?}: {d:?}");
        assert_eq!(d.policy_ids, vec!["dossier-grant"]);
    }
    for (action, resource) in [
        (Action::ViewDossier, dossier("D-B")),
        (Action::ViewReport, report("D-B")),
        (Action::ViewImages, series("D-B")),
        (Action::ViewImages, study("D-B")),
        (
            Action::SearchPatients,
            Resource::Patient { id: "P1".into() },
        ),
    ] {
        assert!(
            !allowed(&e, req(doctor(), action, resource, ctx.clone())),
            "{action:?}"
        );
    }
}

// === DICOM download ===

const RADIOLOGY_GROUPS: &str = r#"
[groups.dicom-download]
rpps = ["10001234567"]
member_groups = ["radiologues"]

[groups.radiologues]
savoir_faire = ["SM44"]
national_ids = ["0751234567"]
"#;

#[test]
fn download_refused_to_care_team_doctor_without_habilitation() {
    let e = engine();
    let d = e.decide(&req(
        doctor(),
        Action::DownloadDicom,
        series("D-A"),
        on_a(&["MT"]),
    ));
    assert!(!d.allowed);
    assert_eq!(d.policy_ids, vec!["dicom-download-habilitation"]);
    // Same for a grant holder.
    assert!(!allowed(
        &e,
        req(doctor(), Action::DownloadDicom, study("D-A"), grant("D-A"))
    ));
}

#[test]
fn download_allowed_with_habilitation_and_view_rights() {
    let (_tmp, e) = engine_with_groups(RADIOLOGY_GROUPS);
    // Named by RPPS.
    let d = e.decide(&req(
        doctor(),
        Action::DownloadDicom,
        series("D-A"),
        on_a(&["MT"]),
    ));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policy_ids, vec!["care-team"]);
    // Through a nested group, by savoir-faire.
    let mut radiologist = doctor();
    radiologist.national_id = "810009999999".into();
    radiologist.rpps = Some("10009999999".into());
    radiologist.savoir_faire = vec!["SM44".into()];
    assert!(allowed(
        &e,
        req(
            radiologist.clone(),
            Action::DownloadDicom,
            study("D-A"),
            on_a(&["PR"])
        )
    ));
    assert_eq!(
        e.snapshot().groups_of(&radiologist),
        vec!["dicom-download", "radiologues"]
    );
    // By national id, through a dossier-number grant.
    assert!(allowed(
        &e,
        req(
            adeli_only(),
            Action::DownloadDicom,
            series("D-A"),
            grant("D-A")
        )
    ));
}

#[test]
fn download_needs_view_rights_even_with_habilitation() {
    let (_tmp, e) = engine_with_groups(RADIOLOGY_GROUPS);
    assert!(!allowed(
        &e,
        req(
            doctor(),
            Action::DownloadDicom,
            series("D-B"),
            on_a(&["MT"])
        )
    ));
    assert!(!allowed(
        &e,
        req(doctor(), Action::DownloadDicom, series("D-B"), grant("D-A"))
    ));
    assert!(!allowed(
        &e,
        req(doctor(), Action::DownloadDicom, series("D-A"), on_a(&[]))
    ));
    // A professional outside the habilitation stays refused.
    let mut other = doctor();
    other.national_id = "810005555555".into();
    other.rpps = Some("10005555555".into());
    other.savoir_faire = vec![];
    assert!(!allowed(
        &e,
        req(other, Action::DownloadDicom, series("D-A"), on_a(&["MT"]))
    ));
}

// === deny by default ===

#[test]
fn invalid_requests_are_denied_with_an_error() {
    let e = engine();
    let mut p = doctor();
    p.national_id = String::new();
    let d = e.decide(&req(p, Action::ViewDossier, dossier("D-A"), on_a(&["MT"])));
    assert!(!d.allowed);
    assert_eq!(d.errors.len(), 1);
    let d = e.decide(&req(
        doctor(),
        Action::ViewDossier,
        dossier(""),
        on_a(&["MT"]),
    ));
    assert!(!d.allowed && !d.errors.is_empty());
    // A resource type the action does not apply to.
    let d = e.decide(&req(
        doctor(),
        Action::ViewReport,
        dossier("D-A"),
        on_a(&["MT"]),
    ));
    assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
}

#[test]
fn an_evaluation_error_is_a_deny_even_when_a_permit_matches() {
    let tmp = copy_policies();
    // The shipped test cases would (rightly) fail with this forbid.
    std::fs::remove_dir_all(tmp.path().join("tests")).expect("rm tests");
    // A forbid that errors at run time (integer overflow): Cedar skips it,
    // so the permit alone would allow. The engine must deny.
    std::fs::write(
        tmp.path().join("overflow.cedar"),
        "@id(\"overflowing-forbid\")\nforbid (principal, action, resource)\nwhen { context.now + 9223372036854775807 > 0 };\n",
    )
    .expect("write");
    let e = Engine::load(tmp.path()).expect("load");
    let d = e.decide(&req(
        doctor(),
        Action::ViewDossier,
        dossier("D-A"),
        on_a(&["MT"]),
    ));
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.errors.len(), 1, "{d:?}");
}

// === loading ===

#[test]
fn groups_file_errors_refuse_the_set() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("groups.toml"),
        "[groups.a]\nmember_groups = [\"b\"]\n[groups.b]\nmember_groups = [\"a\"]\n",
    )
    .expect("write");
    let err = Engine::load(tmp.path()).err().expect("cycle refused");
    assert!(
        err.problems.iter().any(|p| p.message.contains("cycle")),
        "{err}"
    );

    std::fs::write(
        tmp.path().join("groups.toml"),
        "[groups.a]\nmember_groups = [\"nope\"]\n",
    )
    .expect("write");
    let err = Engine::load(tmp.path())
        .err()
        .expect("unknown group refused");
    let p = &err.problems[0];
    assert_eq!((p.line, p.column), (Some(2), Some(18)), "{p}");
}

#[test]
fn viewers_folder_and_unknown_files_are_ignored() {
    let tmp = copy_policies();
    std::fs::create_dir_all(tmp.path().join("viewers")).expect("mkdir");
    std::fs::write(tmp.path().join("viewers/orthanc.toml"), "not = [cedar").expect("write");
    std::fs::write(tmp.path().join("viewers/weird.cedar"), "garbage").expect("write");
    std::fs::write(tmp.path().join("README.txt"), "notes").expect("write");
    std::fs::write(tmp.path().join(".care-team.cedar.swp"), "garbage").expect("write");
    Engine::load(tmp.path()).expect("still loads");
}

// === reload ===

#[test]
fn bad_set_is_refused_and_the_old_one_stays() {
    let tmp = copy_policies();
    let e = Engine::load(tmp.path()).expect("load");
    let r = req(doctor(), Action::ViewDossier, dossier("D-A"), on_a(&["MT"]));
    assert!(allowed(&e, r.clone()));

    // A syntax error.
    std::fs::write(
        tmp.path().join("care-team.cedar"),
        "permit (principal, action, resource) when {",
    )
    .expect("write");
    let outcome = e.reload();
    match &outcome {
        ReloadOutcome::Rejected {
            generation,
            problems,
        } => {
            assert_eq!(*generation, 1);
            assert!(problems[0].file.ends_with("care-team.cedar"));
            assert!(problems[0].line.is_some());
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(e.generation(), 1);
    assert!(allowed(&e, r.clone()), "the last good set stays in force");

    // Valid Cedar but a failing test case: refused too.
    let shipped =
        std::fs::read_to_string(shipped_policies().join("care-team.cedar")).expect("read");
    std::fs::write(
        tmp.path().join("care-team.cedar"),
        shipped.replace("principal has rpps &&", "true &&"),
    )
    .expect("write");
    let outcome = e.reload();
    match &outcome {
        ReloadOutcome::Rejected { problems, .. } => assert!(
            problems.iter().any(|p| p.message.contains("ADELI-only")),
            "{problems:?}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(e.generation(), 1);
    assert_eq!(e.reload_stats().rejected, 2);
}

#[test]
fn good_set_replaces_the_old_one_atomically() {
    let tmp = copy_policies();
    let e = Engine::load(tmp.path()).expect("load");
    let before = e.snapshot();
    let r = req(
        doctor(),
        Action::DownloadDicom,
        series("D-A"),
        on_a(&["MT"]),
    );
    assert!(!allowed(&e, r.clone()));

    assert_eq!(e.reload(), ReloadOutcome::Unchanged { generation: 1 });

    // Grant the habilitation; the shipped test cases expect nobody to hold
    // it, and this RPPS is theirs, so use another professional.
    std::fs::write(
        tmp.path().join("groups.toml"),
        "[groups.dicom-download]\nrpps = [\"10007777777\"]\n\
         [groups.revoked]\nnational_ids = [\"8-policy-test-only\"]\n",
    )
    .expect("write");
    let outcome = e.reload();
    assert!(
        matches!(
            outcome,
            ReloadOutcome::Reloaded {
                generation: 2,
                policies: 6,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(e.generation(), 2);
    let mut p = doctor();
    p.rpps = Some("10007777777".into());
    p.national_id = "810007777777".into();
    let r2 = AccessRequest {
        professional: p,
        ..r.clone()
    };
    assert!(allowed(&e, r2.clone()));
    // A snapshot taken before keeps deciding with the old set.
    assert_eq!(before.generation(), 1);
    assert!(!before.decide(&r2).allowed);
    assert_eq!(e.reload_stats().reloaded, 1);
    assert_eq!(e.reload_stats().unchanged, 1);
}

#[test]
fn watch_reloads_on_change_and_reports() {
    let tmp = copy_policies();
    let e = Engine::load(tmp.path()).expect("load");
    let (tx, rx) = mpsc::channel();
    let watcher = e
        .watch(Duration::from_millis(100), move |o| {
            let _ = tx.send(o);
        })
        .expect("watch");

    // A bad file: rejected, reported.
    std::fs::write(tmp.path().join("extra.cedar"), "permit (").expect("write");
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an outcome");
    assert!(!outcome.is_ok(), "{outcome:?}");
    assert_eq!(e.generation(), 1);

    // Fixed: reloaded.
    std::fs::write(
        tmp.path().join("extra.cedar"),
        "@id(\"extra\")\nforbid (principal, action == EspacePs::Action::\"open_dossier_by_number\", resource)\nwhen { principal.login_method == EspacePs::LoginMethod::\"hm_sso\" };\n",
    )
    .expect("write");
    let outcome = loop {
        let o = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an outcome");
        if o.is_ok() {
            break o;
        }
    };
    assert!(
        matches!(outcome, ReloadOutcome::Reloaded { .. }),
        "{outcome:?}"
    );
    assert!(e.generation() >= 2);
    assert!(e.snapshot().policy_ids().contains(&"extra"));

    // Changes under viewers/ do not trigger a reload.
    let gen = e.generation();
    std::fs::create_dir_all(tmp.path().join("viewers")).expect("mkdir");
    std::fs::write(tmp.path().join("viewers/orthanc.toml"), "x = 1").expect("write");
    assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
    assert_eq!(e.generation(), gen);
    drop(watcher);
}

#[test]
fn one_group_membership_agrees_with_the_list_of_groups() {
    // `in_group` is asked on every request (the revoked group): it must say
    // exactly what `groups_of` lists, through nesting and for non-members.
    // Valid RPPS check digits here (the identity model checks them).
    let (_tmp, e) = engine_with_groups(
        r#"
[groups.dicom-download]
rpps = ["10001234565"]
member_groups = ["radiologues"]

[groups.radiologues]
savoir_faire = ["SM44"]
national_ids = ["0751234567"]
"#,
    );
    let snapshot = e.snapshot();
    let who = |id: &str, savoir_faire: &[&str]| {
        let national_id = espace_ps_identity::NationalId::parse(id).expect("national id");
        let mut p = espace_ps_identity::Professional::new(
            national_id,
            "Test".into(),
            "Test".into(),
            LoginMethod::PscCard,
        );
        p.professions = vec!["10".into()];
        p.savoir_faire = savoir_faire.iter().map(|s| s.to_string()).collect();
        p
    };
    let people = [
        who("810001234565", &[]),       // dicom-download by RPPS
        who("810009999995", &["SM44"]), // radiologues by savoir-faire, nested
        who("0751234567", &[]),         // radiologues by national id, nested
        who("810007777773", &["SM54"]), // in no group
    ];
    let mut memberships = 0;
    for p in &people {
        let listed = snapshot.groups_of(&Professional::from(p));
        for group in ["dicom-download", "radiologues", "revoked", "no-such-group"] {
            assert_eq!(
                snapshot.in_group(group, p),
                listed.contains(&group),
                "{group} for {}",
                p.national_id.as_str()
            );
            memberships += usize::from(listed.contains(&group));
        }
    }
    // Both answers "false" everywhere would agree too: they must not.
    assert_eq!(memberships, 5);
}
