//! Per-request cost of the viewer route table on the three requests of the
//! viewer benchmark (`loadtest/viewer/run.sh`): canonicalize, classify and
//! the canonical target that is forwarded, with the headers wrk sends.
//!
//! Run: `cargo bench -p espace-ps-access --bench viewer`

use divan::{black_box, Bencher};
use espace_ps_access::viewer::{Classification, RouteTable};

/// The allocator of the `espace-ps` binary, so the figures are those of the
/// proxy.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

fn table() -> RouteTable {
    RouteTable::parse(
        "orthanc.toml",
        include_str!("../../../policies/viewers/orthanc.toml"),
    )
    .expect("the shipped route table is valid")
}

const ORTHANC_ID: &str = "6e2c0ec2-5d99c8ca-0c1c7a29-8f6e1a3b-22d4c0b1";
const STUDY: &str = "1.2.250.1.59.453.859.1.20240212.1234";
const SERIES: &str = "1.2.250.1.59.453.859.1.20240212.1234.2";
const INSTANCE: &str = "1.2.250.1.59.453.859.1.20240212.1234.2.1";

/// The three requests of the viewer benchmark.
fn targets() -> [(&'static str, String); 3] {
    [
        (
            "frame",
            format!("/web-viewer/instances/jpeg95-{ORTHANC_ID}_0"),
        ),
        (
            "rendered",
            format!("/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/rendered"),
        ),
        ("preview", format!("/instances/{ORTHANC_ID}/preview")),
    ]
}

/// What wrk sends (and espace-ps passes on to the table).
fn headers() -> Vec<(String, String)> {
    vec![
        ("host".into(), "127.0.0.1:8080".into()),
        (
            "cookie".into(),
            "espace-session=Qm9uam91ciwgY2VjaSBlc3QgdW4gaWQgZGUgc2Vzc2lvbg".into(),
        ),
    ]
}

/// Canonicalize, classify and build the forwarded target: what the route
/// table costs a viewer request.
#[divan::bench(args = ["frame", "rendered", "preview"])]
fn canonicalize_classify_target(b: Bencher, which: &str) {
    let t = table();
    let target = targets()
        .into_iter()
        .find(|(n, _)| *n == which)
        .map(|(_, t)| t)
        .expect("known request");
    let h = headers();
    let (req, class) = t.classify_raw("GET", &target, &h).expect("canonical");
    assert!(
        matches!(class, Classification::Candidate(_)),
        "{which}: {class:?}"
    );
    assert_eq!(req.target(), target);
    b.bench(|| {
        let req = t
            .canonicalize("GET", black_box(&target), black_box(&h))
            .expect("canonical");
        let class = t.classify(&req);
        (req.target(), class)
    });
}

/// Canonicalization alone.
#[divan::bench(args = ["frame", "rendered", "preview"])]
fn canonicalize_only(b: Bencher, which: &str) {
    let t = table();
    let target = targets()
        .into_iter()
        .find(|(n, _)| *n == which)
        .map(|(_, t)| t)
        .expect("known request");
    let h = headers();
    b.bench(|| t.canonicalize("GET", black_box(&target), black_box(&h)));
}

/// Classification alone (of a canonical request).
#[divan::bench(args = ["frame", "rendered", "preview"])]
fn classify_only(b: Bencher, which: &str) {
    let t = table();
    let target = targets()
        .into_iter()
        .find(|(n, _)| *n == which)
        .map(|(_, t)| t)
        .expect("known request");
    let req = t
        .canonicalize("GET", &target, &headers())
        .expect("canonical");
    b.bench(|| t.classify(black_box(&req)));
}
