use std::net::IpAddr;

use super::*;
use crate::identity::{LoginMethod, NationalId, Professional};

/// The stored names: changing one breaks every query of the trail.
#[test]
fn stored_names_are_fixed() {
    let names: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "login",
            "hm_sso",
            "logout",
            "session_revoked",
            "sessions_revoke",
            "dossier_number_access",
            "dossier_number_locked",
            "dossier_number_unlocked",
            "patient_view",
            "dossier_view",
            "report_view",
            "images_open",
            "images_view",
            "dicom_download",
            "patient_search",
        ]
    );
    assert_eq!(Outcome::Success.as_str(), "success");
    assert_eq!(Outcome::Refused.as_str(), "refused");
    let methods = [
        AuditMethod::Login(LoginMethod::PscCard),
        AuditMethod::Login(LoginMethod::PscApp),
        AuditMethod::Login(LoginMethod::HmSso),
        AuditMethod::Psc,
        AuditMethod::HmSso,
        AuditMethod::Cli,
    ];
    let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    assert_eq!(
        methods,
        ["psc_card", "psc_app", "hm_sso", "psc", "hm_sso", "cli"]
    );
}

/// The constructor gives the records the struct literals gave.
#[test]
fn constructor_builds_the_same_records() {
    let p = Professional::new(
        NationalId::parse("899700123450").unwrap(),
        "Jeanne".into(),
        "MARTIN".into(),
        LoginMethod::PscCard,
    );
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(
        AuditEvent::new(Event::DossierNumberAccess, Outcome::Refused)
            .by(&p)
            .client(ip)
            .on("D-1")
            .detail("no_match"),
        AuditEvent {
            actor: Some("899700123450".into()),
            event: "dossier_number_access",
            method: Some("psc_card"),
            outcome: "refused",
            client_addr: Some("192.0.2.7".into()),
            resource: Some("D-1".into()),
            detail: Some("no_match".into()),
            dossier: Some("D-1".into()),
            ..Default::default()
        }
    );
    assert_eq!(
        AuditEvent::new(Event::SessionsRevoke, Outcome::Success)
            .method(AuditMethod::Cli)
            .on("899700123450")
            .detail("recorded"),
        AuditEvent {
            actor: None,
            event: "sessions_revoke",
            method: Some("cli"),
            outcome: "success",
            client_addr: None,
            resource: Some("899700123450".into()),
            detail: Some("recorded".into()),
            ..Default::default()
        }
    );
    assert_eq!(
        AuditEvent::new(Event::Login, Outcome::Refused)
            .method(AuditMethod::Psc)
            .client(ip),
        AuditEvent {
            event: "login",
            method: Some("psc"),
            outcome: "refused",
            client_addr: Some("192.0.2.7".into()),
            ..Default::default()
        }
    );
}

/// `.on(resource)` fills the column of the event's subject; the typed
/// methods fill the others.
#[test]
fn on_fills_the_typed_column_of_the_event() {
    let e = AuditEvent::new(Event::ReportView, Outcome::Success).on("CR-1");
    assert_eq!(
        (e.report_id(), e.study_uid(), e.dossier_number()),
        (Some("CR-1"), None, None)
    );
    let e = AuditEvent::new(Event::ImagesView, Outcome::Success).on("1.2.3");
    assert_eq!(e.study_uid(), Some("1.2.3"));
    let e = AuditEvent::new(Event::DossierNumberAccess, Outcome::Refused).on("D-9");
    assert_eq!(e.dossier_number(), Some("D-9"));
    let e = AuditEvent::new(Event::PatientView, Outcome::Success).on("P-1");
    assert_eq!(e.patient_id(), Some("P-1"));
    // No resolved study: nothing typed.
    let e = AuditEvent::new(Event::DicomDownload, Outcome::Refused).on("");
    assert_eq!(e.study_uid(), None);
    // A national id is no patient data column.
    let e = AuditEvent::new(Event::SessionsRevoke, Outcome::Success).on("899700123450");
    assert_eq!((e.patient_id(), e.dossier_number()), (None, None));
    let e = AuditEvent::new(Event::ImagesView, Outcome::Success)
        .on("1.2.3")
        .dossier("D-1")
        .patient("P-1")
        .via(AccessPath::DossierGrant)
        .policy("dossier-grant")
        .request_id("r-1");
    assert_eq!(
        (
            e.dossier_number(),
            e.patient_id(),
            e.via_str(),
            e.policy_str(),
            e.request_id_str()
        ),
        (
            Some("D-1"),
            Some("P-1"),
            Some("dossier_grant"),
            Some("dossier-grant"),
            Some("r-1")
        )
    );
    assert_eq!(
        AccessPath::ALL.map(AccessPath::as_str),
        ["care_team", "dossier_grant", "hm_sso"]
    );
}

/// The typed text of a search never shows in a debug print (a log line).
#[test]
fn search_text_is_not_printed() {
    let e = AuditEvent::new(Event::PatientSearch, Outcome::Success).searched("SCANAP", 3);
    let printed = format!("{e:?}");
    assert!(!printed.contains("SCANAP"), "{printed}");
    assert_eq!(e.result_count(), Some(3));
}

/// Heads are read back from text and JSON log lines alike.
#[test]
fn heads_are_parsed_from_log_lines() {
    let hash = "ab".repeat(32);
    let text = format!(
        "2026-11-30T09:00:00Z  INFO espace_ps::audit: audit chain head chain=0a1b.2 seq=17 hash={hash}\n\
         {{\"timestamp\":\"…\",\"level\":\"INFO\",\"fields\":{{\"message\":\"audit chain head chain=ffee.0 seq=3 hash={hash}\"}}}}\n\
         some other line chain=x seq=1 hash=short\n"
    );
    let heads = parse_heads(&text);
    assert_eq!(
        heads,
        [
            ChainHead {
                chain: "0a1b.2".into(),
                seq: 17,
                hash: hash.clone()
            },
            ChainHead {
                chain: "ffee.0".into(),
                seq: 3,
                hash: hash.clone()
            },
        ]
    );
    assert_eq!(parse_heads(&heads[0].to_string()), [heads[0].clone()]);
}

/// The second sink never makes its caller wait: with the sink stuck (a
/// FIFO nobody reads: opening it blocks the sink's thread), `ship` returns
/// at once and the events past the queue are counted as dropped.
#[test]
fn a_stuck_sink_drops_and_counts_without_blocking() {
    use crate::config::{ShipConfig, ShipTarget};
    use crate::metrics::METRICS;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stuck");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let full = || {
        METRICS
            .audit_ship_dropped
            .with_label_values(&["queue_full"])
            .get()
    };
    let before = full();
    let shipper = ship::Shipper::start(&ShipConfig {
        target: ShipTarget::File(fifo.clone()),
        queue: 2,
    })
    .unwrap();
    for i in 0..20 {
        shipper.ship(format!("{{\"n\":{i}}}"));
    }
    // At most one line in the stuck thread and two in the queue.
    assert!(full() - before >= 17, "{} dropped", full() - before);
    // Release the thread: a reader opens the FIFO, takes what is sent.
    let reader = std::fs::File::open(&fifo).unwrap();
    drop(shipper);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &reader, &mut text).unwrap();
    assert!(text.lines().count() <= 3, "{text}");
}

/// A checkpoint's signature covers its chain, sequence number, hash and
/// limit: any of them changed, or another key, and it no longer matches.
#[test]
fn checkpoint_signatures_cover_every_field() {
    let key = b"the checkpoint key of this test, 32+ bytes";
    let hash = "ab".repeat(32);
    let cp = purge::Checkpoint {
        chain: "0a1b.2".into(),
        seq: 17,
        row_hash: hash.clone(),
        before_ms: 1_000,
        signature: purge::sign(key, "0a1b.2", 17, &hash, 1_000),
    };
    assert!(cp.signed_by(key));
    assert!(!cp.signed_by(b"another key of at least 32 bytes!"));
    let changed = [
        purge::Checkpoint {
            chain: "0a1b.3".into(),
            ..cp.clone()
        },
        purge::Checkpoint {
            seq: 18,
            ..cp.clone()
        },
        purge::Checkpoint {
            row_hash: "cd".repeat(32),
            ..cp.clone()
        },
        purge::Checkpoint {
            before_ms: 1_001,
            ..cp.clone()
        },
    ];
    for c in changed {
        assert!(!c.signed_by(key), "{c:?}");
    }
}
