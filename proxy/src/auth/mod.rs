//! `/auth/*`: Pro Santé Connect login and callback, Hopital Manager single
//! sign-on, logout. Every outcome is audited and counted; every refusal ends
//! on a French page ([`LoginFailure`]) with no session and no account created.

pub mod check;
pub mod failure;
mod hm_flow;
pub mod hm_sso;
mod logout;
pub mod psc;
mod psc_flow;

use std::sync::Arc;

use http::{Method, StatusCode};

pub use check::SessionCheck;
pub use failure::{HmFailure, LoginFailure, PscFailure};

use crate::access::Access;
use crate::audit::{AuditEvent, Event, Outcome};
use crate::identity::Professional;
use crate::metrics::METRICS;
use crate::pages::{self, ErrorPage, Pages};
use crate::ratelimit::{Limiter, Verdict};
use crate::session::Sessions;
use crate::state::PortalDb;
use crate::web::{self, Cookies, Req, Resp, FLOW_COOKIE, SESSION_COOKIE};

/// The professional is in the policies' `revoked` group.
pub const REVOKED: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Accès suspendu",
    "Votre accès à l'espace professionnel de santé a été suspendu par l'établissement. Pour toute question, contactez le support de l'établissement.",
)
.with_reference("acces-suspendu");

/// Starts and refuses sessions: the `/auth/*` routes.
pub struct Login {
    pub check: Arc<SessionCheck>,
    pub sessions: Arc<Sessions>,
    pub cookies: Cookies,
    pub pages: Arc<Pages>,
    pub db: PortalDb,
    pub access: Arc<Access>,
    pub psc: Option<psc::PscClient>,
    pub hm_sso: Option<hm_sso::HmSso>,
    /// Login starts, callbacks and SSO launches per client address, in the
    /// shared session store.
    pub login_limit: Limiter,
    /// `scheme://host[:port]` of espace-ps, for the CSRF origin checks.
    pub public_origin: String,
    /// `[portal] support_contact`, for the login page's help.
    pub support_contact: Option<String>,
}

impl Login {
    pub async fn handle(&self, req: Req) -> Resp {
        let app = self;
        match (req.method.clone(), req.path.as_str()) {
            (Method::GET, "/auth/login") => psc_flow::login(app, &req).await,
            (Method::GET, "/auth/callback") => psc_flow::callback(app, &req).await,
            (Method::GET | Method::POST, "/auth/hm-sso") => hm_flow::hm_sso_launch(app, &req).await,
            (Method::GET, "/auth/hm-sso/confirm") => hm_flow::hm_sso_continue(app, &req).await,
            (Method::POST, "/auth/hm-sso/confirm") => hm_flow::hm_sso_confirm(app, &req).await,
            (Method::GET, "/auth/logout") => logout::logout_page(app, &req).await,
            (Method::POST, "/auth/logout") => logout::logout(app, &req).await,
            (Method::GET, "/auth/logged-out") => {
                app.pages
                    .render(StatusCode::OK, "logout", &logout::logout_view(None, None))
            }
            (
                _,
                "/auth/login"
                | "/auth/callback"
                | "/auth/logout"
                | "/auth/logged-out"
                | "/auth/hm-sso"
                | "/auth/hm-sso/confirm",
            ) => app.error(&pages::METHOD_NOT_ALLOWED),
            _ => app.error(&pages::NOT_FOUND),
        }
    }

    pub fn error(&self, page: &ErrorPage) -> Resp {
        self.pages.error(page, None)
    }

    /// Counts a login attempt from this address (one limit for the login
    /// endpoints, kept in the session store so that it holds across
    /// instances): the refusal when over it (429), or when the store fails (503).
    pub async fn over_login_limit(&self, req: &Req, endpoint: &'static str) -> Option<Resp> {
        match self
            .login_limit
            .hit_as(&req.client_ip.to_string(), endpoint)
            .await
        {
            Ok(Verdict::Allowed) => None,
            Ok(Verdict::Over) => Some(self.error(&pages::TOO_MANY)),
            Err(_) => Some(self.error(&pages::UNAVAILABLE)),
        }
    }

    async fn audit_best_effort(&self, e: AuditEvent) {
        if let Err(err) = self.db.audit(&e).await {
            tracing::error!(error = %err, event = e.event(), "audit write failed");
        }
    }

    /// Records a refused login (audit, metric) and answers its page.
    async fn refuse_login(&self, req: &Req, failure: impl Into<LoginFailure>) -> Resp {
        let failure = failure.into();
        let (event, method) = failure.event_and_method();
        let code = failure.code();
        METRICS
            .logins
            .with_label_values(&[method.as_str(), code])
            .inc();
        tracing::warn!(event = event.as_str(), reason = code, "login refused");
        self.audit_best_effort(
            AuditEvent::new(event, Outcome::Refused)
                .method(method)
                .client(req.client_ip)
                .request_id(&req.request_id)
                .detail(code),
        )
        .await;
        let mut resp = self.error(&failure.page());
        web::add_cookie(&mut resp, &self.cookies.clear(FLOW_COOKIE));
        resp
    }

    /// Account, audit and a new session for a verified professional; the
    /// response sends the browser on to `target`. Any failure refuses.
    async fn start_session(
        &self,
        req: &Req,
        professional: Professional,
        id_token: Option<String>,
        event: Event,
        target: &str,
    ) -> Resp {
        let method = professional.login_method.as_str();
        let metric_method = if event == Event::HmSso {
            "hm_sso"
        } else {
            "psc"
        };
        // Revoked by the establishment (policies' `revoked` group): no login.
        if self.access.in_revoked_group(&professional) {
            METRICS
                .logins
                .with_label_values(&[metric_method, "revoked"])
                .inc();
            tracing::warn!(event = event.as_str(), reason = "revoked", "login refused");
            self.audit_best_effort(
                AuditEvent::new(event, Outcome::Refused)
                    .by(&professional)
                    .client(req.client_ip)
                    .request_id(&req.request_id)
                    .detail("revoked"),
            )
            .await;
            let mut resp = self.error(&REVOKED);
            web::add_cookie(&mut resp, &self.cookies.clear(FLOW_COOKIE));
            return resp;
        }
        let account = match self.db.record_login(&professional).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "portal database unavailable at login");
                METRICS
                    .logins
                    .with_label_values(&[metric_method, "database"])
                    .inc();
                return self.error(&pages::UNAVAILABLE);
            }
        };
        let mut audit = AuditEvent::new(event, Outcome::Success)
            .by(&professional)
            .client(req.client_ip)
            .request_id(&req.request_id);
        if account.created {
            audit = audit.detail("account_created");
        }
        if let Err(e) = self.db.audit(&audit).await {
            // No audit record, no access.
            tracing::error!(error = %e, "audit write failed at login");
            return self.error(&pages::UNAVAILABLE);
        }
        // A new id at every login: an id set before login is never reused.
        if let Some(old) = req.cookie(&self.cookies.name(SESSION_COOKIE)) {
            let _ = self.sessions.destroy(&old).await;
        }
        match self
            .sessions
            .create(professional, account.account_id, id_token)
            .await
        {
            Ok((id, _)) => {
                METRICS
                    .logins
                    .with_label_values(&[metric_method, "success"])
                    .inc();
                tracing::info!(
                    event = event.as_str(),
                    method,
                    account = account.account_id,
                    "login"
                );
                let mut resp = web::redirect(target);
                web::add_cookie(&mut resp, &self.cookies.set(SESSION_COOKIE, &id, None));
                web::add_cookie(&mut resp, &self.cookies.clear(FLOW_COOKIE));
                resp
            }
            Err(e) => {
                METRICS.store_errors.with_label_values(&["create"]).inc();
                tracing::error!(error = %e, "session store failed at login");
                self.error(&pages::UNAVAILABLE)
            }
        }
    }
}
