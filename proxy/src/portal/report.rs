//! A report (`/portail/comptes-rendus/{id}`) and its "Marquer comme vu"
//! button (`POST /portail/comptes-rendus/{id}/vu`).

use espace_ps_access::{Action, Resource};
use espace_ps_records::{Patient, Report};

use super::views::{self, PatientView, ReportPage, ReportView};
use super::{fr_date, recent_of, Ctx};
use crate::access::AccessError;
use crate::audit::{Event, Outcome};
use crate::pages::REPORT_NOT_FOUND;
use crate::web::{self, Resp};

/// The report if this professional may read it.
async fn readable_report(ctx: &Ctx<'_>, id: &str) -> Result<Option<Report>, AccessError> {
    let Some(r) = ctx.records()?.report(id).await? else {
        return Ok(None);
    };
    let res = Resource::Report {
        id: r.report_id.clone(),
        dossier_id: r.dossier_number.clone(),
    };
    let way = ctx
        .app
        .access
        .decide_on_dossier(&ctx.session, Action::ViewReport, res, &r.dossier_number)
        .await?;
    Ok(way.map(|_| r))
}

/// Whether opening a page may change state: only a navigation the user made
/// on the portal itself (`Sec-Fetch-Site: same-origin`) or typed / bookmarked
/// (`none`). A cross-site or same-site link, or a request without the header
/// (a browser too old to send it, a script), shows the page and changes nothing.
fn user_initiated(req: &crate::web::Req) -> bool {
    req.header("sec-fetch-site")
        .is_some_and(|v| v.eq_ignore_ascii_case("same-origin") || v.eq_ignore_ascii_case("none"))
}

pub async fn report(ctx: Ctx<'_>, id: &str) -> Resp {
    let mark = user_initiated(ctx.req);
    let result: Result<Option<(Report, Option<Patient>)>, AccessError> = async {
        let Some(r) = readable_report(&ctx, id).await? else {
            return Ok(None);
        };
        ctx.audit_or_refuse(ctx.audit(Event::ReportView, Outcome::Success, id))
            .await?;
        // A cross-site navigation must not clear a doctor's unseen results.
        if mark {
            ctx.app.db.mark_seen(ctx.session.account_id, id).await?;
        }
        let records = ctx.records()?;
        let patient = match records.dossier(&r.dossier_number).await? {
            Some(d) => records.patient(&d.patient_id).await?,
            None => None,
        };
        Ok(Some((r, patient)))
    }
    .await;
    match result {
        Ok(Some((r, p))) => {
            let paragraphs: Vec<String> = r
                .content
                .as_deref()
                .unwrap_or("")
                .split("\n\n")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            ctx.render(
                "report",
                &r.title,
                ReportPage {
                    report: ReportView {
                        title: r.title.clone(),
                        date: fr_date(&r.report_date),
                        paragraphs,
                        dossier_number: r.dossier_number.clone(),
                        dossier_url: format!(
                            "/portail/dossiers/{}",
                            urlencoding::encode(&r.dossier_number)
                        ),
                        // Not marked on this visit: a button does it.
                        seen_url: (!mark).then(|| views::seen_url(id)),
                    },
                    patient: p.as_ref().map(|p| PatientView::of(&recent_of(p))),
                },
            )
        }
        Ok(None) => ctx.error(&REPORT_NOT_FOUND),
        Err(e) => ctx.unavailable(&e),
    }
}

/// The home page's "Marquer comme vu" on a dossier: every report of the
/// dossier this professional may read is marked seen (user guide 3.1.1:
/// the dossier leaves the list). A dossier they may not see: the same
/// answer as a missing one, nothing recorded.
pub async fn mark_dossier_seen(ctx: Ctx<'_>, number: &str) -> Resp {
    let result: Result<bool, AccessError> = async {
        let records = ctx.records()?;
        let Some(d) = records.dossier(number).await? else {
            return Ok(false);
        };
        let res = Resource::Dossier {
            id: d.dossier_number.clone(),
            patient_id: d.patient_id.clone(),
        };
        if ctx
            .app
            .access
            .decide_on_dossier(&ctx.session, Action::ViewDossier, res, &d.dossier_number)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        for r in records.reports_of_dossier(&d.dossier_number).await? {
            if readable_report(&ctx, &r.report_id).await?.is_some() {
                ctx.app
                    .db
                    .mark_seen(ctx.session.account_id, &r.report_id)
                    .await?;
            }
        }
        Ok(true)
    }
    .await;
    match result {
        Ok(true) => web::redirect("/#resultats-non-vus"),
        Ok(false) => ctx.error(&super::NO_RECORDS),
        Err(e) => ctx.unavailable(&e),
    }
}

pub async fn mark_seen(ctx: Ctx<'_>, id: &str) -> Resp {
    let result: Result<bool, AccessError> = async {
        if readable_report(&ctx, id).await?.is_none() {
            return Ok(false);
        }
        ctx.app.db.mark_seen(ctx.session.account_id, id).await?;
        Ok(true)
    }
    .await;
    match result {
        Ok(true) => web::redirect("/#resultats-non-vus"),
        Ok(false) => ctx.error(&REPORT_NOT_FOUND),
        Err(e) => ctx.unavailable(&e),
    }
}
