//! Who is asking: the session a request's cookie names, checked against
//! the revocations, and the answer when there is none (the login page for
//! a browser, 401 for an API call).

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::access::Access;
use crate::audit::{AuditEvent, Event, Outcome};
use crate::metrics::METRICS;
use crate::pages::{ErrorPage, Pages};
use crate::revocation::Revocations;
use crate::session::{SessionData, Sessions, StoreError};
use crate::state::PortalDb;
use crate::views::{ApiError, UserView};
use crate::web::{self, Cookies, Req, Resp, SESSION_COOKIE};

pub struct SessionCheck {
    pub sessions: Arc<Sessions>,
    pub cookies: Cookies,
    pub pages: Arc<Pages>,
    pub db: PortalDb,
    pub access: Arc<Access>,
    pub revocations: Revocations,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

impl SessionCheck {
    /// The session a request's cookie names, as the session store has it,
    /// WITHOUT the revocation checks of [`SessionCheck::session_of`]: for
    /// logout only, which must end a session even while the portal
    /// database (the revocation list) is down.
    pub async fn stored_session(
        &self,
        req: &Req,
    ) -> Result<Option<(String, SessionData)>, StoreError> {
        let Some(id) = req.cookie(&self.cookies.name(SESSION_COOKIE)) else {
            return Ok(None);
        };
        let id_digest = crate::session::digest(&id);
        let found = self.load_counted(&id, &id_digest).await?;
        Ok(found.map(|data| (id, Arc::unwrap_or_clone(data))))
    }

    /// The session store's answer; a failure is counted and logged.
    async fn load_counted(
        &self,
        id: &str,
        id_digest: &str,
    ) -> Result<Option<Arc<SessionData>>, StoreError> {
        let loaded = self.sessions.load_digested(id, id_digest).await;
        if let Err(e) = &loaded {
            METRICS.store_errors.with_label_values(&["load"]).inc();
            tracing::error!(error = %e, "session store failed");
        }
        loaded
    }

    /// The session of a request, if any. A store failure is an error: the
    /// caller refuses the request.
    pub async fn session_of(&self, req: &Req) -> Result<Option<(String, SessionData)>, StoreError> {
        let Some(id) = req.cookie(&self.cookies.name(SESSION_COOKIE)) else {
            return Ok(None);
        };
        let id_digest = crate::session::digest(&id);
        let data = self
            .checked_session(&id, &id_digest, req.client_ip, &req.request_id)
            .await?;
        Ok(data.map(|data| (id, Arc::unwrap_or_clone(data))))
    }

    /// The session of this id (the session cookie's value, and its
    /// [`crate::session::digest`]), checked as [`SessionCheck::session_of`]
    /// checks it: for the viewer path, which reads the cookie from Pingora's
    /// request header without building a [`Req`].
    pub async fn checked_session(
        &self,
        id: &str,
        id_digest: &str,
        client_ip: std::net::IpAddr,
        request_id: &str,
    ) -> Result<Option<Arc<SessionData>>, StoreError> {
        let Some(data) = self.load_counted(id, id_digest).await? else {
            return Ok(None);
        };
        // A revoked professional: the session ends here, on every instance.
        let revoked = match self
            .revocations
            .is_revoked(
                &self.db,
                data.professional.national_id.as_str(),
                data.created_at,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                METRICS
                    .store_errors
                    .with_label_values(&["revocations"])
                    .inc();
                tracing::error!(error = %e, "revocation list unreadable: session refused");
                return Err(StoreError::Unreachable(e.to_string()));
            }
        };
        let reason = if revoked {
            Some("sessions_revoked")
        } else if self.access.in_revoked_group(&data.professional) {
            Some("revoked_group")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.sessions.destroy(id).await?;
            tracing::warn!(reason, "session of a revoked professional ended");
            if let Err(e) = self
                .db
                .audit(
                    &AuditEvent::new(Event::SessionRevoked, Outcome::Success)
                        .by(&data.professional)
                        .client(client_ip)
                        .request_id(request_id)
                        .detail(reason),
                )
                .await
            {
                tracing::error!(error = %e, "audit write failed");
            }
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// A browser navigating gets the login page (and comes back after);
    /// an API call gets 401.
    ///
    /// When the request still carries a session cookie, its session has
    /// ended without a logout (idle or absolute timeout, revocation): the
    /// answer also clears the cookie and tells the browser to drop what the
    /// portal stored ("Mes dernières recherches", caches), as logout does,
    /// whatever page the browser ends up on and with or without scripts.
    pub fn login_required(&self, req: &Req) -> Resp {
        let ended = req.cookie(&self.cookies.name(SESSION_COOKIE)).is_some();
        let page_request = req
            .header("accept")
            .is_some_and(|a| a.contains("text/html"))
            || req
                .header("sec-fetch-mode")
                .is_some_and(|m| m.eq_ignore_ascii_case("navigate"));
        let get = req.method == Method::GET || req.method == Method::HEAD;
        let mut resp = if page_request && (get || ended) {
            // A page: never JSON. A form sent after the session ended comes
            // back, after login, to the page it was sent from (the
            // same-origin Referer), where it is offered again: the login
            // page says the action was not done, nothing is lost silently.
            let back = if get {
                web::safe_return_to(&req.path_and_query())
            } else {
                referer_path(req).and_then(|p| web::safe_return_to(&p))
            }
            .unwrap_or_else(|| "/".into());
            let mut to = format!("/auth/login?return_to={}", urlencoding::encode(&back));
            if ended {
                to.push_str(if get {
                    "&expiree=1"
                } else {
                    "&expiree=1&action=1"
                });
            }
            web::redirect(&to)
        } else {
            web::json(
                StatusCode::UNAUTHORIZED,
                &ApiError {
                    error: "authentification requise",
                },
            )
        };
        if req.cookie(&self.cookies.name(SESSION_COOKIE)).is_some() {
            web::add_cookie(&mut resp, &self.cookies.clear(SESSION_COOKIE));
            resp.headers_mut().insert(
                "clear-site-data",
                http::HeaderValue::from_static("\"cache\", \"storage\""),
            );
        }
        resp
    }

    /// Milliseconds the session of `data` has left (the keep-alive answer).
    pub fn remaining_ms(&self, data: &SessionData) -> i64 {
        self.session_remaining_ms(data)
    }

    /// The user block every page shows.
    pub fn user_view(&self, data: &SessionData) -> UserView {
        let p = &data.professional;
        UserView {
            name: p.display_name(),
            national_id: p.national_id.as_str().to_owned(),
            rpps: p.rpps.clone(),
            login_method: match p.login_method {
                crate::identity::LoginMethod::PscCard => "Pro Santé Connect, carte CPS",
                crate::identity::LoginMethod::PscApp => "Pro Santé Connect, application e-CPS",
                crate::identity::LoginMethod::HmSso => "Hopital Manager",
            },
            csrf_token: data.csrf_token.clone(),
            session_remaining_ms: self.session_remaining_ms(data),
        }
    }

    /// Milliseconds until the session ends by idle or absolute timeout if
    /// no request comes (what `Sessions::load` will decide).
    fn session_remaining_ms(&self, data: &SessionData) -> i64 {
        let now = crate::clock::now_secs();
        let idle_end = data.last_seen + self.idle_timeout.as_secs() as i64;
        let absolute_end = data.created_at + self.absolute_timeout.as_secs() as i64;
        (idle_end.min(absolute_end) - now).max(0) * 1000
    }

    pub fn error(&self, page: &ErrorPage) -> Resp {
        self.pages.error(page, None)
    }
}

/// The path (and query) of a same-origin Referer: the page a form was sent
/// from. Only when the browser says the request is same-origin
/// (`Sec-Fetch-Site`); anything else gives None (home).
fn referer_path(req: &Req) -> Option<String> {
    let same = req
        .header("sec-fetch-site")
        .is_some_and(|v| v.eq_ignore_ascii_case("same-origin"));
    if !same {
        return None;
    }
    let u = url::Url::parse(req.header("referer")?).ok()?;
    let mut p = u.path().to_owned();
    if let Some(q) = u.query() {
        p.push('?');
        p.push_str(q);
    }
    Some(p)
}
