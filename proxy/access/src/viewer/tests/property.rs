//! Seeded property test: the fuzz target's invariants
//! ([`crate::viewer::fuzzing::check`]) on generated requests. Runs in every
//! `cargo test`; `VIEWER_PROPTEST_ITERS` raises the number of requests.

use super::orthanc;
use crate::viewer::fuzzing;

/// xorshift64*: small, deterministic, good enough to shuffle fragments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

const I: &str = "33333333-33333333-33333333-33333333-33333333";

const SEGMENTS: &[&str] = &[
    "instances",
    "studies",
    "series",
    "patients",
    "dicom-web",
    "wado",
    "web-viewer",
    "app",
    "tools",
    "file",
    "archive",
    "media",
    "frames",
    "0",
    "1,2",
    "raw",
    "preview",
    "rendered",
    "thumbnail",
    "metadata",
    "bulk",
    "bulkdata",
    "7fe00010",
    "attachments",
    "dicom",
    "data",
    "content",
    "tags",
    "create-archive",
    "lookup",
    "jobs",
    "find",
    "jpeg95-",
    "_0",
    I,
    "1.2",
    "1.2.3",
    "1.2.3.4",
    "*",
    "%2e%2e",
    "%2F",
    "%5C",
    "%252F",
    "%c0%af",
    "%2E",
    ".",
    "..",
    "",
    "%00",
    ";x",
    "%3B",
    "%41",
    "é",
    "%C3%A9",
    "%3F",
    "+",
    " ",
    "\\",
    "%",
    "%2",
    "~",
];

const KEYS: &[&str] = &[
    "StudyInstanceUID",
    "studyinstanceuid",
    "0020000D",
    "0020000d",
    "(0020,000D)",
    "0020,000d",
    "SeriesInstanceUID",
    "0020000E",
    "SOPInstanceUID",
    "00080018",
    "PatientID",
    "00100020",
    "requestType",
    "REQUESTTYPE",
    "objectUID",
    "studyUID",
    "seriesUID",
    "contentType",
    "accept",
    "ACCEPT",
    "type",
    "transfer-syntax",
    "resources",
    "limit",
    "includefield",
    "PatientName",
    "00100010",
    "expand",
    "",
    "%20",
    "a%3Db",
];

const VALUES: &[&str] = &[
    "1.2",
    "1.2,1.3",
    "1.2%2C1.3",
    "1.2%5C1.3",
    "1.2\\1.3",
    "1.2*",
    "?",
    "",
    "WADO",
    "wado",
    "application/dicom",
    "application%2Fdicom",
    "APPLICATION/ZIP",
    "application/zip",
    "multipart/related;type=%22application/dicom%22",
    "multipart/related; type=\"application/dicom\"",
    "image/jpeg",
    "application/dicom+json",
    "%00",
    "%252F",
    "a+b",
    "%2B",
    I,
    "x=y",
    "%c0%af",
    "*",
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "",
];

const HEADERS: &[(&str, &str)] = &[
    ("Accept", "application/dicom"),
    (
        "Accept",
        "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
    ),
    ("Accept", "application/zip, image/jpeg;q=0.5"),
    ("Accept", "*/*"),
    ("Accept", "application/dicom+json"),
    ("Accept", "multipart/related; type=\"application/dicom"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method-Override", "GET"),
    ("x-method-override", "POST"),
];

/// Valid requests to mutate.
const TEMPLATES: &[&str] = &[
    "/instances/33333333-33333333-33333333-33333333-33333333/file",
    "/instances/33333333-33333333-33333333-33333333-33333333/preview",
    "/instances/33333333-33333333-33333333-33333333-33333333/frames/0/raw",
    "/studies/33333333-33333333-33333333-33333333-33333333/archive",
    "/series/33333333-33333333-33333333-33333333-33333333/attachments/dicom/data",
    "/patients",
    "/tools/create-archive?resources=33333333-33333333-33333333-33333333-33333333",
    "/dicom-web/studies?StudyInstanceUID=1.2,1.3",
    "/dicom-web/studies?PatientID=P1&limit=10",
    "/dicom-web/studies/1.2",
    "/dicom-web/studies/1.2/metadata",
    "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/frames/1",
    "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4/bulk/7fe00010",
    "/dicom-web/studies/1.2/series/1.2.3/rendered",
    "/wado?requestType=WADO&objectUID=1.2.3.4",
    "/wado?requestType=WADO&objectUID=1.2.3.4&contentType=application/dicom",
    "/web-viewer/app/viewer.html",
    "/web-viewer/series/33333333-33333333-33333333-33333333-33333333",
    "/web-viewer/instances/jpeg95-33333333-33333333-33333333-33333333-33333333_0",
];

const INSERTS: &[&str] = &[
    "/",
    "//",
    "/..",
    "/.",
    "%2e",
    "%2F",
    "%5C",
    "%252F",
    "%c0%af",
    "?",
    "&",
    "=",
    ";",
    "%00",
    "\\",
    "&StudyInstanceUID=1.2",
    "&0020000d=1.3",
    "&accept=application%2Fzip",
    "&contentType=application/dicom",
    "&objectUID=1.2",
    "*",
    ",",
    "%2C",
    "A",
    "é",
    "#",
    " ",
    "+",
    "%41",
];

fn mutate(rng: &mut Rng) -> String {
    let mut t = rng.pick(TEMPLATES).to_string();
    for _ in 0..rng.next() % 3 {
        let ins = rng.pick(INSERTS);
        let mut at = (rng.next() % (t.len() as u64 + 1)) as usize;
        while !t.is_char_boundary(at) {
            at -= 1;
        }
        if rng.chance(2) {
            t.push_str(ins);
        } else {
            t.insert_str(at, ins);
        }
    }
    t
}

fn generate(rng: &mut Rng) -> (String, String, Vec<(String, String)>) {
    let method = if rng.chance(3) {
        rng.pick(METHODS)
    } else {
        "GET"
    }
    .to_string();
    if rng.chance(2) {
        let mut headers = Vec::new();
        if rng.chance(3) {
            let (n, v) = HEADERS[(rng.next() % HEADERS.len() as u64) as usize];
            headers.push((n.to_string(), v.to_string()));
        }
        return (method, mutate(rng), headers);
    }
    let mut target = String::new();
    if rng.chance(40) {
        target.push_str(rng.pick(&["http://h", "*", "", "h:1"]));
    }
    let n = 1 + rng.next() % 7;
    for _ in 0..n {
        target.push('/');
        target.push_str(rng.pick(SEGMENTS));
        if rng.chance(6) {
            target.push_str(rng.pick(SEGMENTS));
        }
    }
    if rng.chance(8) {
        target.push('/');
    }
    if rng.chance(2) {
        let m = 1 + rng.next() % 4;
        for j in 0..m {
            target.push(if j == 0 { '?' } else { '&' });
            target.push_str(rng.pick(KEYS));
            if !rng.chance(8) {
                target.push('=');
                target.push_str(rng.pick(VALUES));
            }
        }
    }
    if rng.chance(50) {
        target.push('#');
    }
    let mut headers = Vec::new();
    for _ in 0..rng.next() % 3 {
        let (n, v) = HEADERS[(rng.next() % HEADERS.len() as u64) as usize];
        headers.push((n.to_string(), v.to_string()));
    }
    (method, target, headers)
}

#[test]
fn generated_requests_keep_the_invariants() {
    let iters: u64 = std::env::var("VIEWER_PROPTEST_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let table = orthanc();
    let mut rng = Rng(0x5eed_e5ba_ce00_0001);
    let mut counts = [0u64; 3];
    for _ in 0..iters {
        let (method, target, headers) = generate(&mut rng);
        counts[fuzzing::check(table, &method, &target, &headers) as usize] += 1;
    }
    // The generator must reach every outcome, not only rejections.
    let [rejected, denied, candidates] = counts;
    eprintln!("{iters} requests: {rejected} rejected, {denied} denied, {candidates} candidates");
    assert!(candidates * 10 > iters, "too few candidates: {counts:?}");
    assert!(denied * 20 > iters, "too few denials: {counts:?}");
}

#[test]
fn corpus_targets_keep_the_invariants_under_byte_input() {
    // The byte splitter of the fuzz target on a few hand-written inputs.
    let table = orthanc();
    for input in [
        &b"GET\n/dicom-web/studies/1.2/metadata?accept=application%2Fzip\nAccept: */*"[..],
        b"HEAD\n/instances/33333333-33333333-33333333-33333333-33333333/file",
        b"GET\n/wado?requestType=WADO&objectUID=1.2&contentType=application/dicom",
        b"\xff\xfe\n\x00",
        b"",
    ] {
        fuzzing::check_bytes(table, input);
    }
}

/// The first-segment index against a scan of every route, on a table whose
/// routes start with literals, alternatives, captures, a mixed segment and
/// `**` in an order where merging the index's two lists matters (a route
/// starting with a capture, before a literal one that matches the same
/// request, must still win).
#[test]
fn first_segment_index_classifies_as_a_scan() {
    let route = |id: &str, pattern: &str, class: &str| {
        format!(
            "[[route]]\nid = \"{id}\"\nmethods = [\"GET\"]\npattern = \"{pattern}\"\nclass = \"{class}\"\nlevel = \"study\"\nresource = \"path:s\"\nkind = \"dicom-uid\"\n"
        )
    };
    let text = [
        "[viewer]\nname = \"t\"\n[segment_levels]\nstudies = \"study\"\n".to_string(),
        route("lit-a", "/studies/{s}/a", "R"),
        route("any-b", "/{s}/b", "V"),
        route("any-e", "/{t}/{s}/e", "V"),
        route("one-of", "/{k=studies|series}/{s}/c", "V"),
        route("lit-d", "/studies/{s}/d", "R"),
        route("mixed", "/x{s}/d", "V"),
        // Matches /studies/1.2/e too, after any-e: any-e must win.
        route("lit-late", "/studies/{s}/{u}", "R"),
        route("rest", "/{s}/**", "V"),
    ]
    .concat();
    let table = crate::viewer::RouteTable::parse("t.toml", &text).unwrap_or_else(|ps| {
        panic!(
            "{:?}",
            ps.iter().map(ToString::to_string).collect::<Vec<_>>()
        )
    });
    let firsts = ["studies", "series", "x1.2", "1.2", "x", "other"];
    let seconds = ["1.2", "studies", "b", "d"];
    let thirds = ["a", "b", "c", "d", "e"];
    let mut routes_hit = std::collections::BTreeSet::new();
    for f in firsts {
        for s in seconds {
            for t in thirds {
                for target in [
                    format!("/{f}"),
                    format!("/{f}/{s}"),
                    format!("/{f}/{s}/{t}"),
                ] {
                    let req = table.canonicalize("GET", &target, &[]).unwrap();
                    let class = table.classify(&req);
                    assert_eq!(class, table.classify_by_scan(&req), "{target}");
                    if let Some(c) = class.candidate() {
                        routes_hit.insert(c.route_id.clone());
                    }
                }
            }
        }
    }
    // Every kind of first segment decided some request.
    assert_eq!(routes_hit.len(), 8, "{routes_hit:?}");
}

/// The id checks read bytes in one pass; they accept exactly what their
/// definition by parts accepts (Orthanc: five groups of eight lowercase hex
/// digits joined by '-'; DICOM UID: non-empty digit components joined by
/// '.', at most 64 bytes), on ids built near that shape.
#[test]
fn id_checks_agree_with_their_definition_by_parts() {
    use crate::viewer::classify::check_id;
    use crate::viewer::IdKind;
    let orthanc_by_parts = |id: &str| {
        id.len() == 44
            && id.split('-').count() == 5
            && id.split('-').all(|g| {
                g.len() == 8
                    && g.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
    };
    let uid_by_parts = |id: &str| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .split('.')
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut rng = Rng(0x1d5e_ed00_c0ff_ee01);
    let (mut orthanc_ok, mut uid_ok) = (0, 0);
    for _ in 0..200_000 {
        // Start from a valid id and disturb a few bytes (or the length).
        let mut o: Vec<u8> = I.bytes().collect();
        let mut u: Vec<u8> = b"1.2.840.10008.5.1.4.1.1.7".to_vec();
        for id in [&mut o, &mut u] {
            for _ in 0..(rng.next() % 3) {
                let at = (rng.next() % (id.len() as u64 + 1)) as usize;
                let byte = rng.pick(&["0", "9", "a", "f", "g", "A", "-", ".", "é"]);
                match rng.next() % 3 {
                    0 if at < id.len() => {
                        id.remove(at);
                    }
                    1 if at < id.len() => id[at] = byte.as_bytes()[0],
                    _ => {
                        for (k, b) in byte.bytes().enumerate() {
                            id.insert(at + k, b);
                        }
                    }
                }
            }
            if rng.chance(50) {
                let n = id.len();
                id.extend_from_within(..n.min(40));
            }
        }
        let (Ok(o), Ok(u)) = (String::from_utf8(o), String::from_utf8(u)) else {
            continue;
        };
        for (kind, id, expected) in [
            (IdKind::OrthancId, &o, orthanc_by_parts(&o)),
            (IdKind::DicomUid, &u, uid_by_parts(&u)),
            (IdKind::DicomUid, &o, uid_by_parts(&o)),
            (IdKind::OrthancId, &u, orthanc_by_parts(&u)),
        ] {
            assert_eq!(check_id(kind, id).is_ok(), expected, "{kind:?} {id:?}");
        }
        orthanc_ok += usize::from(orthanc_by_parts(&o));
        uid_ok += usize::from(uid_by_parts(&u));
    }
    // The bounds generated ids seldom reach: empty, and the 64-byte limit.
    let uid64 = format!("1.{}", "2".repeat(62));
    assert_eq!(uid64.len(), 64);
    for (id, expected) in [("", false), (uid64.as_str(), true)] {
        assert_eq!(check_id(IdKind::DicomUid, id).is_ok(), expected, "{id:?}");
        assert_eq!(uid_by_parts(id), expected, "{id:?}");
    }
    let uid65 = format!("{uid64}3");
    assert!(check_id(IdKind::DicomUid, &uid65).is_err() && !uid_by_parts(&uid65));
    // Both sides of each check were exercised.
    assert!(orthanc_ok > 10_000 && orthanc_ok < 190_000, "{orthanc_ok}");
    assert!(uid_ok > 10_000 && uid_ok < 190_000, "{uid_ok}");
}
