//! A reload of the route table that names another `[resolver]` is refused:
//! the gate's resolver is built once, at start-up, from the table in force.

use crate::viewer::{load_table, reload_route_table};

use super::World;

#[tokio::test]
async fn gate_keeps_its_table_when_a_reload_names_another_resolver() {
    let w = World::new(&[]);
    let dir = w.policies.path();
    let ohif = load_table(dir, "ohif")
        .expect("loads")
        .expect("an ohif table");
    let routes = ohif.len();
    w.gate.set_table(Some(ohif));
    let path = dir.join("viewers/ohif.toml");
    let text = std::fs::read_to_string(&path).unwrap();

    // Orthanc's REST resolver instead of DICOMweb: refused, DICOMweb stays.
    let other = text.replace(
        "kind = \"dicomweb\"\nqido_root = \"/dicom-web\"\nstudy_page = \"/visionneuse/viewer?StudyInstanceUIDs={study}\"\n",
        "kind = \"orthanc-rest\"\n",
    );
    assert_ne!(
        other, text,
        "the shipped [resolver] changed: update this test"
    );
    std::fs::write(&path, &other).unwrap();
    assert!(load_table(dir, "ohif").unwrap().is_some(), "a valid table");
    reload_route_table(&w.gate, dir, "ohif");
    let table = w.gate.table().expect("a table");
    assert_eq!(table.resolver().kind(), "dicomweb");
    assert_eq!(table.len(), routes);

    // The same resolver, one route fewer: applied (the positive control).
    let fewer = &text[..text.find("# Any other write").expect("the last route")];
    std::fs::write(&path, fewer).unwrap();
    reload_route_table(&w.gate, dir, "ohif");
    let table = w.gate.table().expect("a table");
    assert_eq!(table.resolver().kind(), "dicomweb");
    assert_eq!(table.len(), routes - 1);
}
