//! Classification of every row of the design's `viewer-routes.md` tables
//! with the shipped Orthanc table: class, level and resource id.

use super::{headers, orthanc};
use crate::viewer::{Class, Classification, IdKind, Level, ResourceRef};

const P: &str = "11111111-11111111-11111111-11111111-11111111";
const S: &str = "22222222-22222222-22222222-22222222-22222222";
const I: &str = "33333333-33333333-33333333-33333333-33333333";

fn classify(method: &str, target: &str, hdrs: &[(&str, &str)]) -> Classification {
    let (_, c) = orthanc()
        .classify_raw(method, target, &headers(hdrs))
        .unwrap_or_else(|e| panic!("{method} {target} rejected: {e}"));
    c
}

fn one_orthanc(id: &str) -> ResourceRef {
    ResourceRef::One {
        kind: IdKind::OrthancId,
        id: id.to_string(),
    }
}

fn one_uid(id: &str) -> ResourceRef {
    ResourceRef::One {
        kind: IdKind::DicomUid,
        id: id.to_string(),
    }
}

#[track_caller]
fn expect(
    method: &str,
    target: &str,
    hdrs: &[(&str, &str)],
    class: Class,
    level: Level,
    resource: ResourceRef,
) {
    match classify(method, target, hdrs) {
        Classification::Candidate(c) => {
            assert_eq!(
                (c.class, c.level, &c.resource),
                (class, level, &resource),
                "{method} {target} (route {})",
                c.route_id
            );
            assert_eq!(c.is_download(), class == Class::Download);
        }
        Classification::Denied(d) => panic!("{method} {target} denied: {}", d.reason),
    }
}

#[track_caller]
fn expect_denied(method: &str, target: &str, hdrs: &[(&str, &str)]) -> crate::viewer::Denied {
    match classify(method, target, hdrs) {
        Classification::Denied(d) => d,
        Classification::Candidate(c) => panic!("{method} {target} classified as {c:?}"),
    }
}

// === Orthanc REST ===

#[test]
fn rest_instance_file_is_d() {
    let t = format!("/instances/{I}/file");
    expect(
        "GET",
        &t,
        &[],
        Class::Download,
        Level::Instance,
        one_orthanc(I),
    );
    expect(
        "HEAD",
        &t,
        &[],
        Class::Download,
        Level::Instance,
        one_orthanc(I),
    );
}

#[test]
fn rest_archive_and_media_are_d_at_their_level() {
    for (lvl, level, id) in [
        ("patients", Level::Patient, P),
        ("studies", Level::Study, S),
        ("series", Level::Series, I),
    ] {
        for what in ["archive", "media"] {
            for m in ["GET", "POST"] {
                expect(
                    m,
                    &format!("/{lvl}/{id}/{what}"),
                    &[],
                    Class::Download,
                    level,
                    one_orthanc(id),
                );
            }
        }
    }
}

#[test]
fn rest_create_archive_reads_the_body() {
    for tool in ["create-archive", "create-media", "create-media-extended"] {
        expect(
            "POST",
            &format!("/tools/{tool}"),
            &[],
            Class::Download,
            Level::Listed,
            ResourceRef::Body {
                kind: IdKind::OrthancId,
                field: "Resources".into(),
            },
        );
    }
    expect(
        "GET",
        &format!("/tools/create-archive?resources={P},{S}"),
        &[],
        Class::Download,
        Level::Listed,
        ResourceRef::List {
            kind: IdKind::OrthancId,
            ids: vec![P.into(), S.into()],
        },
    );
    let d = expect_denied("GET", "/tools/create-archive?resources=*", &[]);
    assert_eq!(d.class, Some(Class::Download));
}

#[test]
fn rest_job_archive_is_a_denied_download() {
    let d = expect_denied("GET", "/jobs/0f8a/archive", &[]);
    assert_eq!(d.class, Some(Class::Download));
    assert_eq!(d.route_id.as_deref(), Some("rest-job-archive"));
    assert!(Classification::Denied(d).is_download());
}

#[test]
fn rest_attachments_are_d_at_any_level() {
    for (lvl, level) in [
        ("patients", Level::Patient),
        ("studies", Level::Study),
        ("series", Level::Series),
        ("instances", Level::Instance),
    ] {
        for what in ["data", "compressed-data"] {
            expect(
                "GET",
                &format!("/{lvl}/{S}/attachments/dicom/{what}"),
                &[],
                Class::Download,
                level,
                one_orthanc(S),
            );
        }
    }
}

#[test]
fn rest_pdf_is_d() {
    expect(
        "GET",
        &format!("/instances/{I}/pdf"),
        &[],
        Class::Download,
        Level::Instance,
        one_orthanc(I),
    );
}

#[test]
fn rest_raw_pixels_are_r() {
    for f in ["image-uint16", "image-int16"] {
        expect(
            "GET",
            &format!("/instances/{I}/frames/0/{f}"),
            &[],
            Class::Raw,
            Level::Instance,
            one_orthanc(I),
        );
        expect(
            "GET",
            &format!("/instances/{I}/{f}"),
            &[],
            Class::Raw,
            Level::Instance,
            one_orthanc(I),
        );
    }
    expect(
        "GET",
        &format!("/instances/{I}/content"),
        &[],
        Class::Raw,
        Level::Instance,
        one_orthanc(I),
    );
    expect(
        "GET",
        &format!("/series/{S}/ordered-slices"),
        &[],
        Class::Raw,
        Level::Series,
        one_orthanc(S),
    );
}

/// Bulk dumps and raw element values (octet-stream, gzip, NumPy, MATLAB,
/// the encapsulated PDF): files to take away, not needed by the shipped
/// viewer. Second security round.
#[test]
fn rest_bulk_values_and_documents_are_d() {
    for f in ["raw", "raw.gz", "numpy", "matlab"] {
        expect(
            "GET",
            &format!("/instances/{I}/frames/0/{f}"),
            &[],
            Class::Download,
            Level::Instance,
            one_orthanc(I),
        );
    }
    for f in ["numpy", "matlab"] {
        expect(
            "GET",
            &format!("/instances/{I}/{f}"),
            &[],
            Class::Download,
            Level::Instance,
            one_orthanc(I),
        );
    }
    for tag in [
        "0042-0011",
        "0042,0011",
        "00420011",
        "EncapsulatedDocument",
        "0010-0010",
        "7fe0-0010/0",
        "0040-a730/0/0042-0011",
    ] {
        expect(
            "GET",
            &format!("/instances/{I}/content/{tag}"),
            &[],
            Class::Download,
            Level::Instance,
            one_orthanc(I),
        );
    }
    expect(
        "GET",
        &format!("/series/{S}/numpy"),
        &[],
        Class::Download,
        Level::Series,
        one_orthanc(S),
    );
    // Asking for bulk octets, gzip or a PDF makes any view a download.
    for accept in [
        "application/octet-stream",
        "application/gzip",
        "application/pdf",
    ] {
        expect(
            "GET",
            &format!("/instances/{I}/preview"),
            &[("Accept", accept)],
            Class::Download,
            Level::Instance,
            one_orthanc(I),
        );
        expect(
            "GET",
            &format!(
                "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/rendered?accept={accept}"
            ),
            &[],
            Class::Download,
            Level::Instance,
            one_uid("1.2.3.4"),
        );
    }
}

#[test]
fn rest_rendered_images_are_v() {
    for f in ["preview", "rendered", "image-uint8"] {
        expect(
            "GET",
            &format!("/instances/{I}/{f}"),
            &[],
            Class::Rendered,
            Level::Instance,
            one_orthanc(I),
        );
        expect(
            "GET",
            &format!("/instances/{I}/frames/3/{f}"),
            &[],
            Class::Rendered,
            Level::Instance,
            one_orthanc(I),
        );
    }
}

#[test]
fn rest_metadata_is_r() {
    for w in ["tags", "simplified-tags", "header"] {
        expect(
            "GET",
            &format!("/instances/{I}/{w}"),
            &[],
            Class::Raw,
            Level::Instance,
            one_orthanc(I),
        );
    }
    for (lvl, level) in [
        ("patients", Level::Patient),
        ("studies", Level::Study),
        ("series", Level::Series),
    ] {
        for w in ["shared-tags", "instances-tags", "module"] {
            expect(
                "GET",
                &format!("/{lvl}/{S}/{w}"),
                &[],
                Class::Raw,
                level,
                one_orthanc(S),
            );
        }
    }
}

#[test]
fn rest_navigation_is_r() {
    expect(
        "GET",
        &format!("/patients/{P}"),
        &[],
        Class::Raw,
        Level::Patient,
        one_orthanc(P),
    );
    expect(
        "GET",
        &format!("/patients/{P}/studies"),
        &[],
        Class::Raw,
        Level::Patient,
        one_orthanc(P),
    );
    expect(
        "GET",
        &format!("/studies/{S}/series"),
        &[],
        Class::Raw,
        Level::Study,
        one_orthanc(S),
    );
    expect(
        "GET",
        &format!("/series/{S}/study"),
        &[],
        Class::Raw,
        Level::Series,
        one_orthanc(S),
    );
    expect(
        "GET",
        &format!("/instances/{I}/series"),
        &[],
        Class::Raw,
        Level::Instance,
        one_orthanc(I),
    );
    expect(
        "GET",
        &format!("/instances/{I}/study"),
        &[],
        Class::Raw,
        Level::Instance,
        one_orthanc(I),
    );
}

/// The patient of a study, series or instance lists every study of the
/// patient: refused (second security round, existence leaks).
#[test]
fn parent_patient_listings_are_denied() {
    for (lvl, id) in [("studies", S), ("series", S), ("instances", I)] {
        let d = expect_denied("GET", &format!("/{lvl}/{id}/patient"), &[]);
        assert_eq!(d.route_id.as_deref(), Some("rest-parent-patient"), "{lvl}");
        let d = expect_denied("HEAD", &format!("/{lvl}/{id}/patient"), &[]);
        assert_eq!(d.route_id.as_deref(), Some("rest-parent-patient"), "{lvl}");
    }
    // No such Orthanc route; not classified either.
    let d = expect_denied("GET", &format!("/patients/{P}/patient"), &[]);
    assert_eq!(d.route_id, None);
    // A patient's own resources stay R at the patient level: the proxy
    // resolves a patient to ALL of its studies and needs every one allowed.
    for w in [
        "",
        "/studies",
        "/series",
        "/instances",
        "/statistics",
        "/shared-tags",
    ] {
        expect(
            "GET",
            &format!("/patients/{P}{w}"),
            &[],
            Class::Raw,
            Level::Patient,
            one_orthanc(P),
        );
    }
}

#[test]
fn rest_lists_are_system_searches() {
    for l in ["patients", "studies", "series", "instances"] {
        expect(
            "GET",
            &format!("/{l}"),
            &[],
            Class::Search,
            Level::System,
            ResourceRef::System,
        );
        expect(
            "GET",
            &format!("/{l}?expand&limit=10"),
            &[],
            Class::Search,
            Level::System,
            ResourceRef::System,
        );
    }
}

#[test]
fn rest_find_is_a_search_and_lookup_is_denied() {
    for t in ["find", "count-resources"] {
        expect(
            "POST",
            &format!("/tools/{t}"),
            &[],
            Class::Search,
            Level::System,
            ResourceRef::System,
        );
    }
    let d = expect_denied("POST", "/tools/lookup", &[]);
    assert!(d.reason.contains("oracle"), "{}", d.reason);
    assert_eq!(d.route_id.as_deref(), Some("rest-lookup"));
}

#[test]
fn web_viewer_is_v_and_its_app_is_shell() {
    expect(
        "GET",
        &format!("/web-viewer/series/{S}"),
        &[],
        Class::Rendered,
        Level::Series,
        one_orthanc(S),
    );
    expect(
        "GET",
        &format!("/web-viewer/is-stable-series/{S}"),
        &[],
        Class::Rendered,
        Level::Series,
        one_orthanc(S),
    );
    expect(
        "GET",
        &format!("/web-viewer/instances/jpeg95-{I}_0"),
        &[],
        Class::Rendered,
        Level::Instance,
        one_orthanc(I),
    );
    expect(
        "GET",
        "/web-viewer/app/viewer.html",
        &[],
        Class::Shell,
        Level::None,
        ResourceRef::None,
    );
    expect(
        "GET",
        "/web-viewer/libs/js/jquery.min.js",
        &[],
        Class::Shell,
        Level::None,
        ResourceRef::None,
    );
    // The shell negotiated as DICOM has no resource: denied.
    expect_denied(
        "GET",
        "/web-viewer/app/viewer.html",
        &[("Accept", "application/dicom")],
    );
}

#[test]
fn rest_side_effects_are_denied_as_x() {
    let cases = [
        ("POST", "/modalities/pacs/store".to_string()),
        ("POST", "/peers/other/store".to_string()),
        ("POST", format!("/instances/{I}/export")),
        ("POST", format!("/studies/{S}/modify")),
        ("POST", format!("/studies/{S}/anonymize")),
        ("POST", "/tools/bulk-delete".to_string()),
        ("POST", "/tools/bulk-modify".to_string()),
        ("DELETE", format!("/instances/{I}")),
        ("DELETE", format!("/patients/{P}")),
        ("PUT", format!("/instances/{I}/metadata/1024")),
        ("POST", "/instances".to_string()),
        ("GET", "/system".to_string()),
        ("GET", "/statistics".to_string()),
        ("GET", "/plugins".to_string()),
        ("GET", "/plugins/dicom-web".to_string()),
        ("GET", "/changes".to_string()),
        ("GET", "/exports".to_string()),
        ("GET", "/tools/now".to_string()),
        ("POST", "/tools/execute-script".to_string()),
        ("GET", "/app/explorer.html".to_string()),
        ("GET", "/jobs".to_string()),
        ("GET", "/jobs/0f8a".to_string()),
        ("GET", "/modalities".to_string()),
    ];
    for (m, t) in &cases {
        let d = expect_denied(m, t, &[]);
        assert_eq!(d.class, Some(Class::SideEffect), "{m} {t}: {}", d.reason);
    }
}

// === DICOMweb ===

#[test]
fn qido_levels_come_from_filters() {
    expect(
        "GET",
        "/dicom-web/studies",
        &[],
        Class::Search,
        Level::System,
        ResourceRef::System,
    );
    expect(
        "GET",
        "/dicom-web/studies?PatientName=DOE*&limit=10",
        &[],
        Class::Search,
        Level::System,
        ResourceRef::System,
    );
    expect(
        "GET",
        "/dicom-web/studies?StudyInstanceUID=1.2.3",
        &[],
        Class::Search,
        Level::Study,
        one_uid("1.2.3"),
    );
    expect(
        "GET",
        "/dicom-web/studies?0020000D=1.2.3",
        &[],
        Class::Search,
        Level::Study,
        one_uid("1.2.3"),
    );
    expect(
        "GET",
        "/dicom-web/series?SeriesInstanceUID=1.2.3.4",
        &[],
        Class::Search,
        Level::Series,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        "/dicom-web/series?0020000e=1.2.3.4&StudyInstanceUID=1.2.3",
        &[],
        Class::Search,
        Level::Series,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        "/dicom-web/instances?SOPInstanceUID=1.2.3.4.5",
        &[],
        Class::Search,
        Level::Instance,
        one_uid("1.2.3.4.5"),
    );
    expect(
        "GET",
        "/dicom-web/instances?00080018=1.2.3.4.5",
        &[],
        Class::Search,
        Level::Instance,
        one_uid("1.2.3.4.5"),
    );
    expect(
        "GET",
        "/dicom-web/studies?PatientID=IPP-42",
        &[],
        Class::Search,
        Level::Patient,
        ResourceRef::One {
            kind: IdKind::PatientId,
            id: "IPP-42".into(),
        },
    );
}

#[test]
fn qido_lists_and_wildcards() {
    let list = ResourceRef::List {
        kind: IdKind::DicomUid,
        ids: vec!["1.2".into(), "1.3".into()],
    };
    for t in [
        "/dicom-web/studies?StudyInstanceUID=1.2,1.3",
        "/dicom-web/studies?StudyInstanceUID=1.2%2C1.3",
        "/dicom-web/studies?0020000D=1.2,1.3",
    ] {
        expect("GET", t, &[], Class::Search, Level::Study, list.clone());
    }
    let unscoped = ResourceRef::Unscoped {
        kind: IdKind::DicomUid,
    };
    for t in [
        "/dicom-web/studies?StudyInstanceUID=1.2*",
        "/dicom-web/studies?StudyInstanceUID=1.?",
        "/dicom-web/studies?StudyInstanceUID=1.2,*",
        "/dicom-web/studies?StudyInstanceUID=",
        "/dicom-web/studies?StudyInstanceUID",
    ] {
        expect("GET", t, &[], Class::Search, Level::Study, unscoped.clone());
    }
    // Repeated ids count once (found by fuzzing).
    expect(
        "GET",
        "/dicom-web/studies?StudyInstanceUID=1.3,1.3",
        &[],
        Class::Search,
        Level::Study,
        one_uid("1.3"),
    );
    expect(
        "GET",
        "/dicom-web/studies?StudyInstanceUID=1.2,1.3,1.2",
        &[],
        Class::Search,
        Level::Study,
        list.clone(),
    );
    // A malformed UID in a list is denied.
    expect_denied("GET", "/dicom-web/studies?StudyInstanceUID=1.2,abc", &[]);
}

/// `A\B` would be split into A and B here, but Orthanc's DICOMweb plugin
/// searches it as one value: refused, in every spelling and for every list
/// filter (second security round). Comma lists stay lists, every element
/// decided by the proxy.
#[test]
fn qido_backslash_lists_are_denied() {
    for t in [
        "/dicom-web/studies?StudyInstanceUID=1.2%5C1.3",
        "/dicom-web/studies?StudyInstanceUID=1.2%5c1.3",
        "/dicom-web/studies?StudyInstanceUID=1.2\\1.3",
        "/dicom-web/studies?StudyInstanceUID=1.3%5C1.3",
        "/dicom-web/studies?0020000D=1.2%5C1.3",
        "/dicom-web/studies?StudyInstanceUID=1.2,1.3%5C1.4",
        "/dicom-web/studies?StudyInstanceUID=1.2%5C*",
        "/dicom-web/studies?StudyInstanceUID=%5C",
        "/dicom-web/series?SeriesInstanceUID=1.2%5C1.3",
        "/dicom-web/instances?SOPInstanceUID=1.2%5C1.3",
        "/dicom-web/studies?PatientID=IPP1%5CIPP2",
    ] {
        let d = expect_denied("GET", t, &[]);
        assert_eq!(d.class, Some(Class::Search), "{t}");
        assert_eq!(d.route_id.as_deref(), Some("qido-root"), "{t}");
    }
    expect_denied("GET", "/tools/create-archive?resources=a%5Cb", &[]);
    // Every element of a comma list is kept, to be decided one by one.
    expect(
        "GET",
        "/dicom-web/series?SeriesInstanceUID=1.2,1.3,1.4",
        &[],
        Class::Search,
        Level::Series,
        ResourceRef::List {
            kind: IdKind::DicomUid,
            ids: vec!["1.2".into(), "1.3".into(), "1.4".into()],
        },
    );
}

#[test]
fn qido_within_a_study_or_series() {
    expect(
        "GET",
        "/dicom-web/studies/1.2/series",
        &[],
        Class::Search,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/instances",
        &[],
        Class::Search,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/series/1.2.3/instances",
        &[],
        Class::Search,
        Level::Series,
        one_uid("1.2.3"),
    );
}

#[test]
fn wado_rs_retrieve_is_d() {
    expect(
        "GET",
        "/dicom-web/studies/1.2",
        &[],
        Class::Download,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/series/1.2.3",
        &[],
        Class::Download,
        Level::Series,
        one_uid("1.2.3"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4",
        &[],
        Class::Download,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2?accept=application/zip",
        &[],
        Class::Download,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2",
        &[("Accept", "application/zip")],
        Class::Download,
        Level::Study,
        one_uid("1.2"),
    );
}

#[test]
fn wado_rs_metadata_and_frames_are_r_bulk_is_d() {
    expect(
        "GET",
        "/dicom-web/studies/1.2/metadata",
        &[],
        Class::Raw,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/series/1.2.3/metadata",
        &[],
        Class::Raw,
        Level::Series,
        one_uid("1.2.3"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/metadata",
        &[],
        Class::Raw,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/frames/1,2,3",
        &[(
            "Accept",
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
        )],
        Class::Raw,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    // Bulk data is any element's raw value (bulk/00420011: an encapsulated
    // PDF): D since the second security round.
    for b in [
        "bulk/7fe00010",
        "bulk/00420011",
        "bulk/00540016/1/00181072",
        "bulkdata/x",
    ] {
        expect(
            "GET",
            &format!("/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/{b}"),
            &[],
            Class::Download,
            Level::Instance,
            one_uid("1.2.3.4"),
        );
    }
}

#[test]
fn wado_rs_metadata_negotiated_as_dicom_is_d() {
    expect(
        "GET",
        "/dicom-web/studies/1.2/metadata",
        &[("Accept", "multipart/related; type=application/dicom")],
        Class::Download,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/metadata?accept=application%2Fdicom",
        &[],
        Class::Download,
        Level::Study,
        one_uid("1.2"),
    );
    expect(
        "GET",
        "/dicom-web/studies/1.2/metadata",
        &[("Accept", "application/dicom+json")],
        Class::Raw,
        Level::Study,
        one_uid("1.2"),
    );
}

#[test]
fn rendered_and_thumbnails_are_v() {
    for w in ["rendered", "thumbnail"] {
        expect(
            "GET",
            &format!("/dicom-web/studies/1.2/{w}"),
            &[],
            Class::Rendered,
            Level::Study,
            one_uid("1.2"),
        );
        expect(
            "GET",
            &format!("/dicom-web/studies/1.2/series/1.2.3/{w}"),
            &[],
            Class::Rendered,
            Level::Series,
            one_uid("1.2.3"),
        );
        expect(
            "GET",
            &format!("/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/{w}"),
            &[],
            Class::Rendered,
            Level::Instance,
            one_uid("1.2.3.4"),
        );
        expect(
            "GET",
            &format!("/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/frames/1/{w}"),
            &[],
            Class::Rendered,
            Level::Instance,
            one_uid("1.2.3.4"),
        );
    }
}

#[test]
fn wado_uri_is_v_or_d() {
    let base = "/wado?requestType=WADO&studyUID=1.2&seriesUID=1.2.3&objectUID=1.2.3.4";
    expect(
        "GET",
        base,
        &[],
        Class::Rendered,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        &format!("{base}&contentType=image/jpeg"),
        &[],
        Class::Rendered,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        &format!("{base}&contentType=application/dicom"),
        &[],
        Class::Download,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        &format!("{base}&contentType=application%2Fdicom"),
        &[],
        Class::Download,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        &format!("{base}&CONTENTTYPE=Application/DICOM"),
        &[],
        Class::Download,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect(
        "GET",
        "/wado?requestType=WADO&objectUID=1.2.3.4",
        &[],
        Class::Rendered,
        Level::Instance,
        one_uid("1.2.3.4"),
    );
    expect_denied("GET", "/wado?objectUID=1.2.3.4", &[]);
    expect_denied("GET", "/wado?requestType=wado&objectUID=1.2.3.4", &[]);
    expect_denied("GET", "/wado?requestType=WADO", &[]);
    expect_denied("GET", "/wado?requestType=WADO&objectUID=1.2,1.3", &[]);
}

#[test]
fn stow_and_servers_are_x() {
    for (m, t) in [
        ("POST", "/dicom-web/studies"),
        ("POST", "/dicom-web/studies/1.2"),
        ("GET", "/dicom-web/servers"),
        ("GET", "/dicom-web/servers/remote/studies"),
        ("POST", "/dicom-web/servers/remote/stow"),
        ("POST", "/dicom-web/servers/remote/retrieve"),
    ] {
        let d = expect_denied(m, t, &[]);
        assert_eq!(d.class, Some(Class::SideEffect), "{m} {t}");
    }
}

#[test]
fn unmatched_is_denied() {
    for (m, t) in [
        ("GET", "/nothing/here"),
        ("GET", "/"),
        ("OPTIONS", "/instances"),
        ("GET", "/Instances"),
        ("GET", "/dicom-web/info"),
    ] {
        let d = expect_denied(m, t, &[]);
        assert_eq!(d.class, None, "{m} {t}");
    }
}

#[test]
fn malformed_ids_are_denied() {
    // Upper-case Orthanc id (a case variant), short ids, non-UID UIDs.
    let upper = "ABCDEF01-ABCDEF01-ABCDEF01-ABCDEF01-ABCDEF01";
    expect(
        "GET",
        &format!("/instances/{}/file", upper.to_lowercase()),
        &[],
        Class::Download,
        Level::Instance,
        one_orthanc(&upper.to_lowercase()),
    );
    expect_denied("GET", &format!("/instances/{upper}/file"), &[]);
    expect_denied("GET", "/instances/abc/file", &[]);
    expect_denied("GET", "/dicom-web/studies/1.2.x", &[]);
    expect_denied("GET", "/dicom-web/studies/1..2", &[]);
    expect_denied("GET", "/dicom-web/studies/1.2,1.3", &[]);
}

#[test]
fn captures_keep_claimed_parents() {
    let target = "/dicom-web/studies/9.9/series/1.2.3/instances/1.2.3.4";
    let c = classify("GET", target, &[]);
    let c = c.candidate().expect("candidate").clone();
    // Decided on the instance: its real parents are resolved, not read
    // from the path.
    assert_eq!(c.resource, one_uid("1.2.3.4"));
    let table = orthanc();
    let req = table
        .canonicalize("GET", target, &headers(&[]))
        .expect("canonical");
    let captures = table.captures_of(&req);
    assert!(captures.contains(&("study".to_string(), "9.9".to_string())));
    assert!(captures.contains(&("series".to_string(), "1.2.3".to_string())));
}
