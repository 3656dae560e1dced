//! `[resolver]`: which resolver a table names, and what is refused.

use crate::viewer::{IdKind, Resolver, RouteTable};

const OHIF_TABLE: &str = include_str!("../../../../../policies/viewers/ohif.toml");

const ROUTE: &str = "[[route]]\nid = \"a\"\nmethods = [\"GET\"]\npattern = \"/dicom-web/studies/{s}/series/{id}/metadata\"\nclass = \"R\"\nlevel = \"series\"\nresource = \"path:id\"\n";

fn parse(resolver: &str, kind: &str) -> Result<RouteTable, Vec<String>> {
    let text = format!("[viewer]\nname = \"t\"\n{resolver}\n{ROUTE}kind = \"{kind}\"\n");
    RouteTable::parse("t.toml", &text).map_err(|ps| ps.iter().map(ToString::to_string).collect())
}

const DICOMWEB: &str = "[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"/visionneuse/viewer?StudyInstanceUIDs={study}\"\n";

#[test]
fn a_table_without_resolver_asks_orthanc_rest() {
    let t = parse("", "orthanc-id").expect("valid");
    assert_eq!(t.resolver(), &Resolver::OrthancRest);
    assert_eq!(super::orthanc().resolver(), &Resolver::OrthancRest);
}

#[test]
fn the_shipped_ohif_table_asks_the_archive_in_dicomweb() {
    let t = RouteTable::parse("policies/viewers/ohif.toml", OHIF_TABLE).unwrap_or_else(|ps| {
        let text: Vec<String> = ps.iter().map(ToString::to_string).collect();
        panic!("shipped table invalid:\n{}", text.join("\n"))
    });
    assert_eq!(t.name(), "ohif");
    assert_eq!(
        t.resolver(),
        &Resolver::DicomWeb {
            qido_root: "/dicom-web".into(),
            study_page: "/visionneuse/viewer?StudyInstanceUIDs={study}".into()
        }
    );
}

#[test]
fn a_dicomweb_table_is_read() {
    let t = parse(DICOMWEB, "dicom-uid").expect("valid");
    assert_eq!(t.resolver().kind(), "dicomweb");
    assert!(!t.resolver().resolves(IdKind::OrthancId));
    assert!(t.resolver().resolves(IdKind::DicomUid));
}

#[test]
fn a_dicomweb_table_may_not_name_archive_ids() {
    let ps = parse(DICOMWEB, "orthanc-id").expect_err("archive ids");
    assert!(
        ps.iter()
            .any(|p| p.contains("cannot be resolved by the dicomweb resolver")),
        "{ps:?}"
    );
}

#[test]
fn malformed_resolvers_are_refused_with_their_place() {
    let cases = [
        ("[resolver]\nkind = \"wado\"\n", "expected \"orthanc-rest\" or \"dicomweb\""),
        ("[resolver]\nkind = \"dicomweb\"\nstudy_page = \"/v?s={study}\"\n", "qido_root \"\""),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"dicom-web\"\nstudy_page = \"/v?s={study}\"\n", "qido_root \"dicom-web\""),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web/\"\nstudy_page = \"/v?s={study}\"\n", "qido_root"),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/a/../b\"\nstudy_page = \"/v?s={study}\"\n", "qido_root"),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\n", "study_page \"\""),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"/v?s=1\"\n", "study_page"),
        // Off the origin: `//host/…` and `/\host/…` are other sites.
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"//evil.example/?s={study}\"\n", "study_page"),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"/\\\\evil.example/?s={study}\"\n", "study_page"),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"https://evil.example/?s={study}\"\n", "study_page"),
        ("[resolver]\nkind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"/v?s={study}&t={study}\"\n", "study_page"),
        ("[resolver]\nkind = \"orthanc-rest\"\nqido_root = \"/dicom-web\"\n", "are for kind = \"dicomweb\""),
        ("[resolver]\nkind = \"dicomweb\"\nqido = \"/dicom-web\"\n", "unknown field"),
    ];
    for (resolver, needle) in cases {
        let ps = parse(resolver, "dicom-uid").expect_err(resolver);
        assert!(
            ps.iter().any(|p| p.contains(needle)),
            "{resolver}: expected {needle:?} in {ps:?}"
        );
        // Located at the [resolver] table (line 3), not at the file's start.
        if needle != "unknown field" {
            assert!(
                ps.iter().any(|p| p.starts_with("t.toml:3:")),
                "{resolver}: {ps:?}"
            );
        }
    }
}
