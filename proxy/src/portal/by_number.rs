//! A dossier opened by its number and the patient's birth date
//! (`/portail/dossier`): the form, and the attempt, limited per account and
//! per number, audited whatever its outcome.

use http::StatusCode;

use super::views::DossierForm;
use super::{iso_date, Ctx};
use crate::access::AccessError;
use crate::audit::{Event, Outcome};
use crate::metrics::METRICS;
use crate::state::{AttemptLimits, Reservation};
use crate::web::{self, Resp};

pub fn dossier_form(ctx: Ctx<'_>, error: Option<&str>, status: StatusCode) -> Resp {
    let numero = ctx.req.form_param("numero").unwrap_or_default();
    let naissance = ctx.req.form_param("naissance").unwrap_or_default();
    let mut r = ctx.render(
        "dossier_form",
        "Accéder à un dossier",
        DossierForm {
            error,
            expired: false,
            numero,
            naissance,
        },
    );
    *r.status_mut() = status;
    r
}

/// The page of a dossier whose grant has expired: says so, and offers the
/// form again with the number filled in (the birth date is asked again).
pub fn grant_expired(ctx: Ctx<'_>, number: &str) -> Resp {
    let mut r = ctx.render(
        "dossier_form",
        "Accès expiré",
        DossierForm {
            error: Some(
                "Votre accès à ce dossier par son numéro a expiré. Saisissez de nouveau la date de naissance du patient pour y accéder.",
            ),
            expired: true,
            numero: number.to_owned(),
            naissance: String::new(),
        },
    );
    *r.status_mut() = StatusCode::FORBIDDEN;
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
    let refused = |detail: &'static str| {
        ctx.audit(Event::DossierNumberAccess, Outcome::Refused, numero)
            .detail(detail)
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
            ctx.audit_or_refuse(refused("locked")).await?;
            return Ok(Opened::Locked);
        }
        Reservation::NumberLocked { newly } => {
            if newly {
                METRICS.dossier_numbers_locked.inc();
                tracing::warn!("a dossier number ran out of its daily failure budget: locked");
                ctx.audit_or_refuse(
                    ctx.audit(Event::DossierNumberLocked, Outcome::Success, numero)
                        .detail("daily_budget"),
                )
                .await?;
            }
            METRICS
                .dossier_number_refusals
                .with_label_values(&["number_locked"])
                .inc();
            ctx.audit_or_refuse(refused("number_locked")).await?;
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
        ctx.audit_or_refuse(refused("no_match")).await?;
        return Ok(Opened::No);
    }
    // The audit row first: a grant that exists is always in the trail
    // (when the grant then fails, the trail holds one access too many and
    // the professional gets an error, never the reverse).
    ctx.audit_or_refuse(ctx.audit(Event::DossierNumberAccess, Outcome::Success, numero))
        .await?;
    ctx.app.db.dossier_attempt_succeeded(slot).await?;
    let expires = crate::state::now_ms() + i64::from(cfg.grant_days) * 86_400_000;
    ctx.app.db.grant_dossier(account, numero, expires).await?;
    METRICS.grants_opened.inc();
    ctx.app.viewer.grants_changed();
    Ok(Opened::Yes)
}
