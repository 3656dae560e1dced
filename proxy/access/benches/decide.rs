//! Policy decision latency with the shipped policy set: one `decide` call,
//! Cedar entity and context building included.
//!
//! Run: `cargo bench -p espace-ps-access --bench decide`

use std::path::Path;

use divan::{black_box, Bencher};
use espace_ps_access::{
    AccessRequest, Action, DossierRoles, Engine, LoginMethod, Professional, RequestContext,
    Resource, Via,
};

/// The allocator of the `espace-ps` binary, so the figures are those of the
/// proxy.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

fn engine() -> Engine {
    Engine::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies"))
        .expect("shipped policies load")
}

fn doctor() -> Professional {
    Professional {
        national_id: "810001234567".into(),
        rpps: Some("10001234567".into()),
        professions: vec!["10".into()],
        savoir_faire: vec!["SM54".into(), "SM26".into()],
        login_method: LoginMethod::PscCard,
    }
}

/// A patient with five dossiers; the doctor is correspondant on one.
fn care_team() -> Vec<DossierRoles> {
    (0..5)
        .map(|i| DossierRoles {
            dossier_id: format!("2024{i:06}"),
            roles: if i == 2 {
                vec!["CO".into(), "PR".into()]
            } else {
                vec![]
            },
        })
        .collect()
}

fn request(action: Action, resource: Resource, via: Via) -> AccessRequest {
    AccessRequest {
        professional: doctor(),
        action,
        resource,
        context: RequestContext {
            via,
            care_team: care_team(),
            birth_date_verified: false,
            now: 1_700_000_000,
        },
    }
}

fn series() -> Resource {
    Resource::Series {
        uid: "1.2.250.1.59.453.859.1.20240212.1234.2".into(),
        study_uid: "1.2.250.1.59.453.859.1.20240212.1234".into(),
        dossier_id: "2024000002".into(),
    }
}

/// View images of a series on the doctor's dossier (allowed).
#[divan::bench]
fn view_images_allowed(b: Bencher) {
    let e = engine();
    let r = request(Action::ViewImages, series(), Via::CareTeam);
    assert!(e.decide(&r).allowed);
    b.bench(|| e.decide(black_box(&r)));
}

/// Download DICOM without the habilitation (denied by a forbid).
#[divan::bench]
fn download_denied(b: Bencher) {
    let e = engine();
    let r = request(Action::DownloadDicom, series(), Via::CareTeam);
    assert!(!e.decide(&r).allowed);
    b.bench(|| e.decide(black_box(&r)));
}

/// Name search: is this patient (five dossiers) listed?
#[divan::bench]
fn search_patient_listed(b: Bencher) {
    let e = engine();
    let r = request(
        Action::SearchPatients,
        Resource::Patient {
            id: "IPP00012345".into(),
        },
        Via::CareTeam,
    );
    assert!(e.decide(&r).allowed);
    b.bench(|| e.decide(black_box(&r)));
}

/// A sibling dossier through a dossier-number grant (denied, no match).
#[divan::bench]
fn grant_sibling_denied(b: Bencher) {
    let e = engine();
    let r = request(
        Action::ViewDossier,
        Resource::Dossier {
            id: "2024000003".into(),
            patient_id: "IPP00012345".into(),
        },
        Via::Grant {
            dossier_id: "2024000002".into(),
        },
    );
    assert!(!e.decide(&r).allowed);
    b.bench(|| e.decide(black_box(&r)));
}

/// View images as a professional seen for the first time (principal entity
/// not cached yet): a new professional on every iteration.
#[divan::bench]
fn view_images_new_professional(b: Bencher) {
    let e = engine();
    let counter = std::sync::atomic::AtomicU64::new(0);
    b.with_inputs(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut r = request(Action::ViewImages, series(), Via::CareTeam);
        r.professional.national_id = format!("8{n:011}");
        r.professional.rpps = Some(format!("{n:011}"));
        r
    })
    .bench_refs(|r| e.decide(r));
}
