//! The viewer guard against a REAL Orthanc (DICOMweb + Web Viewer plugins),
//! loaded with the DICOM studies of the demo records: who gets which bytes
//! on which route (section 1, the matrix), and a corpus of crafted requests
//! sent as raw HTTP that must not get anything they should not (section 2).
//!
//! Orthanc comes from `ESPACE_TEST_ORTHANC_URL` when set, else each test
//! starts its own (`espace_ps_dicomgen::orthanc::OrthancServer`, killed on
//! drop). Route classes: /work/shared/design/viewer-routes.md and
//! docs/viewer-orthanc.md; rules S20–S27 in docs/security.md.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use espace_ps_demo_data::{self as demo_data, showcase::*, DemoConfig};
use espace_ps_dicomgen::orthanc::OrthancServer;
use espace_ps_dicomgen::{generate_study, upload_study, StudySpec, UploadedStudy};
use reqwest::{Method, StatusCode};

use super::harness::*;

const SECRET: &str = "viewer-test-secret-for-the-dev-idp-0123456789";
const PORTAL: &str = "search_limit = 5\ndossier_attempts_max = 3\ndossier_lockout_minutes = 15\nunseen_days = 30\ngrant_days = 7\n";

const ELISE: &str = ELISE_NATIONAL_ID;
const NOEL: &str = NOEL_NATIONAL_ID;
const INES: &str = INES_NATIONAL_ID;

const REFUSED_TITLE: &str = "Accès refusé";
const DOWNLOAD_REFUSED_TITLE: &str = "Téléchargement non autorisé";

// ===================================================================== fixture

/// One study as uploaded: DICOM UIDs and Orthanc ids.
#[derive(Debug, Clone)]
struct Study {
    dossier: String,
    label: String,
    patient_id: String,
    family_name: String,
    given_name: String,
    uid: String,
    up: UploadedStudy,
    /// Generated Part-10 bytes of the first instance.
    first_bytes: Vec<u8>,
}

impl Study {
    fn sid(&self) -> &str {
        &self.up.study
    }
    fn pid(&self) -> &str {
        &self.up.patient
    }
    fn series_uid(&self) -> &str {
        &self.up.series[0].0
    }
    fn seid(&self) -> &str {
        &self.up.series[0].1
    }
    fn instance_uid(&self) -> &str {
        &self.up.instances[0].sop_instance_uid
    }
    fn iid(&self) -> &str {
        &self.up.instances[0].orthanc_id
    }
    /// Strings that, in a response, show this study's data.
    fn markers(&self) -> Vec<String> {
        let mut m = vec![
            self.uid.clone(),
            self.up.study.clone(),
            self.series_uid().to_owned(),
            self.seid().to_owned(),
            self.instance_uid().to_owned(),
            self.iid().to_owned(),
        ];
        for i in &self.up.instances {
            m.push(i.sop_instance_uid.clone());
        }
        m
    }
}

struct Fixture {
    _orthanc: Option<OrthancServer>,
    /// `http://127.0.0.1:PORT`
    orthanc: String,
    /// `127.0.0.1:PORT`
    orthanc_addr: String,
    records_url: String,
    /// by dossier number
    studies: HashMap<String, Study>,
    /// SCANAP Jean-Baptiste's study: on none of Élise's, Noël's or Inès's care teams.
    other: Study,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn study(&self, dossier: &str) -> &Study {
        &self.studies[dossier]
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (server, orthanc) = match std::env::var("ESPACE_TEST_ORTHANC_URL") {
        Ok(url) if !url.is_empty() => (None, url.trim_end_matches('/').to_owned()),
        _ => {
            let s = OrthancServer::start(&dir.path().join("orthanc"), Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let base = s.base_url().to_owned();
            (Some(s), base)
        }
    };
    let orthanc_addr = orthanc
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    let records_path = dir.path().join("records.sqlite");
    let records_url = format!("sqlite://{}", records_path.display());
    let mut cfg = DemoConfig::demo(test_today());
    cfg.patients = 400;
    demo_data::generate(&records_url, &cfg).await.unwrap();
    let rows = demo_data::studies(&records_url, &[], None).await.unwrap();
    let client = reqwest::Client::new();
    let mut studies = HashMap::new();
    let mut other = None;
    for row in rows {
        let francoise = row.patient_id == SCANAP_PATIENT_ID;
        let jb = row.family_name == "SCANAP" && row.given_name == "Jean-Baptiste";
        let wanted = francoise || (jb && other.is_none());
        if !wanted {
            continue;
        }
        let instances = generate_study(&StudySpec::from(&row)).unwrap();
        let up = upload_study(&client, &orthanc, &instances).await.unwrap();
        let s = Study {
            dossier: row.dossier_number.clone(),
            label: row.act_label.clone(),
            patient_id: row.patient_id.clone(),
            family_name: row.family_name.clone(),
            given_name: row.given_name.clone(),
            uid: row.study_instance_uid.clone(),
            up,
            first_bytes: instances[0].bytes.clone(),
        };
        if jb {
            other = Some(s);
        } else {
            studies.insert(row.dossier_number.clone(), s);
        }
    }
    for d in [SCANAP_DOSSIER_SCANNER, SCANAP_DOSSIER_FEMUR] {
        assert!(studies.contains_key(d), "no study for dossier {d}");
    }
    Fixture {
        _orthanc: server,
        orthanc,
        orthanc_addr,
        records_url,
        studies,
        other: other.expect("SCANAP Jean-Baptiste has no study"),
        dir,
    }
}

/// A copy of the shipped policies where Élise holds the DICOM download
/// habilitation, checked with `espace-ps policies check`.
fn habilitated_policies(into: &std::path::Path) -> std::path::PathBuf {
    let to = into.join("policies-habilitated");
    copy_dir(&shipped_policies(), &to);
    let groups = to.join("groups.toml");
    let text = std::fs::read_to_string(&groups).unwrap();
    let mut out = String::new();
    let mut in_group = false;
    let mut done = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_group = line.trim() == "[groups.dicom-download]";
        }
        if in_group && !done && line.trim_start().starts_with("rpps") {
            out.push_str(&format!("rpps = [\"{ELISE_RPPS}\"]\n"));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "no rpps list in [groups.dicom-download]");
    std::fs::write(&groups, out).unwrap();
    let check = std::process::Command::new(BIN)
        .args(["policies", "check"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "policies check failed:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    to
}

/// A proxy in front of the fixture's Orthanc with the records, signing in
/// through its own dev identity provider.
async fn start_proxy(
    fx: &Fixture,
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
        upstream: Some(fx.orthanc_addr.clone()),
        records_url: Some(format!("{}?mode=ro", fx.records_url)),
        policies_dir,
        portal: Some(PORTAL.into()),
        ..Default::default()
    })
    .await;
    (proxy, idp)
}

async fn login(proxy: &Proxy, who: &str) -> Browser {
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, who, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    b
}

/// Opens a dossier by its number and the patient's birth date.
async fn grant(proxy: &Proxy, b: &Browser, numero: &str, naissance: &str) {
    let form = b.get(&format!("{}/portail/dossier", proxy.base)).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form
        .form_fields("/portail/dossier")
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;
    let r = b
        .post_form(
            &format!("{}/portail/dossier", proxy.base),
            &[
                ("csrf_token".to_owned(), csrf),
                ("numero".to_owned(), numero.to_owned()),
                ("naissance".to_owned(), naissance.to_owned()),
            ],
            &proxy.base,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// (actor, event, outcome, resource, detail) of the proxy's audit trail.
async fn audit_rows(proxy: &Proxy) -> Vec<(String, String, String, String, String)> {
    proxy
        .audit_trail()
        .await
        .into_iter()
        .map(|a| {
            (
                a.actor.unwrap_or_default(),
                a.event,
                a.outcome,
                a.resource.unwrap_or_default(),
                a.detail.unwrap_or_default(),
            )
        })
        .collect()
}

// ===================================================================== responses

#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    accept: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut rb = client.request(method, url);
    if let Some(a) = accept {
        rb = rb.header("accept", a);
    }
    if let Some(b) = body {
        rb = rb.body(b.to_owned());
    }
    let r = rb.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Resp {
        status: r.status().as_u16(),
        content_type: r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        headers,
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// DICOM bytes or an archive, by Content-Type or by the bytes themselves.
fn carries_dicom(r: &Resp) -> bool {
    let ct = r.content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim().to_owned();
    let by_type = matches!(
        essence.as_str(),
        "application/dicom"
            | "application/x-dicom"
            | "application/zip"
            | "application/x-zip"
            | "application/x-zip-compressed"
            | "application/dicom+zip"
    ) || (essence == "multipart/related" && ct.contains("dicom"));
    let b = &r.body;
    let by_bytes = (b.len() > 132 && &b[128..132] == b"DICM")
        || b.starts_with(b"PK\x03\x04")
        || find(b, b"DICM\x02\x00").is_some();
    by_type || by_bytes
}

/// At most `n` characters of `s`.
fn short(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn boundary(ct: &str) -> Option<String> {
    ct.split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
}

/// Is this one of our French refusal pages (and nothing of the viewer's)?
fn assert_our_refusal(r: &Resp, title: &str, what: &str) {
    let body = r.text();
    assert!(
        r.content_type.starts_with("text/html"),
        "{what}: refusal is {} not HTML: {}",
        r.content_type,
        short(&body, 300)
    );
    assert!(body.contains(title), "{what}: no {title:?} in {body}");
    assert!(!carries_dicom(r), "{what}: DICOM bytes in a refusal");
    assert!(
        !body.trim_start().starts_with('{') && !body.trim_start().starts_with('['),
        "{what}: JSON in a refusal"
    );
}

// ===================================================================== 1. matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cls {
    D,
    R,
    V,
    Q,
    X,
}

/// One request of the matrix.
struct Probe {
    label: &'static str,
    class: Cls,
    method: Method,
    path: String,
    accept: Option<&'static str>,
    body: Option<String>,
    /// Bound to the study (false: unscoped or side effect, refused whatever
    /// the study).
    scoped: bool,
}

fn probes(s: &Study) -> Vec<Probe> {
    let (su, sid, seu, seid, iu, iid) = (
        s.uid.as_str(),
        s.sid(),
        s.series_uid(),
        s.seid(),
        s.instance_uid(),
        s.iid(),
    );
    let p = |label, class, path: String| Probe {
        label,
        class,
        method: Method::GET,
        path,
        accept: None,
        body: None,
        scoped: true,
    };
    let wado = format!("/wado?requestType=WADO&studyUID={su}&seriesUID={seu}&objectUID={iu}");
    let mut v = vec![
        p(
            "D /instances/{id}/file",
            Cls::D,
            format!("/instances/{iid}/file"),
        ),
        p(
            "D /studies/{id}/archive",
            Cls::D,
            format!("/studies/{sid}/archive"),
        ),
        p(
            "D /series/{id}/media",
            Cls::D,
            format!("/series/{seid}/media"),
        ),
        p(
            "D WADO-RS /dicom-web/studies/{uid}",
            Cls::D,
            format!("/dicom-web/studies/{su}"),
        ),
        p(
            "D WADO-URI contentType=application/dicom",
            Cls::D,
            format!("{wado}&contentType=application/dicom"),
        ),
        p(
            "D WADO-RS ?accept=application/zip",
            Cls::D,
            format!("/dicom-web/studies/{su}?accept=application/zip"),
        ),
        p(
            "R /instances/{id}/tags",
            Cls::R,
            format!("/instances/{iid}/tags"),
        ),
        p(
            "R /dicom-web/studies/{s}/metadata",
            Cls::R,
            format!("/dicom-web/studies/{su}/metadata"),
        ),
        p(
            "R DICOMweb …/instances/{i}/frames/1",
            Cls::R,
            format!("/dicom-web/studies/{su}/series/{seu}/instances/{iu}/frames/1"),
        ),
        p(
            "V /instances/{id}/preview",
            Cls::V,
            format!("/instances/{iid}/preview"),
        ),
        p(
            "V DICOMweb …/instances/{i}/rendered",
            Cls::V,
            format!("/dicom-web/studies/{su}/series/{seu}/instances/{iu}/rendered"),
        ),
        p("V WADO-URI default (JPEG)", Cls::V, wado.clone()),
        p(
            "V /web-viewer/series/{id}",
            Cls::V,
            format!("/web-viewer/series/{seid}"),
        ),
        p(
            "Q QIDO ?StudyInstanceUID=uid",
            Cls::Q,
            format!("/dicom-web/studies?StudyInstanceUID={su}"),
        ),
    ];
    let mut unscoped = |label, class, method: Method, path: String, body: Option<String>| {
        v.push(Probe {
            label,
            class,
            method,
            path,
            accept: None,
            body,
            scoped: false,
        })
    };
    unscoped(
        "Q /dicom-web/studies (unscoped)",
        Cls::Q,
        Method::GET,
        "/dicom-web/studies".into(),
        None,
    );
    unscoped(
        "Q /studies (unscoped)",
        Cls::Q,
        Method::GET,
        "/studies".into(),
        None,
    );
    unscoped(
        "X POST /tools/lookup",
        Cls::X,
        Method::POST,
        "/tools/lookup".into(),
        Some(su.to_owned()),
    );
    unscoped(
        "X GET /modalities",
        Cls::X,
        Method::GET,
        "/modalities".into(),
        None,
    );
    unscoped(
        "X POST /instances",
        Cls::X,
        Method::POST,
        "/instances".into(),
        Some("not a DICOM file".into()),
    );
    unscoped(
        "X POST /studies/{id}/modify",
        Cls::X,
        Method::POST,
        format!("/studies/{sid}/modify"),
        Some(r#"{"Replace":{"PatientName":"X^Y"},"Force":true}"#.into()),
    );
    unscoped(
        "X DELETE /studies/{id}",
        Cls::X,
        Method::DELETE,
        format!("/studies/{sid}"),
        None,
    );
    v
}

struct Persona {
    name: &'static str,
    national_id: &'static str,
    /// On the habilitated proxy.
    habilitated: bool,
    visible: Option<&'static str>,
    invisible: &'static str,
}

const OTHER: &str = "other";

fn study_of<'a>(fx: &'a Fixture, key: &str) -> &'a Study {
    if key == OTHER {
        &fx.other
    } else {
        fx.study(key)
    }
}

/// `Err(message)` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// Checks one allowed response against what Orthanc itself returns.
async fn compare_with_orthanc(
    fx: &Fixture,
    proxy: &Proxy,
    probe: &Probe,
    study: &Study,
    got: &Resp,
    what: &str,
) -> Result<(), String> {
    let direct = send(
        &reqwest::Client::new(),
        probe.method.clone(),
        &format!("{}{}", fx.orthanc, probe.path),
        probe.accept,
        probe.body.as_deref(),
    )
    .await;
    ensure!(
        direct.status == 200,
        "{what}: direct fetch answered {}",
        direct.status
    );
    let essence = |ct: &str| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    ensure!(
        essence(&got.content_type) == essence(&direct.content_type),
        "{what}: content type {} vs Orthanc's {}",
        got.content_type,
        direct.content_type
    );
    ensure!(
        find(&got.body, fx.orthanc_addr.as_bytes()).is_none(),
        "{what}: the Orthanc address leaks in the response"
    );
    let same = if let (Some(bg), Some(bd)) =
        (boundary(&got.content_type), boundary(&direct.content_type))
    {
        // Parts carry a Content-Location built from `Forwarded`: ours.
        let direct_body = replace_bytes(&direct.body, fx.orthanc.as_bytes(), proxy.base.as_bytes());
        replace_bytes(&got.body, bg.as_bytes(), b"BOUNDARY")
            == replace_bytes(&direct_body, bd.as_bytes(), b"BOUNDARY")
    } else if essence(&got.content_type).contains("json") {
        replace_bytes(&direct.body, fx.orthanc.as_bytes(), proxy.base.as_bytes()) == got.body
    } else if essence(&got.content_type) == "application/zip" {
        // Archives are built anew each time (names, times): a ZIP of about
        // the same size.
        got.body.starts_with(b"PK\x03\x04")
            && got.body.len().abs_diff(direct.body.len()) * 100 <= direct.body.len()
    } else {
        got.body == direct.body
    };
    ensure!(
        find(&got.body, b"://\\\"").is_none(),
        "{what}: Orthanc wrote the quoted Forwarded host into its URLs (http://\\\"host:port\\\"/…): \
         the proxy sends `Forwarded: host=\\\"…\\\"` and Orthanc's DICOMweb plugin does not unquote it"
    );
    ensure!(
        same,
        "{what}: the proxied body differs from Orthanc's ({} vs {} bytes)",
        got.body.len(),
        direct.body.len()
    );
    if probe.label.starts_with("D /instances") || probe.label.starts_with("D WADO-URI") {
        ensure!(
            got.body == study.first_bytes,
            "{what}: not the uploaded Part-10 file"
        );
    }
    if probe.class == Cls::D {
        ensure!(
            carries_dicom(got),
            "{what}: a download without DICOM bytes ({})",
            got.content_type
        );
        if !got.content_type.contains("zip") {
            ensure!(
                find(&got.body, study.instance_uid().as_bytes()).is_some(),
                "{what}: SOP Instance UID not in the bytes"
            );
        }
    }
    if probe.class == Cls::Q {
        let v: serde_json::Value =
            serde_json::from_slice(&got.body).map_err(|e| format!("{what}: {e}"))?;
        let arr = v.as_array().cloned().unwrap_or_default();
        ensure!(arr.len() == 1, "{what}: {v}");
        let url = arr[0]["00081190"]["Value"][0].as_str().unwrap_or("");
        ensure!(
            url.starts_with(&format!("{}/dicom-web/", proxy.base)),
            "{what}: RetrieveURL {url:?} does not go through the proxy"
        );
    }
    Ok(())
}

/// What a matrix cell must be.
#[allow(clippy::too_many_arguments)]
async fn check_cell(
    fx: &Fixture,
    proxy: &Proxy,
    probe: &Probe,
    study: &Study,
    r: &Resp,
    expected_ok: bool,
    download_refusal: bool,
    what: &str,
) -> Result<(), String> {
    let text = r.text();
    let short = short(&text, 300);
    if expected_ok {
        ensure!(r.status == 200, "{what}: {} {short}", r.status);
        compare_with_orthanc(fx, proxy, probe, study, r, what).await?;
    } else {
        ensure!(
            r.status == 403,
            "{what}: {} ({}) {short}",
            r.status,
            r.content_type
        );
        let title = if download_refusal {
            DOWNLOAD_REFUSED_TITLE
        } else {
            REFUSED_TITLE
        };
        ensure!(
            r.content_type.starts_with("text/html"),
            "{what}: refusal is {}",
            r.content_type
        );
        ensure!(text.contains(title), "{what}: no {title:?} in {short}");
        ensure!(!carries_dicom(r), "{what}: DICOM bytes in a refusal");
        let t = text.trim_start();
        ensure!(
            !t.starts_with('{') && !t.starts_with('['),
            "{what}: JSON in a refusal"
        );
    }
    ensure!(
        r.header("cache-control") == Some("no-store"),
        "{what}: cache-control {:?}",
        r.header("cache-control")
    );
    Ok(())
}

#[tokio::test]
async fn viewer_matrix_against_orthanc() {
    let fx = fixture().await;
    let hab_dir = habilitated_policies(fx.dir.path());
    let (plain, _idp1) = start_proxy(&fx, None).await;
    let (hab, _idp2) = start_proxy(&fx, Some(hab_dir)).await;
    run_matrix(&fx, &plain, &hab, Archive::OrthancRest).await;
}

/// What the proxy's route table reaches of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    /// `orthanc.toml`: Orthanc's REST API, DICOMweb, WADO-URI, Web Viewer.
    OrthancRest,
    /// `ohif.toml`: DICOMweb only (the DICOMweb resolver); every other
    /// route of the matrix must be refused.
    DicomWebOnly,
}

impl Archive {
    /// The probe as this archive's table must decide it: outside DICOMweb,
    /// refused whatever the study.
    fn adapt(self, mut p: Probe) -> Probe {
        if self == Archive::DicomWebOnly && !p.path.starts_with("/dicom-web/") {
            p.scoped = false;
        }
        p
    }

    /// A rendered image of the study's first instance.
    fn preview(self, s: &Study) -> String {
        match self {
            Archive::OrthancRest => format!("/instances/{}/preview", s.iid()),
            Archive::DicomWebOnly => format!(
                "/dicom-web/studies/{}/series/{}/instances/{}/rendered",
                s.uid,
                s.series_uid(),
                s.instance_uid()
            ),
        }
    }
}

/// The matrix: every persona, every probe, on a study they may and one they
/// may not view, on the plain and the habilitated proxy; then the audit trail.
async fn run_matrix(fx: &Fixture, plain: &Proxy, hab: &Proxy, archive: Archive) {
    let table_probes =
        |s: &Study| -> Vec<Probe> { probes(s).into_iter().map(|p| archive.adapt(p)).collect() };
    // Noël before the grant is an outsider to FEMUR; after, FEMUR only.
    let noel = login(plain, NOEL).await;
    let femur = fx.study(SCANAP_DOSSIER_FEMUR);
    let before = send(
        &noel.client,
        Method::GET,
        &format!("{}{}", plain.base, archive.preview(femur)),
        None,
        None,
    )
    .await;
    assert_eq!(before.status, 403, "Noël before the grant");
    assert_our_refusal(&before, REFUSED_TITLE, "Noël before the grant");
    grant(plain, &noel, SCANAP_DOSSIER_FEMUR, "13/08/1961").await;
    let after = send(
        &noel.client,
        Method::GET,
        &format!("{}{}", plain.base, archive.preview(femur)),
        None,
        None,
    )
    .await;
    assert_eq!(
        after.status,
        200,
        "Noël after the grant (cached refusal not invalidated?): {}",
        after.text()
    );

    let personas = [
        Persona {
            name: "Élise (care team, not habilitated)",
            national_id: ELISE,
            habilitated: false,
            visible: Some(SCANAP_DOSSIER_SCANNER),
            invisible: OTHER,
        },
        Persona {
            name: "Élise habilitated",
            national_id: ELISE,
            habilitated: true,
            visible: Some(SCANAP_DOSSIER_SCANNER),
            invisible: OTHER,
        },
        Persona {
            name: "Noël (FEMUR by number)",
            national_id: NOEL,
            habilitated: false,
            visible: Some(SCANAP_DOSSIER_FEMUR),
            invisible: SCANAP_DOSSIER_SCANNER,
        },
        // A sibling dossier of her patient, where she holds no role: viewed
        // through the patient's whole history (issue 11), not downloaded.
        Persona {
            name: "Élise on FEMUR (sibling dossier)",
            national_id: ELISE,
            habilitated: false,
            visible: Some(SCANAP_DOSSIER_FEMUR),
            invisible: OTHER,
        },
        Persona {
            name: "Inès (outsider)",
            national_id: INES,
            habilitated: false,
            visible: None,
            invisible: SCANAP_DOSSIER_SCANNER,
        },
    ];
    // persona → route → (visible status, invisible status)
    let mut table: BTreeMap<(usize, usize), (String, Option<u16>, u16)> = BTreeMap::new();
    let mut failures = Vec::new();
    // (proxy is habilitated, actor) → D attempts sent
    let mut d_attempts: HashMap<(bool, &str), usize> = HashMap::new();
    let mut viewed: HashMap<(bool, &str), Vec<String>> = HashMap::new();

    for (pi, persona) in personas.iter().enumerate() {
        let proxy = if persona.habilitated { hab } else { plain };
        let b = if persona.national_id == NOEL {
            Browser {
                client: noel.client.clone(),
                jar: noel.jar.clone(),
            }
        } else {
            login(proxy, persona.national_id).await
        };
        let mut targets: Vec<(bool, &Study)> = Vec::new();
        if let Some(v) = persona.visible {
            targets.push((true, study_of(fx, v)));
        }
        targets.push((false, study_of(fx, persona.invisible)));
        // Side effects last (a DELETE that got through would spoil the rest).
        for (ri, _) in table_probes(targets[0].1).iter().enumerate() {
            for (visible, study) in &targets {
                let probe = &table_probes(study)[ri];
                if !probe.scoped && !*visible && persona.visible.is_some() {
                    continue; // unscoped: once per persona is enough
                }
                let what = format!(
                    "{} · {} · {}",
                    persona.name,
                    probe.label,
                    if *visible {
                        study.label.as_str()
                    } else {
                        "invisible"
                    }
                );
                let r = send(
                    &b.client,
                    probe.method.clone(),
                    &format!("{}{}", proxy.base, probe.path),
                    probe.accept,
                    probe.body.as_deref(),
                )
                .await;
                // Audited: the download routes of the table (outside it,
                // a request is refused before it is a download).
                if probe.class == Cls::D && probe.scoped {
                    *d_attempts
                        .entry((persona.habilitated, persona.national_id))
                        .or_default() += 1;
                }
                let entry = table
                    .entry((pi, ri))
                    .or_insert((probe.label.to_owned(), None, 0));
                if *visible || !probe.scoped {
                    entry.1 = Some(r.status);
                } else {
                    entry.2 = r.status;
                }
                let expected_ok = probe.scoped
                    && *visible
                    && (probe.class != Cls::D || persona.habilitated)
                    && probe.class != Cls::X;
                let download_refusal = *visible && probe.scoped && probe.class == Cls::D;
                if expected_ok && probe.class != Cls::D {
                    viewed
                        .entry((persona.habilitated, persona.national_id))
                        .or_default()
                        .push(study.uid.clone());
                }
                if let Err(e) = check_cell(
                    fx,
                    proxy,
                    probe,
                    study,
                    &r,
                    expected_ok,
                    download_refusal,
                    &what,
                )
                .await
                {
                    failures.push(e);
                }
            }
        }
    }

    // The audit trail: one dicom_download per D attempt, one images_view per study.
    for (habilitated, proxy) in [(false, plain), (true, hab)] {
        let rows = audit_rows(proxy).await;
        for ((h, actor), n) in &d_attempts {
            if *h != habilitated {
                continue;
            }
            let got = rows
                .iter()
                .filter(|r| r.0 == *actor && r.1 == "dicom_download")
                .count();
            if got != *n {
                failures.push(format!("audit: {actor} on the {} proxy: {n} download attempts, {got} dicom_download records", if habilitated { "habilitated" } else { "plain" }));
            }
            let views: Vec<&str> = rows
                .iter()
                .filter(|r| r.0 == *actor && r.1 == "images_view" && r.2 == "success")
                .map(|r| r.3.as_str())
                .collect();
            let mut expected: Vec<String> = viewed.get(&(*h, *actor)).cloned().unwrap_or_default();
            expected.sort();
            expected.dedup();
            let mut got_views: Vec<String> = views.iter().map(|s| s.to_string()).collect();
            got_views.sort();
            if got_views != expected {
                failures.push(format!("audit: {actor}: images_view records for {got_views:?}, expected once for {expected:?}"));
            }
        }
        for r in rows.iter().filter(|r| r.1 == "dicom_download") {
            if r.2 == "success" && !habilitated {
                failures.push(format!(
                    "audit: a successful download on the plain proxy: {r:?}"
                ));
            }
        }
    }

    // The matrix, printed.
    println!("\n| persona | route | visible study | invisible study |\n|---|---|---|---|");
    for ((pi, _), (label, vis, inv)) in &table {
        let vis = vis.map(|s| s.to_string()).unwrap_or_else(|| "–".into());
        let inv = if *inv == 0 {
            "–".to_owned()
        } else {
            inv.to_string()
        };
        println!("| {} | {label} | {vis} | {inv} |", personas[*pi].name);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ===================================================================== 2. bypass corpus

// The corpus (`Exp`, `CORPUS`) is shared with the gate's unit tests.
include!("viewer_corpus.rs");

fn fill(t: &str, fx: &Fixture, proxy_addr: &str) -> String {
    let v = fx.study(SCANAP_DOSSIER_SCANNER);
    let x = &fx.other;
    let f = fx.study(SCANAP_DOSSIER_FEMUR);
    // `{FS} {FSE} {FI} {fiid}`: the FEMUR study of the same patient (a
    // sibling dossier, where Élise holds no role: viewed through the
    // patient's whole history since issue 11, never downloaded).
    t.replace("{FS}", &f.uid)
        .replace("{FSE}", f.series_uid())
        .replace("{FI}", f.instance_uid())
        .replace("{fiid}", f.iid())
        .replace("{S}", &v.uid)
        .replace("{SE}", v.series_uid())
        .replace("{I}", v.instance_uid())
        .replace("{sid}", v.sid())
        .replace("{seid}", v.seid())
        .replace("{iid}", v.iid())
        .replace("{pid}", v.pid())
        .replace("{IIDU}", &v.iid().to_ascii_uppercase())
        .replace("{XS}", &x.uid)
        .replace("{XSE}", x.series_uid())
        .replace("{XI}", x.instance_uid())
        .replace("{xsid}", x.sid())
        .replace("{xseid}", x.seid())
        .replace("{xiid}", x.iid())
        .replace("{xpid}", x.pid())
        .replace("{xpatient}", &x.patient_id)
        .replace("{XIIDU}", &x.iid().to_ascii_uppercase())
        .replace("{OADDR}", &fx.orthanc_addr)
        .replace("{PADDR}", proxy_addr)
}

/// One request as raw HTTP/1.1 (nothing normalized on the way), the
/// response read to the end of the connection.
async fn raw_request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    cookie: &str,
    body: &str,
) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req: Vec<u8> = Vec::new();
    req.extend_from_slice(format!("{method} ").as_bytes());
    req.extend_from_slice(&replace_bytes(target.as_bytes(), b"{C0AE}", &[0xC0, 0xAE]));
    req.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
    }
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(format!("Cookie: {cookie}\r\nConnection: close\r\n").as_bytes());
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body.as_bytes());
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(&req).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), sock.read_to_end(&mut buf)).await;
    parse_response(&buf, method == "HEAD")
}

fn parse_response(buf: &[u8], head: bool) -> Resp {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Resp {
            status: 0,
            content_type: String::new(),
            headers: vec![],
            body: buf.to_vec(),
        };
    };
    let head_text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = buf[end + 4..].to_vec();
    if head {
        body.clear();
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = find(rest, b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let Ok(size) =
                usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            else {
                break;
            };
            rest = &rest[eol + 2..];
            if size == 0 || rest.len() < size {
                out.extend_from_slice(&rest[..size.min(rest.len())]);
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
        body = out;
    }
    Resp {
        status,
        content_type: get("content-type").unwrap_or_default(),
        headers,
        body,
    }
}

fn cookie_header(b: &Browser, base: &str) -> String {
    b.cookies_for(base)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Is this a refusal page of ours (as opposed to the viewer's own error)?
fn is_our_page(r: &Resp) -> bool {
    let t = r.text();
    r.content_type.starts_with("text/html")
        && (t.contains(REFUSED_TITLE)
            || t.contains(DOWNLOAD_REFUSED_TITLE)
            || t.contains("Requête refusée")
            || t.contains("Requête"))
}

#[tokio::test]
async fn viewer_bypass_corpus_against_orthanc() {
    let fx = fixture().await;
    let (proxy, _idp) = start_proxy(&fx, None).await;
    run_corpus(&fx, &proxy, CORPUS, Archive::OrthancRest, 150).await;
}

/// Sends a corpus as raw HTTP for Élise (care team of `{S}`) and Inès
/// (outsider); asserts the hard invariants (no DICOM, nothing of an
/// invisible study, no backend URL, no list) and each entry's expectation.
/// Returns the number of 2xx answers of `View` entries (positive controls).
async fn run_corpus(
    fx: &Fixture,
    proxy: &Proxy,
    corpus: &[(Exp, &str, &str, &str, &str)],
    archive: Archive,
    min_sent: usize,
) -> usize {
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let elise = login(proxy, ELISE).await;
    let ines = login(proxy, INES).await;
    let mut viewed = 0usize;
    let cookies = [
        ("Élise", cookie_header(&elise, &proxy.base)),
        ("Inès", cookie_header(&ines, &proxy.base)),
    ];
    // What each may not see, in any 2xx body. (FEMUR, a sibling dossier
    // of her patient, is hers to view since issue 11: the whole history.)
    let mut elise_forbidden: Vec<String> = fx.other.markers();
    elise_forbidden.push(fx.other.given_name.clone());
    let mut ines_forbidden = elise_forbidden.clone();
    for s in fx.studies.values() {
        ines_forbidden.extend(s.markers());
        ines_forbidden.push(s.family_name.clone());
    }
    let elise_studies: Vec<&str> = fx.studies.values().map(|s| s.uid.as_str()).collect();
    let scanner_dossier = fx.study(SCANAP_DOSSIER_SCANNER).dossier.clone();
    assert_eq!(scanner_dossier, SCANAP_DOSSIER_SCANNER);

    let mut sent = 0usize;
    let mut leaks: Vec<String> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut by_exp: BTreeMap<(Exp, bool), usize> = BTreeMap::new();
    let (mut ours, mut upstream_refusals) = (0usize, Vec::new());
    for (exp, method, target, headers, body) in corpus {
        for (who, cookie) in &cookies {
            let target = fill(target, fx, &addr);
            let headers: Vec<(String, String)> = headers
                .split('|')
                .filter(|h| !h.is_empty())
                .map(|h| {
                    let (k, v) = h.split_once(':').unwrap();
                    (k.trim().to_owned(), fill(v.trim(), fx, &addr))
                })
                .collect();
            let body = fill(body, fx, &addr);
            let r = raw_request(&addr, method, &target, &headers, cookie, &body).await;
            sent += 1;
            if r.status != 403 && r.status != 400 {
                println!(
                    "  {:?} {who}: {method} {target} {headers:?} → {} {:?}",
                    exp, r.status, r.content_type
                );
            }
            *by_status.entry(r.status).or_default() += 1;
            let ok = (200..300).contains(&r.status);
            *by_exp.entry((*exp, ok)).or_default() += 1;
            let line = format!(
                "{who}: {method} {target} {headers:?} → {} {:?}",
                r.status, r.content_type
            );

            // The hard invariants: no DICOM for anyone here, nothing of an
            // invisible study, no backend or attacker URL, no list.
            if ok {
                if carries_dicom(&r) {
                    leaks.push(format!("DICOM bytes: {line}"));
                }
                let forbidden = if *who == "Élise" {
                    &elise_forbidden
                } else {
                    &ines_forbidden
                };
                for m in forbidden {
                    if find(&r.body, m.as_bytes()).is_some() {
                        leaks.push(format!("invisible data ({m}): {line}"));
                        break;
                    }
                }
                for bad in [fx.orthanc_addr.as_str(), "evil.example"] {
                    if find(&r.body, bad.as_bytes()).is_some() {
                        leaks.push(format!("URL of {bad} in the body: {line}"));
                    }
                }
                // A search may only answer about the study the doctor may view.
                let path = target.split('?').next().unwrap_or("");
                if ["/studies", "/patients", "/series", "/instances"]
                    .iter()
                    .any(|p| path.trim_end_matches('/') == *p)
                {
                    leaks.push(format!("Orthanc list: {line}"));
                }
                if path.starts_with("/dicom-web/") && !path.starts_with("/dicom-web/studies/") {
                    if let Ok(serde_json::Value::Array(a)) =
                        serde_json::from_slice::<serde_json::Value>(&r.body)
                    {
                        for e in &a {
                            let study = e["0020000D"]["Value"][0].as_str().unwrap_or("");
                            // Élise: her patient's whole history (issue 11).
                            if *who != "Élise" || !elise_studies.contains(&study) {
                                leaks.push(format!("search result for study {study:?}: {line}"));
                                break;
                            }
                        }
                    }
                }
            } else if r.status != 0 && !r.body.is_empty() {
                if carries_dicom(&r) {
                    leaks.push(format!("DICOM bytes in a refusal: {line}"));
                }
                if is_our_page(&r) {
                    ours += 1;
                } else {
                    upstream_refusals.push(format!("{line} {}", short(&r.text(), 120)));
                }
            } else {
                ours += 1;
            }

            // The expectation of the entry (outside DICOMweb, the
            // DICOMweb-only table has no route: refused).
            let outside = archive == Archive::DicomWebOnly && !target.starts_with("/dicom-web/");
            let exp = if (*who == "Inès" && *exp != Shell) || outside {
                Deny
            } else {
                *exp
            };
            if exp == View && ok {
                viewed += 1;
            }
            let right = match exp {
                Deny => !ok,
                View | Shell => ok,
                NoLeak => true,
            };
            if !right {
                mismatches.push(format!(
                    "expected {exp:?}: {line} {}",
                    short(&r.text(), 200)
                ));
            }
        }
    }
    println!("\nbypass corpus: {} entries, {sent} requests", corpus.len());
    println!("by status: {by_status:?}");
    println!("by (expectation, 2xx): {by_exp:?}");
    println!(
        "refusals with our page (or empty): {ours}; from the viewer itself: {}",
        upstream_refusals.len()
    );
    for u in &upstream_refusals {
        println!("  viewer refusal: {u}");
    }
    println!("leaks: {}", leaks.len());
    for l in &leaks {
        println!("  LEAK {l}");
    }
    println!("expectation mismatches: {}", mismatches.len());
    for m in &mismatches {
        println!("  MISMATCH {m}");
    }
    assert!(sent >= min_sent, "corpus too small: {sent}");
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    viewed
}

// ===================================================================== 3. second security round

/// Adds an encapsulated PDF (a report scanned into the PACS) to a study,
/// through Orthanc's own `/tools/create-dicom`: (Orthanc instance id,
/// SeriesInstanceUID, SOPInstanceUID).
async fn add_pdf_to_study(fx: &Fixture, study: &Study) -> (String, String, String) {
    use base64::Engine as _;
    let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    let content = format!(
        "data:application/pdf;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(pdf)
    );
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/tools/create-dicom", fx.orthanc))
        .json(&serde_json::json!({
            "Parent": study.sid(),
            "Tags": { "Modality": "DOC", "SeriesDescription": "Compte rendu numérisé" },
            "Content": content,
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["ID"].as_str().unwrap().to_owned();
    let tags = |path: String| {
        let client = client.clone();
        async move {
            client
                .get(path)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let inst = tags(format!("{}/instances/{id}", fx.orthanc)).await;
    let series = tags(format!("{}/instances/{id}/series", fx.orthanc)).await;
    (
        id,
        series["MainDicomTags"]["SeriesInstanceUID"]
            .as_str()
            .unwrap()
            .to_owned(),
        inst["MainDicomTags"]["SOPInstanceUID"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Routes that return whole DICOM content, documents or bulk dumps need the
/// download habilitation: a view-only professional of the care team gets
/// the "Téléchargement non autorisé" page (and an audited refusal) on each,
/// a habilitated one gets exactly Orthanc's bytes.
#[tokio::test]
async fn viewer_bulk_and_document_routes_need_the_download_habilitation() {
    let fx = fixture().await;
    let hab_dir = habilitated_policies(fx.dir.path());
    let (plain, _idp1) = start_proxy(&fx, None).await;
    let (hab, _idp2) = start_proxy(&fx, Some(hab_dir)).await;
    let s = fx.study(SCANAP_DOSSIER_SCANNER);
    let (pdf_id, pdf_series, pdf_uid) = add_pdf_to_study(&fx, s).await;
    let (su, seu, iu, iid, seid) = (
        s.uid.as_str(),
        s.series_uid(),
        s.instance_uid(),
        s.iid(),
        s.seid(),
    );
    let routes: Vec<String> = vec![
        format!("/instances/{pdf_id}/content/0042-0011"),
        format!("/instances/{pdf_id}/content/EncapsulatedDocument"),
        format!("/instances/{pdf_id}/content/0042,0011"),
        format!("/instances/{pdf_id}/pdf"),
        format!("/dicom-web/studies/{su}/series/{pdf_series}/instances/{pdf_uid}/bulk/00420011"),
        format!("/instances/{iid}/attachments/dicom/data"),
        format!("/instances/{iid}/attachments/dicom/compressed-data"),
        format!("/instances/{iid}/numpy"),
        format!("/instances/{iid}/frames/0/numpy"),
        format!("/instances/{iid}/matlab"),
        format!("/series/{seid}/numpy"),
        format!("/instances/{iid}/frames/0/raw"),
        format!("/instances/{iid}/frames/0/raw.gz"),
        format!("/instances/{iid}/content/0010-0010"),
        format!("/instances/{iid}/content/7fe0-0010/0"),
        format!("/dicom-web/studies/{su}/series/{seu}/instances/{iu}/bulk/7fe00010"),
    ];
    let viewer = login(&plain, ELISE).await;
    let habilitated = login(&hab, ELISE).await;
    let direct = reqwest::Client::new();
    let mut failures = Vec::new();
    for path in &routes {
        let what = path.replace(su, "{S}");
        let r = send(
            &viewer.client,
            Method::GET,
            &format!("{}{path}", plain.base),
            None,
            None,
        )
        .await;
        let text = r.text();
        if r.status != 403 || !text.contains(DOWNLOAD_REFUSED_TITLE) || carries_dicom(&r) {
            failures.push(format!(
                "view-only {what}: {} {} {}",
                r.status,
                r.content_type,
                short(&text, 200)
            ));
        }
        let want = send(
            &direct,
            Method::GET,
            &format!("{}{path}", fx.orthanc),
            None,
            None,
        )
        .await;
        let got = send(
            &habilitated.client,
            Method::GET,
            &format!("{}{path}", hab.base),
            None,
            None,
        )
        .await;
        let same = match (boundary(&got.content_type), boundary(&want.content_type)) {
            (Some(bg), Some(bd)) => {
                let want_body =
                    replace_bytes(&want.body, fx.orthanc.as_bytes(), hab.base.as_bytes());
                replace_bytes(&got.body, bg.as_bytes(), b"B")
                    == replace_bytes(&want_body, bd.as_bytes(), b"B")
            }
            _ => got.body == want.body,
        };
        if want.status != 200 || got.status != 200 || !same {
            failures.push(format!(
                "habilitated {what}: {} ({} bytes) vs Orthanc {} ({} bytes)",
                got.status,
                got.body.len(),
                want.status,
                want.body.len()
            ));
        }
    }
    // Every refusal is in the audit trail as a refused download.
    let refused = audit_rows(&plain)
        .await
        .into_iter()
        .filter(|r| r.0 == ELISE && r.1 == "dicom_download" && r.2 == "refused")
        .count();
    if refused != routes.len() {
        failures.push(format!(
            "{refused} refused dicom_download records for {} attempts",
            routes.len()
        ));
    }
    // Frames and rendered images for display still flow to the view-only doctor.
    for path in [
        format!("/dicom-web/studies/{su}/series/{seu}/instances/{iu}/frames/1"),
        format!("/dicom-web/studies/{su}/series/{seu}/instances/{iu}/rendered"),
        format!("/instances/{iid}/preview"),
        format!("/web-viewer/instances/jpeg95-{iid}_0"),
        format!("/web-viewer/instances/deflate-{iid}_0"),
    ] {
        let r = send(
            &viewer.client,
            Method::GET,
            &format!("{}{path}", plain.base),
            None,
            None,
        )
        .await;
        if r.status != 200 || carries_dicom(&r) {
            failures.push(format!(
                "view-only display {path}: {} {}",
                r.status, r.content_type
            ));
        }
    }
    // Leave a shared Orthanc as it was.
    let _ = direct
        .delete(format!("{}/instances/{pdf_id}", fx.orthanc))
        .send()
        .await;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// An upstream in front of the real Orthanc that relays everything (so that
/// espace-ps resolves resources for real) except the rendered previews,
/// which it answers with the Content-Type named in their `ct` query
/// parameter: a viewer that mislabels, or a route table that misclassifies.
async fn start_tampering_upstream(orthanc: String) -> (String, tokio::task::JoinHandle<()>) {
    let client = reqwest::Client::new();
    start_fake_upstream(move |req: FakeRequest| {
        let client = client.clone();
        let orthanc = orthanc.clone();
        async move {
            let tampered = req
                .target
                .split_once("/preview?ct=")
                .map(|(_, ct)| urlencoding::decode(ct).unwrap_or_default().into_owned());
            if let Some(ct) = tampered {
                return FakeResponse {
                    status: 200,
                    headers: vec![format!("content-type: {ct}")],
                    body: b"BULK-BYTES-OF-A-FILE\x00\x01\x02".to_vec(),
                };
            }
            let r = client
                .request(
                    Method::from_bytes(req.method.as_bytes()).unwrap(),
                    format!("{orthanc}{}", req.target),
                )
                .body(req.body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            FakeResponse {
                status,
                headers: vec![format!("content-type: {ct}")],
                body: r.bytes().await.unwrap().to_vec(),
            }
        }
    })
    .await
}

/// The response cut (defense in depth): whatever the route table said, a
/// body of bulk octets, gzip, a PDF, an archive or DICOM never reaches a
/// professional without the download habilitation; the viewer's own files
/// (its fonts are application/octet-stream) still do.
#[tokio::test]
async fn viewer_response_cut_stops_bulk_bodies_without_the_habilitation() {
    let fx = fixture().await;
    let (upstream, _task) = start_tampering_upstream(fx.orthanc.clone()).await;
    let start = |policies: Option<std::path::PathBuf>| {
        let fx = &fx;
        let upstream = upstream.clone();
        async move {
            let port = free_port();
            let portal = format!("http://127.0.0.1:{port}");
            let (idp, issuer) = start_dev_idp(&portal, SECRET).await;
            let proxy = Proxy::start(ProxyOpts {
                port: Some(port),
                psc: Some(format!(
                    "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\ndev_idp = true\n"
                )),
                upstream: Some(upstream),
                records_url: Some(format!("{}?mode=ro", fx.records_url)),
                policies_dir: policies,
                portal: Some(PORTAL.into()),
                ..Default::default()
            })
            .await;
            (proxy, idp)
        }
    };
    let (plain, _idp1) = start(None).await;
    let (hab, _idp2) = start(Some(habilitated_policies(fx.dir.path()))).await;
    let viewer = login(&plain, ELISE).await;
    let habilitated = login(&hab, ELISE).await;
    let iid = fx.study(SCANAP_DOSSIER_SCANNER).iid().to_owned();
    let preview = |base: &str, ct: &str| {
        format!(
            "{base}/instances/{iid}/preview?ct={}",
            urlencoding::encode(ct)
        )
    };
    let mut failures = Vec::new();
    for ct in [
        "application/octet-stream",
        "application/gzip",
        "application/x-gzip",
        "application/pdf",
        "application/zip",
        "application/dicom",
        "multipart/related; type=\"application/dicom\"; boundary=x",
    ] {
        let r = send(
            &viewer.client,
            Method::GET,
            &preview(&plain.base, ct),
            None,
            None,
        )
        .await;
        let text = r.text();
        if r.status != 403
            || !text.contains(DOWNLOAD_REFUSED_TITLE)
            || find(&r.body, b"BULK-BYTES").is_some()
        {
            failures.push(format!(
                "view-only, upstream {ct}: {} {} {}",
                r.status,
                r.content_type,
                short(&text, 200)
            ));
        }
        // The cut is about the habilitation, not the route.
        let r = send(
            &habilitated.client,
            Method::GET,
            &preview(&hab.base, ct),
            None,
            None,
        )
        .await;
        if r.status != 200 || find(&r.body, b"BULK-BYTES").is_none() {
            failures.push(format!("habilitated, upstream {ct}: {}", r.status));
        }
    }
    // Images still flow; and the viewer application's fonts (octet-stream).
    let r = send(
        &viewer.client,
        Method::GET,
        &preview(&plain.base, "image/jpeg"),
        None,
        None,
    )
    .await;
    if r.status != 200 || find(&r.body, b"BULK-BYTES").is_none() {
        failures.push(format!("view-only, upstream image/jpeg: {}", r.status));
    }
    let font = send(
        &viewer.client,
        Method::GET,
        &format!("{}/web-viewer/libs/fonts/jsglyph.woff", plain.base),
        None,
        None,
    )
    .await;
    if font.status != 200 || font.body.is_empty() {
        failures.push(format!(
            "viewer font: {} {}",
            font.status, font.content_type
        ));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// QIDO UID lists, against the real Orthanc: Orthanc answers a comma list
/// element by element (so espace-ps decides every element: a list mixing an
/// allowed and a refused study is refused), and searches `A\B` as one value
/// (so espace-ps refuses a backslash instead of reading it as a list).
#[tokio::test]
async fn viewer_qido_uid_lists_are_decided_element_by_element() {
    let fx = fixture().await;
    let (proxy, _idp) = start_proxy(&fx, None).await;
    let elise = login(&proxy, ELISE).await;
    let s = fx.study(SCANAP_DOSSIER_SCANNER);
    let (su, xs) = (s.uid.as_str(), fx.other.uid.as_str());
    let count = |r: &Resp| {
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
    };
    // What Orthanc itself does with each spelling (the assumption).
    let direct = reqwest::Client::new();
    for (query, n) in [
        (format!("StudyInstanceUID={su},{xs}"), 2),
        (format!("StudyInstanceUID={su}%2C{xs}"), 2),
        (format!("StudyInstanceUID={su}%5C{xs}"), 0),
        (format!("StudyInstanceUID={su}%5C{su}"), 0),
    ] {
        let r = send(
            &direct,
            Method::GET,
            &format!("{}/dicom-web/studies?{query}", fx.orthanc),
            None,
            None,
        )
        .await;
        assert_eq!(count(&r), Some(n), "Orthanc on {query}");
    }
    // Through espace-ps, for the doctor who may view {su} but not {xs}.
    for (query, ok) in [
        (format!("StudyInstanceUID={su}"), true),
        (format!("StudyInstanceUID={su},{su}"), true),
        (format!("StudyInstanceUID={su},{xs}"), false),
        (format!("StudyInstanceUID={xs},{su}"), false),
        (format!("StudyInstanceUID={su}%2C{xs}"), false),
        (format!("0020000D={su},{xs}"), false),
        (format!("StudyInstanceUID={su}%5C{xs}"), false),
        (format!("StudyInstanceUID={su}%5C{su}"), false),
        (format!("StudyInstanceUID={su}%5c{su}"), false),
    ] {
        let url = format!("{}/dicom-web/studies?{query}", proxy.base);
        let r = send(&elise.client, Method::GET, &url, None, None).await;
        if ok {
            assert_eq!(r.status, 200, "{query}: {}", r.text());
            assert_eq!(count(&r), Some(1), "{query}");
        } else {
            assert_eq!(r.status, 403, "{query}: {}", short(&r.text(), 300));
            assert_our_refusal(&r, REFUSED_TITLE, &query);
            assert!(find(&r.body, xs.as_bytes()).is_none(), "{query}");
        }
    }
}

/// A patient is decided on ALL of its studies, read afresh on each request:
/// a study that arrives for the patient afterwards (here one the records do
/// not know) must not be listed by `/patients/{id}` from a cached list.
#[tokio::test]
async fn viewer_patient_resources_are_decided_on_their_current_studies() {
    let fx = fixture().await;
    let (proxy, _idp) = start_proxy(&fx, None).await;
    let elise = login(&proxy, ELISE).await;
    // Élise is on the care team of every dossier of SCANAP Françoise but
    // FEMUR, which she sees through the patient's whole history (and here
    // by its number too): all of them.
    grant(&proxy, &elise, SCANAP_DOSSIER_FEMUR, "13/08/1961").await;
    let pid = fx.study(SCANAP_DOSSIER_SCANNER).pid().to_owned();
    let url = format!("{}/patients/{pid}", proxy.base);
    let before = send(&elise.client, Method::GET, &url, None, None).await;
    assert_eq!(before.status, 200, "{}", before.text());
    // A new study of the same patient reaches the PACS.
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/tools/create-dicom", fx.orthanc))
        .json(&serde_json::json!({
            "Tags": {
                "PatientID": SCANAP_PATIENT_ID,
                "PatientName": "SCANAP^Francoise",
                "Modality": "OT",
                "StudyDescription": "Examen externe",
            },
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_study = created["ParentStudy"].as_str().unwrap().to_owned();
    assert_eq!(created["ParentPatient"].as_str(), Some(pid.as_str()));
    let after = send(&elise.client, Method::GET, &url, None, None).await;
    let _ = client
        .delete(format!("{}/studies/{new_study}", fx.orthanc))
        .send()
        .await;
    assert!(
        find(&after.body, new_study.as_bytes()).is_none(),
        "the new study is listed: {}",
        after.text()
    );
    assert_eq!(after.status, 403, "{}", short(&after.text(), 300));
    assert_our_refusal(&after, REFUSED_TITLE, "patient with an undecidable study");
}

/// Issue 9 §5: the 10-minute image-view audit window opens only once the
/// audit row is stored. While the insert fails (a trigger raising an error
/// in the real portal database), every image request is refused, not only
/// the first; once the insert works again, one images_view row is written.
#[tokio::test]
async fn image_views_are_refused_while_their_audit_insert_fails() {
    let fx = fixture().await;
    let (proxy, _idp) = start_proxy(&fx, None).await;
    let elise = login(&proxy, ELISE).await;
    let study = fx.study(SCANAP_DOSSIER_SCANNER);
    let url = format!("{}/instances/{}/preview", proxy.base, study.iid());
    let db = proxy.db().await;
    sqlx::query(
        "CREATE TRIGGER audit_fails BEFORE INSERT ON audit_events \
         WHEN NEW.event = 'images_view' \
         BEGIN SELECT RAISE(ABORT, 'audit store failing'); END",
    )
    .execute(db.pool())
    .await
    .unwrap();
    for attempt in 1..=3 {
        let r = send(&elise.client, Method::GET, &url, None, None).await;
        assert_eq!(
            r.status, 503,
            "attempt {attempt} while the audit insert fails: forwarded unaudited"
        );
    }
    sqlx::query("DROP TRIGGER audit_fails")
        .execute(db.pool())
        .await
        .unwrap();
    let r = send(&elise.client, Method::GET, &url, None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let views: Vec<_> = audit_rows(&proxy)
        .await
        .into_iter()
        .filter(|r| r.0 == ELISE && r.1 == "images_view" && r.2 == "success")
        .collect();
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(views[0].3, study.uid);
}

on_both_backends!(audit_rows_carry_the_responses_request_id);

/// A proxy in front of the fixture's Orthanc, its portal database on
/// `backend`, with these `[audit]` lines.
async fn proxy_on(fx: &Fixture, backend: Backend, audit: Option<String>) -> (Proxy, DevIdpServer) {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(super::stores::fresh_pg_database().await),
    };
    let port = free_port();
    let (idp, issuer) = start_dev_idp(&format!("http://127.0.0.1:{port}"), SECRET).await;
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(format!(
            "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\ndev_idp = true\n"
        )),
        upstream: Some(fx.orthanc_addr.clone()),
        records_url: Some(format!("{}?mode=ro", fx.records_url)),
        portal: Some(PORTAL.into()),
        database_url,
        audit,
        ..Default::default()
    })
    .await;
    (proxy, idp)
}

/// The first report of a dossier in the fixture's records.
async fn report_of(fx: &Fixture, dossier: &str) -> String {
    sqlx::any::install_default_drivers();
    let rec = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&fx.records_url)
        .await
        .unwrap();
    sqlx::Row::try_get(
        &sqlx::query("SELECT MIN(report_id) FROM rec_reports WHERE dossier_number = $1")
            .bind(dossier)
            .fetch_one(&rec)
            .await
            .unwrap(),
        0,
    )
    .unwrap()
}

/// The request id a response shows (`X-Request-Id`) is the one its audit
/// row carries: an image shown by the viewer and a report read in the
/// portal, on the portal database of either backend.
async fn audit_rows_carry_the_responses_request_id(backend: Backend) {
    let fx = fixture().await;
    let (proxy, _idp) = proxy_on(&fx, backend, None).await;
    let elise = login(&proxy, ELISE).await;
    let study = fx.study(SCANAP_DOSSIER_SCANNER);
    let report = report_of(&fx, SCANAP_DOSSIER_EPAULE).await;

    let image = send(
        &elise.client,
        Method::GET,
        &format!("{}/instances/{}/preview", proxy.base, study.iid()),
        None,
        None,
    )
    .await;
    assert_eq!(image.status, 200, "{}", short(&image.text(), 300));
    let page = send(
        &elise.client,
        Method::GET,
        &format!("{}/portail/comptes-rendus/{report}", proxy.base),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", short(&page.text(), 300));
    let shown = |r: &Resp| r.header("x-request-id").expect("X-Request-Id").to_owned();
    let (image_id, page_id) = (shown(&image), shown(&page));
    assert_ne!(image_id, page_id);

    let db = proxy.db().await;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query(
        "SELECT event, request_id, COALESCE(study_uid, report_id) FROM audit_events \
         WHERE event IN ('images_view', 'report_view') ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        use sqlx::Row;
        (
            r.try_get(0).unwrap(),
            r.try_get(1).unwrap(),
            r.try_get(2).unwrap(),
        )
    })
    .collect();
    assert_eq!(
        rows,
        [
            (
                "images_view".to_owned(),
                Some(image_id),
                Some(study.uid.clone())
            ),
            ("report_view".to_owned(), Some(page_id), Some(report)),
        ]
    );
}

// ===================================================================== 5. the DICOMweb resolver

mod audit_ship;
mod dicomweb;
