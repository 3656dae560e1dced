//! Records adapter and demo data, on SQLite and on a real PostgreSQL.
//!
//! The PostgreSQL tests need a server (an admin URL: each test creates its
//! own database): `ESPACE_TEST_PG_URL` when set, else the throwaway cluster
//! `espace_ps_testenv` starts once for the test run. When it cannot start
//! they fail rather than pass silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use espace_ps_demo_data::{self as demo_data, showcase::*, DemoConfig};
use espace_ps_records::{
    patient_tokens, query_words, search_tokens, Backend, PatientHit, RecentCursor, RecentKey,
    Records, POSTGRES_SCHEMA,
};
use sqlx::{AnyPool, Connection, Row};
use time::macros::date;
use time::Date;

/// The "today" of the generated records: pinned, or `ESPACE_TEST_NOW`'s
/// date when `scripts/test.sh` runs the tests again with the clock moved.
fn today() -> Date {
    match std::env::var("ESPACE_TEST_NOW") {
        Ok(s) => time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("ESPACE_TEST_NOW={s}: {e}"))
            .date(),
        Err(_) => date!(2025 - 06 - 15),
    }
}

fn config(seed: u64) -> DemoConfig {
    let mut c = DemoConfig::demo(today());
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
    let admin = espace_ps_testenv::peer("ESPACE_TEST_PG_URL");
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
    let admin = espace_ps_testenv::peer("ESPACE_TEST_PG_URL");
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
        ("rec_search_tokens", 3),
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
    let recent = demo_data::scanap_recent_dossier(today());
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

/// The name search as it was before the search index (commit 01ba427): from
/// the professional's care-team rows, `LIKE 'WORD%'` on each patient's
/// tokens, ranked in Rust. The reference for [`check_same_as_before`].
async fn search_before_index(
    pool: &AnyPool,
    rpps: &str,
    query: &str,
    limit: usize,
) -> Vec<PatientHit> {
    let words = query_words(query);
    if words.is_empty() || limit == 0 || rpps.is_empty() {
        return Vec::new();
    }
    let mut sql = String::from(
        "SELECT p.patient_id, p.family_name, p.given_name, p.sex, p.birth_date, \
         c.dossier_number, c.role_code, d.dossier_date \
         FROM rec_care_team c \
         JOIN rec_dossiers d ON d.dossier_number = c.dossier_number \
         JOIN rec_patients p ON p.patient_id = d.patient_id \
         WHERE c.rpps = $1",
    );
    for i in 0..words.len() {
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM rec_patient_tokens t \
             WHERE t.patient_id = p.patient_id AND t.token LIKE ${})",
            i + 2
        ));
    }
    let mut q = sqlx::query(&sql).bind(rpps);
    for w in &words {
        q = q.bind(format!("{w}%"));
    }
    type PerPatient = (
        espace_ps_records::Patient,
        BTreeMap<String, (String, Vec<String>)>,
    );
    let mut by_patient: HashMap<String, PerPatient> = HashMap::new();
    for row in q.fetch_all(pool).await.unwrap() {
        let patient = espace_ps_records::Patient {
            patient_id: row.get(0),
            family_name: row.get(1),
            given_name: row.get(2),
            sex: row.get(3),
            birth_date: row.get(4),
        };
        let (dossier, role, date): (String, String, String) = (row.get(5), row.get(6), row.get(7));
        let entry = by_patient
            .entry(patient.patient_id.clone())
            .or_insert_with(|| (patient, BTreeMap::new()));
        let roles = &mut entry.1.entry(dossier).or_insert((date, Vec::new())).1;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let mut ranked: Vec<_> = by_patient
        .into_values()
        .map(|(p, dossiers)| {
            let all = patient_tokens(&p.family_name, &p.given_name);
            let family = patient_tokens(&p.family_name, "");
            let key = (
                words.iter().filter(|w| !all.contains(w)).count(),
                !words
                    .first()
                    .is_some_and(|w| family.iter().any(|t| t.starts_with(w.as_str()))),
                search_tokens(&p.family_name).join(" "),
                search_tokens(&p.given_name).join(" "),
                p.birth_date.clone(),
                p.patient_id.clone(),
            );
            let mut dossiers: Vec<(String, String, Vec<String>)> = dossiers
                .into_iter()
                .map(|(n, (date, mut roles))| {
                    roles.sort();
                    (date, n, roles)
                })
                .collect();
            dossiers.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
            let dossiers = dossiers.into_iter().map(|(_, n, r)| (n, r)).collect();
            (
                key,
                PatientHit {
                    patient: p,
                    dossiers,
                },
            )
        })
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    ranked.truncate(limit);
    ranked.into_iter().map(|(_, h)| h).collect()
}

/// The index-based search gives exactly what the search before the index
/// gave (same patients, same order, same dossiers and roles).
async fn check_same_as_before(rec: &Records) {
    let queries = [
        "sc",
        "scan",
        "SCANAP",
        "françoise scanap",
        "scanap françoise",
        "fra sca",
        "le gall",
        "legall",
        "le ga",
        "gall le",
        "martin",
        "mart",
        "ma",
        "ma ma",
        "mar tin",
        "hélène",
        "HELENE",
        "Hélè",
        "aïss",
        "n'di",
        "ndiaye",
        "n diaye",
        "jean",
        "jean-pierre",
        "jean pi",
        "le",
        "du",
        "ber",
        "xyz",
        "é",
        "martin-dupré marie",
    ];
    for rpps in [
        ELISE_RPPS,
        HERVE_RPPS,
        NOEL_RPPS,
        INES_RPPS,
        "10000000000",
        "",
    ] {
        for q in queries {
            for limit in [3usize, 20, 10_000] {
                let before = search_before_index(rec.pool(), rpps, q, limit).await;
                let now = rec.search_patients(rpps, q, limit as u32).await.unwrap();
                assert_eq!(now, before, "{rpps} {q:?} limit {limit}");
            }
        }
    }
}

/// The search index only proposes candidates: the dossiers and roles of a
/// hit are the live care-team rows, a patient without any for this
/// professional is never returned, and the current name decides. `url` is a
/// writable database freshly generated with the demo data.
async fn check_stale_index(url: &str) {
    let rec = Records::connect_with(url, 1).await.unwrap();
    let writer = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let exec = |sql: &'static str, binds: Vec<&'static str>| {
        let writer = writer.clone();
        async move {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b);
            }
            q.execute(&writer).await.unwrap().rows_affected()
        }
    };
    let dossiers_of = |hits: &[PatientHit], id: &str| -> Option<Vec<(String, Vec<String>)>> {
        hits.iter()
            .find(|h| h.patient.patient_id == id)
            .map(|h| h.dossiers.clone())
    };

    // Élise leaves the care team of the SCANNER CEREBRAL dossier; the index
    // still says she is on Françoise's care team (unchanged)
    let n = exec(
        "DELETE FROM rec_care_team WHERE dossier_number = $1 AND rpps = $2",
        vec![SCANAP_DOSSIER_SCANNER, ELISE_RPPS],
    )
    .await;
    assert_eq!(n, 1);
    let hits = rec.search_patients(ELISE_RPPS, "scanap", 20).await.unwrap();
    let d = dossiers_of(&hits, SCANAP_PATIENT_ID).expect("still on other dossiers");
    assert!(
        d.iter().all(|(n, _)| n != SCANAP_DOSSIER_SCANNER),
        "a dossier she left must not be handed to the policy engine: {d:?}"
    );
    assert_eq!(d.len(), 3);
    // her role changes on another dossier: the hit carries the live role
    exec(
        "UPDATE rec_care_team SET role_code = 'CO' WHERE dossier_number = $1 AND rpps = $2",
        vec![SCANAP_DOSSIER_EPAULE, ELISE_RPPS],
    )
    .await;
    let hits = rec.search_patients(ELISE_RPPS, "scanap", 20).await.unwrap();
    let d = dossiers_of(&hits, SCANAP_PATIENT_ID).unwrap();
    assert!(d.contains(&(SCANAP_DOSSIER_EPAULE.to_string(), vec!["CO".to_string()])));

    // Élise leaves MARTIN Hélène's only dossier: no longer found at all
    assert!(dossiers_of(
        &rec.search_patients(ELISE_RPPS, "martin", 50).await.unwrap(),
        "10000003"
    )
    .is_some());
    exec(
        "DELETE FROM rec_care_team WHERE dossier_number = '20220000012' AND rpps = $1",
        vec![ELISE_RPPS],
    )
    .await;
    let index_rows: i64 = sqlx::query(
        "SELECT COUNT(*) FROM rec_search_tokens WHERE rpps = $1 AND patient_id = '10000003'",
    )
    .bind(ELISE_RPPS)
    .fetch_one(&writer)
    .await
    .unwrap()
    .get(0);
    assert!(index_rows > 0, "the index is stale on purpose");
    for q in ["martin", "helene", "martin hélène"] {
        let hits = rec.search_patients(ELISE_RPPS, q, 50).await.unwrap();
        assert!(dossiers_of(&hits, "10000003").is_none(), "{q:?}");
    }

    // index rows that propose a patient she was never on the care team of
    // (SCANAP Jean-Baptiste): never returned
    exec(
        "INSERT INTO rec_search_tokens (rpps, token, patient_id) VALUES \
         ($1, 'SCANAP', '10000002'), ($1, 'JEAN', '10000002'), ($1, 'BAPTISTE', '10000002')",
        vec![ELISE_RPPS],
    )
    .await;
    for q in ["scanap", "jean-baptiste scanap", "baptiste"] {
        let hits = rec.search_patients(ELISE_RPPS, q, 50).await.unwrap();
        assert!(dossiers_of(&hits, "10000002").is_none(), "{q:?}");
    }

    // the patient was renamed since the index was built: the current name
    // decides (the old name no longer finds her; the new one not before the
    // refresh: stale hides, never adds)
    exec(
        "UPDATE rec_patients SET family_name = 'DURAND' WHERE patient_id = '10000006'",
        vec![],
    )
    .await;
    assert!(dossiers_of(
        &rec.search_patients(ELISE_RPPS, "dupont", 50).await.unwrap(),
        "10000006"
    )
    .is_none());
    let hits = rec
        .search_patients(ELISE_RPPS, "martine", 50)
        .await
        .unwrap();
    let durand = hits.iter().find(|h| h.patient.patient_id == "10000006");
    assert_eq!(durand.unwrap().patient.family_name, "DURAND");

    // missing index rows hide a patient (until the next refresh)
    exec(
        "DELETE FROM rec_search_tokens WHERE rpps = $1 AND patient_id = '10000005'",
        vec![ELISE_RPPS],
    )
    .await;
    assert!(dossiers_of(
        &rec.search_patients(ELISE_RPPS, "martinez", 50)
            .await
            .unwrap(),
        "10000005"
    )
    .is_none());

    writer.close().await;
    rec.pool().close().await;
}

/// More matching patients than [`espace_ps_records::SEARCH_CANDIDATE_CAP`]:
/// the search stays bounded, returns `limit` hits, exact token matches
/// first, and ranks the first candidates of the index only.
async fn check_candidate_cap(url: &str) {
    let cap = espace_ps_records::SEARCH_CANDIDATE_CAP as usize;
    let n = cap + 205;
    let writer = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let mut tx = writer.begin().await.unwrap();
    // 5 patients "MARTI …" then cap + 200 "MARTINOT …", all on Élise's care
    // teams; given names in the reverse order of the patient ids
    let id = |i: usize| format!("2{i:07}");
    for i in 0..n {
        let family = if i < 5 { "MARTI" } else { "MARTINOT" };
        insert_patient(&mut tx, &id(i), family, &format!("P{:05}", n - i)).await;
    }
    // 3/4 cap "DUVAL-DUVALIER" (three tokens starting with DUVAL: DUVAL,
    // DUVALIER, DUVALDUVALIER), then 1/2 cap "DUVALOT"
    let (dup, more) = (cap * 3 / 4, cap / 2);
    for i in 0..dup + more {
        let family = if i < dup { "DUVAL-DUVALIER" } else { "DUVALOT" };
        insert_patient(&mut tx, &format!("3{i:07}"), family, "Jean").await;
    }
    // more than `cap` "MARTINEZ Jeanne", then one "MARTIN Jean" with the
    // highest id: by patient id alone he would not be a candidate
    for i in 0..cap + 10 {
        insert_patient(&mut tx, &format!("4{i:07}"), "MARTINEZ", "Jeanne").await;
    }
    insert_patient(&mut tx, "59999999", "MARTIN", "Jean").await;
    tx.commit().await.unwrap();
    writer.close().await;

    let rec = Records::connect_with(url, 1).await.unwrap();
    let hits = rec.search_patients(ELISE_RPPS, "marti", 20).await.unwrap();
    assert_eq!(hits.len(), 20);
    let fam: Vec<&str> = hits
        .iter()
        .map(|h| h.patient.family_name.as_str())
        .collect();
    assert_eq!(&fam[..5], ["MARTI"; 5], "exact token matches first");
    // the candidates are the first `cap` of the index (by patient id here):
    // the best of them by given name, not the best of all
    let hits = rec
        .search_patients(ELISE_RPPS, "martinot", 20)
        .await
        .unwrap();
    let want: Vec<String> = (cap - 15..cap + 5).rev().map(id).collect();
    assert_eq!(ids(&hits), want);
    // a larger limit widens the candidates
    let all = rec
        .search_patients(ELISE_RPPS, "martinot", 100_000)
        .await
        .unwrap();
    assert_eq!(all.len(), n - 5);
    assert_eq!(all[0].patient.given_name, "P00001");
    // a second word narrows the range of the first
    let one = rec
        .search_patients(ELISE_RPPS, "mart p00001", 20)
        .await
        .unwrap();
    assert_eq!(ids(&one), [id(n - 1)]);
    // several words: whole-word matches are candidates first
    let jean = rec
        .search_patients(ELISE_RPPS, "martin jean", 20)
        .await
        .unwrap();
    assert_eq!(jean.len(), 20);
    assert_eq!(ids(&jean)[0], "59999999", "MARTIN Jean first");
    // several index entries of one patient in the range: still `cap`
    // distinct candidates (the index is read on past the duplicates)
    let duval = rec
        .search_patients(ELISE_RPPS, "duval", cap as u32)
        .await
        .unwrap();
    assert_eq!(duval.len(), cap);
    let distinct: BTreeSet<&str> = ids(&duval).into_iter().collect();
    assert_eq!(distinct.len(), cap);
    let count = |family: &str| {
        duval
            .iter()
            .filter(|h| h.patient.family_name == family)
            .count()
    };
    // all those with three entries, and some of those after them
    assert_eq!(count("DUVAL-DUVALIER"), dup);
    assert!(count("DUVALOT") > 0);
    rec.pool().close().await;
}

/// Inserts a patient with one dossier on which Élise is médecin traitant,
/// with their `rec_patient_tokens` and `rec_search_tokens` rows.
async fn insert_patient(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    family: &str,
    given: &str,
) {
    let dossier = format!("19{id}");
    sqlx::query("INSERT INTO rec_patients VALUES ($1, $2, $3, 'U', '1950-01-01')")
        .bind(id)
        .bind(family)
        .bind(given)
        .execute(&mut **tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO rec_dossiers VALUES ($1, $2, '2020-01-01')")
        .bind(&dossier)
        .bind(id)
        .execute(&mut **tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO rec_care_team VALUES ($1, $2, $3, 'MT')")
        .bind(&dossier)
        .bind(ELISE_NATIONAL_ID)
        .bind(ELISE_RPPS)
        .execute(&mut **tx)
        .await
        .unwrap();
    for t in patient_tokens(family, given) {
        sqlx::query("INSERT INTO rec_patient_tokens VALUES ($1, $2)")
            .bind(&t)
            .bind(id)
            .execute(&mut **tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO rec_search_tokens VALUES ($1, $2, $3)")
            .bind(ELISE_RPPS)
            .bind(&t)
            .bind(id)
            .execute(&mut **tx)
            .await
            .unwrap();
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
    let recent = demo_data::scanap_recent_dossier(today());
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

    // roles around a dossier: the whole patient's, from any of its dossiers
    for d in [SCANAP_DOSSIER_FEMUR, SCANAP_DOSSIER_SCANNER] {
        assert_eq!(
            rec.roles_around_dossier(d, ELISE_RPPS).await.unwrap(),
            rec.roles_by_dossier(SCANAP_PATIENT_ID, ELISE_RPPS)
                .await
                .unwrap(),
            "{d}"
        );
    }
    assert_eq!(
        rec.roles_around_dossier(SCANAP_DOSSIER_FEMUR, HERVE_RPPS)
            .await
            .unwrap(),
        [(SCANAP_DOSSIER_SCANNER.to_string(), vec!["CO".to_string()])]
    );
    assert!(rec
        .roles_around_dossier(SCANAP_DOSSIER_FEMUR, NOEL_RPPS)
        .await
        .unwrap()
        .is_empty());
    assert!(rec
        .roles_around_dossier("20189999999", ELISE_RPPS)
        .await
        .unwrap()
        .is_empty());

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
        let d = today() - time::Duration::days(days);
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };
    let recent = demo_data::scanap_recent_dossier(today());
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

    // the home page's reads: the keys of the same list, the roles on its
    // dossiers, and the whole rows by id
    let keys = rec
        .recent_report_keys(ELISE_RPPS, &since(30), 5_000)
        .await
        .unwrap();
    let key_of = |r: &espace_ps_records::RecentResult| RecentKey {
        report_id: r.report.report_id.clone(),
        dossier_number: r.dossier.dossier_number.clone(),
        report_date: r.report.report_date.clone(),
    };
    assert_eq!(keys, list.iter().map(key_of).collect::<Vec<_>>());
    assert_eq!(
        rec.recent_report_keys(ELISE_RPPS, &since(30), 2)
            .await
            .unwrap(),
        keys[..2]
    );
    assert!(rec
        .recent_report_keys("", &since(30), 10)
        .await
        .unwrap()
        .is_empty());
    let roles = rec
        .roles_on_recent_dossiers(ELISE_RPPS, &since(30))
        .await
        .unwrap();
    let dossiers: BTreeSet<&str> = list
        .iter()
        .map(|r| r.dossier.dossier_number.as_str())
        .collect();
    assert_eq!(roles.len(), dossiers.len());
    for r in &list {
        assert_eq!(roles[&r.dossier.dossier_number], r.roles);
    }
    let ids: Vec<String> = list.iter().map(|r| r.report.report_id.clone()).collect();
    let mut whole = rec.recent_results(&ids, &roles).await.unwrap();
    whole.sort_by(|a, b| {
        (&b.report.report_date, &b.report.report_id)
            .cmp(&(&a.report.report_date, &a.report.report_id))
    });
    assert_eq!(whole, list);
    // a report whose dossier has no roles given, and an unknown id: left out
    let mut fewer = roles.clone();
    fewer.remove(&list[0].dossier.dossier_number);
    let some = rec
        .recent_results(&[ids[0].clone(), "NO-SUCH-REPORT".into()], &fewer)
        .await
        .unwrap();
    assert!(some.is_empty());

    // pages: the same list, page after page, whatever the page size
    for size in [1u32, 2, 3, 7] {
        let mut paged = Vec::new();
        let mut after: Option<RecentCursor> = None;
        loop {
            let page = rec
                .recent_reports_page(ELISE_RPPS, &since(30), after.as_ref(), size)
                .await
                .unwrap();
            assert!(page.len() <= size as usize);
            after = page.last().map(RecentCursor::of);
            let done = page.len() < size as usize;
            paged.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(paged, list, "page size {size}");
    }

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
    check_same_as_before(&rec).await;
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
async fn sqlite_stale_search_index_never_grants() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "records.db");
    demo_data::generate(&url, &config(7)).await.unwrap();
    check_stale_index(&url).await;
}

#[tokio::test]
async fn sqlite_search_candidate_cap() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "records.db");
    let mut cfg = config(7);
    cfg.patients = 50;
    demo_data::generate(&url, &cfg).await.unwrap();
    check_candidate_cap(&url).await;
}

/// espace-ps refuses to start on a search index whose tokens do not compare
/// bytewise: the prefix ranges would silently miss words ending in Z or 9.
#[tokio::test]
async fn postgres_search_index_collation_is_checked() {
    let (url, name) = fresh_pg().await;
    let mut cfg = config(7);
    cfg.patients = 5;
    demo_data::generate(&url, &cfg).await.unwrap();
    let collate = |c: &'static str| {
        let url = url.clone();
        async move {
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query(&format!(
                "ALTER TABLE rec_search_tokens ALTER COLUMN token TYPE TEXT COLLATE \"{c}\""
            ))
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.ok();
            let rec = Records::connect_with(&url, 1).await.unwrap();
            let checked = rec.check_search_index().await;
            rec.pool().close().await;
            checked
        }
    };
    collate("C").await.expect("COLLATE \"C\" is bytewise");
    // the test cluster's databases are created with LC_COLLATE C
    collate("default")
        .await
        .expect("the database's C collation");
    let err = collate("und-x-icu")
        .await
        .expect_err("a linguistic collation");
    assert!(err.to_string().contains("COLLATE"), "{err}");
    drop_pg(&name).await;
}

#[tokio::test]
async fn postgres_stale_search_index_and_cap() {
    let (url, name) = fresh_pg().await;
    let mut cfg = config(7);
    cfg.patients = 50;
    demo_data::generate(&url, &cfg).await.unwrap();
    check_stale_index(&url).await;
    check_candidate_cap(&url).await;
    drop_pg(&name).await;
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

/// The materialized view documented for hospitals' search index yields the
/// rows the generator writes into `rec_search_tokens`.
#[tokio::test]
async fn postgres_search_token_view_matches_generated_index() {
    let (url, name) = fresh_pg().await;
    demo_data::generate(&url, &config(3)).await.unwrap();
    let view_sql = include_str!("../schema/postgres-search-tokens-view.sql")
        .replace("rec_search_tokens", "rec_search_tokens_view");
    assert!(POSTGRES_SCHEMA.contains("rec_search_tokens"));
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
    let q = |t: &str| {
        format!("SELECT rpps, token, patient_id FROM {t} ORDER BY rpps, token, patient_id")
    };
    let rows = |rs: Vec<sqlx::any::AnyRow>| -> Vec<(String, String, String)> {
        rs.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    };
    let from_view = rows(
        sqlx::query(&q("rec_search_tokens_view"))
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    let generated = rows(
        sqlx::query(&q("rec_search_tokens"))
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    assert!(generated.len() > 5_000, "{}", generated.len());
    assert_eq!(from_view, generated);
    // and the same rows straight from the definition, on both backends'
    // generated data: one per (RPPS on a care team of the patient, token)
    let brute: BTreeSet<(String, String, String)> = rows(
        sqlx::query(
            "SELECT DISTINCT c.rpps, p.patient_id, p.family_name || '|' || p.given_name \
             FROM rec_care_team c JOIN rec_dossiers d ON d.dossier_number = c.dossier_number \
             JOIN rec_patients p ON p.patient_id = d.patient_id WHERE c.rpps IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap(),
    )
    .into_iter()
    .flat_map(|(rpps, id, names)| {
        let (f, g) = names.split_once('|').unwrap();
        patient_tokens(f, g)
            .into_iter()
            .map(move |t| (rpps.clone(), t, id.clone()))
    })
    .collect();
    assert_eq!(brute.into_iter().collect::<Vec<_>>(), generated);
    pool.close().await;
    drop_pg(&name).await;
}
