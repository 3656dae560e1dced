//! Patient search by name: `GET /portail/recherche` (the page) and
//! `GET /api/portail/patients?q=` (the page's script).

use espace_ps_access::{Action, DossierRoles, Resource, Via};
use http::StatusCode;

use super::views::{PatientHit, PatientView, SearchAnswer, SearchPage};
use super::{recent_of, Ctx};
use crate::access::AccessError;
use crate::audit::{AuditEvent, Event, Outcome};
use crate::session::RecentPatient;
use crate::views::ApiError;
use crate::web::{self, Resp};

/// The patients matching `q` that the engine lets this professional find,
/// and whether there were more than shown.
async fn search(ctx: &Ctx<'_>, q: &str) -> Result<(Vec<RecentPatient>, bool), AccessError> {
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
    let mut found: Vec<RecentPatient> = hits
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
        .map(|h| recent_of(&h.patient))
        .collect();
    let truncated = found.len() > limit || raw_overflow;
    found.truncate(limit);
    // Who searched, how many were listed; the typed text only as a keyed hash.
    let e = AuditEvent::new(Event::PatientSearch, Outcome::Success).searched(q, found.len());
    ctx.audit_or_refuse(
        e.by(&ctx.session.professional)
            .client(ctx.req.client_ip)
            .request_id(&ctx.req.request_id),
    )
    .await?;
    Ok((found, truncated))
}

pub async fn search_api(ctx: Ctx<'_>) -> Resp {
    let q = ctx.req.query_param("q").unwrap_or_default();
    match search(&ctx, &q).await {
        Ok((patients, truncated)) => web::json(
            StatusCode::OK,
            &SearchAnswer {
                patients: patients.into_iter().map(PatientHit::of).collect(),
                truncated,
            },
        ),
        Err(e) => {
            tracing::error!(error = %e, "search failed");
            web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &ApiError {
                    error: "dossiers momentanément inaccessibles",
                },
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
    let patients: Vec<PatientView> = patients.iter().map(PatientView::of).collect();
    ctx.render(
        "search",
        "Rechercher un patient",
        SearchPage {
            q,
            too_short,
            none: !too_short && patients.is_empty(),
            patients,
            truncated,
        },
    )
}
