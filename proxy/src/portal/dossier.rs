//! A patient's page (`/portail/patients/{id}`: every dossier the care team
//! may see) and one dossier's page (`/portail/dossiers/{n}`: through the
//! care team or a dossier-number grant).

use espace_ps_access::{Action, Resource};
use espace_ps_records::{Dossier, Patient};

use super::views::{ImagesLink, PatientPage, PatientView, ReportLink, Venue};
use super::{fr_date, recent_of, Ctx, NO_RECORDS};
use crate::access::{AccessError, Way};
use crate::audit::{Event, Outcome};
use crate::web::Resp;

/// One venue (dossier) as the patient page shows it.
async fn venue(ctx: &Ctx<'_>, d: &Dossier) -> Result<Venue, AccessError> {
    let records = ctx.records()?;
    let exams = records.exams_of_dossier(&d.dossier_number).await?;
    let reports = records.reports_of_dossier(&d.dossier_number).await?;
    let mut acts: Vec<String> = exams.iter().map(|e| e.act_label.clone()).collect();
    acts.dedup();
    let mut visible_reports = Vec::new();
    for r in &reports {
        let res = Resource::Report {
            id: r.report_id.clone(),
            dossier_id: d.dossier_number.clone(),
        };
        if ctx
            .app
            .access
            .decide_on_dossier(&ctx.session, Action::ViewReport, res, &d.dossier_number)
            .await?
            .is_some()
        {
            visible_reports.push(ReportLink {
                title: r.title.clone(),
                date: fr_date(&r.report_date),
                url: super::views::report_url(&r.report_id),
            });
        }
    }
    let mut images = Vec::new();
    for e in &exams {
        let Some(uid) = &e.study_instance_uid else {
            continue;
        };
        let res = Resource::Study {
            uid: uid.clone(),
            dossier_id: d.dossier_number.clone(),
        };
        if ctx
            .app
            .access
            .decide_on_dossier(&ctx.session, Action::ViewImages, res, &d.dossier_number)
            .await?
            .is_some()
        {
            images.push(ImagesLink {
                act: e.act_label.clone(),
                date: fr_date(&e.exam_date),
                url: format!("/portail/images/{}", urlencoding::encode(uid)),
            });
        }
    }
    let title = if acts.is_empty() {
        "Venue".to_owned()
    } else {
        acts.join(", ")
    };
    Ok(Venue {
        number: d.dossier_number.clone(),
        title,
        date: fr_date(&d.dossier_date),
        reports: visible_reports,
        multiple_images: images.len() > 1,
        images,
    })
}

pub async fn patient(mut ctx: Ctx<'_>, id: &str) -> Resp {
    let result: Result<Option<(Patient, Vec<Venue>)>, AccessError> = async {
        let records = ctx.records()?;
        // The dossiers are read whether the patient exists or not, so that an
        // unknown id does not answer sooner than a patient not shown.
        let found = records.patient(id).await?;
        let dossiers = records.dossiers_of_patient(id).await?;
        let Some(p) = found else {
            return Ok(None);
        };
        let mut venues = Vec::new();
        for d in dossiers {
            let res = Resource::Dossier {
                id: d.dossier_number.clone(),
                patient_id: p.patient_id.clone(),
            };
            // Through the care team only: a dossier-number grant opens its
            // dossier alone (at /portail/dossiers/{n}), not the patient.
            if ctx
                .app
                .access
                .decide_on_dossier_via(
                    &ctx.session,
                    Action::ViewDossier,
                    res,
                    &d.dossier_number,
                    false,
                )
                .await?
                .is_some()
            {
                venues.push(venue(&ctx, &d).await?);
            }
        }
        if venues.is_empty() {
            return Ok(None);
        }
        ctx.audit_or_refuse(ctx.audit(Event::PatientView, Outcome::Success, id))
            .await?;
        Ok(Some((p, venues)))
    }
    .await;
    match result {
        Ok(Some((p, venues))) => {
            ctx.remember(&p, None).await;
            ctx.render(
                "patient",
                "Dossier patient",
                PatientPage {
                    patient: PatientView::of(&recent_of(&p)),
                    venues,
                    single: false,
                    by_number: false,
                },
            )
        }
        Ok(None) => ctx.error(&NO_RECORDS),
        Err(e) => ctx.unavailable(&e),
    }
}

pub async fn dossier(mut ctx: Ctx<'_>, number: &str) -> Resp {
    /// What the dossier's page shows.
    enum Found {
        Shown(Box<(Patient, Venue, Way)>),
        /// Not visible, but this professional's grant on it expired.
        GrantExpired,
        None,
    }
    let result: Result<Found, AccessError> = async {
        let records = ctx.records()?;
        let found = records.dossier(number).await?;
        // A number that does not exist pays the same lookups (care team,
        // grant) as one this professional may not see: the answer time does
        // not tell them apart.
        let (id, patient_id) = match &found {
            Some(d) => (d.dossier_number.clone(), d.patient_id.clone()),
            None => (number.to_owned(), String::new()),
        };
        let res = Resource::Dossier {
            id: id.clone(),
            patient_id,
        };
        let way = ctx
            .app
            .access
            .decide_on_dossier(&ctx.session, Action::ViewDossier, res, &id)
            .await?;
        let (Some(d), Some(way)) = (found, way) else {
            // Only a number this account once opened (it typed the number
            // and the birth date) says more than "introuvable".
            if ctx
                .app
                .db
                .grant_expired(ctx.session.account_id, number)
                .await?
            {
                return Ok(Found::GrantExpired);
            }
            return Ok(Found::None);
        };
        let Some(p) = records.patient(&d.patient_id).await? else {
            return Ok(Found::None);
        };
        let v = venue(&ctx, &d).await?;
        ctx.audit_or_refuse(ctx.audit(Event::DossierView, Outcome::Success, number))
            .await?;
        Ok(Found::Shown(Box::new((p, v, way))))
    }
    .await;
    match result {
        Ok(Found::Shown(shown)) => {
            let (p, v, way) = *shown;
            let by_number = way == Way::Grant;
            ctx.remember(&p, by_number.then_some(number)).await;
            ctx.render(
                "patient",
                "Dossier patient",
                PatientPage {
                    patient: PatientView::of(&recent_of(&p)),
                    venues: vec![v],
                    single: true,
                    by_number,
                },
            )
        }
        Ok(Found::GrantExpired) => super::by_number::grant_expired(ctx, number),
        Ok(Found::None) => ctx.error(&NO_RECORDS),
        Err(e) => ctx.unavailable(&e),
    }
}
