//! Hopital Manager single sign-on: the launch (a signed JWT), the
//! same-browser check and the confirmation page.

use http::{Method, StatusCode};

use super::failure::HmFailure;
use super::hm_sso::PendingLaunch;
use super::Login;
use crate::audit::Event;
use crate::metrics::METRICS;
use crate::pages;
use crate::views::{HmSsoConfirmPage, LaunchFor, Page, SignedIn};
use crate::web::{self, Req, Resp};

/// Why a parked launch cannot be used.
enum Pending {
    /// The session store failed: 503.
    StoreFailed,
    Refused(HmFailure),
}

/// The browser-binding cookie of pending Hopital Manager launches.
const HM_LAUNCH_COOKIE: &str = "espace-hm-sso";
/// The store kind of pending launches.
const HM_PENDING: &str = "hm-launch";
/// How long a verified launch waits for its browser (and its confirmation).
const HM_PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// `/auth/hm-sso`: verifies the token and uses up its `jti`, whatever comes
/// next; then parks the launch and sends the browser to
/// `/auth/hm-sso/confirm`. Nobody is signed in here: a cross-site form can
/// reach this route (login CSRF), and on a cross-site POST the browser does
/// not send the session cookie (SameSite=Lax), so whether another
/// professional is signed in can only be seen on the same-origin GET that
/// follows.
pub(super) async fn hm_sso_launch(app: &Login, req: &Req) -> Resp {
    let refuse = |f: HmFailure| app.refuse_login(req, f);
    let Some(hm) = &app.hm_sso else {
        return refuse(HmFailure::NotConfigured).await;
    };
    if let Some(refusal) = app.over_login_limit(req, "hm_sso").await {
        return refusal;
    }
    let token = if req.method == Method::POST {
        req.form_param("token").or_else(|| req.form_param("jwt"))
    } else {
        req.query_param("token").or_else(|| req.query_param("jwt"))
    };
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() < 16 * 1024) else {
        return refuse(HmFailure::MissingToken).await;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let launch = match hm.verify(&token, now).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "Hopital Manager SSO refused");
            return refuse(e.failure()).await;
        }
    };
    match app
        .sessions
        .claim_once("hm-jti", &launch.jti, launch.jti_ttl)
        .await
    {
        Ok(true) => {}
        Ok(false) => return refuse(HmFailure::Replayed).await,
        Err(_) => return app.error(&pages::UNAVAILABLE),
    }
    // Straight through only for a POST that Hopital Manager's own page made.
    let direct = req.method == Method::POST
        && req.header("origin").is_some_and(|o| {
            hm.config()
                .allowed_origins
                .iter()
                .any(|allowed| allowed == o)
        });
    // One binding value per browser, so that two launches in two tabs both work.
    let cookie_name = app.cookies.name(HM_LAUNCH_COOKIE);
    let browser = req
        .cookie(&cookie_name)
        .filter(|c| c.len() == 43)
        .unwrap_or_else(crate::session::new_token);
    let pending = PendingLaunch {
        professional: launch.professional,
        target: launch.target,
        browser: crate::session::digest(&browser),
        csrf_token: crate::session::new_token(),
        direct,
    };
    let id = match app
        .sessions
        .park(HM_PENDING, &pending, HM_PENDING_TTL)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            METRICS.store_errors.with_label_values(&["hm_launch"]).inc();
            tracing::error!(error = %e, "session store failed at Hopital Manager launch");
            return app.error(&pages::UNAVAILABLE);
        }
    };
    tracing::info!(
        direct,
        "Hopital Manager launch verified, waiting for its browser"
    );
    let mut resp = web::redirect(&format!("/auth/hm-sso/confirm?launch={id}"));
    web::add_cookie(
        &mut resp,
        &app.cookies
            .set(HM_LAUNCH_COOKIE, &browser, Some(HM_PENDING_TTL.as_secs())),
    );
    resp
}

/// The parked launch `id` when this browser started it.
async fn hm_pending_of(
    app: &Login,
    req: &Req,
    id: &str,
    take: bool,
) -> Result<PendingLaunch, Pending> {
    let found = if take {
        app.sessions.take_parked(HM_PENDING, id).await
    } else {
        app.sessions.peek_parked(HM_PENDING, id).await
    };
    let pending: PendingLaunch = match found {
        Ok(Some(p)) => p,
        Ok(None) => return Err(Pending::Refused(HmFailure::LaunchExpired)),
        Err(e) => {
            METRICS.store_errors.with_label_values(&["hm_launch"]).inc();
            tracing::error!(error = %e, "session store failed at Hopital Manager launch");
            return Err(Pending::StoreFailed);
        }
    };
    let browser = req
        .cookie(&app.cookies.name(HM_LAUNCH_COOKIE))
        .map(|c| crate::session::digest(&c))
        .unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        browser.as_bytes(),
        pending.browser.as_bytes(),
    )) {
        return Err(Pending::Refused(HmFailure::LaunchOtherBrowser));
    }
    Ok(pending)
}

/// `GET /auth/hm-sso/confirm?launch=…`: a same-site navigation, so the
/// session cookie is here if there is one. Goes on without a page only for
/// a launch from an allowed origin with nobody else signed in, or when the
/// launch names the professional already signed in (the session is kept).
/// Otherwise the page names who the token is for, and who is signed in.
pub(super) async fn hm_sso_continue(app: &Login, req: &Req) -> Resp {
    let refuse = |f: HmFailure| app.refuse_login(req, f);
    if app.hm_sso.is_none() {
        return refuse(HmFailure::NotConfigured).await;
    }
    let id = req.query_param("launch").unwrap_or_default();
    let pending = match hm_pending_of(app, req, &id, false).await {
        Ok(p) => p,
        Err(Pending::StoreFailed) => return app.error(&pages::UNAVAILABLE),
        Err(Pending::Refused(f)) => return refuse(f).await,
    };
    let current = match app.check.session_of(req).await {
        Ok(c) => c,
        Err(_) => return app.error(&pages::UNAVAILABLE),
    };
    let same = current
        .as_ref()
        .map(|(_, data)| data.professional.national_id == pending.professional.national_id);
    if same == Some(true) || (same.is_none() && pending.direct) {
        // Used up now: a second visit of this URL finds nothing.
        let pending = match hm_pending_of(app, req, &id, true).await {
            Ok(p) => p,
            Err(Pending::StoreFailed) => return app.error(&pages::UNAVAILABLE),
            Err(Pending::Refused(f)) => return refuse(f).await,
        };
        if same == Some(true) {
            tracing::info!("Hopital Manager launch for the professional already signed in");
            return web::redirect(&pending.target);
        }
        return app
            .start_session(
                req,
                pending.professional,
                None,
                Event::HmSso,
                &pending.target,
            )
            .await;
    }
    let label = pending.label();
    let user = current.as_ref().map(|(_, data)| app.check.user_view(data));
    let current_name = current
        .as_ref()
        .map(|(_, data)| data.professional.display_name());
    let current_view = current
        .as_ref()
        .zip(current_name.as_deref())
        .map(|((_, data), name)| SignedIn {
            name,
            national_id: data.professional.national_id.as_str(),
        });
    app.pages.render(
        StatusCode::OK,
        "hm_sso_confirm",
        &Page {
            title: "Connexion depuis Hopital Manager",
            user: user.as_ref(),
            refresh_to: None,
            body: HmSsoConfirmPage {
                who: LaunchFor {
                    label: &label,
                    national_id: pending.professional.national_id.as_str(),
                },
                current: current_view,
                launch: &id,
                csrf_token: &pending.csrf_token,
            },
        },
    )
}

/// `POST /auth/hm-sso/confirm`: the button of the confirmation page. The
/// launch is used up whatever happens; it must come from this browser,
/// from our origin, with the page's CSRF value. The user has seen who is
/// signed in (if anyone): that session is replaced.
pub(super) async fn hm_sso_confirm(app: &Login, req: &Req) -> Resp {
    let refuse = |f: HmFailure| app.refuse_login(req, f);
    if app.hm_sso.is_none() {
        return refuse(HmFailure::NotConfigured).await;
    }
    if let Some(refusal) = app.over_login_limit(req, "hm_sso").await {
        return refusal;
    }
    let id = req.form_param("launch").unwrap_or_default();
    let pending = match hm_pending_of(app, req, &id, true).await {
        Ok(p) => p,
        Err(Pending::StoreFailed) => return app.error(&pages::UNAVAILABLE),
        Err(Pending::Refused(f)) => return refuse(f).await,
    };
    if !web::csrf_ok(req, &pending.csrf_token, &app.public_origin) {
        return refuse(HmFailure::LaunchCsrf).await;
    }
    app.start_session(
        req,
        pending.professional,
        None,
        Event::HmSso,
        &pending.target,
    )
    .await
}
