//! Generated studies against a REAL Orthanc (the viewer/PACS stand-in).
//!
//! Uses `ESPACE_TEST_ORTHANC_URL` when set (an Orthanc with the DICOMweb and
//! Web Viewer plugins, e.g. started by `scripts/lib/orthanc.sh`); otherwise
//! starts `/usr/sbin/Orthanc` with a temporary config on free loopback
//! ports, and fails with a clear message if Orthanc is not installed.

use std::time::Duration;

use espace_ps_dicomgen::orthanc::{orthanc_ids, OrthancServer};
use espace_ps_dicomgen::{generate_study, upload_study, StudySpec};
use serde_json::Value;

fn spec(uid: &str, modality: &str, accession: &str, description: &str) -> StudySpec {
    StudySpec {
        study_instance_uid: uid.into(),
        accession_number: accession.into(),
        modality: modality.into(),
        description: description.into(),
        study_date: "20261103".into(),
        patient_id: "ITEST-IPP-0042".into(),
        family_name: "LEFÈVRE".into(),
        given_name: "Hélène".into(),
        sex: "F".into(),
        birth_date: "19580214".into(),
    }
}

struct Peer {
    base: String,
    // Dropped last: the server is killed before its data directory goes.
    _server: Option<OrthancServer>,
    _dir: Option<tempfile::TempDir>,
}

async fn orthanc() -> Peer {
    if let Ok(url) = std::env::var("ESPACE_TEST_ORTHANC_URL") {
        if !url.is_empty() {
            return Peer {
                base: url.trim_end_matches('/').to_string(),
                _server: None,
                _dir: None,
            };
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = OrthancServer::start(dir.path(), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("cannot start a test Orthanc: {e}"));
    Peer {
        base: server.base_url().to_string(),
        _server: Some(server),
        _dir: Some(dir),
    }
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, String, Vec<u8>) {
    let r = c
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.bytes().await.expect("body").to_vec();
    (status, ct, body)
}

fn is_jpeg(b: &[u8]) -> bool {
    b.len() > 100 && b.starts_with(&[0xFF, 0xD8])
}

fn is_png(b: &[u8]) -> bool {
    b.len() > 50 && b.starts_with(b"\x89PNG")
}

fn qido_str<'a>(item: &'a Value, tag: &str) -> &'a Value {
    &item[tag]["Value"][0]
}

fn parse_dicom(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
    assert!(
        bytes.len() > 132 && &bytes[128..132] == b"DICM",
        "not a Part-10 file"
    );
    dicom_object::from_reader(&bytes[128..]).expect("Part-10 parses")
}

fn sop_uid(obj: &dicom_object::DefaultDicomObject) -> String {
    obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

#[tokio::test]
async fn generated_studies_are_served_by_orthanc() {
    let peer = orthanc().await;
    let base = peer.base.as_str();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let specs = [
        spec(
            "1.2.250.1.999.42.1.20261103.1",
            "CT",
            "ITEST0001",
            "SCANNER CEREBRAL",
        ),
        spec(
            "1.2.250.1.999.42.1.20261103.2",
            "DX",
            "ITEST0002",
            "RADIO THORAX",
        ),
    ];
    let mut uploaded = Vec::new();
    for sp in &specs {
        let instances = generate_study(sp).unwrap();
        let up = upload_study(&c, base, &instances).await.expect("upload");
        assert_eq!(up.instances.len(), instances.len());
        // Orthanc ids are SHA-1 hashes of the DICOM identifiers: check our
        // computation against the real thing.
        for (u, i) in up.instances.iter().zip(&instances) {
            let ids = orthanc_ids(
                &sp.patient_id,
                &sp.study_instance_uid,
                &i.series_instance_uid,
                &i.sop_instance_uid,
            );
            assert_eq!(ids.patient, u.parent_patient);
            assert_eq!(ids.study, u.parent_study);
            assert_eq!(ids.series, u.parent_series);
            assert_eq!(ids.instance, u.orthanc_id);
        }
        // Uploading again is harmless.
        let again = upload_study(&c, base, &instances[..1])
            .await
            .expect("re-upload");
        assert_eq!(again.instances[0].status, "AlreadyStored");
        assert_eq!(again.study, up.study);
        uploaded.push((sp, instances, up));
    }

    // GET /studies lists both.
    let (st, ct, body) = get(&c, &format!("{base}/studies")).await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    let list: Vec<String> = serde_json::from_slice(&body).unwrap();
    for (_, _, up) in &uploaded {
        assert!(
            list.contains(&up.study),
            "{} missing from /studies",
            up.study
        );
    }

    let (sp, instances, up) = &uploaded[0];
    let uid = &sp.study_instance_uid;
    let inst = &instances[2];
    let inst_orthanc = &up.instances[2].orthanc_id;

    // QIDO-RS: DICOM JSON with the UTF-8 name and an ABSOLUTE backend RetrieveURL.
    let (st, ct, body) = get(
        &c,
        &format!("{base}/dicom-web/studies?StudyInstanceUID={uid}"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(ct, "application/dicom+json");
    let qido: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(qido.len(), 1);
    assert_eq!(
        qido_str(&qido[0], "00100010")["Alphabetic"],
        "LEFÈVRE^Hélène"
    );
    assert_eq!(qido_str(&qido[0], "0020000D"), uid.as_str());
    assert_eq!(qido_str(&qido[0], "00080050"), "ITEST0001");
    let retrieve = qido_str(&qido[0], "00081190").as_str().unwrap();
    assert_eq!(
        retrieve,
        format!("{base}/dicom-web/studies/{uid}"),
        "RetrieveURL is an absolute backend URL"
    );

    // The plugin builds that URL from the request's Host header, and from an
    // RFC 7239 `Forwarded` header when there is one (not X-Forwarded-*): a
    // proxy must set or strip both.
    let r = c
        .get(format!("{base}/dicom-web/studies?StudyInstanceUID={uid}"))
        .header("Forwarded", "host=portal.example;proto=https")
        .send()
        .await
        .unwrap();
    let fwd: Vec<Value> = r.json().await.unwrap();
    assert_eq!(
        qido_str(&fwd[0], "00081190").as_str().unwrap(),
        format!("https://portal.example/dicom-web/studies/{uid}")
    );

    // WADO-RS rendered: a JPEG (PNG on request).
    let rendered = format!(
        "{base}/dicom-web/studies/{uid}/series/{}/instances/{}/rendered",
        inst.series_instance_uid, inst.sop_instance_uid
    );
    let (st, ct, body) = get(&c, &rendered).await;
    assert_eq!((st, ct.as_str()), (200, "image/jpeg"));
    assert!(is_jpeg(&body));
    let r = c
        .get(&rendered)
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[reqwest::header::CONTENT_TYPE], "image/png");
    assert!(is_png(&r.bytes().await.unwrap()));

    // REST: the stored file is byte-identical to what we generated.
    let (st, ct, body) = get(&c, &format!("{base}/instances/{inst_orthanc}/file")).await;
    assert_eq!((st, ct.as_str()), (200, "application/dicom"));
    assert_eq!(sop_uid(&parse_dicom(&body)), inst.sop_instance_uid);
    assert_eq!(body, inst.bytes);

    // WADO-URI: an image by default, Part-10 with contentType=application/dicom.
    let wado = format!(
        "{base}/wado?requestType=WADO&studyUID={uid}&seriesUID={}&objectUID={}",
        inst.series_instance_uid, inst.sop_instance_uid
    );
    let (st, ct, body) = get(&c, &wado).await;
    assert_eq!(st, 200);
    // Orthanc-dicomweb 1.7 labels this JPEG body `image/png`.
    assert!(ct.starts_with("image/"), "{ct}");
    assert!(is_jpeg(&body) || is_png(&body));
    let (st, ct, body) = get(&c, &format!("{wado}&contentType=application/dicom")).await;
    assert_eq!((st, ct.as_str()), (200, "application/dicom"));
    assert_eq!(sop_uid(&parse_dicom(&body)), inst.sop_instance_uid);
    // objectUID alone is enough, even for the DICOM file.
    let (st, ct, _) = get(
        &c,
        &format!(
            "{base}/wado?requestType=WADO&objectUID={}&contentType=application/dicom",
            inst.sop_instance_uid
        ),
    )
    .await;
    assert_eq!((st, ct.as_str()), (200, "application/dicom"));

    // The web viewer is there.
    let (st, ct, body) = get(&c, &format!("{base}/web-viewer/app/viewer.html")).await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(String::from_utf8_lossy(&body).contains("<html"));
    let series_orthanc = &up.series[0].1;
    let (st, _, body) = get(&c, &format!("{base}/web-viewer/series/{series_orthanc}")).await;
    assert_eq!(st, 200);
    let wv: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(wv["PatientName"], "LEFÈVRE^Hélène");

    // /tools/find (POST) and /tools/lookup.
    let found: Vec<String> = c
        .post(format!("{base}/tools/find"))
        .json(&serde_json::json!({"Level": "Study", "Query": {"StudyInstanceUID": uid}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found, vec![up.study.clone()]);
    let by_patient: Vec<String> = c
        .post(format!("{base}/tools/find"))
        .json(&serde_json::json!({"Level": "Study", "Query": {"PatientID": sp.patient_id}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(by_patient.contains(&uploaded[0].2.study) && by_patient.contains(&uploaded[1].2.study));
    let lookup: Vec<Value> = c
        .post(format!("{base}/tools/lookup"))
        .body(uid.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lookup[0]["ID"], up.study.as_str());
    assert_eq!(lookup[0]["Type"], "Study");
}
