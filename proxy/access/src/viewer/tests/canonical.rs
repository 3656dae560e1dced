//! Canonicalization: every rejection, and accepted canonical forms.

use super::headers;
use crate::viewer::{canonicalize, MediaType, Rejection};

fn rejected(method: &str, target: &str) -> Rejection {
    match canonicalize(method, target, &[]) {
        Err(e) => e,
        Ok(c) => panic!("{method} {target} accepted as {}", c.target()),
    }
}

#[test]
fn rejects_each_ambiguity() {
    use Rejection::*;
    let long_path = format!("/{}", "a".repeat(2048));
    let long_query = format!("/x?a={}", "b".repeat(4095));
    // Within the limit raw, over it once re-encoded (`;` -> `%3B`): found by
    // fuzzing; the canonical target must stay acceptable.
    let growing_query = format!("/x?a={}", ";".repeat(2000));
    let cases: &[(&str, &str, Rejection)] = &[
        ("GET", "http://orthanc/instances", NotOriginForm),
        ("GET", "https://orthanc:8042/", NotOriginForm),
        ("CONNECT", "orthanc:8042", NotOriginForm),
        ("OPTIONS", "*", NotOriginForm),
        ("GET", "", NotOriginForm),
        ("GET", "/a#frag", Fragment),
        ("GET", &long_path, PathTooLong),
        ("GET", &long_query, QueryTooLong),
        ("GET", &growing_query, QueryTooLong),
        ("GET", "/a/./b", DotSegment),
        ("GET", "/a/../b", DotSegment),
        ("GET", "/a/%2e%2e/b", DotSegment),
        ("GET", "/a/%2E/b", DotSegment),
        ("GET", "/a/.%2e/b", DotSegment),
        ("GET", "/a/%2Fb", EncodedSlash),
        ("GET", "/a/%2fb", EncodedSlash),
        ("GET", "/a/%5Cb", Backslash),
        ("GET", "/a\\b", Backslash),
        ("GET", "/a//b", EmptySegment),
        ("GET", "//host/b", EmptySegment),
        ("GET", "/a/b/", TrailingSlash),
        ("GET", "/a/%00b", ControlCharacter),
        ("GET", "/a/%0d%0aX", ControlCharacter),
        ("GET", "/a/%7f", ControlCharacter),
        ("GET", "/a/%c2%85", ControlCharacter),
        ("GET", "/a/%c0%af", InvalidUtf8),
        ("GET", "/a/%ff", InvalidUtf8),
        ("GET", "/a/%252F", DoubleEncoding),
        ("GET", "/a/%252e%252e", DoubleEncoding),
        ("GET", "/a;jsessionid=1/b", PathParameter),
        ("GET", "/a/b%3Bx", PathParameter),
        ("GET", "/a/%zz", BadPercentEncoding),
        ("GET", "/a/%4", BadPercentEncoding),
        ("GET", "/a b", RawCharacter),
        ("GET", "/a/\u{e9}", RawCharacter),
        ("GET", "/a\"b", RawCharacter),
        ("GET", "/x?a=%00", ControlCharacter),
        ("GET", "/x?a=%2500", DoubleEncoding),
        ("GET", "/x?a=%c0%af", InvalidUtf8),
        ("GET", "/x?a=%", BadPercentEncoding),
        ("GET", "/x?a b=1", RawCharacter),
        ("GET", "/x?=1", BadQueryKey),
        ("GET", "/x?%20StudyInstanceUID=1", BadQueryKey),
        ("get", "/x", BadMethod),
        ("G ET", "/x", BadMethod),
        ("", "/x", BadMethod),
    ];
    for (method, target, want) in cases {
        assert_eq!(&rejected(method, target), want, "{method} {target}");
    }
}

#[test]
fn rejects_duplicate_security_keys_after_mapping() {
    for target in [
        "/dicom-web/studies?StudyInstanceUID=1&StudyInstanceUID=2",
        "/dicom-web/studies?StudyInstanceUID=1&0020000d=2",
        "/dicom-web/studies?studyinstanceuid=1&0020000D=1",
        "/dicom-web/studies?STUDYINSTANCEUID=1&(0020,000D)=1",
        "/dicom-web/studies?0020,000d=1&0020000D=1",
        "/dicom-web/series?SeriesInstanceUID=1&0020000E=2",
        "/dicom-web/instances?SOPInstanceUID=1&00080018=2",
        "/dicom-web/studies?PatientID=a&00100020=b",
        "/wado?requestType=WADO&objectUID=1&OBJECTUID=2",
        "/wado?requestType=WADO&contentType=image/jpeg&contenttype=application/dicom",
        "/dicom-web/studies/1?accept=application/zip&Accept=application/dicom",
        "/x?transfer-syntax=*&TRANSFER-SYNTAX=1.2",
    ] {
        assert!(
            matches!(
                rejected("GET", target),
                Rejection::DuplicateParameter { .. }
            ),
            "{target}"
        );
    }
    // Keys that are not security-relevant may repeat (QIDO includefield).
    assert!(canonicalize(
        "GET",
        "/dicom-web/studies?includefield=a&includefield=b",
        &[]
    )
    .is_ok());
}

#[test]
fn rejects_a_method_override_in_the_query() {
    for target in [
        "/studies/x?_method=DELETE",
        "/instances/x?_METHOD=put",
        "/instances/x/preview?a=1&_Method=POST",
        "/instances/x?_method=GET",
        "/instances/x?_method",
    ] {
        assert_eq!(
            canonicalize("GET", target, &[]),
            Err(Rejection::MethodOverrideParameter { key: "_method" }),
            "{target}"
        );
    }
}

#[test]
fn rejects_method_overrides_that_change_the_method() {
    for name in [
        "X-HTTP-Method-Override",
        "x-http-method",
        "X-Method-Override",
    ] {
        let h = headers(&[(name, "DELETE")]);
        assert_eq!(
            canonicalize("GET", "/instances", &h),
            Err(Rejection::MethodOverride {
                header: super::super::METHOD_OVERRIDE_HEADERS
                    .iter()
                    .find(|x| x.eq_ignore_ascii_case(name))
                    .expect("listed")
            })
        );
    }
    // Same method: harmless (and stripped by the proxy).
    let h = headers(&[("X-HTTP-Method-Override", "GET")]);
    assert!(canonicalize("GET", "/instances", &h).is_ok());
}

#[test]
fn rejects_malformed_media_types() {
    let h = headers(&[("Accept", "multipart/related; type=\"application/dicom")]);
    assert!(matches!(
        canonicalize("GET", "/x", &h),
        Err(Rejection::BadMediaType { .. })
    ));
    assert!(matches!(
        canonicalize("GET", "/x?accept=application", &[]),
        Err(Rejection::BadMediaType { .. })
    ));
}

#[test]
fn accepted_canonical_forms() {
    let cases: &[(&str, &str, &str)] = &[
        ("GET", "/", "/"),
        ("GET", "/instances", "/instances"),
        ("HEAD", "/instances", "/instances"),
        ("GET", "/a/%41%62c", "/a/Abc"),
        ("GET", "/a/b%20c", "/a/b%20c"),
        ("GET", "/a/b+c", "/a/b+c"),
        ("GET", "/a/%C3%A9t%C3%A9", "/a/%C3%A9t%C3%A9"),
        ("GET", "/a/%3f", "/a/%3F"),
        ("GET", "/x?", "/x"),
        ("GET", "/x?&&a=1&&", "/x?a=1"),
        ("GET", "/x?expand", "/x?expand"),
        ("GET", "/x?expand=", "/x?expand="),
        ("GET", "/x?a=b+c", "/x?a=b%20c"),
        ("GET", "/x?a=b%2Bc", "/x?a=b%2Bc"),
        ("GET", "/x?a=1;b=2", "/x?a=1%3Bb%3D2"),
        ("GET", "/x?a=%7e", "/x?a=~"),
        (
            "GET",
            "/dicom-web/studies?studyinstanceuid=1.2",
            "/dicom-web/studies?StudyInstanceUID=1.2",
        ),
        (
            "GET",
            "/dicom-web/studies?0020000d=1.2",
            "/dicom-web/studies?StudyInstanceUID=1.2",
        ),
        (
            "GET",
            "/dicom-web/studies?(0020,000D)=1.2",
            "/dicom-web/studies?StudyInstanceUID=1.2",
        ),
        (
            "GET",
            "/dicom-web/studies?00100010=DOE*",
            "/dicom-web/studies?PatientName=DOE*",
        ),
        (
            "GET",
            "/dicom-web/studies?00091001=x",
            "/dicom-web/studies?00091001=x",
        ),
        (
            "GET",
            "/dicom-web/studies?StudyInstanceUID=1.2%2C1.3",
            "/dicom-web/studies?StudyInstanceUID=1.2,1.3",
        ),
        (
            "GET",
            "/dicom-web/studies?StudyInstanceUID=1.2%5C1.3",
            "/dicom-web/studies?StudyInstanceUID=1.2%5C1.3",
        ),
        (
            "GET",
            "/dicom-web/studies?StudyInstanceUID=1.2\\1.3",
            "/dicom-web/studies?StudyInstanceUID=1.2%5C1.3",
        ),
        (
            "GET",
            "/s?ACCEPT=application%2Fzip",
            "/s?accept=application/zip",
        ),
        (
            "GET",
            "/wado?REQUESTTYPE=WADO&ObjectUid=1.2",
            "/wado?requestType=WADO&objectUID=1.2",
        ),
        (
            "GET",
            "/s?accept=multipart/related;%20type=%22application/dicom%22",
            "/s?accept=multipart/related%3B%20type%3D%22application/dicom%22",
        ),
    ];
    for (method, target, want) in cases {
        let c = canonicalize(method, target, &[]).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(c.target(), *want, "{target}");
        assert_eq!(c.method(), *method);
        // Idempotent.
        let again = canonicalize(method, &c.target(), &[]).expect("canonical accepted");
        assert_eq!(again, c, "{target}");
    }
}

#[test]
fn head_is_matched_as_get() {
    let c = canonicalize("HEAD", "/instances", &[]).expect("ok");
    assert_eq!(c.method(), "HEAD");
    assert_eq!(c.route_method(), "GET");
}

#[test]
fn exposes_negotiated_media_types() {
    let h = headers(&[
        (
            "Accept",
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*, image/jpeg;q=0.5",
        ),
        ("accept", "APPLICATION/ZIP"),
    ]);
    let c = canonicalize(
        "GET",
        "/s?accept=application%2Fdicom%3Btransfer-syntax%3D1.2.840.10008.1.2.1",
        &h,
    )
    .expect("ok");
    let header: Vec<&MediaType> = c.accept_header().iter().collect();
    assert_eq!(header.len(), 3);
    assert_eq!(header[0].essence, "multipart/related");
    assert_eq!(header[0].param("type"), Some("application/dicom"));
    assert_eq!(header[0].param("transfer-syntax"), Some("*"));
    assert_eq!(header[1].param("q"), Some("0.5"));
    assert_eq!(header[2].essence, "application/zip");
    let param = c.accept_param();
    assert_eq!(param.len(), 1);
    assert_eq!(param[0].essence, "application/dicom");
    assert_eq!(
        param[0].param("transfer-syntax"),
        Some("1.2.840.10008.1.2.1")
    );
}

#[test]
fn security_keywords_resolve_through_the_dictionary() {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    use dicom_core::Tag;
    let dict = dicom_dictionary_std::StandardDataDictionary;
    for (kw, tag) in [
        ("StudyInstanceUID", Tag(0x0020, 0x000D)),
        ("SeriesInstanceUID", Tag(0x0020, 0x000E)),
        ("SOPInstanceUID", Tag(0x0008, 0x0018)),
        ("PatientID", Tag(0x0010, 0x0020)),
    ] {
        assert!(super::super::BUILTIN_SECURITY_KEYS.contains(&kw));
        assert_eq!(dict.by_name(kw).map(|e| e.tag()), Some(tag), "{kw}");
        assert_eq!(dict.by_tag(tag).map(|e| e.alias()), Some(kw), "{kw}");
    }
}

#[test]
fn non_ascii_query_keys_of_tag_length_do_not_panic() {
    // Found by cargo-fuzz: a 9-byte key with a multi-byte character at byte
    // 4 made the tag parser slice inside the character.
    for target in [
        "/wado?abc%C3%9Cdef=1",
        "/wado?(ab%C7%9Cef)=1",
        "/wado?%C3%9C%C3%9C%C3%9C%C3%9C=1",
    ] {
        let _ = canonicalize("GET", target, &[]);
    }
}

/// A path segment or a query part without escapes is taken as is (no
/// decoding): it must mean what its escaped spelling means, with the same
/// refusals, for every printable ASCII character.
#[test]
fn unescaped_parts_read_like_their_escaped_spelling() {
    let canon = |t: &str| canonicalize("GET", t, &[]).map(|c| c.target());
    for b in 0x21u8..0x7f {
        let c = b as char;
        let escaped = format!("%{b:02X}");
        // Path: characters a raw path may hold (others are refused raw).
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            for (raw, enc) in [
                (format!("/a/x{c}y"), format!("/a/x{escaped}y")),
                (format!("/a/{c}"), format!("/a/{escaped}")),
                (format!("/a/{c}{c}"), format!("/a/{escaped}{escaped}")),
            ] {
                assert_eq!(canon(&raw), canon(&enc), "{raw} vs {enc}");
            }
        }
        // Query: anything printable but the separators and escapes.
        if !"%+&=#".contains(c) {
            for (raw, enc) in [
                (format!("/a?k=x{c}y"), format!("/a?k=x{escaped}y")),
                (format!("/a?k{c}=v"), format!("/a?k{escaped}=v")),
                (format!("/a?k={c}"), format!("/a?k={escaped}")),
            ] {
                assert_eq!(canon(&raw), canon(&enc), "{raw} vs {enc}");
            }
        }
    }
}

/// The headers `reads_header` leaves out do not change the canonical request
/// nor a refusal: a caller may pass only the ones it names.
#[test]
fn only_the_headers_read_matter() {
    use crate::viewer::reads_header;
    let sets: &[&[(&str, &str)]] = &[
        &[("Host", "x"), ("Cookie", "a=b"), ("Accept", "image/jpeg")],
        &[("accept", "application/dicom"), ("user-agent", "u")],
        &[("X-HTTP-Method-Override", "DELETE"), ("cookie", "a=b")],
        &[
            ("x-method-override", "GET"),
            ("ACCEPT", "not a media type;;"),
        ],
        &[("referer", "/x"), ("x-http-method", "PUT")],
        &[("authorization", "Bearer x"), ("forwarded", "for=1.2.3.4")],
    ];
    for set in sets {
        let all = headers(set);
        let read: Vec<(String, String)> = all
            .iter()
            .filter(|(n, _)| reads_header(n))
            .cloned()
            .collect();
        for target in ["/a/b", "/dicom-web/studies/1.2?accept=image/png"] {
            assert_eq!(
                canonicalize("GET", target, &all),
                canonicalize("GET", target, &read),
                "{set:?} {target}"
            );
        }
    }
    assert!(reads_header("Accept") && reads_header("X-Http-Method"));
    assert!(!reads_header("cookie") && !reads_header("host"));
}

/// The length limits at their bounds, read on the canonical target (what
/// is forwarded): a query that grows when re-encoded (`;` -> `%3B`) is
/// measured after it grows.
#[test]
fn limits_hold_at_their_bounds() {
    use super::super::canonical::{MAX_PATH_BYTES, MAX_QUERY_BYTES};
    let path = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
    let c = canonicalize("GET", &path, &[]).expect("a path of the limit's length");
    assert_eq!(c.target(), path);
    assert_eq!(rejected("GET", &format!("{path}a")), Rejection::PathTooLong);
    // "a=" + 1364 × "%3B" + "bb": 4096 bytes once re-encoded, 1368 raw.
    let at_limit = format!("/x?a={}bb", ";".repeat(1364));
    let c = canonicalize("GET", &at_limit, &[]).expect("a query of the limit's length");
    let query = c.target_str().split_once('?').expect("a query").1.len();
    assert_eq!(query, MAX_QUERY_BYTES);
    assert_eq!(
        rejected("GET", &format!("{at_limit}b")),
        Rejection::QueryTooLong
    );
}
