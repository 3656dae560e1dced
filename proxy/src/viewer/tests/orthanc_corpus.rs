//! The crafted requests of `viewer_bypass_corpus_against_orthanc`
//! (`tests/it/viewer_corpus.rs`, one copy for both tests), replayed through
//! the gate over the fake archive: `{S} {SE} {I} {sid} {seid} {iid} {pid}`
//! are SCANNER's (on Élise's care team; its patient also has FEMUR, which
//! she sees through the patient's whole history: `{FS} {fiid}`), the
//! `X…`/`x…` placeholders OTHER's.
//!
//! | `Exp`    | Élise (care team, not habilitated)        | Inès (outsider) |
//! |----------|-------------------------------------------|-----------------|
//! | `Deny`   | refused (any refusal)                     | refused         |
//! | `View`   | forwarded, no DICOM may flow back         | refused         |
//! | `NoLeak` | refused, or forwarded with no DICOM       | refused         |
//! | `Shell`  | forwarded                                 | forwarded       |

use super::{fill, Got, World, ELISE, FEMUR, INES, OTHER, SCANNER};

include!("../../../tests/it/viewer_corpus.rs");

/// The corpus's placeholders, with the fake archive's ids.
fn fill_all(t: &str) -> String {
    let x = t
        .replace("{FS}", FEMUR.uid)
        .replace("{fiid}", FEMUR.iid)
        .replace("{XS}", OTHER.uid)
        .replace("{XSE}", OTHER.series_uid)
        .replace("{XI}", OTHER.instance_uid)
        .replace("{xsid}", OTHER.sid)
        .replace("{xseid}", OTHER.seid)
        .replace("{xiid}", OTHER.iid)
        .replace("{xpid}", OTHER.pid)
        .replace("{xpatient}", "SCANAP-JB")
        .replace("{XIIDU}", &OTHER.iid.to_ascii_uppercase())
        .replace("{IIDU}", &SCANNER.iid.to_ascii_uppercase())
        .replace("{OADDR}", "127.0.0.1:8042")
        .replace("{PADDR}", "127.0.0.1:8443")
        // The raw bytes C0 AE, as a proxy that decodes the target lossily
        // would hand them over.
        .replace("{C0AE}", "\u{FFFD}");
    fill(&x, &SCANNER)
}

#[tokio::test]
async fn gate_replays_the_orthanc_bypass_corpus() {
    let w = World::new(&[]);
    let mut failures = Vec::new();
    let mut decisions = 0;
    for (exp, method, raw, headers, _body) in CORPUS {
        let target = fill_all(raw);
        let headers: Vec<(String, String)> = headers
            .split('|')
            .filter(|h| !h.is_empty())
            .map(|h| {
                let (k, v) = h.split_once(':').unwrap();
                (k.trim().to_owned(), fill_all(v.trim()))
            })
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (who, exp) in [
            (ELISE, *exp),
            (INES, if *exp == Shell { Shell } else { Deny }),
        ] {
            let got = Got::of(&w.ask(&who, method, &target, &headers).await);
            decisions += 1;
            let right = match (exp, &got) {
                (Deny, got) => !got.is_forward(),
                (View, Got::Forward { may_download, .. }) => !may_download,
                (View, Got::Refuse(_)) => false,
                (NoLeak, Got::Forward { may_download, .. }) => !may_download,
                (NoLeak, Got::Refuse(_)) => true,
                (Shell, got) => got.is_forward(),
            };
            if !right {
                failures.push(format!(
                    "{}: expected {exp:?}: {method} {target} {headers:?} → {got:?}",
                    who.name
                ));
            }
        }
    }
    assert!(decisions >= 300, "corpus too small: {decisions}");
    assert!(
        failures.is_empty(),
        "{} of {decisions} decisions failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Found by these tests (it predates the gate): Orthanc's HTTP server takes
/// `GET …?_method=DELETE` (or `PUT`, `POST`) as that method ("Ruby on
/// Rails' approach", `ExtractMethod` in Orthanc's `HttpServer.cpp`, when
/// no `X-HTTP-Method-Override` header is sent). The canonicalization
/// rejected the override HEADERS (`METHOD_OVERRIDE_HEADERS`) but not this
/// query key, so a professional who may view a study had
/// `GET /studies/{id}?_method=DELETE` forwarded as a view (class R), and
/// Orthanc deleted the study. The query key is now refused
/// (`METHOD_OVERRIDE_QUERY_KEYS`).
#[tokio::test]
async fn gate_refuses_a_method_override_in_the_query() {
    let w = World::new(&[]);
    for target in [
        "/studies/{sid}?_method=DELETE",
        "/instances/{iid}?_method=delete",
        "/series/{seid}?_method=DELETE",
        "/instances/{iid}/preview?_method=DELETE",
        "/instances/{iid}/preview?_METHOD=PUT",
    ] {
        let target = fill_all(target);
        let got = Got::of(&w.ask(&ELISE, "GET", &target, &[]).await);
        assert!(!got.is_forward(), "{target}: {got:?}");
    }
}
