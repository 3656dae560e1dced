//! The viewer guard with the standard DICOMweb resolver (route table
//! `policies/viewers/ohif.toml`, `[resolver] kind = "dicomweb"`): Orthanc's
//! DICOMweb plugin is the archive, behind a relay that closes every route
//! of Orthanc's own REST API (only `/dicom-web/…` reaches Orthanc), so
//! espace-ps can only learn the study of a series or an instance with
//! QIDO-RS. The matrix and the bypass corpus run again there, plus a
//! DICOMweb corpus of its own whose positive controls must succeed.

use std::sync::{Arc, Mutex};

use super::*;

/// The relay in front of Orthanc: `/dicom-web/…` is relayed (method,
/// target, headers, body), anything else answered 404; every target it was
/// asked is logged, and logged again once Orthanc's answer is read.
async fn start_dicomweb_archive(
    orthanc: String,
) -> (String, tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let (addr, task) = start_fake_upstream(move |req: FakeRequest| {
        let client = client.clone();
        let orthanc = orthanc.clone();
        seen.lock().unwrap().push(req.target.clone());
        let seen = seen.clone();
        async move {
            if !req.target.starts_with("/dicom-web/") {
                return FakeResponse {
                    status: 404,
                    headers: vec!["content-type: text/plain".into()],
                    body: b"closed: DICOMweb only".to_vec(),
                };
            }
            let mut r = client.request(
                Method::from_bytes(req.method.as_bytes()).unwrap(),
                format!("{orthanc}{}", req.target),
            );
            for line in &req.headers {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let k = k.trim().to_ascii_lowercase();
                if !matches!(
                    k.as_str(),
                    "host" | "content-length" | "connection" | "transfer-encoding"
                ) {
                    r = r.header(k, v.trim());
                }
            }
            let r = r.body(req.body).send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(|ct| format!("content-type: {ct}"));
            let body = r.bytes().await.unwrap().to_vec();
            seen.lock().unwrap().push(req.target.clone());
            FakeResponse {
                status,
                headers: ct.into_iter().collect(),
                body,
            }
        }
    })
    .await;
    (addr, task, log)
}

/// A proxy with the OHIF route table in front of the relay.
async fn start_dicomweb_proxy(
    fx: &Fixture,
    archive: &str,
    policies_dir: Option<std::path::PathBuf>,
) -> (Proxy, DevIdpServer) {
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let (idp, issuer) = start_dev_idp(&portal, SECRET).await;
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(format!(
            "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\ndev_idp = true\n"
        )),
        upstream: Some(archive.to_owned()),
        viewer: Some("ohif".into()),
        records_url: Some(format!("{}?mode=ro", fx.records_url)),
        policies_dir,
        portal: Some(PORTAL.into()),
        ..Default::default()
    })
    .await;
    (proxy, idp)
}

/// What the archive was asked: QIDO-RS lookups of the kinds given, and
/// nothing outside DICOMweb.
fn assert_archive_asked(log: &Mutex<Vec<String>>, lookups: &[&str]) {
    let log = log.lock().unwrap();
    let outside: Vec<&String> = log
        .iter()
        .filter(|t| !t.starts_with("/dicom-web/"))
        .collect();
    assert!(
        outside.is_empty(),
        "the archive was asked outside DICOMweb: {outside:?}"
    );
    for l in lookups {
        assert!(
            log.iter()
                .any(|t| t.starts_with(l) && t.contains("includefield=0020000D")),
            "no QIDO-RS lookup {l}… in {log:#?}"
        );
    }
}

#[tokio::test]
async fn viewer_matrix_against_the_dicomweb_resolver() {
    let fx = fixture().await;
    let (archive, _relay, log) = start_dicomweb_archive(fx.orthanc.clone()).await;
    let hab_dir = habilitated_policies(fx.dir.path());
    let (plain, _idp1) = start_dicomweb_proxy(&fx, &archive, None).await;
    let (hab, _idp2) = start_dicomweb_proxy(&fx, &archive, Some(hab_dir)).await;
    run_matrix(&fx, &plain, &hab, Archive::DicomWebOnly).await;
    assert_archive_asked(&log, &["/dicom-web/instances?SOPInstanceUID="]);
}

/// The DICOMweb corpus: what OHIF asks for a study (positive controls, all
/// of which must succeed for Élise), and its near misses. `{SE2}` is the
/// second series of the study Élise may view (a sibling series); `{XS}
/// {XSE} {XI}` a study she may not view (SCANAP Jean-Baptiste's: since
/// issue 11 FEMUR, of her own patient, is hers to view, so the near misses
/// that named it now name his); `{FS} {FSE} {FI}` the FEMUR study of the
/// same patient, which she views through the patient's whole history but
/// may not download.
const DICOMWEB_CORPUS: &[(Exp, &str, &str, &str, &str)] = &[
    // --- positive controls: OHIF opening an allowed study
    (
        View,
        "GET",
        "/dicom-web/studies?StudyInstanceUID={S}&includefield=00081030%2C00080060",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series",
        "Accept: application/dicom+json",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/metadata",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE2}/metadata",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE2}/instances",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}/metadata",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}/frames/1",
        "Accept: multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}/rendered",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE2}",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/instances?SOPInstanceUID={I}",
        "",
        "",
    ),
    // --- mismatched UIDs in one path: the innermost UID decides, asked of the archive
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{XSE}/metadata",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{XSE}/instances",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{XI}/metadata",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{XI}/frames/1",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE2}/instances/{XI}/rendered",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{XSE}/instances/{XI}/metadata",
        "",
        "",
    ),
    (
        NoLeak,
        "GET",
        "/dicom-web/studies/{XS}/series/{SE}/metadata",
        "",
        "",
    ),
    (
        NoLeak,
        "GET",
        "/dicom-web/studies/{XS}/series/{SE}/instances/{I}/frames/1",
        "",
        "",
    ),
    // --- UID lists, comma and backslash: every element decided, or refused
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE},{XSE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={XSE},{SE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}%2C{XSE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}\\{XSE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}%5C{XSE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}%5C{SE2}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/instances?SOPInstanceUID={I},{XI}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/instances?SOPInstanceUID={I}%5C{XI}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies?StudyInstanceUID={S},{XS}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies?StudyInstanceUID={S}%5C{XS}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}&SeriesInstanceUID={XSE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}&0020000E={XSE}",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}*",
        "",
        "",
    ),
    (Deny, "GET", "/dicom-web/instances?SOPInstanceUID=*", "", ""),
    (
        NoLeak,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE},{SE2}",
        "",
        "",
    ),
    (
        NoLeak,
        "GET",
        "/dicom-web/studies/{S}/series?SeriesInstanceUID={XSE}",
        "",
        "",
    ),
    // --- includefield
    (
        View,
        "GET",
        "/dicom-web/studies/{S}/series?includefield=all",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies?StudyInstanceUID={S}&includefield=all",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={SE}&includefield=all",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={XSE}&includefield=all",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{XS}/series?includefield=all",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/series?includefield=0020000D",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies?includefield=all&PatientID={xpatient}",
        "",
        "",
    ),
    (
        NoLeak,
        "GET",
        "/dicom-web/studies?StudyInstanceUID={S}&includefield=00201206",
        "",
        "",
    ),
    // --- bulk data and retrieval: downloads (D), refused without the habilitation
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}/bulk/7fe00010",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}/bulkdata/7fe00010",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{XS}/series/{XSE}/instances/{XI}/bulk/7fe00010",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}/frames/1",
        "Accept: application/octet-stream",
        "",
    ),
    (Deny, "GET", "/dicom-web/studies/{S}/series/{SE}", "", ""),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/{I}",
        "Accept: multipart/related; type=\"application/dicom\"",
        "",
    ),
    // --- the sibling study of the same patient (FEMUR, a dossier where
    // Élise holds no role): viewed through the patient's whole history
    // since issue 11 (before: refused), never downloaded
    (
        Deny,
        "GET",
        "/dicom-web/studies/{FS}",
        "Accept: multipart/related; type=\"application/dicom\"",
        "",
    ),
    (View, "GET", "/dicom-web/studies/{FS}/metadata", "", ""),
    (View, "GET", "/dicom-web/studies/{FS}/series", "", ""),
    (
        View,
        "GET",
        "/dicom-web/studies/{FS}/series/{FSE}/metadata",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/studies/{FS}/series/{FSE}/instances/{FI}/metadata",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/series?SeriesInstanceUID={FSE}",
        "",
        "",
    ),
    (
        View,
        "GET",
        "/dicom-web/instances?SOPInstanceUID={FI}",
        "",
        "",
    ),
    // --- UIDs the archive does not know: refused, not forwarded
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/1.2.3.4.5.6.7.8.9/metadata",
        "",
        "",
    ),
    (
        Deny,
        "GET",
        "/dicom-web/studies/{S}/series/{SE}/instances/1.2.3.4.5.6.7.8.9/frames/1",
        "",
        "",
    ),
    // --- Orthanc's REST API and WADO-URI: not in the table
    (Deny, "GET", "/instances/{iid}/preview", "", ""),
    (Deny, "GET", "/studies/{sid}", "", ""),
    (Deny, "POST", "/tools/lookup", "", "{S}"),
    (Deny, "GET", "/wado?requestType=WADO&objectUID={I}", "", ""),
];

#[tokio::test]
async fn viewer_corpora_against_the_dicomweb_resolver() {
    let fx = fixture().await;
    let (archive, _relay, log) = start_dicomweb_archive(fx.orthanc.clone()).await;
    let (proxy, _idp) = start_dicomweb_proxy(&fx, &archive, None).await;

    // The shared bypass corpus: everything outside DICOMweb refused, its
    // DICOMweb positive controls (frames, metadata, QIDO) still served.
    let viewed = run_corpus(&fx, &proxy, CORPUS, Archive::DicomWebOnly, 150).await;
    assert!(viewed >= 5, "{viewed} positive controls served");

    // The DICOMweb corpus of its own.
    let scanner = fx.study(SCANAP_DOSSIER_SCANNER);
    let sibling = &scanner
        .up
        .series
        .get(1)
        .expect("a CT study has two series")
        .0;
    let corpus: Vec<(Exp, String, String, String, String)> = DICOMWEB_CORPUS
        .iter()
        .map(|(e, m, t, h, b)| {
            let f = |s: &str| s.replace("{SE2}", sibling);
            (*e, f(m), f(t), f(h), f(b))
        })
        .collect();
    let corpus: Vec<(Exp, &str, &str, &str, &str)> = corpus
        .iter()
        .map(|(e, m, t, h, b)| (*e, m.as_str(), t.as_str(), h.as_str(), b.as_str()))
        .collect();
    let controls = DICOMWEB_CORPUS.iter().filter(|e| e.0 == View).count();
    let viewed = run_corpus(&fx, &proxy, &corpus, Archive::DicomWebOnly, 100).await;
    // Every positive control was served (a wholesale refusal cannot pass).
    assert_eq!(viewed, controls, "positive controls served");
    assert_archive_asked(
        &log,
        &[
            "/dicom-web/series?SeriesInstanceUID=",
            "/dicom-web/instances?SOPInstanceUID=",
        ],
    );

    // "Afficher les images": the study page the table names, once the
    // archive confirms it has the study.
    let elise = login(&proxy, ELISE).await;
    let r = elise
        .client
        .get(format!("{}/portail/images/{}", proxy.base, scanner.uid))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/visionneuse/viewer?StudyInstanceUIDs={}", scanner.uid)
    );
}

/// OHIF opens a series: the study's series, a series' metadata, then a
/// frame of each of its instances at once. The series query's answer names
/// each series' study and the metadata's each instance's, so the metadata
/// and the frames are served without asking the archive anything more; a
/// frame asked before its series' metadata is looked up, and its siblings
/// asked in one query; another patient's instance paired with the opened
/// series is refused.
#[tokio::test]
async fn an_opened_series_resolves_its_instances_without_a_lookup_each() {
    let fx = fixture().await;
    let (archive, _relay, log) = start_dicomweb_archive(fx.orthanc.clone()).await;
    let (proxy, _idp) = start_dicomweb_proxy(&fx, &archive, None).await;
    let scanner = fx.study(SCANAP_DOSSIER_SCANNER);
    let series = &scanner.up.series[0].0;
    let of_series = |s: &str| -> Vec<String> {
        scanner
            .up
            .instances
            .iter()
            .filter(|i| i.series_instance_uid == s)
            .map(|i| i.sop_instance_uid.clone())
            .collect()
    };
    let instances = of_series(series);
    assert!(!instances.is_empty());
    let elise = login(&proxy, ELISE).await;
    let get = |path: String, accept: &'static str| {
        elise
            .client
            .get(format!("{}{path}", proxy.base))
            .header("accept", accept)
            .send()
    };
    let frame_accept = "multipart/related; type=application/octet-stream; transfer-syntax=*";
    let study = &scanner.uid;

    // OHIF asks the study's series first, then a series' metadata: the
    // series query's answer names the series' study, so the metadata needs
    // no lookup of its series either.
    let r = get(
        format!("/dicom-web/studies/{study}/series"),
        "application/dicom+json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!r.bytes().await.unwrap().is_empty());
    let r = get(
        format!("/dicom-web/studies/{study}/series/{series}/metadata"),
        "application/dicom+json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The whole answer read: the proxy learnt from it before its end left.
    let metadata = r.bytes().await.unwrap();
    assert!(!metadata.is_empty());
    let series_lookup = format!("/dicom-web/series?SeriesInstanceUID={series}&");
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&series_lookup)),
        "the series looked up although the study's series query named its study"
    );

    let lookup = |sop: &str| {
        let t = format!("/dicom-web/instances?SOPInstanceUID={sop}&");
        log.lock().unwrap().iter().any(|l| l.starts_with(&t))
    };
    let series_queries = |s: &str| {
        let t = format!("/dicom-web/instances?SeriesInstanceUID={s}&");
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&t))
            .count()
    };
    // Every frame of the series forwarded at once: the metadata named
    // their study, no lookup and no series query asked of the archive.
    for sop in &instances {
        let r = get(
            format!("/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1"),
            frame_accept,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "frame of {sop}");
        assert!(!lookup(sop), "{sop} looked up on its own");
    }
    assert_eq!(series_queries(series), 0, "the metadata was enough");

    // A frame asked before its series' metadata (the study's other
    // series): looked up, and its siblings asked in one query in the
    // background; wait until the archive answered it (the relay logs a
    // target again once answered), then they are known without a lookup.
    let (other_series, _) = &scanner.up.series[1];
    let siblings = of_series(other_series);
    assert!(siblings.len() >= 2, "two instances in the other series");
    let r = get(
        format!(
            "/dicom-web/studies/{study}/series/{other_series}/instances/{}/frames/1",
            siblings[0]
        ),
        frame_accept,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        lookup(&siblings[0]),
        "an instance nothing listed is looked up"
    );
    for _ in 0..100 {
        if series_queries(other_series) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        series_queries(other_series) >= 2,
        "the looked-up instance's series asked of the archive"
    );
    for sop in &siblings[1..] {
        let r = get(
            format!("/dicom-web/studies/{study}/series/{other_series}/instances/{sop}/frames/1"),
            frame_accept,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "frame of {sop}");
        assert!(!lookup(sop), "{sop} looked up on its own");
    }

    // Another patient's instance under the opened series' path: its own
    // study decides (looked up, refused).
    let foreign = &fx.other.up.instances[0].sop_instance_uid;
    let r = get(
        format!("/dicom-web/studies/{study}/series/{series}/instances/{foreign}/frames/1"),
        frame_accept,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// OHIF's static site, served by espace-ps from `[upstream] ohif_dir` (a
/// stand-in directory here; the real @ohif/app in the browser test
/// `ohif.test.mjs`): only with a session; its routes answer index.html with
/// the portal's banner and the table's CSP; WASM as application/wasm, hashed
/// bundles cacheable; nothing outside the directory.
#[tokio::test]
async fn ohif_site_is_served_behind_the_session_with_its_policy() {
    let fx = fixture().await;
    let site = fx.dir.path().join("ohif-site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<!doctype html><html><head><title>OHIF Viewer</title></head><body><div id=root></div></body></html>",
    )
    .unwrap();
    std::fs::write(site.join("0ddf166f7a343eda.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(site.join("app-config.js"), "window.config = {};").unwrap();
    std::fs::write(fx.dir.path().join("secret.txt"), "outside").unwrap();
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let (_idp, issuer) = start_dev_idp(&portal, SECRET).await;
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(format!(
            "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\ndev_idp = true\n"
        )),
        upstream: Some("127.0.0.1:9".into()),
        viewer: Some("ohif".into()),
        ohif_dir: Some(site.clone()),
        records_url: Some(format!("{}?mode=ro", fx.records_url)),
        portal: Some(PORTAL.into()),
        ..Default::default()
    })
    .await;
    let page = "/visionneuse/viewer?StudyInstanceUIDs=1.2.3";

    // No session: the login page, never OHIF.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{}{page}", proxy.base))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::OK);
    assert!(!r.text().await.unwrap().contains("OHIF Viewer"));

    let elise = login(&proxy, ELISE).await;
    let get = |path: &str| elise.client.get(format!("{}{path}", proxy.base)).send();
    let r = get(page).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("'wasm-unsafe-eval'") && csp.contains("'nonce-"),
        "{csp}"
    );
    assert!(
        !csp.contains("'unsafe-eval'") && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("OHIF Viewer") && html.contains("espace-ps-bandeau"),
        "{html}"
    );
    assert!(html.contains("/manifest.webmanifest"), "{html}");

    let r = get("/visionneuse/0ddf166f7a343eda.wasm").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/wasm");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("public"));
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("worker-src"));
    let r = get("/visionneuse/app-config.js").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    // Revalidated, not downloaded again: its validator answers 304, with
    // no body; another validator, or the file changed, gets the file.
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let revalidate = |tag: String| {
        elise
            .client
            .get(format!("{}/visionneuse/app-config.js", proxy.base))
            .header("if-none-match", tag)
            .send()
    };
    let r = revalidate(etag.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert!(r.bytes().await.unwrap().is_empty());
    let r = revalidate("W/\"0-0\"".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "window.config = {};");
    std::fs::write(site.join("app-config.js"), "window.config = { a: 1 };").unwrap();
    let r = revalidate(etag.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a changed file is not 304");
    assert_eq!(r.text().await.unwrap(), "window.config = { a: 1 };");
    // The page (a nonce per answer) has no validator and is never 304.
    let r = elise
        .client
        .get(format!("{}/visionneuse/viewer", proxy.base))
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("etag").is_none());

    for outside in [
        "/visionneuse/../secret.txt",
        "/visionneuse/%2e%2e/secret.txt",
        "/visionneuse/assets/..%2f..%2fsecret.txt",
        "/visionneuse/missing.js",
    ] {
        let r = get(outside).await.unwrap();
        assert_ne!(r.status(), StatusCode::OK, "{outside}");
        assert!(!r.text().await.unwrap().contains("outside"), "{outside}");
    }
    // A write is never the site's.
    let r = elise
        .client
        .post(format!("{}/visionneuse/index.html", proxy.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
