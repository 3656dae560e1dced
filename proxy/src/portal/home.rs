//! The home page (`GET /`): the professional, the search form, "Mes
//! dernières recherches" and the unseen results of the last days, one
//! entry per dossier (user guide 3.1.1: "marquer comme vu" removes the
//! dossier from the list).

use espace_ps_access::{Action, DossierRoles, Resource, Via};
use espace_ps_records::{RecentResult, Records};

use super::views::{self, HomePage, PatientView, ReportLink, UnseenResult};
use super::{fr_date, recent_of, Ctx};
use crate::access::{Access, AccessError};
use crate::session::SessionData;
use crate::state::PortalDb;
use crate::web::Resp;

/// How many dossiers "Derniers résultats non vus" lists (the newest).
pub const HOME_RESULTS_CAP: usize = 20;

pub async fn home(ctx: Ctx<'_>) -> Resp {
    let list = match (&ctx.app.records, ctx.session.professional.rpps.is_some()) {
        (Some(records), true) => {
            let since = crate::clock::today()
                - time::Duration::days(i64::from(ctx.app.config.portal.unseen_days));
            match unseen_entries(
                records,
                &ctx.app.db,
                &ctx.app.access,
                &ctx.session,
                &super::iso(since),
            )
            .await
            {
                Ok(l) => l,
                Err(e) => return ctx.unavailable(&e),
            }
        }
        _ => UnseenList::default(),
    };
    let recent: Vec<PatientView> = ctx
        .session
        .recent_patients
        .iter()
        .map(PatientView::of)
        .collect();
    let more = list.entries.len().saturating_sub(HOME_RESULTS_CAP);
    let results: Vec<UnseenResult> = list
        .entries
        .into_iter()
        .take(HOME_RESULTS_CAP)
        .map(UnseenEntry::view)
        .collect();
    ctx.render(
        "home",
        "Accueil",
        HomePage {
            more: more_text(more),
            results,
            recent,
            unseen_days: ctx.app.config.portal.unseen_days,
            has_rpps: ctx.session.professional.rpps.is_some(),
        },
    )
}

/// "Et 1 autre résultat non vu…", "Et 12 autres résultats non vus…", or
/// nothing.
pub fn more_text(more: usize) -> Option<String> {
    match more {
        0 => None,
        1 => Some(
            "Et 1 autre résultat non vu : il reste accessible par la recherche du patient."
                .to_owned(),
        ),
        n => Some(format!(
            "Et {n} autres résultats non vus : ils restent accessibles par la recherche du patient."
        )),
    }
}

/// One dossier of "Derniers résultats non vus": its newest unseen report
/// first.
#[derive(Debug, Clone)]
pub struct UnseenEntry {
    /// The dossier's unseen reports, newest first (never empty).
    pub reports: Vec<RecentResult>,
}

impl UnseenEntry {
    fn view(self) -> UnseenResult {
        let first = &self.reports[0];
        let mut acts: Vec<String> = Vec::new();
        for r in &self.reports {
            let act = r
                .exam
                .as_ref()
                .map(|e| e.act_label.clone())
                .unwrap_or_else(|| r.report.title.clone());
            if !acts.contains(&act) {
                acts.push(act);
            }
        }
        let number = first.dossier.dossier_number.clone();
        UnseenResult {
            patient: PatientView::of(&recent_of(&first.patient)),
            act: acts.join(", "),
            date: fr_date(
                &first
                    .exam
                    .as_ref()
                    .map(|e| e.exam_date.clone())
                    .unwrap_or(first.report.report_date.clone()),
            ),
            dossier: number.clone(),
            seen_url: views::dossier_seen_url(&number),
            reports: self
                .reports
                .iter()
                .map(|r| ReportLink {
                    title: r.report.title.clone(),
                    date: fr_date(&r.report.report_date),
                    url: views::report_url(&r.report.report_id),
                })
                .collect(),
        }
    }
}

/// The unseen list: every entry read (the page shows the first
/// [`HOME_RESULTS_CAP`] and counts the others).
#[derive(Debug, Default)]
pub struct UnseenList {
    pub entries: Vec<UnseenEntry>,
}

/// Results dated `since` (`YYYY-MM-DD`) or later, not yet seen, that the
/// engine lets this professional read, grouped by dossier, newest first.
///
/// The recent results are read page by page (newest first) until `WANTED`
/// are kept, the list ends, or `MAX_ROWS` were read: a professional whose
/// newest results are nearly all seen still gets the older unseen ones, and
/// one with thousands of recent results costs at most `MAX_ROWS` rows. Public
/// for the home page benchmark (`loadtest/home`).
pub async fn unseen_entries(
    records: &Records,
    db: &PortalDb,
    access: &Access,
    session: &SessionData,
    since: &str,
) -> Result<UnseenList, AccessError> {
    /// Results read per page.
    const PAGE: u32 = 200;
    /// Hard bound on the recent results read for one home page.
    const MAX_ROWS: u32 = 2_000;
    /// Unseen results kept (reports; several may share a dossier).
    const WANTED: usize = 400;
    let Some(rpps) = &session.professional.rpps else {
        return Ok(UnseenList::default());
    };
    let unseen = records
        .collect_recent(rpps, since, PAGE, MAX_ROWS, WANTED, |page| async move {
            let ids: Vec<String> = page.iter().map(|r| r.report.report_id.clone()).collect();
            let seen = db.seen_among(session.account_id, &ids).await?;
            Ok::<_, AccessError>(
                page.into_iter()
                    .filter(|r| !seen.contains(&r.report.report_id))
                    .filter(|r| {
                        access.decide(
                            session,
                            Action::ViewReport,
                            Resource::Report {
                                id: r.report.report_id.clone(),
                                dossier_id: r.dossier.dossier_number.clone(),
                            },
                            Via::CareTeam,
                            vec![DossierRoles {
                                dossier_id: r.dossier.dossier_number.clone(),
                                roles: r.roles.clone(),
                            }],
                        )
                    })
                    .collect(),
            )
        })
        .await?;
    Ok(UnseenList {
        entries: group_by_dossier(unseen),
    })
}

/// Groups results (newest first) by dossier, in the order of each
/// dossier's newest result.
fn group_by_dossier(results: Vec<RecentResult>) -> Vec<UnseenEntry> {
    let mut entries: Vec<UnseenEntry> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for r in results {
        match index.get(&r.dossier.dossier_number) {
            Some(&i) => entries[i].reports.push(r),
            None => {
                index.insert(r.dossier.dossier_number.clone(), entries.len());
                entries.push(UnseenEntry { reports: vec![r] });
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_is_said_in_french_plurals() {
        assert_eq!(more_text(0), None);
        assert_eq!(
            more_text(1).unwrap(),
            "Et 1 autre résultat non vu : il reste accessible par la recherche du patient."
        );
        assert_eq!(
            more_text(12).unwrap(),
            "Et 12 autres résultats non vus : ils restent accessibles par la recherche du patient."
        );
    }
}
