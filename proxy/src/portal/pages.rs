//! The portal's page handlers.

use espace_ps_access::{Action, DossierRoles, Resource, Via};
use espace_ps_records::{Dossier, Patient};
use http::StatusCode;
use serde_json::{json, Value};

use super::{fr_date, iso_date, Ctx};
use crate::access::{AccessError, Way};
use crate::audit::AuditEvent;
use crate::metrics::METRICS;
use crate::pages::{ErrorPage, NOT_FOUND};
use crate::session::RecentPatient;
use crate::state::{AttemptLimits, Reservation};
use crate::web::{self, Resp};

/// How many unseen results the home page lists (the newest).
const HOME_RESULTS_CAP: usize = 20;

/// How many patients "Mes dernières recherches" keeps.
const RECENT_CAP: usize = 10;

const NO_RECORDS: ErrorPage = ErrorPage::new(
    StatusCode::NOT_FOUND,
    "Dossier introuvable",
    "Ce dossier n'existe pas ou vous n'y avez pas accès.",
);

fn sex_symbol(sex: &str) -> &'static str {
    match sex {
        "F" => "♀",
        "M" => "♂",
        _ => "⚲",
    }
}

fn sex_label(sex: &str) -> &'static str {
    match sex {
        "F" => "Femme",
        "M" => "Homme",
        _ => "Sexe non précisé",
    }
}

fn recent_of(p: &Patient) -> RecentPatient {
    RecentPatient {
        id: p.patient_id.clone(),
        sex: p.sex.clone(),
        family_name: p.family_name.to_uppercase(),
        given_name: p.given_name.clone(),
        birth_date: fr_date(&p.birth_date),
    }
}

fn patient_json(r: &RecentPatient) -> Value {
    json!({
        "id": r.id,
        "sex": r.sex,
        "sex_symbol": sex_symbol(&r.sex),
        "sex_label": sex_label(&r.sex),
        "family_name": r.family_name,
        "given_name": r.given_name,
        "birth_date": r.birth_date,
        "url": format!("/portail/patients/{}", urlencoding::encode(&r.id)),
        "data": serde_json::to_string(&json!({
            "id": r.id, "sex": r.sex, "family_name": r.family_name,
            "given_name": r.given_name, "birth_date": r.birth_date,
        })).unwrap_or_default(),
    })
}

fn audit(ctx: &Ctx<'_>, event: &'static str, outcome: &'static str, resource: &str) -> AuditEvent {
    AuditEvent {
        actor: Some(ctx.session.professional.national_id.as_str().to_owned()),
        event,
        method: Some(ctx.session.professional.login_method.as_str()),
        outcome,
        client_addr: Some(ctx.req.client_ip.to_string()),
        resource: Some(resource.to_owned()),
        detail: None,
    }
}

/// Writes an audit record; without it, nothing is shown.
async fn audit_or_refuse(ctx: &Ctx<'_>, e: AuditEvent) -> Result<(), AccessError> {
    ctx.app.db.audit(&e).await?;
    Ok(())
}

impl Ctx<'_> {
    fn records(&self) -> Result<&espace_ps_records::Records, AccessError> {
        self.app.records.as_ref().ok_or(AccessError::NoRecords)
    }

    /// Puts a patient at the top of "Mes dernières recherches".
    async fn remember(&mut self, p: &Patient) {
        let r = recent_of(p);
        let list = &mut self.session.recent_patients;
        list.retain(|x| x.id != r.id);
        list.insert(0, r);
        list.truncate(RECENT_CAP);
        match self
            .app
            .sessions
            .update(&self.session_id, &self.session)
            .await
        {
            Ok(true) => {}
            // Ended meanwhile (logout, timeout): not written back.
            Ok(false) => tracing::info!("session ended before its recent patients were saved"),
            Err(e) => tracing::warn!(error = %e, "cannot update recent patients"),
        }
    }
}

// === search ===

/// The patients matching `q` that the engine lets this professional find.
async fn search(ctx: &Ctx<'_>, q: &str) -> Result<(Vec<Value>, bool), AccessError> {
    let Some(rpps) = ctx.session.professional.rpps.clone() else {
        return Ok((Vec::new(), false));
    };
    let limit = ctx.app.config.portal.search_limit as usize;
    // The engine decides after the query: fetch more than shown, so that
    // patients it refuses do not take the places of those it allows.
    let fetch = limit * 4 + 1;
    let hits = ctx
        .records()?
        .search_patients(&rpps, q, fetch as u32)
        .await?;
    let raw_overflow = hits.len() >= fetch;
    let mut found: Vec<Value> = hits
        .into_iter()
        .filter(|h| {
            let care_team = h
                .dossiers
                .iter()
                .map(|(d, roles)| DossierRoles {
                    dossier_id: d.clone(),
                    roles: roles.clone(),
                })
                .collect();
            ctx.app.access.decide(
                &ctx.session,
                Action::SearchPatients,
                Resource::Patient {
                    id: h.patient.patient_id.clone(),
                },
                Via::CareTeam,
                care_team,
            )
        })
        .map(|h| patient_json(&recent_of(&h.patient)))
        .collect();
    let truncated = found.len() > limit || raw_overflow;
    found.truncate(limit);
    Ok((found, truncated))
}

pub async fn search_api(ctx: Ctx<'_>) -> Resp {
    let q = ctx.req.query_param("q").unwrap_or_default();
    match search(&ctx, &q).await {
        Ok((patients, truncated)) => {
            let list: Vec<Value> = patients
                .into_iter()
                .map(|p| {
                    json!({"id": p["id"], "sex": p["sex"], "family_name": p["family_name"],
                           "given_name": p["given_name"], "birth_date": p["birth_date"], "url": p["url"]})
                })
                .collect();
            web::json(
                StatusCode::OK,
                &json!({"patients": list, "truncated": truncated}),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "search failed");
            web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "dossiers momentanément inaccessibles"}),
            )
        }
    }
}

pub async fn search_page(ctx: Ctx<'_>) -> Resp {
    let q = ctx.req.query_param("q").unwrap_or_default();
    let q = q.trim().to_owned();
    let too_short = q.chars().count() < 2;
    let (patients, truncated) = if too_short {
        (Vec::new(), false)
    } else {
        match search(&ctx, &q).await {
            Ok(r) => r,
            Err(e) => return ctx.unavailable(&e),
        }
    };
    ctx.render(
        "search",
        "Rechercher un patient",
        json!({
            "q": q,
            "too_short": too_short,
            "patients": patients,
            "none": !too_short && patients.is_empty(),
            "truncated": truncated,
        }),
    )
}

// === home ===

pub async fn home(ctx: Ctx<'_>) -> Resp {
    let results = match unseen_results(&ctx).await {
        Ok(r) => r,
        Err(e) => return ctx.unavailable(&e),
    };
    let recent: Vec<Value> = ctx
        .session
        .recent_patients
        .iter()
        .map(patient_json)
        .collect();
    let more = results.len().saturating_sub(HOME_RESULTS_CAP);
    let results: Vec<Value> = results.into_iter().take(HOME_RESULTS_CAP).collect();
    ctx.render(
        "home",
        "Accueil",
        json!({
            "more": more,
            "results": results,
            "recent": recent,
            "unseen_days": ctx.app.config.portal.unseen_days,
            "has_rpps": ctx.session.professional.rpps.is_some(),
        }),
    )
}

/// Results of the last days, not yet seen, that the engine lets this professional see.
///
/// The recent results are read page by page (newest first) until `WANTED`
/// are kept, the list ends, or `MAX_ROWS` were read: a professional whose
/// newest results are nearly all seen still gets the older unseen ones, and
/// one with thousands of recent results costs at most `MAX_ROWS` rows.
async fn unseen_results(ctx: &Ctx<'_>) -> Result<Vec<Value>, AccessError> {
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
            json!({
                "patient": patient_json(&recent_of(&r.patient)),
                "act": r.exam.as_ref().map(|e| e.act_label.clone()).unwrap_or_else(|| r.report.title.clone()),
                "date": fr_date(&r.exam.as_ref().map(|e| e.exam_date.clone()).unwrap_or(r.report.report_date.clone())),
                "title": r.report.title,
                "report_url": format!("/portail/comptes-rendus/{}", urlencoding::encode(id)),
                "seen_url": format!("/portail/comptes-rendus/{}/vu", urlencoding::encode(id)),
            })
        })
        .collect())
}

// === dossier number + birth date ===

pub fn dossier_form(ctx: Ctx<'_>, error: Option<&str>, status: StatusCode) -> Resp {
    let numero = ctx.req.form_param("numero").unwrap_or_default();
    let naissance = ctx.req.form_param("naissance").unwrap_or_default();
    let mut r = ctx.render(
        "dossier_form",
        "Accéder à un dossier",
        json!({"error": error, "numero": numero, "naissance": naissance}),
    );
    *r.status_mut() = status;
    r
}

pub async fn dossier_submit(ctx: Ctx<'_>) -> Resp {
    let numero = ctx.req.form_param("numero").unwrap_or_default();
    let numero = numero.trim().to_owned();
    let naissance = ctx.req.form_param("naissance").unwrap_or_default();
    if numero.is_empty() || numero.len() > 64 || numero.chars().any(char::is_control) {
        return dossier_form(
            ctx,
            Some("Saisissez le numéro de dossier."),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let Some(birth) = iso_date(&naissance) else {
        return dossier_form(
            ctx,
            Some("Saisissez la date de naissance du patient au format jj/mm/aaaa."),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    match try_open(&ctx, &numero, &birth).await {
        Ok(Opened::Yes) => web::redirect(&format!(
            "/portail/dossiers/{}",
            urlencoding::encode(&numero)
        )),
        Ok(Opened::No) => dossier_form(
            ctx,
            Some("Aucun dossier ne correspond à ce numéro et à cette date de naissance."),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Ok(Opened::Locked) => {
            let minutes = ctx.app.config.portal.dossier_lockout_minutes;
            let msg = format!(
                "Trop de tentatives infructueuses : l'accès par numéro de dossier est bloqué pendant {minutes} minutes."
            );
            dossier_form(ctx, Some(&msg), StatusCode::TOO_MANY_REQUESTS)
        }
        // The same words whether the number exists or not: the budget and
        // the lock apply to any number tried.
        Ok(Opened::NumberLocked) => dossier_form(
            ctx,
            Some("Trop de tentatives infructueuses sur ce numéro de dossier : l'accès par ce numéro est bloqué. Contactez l'administrateur de l'espace professionnel de santé pour le débloquer."),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(e) => ctx.unavailable(&e),
    }
}

enum Opened {
    Yes,
    No,
    /// Too many failures recently, by this account or on this number.
    Locked,
    /// The number's daily failure budget ran out.
    NumberLocked,
}

async fn try_open(ctx: &Ctx<'_>, numero: &str, birth: &str) -> Result<Opened, AccessError> {
    let cfg = &ctx.app.config.portal;
    let account = ctx.session.account_id;
    let limits = AttemptLimits {
        max: i64::from(cfg.dossier_attempts_max),
        window_ms: i64::from(cfg.dossier_lockout_minutes) * 60_000,
        daily_max: i64::from(cfg.dossier_daily_failures_max),
    };
    // The slot is reserved (and counted) before the records are asked: the
    // limits hold however many attempts run at once, on any instance.
    let refused = |detail: &'static str| AuditEvent {
        detail: Some(detail.into()),
        ..audit(ctx, "dossier_number_access", "refused", numero)
    };
    let slot = match ctx
        .app
        .db
        .reserve_dossier_attempt(account, numero, limits)
        .await?
    {
        Reservation::Granted(slot) => slot,
        Reservation::LockedOut => {
            METRICS
                .dossier_number_refusals
                .with_label_values(&["locked"])
                .inc();
            audit_or_refuse(ctx, refused("locked")).await?;
            return Ok(Opened::Locked);
        }
        Reservation::NumberLocked { newly } => {
            if newly {
                METRICS.dossier_numbers_locked.inc();
                tracing::warn!("a dossier number ran out of its daily failure budget: locked");
                audit_or_refuse(
                    ctx,
                    AuditEvent {
                        detail: Some("daily_budget".into()),
                        ..audit(ctx, "dossier_number_locked", "success", numero)
                    },
                )
                .await?;
            }
            METRICS
                .dossier_number_refusals
                .with_label_values(&["number_locked"])
                .inc();
            audit_or_refuse(ctx, refused("number_locked")).await?;
            return Ok(Opened::NumberLocked);
        }
    };
    let found = ctx
        .records()?
        .dossier_by_number_and_birth_date(numero, birth)
        .await?;
    let allowed = found.as_ref().is_some_and(|d| {
        ctx.app
            .access
            .may_open_by_number(&ctx.session, &d.dossier_number, &d.patient_id)
    });
    METRICS
        .dossier_number_checks
        .with_label_values(&[if allowed { "match" } else { "no_match" }])
        .inc();
    if !allowed {
        audit_or_refuse(ctx, refused("no_match")).await?;
        return Ok(Opened::No);
    }
    // The audit row first: a grant that exists is always in the trail
    // (when the grant then fails, the trail holds one access too many and
    // the professional gets an error, never the reverse).
    audit_or_refuse(ctx, audit(ctx, "dossier_number_access", "success", numero)).await?;
    ctx.app.db.dossier_attempt_succeeded(slot).await?;
    let expires = crate::state::now_ms() + i64::from(cfg.grant_days) * 86_400_000;
    ctx.app.db.grant_dossier(account, numero, expires).await?;
    ctx.app.viewer.grants_changed();
    Ok(Opened::Yes)
}

// === patient, dossier, report ===

/// One venue (dossier) as the patient page shows it.
async fn venue(ctx: &Ctx<'_>, d: &Dossier) -> Result<Value, AccessError> {
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
            visible_reports.push(json!({
                "title": r.title,
                "date": fr_date(&r.report_date),
                "url": format!("/portail/comptes-rendus/{}", urlencoding::encode(&r.report_id)),
            }));
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
            images.push(json!({
                "act": e.act_label,
                "date": fr_date(&e.exam_date),
                "url": format!("/portail/images/{}", urlencoding::encode(uid)),
            }));
        }
    }
    let title = if acts.is_empty() {
        "Venue".to_owned()
    } else {
        acts.join(", ")
    };
    Ok(json!({
        "number": d.dossier_number,
        "title": title,
        "date": fr_date(&d.dossier_date),
        "reports": visible_reports,
        "multiple_images": images.len() > 1,
        "images": images,
    }))
}

pub async fn patient(mut ctx: Ctx<'_>, id: &str) -> Resp {
    let result: Result<Option<(Patient, Vec<Value>)>, AccessError> = async {
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
        audit_or_refuse(&ctx, audit(&ctx, "patient_view", "success", id)).await?;
        Ok(Some((p, venues)))
    }
    .await;
    match result {
        Ok(Some((p, venues))) => {
            ctx.remember(&p).await;
            let pj = patient_json(&recent_of(&p));
            ctx.render(
                "patient",
                "Dossier patient",
                json!({"patient": pj, "venues": venues, "single": false}),
            )
        }
        Ok(None) => ctx.error(&NO_RECORDS),
        Err(e) => ctx.unavailable(&e),
    }
}

pub async fn dossier(mut ctx: Ctx<'_>, number: &str) -> Resp {
    let result: Result<Option<(Patient, Value, Way)>, AccessError> = async {
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
            return Ok(None);
        };
        let Some(p) = records.patient(&d.patient_id).await? else {
            return Ok(None);
        };
        let v = venue(&ctx, &d).await?;
        audit_or_refuse(&ctx, audit(&ctx, "dossier_view", "success", number)).await?;
        Ok(Some((p, v, way)))
    }
    .await;
    match result {
        Ok(Some((p, v, way))) => {
            ctx.remember(&p).await;
            let pj = patient_json(&recent_of(&p));
            ctx.render(
                "patient",
                "Dossier patient",
                json!({"patient": pj, "venues": [v], "single": true, "by_number": way == Way::Grant}),
            )
        }
        Ok(None) => ctx.error(&NO_RECORDS),
        Err(e) => ctx.unavailable(&e),
    }
}

/// The report if this professional may read it.
async fn readable_report(
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<Option<espace_ps_records::Report>, AccessError> {
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
    let result: Result<Option<(espace_ps_records::Report, Option<Patient>)>, AccessError> = async {
        let Some(r) = readable_report(&ctx, id).await? else {
            return Ok(None);
        };
        audit_or_refuse(&ctx, audit(&ctx, "report_view", "success", id)).await?;
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
                &r.title.clone(),
                json!({
                    "report": {"title": r.title, "date": fr_date(&r.report_date), "paragraphs": paragraphs,
                               "dossier_url": format!("/portail/dossiers/{}", urlencoding::encode(&r.dossier_number)),
                               // Not marked on this visit: a button does it.
                               "seen_url": (!mark).then(|| format!("/portail/comptes-rendus/{}/vu", urlencoding::encode(id)))},
                    "patient": p.as_ref().map(|p| patient_json(&recent_of(p))),
                }),
            )
        }
        Ok(None) => ctx.error(&NOT_FOUND),
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
        Ok(false) => ctx.error(&NOT_FOUND),
        Err(e) => ctx.unavailable(&e),
    }
}

// === images ===

pub async fn images(ctx: Ctx<'_>, uid: &str) -> Resp {
    let result: Result<Option<Result<String, crate::viewer::ResolveError>>, AccessError> = async {
        let Some(study) = ctx.records()?.study(uid).await? else {
            return Ok(None);
        };
        let res = Resource::Study {
            uid: uid.to_owned(),
            dossier_id: study.dossier_number.clone(),
        };
        if ctx
            .app
            .access
            .decide_on_dossier(&ctx.session, Action::ViewImages, res, &study.dossier_number)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        audit_or_refuse(&ctx, audit(&ctx, "images_open", "success", uid)).await?;
        Ok(Some(ctx.app.viewer.study_url(uid).await))
    }
    .await;
    match result {
        Ok(Some(Ok(url))) => web::redirect(&url),
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "cannot open a study in the viewer");
            ctx.error(&crate::viewer::VIEWER_UNAVAILABLE)
        }
        Ok(None) => ctx.error(&NOT_FOUND),
        Err(e) => ctx.unavailable(&e),
    }
}
