//! Decisions are cached briefly per session; a new route table, a new grant
//! and a new policy generation are never answered from that cache, nor is a
//! failure to decide remembered.

use espace_ps_access::viewer::Class;
use espace_ps_access::ReloadOutcome;

use super::{set_group, table, Got, World, ELISE, FEMUR, NOEL, SCANNER};
use crate::viewer::Refusal;

const REFUSED: Got = Got::Refuse(Refusal::Refused);

fn preview(s: &super::Study) -> String {
    format!("/instances/{}/preview", s.iid)
}

#[tokio::test]
async fn gate_sees_a_new_grant_at_once() {
    let w = World::bare(&[]);
    let target = preview(&FEMUR);
    assert_eq!(w.get(&NOEL, &target).await, REFUSED);
    w.records.grant(&NOEL, FEMUR.dossier);
    // Without word of the grant, the refusal is the cached one.
    assert_eq!(w.get(&NOEL, &target).await, REFUSED);
    w.gate.grants_changed();
    assert_eq!(
        w.get(&NOEL, &target).await,
        Got::forward(&target, Class::Rendered, false)
    );
}

#[tokio::test]
async fn gate_forgets_decisions_when_the_route_table_is_replaced() {
    let w = World::new(&[]);
    let target = preview(&SCANNER);
    let forward = Got::forward(&target, Class::Rendered, false);
    assert_eq!(w.get(&ELISE, &target).await, forward);
    // Élise leaves the care team: the cached decision still answers...
    w.records.role(SCANNER.dossier, &ELISE, &[]);
    assert_eq!(w.get(&ELISE, &target).await, forward);
    // ...until a reload of the table, which forgets every decision.
    w.gate.set_table(Some(table(w.policies.path())));
    assert_eq!(w.get(&ELISE, &target).await, REFUSED);
    // No table at all: everything is refused, the shell included.
    w.gate.set_table(None);
    assert_eq!(w.get(&ELISE, "/web-viewer/app/viewer.html").await, REFUSED);
}

#[tokio::test]
async fn gate_decides_again_under_a_new_policy_generation() {
    let w = World::new(&[]);
    let file = format!("/instances/{}/file", SCANNER.iid);
    let target = preview(&SCANNER);
    assert_eq!(
        w.get(&ELISE, &file).await,
        Got::Refuse(Refusal::DownloadRefused)
    );
    assert_eq!(
        w.get(&ELISE, &target).await,
        Got::forward(&target, Class::Rendered, false)
    );
    // The administrator gives Élise the habilitation; the policies reload.
    let before = w.access.generation();
    set_group(w.policies.path(), "dicom-download", &[ELISE.rpps()]);
    let outcome = w.access.policies().reload();
    assert!(
        matches!(outcome, ReloadOutcome::Reloaded { .. }),
        "{outcome:?}"
    );
    assert!(w.access.generation() > before);
    assert_eq!(
        w.get(&ELISE, &file).await,
        Got::forward(&file, Class::Download, true)
    );
    assert_eq!(
        w.get(&ELISE, &target).await,
        Got::forward(&target, Class::Rendered, true)
    );
    // And takes it back.
    set_group(w.policies.path(), "dicom-download", &[]);
    assert!(matches!(
        w.access.policies().reload(),
        ReloadOutcome::Reloaded { .. }
    ));
    assert_eq!(
        w.get(&ELISE, &file).await,
        Got::Refuse(Refusal::DownloadRefused)
    );
}

#[tokio::test]
async fn gate_does_not_remember_a_failure_to_decide() {
    let w = World::new(&[]);
    let target = preview(&SCANNER);
    w.records.set_failing(true);
    // No decision is a "no", said as "unavailable, try again".
    assert_eq!(
        w.get(&ELISE, &target).await,
        Got::Refuse(crate::viewer::Refusal::Unavailable)
    );
    // The refusal is on the trail (a failure to decide is a "no"); no view.
    let trail = w.trail(&ELISE);
    assert!(trail.iter().all(|r| r.1 == "refused"), "{trail:?}");
    w.records.set_failing(false);
    assert_eq!(
        w.get(&ELISE, &target).await,
        Got::forward(&target, Class::Rendered, false)
    );
}
