//! espace-ps records adapter.
//!
//! Patients, dossiers (a patient's venues), care teams, exams, reports and
//! study UIDs belong to the hospital (Hopital Manager). espace-ps reads them,
//! and only reads them, through [`Records`], over the documented `rec_*`
//! schema (`schema/*.sql`, `docs/records.md`) that a hospital maps onto its
//! own database with views. The same SQL runs on SQLite (embedded demo) and
//! PostgreSQL (production) through sqlx's `Any` driver.
//!
//! Nothing here logs: the values handled are patient data.
//!
//! The demo records are written by another crate, `espace-ps-demo-data`.

mod recent;
mod tokens;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use recent::{RecentKey, RECENT_KEYS_SQL};
pub use tokens::{patient_tokens, search_tokens};

/// The SQLite schema (tables, then indexes after the `-- @indexes` line).
pub const SQLITE_SCHEMA: &str = include_str!("../schema/sqlite.sql");
/// The PostgreSQL schema (tables, then indexes after the `-- @indexes` line).
pub const POSTGRES_SCHEMA: &str = include_str!("../schema/postgres.sql");

/// Care-team role codes as the records carry them, with their French labels.
pub const ROLE_CODES: [(&str, &str); 5] = [
    ("MR", "Médecin responsable"),
    ("MT", "Médecin traitant"),
    ("CO", "Correspondant"),
    ("PR", "Prescripteur"),
    ("AD", "Adressant"),
];

/// The French label of a role code, if it is one of [`ROLE_CODES`].
pub fn role_label(code: &str) -> Option<&'static str> {
    ROLE_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, label)| *label)
}

/// A name query shorter than this (in characters, after trimming) finds
/// nothing.
pub const MIN_QUERY_CHARS: usize = 2;
/// Words of a query beyond this many are ignored.
pub const MAX_QUERY_WORDS: usize = 6;
/// At most this many candidate patients (or `limit`, if more) are ranked
/// for one name search: for one word, the first ones of the search index
/// (`rec_search_tokens`) in index order, those whose token is the word
/// itself first, then by token; for several words, those who have every
/// word as a whole token first, then the first ones by patient id of those
/// in the ranges of all words. Below this many matching
/// patients the result is exact; above it, the ranking applies to these
/// candidates only. The cost of a search grows with this number (about one
/// patient lookup each), not with the professional's care-team size.
pub const SEARCH_CANDIDATE_CAP: u32 = 200;
/// Candidates whose live care-team rows are read in one query.
const CARE_TEAM_BATCH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("cannot connect to the records database")]
    Connect(#[source] sqlx::Error),
    #[error("records query failed")]
    Query(#[from] sqlx::Error),
    #[error("demo data: {0}")]
    Demo(String),
    #[error("records schema: {0}")]
    Schema(String),
}

pub type Result<T, E = RecordsError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL points to (`postgres://`, `postgresql://`,
    /// anything else is SQLite).
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// The schema text of this backend.
    pub fn schema(self) -> &'static str {
        match self {
            Backend::Sqlite => SQLITE_SCHEMA,
            Backend::Postgres => POSTGRES_SCHEMA,
        }
    }
}

/// A patient. Dates are `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Patient {
    pub patient_id: String,
    /// As the records carry it (the demo data: upper case, with accents).
    pub family_name: String,
    pub given_name: String,
    /// `F`, `M` or `U`.
    pub sex: String,
    pub birth_date: String,
}

/// A dossier number and the role codes one professional holds on it.
pub type DossierRoles = (String, Vec<String>);

/// One result of a name search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatientHit {
    pub patient: Patient,
    /// The dossiers of this patient whose care team lists the searching
    /// professional, with their roles there (newest dossier first; roles
    /// sorted). Never empty. The policy engine decides what they allow.
    pub dossiers: Vec<DossierRoles>,
}

/// A dossier: one venue of a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dossier {
    pub dossier_number: String,
    pub patient_id: String,
    pub dossier_date: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exam {
    pub exam_id: String,
    pub dossier_number: String,
    /// e.g. "SCANNER CEREBRAL".
    pub act_label: String,
    pub exam_date: String,
    /// None for an act without images (e.g. "Acte majoration DOMTOM2").
    pub study_instance_uid: Option<String>,
    pub accession_number: Option<String>,
    /// DICOM modality: CT, MR, CR, DX, US, MG…
    pub modality: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub report_id: String,
    pub dossier_number: String,
    /// The exam this report is about, when the records say so.
    pub exam_id: Option<String>,
    /// e.g. "CR Médical".
    pub title: String,
    pub report_date: String,
    /// The text of the report, when stored inline.
    pub content: Option<String>,
    /// Where the document lives (URL or path); not read by espace-ps yet.
    pub content_location: Option<String>,
}

/// What a StudyInstanceUID belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudyRef {
    pub study_instance_uid: String,
    pub exam_id: String,
    pub dossier_number: String,
    pub patient_id: String,
}

/// One line of the "derniers résultats" list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentResult {
    pub report: Report,
    pub exam: Option<Exam>,
    pub dossier: Dossier,
    pub patient: Patient,
    /// The professional's role codes on the dossier (sorted, never empty).
    pub roles: Vec<String>,
}

/// The read-only records adapter. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Records {
    pool: AnyPool,
    backend: Backend,
}

const PATIENT_COLS: &str = "p.patient_id, p.family_name, p.given_name, p.sex, p.birth_date";
const EXAM_COLS: &str = "e.exam_id, e.dossier_number, e.act_label, e.exam_date, \
     e.study_instance_uid, e.accession_number, e.modality";
const REPORT_COLS: &str = "r.report_id, r.dossier_number, r.exam_id, r.title, r.report_date, \
     r.content, r.content_location";

impl Records {
    /// Connects with up to 8 connections. SQLite: `sqlite://path?mode=ro`
    /// opens the file read-only; PostgreSQL: `postgres://user@host/db`.
    pub async fn connect(url: &str) -> Result<Records> {
        Records::connect_with(url, 8).await
    }

    /// Connects with up to `max_connections` connections. Every connection
    /// is made read-only (`PRAGMA query_only` on SQLite,
    /// `default_transaction_read_only` on PostgreSQL).
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Records> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    let sql = match backend {
                        Backend::Sqlite => "PRAGMA query_only = ON",
                        Backend::Postgres => "SET default_transaction_read_only = on",
                    };
                    sqlx::query(sql).execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(RecordsError::Connect)?;
        Ok(Records { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks that the database answers and the schema is there.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query(
            "SELECT (SELECT COUNT(*) FROM rec_patients WHERE patient_id = ''), \
             (SELECT COUNT(*) FROM rec_search_tokens WHERE rpps = '')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(())
    }

    /// Checks, at start, what the name search relies on: the search index
    /// answers, and on PostgreSQL its `token` column compares bytewise
    /// (`COLLATE "C"`, as `postgres-search-tokens-view.sql` builds it). The
    /// prefix ranges need that order: under a linguistic collation words
    /// ending in Z or 9 would silently find nobody.
    pub async fn check_search_index(&self) -> Result<()> {
        self.ping().await?;
        if self.backend != Backend::Postgres {
            return Ok(()); // SQLite: BINARY unless the column says otherwise
        }
        let row = sqlx::query(
            "SELECT COALESCE(pg_collation_for((SELECT token FROM rec_search_tokens LIMIT 0)), ''), \
             (SELECT datcollate::text FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&self.pool)
        .await?;
        let column: String = row.try_get(0)?;
        let database: String = row.try_get(1)?;
        let bytewise = |c: &str| {
            let c = c.trim_matches('"');
            matches!(c, "C" | "POSIX" | "ucs_basic")
                || c.eq_ignore_ascii_case("C.UTF-8")
                || c.eq_ignore_ascii_case("C.utf8")
        };
        let column = column.trim_matches('"');
        if bytewise(column) || (column == "default" && bytewise(&database)) {
            Ok(())
        } else {
            Err(RecordsError::Schema(format!(
                "rec_search_tokens.token has the collation {column:?} (database: {database:?}); \
                 the name search needs a bytewise one: build it with `token COLLATE \"C\"` \
                 (docs/records.md)"
            )))
        }
    }

    /// Name search among the patients for whom `rpps` is on the care team of
    /// at least one dossier (any role).
    ///
    /// The query must have at least [`MIN_QUERY_CHARS`] characters once
    /// trimmed, else the result is empty. It is split into words like names
    /// are ([`search_tokens`]: case and accents do not matter); each word
    /// must be the start of a word of the family or given name, in any
    /// order. Ranking: hits whose words are all whole name words first, then
    /// those whose first word starts a family-name word, then by family
    /// name, given name, birth date; at most `limit` hits.
    ///
    /// The search index `rec_search_tokens` only proposes candidates (at
    /// most [`SEARCH_CANDIDATE_CAP`] or `limit`); each hit's dossiers and
    /// roles are read live from `rec_care_team`, and a candidate without a
    /// live care-team row for `rpps`, or whose current name no longer
    /// matches, is dropped. A stale index can therefore hide a patient,
    /// never add one.
    pub async fn search_patients(
        &self,
        rpps: &str,
        query: &str,
        limit: u32,
    ) -> Result<Vec<PatientHit>> {
        let words = query_words(query);
        if words.is_empty() || limit == 0 || rpps.is_empty() {
            return Ok(Vec::new());
        }
        let limit = limit as usize;
        // 1. candidates: the index, then the patients' current names
        let cap = limit.max(SEARCH_CANDIDATE_CAP as usize);
        let candidates = self.search_candidates(rpps, &words, cap).await?;
        let mut ranked: Vec<(RankKey, Patient)> = candidates
            .into_iter()
            .filter_map(|p| rank_key(&p, &words).map(|k| (k, p)))
            .collect();
        ranked.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        // 2. the live care-team rows of the best candidates, in batches
        // until `limit` hits (more than one batch only when the index is
        // stale or `limit` is large)
        let mut hits = Vec::with_capacity(limit.min(ranked.len()));
        let mut rest = ranked.into_iter().map(|(_, p)| p);
        while hits.len() < limit {
            let batch: Vec<Patient> = rest
                .by_ref()
                .take((limit - hits.len()).min(CARE_TEAM_BATCH))
                .collect();
            if batch.is_empty() {
                break;
            }
            let ids: Vec<&str> = batch.iter().map(|p| p.patient_id.as_str()).collect();
            let mut roles = self.live_roles(rpps, &ids).await?;
            for patient in batch {
                if let Some(dossiers) = roles.remove(&patient.patient_id) {
                    hits.push(PatientHit { patient, dossiers });
                }
            }
        }
        Ok(hits)
    }

    /// The candidate patients of a name search, from `rec_search_tokens`,
    /// with their current names, at most `cap`. One word: the first `cap`
    /// patients of its range of the index for `rpps`, in index order (the
    /// word itself first, then the tokens it starts, alphabetically).
    /// Several words: the patients in the ranges of all of them
    /// (intersection), those with every word as a whole token first, then
    /// the first ones by patient id, `cap` in all. A range is `token >= W
    /// AND token < W'` with `W'` the word with its last character
    /// incremented: tokens are `[A-Z0-9]+` and compare bytewise (SQLite
    /// BINARY, PostgreSQL `COLLATE "C"`), so no LIKE is needed.
    ///
    /// The candidate ids are chosen and limited in a subquery before the
    /// patients are joined, so that no plan (PostgreSQL's generic plans
    /// included) starts from anything else than the index ranges.
    async fn search_candidates(
        &self,
        rpps: &str,
        words: &[String],
        cap: usize,
    ) -> Result<Vec<Patient>> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut out: Vec<Patient> = Vec::new();
        let mut keep = |row: &AnyRow, out: &mut Vec<Patient>| -> Result<()> {
            // LEFT JOIN: an index entry whose patient is gone gives NULLs
            let id: Option<String> = row.try_get(0)?;
            if id.is_some_and(|id| seen.insert(id)) {
                out.push(patient_from(row, 0)?);
            }
            Ok(())
        };
        if words.len() > 1 {
            let ranges: Vec<String> = (0..words.len())
                .map(|i| {
                    format!(
                        "SELECT s.patient_id FROM rec_search_tokens s \
                         WHERE s.rpps = $1 AND s.token >= ${} AND s.token < ${}",
                        2 + 2 * i,
                        3 + 2 * i
                    )
                })
                .collect();
            // LEFT JOIN: SQLite keeps this join order
            let sql = format!(
                "SELECT {PATIENT_COLS} FROM (SELECT i.patient_id FROM ({}) i \
                 ORDER BY i.patient_id LIMIT {cap}) x \
                 LEFT JOIN rec_patients p ON p.patient_id = x.patient_id",
                ranges.join(" INTERSECT ")
            );
            // Two passes over the same ranges: first the patients who have
            // every word as a whole token (`[W, W0)`: tokens are [A-Z0-9]+,
            // so a longer token starting with W sorts at or after W0), so
            // that "martin jean" keeps MARTIN Jean among the candidates
            // however many MARTINEZ Jeanne there are; then every prefix.
            for exact in [true, false] {
                let mut q = sqlx::query(&sql).bind(rpps);
                for w in words {
                    let upper = if exact {
                        format!("{w}0")
                    } else {
                        next_prefix(w)
                    };
                    q = q.bind(w.as_str()).bind(upper);
                }
                for row in &q.fetch_all(&self.pool).await? {
                    keep(row, &mut out)?;
                }
            }
            out.truncate(cap);
            return Ok(out);
        }
        // One word. A patient may have several tokens in the range (the
        // words and the joined form of a compound name): read on after the
        // last index entry until `cap` patients or the end of the range.
        let word = &words[0];
        let next = next_prefix(word);
        // (token, patient_id) of the last index entry read
        let mut after: (String, String) = (String::new(), String::new());
        // Rounds read fewer rows each (only what is missing), but many
        // dangling index entries (patients gone) could keep them going: at
        // most this many, then the candidates found so far.
        const MAX_ROUNDS: usize = 8;
        for _ in 0..MAX_ROUNDS {
            let want = cap - out.len();
            // $2 is the word, then the last token read (the seek starts
            // there); ($4, $5) skip the entries already read
            let sql = format!(
                "SELECT {PATIENT_COLS}, x.token, x.patient_id \
                 FROM (SELECT s.token, s.patient_id FROM rec_search_tokens s \
                 WHERE s.rpps = $1 AND s.token >= $2 AND s.token < $3 \
                 AND (s.token > $4 OR s.patient_id > $5) \
                 ORDER BY s.token, s.patient_id LIMIT $6) x \
                 LEFT JOIN rec_patients p ON p.patient_id = x.patient_id \
                 ORDER BY x.token, x.patient_id"
            );
            let from = if after.0.is_empty() { word } else { &after.0 };
            let rows = sqlx::query(&sql)
                .bind(rpps)
                .bind(from.as_str())
                .bind(next.as_str())
                .bind(after.0.as_str())
                .bind(after.1.as_str())
                .bind(want as i64)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                keep(row, &mut out)?;
            }
            // in the database's order (its collation for patient_id)
            if let Some(last) = rows.last() {
                after = (last.try_get(5)?, last.try_get(6)?);
            }
            if rows.len() < want || out.len() >= cap {
                break;
            }
        }
        Ok(out)
    }

    /// For each of these patients with at least one dossier whose care team
    /// lists `rpps` (read live from `rec_care_team`): the dossiers and roles,
    /// newest dossier first, roles sorted.
    ///
    /// The professional is matched with `COALESCE(c.rpps, '') = $1`, an
    /// expression no index serves: with `c.rpps = $1` a plan that does not
    /// know the value (a PostgreSQL generic plan, after a few executions of
    /// the prepared statement) can start from all of the professional's
    /// care-team rows (66,636 for the busiest one of the benchmark), the
    /// cost this search avoids. Here the only way in is the candidates'
    /// dossiers.
    async fn live_roles(
        &self,
        rpps: &str,
        patient_ids: &[&str],
    ) -> Result<HashMap<String, Vec<DossierRoles>>> {
        if patient_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let params: Vec<String> = (2..patient_ids.len() + 2)
            .map(|i| format!("${i}"))
            .collect();
        // CROSS JOIN: SQLite keeps this join order (from the candidates'
        // dossiers)
        let sql = format!(
            "SELECT d.patient_id, d.dossier_number, d.dossier_date, c.role_code \
             FROM rec_dossiers d CROSS JOIN rec_care_team c \
             WHERE d.patient_id IN ({}) AND c.dossier_number = d.dossier_number \
             AND COALESCE(c.rpps, '') = $1",
            params.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(rpps);
        for id in patient_ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        // patient_id -> dossier_number -> (date, roles)
        let mut by_patient: HashMap<String, BTreeMap<String, (String, Vec<String>)>> =
            HashMap::new();
        for row in &rows {
            let patient: String = row.try_get(0)?;
            let dossier: String = row.try_get(1)?;
            let date: String = row.try_get(2)?;
            let role: String = row.try_get(3)?;
            let roles = &mut by_patient
                .entry(patient)
                .or_default()
                .entry(dossier)
                .or_insert((date, Vec::new()))
                .1;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Ok(by_patient
            .into_iter()
            .map(|(patient, dossiers)| {
                let mut dossiers: Vec<(String, String, Vec<String>)> = dossiers
                    .into_iter()
                    .map(|(n, (date, mut roles))| {
                        roles.sort();
                        (date, n, roles)
                    })
                    .collect();
                dossiers.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
                let dossiers = dossiers.into_iter().map(|(_, n, r)| (n, r)).collect();
                (patient, dossiers)
            })
            .collect())
    }

    pub async fn patient(&self, patient_id: &str) -> Result<Option<Patient>> {
        let row = sqlx::query(&format!(
            "SELECT {PATIENT_COLS} FROM rec_patients p WHERE p.patient_id = $1"
        ))
        .bind(patient_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| patient_from(&r, 0)).transpose()
    }

    /// The patient's dossiers, newest first.
    pub async fn dossiers_of_patient(&self, patient_id: &str) -> Result<Vec<Dossier>> {
        let rows = sqlx::query(
            "SELECT d.dossier_number, d.patient_id, d.dossier_date FROM rec_dossiers d \
             WHERE d.patient_id = $1 ORDER BY d.dossier_date DESC, d.dossier_number DESC",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| dossier_from(r, 0)).collect()
    }

    pub async fn dossier(&self, dossier_number: &str) -> Result<Option<Dossier>> {
        let row = sqlx::query(
            "SELECT d.dossier_number, d.patient_id, d.dossier_date FROM rec_dossiers d \
             WHERE d.dossier_number = $1",
        )
        .bind(dossier_number)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| dossier_from(&r, 0)).transpose()
    }

    /// The dossier with this number if its patient was born on `birth_date`
    /// (`YYYY-MM-DD`); None otherwise, without telling which field did not
    /// match (one query).
    pub async fn dossier_by_number_and_birth_date(
        &self,
        dossier_number: &str,
        birth_date: &str,
    ) -> Result<Option<Dossier>> {
        let row = sqlx::query(
            "SELECT d.dossier_number, d.patient_id, d.dossier_date FROM rec_dossiers d \
             JOIN rec_patients p ON p.patient_id = d.patient_id \
             WHERE d.dossier_number = $1 AND p.birth_date = $2",
        )
        .bind(dossier_number)
        .bind(birth_date)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| dossier_from(&r, 0)).transpose()
    }

    /// The role codes of `rpps` on the care team of this dossier (sorted,
    /// empty if none).
    pub async fn roles_on_dossier(&self, dossier_number: &str, rpps: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT c.role_code FROM rec_care_team c \
             WHERE c.dossier_number = $1 AND c.rpps = $2 ORDER BY c.role_code",
        )
        .bind(dossier_number)
        .bind(rpps)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
            .collect()
    }

    /// For each dossier of the patient whose care team lists `rpps`: its
    /// number and the roles (newest dossier first, roles sorted).
    pub async fn roles_by_dossier(
        &self,
        patient_id: &str,
        rpps: &str,
    ) -> Result<Vec<DossierRoles>> {
        let rows = sqlx::query(
            "SELECT DISTINCT d.dossier_date, c.dossier_number, c.role_code FROM rec_dossiers d \
             JOIN rec_care_team c ON c.dossier_number = d.dossier_number \
             WHERE d.patient_id = $1 AND c.rpps = $2 \
             ORDER BY d.dossier_date DESC, c.dossier_number DESC, c.role_code",
        )
        .bind(patient_id)
        .bind(rpps)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<DossierRoles> = Vec::new();
        for row in &rows {
            let number: String = row.try_get(1)?;
            let role: String = row.try_get(2)?;
            match out.last_mut() {
                Some((n, roles)) if *n == number => roles.push(role),
                _ => out.push((number, vec![role])),
            }
        }
        Ok(out)
    }

    /// The care team of `rpps` around a dossier: for each dossier of the
    /// patient `dossier_number` belongs to (that one included) whose care
    /// team lists `rpps`, its number and the roles (newest dossier first,
    /// roles sorted). Empty for an unknown dossier. One query, on the
    /// dossiers' patient index and the care team's (dossier, rpps) index.
    pub async fn roles_around_dossier(
        &self,
        dossier_number: &str,
        rpps: &str,
    ) -> Result<Vec<DossierRoles>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.dossier_date, c.dossier_number, c.role_code FROM rec_dossiers d \
             JOIN rec_dossiers s ON s.patient_id = d.patient_id \
             JOIN rec_care_team c ON c.dossier_number = s.dossier_number AND c.rpps = $2 \
             WHERE d.dossier_number = $1 \
             ORDER BY s.dossier_date DESC, c.dossier_number DESC, c.role_code",
        )
        .bind(dossier_number)
        .bind(rpps)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<DossierRoles> = Vec::new();
        for row in &rows {
            let number: String = row.try_get(1)?;
            let role: String = row.try_get(2)?;
            match out.last_mut() {
                Some((n, roles)) if *n == number => roles.push(role),
                _ => out.push((number, vec![role])),
            }
        }
        Ok(out)
    }

    /// The exams of a dossier, by date then id.
    pub async fn exams_of_dossier(&self, dossier_number: &str) -> Result<Vec<Exam>> {
        let rows = sqlx::query(&format!(
            "SELECT {EXAM_COLS} FROM rec_exams e WHERE e.dossier_number = $1 \
             ORDER BY e.exam_date, e.exam_id"
        ))
        .bind(dossier_number)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| exam_from(r, 0)).collect()
    }

    /// The reports of a dossier, newest first.
    pub async fn reports_of_dossier(&self, dossier_number: &str) -> Result<Vec<Report>> {
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLS} FROM rec_reports r WHERE r.dossier_number = $1 \
             ORDER BY r.report_date DESC, r.report_id DESC"
        ))
        .bind(dossier_number)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| report_from(r, 0)).collect()
    }

    pub async fn report(&self, report_id: &str) -> Result<Option<Report>> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLS} FROM rec_reports r WHERE r.report_id = $1"
        ))
        .bind(report_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| report_from(&r, 0)).transpose()
    }

    /// The exam, dossier and patient a StudyInstanceUID belongs to.
    pub async fn study(&self, study_instance_uid: &str) -> Result<Option<StudyRef>> {
        let row = sqlx::query(
            "SELECT e.study_instance_uid, e.exam_id, e.dossier_number, d.patient_id \
             FROM rec_exams e JOIN rec_dossiers d ON d.dossier_number = e.dossier_number \
             WHERE e.study_instance_uid = $1 ORDER BY e.exam_id LIMIT 1",
        )
        .bind(study_instance_uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<StudyRef> {
            Ok(StudyRef {
                study_instance_uid: r.try_get(0)?,
                exam_id: r.try_get(1)?,
                dossier_number: r.try_get(2)?,
                patient_id: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Reports dated `since_date` (`YYYY-MM-DD`) or later, of the dossiers
    /// whose care team lists `rpps`, newest first, at most `limit`.
    pub async fn recent_reports_for(
        &self,
        rpps: &str,
        since_date: &str,
        limit: u32,
    ) -> Result<Vec<RecentResult>> {
        self.recent_reports_page(rpps, since_date, None, limit)
            .await
    }

    /// One page of [`Records::recent_reports_for`]: the results that come
    /// after `after` (the last one of the previous page, see
    /// [`RecentCursor::of`]) in the same order, at most `limit`.
    pub async fn recent_reports_page(
        &self,
        rpps: &str,
        since_date: &str,
        after: Option<&RecentCursor>,
        limit: u32,
    ) -> Result<Vec<RecentResult>> {
        if rpps.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let sql = recent_reports_sql(after.is_some());
        let mut q = sqlx::query(&sql)
            .bind(rpps)
            .bind(since_date)
            .bind(i64::from(limit));
        if let Some(c) = after {
            q = q.bind(c.report_date.as_str()).bind(c.report_id.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let report = report_from(row, 0)?;
            let dossier = dossier_from(row, 7)?;
            let patient = patient_from(row, 10)?;
            let exam_id: Option<String> = row.try_get(15)?;
            let exam = match exam_id {
                Some(_) => Some(exam_from(row, 15)?),
                None => None,
            };
            out.push(RecentResult {
                report,
                exam,
                dossier,
                patient,
                roles: Vec::new(),
            });
        }
        // the roles on the dossiers of this page only
        let mut dossiers: Vec<&str> = out
            .iter()
            .map(|r| r.dossier.dossier_number.as_str())
            .collect();
        dossiers.sort_unstable();
        dossiers.dedup();
        let mut roles: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in dossiers.chunks(CARE_TEAM_BATCH) {
            let params: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT DISTINCT c.dossier_number, c.role_code FROM rec_care_team c \
                 WHERE c.rpps = $1 AND c.dossier_number IN ({})",
                params.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(rpps);
            for d in chunk {
                q = q.bind(*d);
            }
            for row in &q.fetch_all(&self.pool).await? {
                roles
                    .entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
        }
        for r in &mut out {
            let mut rs = roles
                .get(&r.dossier.dossier_number)
                .cloned()
                .unwrap_or_default();
            rs.sort();
            r.roles = rs;
        }
        Ok(out)
    }
}

/// The query of one page of recent results ([`Records::recent_reports_page`]):
/// `$1` RPPS, `$2` since (`YYYY-MM-DD`), `$3` limit, and with `keyset` `$4`
/// `$5` the date and id the previous page ended on.
fn recent_reports_sql(keyset: bool) -> String {
    let keyset = if keyset {
        " AND (r.report_date < $4 OR (r.report_date = $4 AND r.report_id < $5))"
    } else {
        ""
    };
    format!(
        "SELECT {REPORT_COLS}, d.dossier_number, d.patient_id, d.dossier_date, \
         {PATIENT_COLS}, {EXAM_COLS} \
         FROM rec_reports r \
         JOIN rec_dossiers d ON d.dossier_number = r.dossier_number \
         JOIN rec_patients p ON p.patient_id = d.patient_id \
         LEFT JOIN rec_exams e ON e.exam_id = r.exam_id \
         WHERE r.report_date >= $2 AND r.dossier_number IN \
           (SELECT c.dossier_number FROM rec_care_team c WHERE c.rpps = $1){keyset} \
         ORDER BY r.report_date DESC, r.report_id DESC LIMIT $3"
    )
}

/// A position in the recent-results list: where a page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentCursor {
    pub report_date: String,
    pub report_id: String,
}

impl RecentCursor {
    /// The position of this result (the next page starts after it).
    pub fn of(r: &RecentResult) -> RecentCursor {
        RecentCursor {
            report_date: r.report.report_date.clone(),
            report_id: r.report.report_id.clone(),
        }
    }
}

/// The normalized words of a name query; empty when the trimmed query has
/// fewer than [`MIN_QUERY_CHARS`] characters. Duplicates removed, at most
/// [`MAX_QUERY_WORDS`].
pub fn query_words(query: &str) -> Vec<String> {
    if query.trim().chars().count() < MIN_QUERY_CHARS {
        return Vec::new();
    }
    let mut words: Vec<String> = Vec::new();
    for w in search_tokens(query) {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    words.truncate(MAX_QUERY_WORDS);
    words
}

/// The smallest string greater than every string that starts with `word`
/// (and than `word` itself), for `[A-Z0-9]+` words compared bytewise: the
/// last character incremented (`MA` -> `MB`, `MZ` -> `M[`, `M9` -> `M:`).
fn next_prefix(word: &str) -> String {
    debug_assert!(!word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric()));
    let mut next = word.to_string();
    if let Some(c) = next.pop() {
        next.push(char::from_u32(c as u32 + 1).unwrap_or(char::MAX));
    }
    next
}

/// Sort key of a search hit (smaller first): words that are not a whole
/// name word, whether the first word does not start a family-name word,
/// normalized family name, given name, birth date, patient id.
type RankKey = (usize, bool, String, String, String, String);

/// The sort key of a patient for these query words, or None when a word
/// does not start one of the patient's name tokens ([`patient_tokens`]).
fn rank_key(p: &Patient, words: &[String]) -> Option<RankKey> {
    // the patient's tokens as the search index has them
    let all = patient_tokens(&p.family_name, &p.given_name);
    let family_tokens = patient_tokens(&p.family_name, "");
    if !words
        .iter()
        .all(|w| all.iter().any(|t| t.starts_with(w.as_str())))
    {
        return None;
    }
    let not_exact = words.iter().filter(|w| !all.contains(w)).count();
    let first_in_family = words
        .first()
        .is_some_and(|w| family_tokens.iter().any(|t| t.starts_with(w.as_str())));
    let (family, given) = (search_tokens(&p.family_name), search_tokens(&p.given_name));
    Some((
        not_exact,
        !first_in_family,
        family.join(" "),
        given.join(" "),
        p.birth_date.clone(),
        p.patient_id.clone(),
    ))
}

fn patient_from(row: &AnyRow, at: usize) -> Result<Patient> {
    Ok(Patient {
        patient_id: row.try_get(at)?,
        family_name: row.try_get(at + 1)?,
        given_name: row.try_get(at + 2)?,
        sex: row.try_get(at + 3)?,
        birth_date: row.try_get(at + 4)?,
    })
}

fn dossier_from(row: &AnyRow, at: usize) -> Result<Dossier> {
    Ok(Dossier {
        dossier_number: row.try_get(at)?,
        patient_id: row.try_get(at + 1)?,
        dossier_date: row.try_get(at + 2)?,
    })
}

fn exam_from(row: &AnyRow, at: usize) -> Result<Exam> {
    Ok(Exam {
        exam_id: row.try_get(at)?,
        dossier_number: row.try_get(at + 1)?,
        act_label: row.try_get(at + 2)?,
        exam_date: row.try_get(at + 3)?,
        study_instance_uid: row.try_get(at + 4)?,
        accession_number: row.try_get(at + 5)?,
        modality: row.try_get(at + 6)?,
    })
}

fn report_from(row: &AnyRow, at: usize) -> Result<Report> {
    Ok(Report {
        report_id: row.try_get(at)?,
        dossier_number: row.try_get(at + 1)?,
        exam_id: row.try_get(at + 2)?,
        title: row.try_get(at + 3)?,
        report_date: row.try_get(at + 4)?,
        content: row.try_get(at + 5)?,
        content_location: row.try_get(at + 6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_rules() {
        assert!(query_words("s").is_empty());
        assert!(query_words("  s  ").is_empty());
        assert!(query_words("é").is_empty());
        assert_eq!(query_words("sc"), ["SC"]);
        assert_eq!(query_words("Fra  sca"), ["FRA", "SCA"]);
        assert_eq!(query_words("sca sca"), ["SCA"]);
        assert!(query_words("--").is_empty());
        assert_eq!(query_words("a b c d e f g h").len(), MAX_QUERY_WORDS);
    }

    #[test]
    fn ranking_key() {
        let p = |f: &str, g: &str| Patient {
            patient_id: "1".into(),
            family_name: f.into(),
            given_name: g.into(),
            sex: "U".into(),
            birth_date: "2000-01-01".into(),
        };
        let w = vec!["MARTIN".to_string()];
        let mut v = [
            rank_key(&p("DUPONT", "Martine"), &w).unwrap(),
            rank_key(&p("MARTINEZ", "Paul"), &w).unwrap(),
            rank_key(&p("LE GALL", "Martin"), &w).unwrap(),
            rank_key(&p("MARTIN", "Hélène"), &w).unwrap(),
        ];
        v.sort();
        let fam: Vec<&str> = v.iter().map(|k| k.2.as_str()).collect();
        assert_eq!(fam, ["MARTIN", "LE GALL", "MARTINEZ", "DUPONT"]);
        // a word that starts no name token: not a hit
        assert!(rank_key(&p("MARTIN", "Hélène"), &["ARTIN".to_string()]).is_none());
        assert!(rank_key(&p("MARTIN", "Hélène"), &w,).is_some());
        // joined tokens count: "legall" is a whole word of LE GALL
        let k = rank_key(&p("LE GALL", "Martin"), &["LEGALL".to_string()]).unwrap();
        assert_eq!((k.0, k.1), (0, false));
        let k = rank_key(&p("DUPONT", "Jean-Pierre"), &["JEANP".to_string()]).unwrap();
        assert_eq!((k.0, k.1), (1, true));
    }

    #[test]
    fn next_prefix_bounds_the_range() {
        assert_eq!(next_prefix("MA"), "MB");
        assert_eq!(next_prefix("MZ"), "M[");
        assert_eq!(next_prefix("M9"), "M:");
        for t in ["MA", "MAZZZ", "MA0", "MA9"] {
            assert!(t >= "MA" && t < next_prefix("MA").as_str(), "{t}");
        }
        for t in ["M", "MB", "LZZZ", "MB0"] {
            assert!(!(t >= "MA" && t < next_prefix("MA").as_str()), "{t}");
        }
    }

    #[test]
    fn roles() {
        assert_eq!(role_label("MT"), Some("Médecin traitant"));
        assert_eq!(role_label("XX"), None);
    }
}
