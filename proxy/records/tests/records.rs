//! Records adapter and demo data, on SQLite and on a real PostgreSQL.
//!
//! The PostgreSQL tests need `ESPACE_TEST_PG_URL` (an admin URL: each test
//! creates its own database); `scripts/test.sh` provides it. Without it they
//! fail rather than pass silently.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use espace_ps_records::demo_data::{self, showcase::*, DemoConfig};
use espace_ps_records::{patient_tokens, query_words, Backend, Records, POSTGRES_SCHEMA};
use sqlx::{AnyPool, Connection, Row};
use time::macros::date;
use time::Date;

const TODAY: Date = date!(2025 - 06 - 15);

fn config(seed: u64) -> DemoConfig {
    let mut c = DemoConfig::demo(TODAY);
    c.seed = seed;
    c.patients = 400;
    c
}

// ------------------------------------------------------------------ databases

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}/{name}", dir.path().display())
}

/// A fresh PostgreSQL database; dropped by [`drop_pg`].
async fn fresh_pg() -> (String, String) {
    let admin = std::env::var("ESPACE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "ESPACE_TEST_PG_URL is not set: the PostgreSQL records tests need a server. \
             Run ./scripts/test.sh (or `scripts/test.sh --keep-services` and export the \
             lines it prints) and rerun."
        )
    });
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "records_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .expect("connect to ESPACE_TEST_PG_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    conn.close().await.ok();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin.as_str(), String::new()),
    };
    let slash = base.rfind('/').expect("database in ESPACE_TEST_PG_URL");
    (format!("{}/{name}{query}", &base[..slash]), name)
}

async fn drop_pg(name: &str) {
    let admin = std::env::var("ESPACE_TEST_PG_URL").unwrap();
    if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

type Dump = Vec<(String, Vec<Vec<Option<String>>>)>;

/// Every row of every table, sorted.
async fn dump(url: &str) -> Dump {
    let rec = Records::connect_with(url, 1).await.unwrap();
    let mut out = Vec::new();
    for (table, cols) in [
        ("rec_patients", 5),
        ("rec_patient_tokens", 2),
        ("rec_dossiers", 3),
        ("rec_care_team", 4),
        ("rec_exams", 7),
        ("rec_reports", 7),
    ] {
        let order: Vec<String> = (1..=cols).map(|i| i.to_string()).collect();
        let rows = sqlx::query(&format!(
            "SELECT * FROM {table} ORDER BY {}",
            order.join(", ")
        ))
        .fetch_all(rec.pool())
        .await
        .unwrap();
        let rows = rows
            .iter()
            .map(|r| {
                (0..cols)
                    .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect();
        out.push((table.to_string(), rows));
    }
    rec.pool().close().await;
    out
}

// ------------------------------------------------------------------ checks

fn ids(hits: &[espace_ps_records::PatientHit]) -> Vec<&str> {
    hits.iter().map(|h| h.patient.patient_id.as_str()).collect()
}

/// Patients on `rpps`'s care teams, with their tokens, straight from SQL.
async fn care_team_patients(pool: &AnyPool, rpps: &str) -> Vec<(String, Vec<String>)> {
    let rows = sqlx::query(
        "SELECT DISTINCT p.patient_id, p.family_name, p.given_name FROM rec_patients p \
         JOIN rec_dossiers d ON d.patient_id = p.patient_id \
         JOIN rec_care_team c ON c.dossier_number = d.dossier_number WHERE c.rpps = $1",
    )
    .bind(rpps)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let f: String = r.get(1);
            let g: String = r.get(2);
            (r.get(0), patient_tokens(&f, &g))
        })
        .collect()
}

async fn check_search(rec: &Records) {
    let s = |q: &'static str| async move { rec.search_patients(ELISE_RPPS, q, 50).await.unwrap() };

    // the user guide's patient, however she is typed
    for q in [
        "sc",
        "SC",
        "scanap",
        "fra sca",
        "SCA FRAN",
        "françoise",
        "FRANCOISE",
        "Francoise",
        "  françoise scanap  ",
        "scanap-fr",
    ] {
        let hits = s(q).await;
        assert!(
            ids(&hits).contains(&SCANAP_PATIENT_ID),
            "{q:?} must find SCANAP Françoise"
        );
    }
    // not the start of a word
    for q in ["ca", "nap", "ançoise", "sca ise"] {
        assert!(
            !ids(&s(q).await).contains(&SCANAP_PATIENT_ID),
            "{q:?} must not find her"
        );
    }
    // too short: nothing at all
    for q in ["s", " s ", "", "  ", "é", "-"] {
        assert!(s(q).await.is_empty(), "{q:?} must find nothing");
    }
    // SCANAP Jean-Baptiste is not on Élise's care team
    assert_eq!(ids(&s("scanap").await), [SCANAP_PATIENT_ID]);
    assert!(s("jean-baptiste scanap").await.is_empty());
    // Hervé is correspondant on one dossier of Françoise and on Jean-Baptiste's
    let hits = rec.search_patients(HERVE_RPPS, "scanap", 10).await.unwrap();
    assert_eq!(ids(&hits), [SCANAP_PATIENT_ID, "10000002"]);
    assert_eq!(
        hits[0].dossiers,
        [(SCANAP_DOSSIER_SCANNER.to_string(), vec!["CO".to_string()])]
    );
    // per-hit roles: Élise on four dossiers of Françoise, newest first
    let hit = &s("scanap").await[0];
    let recent = demo_data::scanap_recent_dossier(TODAY);
    let numbers: Vec<&str> = hit.dossiers.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(
        numbers,
        [
            recent.as_str(),
            SCANAP_DOSSIER_DOMTOM,
            SCANAP_DOSSIER_SCANNER,
            SCANAP_DOSSIER_EPAULE
        ]
    );
    assert!(hit.dossiers.iter().all(|d| d.1 == ["MT"]));
    // unknown or empty RPPS: nothing
    assert!(rec
        .search_patients("10000000000", "sc", 50)
        .await
        .unwrap()
        .is_empty());
    assert!(rec.search_patients("", "sc", 50).await.unwrap().is_empty());
    // the ADELI-only physiotherapist has no RPPS: name search cannot find his patient
    assert!(rec
        .search_patients("", "le bris", 50)
        .await
        .unwrap()
        .is_empty());

    // the result set is exactly the brute-force one, for every professional
    for rpps in [ELISE_RPPS, HERVE_RPPS, NOEL_RPPS, INES_RPPS] {
        let team = care_team_patients(rec.pool(), rpps).await;
        assert!(team.len() > 20, "{rpps} has {} patients", team.len());
        for q in [
            "ma", "le", "jean", "mar tin", "d", "ber", "ma ma", "n diaye", "legall", "xyz",
        ] {
            let words = query_words(q);
            let want: BTreeSet<&str> = team
                .iter()
                .filter(|(_, toks)| {
                    !words.is_empty()
                        && words
                            .iter()
                            .all(|w| toks.iter().any(|t| t.starts_with(w.as_str())))
                })
                .map(|(id, _)| id.as_str())
                .collect();
            let hits = rec.search_patients(rpps, q, 10_000).await.unwrap();
            let got: BTreeSet<&str> = ids(&hits).into_iter().collect();
            assert_eq!(got.len(), hits.len(), "no duplicate hits");
            assert_eq!(got, want, "{rpps} {q:?}");
            for h in &hits {
                assert!(!h.dossiers.is_empty());
                assert!(h.dossiers.iter().all(|d| !d.1.is_empty()));
            }
        }
    }
}

async fn check_ranking(rec: &Records) {
    let all = rec
        .search_patients(ELISE_RPPS, "martin", 1000)
        .await
        .unwrap();
    let pos = |id: &str| ids(&all).iter().position(|x| *x == id).unwrap();
    // exact family, exact given, family prefix, given prefix
    assert!(
        pos("10000003") < pos("10000004"),
        "MARTIN Hélène before LE GALL Martin"
    );
    assert!(pos("10000004") < pos("10000005"), "exact before prefix");
    assert!(
        pos("10000005") < pos("10000006"),
        "family prefix before given prefix"
    );
    // whole-word matches all come first
    let exact: Vec<bool> = all
        .iter()
        .map(|h| {
            patient_tokens(&h.patient.family_name, &h.patient.given_name)
                .contains(&"MARTIN".to_string())
        })
        .collect();
    let first_partial = exact.iter().position(|e| !e).unwrap_or(exact.len());
    assert!(exact[first_partial..].iter().all(|e| !e), "{exact:?}");
    // the cap keeps the best ones
    for limit in [1, 2, 3] {
        let capped = rec
            .search_patients(ELISE_RPPS, "martin", limit)
            .await
            .unwrap();
        assert_eq!(capped, all[..limit as usize]);
    }
    assert!(rec
        .search_patients(ELISE_RPPS, "martin", 0)
        .await
        .unwrap()
        .is_empty());
    // within a tier, alphabetical by family, given, birth date
    let ma = rec.search_patients(ELISE_RPPS, "ma", 1000).await.unwrap();
    assert!(ma.len() > 3);
}

async fn check_dossiers(rec: &Records, url: &str) {
    let p = rec.patient(SCANAP_PATIENT_ID).await.unwrap().unwrap();
    assert_eq!(
        (
            p.family_name.as_str(),
            p.given_name.as_str(),
            p.sex.as_str(),
            p.birth_date.as_str()
        ),
        ("SCANAP", "Françoise", "F", "1961-08-13")
    );
    assert!(rec.patient("nope").await.unwrap().is_none());

    let dossiers = rec.dossiers_of_patient(SCANAP_PATIENT_ID).await.unwrap();
    let recent = demo_data::scanap_recent_dossier(TODAY);
    let numbers: Vec<&str> = dossiers.iter().map(|d| d.dossier_number.as_str()).collect();
    assert_eq!(
        numbers,
        [
            recent.as_str(),
            SCANAP_DOSSIER_DOMTOM,
            SCANAP_DOSSIER_SCANNER,
            SCANAP_DOSSIER_FEMUR,
            SCANAP_DOSSIER_EPAULE
        ]
    );
    let d = rec.dossier(SCANAP_DOSSIER_SCANNER).await.unwrap().unwrap();
    assert_eq!(d.dossier_date, "2019-01-22");
    assert_eq!(d.patient_id, SCANAP_PATIENT_ID);
    assert!(rec.dossier("0").await.unwrap().is_none());

    // dossier number + birth date
    let ok = rec
        .dossier_by_number_and_birth_date(SCANAP_DOSSIER_FEMUR, SCANAP_BIRTH_DATE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.patient_id, SCANAP_PATIENT_ID);
    assert_eq!(ok.dossier_date, "2018-08-27");
    for (n, b) in [
        (SCANAP_DOSSIER_FEMUR, "1961-08-14"),
        (SCANAP_DOSSIER_FEMUR, "13/08/1961"),
        ("20180000099", SCANAP_BIRTH_DATE),
        ("", ""),
    ] {
        assert!(
            rec.dossier_by_number_and_birth_date(n, b)
                .await
                .unwrap()
                .is_none(),
            "{n} {b}"
        );
    }

    // roles
    let mt = vec!["MT".to_string()];
    assert_eq!(
        rec.roles_by_dossier(SCANAP_PATIENT_ID, ELISE_RPPS)
            .await
            .unwrap(),
        [
            (recent.clone(), mt.clone()),
            (SCANAP_DOSSIER_DOMTOM.into(), mt.clone()),
            (SCANAP_DOSSIER_SCANNER.into(), mt.clone()),
            (SCANAP_DOSSIER_EPAULE.into(), mt.clone()),
        ]
    );
    assert_eq!(
        rec.roles_by_dossier(SCANAP_PATIENT_ID, HERVE_RPPS)
            .await
            .unwrap(),
        [(SCANAP_DOSSIER_SCANNER.to_string(), vec!["CO".to_string()])]
    );
    assert!(rec
        .roles_by_dossier(SCANAP_PATIENT_ID, NOEL_RPPS)
        .await
        .unwrap()
        .is_empty());
    let le_gall = rec.roles_by_dossier("10000004", ELISE_RPPS).await.unwrap();
    assert_eq!(le_gall.len(), 2);
    assert_eq!(
        le_gall[1],
        (
            "20160000013".to_string(),
            vec!["MT".to_string(), "PR".to_string()]
        )
    );
    assert!(rec
        .roles_on_dossier(SCANAP_DOSSIER_FEMUR, ELISE_RPPS)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        rec.roles_on_dossier(SCANAP_DOSSIER_SCANNER, HERVE_RPPS)
            .await
            .unwrap(),
        ["CO"]
    );
    assert_eq!(
        rec.roles_on_dossier(SCANAP_DOSSIER_SCANNER, ELISE_RPPS)
            .await
            .unwrap(),
        ["MT"]
    );

    // exams, reports, studies
    let exams = rec.exams_of_dossier(SCANAP_DOSSIER_SCANNER).await.unwrap();
    assert_eq!(exams.len(), 1);
    let e = &exams[0];
    assert_eq!(
        (e.act_label.as_str(), e.exam_date.as_str()),
        ("SCANNER CEREBRAL", "2019-01-22")
    );
    assert_eq!(e.modality.as_deref(), Some("CT"));
    let uid = e.study_instance_uid.clone().unwrap();
    assert!(uid.starts_with("2.25.") && uid.len() <= 64);
    let study = rec.study(&uid).await.unwrap().unwrap();
    assert_eq!(study.exam_id, e.exam_id);
    assert_eq!(study.dossier_number, SCANAP_DOSSIER_SCANNER);
    assert_eq!(study.patient_id, SCANAP_PATIENT_ID);
    assert!(rec.study("2.25.1").await.unwrap().is_none());
    let reports = rec
        .reports_of_dossier(SCANAP_DOSSIER_SCANNER)
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].exam_id.as_deref(), Some(e.exam_id.as_str()));
    assert!(reports[0]
        .content
        .as_deref()
        .unwrap()
        .contains("SCANNER CEREBRAL"));
    assert_eq!(
        rec.report(&reports[0].report_id).await.unwrap().as_ref(),
        Some(&reports[0])
    );
    assert!(rec.report("nope").await.unwrap().is_none());
    for (n, label) in [
        (SCANAP_DOSSIER_FEMUR, "FEMUR"),
        (SCANAP_DOSSIER_EPAULE, "IRM DE L'ÉPAULE"),
    ] {
        assert_eq!(rec.exams_of_dossier(n).await.unwrap()[0].act_label, label);
    }
    let domtom = rec.exams_of_dossier(SCANAP_DOSSIER_DOMTOM).await.unwrap();
    assert_eq!(domtom[0].act_label, "Acte majoration DOMTOM2");
    assert!(domtom[0].study_instance_uid.is_none() && domtom[0].modality.is_none());
    assert!(rec
        .reports_of_dossier(SCANAP_DOSSIER_DOMTOM)
        .await
        .unwrap()
        .is_empty());

    // studies for a DICOM generator: all of the demo patients' studies
    let elise = vec![ELISE_NATIONAL_ID.to_string()];
    let studies = demo_data::studies(url, &elise, None).await.unwrap();
    let scanap: Vec<&str> = studies
        .iter()
        .filter(|s| s.patient_id == SCANAP_PATIENT_ID)
        .map(|s| s.act_label.as_str())
        .collect();
    assert_eq!(
        scanap,
        [
            "IRM DE L'ÉPAULE",
            "FEMUR",
            "SCANNER CEREBRAL",
            "RADIOGRAPHIE DU THORAX"
        ]
    );
    assert!(studies
        .iter()
        .all(|s| s.study_instance_uid.starts_with("2.25.")));
    let limited = demo_data::studies(url, &demo_data::default_national_ids(), Some(7))
        .await
        .unwrap();
    assert_eq!(limited.len(), 7);
    assert_eq!(limited[0].patient_id, SCANAP_PATIENT_ID);
}

async fn check_recent(rec: &Records) {
    let since = |days: i64| {
        let d = TODAY - time::Duration::days(days);
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };
    let recent = demo_data::scanap_recent_dossier(TODAY);
    let list = rec
        .recent_reports_for(ELISE_RPPS, &since(30), 500)
        .await
        .unwrap();
    assert!(list.len() > 5, "Élise has {} recent results", list.len());
    let scanap = list
        .iter()
        .find(|r| r.dossier.dossier_number == recent)
        .expect("SCANAP's recent result");
    assert_eq!(scanap.report.report_date, since(5));
    assert_eq!(scanap.patient.family_name, "SCANAP");
    assert_eq!(scanap.roles, ["MT"]);
    assert_eq!(
        scanap.exam.as_ref().unwrap().act_label,
        "RADIOGRAPHIE DU THORAX"
    );
    for w in list.windows(2) {
        assert!(
            w[0].report.report_date >= w[1].report.report_date,
            "newest first"
        );
    }
    for r in &list {
        assert!(r.report.report_date >= since(30));
        assert!(!r.roles.is_empty());
        assert_eq!(
            rec.roles_on_dossier(&r.dossier.dossier_number, ELISE_RPPS)
                .await
                .unwrap(),
            r.roles
        );
    }
    // the count matches SQL
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM rec_reports r WHERE r.report_date >= $2 AND r.dossier_number IN \
         (SELECT c.dossier_number FROM rec_care_team c WHERE c.rpps = $1)",
    )
    .bind(ELISE_RPPS)
    .bind(since(30))
    .fetch_one(rec.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(n as usize, list.len());
    // window edges: the report is 5 days old
    let in5 = rec
        .recent_reports_for(ELISE_RPPS, &since(5), 500)
        .await
        .unwrap();
    assert!(in5.iter().any(|r| r.dossier.dossier_number == recent));
    let in4 = rec
        .recent_reports_for(ELISE_RPPS, &since(4), 500)
        .await
        .unwrap();
    assert!(!in4.iter().any(|r| r.dossier.dossier_number == recent));
    // nothing older than the window, FEMUR (not on her team) never
    assert!(list
        .iter()
        .all(|r| r.dossier.dossier_number != SCANAP_DOSSIER_FEMUR));
    // cap
    let capped = rec
        .recent_reports_for(ELISE_RPPS, &since(30), 2)
        .await
        .unwrap();
    assert_eq!(capped, list[..2]);
    assert!(rec
        .recent_reports_for("", &since(30), 10)
        .await
        .unwrap()
        .is_empty());
    // Hervé's only SCANAP dossier is old
    let herve = rec
        .recent_reports_for(HERVE_RPPS, &since(30), 500)
        .await
        .unwrap();
    assert!(herve
        .iter()
        .all(|r| r.patient.patient_id != SCANAP_PATIENT_ID));
}

async fn check_read_only(rec: &Records) {
    let err = sqlx::query("DELETE FROM rec_patients")
        .execute(rec.pool())
        .await;
    assert!(err.is_err(), "the adapter's connections must be read-only");
}

async fn all_checks(url: &str) {
    let rec = Records::connect(url).await.unwrap();
    rec.ping().await.unwrap();
    check_search(&rec).await;
    check_ranking(&rec).await;
    check_dossiers(&rec, url).await;
    check_recent(&rec).await;
    check_read_only(&rec).await;
    rec.pool().close().await;
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn sqlite_records() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "records.db");
    let summary = demo_data::generate(&url, &config(7)).await.unwrap();
    assert!(summary.patients > 400 && summary.dossiers > summary.patients);
    assert!(summary.care_team > summary.dossiers * 2);
    // read-only open, as in production
    all_checks(&format!("{url}?mode=ro")).await;
    // a second generation into the same database is refused
    assert!(demo_data::generate(&url, &config(7)).await.is_err());
}

#[tokio::test]
async fn postgres_records() {
    let (url, name) = fresh_pg().await;
    demo_data::generate(&url, &config(7)).await.unwrap();
    assert_eq!(Backend::of_url(&url), Backend::Postgres);
    all_checks(&url).await;
    drop_pg(&name).await;
}

#[tokio::test]
async fn same_seed_same_data_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let mut small = config(11);
    small.patients = 150;
    let a = sqlite_url(&dir, "a.db");
    let b = sqlite_url(&dir, "b.db");
    let c = sqlite_url(&dir, "c.db");
    demo_data::generate(&a, &small).await.unwrap();
    demo_data::generate(&b, &small).await.unwrap();
    let da = dump(&a).await;
    assert_eq!(da, dump(&b).await);
    let mut other = small.clone();
    other.seed = 12;
    demo_data::generate(&c, &other).await.unwrap();
    assert_ne!(da, dump(&c).await);

    let (pg, name) = fresh_pg().await;
    demo_data::generate(&pg, &small).await.unwrap();
    assert_eq!(
        da,
        dump(&pg).await,
        "PostgreSQL holds the same rows as SQLite"
    );
    drop_pg(&name).await;
}

/// The materialized view documented for hospitals computes the same tokens
/// as the generator (`patient_tokens`).
#[tokio::test]
async fn postgres_token_view_matches_patient_tokens() {
    let (url, name) = fresh_pg().await;
    demo_data::generate(&url, &config(3)).await.unwrap();
    let view_sql = include_str!("../schema/postgres-tokens-view.sql")
        .replace("rec_patient_tokens", "rec_patient_tokens_view");
    assert!(POSTGRES_SCHEMA.contains("rec_patient_tokens"));
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let body: Vec<&str> = view_sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    for stmt in body.join("\n").split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    let q = |t: &str| format!("SELECT token, patient_id FROM {t} ORDER BY patient_id, token");
    let rows = |rs: Vec<sqlx::any::AnyRow>| -> Vec<(String, String)> {
        rs.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let from_view = rows(
        sqlx::query(&q("rec_patient_tokens_view"))
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    let generated = rows(
        sqlx::query(&q("rec_patient_tokens"))
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    assert!(generated.len() > 800);
    assert_eq!(from_view, generated);
    pool.close().await;
    drop_pg(&name).await;
}
