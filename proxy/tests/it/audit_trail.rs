//! The audit trail (issue 13) on SQLite and on a real PostgreSQL: the
//! structured rows and their migration, and tamper evidence (`audit
//! verify`), including by someone with full SQL rights who rewrites a row
//! and rehashes the chain after it, or cuts its tail.

use std::borrow::Cow;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use espace_ps::audit::{self, AccessPath, AuditEvent, ChainHead, Event, Outcome, HEAD_LOG_MESSAGE};
use espace_ps::identity::{LoginMethod, NationalId, Professional};
use espace_ps::state::PortalDb;
use sqlx::Row;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;
use super::stores::fresh_pg_database;

on_both_backends!(
    migration_keeps_existing_rows,
    rows_are_structured_and_searches_hashed,
    tampering_is_found,
);

/// A fresh, empty portal database URL (the directory holds SQLite's file).
pub(super) async fn fresh_url(backend: Backend) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("portal.sqlite").display()
        ),
        Backend::Postgres => fresh_pg_database().await,
    };
    (url, dir)
}

pub(super) fn elise() -> Professional {
    Professional::new(
        NationalId::parse(espace_ps_demo_data::showcase::ELISE_NATIONAL_ID).unwrap(),
        "Élise".into(),
        "MARTIN".into(),
        LoginMethod::PscCard,
    )
}

pub(super) fn ip() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

pub(super) async fn scalar_i64(db: &PortalDb, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// A database at the schema before issue 13 (migrations 1 to 4) with two
/// rows, then opened by this version: the rows are still there, outside
/// the chains, and the trail verifies.
async fn migration_keeps_existing_rows(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    sqlx::any::install_default_drivers();
    {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let dir = match backend {
            Backend::Sqlite => "migrations/sqlite",
            Backend::Postgres => "migrations/postgres",
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut old = sqlx::migrate::Migrator::new(dir).await.unwrap();
        old.migrations = Cow::Owned(
            old.migrations
                .iter()
                .filter(|m| m.version <= 4)
                .cloned()
                .collect(),
        );
        old.run(&pool).await.unwrap();
        for (event, resource) in [("login", None), ("report_view", Some("CR-OLD"))] {
            sqlx::query(
                "INSERT INTO audit_events (at_ms, actor, event, method, outcome, client_addr, resource, detail) \
                 VALUES (1000, '810100000002', $1, 'psc_card', 'success', '192.0.2.1', $2, NULL)",
            )
            .bind(event)
            .bind(resource)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let db = PortalDb::connect(&url, 1).await.unwrap();
    let tail = db.audit_tail(10).await.unwrap();
    assert_eq!(tail.len(), 2, "{tail:?}");
    assert_eq!(tail[0].event, "report_view");
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE resource = 'CR-OLD'"
        )
        .await,
        1
    );
    db.audit(
        &AuditEvent::new(Event::ReportView, Outcome::Success)
            .by(&elise())
            .on("CR-NEW"),
    )
    .await
    .unwrap();
    let v = audit::verify(&db, &[]).await.unwrap();
    assert_eq!(v.broken, None);
    assert_eq!((v.rows, v.unchained), (1, 2));
}

/// Each typed column is stored; a name search stores who, how many were
/// listed and a keyed hash of the typed text (the same for the same
/// search), never the text.
async fn rows_are_structured_and_searches_hashed(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let db = PortalDb::connect(&url, 2)
        .await
        .unwrap()
        .with_audit(audit::AuditSettings {
            search_key: b"a key of the hospital, 32 bytes!".to_vec(),
            ship: None,
        });
    db.audit(
        &AuditEvent::new(Event::ImagesView, Outcome::Success)
            .by(&elise())
            .client(ip())
            .on("1.2.250.1.59.1")
            .dossier("D-7")
            .patient("P-3")
            .via(AccessPath::DossierGrant)
            .policy("dossier-grant")
            .request_id("req-42"),
    )
    .await
    .unwrap();
    for typed in ["Scanap", "  SCANAP ", "Martin"] {
        db.audit(
            &AuditEvent::new(Event::PatientSearch, Outcome::Success)
                .by(&elise())
                .searched(typed, 2),
        )
        .await
        .unwrap();
    }
    let tail = db.audit_tail(10).await.unwrap();
    let view = &tail[3];
    assert_eq!(
        (
            view.study_uid.as_deref(),
            view.dossier.as_deref(),
            view.patient_id.as_deref(),
            view.access_path.as_deref(),
            view.policy.as_deref(),
            view.request_id.as_deref(),
            view.client_addr.as_deref(),
        ),
        (
            Some("1.2.250.1.59.1"),
            Some("D-7"),
            Some("P-3"),
            Some("dossier_grant"),
            Some("dossier-grant"),
            Some("req-42"),
            Some("192.0.2.10"),
        )
    );
    let searches: Vec<_> = tail[..3].iter().rev().collect();
    assert!(searches.iter().all(|s| s.event == "patient_search"
        && s.result_count == Some(2)
        && s.search_hash.as_deref().is_some_and(|h| h.len() == 32)));
    assert_eq!(searches[0].search_hash, searches[1].search_hash);
    assert_ne!(searches[0].search_hash, searches[2].search_hash);
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE LOWER(COALESCE(resource, '') || COALESCE(detail, '') \
             || COALESCE(search_hash, '')) LIKE '%scanap%'"
        )
        .await,
        0
    );
    // Another key (another hospital, or no key configured): other hashes.
    let other = PortalDb::connect(&url, 1).await.unwrap();
    other
        .audit(
            &AuditEvent::new(Event::PatientSearch, Outcome::Success)
                .by(&elise())
                .searched("Scanap", 2),
        )
        .await
        .unwrap();
    let last = &other.audit_tail(1).await.unwrap()[0];
    assert_ne!(last.search_hash, searches[0].search_hash);
    assert_eq!(audit::verify(&db, &[]).await.unwrap().broken, None);
}

/// The trail's own protections off, as someone with full SQL rights can.
pub(super) async fn drop_protections(db: &PortalDb) {
    let statements: &[&str] = match db.backend() {
        espace_ps::state::Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
        espace_ps::state::Backend::Postgres => &["ALTER TABLE audit_events DISABLE TRIGGER USER"],
    };
    for s in statements {
        sqlx::query(s).execute(db.pool()).await.unwrap();
    }
}

pub(super) async fn exec(db: &PortalDb, sql: &str) {
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}

/// A trail of 12 rows (written in several chains), the heads that left the
/// database (through the log stream's lines), and the id and chain of row 6.
async fn written_trail(backend: Backend) -> (PortalDb, Vec<ChainHead>, tempfile::TempDir) {
    let (url, dir) = fresh_url(backend).await;
    let db = PortalDb::connect(&url, 2).await.unwrap();
    for i in 0..12 {
        db.audit(
            &AuditEvent::new(Event::ReportView, Outcome::Success)
                .by(&elise())
                .client(ip())
                .on(format!("CR-{i}")),
        )
        .await
        .unwrap();
    }
    let log: String = db
        .audit_heads()
        .iter()
        .map(|h| format!("INFO espace_ps::audit: {HEAD_LOG_MESSAGE} {h}\n"))
        .collect();
    let heads = audit::parse_heads(&log);
    assert_eq!(heads, db.audit_heads());
    assert_eq!(heads, audit::stored_heads(&db).await.unwrap());
    let v = audit::verify(&db, &heads).await.unwrap();
    assert_eq!((v.broken.clone(), v.rows), (None, 12), "{v:?}");
    assert!(v.chains > 1, "several chains per process: {v:?}");
    drop_protections(&db).await;
    (db, heads, dir)
}

async fn chain_of(db: &PortalDb, id: i64) -> String {
    sqlx::query("SELECT chain FROM audit_events WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// The id of the row after `id` in its chain.
async fn next_in_chain(db: &PortalDb, id: i64) -> i64 {
    let chain = chain_of(db, id).await;
    sqlx::query("SELECT MIN(id) FROM audit_events WHERE chain = $1 AND id > $2")
        .bind(chain)
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn first_broken(db: &PortalDb, heads: &[ChainHead]) -> audit::Broken {
    let v = audit::verify(db, heads).await.unwrap();
    v.broken
        .clone()
        .unwrap_or_else(|| panic!("tampering not found: {v:?}"))
}

async fn tampering_is_found(backend: Backend) {
    // A row altered in place.
    let (db, heads, _d) = written_trail(backend).await;
    exec(
        &db,
        "UPDATE audit_events SET actor = '899999999999' WHERE id = 6",
    )
    .await;
    let b = first_broken(&db, &[]).await;
    assert_eq!(b.id, Some(6), "{b}");
    assert!(b.reason.contains("altered"), "{b}");
    drop(heads);

    // A row deleted in the middle: the next row of its chain shows the gap.
    let (db, _heads, _d) = written_trail(backend).await;
    let next = next_in_chain(&db, 6).await;
    exec(&db, "DELETE FROM audit_events WHERE id = 6").await;
    let b = first_broken(&db, &[]).await;
    assert_eq!(b.id, Some(next), "{b}");
    assert!(b.reason.contains("deleted"), "{b}");

    // A row inserted in the middle of a chain (the chain renumbered after
    // it and rehashed): its place in id order gives it away.
    let (db, _heads, _d) = written_trail(backend).await;
    let chain = chain_of(&db, 6).await;
    let seq6 = scalar_i64(&db, "SELECT seq FROM audit_events WHERE id = 6").await;
    // Renumber from the top down (the sequence numbers are unique).
    let after: Vec<(i64, i64)> = sqlx::query(
        "SELECT id, seq FROM audit_events WHERE chain = $1 AND seq >= $2 ORDER BY seq DESC",
    )
    .bind(chain.clone())
    .bind(seq6)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
    .collect();
    for (id, seq) in after {
        sqlx::query("UPDATE audit_events SET seq = $1 WHERE id = $2")
            .bind(seq + 1)
            .bind(id)
            .execute(db.pool())
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO audit_events (at_ms, actor, event, method, outcome, chain, seq, prev_hash, row_hash) \
         VALUES (5, '899999999999', 'report_view', 'psc_card', 'success', $1, $2, '', '')",
    )
    .bind(chain.clone())
    .bind(seq6)
    .execute(db.pool())
    .await
    .unwrap();
    audit::forge_rehash(&db, &chain).await.unwrap();
    let b = first_broken(&db, &[]).await;
    assert_eq!(b.id, Some(6), "{b}");

    // A row outside any chain among chained ones.
    let (db, _heads, _d) = written_trail(backend).await;
    exec(
        &db,
        "INSERT INTO audit_events (at_ms, event, outcome) VALUES (1, 'login', 'success')",
    )
    .await;
    let b = first_broken(&db, &[]).await;
    assert_eq!(b.id, Some(13), "{b}");
    assert!(b.reason.contains("outside any chain"), "{b}");

    // A middle row rewritten and every row after it rehashed: the chains
    // alone look intact; the heads that left the database do not match.
    let (db, heads, _d) = written_trail(backend).await;
    let chain = chain_of(&db, 6).await;
    exec(
        &db,
        "UPDATE audit_events SET actor = '899999999999' WHERE id = 6",
    )
    .await;
    audit::forge_rehash(&db, &chain).await.unwrap();
    let alone = audit::verify(&db, &[]).await.unwrap();
    assert_eq!(
        alone.broken, None,
        "without heads a full rehash is consistent"
    );
    let b = first_broken(&db, &heads).await;
    assert_eq!(b.chain.as_deref(), Some(chain.as_str()), "{b}");
    assert!(b.reason.contains("rewritten"), "{b}");

    // The tail cut (the last rows of every chain): only the heads tell.
    let (db, heads, _d) = written_trail(backend).await;
    exec(&db, "DELETE FROM audit_events WHERE id > 8").await;
    assert_eq!(audit::verify(&db, &[]).await.unwrap().broken, None);
    let b = first_broken(&db, &heads).await;
    assert_eq!(b.id, None, "{b}");
    assert!(b.reason.contains("tail was deleted"), "{b}");

    // A whole chain deleted.
    let (db, heads, _d) = written_trail(backend).await;
    let chain = chain_of(&db, 1).await;
    sqlx::query("DELETE FROM audit_events WHERE chain = $1")
        .bind(chain.clone())
        .execute(db.pool())
        .await
        .unwrap();
    let b = first_broken(&db, &heads).await;
    assert_eq!(b.chain.as_deref(), Some(chain.as_str()), "{b}");
}

/// The running proxy writes its chain heads to its log stream; `espace-ps
/// audit verify --heads <the log>` passes on the intact trail (exit 0) and
/// names the first broken row after a rewrite and rehash (exit 1).
#[tokio::test]
async fn heads_leave_through_the_log_and_verify_uses_them() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        audit: Some("head_log_interval_secs = 1\n".into()),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let home = dev_idp_login(
        &b,
        &proxy.base,
        espace_ps_demo_data::showcase::ELISE_NATIONAL_ID,
        "/",
    )
    .await;
    assert_eq!(home.status, reqwest::StatusCode::OK);
    wait_until(
        Duration::from_secs(10),
        "a chain head in the log",
        || async { audit::parse_heads(&proxy.logs()).iter().any(|h| h.seq >= 1) },
    )
    .await;
    let log = proxy.dir.path().join("stderr.log");
    let config = proxy.dir.path().join("espace-ps.toml");
    let verify = || {
        Command::new(BIN)
            .args(["audit", "verify", "--config"])
            .arg(&config)
            .arg("--heads")
            .arg(&log)
            .env_remove("ESPACE_DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = verify();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("intact: "), "{stdout}");
    assert!(!stdout.contains(" 0 heads"), "{stdout}");

    let db = proxy.db().await;
    drop_protections(&db).await;
    let chain = chain_of(&db, 1).await;
    exec(
        &db,
        "UPDATE audit_events SET client_addr = '203.0.113.9' WHERE id = 1",
    )
    .await;
    audit::forge_rehash(&db, &chain).await.unwrap();
    let out = verify();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("broken: row id "), "{stdout}");
    assert!(stdout.contains(&chain), "{stdout}");
}

on_both_backends!(demo_journey_ends_with_the_patients_export);

/// The README's demo journey as Dr Élise Martin-Dupré (search "sc", SCANAP
/// Françoise's page, a dossier, a report, "Afficher les images", her FEMUR
/// dossier by number and birth date), then `espace-ps audit export
/// --patient` for SCANAP Françoise: every one of these accesses, in French,
/// with the professional's name and RPPS, how (care team or dossier number)
/// and from where; `--professional` lists her search too, and a period
/// before the journey lists nothing.
async fn demo_journey_ends_with_the_patients_export(backend: Backend) {
    use espace_ps_demo_data::{self as demo_data, showcase::*};
    let (records_url, _dir) = fresh_url(backend).await;
    let (database_url, _dir2) = fresh_url(backend).await;
    let mut demo = demo_data::DemoConfig::demo(test_today());
    demo.patients = 400;
    demo_data::generate(&records_url, &demo).await.unwrap();
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        records_url: Some(records_url.clone()),
        database_url: Some(database_url.clone()),
        ..Default::default()
    })
    .await;
    let url = |p: &str| format!("{}{p}", proxy.base);
    sqlx::any::install_default_drivers();
    let rec = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(records_url.trim_end_matches("?mode=rwc"))
        .await
        .unwrap();
    let one = |sql: &'static str, bind: &'static str| {
        let rec = rec.clone();
        async move {
            sqlx::query(sql)
                .bind(bind)
                .fetch_one(&rec)
                .await
                .unwrap()
                .try_get::<String, _>(0)
                .unwrap()
        }
    };
    let report = one(
        "SELECT MIN(report_id) FROM rec_reports WHERE dossier_number = $1",
        SCANAP_DOSSIER_EPAULE,
    )
    .await;
    let study = one(
        "SELECT MIN(study_instance_uid) FROM rec_exams WHERE dossier_number = $1",
        SCANAP_DOSSIER_SCANNER,
    )
    .await;

    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE_NATIONAL_ID, "/").await;
    assert_eq!(home.status, reqwest::StatusCode::OK);
    let found = b.get(&url("/api/portail/patients?q=sc")).await;
    assert!(found.body.contains(SCANAP_PATIENT_ID), "{}", found.body);
    for path in [
        format!("/portail/patients/{SCANAP_PATIENT_ID}"),
        format!("/portail/dossiers/{SCANAP_DOSSIER_EPAULE}"),
        format!("/portail/comptes-rendus/{report}"),
    ] {
        let page = b.get(&url(&path)).await;
        assert_eq!(
            page.status,
            reqwest::StatusCode::OK,
            "{path}: {}",
            page.body
        );
    }
    // The portal's link to the viewer: audited before it redirects.
    b.get(&url(&format!("/portail/images/{study}"))).await;
    let form = b.get(&url("/portail/dossier")).await;
    let csrf = form
        .form_fields("/portail/dossier")
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;
    let opened = b
        .post_form(
            &url("/portail/dossier"),
            &[
                ("csrf_token".to_owned(), csrf),
                ("numero".to_owned(), SCANAP_DOSSIER_FEMUR.to_owned()),
                ("naissance".to_owned(), "13/08/1961".to_owned()),
            ],
            &proxy.base,
        )
        .await;
    let opened = b.follow(opened).await;
    assert_eq!(opened.status, reqwest::StatusCode::OK, "{}", opened.body);

    let export = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["audit", "export", "--database-url", &database_url])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Vec<serde_json::Value> = serde_json::from_str(&export(&[
        "--patient",
        SCANAP_PATIENT_ID,
        "--format",
        "json",
    ]))
    .unwrap();
    let field = |l: &serde_json::Value, k: &str| l[k].as_str().unwrap().to_owned();
    let lines: Vec<(String, String, String)> = json
        .iter()
        .map(|l| (field(l, "action"), field(l, "element"), field(l, "acces")))
        .collect();
    for l in &json {
        assert_eq!(field(l, "rpps"), ELISE_RPPS, "{l}");
        assert!(field(l, "professionnel").contains("Élise"), "{l}");
        assert_eq!(field(l, "resultat"), "autorisé", "{l}");
        assert_eq!(field(l, "provenance"), "réseau de l'établissement", "{l}");
    }
    let care = "équipe de soins ; connexion carte CPS".to_owned();
    let has = |action: &str, element: &str, acces: &str| {
        assert!(
            lines
                .iter()
                .any(|(a, e, c)| a == action && e.contains(element) && c == acces),
            "{action} {element} {acces} not in {lines:#?}"
        )
    };
    has("Consultation du dossier patient", "", &care);
    has(
        "Consultation d'un dossier (séjour)",
        SCANAP_DOSSIER_EPAULE,
        &care,
    );
    has("Lecture d'un compte rendu", &report, &care);
    has("Ouverture des images depuis le portail", &study, &care);
    let by_number = "numéro de dossier et date de naissance ; connexion carte CPS";
    has(
        "Accès par numéro de dossier",
        SCANAP_DOSSIER_FEMUR,
        by_number,
    );
    // FEMUR, a sibling dossier of her patient, is hers to view through the
    // patient's whole history (issue 11): its page is a care-team access,
    // although she also opened it by its number.
    has(
        "Consultation d'un dossier (séjour)",
        SCANAP_DOSSIER_FEMUR,
        &care,
    );
    // The name search lists patients but is no access to this one's data.
    assert!(!lines.iter().any(|(a, _, _)| a.starts_with("Recherche")));

    // The rows behind it: the policies that allowed.
    let db = proxy.db().await;
    let policies: Vec<(String, Option<String>)> =
        sqlx::query("SELECT event, policy FROM audit_events WHERE patient_id = $1 ORDER BY id")
            .bind(SCANAP_PATIENT_ID)
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect();
    assert!(
        policies.contains(&("report_view".into(), Some("care-team".into()))),
        "{policies:?}"
    );
    assert!(
        policies.contains(&(
            "dossier_number_access".into(),
            Some("open-dossier-by-number".into())
        )),
        "{policies:?}"
    );
    assert!(
        policies.contains(&(
            "dossier_view".into(),
            Some("care-team-whole-patient".into())
        )),
        "{policies:?}"
    );

    let csv = export(&["--patient", SCANAP_PATIENT_ID]);
    assert!(csv.starts_with(
        "\u{feff}Date et heure;Professionnel;RPPS;Patient;Action;Élément consulté;Accès;Résultat;Provenance\n"
    ));
    assert_eq!(csv.lines().count(), json.len() + 1);
    let mine: Vec<serde_json::Value> =
        serde_json::from_str(&export(&["--professional", ELISE_RPPS, "--format", "json"])).unwrap();
    assert!(mine
        .iter()
        .any(|l| l["action"] == "Recherche de patients par nom" && l["patient"] == ""));
    assert!(mine.iter().any(|l| l["patient"] == SCANAP_PATIENT_ID));
    // The day of the journey in France (the export's days are France's).
    let shown = field(&json[0], "date_heure");
    let day = format!("{}-{}-{}", &shown[6..10], &shown[3..5], &shown[0..2]);
    assert!(json
        .iter()
        .all(|l| field(l, "date_heure").starts_with(&shown[..10])));
    let today_only = export(&[
        "--patient",
        SCANAP_PATIENT_ID,
        "--from",
        &day,
        "--to",
        &day,
        "--format",
        "json",
    ]);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&today_only)
            .unwrap()
            .len(),
        json.len()
    );
    let before = export(&[
        "--patient",
        SCANAP_PATIENT_ID,
        "--to",
        "2000-01-01",
        "--format",
        "html",
    ]);
    assert!(
        before.contains("Aucun accès enregistré sur cette période."),
        "{before}"
    );
    assert!(before.contains("<html lang=\"fr\">"));
}

/// Least privilege on PostgreSQL: the owner role migrates (`espace-ps
/// migrate`); `serve` with `migrate = false` runs with a role that may only
/// INSERT and SELECT the trail (the documented GRANTs), writes its records
/// and cannot rewrite them; `serve` with a role that could rewrite them
/// refuses to start, unless the development switch says otherwise.
#[tokio::test]
async fn serve_runs_with_an_insert_only_role_and_refuses_a_rewriting_one() {
    let admin_url = fresh_pg_database().await;
    let (base, dbname) = admin_url.rsplit_once('/').unwrap();
    let tag = dbname.trim_start_matches("espace_t_");
    let (owner, app) = (format!("own_{tag}"), format!("app_{tag}"));
    let admin = PortalDb::open(&admin_url, 1, false).await;
    assert!(
        matches!(admin, Err(espace_ps::state::DbError::Outdated { .. })),
        "an empty schema is not up to date"
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .unwrap();
    for sql in [
        format!("CREATE ROLE {owner} LOGIN PASSWORD 'o'"),
        format!("CREATE ROLE {app} LOGIN PASSWORD 'a'"),
        format!("GRANT CONNECT ON DATABASE {dbname} TO {app}"),
        format!("GRANT ALL ON SCHEMA public TO {owner}"),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    let host = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let host = host.trim_start_matches("postgres://");
    let owner_url = format!("postgres://{owner}:o@{host}/{dbname}");
    let app_url = format!("postgres://{app}:a@{host}/{dbname}");
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", &owner_url])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner_db = PortalDb::open(&owner_url, 1, false).await.unwrap();
    for sql in [
        format!("GRANT USAGE ON SCHEMA public TO {app}"),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, seen_reports, dossier_grants, \
             dossier_attempts, dossier_attempt_accounts, dossier_number_budgets, \
             session_revocations TO {app}"
        ),
        format!("GRANT SELECT, INSERT ON audit_events TO {app}"),
        format!("GRANT SELECT ON _sqlx_migrations TO {app}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app}"),
    ] {
        sqlx::query(&sql).execute(owner_db.pool()).await.unwrap();
    }
    assert!(owner_db.can_rewrite_audit().await.unwrap());

    // The insert-only role: serve starts without migrating, a login is
    // recorded, and the role cannot rewrite it.
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        database_url: Some(app_url.clone()),
        database_extra: Some("migrate = false\n".into()),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let home = dev_idp_login(
        &b,
        &proxy.base,
        espace_ps_demo_data::showcase::ELISE_NATIONAL_ID,
        "/",
    )
    .await;
    assert_eq!(home.status, reqwest::StatusCode::OK);
    let app_db = PortalDb::open(&app_url, 1, false).await.unwrap();
    assert!(!app_db.can_rewrite_audit().await.unwrap());
    assert_eq!(
        scalar_i64(&app_db, "SELECT COUNT(*) FROM audit_events").await,
        1
    );
    for sql in [
        "UPDATE audit_events SET actor = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = sqlx::query(sql).execute(app_db.pool()).await.unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{sql}: {err}"
        );
    }
    drop(proxy);

    // The owner role (it may rewrite): serve refuses to start…
    let dir = tempfile::tempdir().unwrap();
    let config = |extra: &str| {
        let path = dir.path().join("espace-ps.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n\n\
                 [database]\nurl = \"{owner_url}\"\n{extra}\n[policies]\ndir = \"{}\"\n",
                free_port(),
                free_port(),
                shipped_policies().display()
            ),
        )
        .unwrap();
        path
    };
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config(""))
        .env_remove("ESPACE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("may UPDATE, DELETE or TRUNCATE audit_events"),
        "{stderr}"
    );
    // …unless told it is a development machine.
    let proxy = Proxy::start(ProxyOpts {
        database_url: Some(owner_url),
        ..Default::default()
    })
    .await;
    drop(proxy);
}
