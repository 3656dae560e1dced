//! Logout: the confirmation page, the end of the session (in the store
//! alone), the trail, and Pro Santé Connect's own logout.

use http::StatusCode;

use super::Login;
use crate::audit::{AuditEvent, Event, Outcome};
use crate::pages;
use crate::views::{LogoutPage, Page, UserView};
use crate::web::{self, Req, Resp, SESSION_COOKIE};

/// The logout pages: the confirmation (with the user), the hop on to Pro
/// Santé Connect's logout (`continue_to`, also followed at once), and the
/// signed-out page (neither).
pub(super) fn logout_view<'a>(
    user: Option<&'a UserView>,
    continue_to: Option<&'a str>,
) -> Page<'a, LogoutPage<'a>> {
    Page {
        title: "Déconnexion",
        user,
        refresh_to: continue_to,
        body: LogoutPage {
            continue_href: continue_to,
        },
    }
}

pub(super) async fn logout_page(app: &Login, req: &Req) -> Resp {
    match app.check.stored_session(req).await {
        Ok(Some((_, data))) => {
            let user = app.check.user_view(&data);
            app.pages
                .render(StatusCode::OK, "logout", &logout_view(Some(&user), None))
        }
        Ok(None) => web::redirect("/auth/logged-out"),
        Err(_) => app.error(&pages::UNAVAILABLE),
    }
}

pub(super) async fn logout(app: &Login, req: &Req) -> Resp {
    // The store alone: a logout ends the session even while the portal
    // database (revocations) is down.
    let (id, data) = match app.check.stored_session(req).await {
        Ok(Some((id, data))) => (id, data),
        Ok(None) => {
            let mut resp = web::redirect("/auth/logged-out");
            web::add_cookie(&mut resp, &app.cookies.clear(SESSION_COOKIE));
            return resp;
        }
        Err(_) => return app.error(&pages::UNAVAILABLE),
    };
    if !web::csrf_ok(req, &data.csrf_token, &app.public_origin) {
        return app
            .pages
            .error(&pages::FORBIDDEN_CSRF, Some(&app.check.user_view(&data)));
    }
    if let Err(e) = app.sessions.destroy(&id).await {
        tracing::error!(error = %e, "session store failed at logout");
        return app.error(&pages::UNAVAILABLE);
    }
    let p = &data.professional;
    app.audit_best_effort(
        AuditEvent::new(Event::Logout, Outcome::Success)
            .by(p)
            .client(req.client_ip)
            .request_id(&req.request_id),
    )
    .await;
    // PSC's end-session is on another origin: a form may not redirect
    // there under our CSP (form-action 'self'), so a page sends the browser on.
    let psc_logout = match (&app.psc, data.id_token.as_deref()) {
        (Some(psc), Some(id_token)) => {
            let state = crate::session::new_token();
            psc.logout_url(Some(id_token), &state).await
        }
        _ => None,
    };
    let mut resp = match psc_logout {
        Some(url) => app.pages.render(
            StatusCode::OK,
            "logout",
            &logout_view(None, Some(url.as_str())),
        ),
        None => web::redirect("/auth/logged-out"),
    };
    web::add_cookie(&mut resp, &app.cookies.clear(SESSION_COOKIE));
    // Tell the browser to drop what the portal stored (recent searches, caches).
    resp.headers_mut().insert(
        "clear-site-data",
        http::HeaderValue::from_static("\"cache\", \"storage\""),
    );
    resp
}
