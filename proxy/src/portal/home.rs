//! The home page (`GET /`): the professional, the search form, "Mes
//! dernières recherches" and the unseen results of the last days.

use espace_ps_access::{Action, DossierRoles, Resource, Via};

use super::views::{self, HomePage, PatientView, UnseenResult};
use super::{fr_date, recent_of, Ctx};
use crate::access::AccessError;
use crate::web::Resp;

/// How many unseen results the home page lists (the newest).
const HOME_RESULTS_CAP: usize = 20;

pub async fn home(ctx: Ctx<'_>) -> Resp {
    let results = match unseen_results(&ctx).await {
        Ok(r) => r,
        Err(e) => return ctx.unavailable(&e),
    };
    let recent: Vec<PatientView> = ctx
        .session
        .recent_patients
        .iter()
        .map(PatientView::of)
        .collect();
    let more = results.len().saturating_sub(HOME_RESULTS_CAP);
    let results: Vec<UnseenResult> = results.into_iter().take(HOME_RESULTS_CAP).collect();
    ctx.render(
        "home",
        "Accueil",
        HomePage {
            more,
            results,
            recent,
            unseen_days: ctx.app.config.portal.unseen_days,
            has_rpps: ctx.session.professional.rpps.is_some(),
        },
    )
}

/// Results of the last days, not yet seen, that the engine lets this professional see.
///
/// The recent results are read page by page (newest first) until `WANTED`
/// are kept, the list ends, or `MAX_ROWS` were read: a professional whose
/// newest results are nearly all seen still gets the older unseen ones, and
/// one with thousands of recent results costs at most `MAX_ROWS` rows.
async fn unseen_results(ctx: &Ctx<'_>) -> Result<Vec<UnseenResult>, AccessError> {
    /// Results read per page.
    const PAGE: u32 = 200;
    /// Hard bound on the recent results read for one home page.
    const MAX_ROWS: u32 = 2_000;
    /// Unseen results kept: the home page shows `HOME_RESULTS_CAP` and counts
    /// the others ("Et N autres résultats non vus").
    const WANTED: usize = 200;
    let (Some(rpps), Some(records)) = (&ctx.session.professional.rpps, &ctx.app.records) else {
        return Ok(Vec::new());
    };
    let since =
        crate::clock::today() - time::Duration::days(i64::from(ctx.app.config.portal.unseen_days));
    let since = super::iso(since);
    let unseen = records
        .collect_recent(rpps, &since, PAGE, MAX_ROWS, WANTED, |page| async move {
            let ids: Vec<String> = page.iter().map(|r| r.report.report_id.clone()).collect();
            let seen = ctx.app.db.seen_among(ctx.session.account_id, &ids).await?;
            Ok::<_, AccessError>(
                page.into_iter()
                    .filter(|r| !seen.contains(&r.report.report_id))
                    .filter(|r| {
                        ctx.app.access.decide(
                            &ctx.session,
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
    Ok(unseen
        .into_iter()
        .map(|r| {
            let id = &r.report.report_id;
            UnseenResult {
                patient: PatientView::of(&recent_of(&r.patient)),
                act: r
                    .exam
                    .as_ref()
                    .map(|e| e.act_label.clone())
                    .unwrap_or_else(|| r.report.title.clone()),
                date: fr_date(
                    &r.exam
                        .as_ref()
                        .map(|e| e.exam_date.clone())
                        .unwrap_or(r.report.report_date.clone()),
                ),
                report_url: views::report_url(id),
                seen_url: views::seen_url(id),
                title: r.report.title,
            }
        })
        .collect())
}
