//! The recent results of a professional's care teams, as the home page
//! reads them: first the keys of every recent report (id, dossier, date:
//! a few bytes each, from the indexes), then the whole rows of only the
//! reports the page shows. Joining patients, dossiers and exams to every
//! recent report before sorting them cost a professional with 2,000 recent
//! reports about 20 ms of PostgreSQL time per page of 200.

use std::collections::HashMap;

use sqlx::Row;

use super::{
    dossier_from, exam_from, patient_from, report_from, RecentResult, Records, Result, EXAM_COLS,
    PATIENT_COLS, REPORT_COLS,
};

/// Report ids per query of [`Records::recent_results`].
const IDS_BATCH: usize = 500;

/// One recent report of a professional's care teams: where it sits in the
/// list (newest first) and nothing about the patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentKey {
    pub report_id: String,
    pub dossier_number: String,
    /// `YYYY-MM-DD`.
    pub report_date: String,
}

/// The query of [`Records::recent_report_keys`]: `$1` RPPS, `$2` since
/// (`YYYY-MM-DD`), `$3` limit. Public so that the home page benchmark
/// (`loadtest/home`) can check its plan.
pub const RECENT_KEYS_SQL: &str = "SELECT r.report_id, r.dossier_number, r.report_date \
     FROM rec_reports r \
     WHERE r.report_date >= $2 AND r.dossier_number IN \
       (SELECT c.dossier_number FROM rec_care_team c WHERE c.rpps = $1) \
     ORDER BY r.report_date DESC, r.report_id DESC LIMIT $3";

impl Records {
    /// The reports dated `since_date` (`YYYY-MM-DD`) or later of the
    /// dossiers whose care team lists `rpps`, newest first (date, then id,
    /// descending: the order of [`Records::recent_reports_for`]), at most
    /// `limit`: their keys only.
    pub async fn recent_report_keys(
        &self,
        rpps: &str,
        since_date: &str,
        limit: u32,
    ) -> Result<Vec<RecentKey>> {
        if rpps.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(RECENT_KEYS_SQL)
            .bind(rpps)
            .bind(since_date)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RecentKey {
                    report_id: r.try_get(0)?,
                    dossier_number: r.try_get(1)?,
                    report_date: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The roles of `rpps` on each dossier of its care teams that has a
    /// report dated `since_date` or later (roles sorted): the dossiers of
    /// [`Records::recent_report_keys`]. One query.
    pub async fn roles_on_recent_dossiers(
        &self,
        rpps: &str,
        since_date: &str,
    ) -> Result<HashMap<String, Vec<String>>> {
        let mut roles: HashMap<String, Vec<String>> = HashMap::new();
        if rpps.is_empty() {
            return Ok(roles);
        }
        let rows = sqlx::query(
            "SELECT DISTINCT c.dossier_number, c.role_code FROM rec_care_team c \
             WHERE c.rpps = $1 AND EXISTS (SELECT 1 FROM rec_reports r \
               WHERE r.dossier_number = c.dossier_number AND r.report_date >= $2) \
             ORDER BY c.dossier_number, c.role_code",
        )
        .bind(rpps)
        .bind(since_date)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            roles
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        Ok(roles)
    }

    /// The whole rows (report, exam, dossier, patient) of these reports,
    /// with `roles` of their dossier (from
    /// [`Records::roles_on_recent_dossiers`]); a report whose dossier has no
    /// roles there, or that no longer exists, is left out. In no particular
    /// order.
    pub async fn recent_results(
        &self,
        report_ids: &[String],
        roles: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<RecentResult>> {
        let mut out = Vec::with_capacity(report_ids.len());
        for chunk in report_ids.chunks(IDS_BATCH) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {REPORT_COLS}, d.dossier_number, d.patient_id, d.dossier_date, \
                 {PATIENT_COLS}, {EXAM_COLS} \
                 FROM rec_reports r \
                 JOIN rec_dossiers d ON d.dossier_number = r.dossier_number \
                 JOIN rec_patients p ON p.patient_id = d.patient_id \
                 LEFT JOIN rec_exams e ON e.exam_id = r.exam_id \
                 WHERE r.report_id IN ({})",
                params.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for row in &q.fetch_all(&self.pool).await? {
                let report = report_from(row, 0)?;
                let Some(roles) = roles.get(&report.dossier_number).filter(|r| !r.is_empty())
                else {
                    continue;
                };
                let exam_id: Option<String> = row.try_get(15)?;
                out.push(RecentResult {
                    exam: match exam_id {
                        Some(_) => Some(exam_from(row, 15)?),
                        None => None,
                    },
                    dossier: dossier_from(row, 7)?,
                    patient: patient_from(row, 10)?,
                    roles: roles.clone(),
                    report,
                });
            }
        }
        Ok(out)
    }
}
