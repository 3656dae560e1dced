//! Pro Santé Connect: the login page, the redirection to the provider and
//! the callback.

use http::StatusCode;

use super::failure::PscFailure;
use super::Login;
use crate::audit::Event;
use crate::metrics::METRICS;
use crate::pages;
use crate::views::{LoginPage, Page};
use crate::web::{self, Req, Resp, FLOW_COOKIE};

/// The login page; `start_href` when Pro Santé Connect is configured;
/// after a timeout (`?expiree=1`, `&action=1` for a form), it says so.
fn login_page<'a>(
    app: &'a Login,
    req: &Req,
    start_href: Option<&'a str>,
) -> Page<'a, LoginPage<'a>> {
    let expired = req.query_param("expiree").is_some();
    Page {
        title: if expired {
            "Votre session a expiré"
        } else {
            "Connexion"
        },
        user: None,
        refresh_to: None,
        body: LoginPage {
            psc: start_href.is_some(),
            expired,
            action_lost: expired && req.query_param("action").is_some(),
            support_contact: app.support_contact.as_deref(),
            start_href,
        },
    }
}

pub(super) async fn login(app: &Login, req: &Req) -> Resp {
    let return_to = req
        .query_param("return_to")
        .and_then(|r| web::safe_return_to(&r))
        .unwrap_or_else(|| "/".to_owned());
    match app.check.session_of(req).await {
        Ok(Some(_)) => return web::redirect(&return_to),
        Ok(None) => {}
        Err(_) => return app.error(&pages::UNAVAILABLE),
    }
    let Some(psc) = &app.psc else {
        return app
            .pages
            .render(StatusCode::OK, "login", &login_page(app, req, None));
    };
    if req.query_param("start").is_none() {
        let start_href = format!(
            "/auth/login?start=1&return_to={}",
            urlencoding::encode(&return_to)
        );
        return app.pages.render(
            StatusCode::OK,
            "login",
            &login_page(app, req, Some(&start_href)),
        );
    }
    if let Some(refusal) = app.over_login_limit(req, "login").await {
        return refusal;
    }
    let (url, flow) = match psc.begin(return_to).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a Pro Santé Connect login");
            return app.refuse_login(req, e.failure()).await;
        }
    };
    match app.sessions.put_flow(&flow).await {
        Ok(flow_id) => {
            let mut resp = web::redirect(url.as_str());
            web::add_cookie(
                &mut resp,
                &app.cookies.set(
                    FLOW_COOKIE,
                    &flow_id,
                    Some(crate::session::FLOW_TTL.as_secs()),
                ),
            );
            resp
        }
        Err(e) => {
            METRICS.store_errors.with_label_values(&["flow"]).inc();
            tracing::error!(error = %e, "session store failed at login start");
            app.error(&pages::UNAVAILABLE)
        }
    }
}

pub(super) async fn callback(app: &Login, req: &Req) -> Resp {
    let refuse = |f: PscFailure| app.refuse_login(req, f);
    let Some(psc) = &app.psc else {
        return refuse(PscFailure::NotConfigured).await;
    };
    if let Some(refusal) = app.over_login_limit(req, "callback").await {
        return refusal;
    }
    // The pending login is taken (used once) whatever happens next.
    let flow = match req.cookie(&app.cookies.name(FLOW_COOKIE)) {
        Some(id) => match app.sessions.take_flow(&id).await {
            Ok(f) => f,
            Err(_) => return app.error(&pages::UNAVAILABLE),
        },
        None => None,
    };
    let Some(flow) = flow else {
        return refuse(PscFailure::FlowMissing).await;
    };
    let state = req.query_param("state").unwrap_or_default();
    let state_ok: bool =
        subtle::ConstantTimeEq::ct_eq(state.as_bytes(), flow.state.as_bytes()).into();
    if state.is_empty() || !state_ok {
        return refuse(PscFailure::StateMismatch).await;
    }
    if req.query_param("error").is_some() {
        return refuse(PscFailure::ProviderError).await;
    }
    let Some(code) = req.query_param("code").filter(|c| !c.is_empty()) else {
        return refuse(PscFailure::MissingCode).await;
    };
    match psc.complete(&flow, &code).await {
        Ok(login) => {
            app.start_session(
                req,
                login.professional,
                Some(login.id_token),
                Event::Login,
                &flow.return_to,
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "Pro Santé Connect login refused");
            refuse(e.failure()).await
        }
    }
}
