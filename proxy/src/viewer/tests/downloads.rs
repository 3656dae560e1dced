//! "Télécharger la série (DICOM)" (user guide 3.1.3): the viewer page's
//! banner offers the series of the study it shows only to a professional
//! who may download DICOM from that study; the link is a viewer request the
//! gate decides and audits like any other download, naming the series and
//! the study; nothing is offered when anything fails.

use espace_ps_access::viewer::Class;

use super::{Got, World, ELISE, FEMUR, INES, SCANNER};
use crate::inject::DownloadLink;
use crate::viewer::{Refusal, Verdict};

fn page(seid: &str) -> String {
    format!("/web-viewer/app/viewer.html?series={seid}")
}

/// The page is served (a shell); what its banner offers.
async fn offered(w: &World, who: &super::Persona, target: &str) -> Vec<DownloadLink> {
    match w.ask(who, "GET", target, &[]).await {
        Verdict::Forward(f) => {
            assert_eq!(f.class, Class::Shell, "{target}");
            f.downloads
        }
        Verdict::Refuse(r) => panic!("{target}: the page itself is refused: {r:?}"),
    }
}

fn archive_of(seid: &str) -> String {
    format!("/series/{seid}/archive")
}

#[tokio::test]
async fn the_banner_offers_the_series_to_the_habilitated_only() {
    let hab = World::new(&[&ELISE]);
    let plain = World::new(&[]);
    assert_eq!(
        offered(&hab, &ELISE, &page(SCANNER.seid)).await,
        [DownloadLink {
            label: "CT – CRANE (2 images)".into(),
            href: archive_of(SCANNER.seid),
        }]
    );
    // Without the habilitation, outside the care team (even habilitated),
    // on another page, or an unknown series: the page, and no download.
    assert_eq!(offered(&plain, &ELISE, &page(SCANNER.seid)).await, []);
    assert_eq!(offered(&hab, &ELISE, &page(FEMUR.seid)).await, []);
    let hab_ines = World::new(&[&INES]);
    assert_eq!(offered(&hab_ines, &INES, &page(SCANNER.seid)).await, []);
    assert_eq!(
        offered(&hab, &ELISE, "/web-viewer/app/viewer.html").await,
        []
    );
    assert_eq!(
        offered(
            &hab,
            &ELISE,
            &page("00000000-00000000-00000000-00000000-00000000")
        )
        .await,
        []
    );
    // Offering is not downloading: nothing in the trail yet.
    assert!(hab.trail(&ELISE).iter().all(|r| r.0 != "dicom_download"));
}

/// Following the link: a download decided by the gate, audited with the
/// study (resource) and the series (detail); refused with the download
/// page, and audited, without the habilitation.
#[tokio::test]
async fn the_series_download_is_decided_and_audited_with_series_and_study() {
    let hab = World::new(&[&ELISE]);
    let plain = World::new(&[]);
    let href = archive_of(SCANNER.seid);
    assert_eq!(
        hab.get(&ELISE, &href).await,
        Got::forward(&href, Class::Download, true)
    );
    let detail = format!("rest-archive series={}", SCANNER.series_uid);
    assert_eq!(
        hab.trail(&ELISE),
        [(
            "dicom_download".to_owned(),
            "success".to_owned(),
            SCANNER.uid.to_owned(),
            detail.clone()
        )]
    );
    assert_eq!(
        plain.get(&ELISE, &href).await,
        Got::Refuse(Refusal::DownloadRefused)
    );
    assert_eq!(
        plain.trail(&ELISE),
        [(
            "dicom_download".to_owned(),
            "refused".to_owned(),
            SCANNER.uid.to_owned(),
            detail
        )]
    );
}

/// The archive down: the page is still served, with nothing to download.
#[tokio::test]
async fn nothing_is_offered_when_the_archive_does_not_answer() {
    let hab = World::new(&[&ELISE]);
    hab.archive.set_unreachable(true);
    assert_eq!(offered(&hab, &ELISE, &page(SCANNER.seid)).await, []);
}
