//! Tests of `policies check` and `policies explain` output.

use std::path::Path;

use super::{run_with, PoliciesCommand};
use crate::engine::tests::{copy_policies, shipped_policies};

fn run(cmd: PoliciesCommand) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(cmd, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("utf8"),
        String::from_utf8(err).expect("utf8"),
    )
}

fn check(dir: &Path) -> (u8, String, String) {
    run(PoliciesCommand::Check {
        dir: Some(dir.to_path_buf()),
    })
}

#[test]
fn check_passes_on_the_shipped_policies() {
    let (code, out, err) = check(&shipped_policies());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("6 policies"), "{out}");
}

#[test]
fn check_reports_a_syntax_error_with_file_line_and_column() {
    let tmp = copy_policies();
    let path = tmp.path().join("care-team.cedar");
    let text = std::fs::read_to_string(&path).expect("read");
    // Break the `when` keyword of the care-team policy.
    std::fs::write(&path, text.replace("when {", "wen {")).expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("when {"))
        .expect("when line")
        + 1;
    let expected = format!("care-team.cedar:{line}:1: ");
    assert!(err.contains(&expected), "expected {expected:?} in:\n{err}");
    assert!(err.contains("FAILED"), "{err}");
}

#[test]
fn check_reports_a_validation_error_with_its_place() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("extra.cedar"),
        "// a typo in an attribute name\n@id(\"typo\")\npermit (principal, action, resource)\nwhen { principal.rpp == \"1\" };\n",
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    assert!(err.contains("extra.cedar:4:8: "), "{err}");
}

#[test]
fn check_reports_a_schema_error_and_an_unknown_enum_value() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("extra.cedar"),
        "@id(\"ecps\")\nforbid (principal, action, resource)\nwhen { principal.login_method == EspacePs::LoginMethod::\"e_cps\" };\n",
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("extra.cedar:3:"), "{err}");

    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("schema.cedarschema"),
        "namespace EspacePs {\n  entity\n}\n",
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    assert!(err.contains("schema.cedarschema:3:1: "), "{err}");
}

#[test]
fn check_requires_a_unique_id_on_every_policy() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("extra.cedar"),
        "\n\npermit (principal, action == EspacePs::Action::\"view_dossier\", resource)\nwhen { false };\n@id(\"care-team\")\nforbid (principal, action, resource) when { false };\n",
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    assert!(err.contains("extra.cedar:3:1: policy has no @id"), "{err}");
    assert!(
        err.contains("extra.cedar:5:1: duplicate @id \"care-team\""),
        "{err}"
    );
}

#[test]
fn check_fails_and_names_a_failing_test_case() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("tests/extra.toml"),
        r#"
[[case]]
name = "wrongly expects download by default"
action = "download_dicom"
expect = "allow"
professional = { national_id = "810001234567", rpps = "10001234567", login_method = "psc_card" }
resource = { type = "study", uid = "1.2.3", dossier_id = "D-A" }
context = { care_team = [{ dossier_id = "D-A", roles = ["MT"] }] }
"#,
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("extra.toml:2: test case \"wrongly expects download by default\" failed: expected allow, got deny (policies: [dicom-download-habilitation])"),
        "{err}"
    );
}

#[test]
fn check_reports_a_malformed_test_file() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("tests/extra.toml"),
        "[[case]]\nname = \"x\"\naction = \"fly\"\n",
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    assert!(err.contains("extra.toml:3:"), "{err}");
}

fn explain_args(extra: &[&str]) -> PoliciesCommand {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: PoliciesCommand,
    }
    let dir = shipped_policies();
    let mut args = vec![
        "policies".to_string(),
        "explain".to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Cli::try_parse_from(args).expect("valid arguments").cmd
}

#[test]
fn explain_names_the_deciding_policy() {
    let (code, out, _) = run(explain_args(&[
        "--national-id",
        "810001234567",
        "--rpps",
        "10001234567",
        "--action",
        "view-dossier",
        "--resource",
        "dossier:D-A",
        "--patient",
        "P1",
        "--roles",
        "D-A=CO",
    ]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("decision: ALLOW"), "{out}");
    assert!(out.contains("decided by: care-team ("), "{out}");

    let (code, out, _) = run(explain_args(&[
        "--national-id",
        "810001234567",
        "--rpps",
        "10001234567",
        "--action",
        "download_dicom",
        "--resource",
        "series:1.2.3.4",
        "--study",
        "1.2.3",
        "--dossier",
        "D-A",
        "--roles",
        "D-A=MT",
    ]));
    assert_eq!(code, 1);
    assert!(out.contains("decision: DENY"), "{out}");
    assert!(
        out.contains("decided by: dicom-download-habilitation ("),
        "{out}"
    );

    let (code, out, _) = run(explain_args(&[
        "--national-id",
        "0751234567",
        "--action",
        "view_dossier",
        "--resource",
        "dossier:D-B",
        "--patient",
        "P1",
        "--grant",
        "D-A",
    ]));
    assert_eq!(code, 1);
    assert!(out.contains("no policy matched (deny by default)"), "{out}");
}

#[test]
fn explain_rejects_a_malformed_resource() {
    let (code, _, err) = run(explain_args(&[
        "--national-id",
        "1",
        "--action",
        "view_dossier",
        "--resource",
        "dossier:D-A",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("needs --patient"), "{err}");
}

/// Every ```cedar and ```toml groups block of docs/policies.md is valid
/// against the shipped schema.
#[test]
fn guide_examples_are_valid() {
    let guide = std::fs::read_to_string(shipped_policies().join("../docs/policies.md"))
        .expect("read docs/policies.md");
    let blocks = |lang: &str| -> Vec<String> {
        let fence = format!("```{lang}\n");
        guide
            .split(&fence)
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
            .collect()
    };
    let cedar = blocks("cedar");
    assert!(cedar.len() >= 6, "found {} cedar examples", cedar.len());
    for block in cedar {
        let tmp = copy_policies();
        let file = if block.contains("@id(\"care-team\")") {
            "care-team.cedar"
        } else {
            "example.cedar"
        };
        std::fs::write(tmp.path().join(file), &block).expect("write");
        if let Err(problems) = crate::engine::build_snapshot(tmp.path(), 1, false) {
            panic!("example does not validate:\n{block}\n{problems:?}");
        }
    }
    let groups: Vec<String> = blocks("toml")
        .into_iter()
        .filter(|b| b.contains("[groups."))
        .collect();
    assert!(groups.len() >= 3);
    for block in groups {
        let tmp = copy_policies();
        std::fs::write(tmp.path().join("groups.toml"), &block).expect("write");
        if let Err(problems) = crate::engine::build_snapshot(tmp.path(), 1, false) {
            panic!("example does not load:\n{block}\n{problems:?}");
        }
    }
}

#[test]
fn explain_reads_a_request_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("request.toml");
    std::fs::write(
        &path,
        r#"
action = "view_report"
professional = { national_id = "0751234567", login_method = "psc_app" }
resource = { type = "report", id = "CR-1", dossier_id = "D-A" }
context = { via = { grant = { dossier_id = "D-A" } } }
"#,
    )
    .expect("write");
    let path = path.display().to_string();
    let (code, out, err) = run(explain_args(&["--request", &path]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("decided by: dossier-grant ("), "{out}");
}

#[test]
fn check_validates_the_shipped_viewer_route_tables() {
    let (code, out, err) = check(&shipped_policies());
    assert_eq!(code, 0, "{out}{err}");
    // Both shipped viewers, each with the resolver its table names.
    assert!(out.contains("2 viewer route tables valid (ohif ("), "{out}");
    assert!(out.contains(", dicomweb resolver)"), "{out}");
    assert!(out.contains(", orthanc-rest resolver)"), "{out}");
}

#[test]
fn check_reports_a_route_table_problem_with_its_place() {
    let tmp = copy_policies();
    let path = tmp.path().join("viewers/orthanc.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    // A route that reads a path segment its pattern does not have.
    let broken = text.replacen("resource = \"path:id\"", "resource = \"path:nope\"", 1);
    std::fs::write(&path, &broken).expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1, "{err}");
    // Problems are located at the start of the route's table.
    let offset = broken.find("path:nope").expect("edited");
    let route_line = broken[..offset]
        .rfind("[[route]]")
        .map(|o| broken[..o].matches('\n').count() + 1)
        .expect("route header");
    let expected = format!(
        "orthanc.toml:{route_line}:1: route \"rest-instance-file\": resource \"path:nope\""
    );
    assert!(err.contains(&expected), "expected {expected:?} in:\n{err}");
    assert!(err.contains("FAILED"), "{err}");
}

#[test]
fn check_reports_a_route_table_syntax_error() {
    let tmp = copy_policies();
    std::fs::write(
        tmp.path().join("viewers/extra.toml"),
        "[viewer]\nname = \"extra\"\n\n[[route]]\nid = \"a\"\nmethods = [\"GET\"]\npattern = \"/a\"\nclass = \"shell\"\nlevel = \"none\"\nmethod = \"GET\"\n",
    )
    .expect("write");
    let (code, _, err) = check(tmp.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("extra.toml:10:1: invalid route table: unknown field `method`"),
        "{err}"
    );
}
