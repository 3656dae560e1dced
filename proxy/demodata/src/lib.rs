//! espace-ps demo data (never in the production binary): reproducible
//! French demo records written into a records database. The user guide's
//! patient (SCANAP Françoise) and a few other showcase patients, then as
//! many random patients as asked, with their dossiers, care teams, exams and
//! reports.
//!
//! The same seed and configuration give the same rows, on SQLite and on
//! PostgreSQL. The loader writes batched multi-row INSERTs in transactions
//! on SQLite and uses `COPY … FROM STDIN` on PostgreSQL, and creates the
//! indexes at the end; it scales to 1 million patients.

mod names;

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgConnection;
use sqlx::{Any, AnyPool, Connection, Row, Transaction};
use time::Date;

use espace_ps_identity::luhn_check_digit;
use espace_ps_records::{patient_tokens, Backend, RecordsError, Result};
use names::Kind;

/// The showcase records, fixed whatever the seed (the user guide's example
/// and a few patients to try the search and the dossier-number access).
pub mod showcase {
    /// Dr Élise Martin-Dupré, médecin généraliste.
    pub const ELISE_NATIONAL_ID: &str = "899700123450";
    pub const ELISE_RPPS: &str = "99700123450";
    /// Dr Hervé Lefèvre, radiologue.
    pub const HERVE_NATIONAL_ID: &str = "899700234562";
    pub const HERVE_RPPS: &str = "99700234562";
    /// Dr Noël Bénard, cardiologue.
    pub const NOEL_NATIONAL_ID: &str = "899700345673";
    pub const NOEL_RPPS: &str = "99700345673";
    /// Dr Inès Haddad-Leclère, pédiatre.
    pub const INES_NATIONAL_ID: &str = "899700456785";
    pub const INES_RPPS: &str = "99700456785";
    /// François Kerguélen, masseur-kinésithérapeute (ADELI only).
    pub const FRANCOIS_NATIONAL_ID: &str = "0759970013";

    /// SCANAP Françoise, F, born 1961-08-13 (the user guide's patient).
    pub const SCANAP_PATIENT_ID: &str = "10000001";
    pub const SCANAP_BIRTH_DATE: &str = "1961-08-13";
    /// IRM DE L'ÉPAULE, 2017-12-01: Élise médecin traitant.
    pub const SCANAP_DOSSIER_EPAULE: &str = "20170000001";
    /// FEMUR, 2018-08-27: Élise NOT on the care team (dossier-number access).
    pub const SCANAP_DOSSIER_FEMUR: &str = "20180000002";
    /// SCANNER CEREBRAL, 2019-01-22: Élise médecin traitant, Hervé
    /// correspondant (his only dossier of this patient).
    pub const SCANAP_DOSSIER_SCANNER: &str = "20190000003";
    /// Acte majoration DOMTOM2, 2021-02-05 (no images, no report): Élise
    /// médecin traitant.
    pub const SCANAP_DOSSIER_DOMTOM: &str = "20210000004";
    /// RADIOGRAPHIE DU THORAX, `today` − 6 days, report `today` − 5 days:
    /// Élise médecin traitant. Its number is the year of that date followed
    /// by `0000005`; see [`super::scanap_recent_dossier`].
    pub const SCANAP_RECENT_SEQ: u32 = 5;
}

/// A demo professional and how they appear in the random care teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPro {
    /// `8` + RPPS, or `0` + ADELI.
    pub national_id: String,
    /// None for an ADELI-only professional: on care teams with a NULL rpps,
    /// so never found by a name search (which goes by RPPS).
    pub rpps: Option<String>,
    /// Role codes drawn for them on random dossiers.
    pub roles: Vec<String>,
    /// How many random patients they are on the care team of (at least one
    /// dossier each), on top of the showcase patients.
    pub patients: u32,
    /// Only patients born this year or later (a pediatrician).
    pub born_from_year: Option<i32>,
}

impl DemoPro {
    pub fn new(national_id: &str, rpps: Option<&str>, roles: &[&str], patients: u32) -> DemoPro {
        DemoPro {
            national_id: national_id.into(),
            rpps: rpps.map(Into::into),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            patients,
            born_from_year: None,
        }
    }

    /// The dev identity provider's five professionals.
    pub fn defaults() -> Vec<DemoPro> {
        use showcase::*;
        let mut ines = DemoPro::new(INES_NATIONAL_ID, Some(INES_RPPS), &["MT", "CO"], 45);
        ines.born_from_year = Some(2008);
        vec![
            DemoPro::new(
                ELISE_NATIONAL_ID,
                Some(ELISE_RPPS),
                &["MT", "MT", "MT", "AD"],
                180,
            ),
            DemoPro::new(HERVE_NATIONAL_ID, Some(HERVE_RPPS), &["CO", "MR", "PR"], 90),
            DemoPro::new(NOEL_NATIONAL_ID, Some(NOEL_RPPS), &["CO", "PR", "AD"], 70),
            ines,
            DemoPro::new(FRANCOIS_NATIONAL_ID, None, &["CO"], 25),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub seed: u64,
    /// Random patients, on top of the showcase ones.
    pub patients: u32,
    pub dossiers_per_patient: RangeInclusive<u32>,
    /// Care-team members per dossier drawn from the pool of other
    /// professionals (the demo professionals come on top).
    pub care_team_per_dossier: RangeInclusive<u32>,
    pub exams_per_dossier: RangeInclusive<u32>,
    /// Size of the pool of other professionals; 0 = one per 40 patients
    /// (at least 30).
    pub other_professionals: u32,
    /// "Today" for the data: dossiers are dated up to this day; some reports
    /// fall within the last 30 days.
    pub today: Date,
    pub professionals: Vec<DemoPro>,
    /// Print progress on stderr (counts only, never patient data).
    pub progress: bool,
}

impl DemoConfig {
    /// The embedded demo: 2,000 random patients and the five demo
    /// professionals.
    pub fn demo(today: Date) -> DemoConfig {
        DemoConfig {
            seed: 1961,
            patients: 2_000,
            dossiers_per_patient: 1..=5,
            care_team_per_dossier: 2..=4,
            exams_per_dossier: 1..=2,
            other_professionals: 0,
            today,
            professionals: DemoPro::defaults(),
            progress: false,
        }
    }

    /// The benchmark scale: `patients` random patients, 3 dossiers and
    /// about 3.5 care-team rows per dossier on average (1M patients give
    /// 3M dossiers and 10.5M care-team rows), one exam per dossier.
    pub fn benchmark(today: Date, patients: u32) -> DemoConfig {
        DemoConfig {
            seed: 1961,
            patients,
            dossiers_per_patient: 2..=4,
            care_team_per_dossier: 2..=5,
            exams_per_dossier: 1..=1,
            other_professionals: 0,
            today,
            professionals: DemoPro::defaults(),
            progress: true,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub patients: u64,
    pub tokens: u64,
    /// Rows of `rec_search_tokens` (professional, token, patient).
    pub search_tokens: u64,
    pub dossiers: u64,
    pub care_team: u64,
    pub exams: u64,
    pub reports: u64,
    /// Wall time, rows and indexes (not compared by `==` in practice).
    pub load_ms: u64,
    pub index_ms: u64,
}

/// The number of the showcase patient's recent dossier for this `today`.
pub fn scanap_recent_dossier(today: Date) -> String {
    let d = today - time::Duration::days(6);
    dossier_number(d.year(), showcase::SCANAP_RECENT_SEQ as u64)
}

/// Creates the `rec_*` tables in an empty database and fills them.
/// SQLite URLs without `mode=` are opened with `mode=rwc` (created if
/// missing). Fails if `rec_patients` already holds rows.
pub async fn generate(url: &str, cfg: &DemoConfig) -> Result<Summary> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url);
    let url = match backend {
        Backend::Sqlite if !url.contains("mode=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        }
        _ => url.to_string(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&url)
        .await
        .map_err(RecordsError::Connect)?;
    let (tables, indexes) = split_schema(backend.schema());
    if backend == Backend::Sqlite {
        for p in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = OFF",
            "PRAGMA cache_size = -262144",
            "PRAGMA temp_store = MEMORY",
        ] {
            sqlx::query(p).execute(&pool).await?;
        }
    }
    for stmt in statements(tables) {
        sqlx::query(&stmt).execute(&pool).await?;
    }
    let existing: i64 = sqlx::query("SELECT COUNT(*) FROM rec_patients")
        .fetch_one(&pool)
        .await?
        .try_get(0)?;
    if existing > 0 {
        return Err(RecordsError::Demo(
            "rec_patients already holds rows: generate into an empty database".into(),
        ));
    }

    let started = Instant::now();
    let mut loader = Loader::new(&pool, &url, backend, cfg.progress).await?;
    Generator::new(cfg).run(&mut loader).await?;
    let mut summary = loader.finish().await?;
    summary.load_ms = started.elapsed().as_millis() as u64;

    let started = Instant::now();
    if cfg.progress {
        eprintln!("creating indexes…");
    }
    for stmt in statements(indexes) {
        sqlx::query(&stmt).execute(&pool).await?;
    }
    // PostgreSQL: VACUUM too, so that the index-only scans of the name
    // search do not visit the heap (as on a database autovacuum has seen)
    let analyze = match backend {
        Backend::Sqlite => "ANALYZE",
        Backend::Postgres => "VACUUM ANALYZE",
    };
    sqlx::query(analyze).execute(&pool).await?;
    if backend == Backend::Sqlite {
        // back to a rollback journal: a read-only open needs no -shm file
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(&pool)
            .await?;
    }
    summary.index_ms = started.elapsed().as_millis() as u64;
    if cfg.progress {
        eprintln!(
            "done: {} patients, {} dossiers, {} care-team rows, {} exams, {} reports, \
             {} search-index rows (load {:.1} s, indexes {:.1} s)",
            summary.patients,
            summary.dossiers,
            summary.care_team,
            summary.exams,
            summary.reports,
            summary.search_tokens,
            summary.load_ms as f64 / 1000.0,
            summary.index_ms as f64 / 1000.0
        );
    }
    pool.close().await;
    Ok(summary)
}

/// One study of the records, with what a DICOM generator needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudyRow {
    pub study_instance_uid: String,
    pub accession_number: Option<String>,
    pub modality: String,
    pub act_label: String,
    /// `YYYY-MM-DD`
    pub exam_date: String,
    pub exam_id: String,
    pub dossier_number: String,
    pub patient_id: String,
    pub family_name: String,
    pub given_name: String,
    /// `F`, `M` or `U`
    pub sex: String,
    /// `YYYY-MM-DD`
    pub birth_date: String,
}

/// The studies (exams with a StudyInstanceUID) of every patient who has a
/// dossier with one of `national_ids` on its care team — all their
/// dossiers, including those where the professional is not listed — or of
/// every patient when `national_ids` is empty. Ordered by patient, exam date
/// and exam id; at most `limit` rows.
pub async fn studies(
    url: &str,
    national_ids: &[String],
    limit: Option<u32>,
) -> Result<Vec<StudyRow>> {
    let records = espace_ps_records::Records::connect_with(url, 1).await?;
    let mut sql = String::from(
        "SELECT e.study_instance_uid, e.accession_number, e.modality, e.act_label, e.exam_date, \
         e.exam_id, e.dossier_number, p.patient_id, p.family_name, p.given_name, p.sex, \
         p.birth_date \
         FROM rec_exams e JOIN rec_dossiers d ON d.dossier_number = e.dossier_number \
         JOIN rec_patients p ON p.patient_id = d.patient_id \
         WHERE e.study_instance_uid IS NOT NULL AND e.modality IS NOT NULL",
    );
    if !national_ids.is_empty() {
        let params: Vec<String> = (1..=national_ids.len()).map(|i| format!("${i}")).collect();
        sql.push_str(&format!(
            " AND d.patient_id IN (SELECT d2.patient_id FROM rec_dossiers d2 \
             JOIN rec_care_team c ON c.dossier_number = d2.dossier_number \
             WHERE c.national_id IN ({}))",
            params.join(", ")
        ));
    }
    sql.push_str(" ORDER BY p.patient_id, e.exam_date, e.exam_id");
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    let mut q = sqlx::query(&sql);
    for id in national_ids {
        q = q.bind(id.as_str());
    }
    let rows = q.fetch_all(records.pool()).await?;
    let out = rows
        .iter()
        .map(|r| -> Result<StudyRow> {
            Ok(StudyRow {
                study_instance_uid: r.try_get(0)?,
                accession_number: r.try_get(1)?,
                modality: r.try_get(2)?,
                act_label: r.try_get(3)?,
                exam_date: r.try_get(4)?,
                exam_id: r.try_get(5)?,
                dossier_number: r.try_get(6)?,
                patient_id: r.try_get(7)?,
                family_name: r.try_get(8)?,
                given_name: r.try_get(9)?,
                sex: r.try_get(10)?,
                birth_date: r.try_get(11)?,
            })
        })
        .collect();
    records.pool().close().await;
    out
}

/// The national ids of [`DemoPro::defaults`].
pub fn default_national_ids() -> Vec<String> {
    DemoPro::defaults()
        .into_iter()
        .map(|p| p.national_id)
        .collect()
}

/// Luhn check digit of a string of digits (the RPPS key), from the
/// identity model.
fn luhn_digit(payload: &str) -> u8 {
    luhn_check_digit(payload).expect("a payload of digits")
}

// ------------------------------------------------------------------ schema

fn split_schema(schema: &str) -> (&str, &str) {
    match schema.split_once("-- @indexes") {
        // the rest of the marker line is a comment
        Some((tables, rest)) => (tables, rest.split_once('\n').map_or("", |r| r.1)),
        None => (schema, ""),
    }
}

/// The statements of a schema part: `--` comment lines removed, split on
/// `;` (no `;` inside the statements).
fn statements(sql: &str) -> Vec<String> {
    let body: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    body.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

// ------------------------------------------------------------------ loader

/// SQLite: bound values per multi-row INSERT.
const MAX_BINDS: usize = 8_000;
/// SQLite: rows per transaction.
const ROWS_PER_TRANSACTION: u64 = 100_000;
/// PostgreSQL: bytes of COPY text buffered per table before one `COPY … FROM
/// STDIN`.
const COPY_BYTES: usize = 4 << 20;

struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    /// SQLite: rows waiting for the next INSERT.
    rows: Vec<Vec<Option<String>>>,
    /// PostgreSQL: rows waiting for the next COPY, in COPY text format.
    copy: String,
    total: u64,
}

impl Table {
    fn new(name: &'static str, columns: &'static [&'static str]) -> Table {
        Table {
            name,
            columns,
            rows: Vec::new(),
            copy: String::new(),
            total: 0,
        }
    }
    fn batch_rows(&self) -> usize {
        MAX_BINDS / self.columns.len()
    }
}

/// Appends one row to a COPY text-format buffer (tab-separated, `\N` for
/// NULL, backslash escapes for backslash, tab, newline and carriage return).
fn copy_row(buf: &mut String, row: &[Option<String>]) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            buf.push('\t');
        }
        match v {
            None => buf.push_str("\\N"),
            Some(s) => {
                for ch in s.chars() {
                    match ch {
                        '\\' => buf.push_str("\\\\"),
                        '\t' => buf.push_str("\\t"),
                        '\n' => buf.push_str("\\n"),
                        '\r' => buf.push_str("\\r"),
                        c => buf.push(c),
                    }
                }
            }
        }
    }
    buf.push('\n');
}

/// Where the rows go: multi-row INSERTs in transactions (SQLite), or COPY
/// on a dedicated connection (PostgreSQL).
enum Sink<'p> {
    Sqlite {
        pool: &'p AnyPool,
        tx: Option<Transaction<'p, Any>>,
        since_commit: u64,
    },
    Postgres(PgConnection),
}

struct Loader<'p> {
    sink: Sink<'p>,
    tables: Vec<Table>,
    progress: bool,
    started: Instant,
    last_progress: Instant,
}

const T_PATIENTS: usize = 0;
const T_TOKENS: usize = 1;
const T_DOSSIERS: usize = 2;
const T_CARE_TEAM: usize = 3;
const T_EXAMS: usize = 4;
const T_REPORTS: usize = 5;
const T_SEARCH_TOKENS: usize = 6;

impl<'p> Loader<'p> {
    async fn new(
        pool: &'p AnyPool,
        url: &str,
        backend: Backend,
        progress: bool,
    ) -> Result<Loader<'p>> {
        let sink = match backend {
            Backend::Sqlite => Sink::Sqlite {
                pool,
                tx: Some(pool.begin().await?),
                since_commit: 0,
            },
            Backend::Postgres => Sink::Postgres(
                PgConnection::connect(url)
                    .await
                    .map_err(RecordsError::Connect)?,
            ),
        };
        Ok(Loader {
            sink,
            tables: vec![
                Table::new(
                    "rec_patients",
                    &[
                        "patient_id",
                        "family_name",
                        "given_name",
                        "sex",
                        "birth_date",
                    ],
                ),
                Table::new("rec_patient_tokens", &["token", "patient_id"]),
                Table::new(
                    "rec_dossiers",
                    &["dossier_number", "patient_id", "dossier_date"],
                ),
                Table::new(
                    "rec_care_team",
                    &["dossier_number", "national_id", "rpps", "role_code"],
                ),
                Table::new(
                    "rec_exams",
                    &[
                        "exam_id",
                        "dossier_number",
                        "act_label",
                        "exam_date",
                        "study_instance_uid",
                        "accession_number",
                        "modality",
                    ],
                ),
                Table::new(
                    "rec_reports",
                    &[
                        "report_id",
                        "dossier_number",
                        "exam_id",
                        "title",
                        "report_date",
                        "content",
                        "content_location",
                    ],
                ),
                Table::new("rec_search_tokens", &["rpps", "token", "patient_id"]),
            ],
            progress,
            started: Instant::now(),
            last_progress: Instant::now(),
        })
    }

    async fn push(&mut self, table: usize, row: Vec<Option<String>>) -> Result<()> {
        let t = &mut self.tables[table];
        debug_assert_eq!(row.len(), t.columns.len());
        t.total += 1;
        let full = match self.sink {
            Sink::Sqlite { .. } => {
                t.rows.push(row);
                t.rows.len() >= t.batch_rows()
            }
            Sink::Postgres(_) => {
                copy_row(&mut t.copy, &row);
                t.copy.len() >= COPY_BYTES
            }
        };
        if full {
            self.flush(table).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, table: usize) -> Result<()> {
        let t = &mut self.tables[table];
        match &mut self.sink {
            Sink::Postgres(conn) => {
                if t.copy.is_empty() {
                    return Ok(());
                }
                let data = std::mem::take(&mut t.copy);
                let mut copy = conn
                    .copy_in_raw(&format!(
                        "COPY {} ({}) FROM STDIN",
                        t.name,
                        t.columns.join(", ")
                    ))
                    .await?;
                copy.send(data.as_bytes()).await?;
                copy.finish().await?;
                Ok(())
            }
            Sink::Sqlite {
                pool,
                tx,
                since_commit,
            } => {
                if t.rows.is_empty() {
                    return Ok(());
                }
                let rows = std::mem::take(&mut t.rows);
                let ncols = t.columns.len();
                let mut sql = format!("INSERT INTO {} ({}) VALUES ", t.name, t.columns.join(", "));
                for i in 0..rows.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for c in 0..ncols {
                        if c > 0 {
                            sql.push_str(", ");
                        }
                        // anonymous `?` (sqlx looks every numbered parameter
                        // up by name, a linear scan: quadratic on big batches)
                        sql.push('?');
                    }
                    sql.push(')');
                }
                let nrows = rows.len() as u64;
                let mut q = sqlx::query(&sql);
                for row in rows {
                    for v in row {
                        q = q.bind(v);
                    }
                }
                let open = tx.as_mut().expect("open transaction");
                q.execute(&mut **open).await?;
                *since_commit += nrows;
                if *since_commit >= ROWS_PER_TRANSACTION {
                    tx.take().expect("open transaction").commit().await?;
                    *tx = Some(pool.begin().await?);
                    *since_commit = 0;
                }
                Ok(())
            }
        }
    }

    fn patient_done(&mut self) {
        if self.progress && self.last_progress.elapsed() >= Duration::from_secs(5) {
            self.last_progress = Instant::now();
            let t = &self.tables;
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "  {:>9} patients, {:>9} dossiers, {:>10} care-team rows ({:.0} s, {:.0} patients/s)",
                t[T_PATIENTS].total,
                t[T_DOSSIERS].total,
                t[T_CARE_TEAM].total,
                secs,
                t[T_PATIENTS].total as f64 / secs
            );
        }
    }

    async fn finish(mut self) -> Result<Summary> {
        for i in 0..self.tables.len() {
            self.flush(i).await?;
        }
        match self.sink {
            Sink::Sqlite { mut tx, .. } => tx.take().expect("open transaction").commit().await?,
            Sink::Postgres(conn) => conn.close().await?,
        }
        let t = &self.tables;
        Ok(Summary {
            patients: t[T_PATIENTS].total,
            tokens: t[T_TOKENS].total,
            search_tokens: t[T_SEARCH_TOKENS].total,
            dossiers: t[T_DOSSIERS].total,
            care_team: t[T_CARE_TEAM].total,
            exams: t[T_EXAMS].total,
            reports: t[T_REPORTS].total,
            load_ms: 0,
            index_ms: 0,
        })
    }
}

// ------------------------------------------------------------------ generator

/// A care-team member: national id, rpps.
#[derive(Clone)]
struct Member {
    national_id: String,
    rpps: Option<String>,
}

struct Generator<'c> {
    cfg: &'c DemoConfig,
    rng: ChaCha8Rng,
    pool: Vec<Member>,
    /// random patient index -> demo professionals on their care team
    assigned: HashMap<u32, Vec<usize>>,
    dossier_seq: u64,
    exam_seq: u64,
    report_seq: u64,
    min_dossier_day: i32,
    /// The patient being written: id, name tokens, and the RPPS numbers on
    /// the care teams of their dossiers so far (for `rec_search_tokens`).
    current: Option<(String, Vec<String>, BTreeSet<String>)>,
}

/// One exam to write.
struct ExamSpec {
    label: &'static str,
    modality: Option<&'static str>,
    kind: Option<Kind>,
    date: Date,
    /// report: None = no report; Some(days after the exam)
    report_after_days: Option<i64>,
}

fn date_str(d: Date) -> String {
    d.format(time::macros::format_description!("[year]-[month]-[day]"))
        .expect("a calendar date formats as [year]-[month]-[day]")
}

fn dossier_number(year: i32, seq: u64) -> String {
    format!("{year:04}{seq:07}")
}

fn day(y: i32, m: u8, d: u8) -> Date {
    Date::from_calendar_date(y, time::Month::try_from(m).expect("month"), d).expect("valid date")
}

/// splitmix64 step: a good 64-bit mix, stable forever (unlike `StdRng`).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `2.25.<128-bit decimal>` derived from the seed and the exam number: a
/// valid DICOM UID (at most 44 characters, no leading zero).
pub fn study_uid(seed: u64, exam_seq: u64) -> String {
    let hi = mix64(seed ^ mix64(exam_seq));
    let lo = mix64(hi ^ exam_seq.rotate_left(17) ^ 0x5EED);
    let v = (u128::from(hi) << 64 | u128::from(lo)).max(1);
    format!("2.25.{v}")
}

fn pool_member(index: u64) -> Member {
    // "1" + 9 digits, unique per index (7919 is prime to 10^9), + Luhn key
    let payload = format!("1{:09}", (index * 7_919 + 1_234_567) % 1_000_000_000);
    if index % 29 == 7 {
        // ADELI-only: "0" + 8 digits + key, no RPPS
        let adeli = payload[2..].to_string();
        let adeli = format!("{adeli}{}", luhn_digit(&adeli));
        return Member {
            national_id: format!("0{adeli}"),
            rpps: None,
        };
    }
    let rpps = format!("{payload}{}", luhn_digit(&payload));
    Member {
        national_id: format!("8{rpps}"),
        rpps: Some(rpps),
    }
}

impl<'c> Generator<'c> {
    fn new(cfg: &'c DemoConfig) -> Generator<'c> {
        let n_pool = if cfg.other_professionals > 0 {
            cfg.other_professionals
        } else {
            (cfg.patients / 40).max(30)
        };
        let pool = (0..u64::from(n_pool)).map(pool_member).collect();
        let mut g = Generator {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            pool,
            assigned: HashMap::new(),
            dossier_seq: 100,
            exam_seq: 0,
            report_seq: 0,
            min_dossier_day: day(2005, 1, 1).to_julian_day(),
            current: None,
        };
        // each demo professional picks their random patients up front
        let mut pick_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xD3_40_F0_0D);
        for (pi, pro) in cfg.professionals.iter().enumerate() {
            let want = pro.patients.min(cfg.patients);
            let mut chosen = 0;
            let mut tries = 0;
            while chosen < want && tries < want * 20 {
                tries += 1;
                let i = pick_rng.gen_range(0..cfg.patients);
                let list = g.assigned.entry(i).or_default();
                if !list.contains(&pi) {
                    list.push(pi);
                    chosen += 1;
                }
            }
        }
        g
    }

    fn pick_pool(&mut self) -> Member {
        // skewed: a few professionals are on many care teams
        let u: f64 = self.rng.gen();
        let i = ((u * u) * self.pool.len() as f64) as usize;
        self.pool[i.min(self.pool.len() - 1)].clone()
    }

    async fn run(&mut self, loader: &mut Loader<'_>) -> Result<()> {
        self.showcase(loader).await?;
        for i in 0..self.cfg.patients {
            self.random_patient(loader, i).await?;
            loader.patient_done();
        }
        self.patient_complete(loader).await
    }

    /// Writes the `rec_search_tokens` rows of the patient written last: one
    /// per (RPPS on one of their care teams, name token).
    async fn patient_complete(&mut self, loader: &mut Loader<'_>) -> Result<()> {
        if let Some((id, tokens, rpps)) = self.current.take() {
            for r in &rpps {
                for t in &tokens {
                    loader
                        .push(
                            T_SEARCH_TOKENS,
                            vec![Some(r.clone()), Some(t.clone()), Some(id.clone())],
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn patient(
        &mut self,
        loader: &mut Loader<'_>,
        id: &str,
        family: &str,
        given: &str,
        sex: &str,
        birth: Date,
    ) -> Result<()> {
        loader
            .push(
                T_PATIENTS,
                vec![
                    Some(id.into()),
                    Some(family.into()),
                    Some(given.into()),
                    Some(sex.into()),
                    Some(date_str(birth)),
                ],
            )
            .await?;
        self.patient_complete(loader).await?;
        let tokens = patient_tokens(family, given);
        for t in &tokens {
            loader
                .push(T_TOKENS, vec![Some(t.clone()), Some(id.into())])
                .await?;
        }
        self.current = Some((id.to_string(), tokens, BTreeSet::new()));
        Ok(())
    }

    /// Writes one dossier with its care team, exams and reports.
    async fn dossier(
        &mut self,
        loader: &mut Loader<'_>,
        number: &str,
        patient_id: &str,
        date: Date,
        team: &[(Member, &str)],
        exams: &[ExamSpec],
    ) -> Result<()> {
        loader
            .push(
                T_DOSSIERS,
                vec![
                    Some(number.into()),
                    Some(patient_id.into()),
                    Some(date_str(date)),
                ],
            )
            .await?;
        if let Some((current, _, rpps)) = &mut self.current {
            debug_assert_eq!(current, patient_id, "dossiers follow their patient");
            rpps.extend(team.iter().filter_map(|(m, _)| m.rpps.clone()));
        }
        for (m, role) in team {
            loader
                .push(
                    T_CARE_TEAM,
                    vec![
                        Some(number.into()),
                        Some(m.national_id.clone()),
                        m.rpps.clone(),
                        Some(role.to_string()),
                    ],
                )
                .await?;
        }
        for ex in exams {
            self.exam_seq += 1;
            let exam_id = format!("EX{:08}", self.exam_seq);
            let (uid, accession) = match ex.modality {
                Some(_) => (
                    Some(study_uid(self.cfg.seed, self.exam_seq)),
                    Some(format!("A{}{:07}", ex.date.year() % 100, self.exam_seq)),
                ),
                None => (None, None),
            };
            loader
                .push(
                    T_EXAMS,
                    vec![
                        Some(exam_id.clone()),
                        Some(number.into()),
                        Some(ex.label.into()),
                        Some(date_str(ex.date)),
                        uid,
                        accession,
                        ex.modality.map(Into::into),
                    ],
                )
                .await?;
            if let (Some(after), Some(kind)) = (ex.report_after_days, ex.kind) {
                self.report_seq += 1;
                let rdate = (ex.date + time::Duration::days(after)).min(self.cfg.today);
                let title = *names::REPORT_TITLES.choose(&mut self.rng).expect("titles");
                let content = self.report_text(ex.label, kind);
                loader
                    .push(
                        T_REPORTS,
                        vec![
                            Some(format!("CR{:08}", self.report_seq)),
                            Some(number.into()),
                            Some(exam_id),
                            Some(title.into()),
                            Some(date_str(rdate)),
                            Some(content),
                            None,
                        ],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn report_text(&mut self, label: &str, kind: Kind) -> String {
        let indication = names::INDICATIONS
            .choose(&mut self.rng)
            .expect("indications");
        let (finding, conclusion) = names::findings(kind)
            .choose(&mut self.rng)
            .expect("findings");
        format!(
            "{label}\nIndication : {indication}.\nTechnique : {}\nRésultat : {finding}\nConclusion : {conclusion}",
            names::technique(kind)
        )
    }

    fn exam(&mut self, label: &'static str, date: Date) -> ExamSpec {
        let (label, modality, kind) = names::ACTS
            .iter()
            .find(|a| a.0 == label)
            .map(|a| (a.0, a.1, Some(a.2)))
            .unwrap_or((label, None, None));
        ExamSpec {
            label,
            modality,
            kind,
            date,
            report_after_days: kind.map(|_| 1),
        }
    }

    async fn showcase(&mut self, loader: &mut Loader<'_>) -> Result<()> {
        use showcase::*;
        let elise = Member {
            national_id: ELISE_NATIONAL_ID.into(),
            rpps: Some(ELISE_RPPS.into()),
        };
        let herve = Member {
            national_id: HERVE_NATIONAL_ID.into(),
            rpps: Some(HERVE_RPPS.into()),
        };
        let noel = Member {
            national_id: NOEL_NATIONAL_ID.into(),
            rpps: Some(NOEL_RPPS.into()),
        };
        let ines = Member {
            national_id: INES_NATIONAL_ID.into(),
            rpps: Some(INES_RPPS.into()),
        };
        let francois = Member {
            national_id: FRANCOIS_NATIONAL_ID.into(),
            rpps: None,
        };
        let today = self.cfg.today;

        // SCANAP Françoise, the user guide's patient
        let p = SCANAP_PATIENT_ID;
        self.patient(loader, p, "SCANAP", "Françoise", "F", day(1961, 8, 13))
            .await?;
        let d = day(2017, 12, 1);
        let mr = self.pick_pool();
        let ex = [self.exam("IRM DE L'ÉPAULE", d)];
        self.dossier(
            loader,
            SCANAP_DOSSIER_EPAULE,
            p,
            d,
            &[(mr, "MR"), (elise.clone(), "MT")],
            &ex,
        )
        .await?;
        let d = day(2018, 8, 27);
        let (mr, ad) = (self.pick_pool(), self.pick_pool());
        let ex = [self.exam("FEMUR", d)];
        self.dossier(
            loader,
            SCANAP_DOSSIER_FEMUR,
            p,
            d,
            &[(mr, "MR"), (ad, "AD")],
            &ex,
        )
        .await?;
        let d = day(2019, 1, 22);
        let mr = self.pick_pool();
        let ex = [self.exam("SCANNER CEREBRAL", d)];
        let team = [(mr, "MR"), (elise.clone(), "MT"), (herve.clone(), "CO")];
        self.dossier(loader, SCANAP_DOSSIER_SCANNER, p, d, &team, &ex)
            .await?;
        let d = day(2021, 2, 5);
        let mr = self.pick_pool();
        let ex = [self.exam(names::DOMTOM, d)];
        self.dossier(
            loader,
            SCANAP_DOSSIER_DOMTOM,
            p,
            d,
            &[(mr, "MR"), (elise.clone(), "MT")],
            &ex,
        )
        .await?;
        let d = today - time::Duration::days(6);
        let mr = self.pick_pool();
        let ex = [self.exam("RADIOGRAPHIE DU THORAX", d)];
        let number = scanap_recent_dossier(today);
        self.dossier(
            loader,
            &number,
            p,
            d,
            &[(mr, "MR"), (elise.clone(), "MT")],
            &ex,
        )
        .await?;

        // the others: (id, family, given, sex, birth, [(dossier seq, date, act, team)])
        type Fixed<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            Date,
            Vec<(u64, Date, &'static str, Vec<(Member, &'static str)>)>,
        );
        let recent = today - time::Duration::days(12);
        let fixed: Vec<Fixed> = vec![
            // same family name, never on Élise's care team
            (
                "10000002",
                "SCANAP",
                "Jean-Baptiste",
                "M",
                day(1958, 3, 2),
                vec![(
                    11,
                    day(2020, 6, 15),
                    "SCANNER THORACO-ABDOMINO-PELVIEN",
                    vec![(herve.clone(), "CO")],
                )],
            ),
            // ranking of "martin"
            (
                "10000003",
                "MARTIN",
                "Hélène",
                "F",
                day(1975, 4, 19),
                vec![(
                    12,
                    day(2022, 3, 10),
                    "MAMMOGRAPHIE BILATERALE",
                    vec![(elise.clone(), "MT")],
                )],
            ),
            (
                "10000004",
                "LE GALL",
                "Martin",
                "M",
                day(1949, 11, 30),
                vec![
                    (
                        13,
                        day(2016, 5, 4),
                        "RADIOGRAPHIE DU BASSIN",
                        vec![(elise.clone(), "MT"), (elise.clone(), "PR")],
                    ),
                    (
                        14,
                        recent,
                        "SCANNER DU RACHIS LOMBAIRE",
                        vec![(elise.clone(), "MT"), (noel.clone(), "CO")],
                    ),
                ],
            ),
            (
                "10000005",
                "MARTINEZ",
                "Paul",
                "M",
                day(1988, 6, 7),
                vec![(
                    15,
                    day(2023, 9, 18),
                    "IRM DU GENOU",
                    vec![(elise.clone(), "CO")],
                )],
            ),
            (
                "10000006",
                "DUPONT",
                "Martine",
                "F",
                day(1969, 1, 25),
                vec![(
                    16,
                    day(2024, 1, 8),
                    "ECHOGRAPHIE ABDOMINALE",
                    vec![(elise.clone(), "AD")],
                )],
            ),
            // pediatrics
            (
                "10000007",
                "N'DIAYE",
                "Aïssatou",
                "F",
                day(2014, 9, 3),
                vec![
                    (
                        17,
                        day(2019, 2, 11),
                        "RADIOGRAPHIE DU POIGNET",
                        vec![(ines.clone(), "MT")],
                    ),
                    (
                        18,
                        recent,
                        "ECHOGRAPHIE ABDOMINALE",
                        vec![(ines.clone(), "MT")],
                    ),
                ],
            ),
            // cardiology
            (
                "10000008",
                "ROUSSEAU",
                "Jean-Pierre",
                "M",
                day(1952, 12, 24),
                vec![
                    (
                        19,
                        day(2021, 10, 5),
                        "ECHOGRAPHIE CARDIAQUE TRANSTHORACIQUE",
                        vec![(noel.clone(), "CO"), (elise.clone(), "MT")],
                    ),
                    (
                        20,
                        recent,
                        "SCANNER THORACO-ABDOMINO-PELVIEN",
                        vec![(noel.clone(), "PR"), (herve.clone(), "MR")],
                    ),
                ],
            ),
            // the physiotherapist (no RPPS: dossier-number access only)
            (
                "10000009",
                "LE BRIS",
                "Maël",
                "M",
                day(1990, 7, 14),
                vec![(
                    21,
                    day(2024, 11, 20),
                    "IRM DU GENOU",
                    vec![(francois.clone(), "CO")],
                )],
            ),
        ];
        for (id, family, given, sex, birth, dossiers) in fixed {
            self.patient(loader, id, family, given, sex, birth).await?;
            for (seq, date, act, mut team) in dossiers {
                team.insert(0, (self.pick_pool(), "MR"));
                let ex = [self.exam(act, date)];
                let number = dossier_number(date.year(), seq);
                self.dossier(loader, &number, id, date, &team, &ex).await?;
            }
        }
        Ok(())
    }

    async fn random_patient(&mut self, loader: &mut Loader<'_>, index: u32) -> Result<()> {
        let cfg = self.cfg;
        let today = cfg.today;
        let pros: Vec<usize> = self.assigned.get(&index).cloned().unwrap_or_default();
        let born_from = pros
            .iter()
            .filter_map(|&p| cfg.professionals[p].born_from_year)
            .max();

        let r: f64 = self.rng.gen();
        let sex = if r < 0.003 {
            "U"
        } else if r < 0.5015 {
            "F"
        } else {
            "M"
        };
        let given_list = match sex {
            "F" => names::FEMALE,
            "M" => names::MALE,
            _ => {
                if self.rng.gen_bool(0.5) {
                    names::FEMALE
                } else {
                    names::MALE
                }
            }
        };
        let given = *given_list.choose(&mut self.rng).expect("given names");
        let mut family = names::FAMILY
            .choose(&mut self.rng)
            .expect("family names")
            .to_string();
        if self.rng.gen_bool(0.07) {
            let second = names::FAMILY.choose(&mut self.rng).expect("family names");
            if *second != family && !second.contains(' ') && !family.contains(' ') {
                family = format!("{family}-{second}");
            }
        }
        let lo = day(born_from.unwrap_or(1930), 1, 1).to_julian_day();
        let hi = day(2020, 12, 31).to_julian_day();
        let birth = Date::from_julian_day(self.rng.gen_range(lo..=hi)).expect("date");
        let patient_id = format!("{}", 10_000_100 + u64::from(index));
        self.patient(loader, &patient_id, &family, given, sex, birth)
            .await?;

        // the patient's médecin traitant, from the pool
        let gp = self.pick_pool();
        let n = self.rng.gen_range(cfg.dossiers_per_patient.clone());
        let first = birth.to_julian_day().max(self.min_dossier_day);
        let last = today.to_julian_day();
        let mut dates: Vec<Date> = (0..n)
            .map(|_| Date::from_julian_day(self.rng.gen_range(first..=last)).expect("date"))
            .collect();
        dates.sort();
        let recent_p = if pros.is_empty() { 0.03 } else { 0.25 };
        if let Some(d) = dates.last_mut() {
            if self.rng.gen_bool(recent_p) {
                *d = today - time::Duration::days(self.rng.gen_range(0..30));
            }
        }
        // each assigned demo professional is on one forced dossier, and on
        // the others with some probability
        let forced: Vec<u32> = pros
            .iter()
            .map(|_| self.rng.gen_range(0..n.max(1)))
            .collect();
        for (di, date) in dates.into_iter().enumerate() {
            let mut team: Vec<(Member, &str)> = Vec::new();
            let size = self.rng.gen_range(cfg.care_team_per_dossier.clone());
            let mut has_mt = false;
            for (k, &p) in pros.iter().enumerate() {
                if forced[k] == di as u32 || self.rng.gen_bool(0.5) {
                    let pro = &cfg.professionals[p];
                    let role = pro
                        .roles
                        .choose(&mut self.rng)
                        .map(String::as_str)
                        .unwrap_or("CO");
                    has_mt |= role == "MT";
                    let role = ROLES.iter().find(|r| **r == role).copied().unwrap_or("CO");
                    team.push((
                        Member {
                            national_id: pro.national_id.clone(),
                            rpps: pro.rpps.clone(),
                        },
                        role,
                    ));
                }
            }
            for k in 0..size {
                let member = match k {
                    0 => (self.pick_pool(), "MR"),
                    1 if !has_mt && self.rng.gen_bool(0.85) => (gp.clone(), "MT"),
                    _ => {
                        let role = *["CO", "PR", "AD", "CO"]
                            .choose(&mut self.rng)
                            .expect("roles");
                        (self.pick_pool(), role)
                    }
                };
                team.push(member);
            }
            let n_exams = self.rng.gen_range(cfg.exams_per_dossier.clone());
            let mut exams = Vec::with_capacity(n_exams as usize + 1);
            for _ in 0..n_exams {
                let (label, modality, kind) = loop {
                    let a = names::ACTS.choose(&mut self.rng).expect("acts");
                    if a.2 == Kind::Mg && sex != "F" {
                        continue;
                    }
                    break *a;
                };
                let report_after_days = self.rng.gen_bool(0.92).then(|| self.rng.gen_range(0..=2));
                exams.push(ExamSpec {
                    label,
                    modality,
                    kind: Some(kind),
                    date,
                    report_after_days,
                });
            }
            if self.rng.gen_bool(0.02) {
                exams.push(self.exam(names::DOMTOM, date));
            }
            self.dossier_seq += 1;
            let number = dossier_number(date.year(), self.dossier_seq);
            self.dossier(loader, &number, &patient_id, date, &team, &exams)
                .await?;
        }
        Ok(())
    }
}

const ROLES: [&str; 5] = ["MR", "MT", "CO", "PR", "AD"];

#[cfg(test)]
mod tests {
    use super::*;
    use espace_ps_identity::luhn_valid;

    #[test]
    fn luhn() {
        for rpps in ["99700123450", "99700234562", "99700345673", "99700456785"] {
            assert!(luhn_valid(rpps), "{rpps}");
        }
        assert!(!luhn_valid("99700123451"));
        for i in 0..1000 {
            let m = pool_member(i);
            if let Some(r) = &m.rpps {
                assert_eq!(r.len(), 11);
                assert!(luhn_valid(r));
                assert_eq!(m.national_id, format!("8{r}"));
            } else {
                assert_eq!(m.national_id.len(), 10);
                assert!(luhn_valid(&m.national_id[1..]));
            }
        }
    }

    #[test]
    fn study_uids_are_valid_dicom_uids() {
        for i in 0..10_000 {
            let uid = study_uid(42, i);
            assert!(uid.len() <= 64);
            assert!(uid.starts_with("2.25."));
            let last = &uid[5..];
            assert!(last.bytes().all(|b| b.is_ascii_digit()));
            assert!(!last.starts_with('0'));
        }
        assert_eq!(study_uid(1, 2), study_uid(1, 2));
        assert_ne!(study_uid(1, 2), study_uid(2, 2));
        assert_ne!(study_uid(1, 2), study_uid(1, 3));
    }

    #[test]
    fn copy_text_format() {
        let mut buf = String::new();
        copy_row(
            &mut buf,
            &[
                Some("CR\nligne 2\tx\\y\r".into()),
                None,
                Some("Françoise".into()),
            ],
        );
        assert_eq!(buf, "CR\\nligne 2\\tx\\\\y\\r\t\\N\tFrançoise\n");
    }

    #[test]
    fn schema_split() {
        let (t, i) = split_schema(espace_ps_records::SQLITE_SCHEMA);
        assert_eq!(statements(t).len(), 7);
        assert_eq!(statements(i).len(), 8);
        let (t, i) = split_schema(espace_ps_records::POSTGRES_SCHEMA);
        assert_eq!(statements(t).len(), 7);
        assert_eq!(statements(i).len(), 8);
    }
}
