//! Route-table validation: every problem is found and located.

use crate::viewer::RouteTable;

const HEAD: &str = "[viewer]\nname = \"t\"\n[segment_levels]\nstudies = \"study\"\n";

fn problems(routes: &str) -> Vec<String> {
    let text = format!("{HEAD}{routes}");
    match RouteTable::parse("t.toml", &text) {
        Ok(_) => Vec::new(),
        Err(ps) => ps.iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn assert_problem(routes: &str, needle: &str) {
    let ps = problems(routes);
    assert!(
        ps.iter().any(|p| p.contains(needle)),
        "expected {needle:?} in {ps:#?}"
    );
}

#[test]
fn the_shipped_table_is_valid() {
    let t = super::orthanc();
    assert_eq!(t.name(), "orthanc");
    assert!(t.len() > 40, "{}", t.len());
}

#[test]
fn a_minimal_route_is_valid() {
    let ps = problems(
        "[[route]]\nid = \"a\"\nmethods = [\"GET\"]\npattern = \"/studies/{id}\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"path:id\"\nkind = \"dicom-uid\"\n",
    );
    assert!(ps.is_empty(), "{ps:?}");
}

#[test]
fn unknown_keys_are_rejected_with_line_and_column() {
    let ps = problems(
        "[[route]]\nid = \"a\"\nmethods = [\"GET\"]\npattern = \"/x\"\nclass = \"shell\"\nlevel = \"none\"\nclas = \"D\"\n",
    );
    assert_eq!(ps.len(), 1, "{ps:?}");
    // Line 11 of the whole text: HEAD has 4 lines, then the route.
    assert!(ps[0].starts_with("t.toml:11:1: "), "{}", ps[0]);
    assert!(ps[0].contains("unknown field"), "{}", ps[0]);
}

#[test]
fn route_problems_are_located_at_their_route() {
    let ps = problems(
        "[[route]]\nid = \"ok\"\nmethods = [\"GET\"]\npattern = \"/a\"\nclass = \"shell\"\nlevel = \"none\"\n\n[[route]]\nid = \"bad\"\nmethods = [\"GET\"]\npattern = \"/b/{x}\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"path:y\"\nkind = \"dicom-uid\"\n",
    );
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(ps[0].starts_with("t.toml:12:1: "), "{}", ps[0]);
    assert!(ps[0].contains("no segment {y}"), "{}", ps[0]);
}

#[test]
fn each_validation_rule() {
    let r = |body: &str| format!("[[route]]\nid = \"r\"\nmethods = [\"GET\"]\n{body}\n");
    assert_problem(
        &r("pattern = \"x\"\nclass = \"shell\"\nlevel = \"none\""),
        "must start with '/'",
    );
    assert_problem(
        &r("pattern = \"/a//b\"\nclass = \"shell\"\nlevel = \"none\""),
        "empty segment",
    );
    assert_problem(
        &r("pattern = \"/a/**/b\"\nclass = \"shell\"\nlevel = \"none\""),
        "'**' must be the last",
    );
    assert_problem(
        &r("pattern = \"/{a}/{a}\"\nclass = \"shell\"\nlevel = \"none\""),
        "used twice",
    );
    assert_problem(
        &r("pattern = \"/{A}\"\nclass = \"shell\"\nlevel = \"none\""),
        "segment name",
    );
    assert_problem(
        &r("pattern = \"/{a}{b}\"\nclass = \"shell\"\nlevel = \"none\""),
        "literal between",
    );
    assert_problem(
        &r("pattern = \"/a/..\"\nclass = \"shell\"\nlevel = \"none\""),
        "can never match",
    );
    assert_problem(
        &r("pattern = \"/a\"\nclass = \"Z\"\nlevel = \"none\""),
        "unknown variant",
    );
    assert_problem(&r("pattern = \"/a\"\nclass = \"deny\""), "needs a reason");
    assert_problem(&r("pattern = \"/a\"\nclass = \"R\""), "level is required");
    assert_problem(
        &r("pattern = \"/a\"\nclass = \"R\"\nlevel = \"galaxy\""),
        "level \"galaxy\"",
    );
    assert_problem(
        &r("pattern = \"/a/{x}\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"path:x\""),
        "needs a kind",
    );
    assert_problem(&r("pattern = \"/a\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"query:Foo\"\nkind = \"dicom-uid\""), "not security-relevant");
    assert_problem(&r("pattern = \"/a\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"query:studyinstanceuid\"\nkind = \"dicom-uid\""), "write query key");
    assert_problem(&r("pattern = \"/a\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"cookie:x\"\nkind = \"dicom-uid\""), "expected path:NAME");
    assert_problem(&r("pattern = \"/a\"\nclass = \"R\"\nlevel = \"system\"\nresource = \"query:PatientID\"\nkind = \"patient-id\""), "level none or system");
    assert_problem(&r("pattern = \"/a/{x}\"\nclass = \"R\"\nlevel = \"path:x\"\nresource = \"path:x\"\nkind = \"orthanc-id\""), "needs a segment {x=a|b}");
    assert_problem(&r("pattern = \"/{x=studies|planets}/{id}\"\nclass = \"R\"\nlevel = \"path:x\"\nresource = \"path:id\"\nkind = \"orthanc-id\""), "\"planets\" is not in [segment_levels]");
    assert_problem(&r("pattern = \"/a/{x}\"\nclass = \"shell\"\nlevel = \"study\"\nresource = \"path:x\"\nkind = \"orthanc-id\""), "class shell has no resource");
    assert_problem(&r("pattern = \"/a\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"query:StudyInstanceUID\"\nkind = \"dicom-uid\"\nwhen = [{ query = \"contentType\", class = \"D\" }]"), "exactly one of media or equals");
    assert_problem(&r("pattern = \"/a\"\nclass = \"V\"\nlevel = \"study\"\nresource = \"query:StudyInstanceUID\"\nkind = \"dicom-uid\"\nrequire = { Nope = [\"x\"] }"), "not security-relevant");
    let get = |id: &str, p: &str| {
        format!("[[route]]\nid = \"{id}\"\nmethods = [\"GET\"]\npattern = \"{p}\"\nclass = \"shell\"\nlevel = \"none\"\n")
    };
    assert_problem(
        &format!("{}{}", get("a", "/x"), get("a", "/y")),
        "duplicate route id",
    );
    assert_problem(
        &format!("{}{}", get("wide", "/x/**"), get("narrow", "/x/{y}/z")),
        "can never match",
    );
    assert_problem(
        &format!("{}{}", get("wide", "/{a=x|y}/{b}"), get("narrow", "/x/z")),
        "can never match",
    );
    // The other order is fine: specific first.
    assert!(problems(&format!(
        "{}{}",
        get("narrow", "/x/{y}/z"),
        get("wide", "/x/**")
    ))
    .is_empty());
    // A route that requires a query value does not shadow one without.
    let wado = "[[route]]\nid = \"w\"\nmethods = [\"GET\"]\npattern = \"/w\"\nrequire = { requestType = [\"WADO\"] }\nclass = \"shell\"\nlevel = \"none\"\n";
    assert!(problems(&format!("{wado}{}", get("plain", "/w"))).is_empty());
}

#[test]
fn security_query_keys_extend_the_built_in_ones() {
    let text = "[viewer]\nname = \"hm\"\nsecurity_query_keys = [\"examId\"]\n[[route]]\nid = \"exam\"\nmethods = [\"GET\"]\npattern = \"/exam\"\nclass = \"V\"\nlevel = \"study\"\nresource = \"query:examId\"\nkind = \"dicom-uid\"\n";
    let t = RouteTable::parse("hm.toml", text).expect("valid");
    // Duplicates of a declared key are refused, in any case.
    assert!(t
        .canonicalize("GET", "/exam?examId=1.2&EXAMID=1.3", &[])
        .is_err());
    let (_, c) = t.classify_raw("GET", "/exam?examid=1.2", &[]).expect("ok");
    assert_eq!(c.candidate().expect("candidate").route_id, "exam");
    let ps = RouteTable::parse(
        "hm.toml",
        "[viewer]\nname = \"hm\"\nsecurity_query_keys = [\"objectuid\"]\n",
    )
    .expect_err("built in");
    assert!(ps[0].message.contains("built in"), "{ps:?}");
}

#[test]
fn load_dir_reads_every_table_and_reports_problems() {
    let tmp = tempfile::tempdir().expect("tmp");
    let viewers = tmp.path().join("viewers");
    std::fs::create_dir(&viewers).expect("mkdir");
    assert!(crate::viewer::load_dir(tmp.path())
        .expect("empty")
        .is_empty());
    std::fs::write(
        viewers.join("orthanc.toml"),
        crate::viewer::fuzzing::ORTHANC_TABLE,
    )
    .expect("write");
    std::fs::write(viewers.join(".swap.toml"), "garbage").expect("write");
    assert_eq!(crate::viewer::load_dir(tmp.path()).expect("ok").len(), 1);
    std::fs::write(
        viewers.join("broken.toml"),
        "[viewer]\nname = \"b\"\n[[route]]\nid = 1\n",
    )
    .expect("write");
    let ps = crate::viewer::load_dir(tmp.path()).expect_err("broken");
    assert!(ps[0].to_string().contains("broken.toml:4:"), "{ps:?}");
}

#[test]
fn csp_problems_are_located_and_a_table_without_csp_is_strict() {
    let t = RouteTable::parse("t.toml", HEAD).expect("valid");
    assert_eq!(t.csp().as_ref(), &crate::viewer::Csp::strict_default());
    let text = format!(
        "{HEAD}[csp]\ndefault-src = [\"'self'\"]\nscript-src = [\n  \"'self'\",\n  \"'unsafe-inline'\",\n]\nstyle-src = [\"'self'\"]\nbase-uri = [\"'none'\"]\nframe-ancestors = [\"'self'\"]\n"
    );
    let ps: Vec<String> = RouteTable::parse("t.toml", &text)
        .expect_err("unsafe-inline, no object-src")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        ps.iter()
            .any(|p| p.starts_with("t.toml:9:3: csp script-src: \"'unsafe-inline'\": refused")),
        "{ps:?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.starts_with("t.toml:5:1: csp: object-src is required")),
        "{ps:?}"
    );
    let ps = RouteTable::parse("t.toml", "[viewer]\nname = \"t\"\ncsp_report_only = true\n")
        .expect_err("report-only of nothing");
    assert!(ps[0].message.contains("without a [csp]"), "{ps:?}");
}

/// A mixed segment that does not split leaves its route, and the next
/// route of the table decides (mixed segments are split only while
/// capturing, after the cheaper checks).
#[test]
fn a_mixed_segment_that_does_not_split_falls_through_to_the_next_route() {
    let route = |id: &str, pattern: &str, from: &str| {
        format!("[[route]]\nid = \"{id}\"\nmethods = [\"GET\"]\npattern = \"{pattern}\"\nclass = \"R\"\nlevel = \"study\"\nresource = \"path:{from}\"\nkind = \"dicom-uid\"\n")
    };
    let text = format!(
        "{HEAD}{}{}",
        route("pair", "/studies/{a}-{b}", "a"),
        route("one", "/studies/{id}", "id")
    );
    let t = RouteTable::parse("t.toml", &text).expect("valid");
    let decided_by = |target: &str| {
        let (_, c) = t.classify_raw("GET", target, &[]).expect("canonical");
        c.candidate().expect("candidate").route_id.clone()
    };
    assert_eq!(decided_by("/studies/1.2-3.4"), "pair");
    assert_eq!(decided_by("/studies/1.2"), "one");
}
