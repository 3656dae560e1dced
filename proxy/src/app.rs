//! The application state shared by every request, and the routing of the
//! requests espace-ps answers itself. The Pingora layer (`server`) only
//! sequences: it asks [`App::route_class`], then either hands a local request
//! to [`App::handle_local`] or checks the session with [`App::viewer_session`]
//! before forwarding to the viewer.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::audit::{AuditEvent, Event, Outcome};
use crate::auth::hm_sso::HmSso;
use crate::auth::psc::PscClient;
use crate::config::{Config, LookupLimits, SessionStoreConfig};
use crate::metrics::METRICS;
use crate::pages::{self, ErrorPage, Pages};
use crate::ratelimit::{Limiter, Verdict};
use crate::session::{KvStore, MemoryStore, RedisStore, SessionData, Sessions, StoreError};
use crate::state::PortalDb;
use crate::web::{self, Cookies, Req, Resp, SESSION_COOKIE};

/// Reloads the viewer's route table; a table that does not load leaves the
/// previous one in force.
pub fn reload_route_table(viewer: &crate::viewer::ViewerGuard, dir: &std::path::Path, name: &str) {
    match crate::viewer::load_table(dir, name) {
        Ok(Some(t)) => viewer.set_table(Some(t)),
        Ok(None) => tracing::error!(name, "route table gone: the previous one stays in force"),
        Err(e) => {
            tracing::error!(problems = %e, "route table refused: the previous one stays in force")
        }
    }
}

/// Counts and logs the outcome of a policy reload (file change or SIGHUP).
pub fn record_reload(outcome: espace_ps_access::ReloadOutcome) {
    use espace_ps_access::ReloadOutcome;
    match &outcome {
        ReloadOutcome::Reloaded {
            generation,
            policies,
            tests_passed,
        } => {
            METRICS.policy_reloads.with_label_values(&["applied"]).inc();
            METRICS.policy_reload_failing.set(0);
            tracing::info!(generation, policies, tests_passed, "policies reloaded");
        }
        ReloadOutcome::Unchanged { .. } => {}
        ReloadOutcome::Rejected {
            generation,
            problems,
        } => {
            METRICS.policy_reloads.with_label_values(&["refused"]).inc();
            METRICS.policy_reload_failing.set(1);
            for p in problems {
                tracing::error!(problem = %p, "policy reload refused");
            }
            tracing::error!(
                generation,
                "policy reload refused: the previous set stays in force"
            );
        }
    }
}

/// Which part of espace-ps answers a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `/auth/*`: login, callback, SSO, logout.
    Auth,
    /// `/-/healthz`, `/-/readyz`.
    Health,
    /// `/static/*` from the allowlist.
    Static,
    /// Portal pages and JSON.
    Portal,
    /// Everything else: the viewer upstream, with a session.
    Viewer,
}

impl RouteClass {
    pub fn of(path: &str) -> RouteClass {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/auth") {
            RouteClass::Auth
        } else if under("/-") {
            RouteClass::Health
        } else if under("/static") || path == "/manifest.webmanifest" || path == "/sw.js" {
            RouteClass::Static
        } else if path == "/" || under("/portail") || under("/api/portail") {
            RouteClass::Portal
        } else {
            RouteClass::Viewer
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Health => "health",
            RouteClass::Static => "static",
            RouteClass::Portal => "portal",
            RouteClass::Viewer => "viewer",
        }
    }
}

/// The per-account and per-address limits on dossier lookups (see
/// [`crate::config::LookupLimits`]).
pub struct LookupLimiters {
    pub submit_by_account: Limiter,
    pub submit_by_address: Limiter,
    pub views_by_account: Limiter,
    pub views_by_address: Limiter,
}

impl LookupLimiters {
    fn new(store: &Arc<dyn KvStore>, prefix: &str, l: &LookupLimits) -> LookupLimiters {
        let m = |name, limit| Limiter::per_minute(store.clone(), prefix, name, limit);
        LookupLimiters {
            submit_by_account: m("dossier_submit_account", l.dossier_submit_per_account),
            submit_by_address: m("dossier_submit_address", l.dossier_submit_per_address),
            views_by_account: m("record_view_account", l.record_views_per_account),
            views_by_address: m("record_view_address", l.record_views_per_address),
        }
    }
}

pub struct App {
    pub config: Config,
    pub pages: Pages,
    pub cookies: Cookies,
    pub sessions: Sessions,
    pub db: PortalDb,
    pub psc: Option<PscClient>,
    pub hm_sso: Option<HmSso>,
    /// Login starts, callbacks and SSO launches per client address, in the
    /// shared session store.
    pub login_limit: Limiter,
    /// Rate limits on dossier lookups, in the shared session store.
    pub lookup_limits: LookupLimiters,
    /// The viewer's route table and the caches of viewer decisions.
    pub viewer: Arc<crate::viewer::ViewerGuard>,
    /// For espace-ps's own calls to the viewer (never the browser's).
    pub viewer_http: reqwest::Client,
    /// The hospital records, read-only (None: not configured).
    pub records: Option<espace_ps_records::Records>,
    /// The access policies: one engine answers every access question.
    pub policies: espace_ps_access::Engine,
    /// Reloads the policies when their files change (kept alive here).
    _policy_watcher: Option<espace_ps_access::PolicyWatcher>,
    /// Professionals whose sessions were revoked (`espace-ps sessions revoke`).
    pub revocations: crate::revocation::Revocations,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Pages(#[from] pages::PagesError),
    #[error(transparent)]
    Db(#[from] crate::state::DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Psc(#[from] crate::auth::psc::PscError),
    #[error(transparent)]
    HmSso(#[from] crate::auth::hm_sso::HmSsoError),
    #[error(transparent)]
    Policies(#[from] espace_ps_access::LoadError),
    #[error(transparent)]
    Records(#[from] espace_ps_records::RecordsError),
    #[error("viewer client: {0}")]
    Viewer(String),
    #[error("viewer route table: {0}")]
    RouteTable(String),
}

impl App {
    pub async fn build(config: Config) -> Result<Arc<App>, AppError> {
        let pages = Pages::new(config.pages_dir.as_deref())?;
        let store: Arc<dyn KvStore> = match &config.sessions.store {
            SessionStoreConfig::Memory => Arc::new(MemoryStore::default()),
            SessionStoreConfig::Redis { url } => Arc::new(RedisStore::new(url)?),
        };
        let lookup_limits =
            LookupLimiters::new(&store, &config.sessions.key_prefix, &config.lookup_limits);
        let login_limit = Limiter::per_minute(
            store.clone(),
            &config.sessions.key_prefix,
            "login",
            config.login_rate_per_minute.max(1) as u64,
        );
        let sessions = Sessions::new(
            store,
            &config.sessions.key_prefix,
            config.sessions.idle_timeout,
            config.sessions.absolute_timeout,
        );
        let db = PortalDb::connect(&config.database_url, config.database_max_connections).await?;
        let psc = config.psc.clone().map(PscClient::new).transpose()?;
        let hm_sso = config.hm_sso.clone().map(HmSso::new).transpose()?;
        let records = match &config.records_url {
            Some(url) => {
                let records =
                    espace_ps_records::Records::connect_with(url, config.records_max_connections)
                        .await?;
                records.check_search_index().await?;
                Some(records)
            }
            None => None,
        };
        let policies = espace_ps_access::Engine::load(&config.policies_dir)?;
        let table = crate::viewer::load_table(&config.policies_dir, &config.upstream.viewer)
            .map_err(AppError::RouteTable)?
            .ok_or_else(|| {
                AppError::RouteTable(format!(
                    "no route table named {:?} in {}/viewers",
                    config.upstream.viewer,
                    config.policies_dir.display()
                ))
            })?;
        let viewer = Arc::new(crate::viewer::ViewerGuard::new(Some(table)));
        let on_reload = {
            let viewer = viewer.clone();
            let dir = config.policies_dir.clone();
            let name = config.upstream.viewer.clone();
            move |outcome: espace_ps_access::ReloadOutcome| {
                if matches!(outcome, espace_ps_access::ReloadOutcome::Reloaded { .. }) {
                    reload_route_table(&viewer, &dir, &name);
                }
                record_reload(outcome);
            }
        };
        let watcher = match policies.watch(Duration::from_millis(300), on_reload) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "policy files are not watched; reload with SIGHUP");
                None
            }
        };
        let viewer_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AppError::Viewer(e.to_string()))?;
        Ok(Arc::new(App {
            viewer,
            viewer_http,
            records,
            policies,
            _policy_watcher: watcher,
            cookies: Cookies::new(&config.server),
            pages,
            sessions,
            db,
            psc,
            hm_sso,
            revocations: crate::revocation::Revocations::new(config.sessions.absolute_timeout),
            login_limit,
            lookup_limits,
            config,
        }))
    }

    /// The session a request's cookie names, as the session store has it,
    /// WITHOUT the revocation checks of [`App::session_of`]: for logout
    /// only, which must end a session even while the portal database (the
    /// revocation list) is down.
    pub async fn stored_session(
        &self,
        req: &Req,
    ) -> Result<Option<(String, SessionData)>, StoreError> {
        let Some(id) = req.cookie(&self.cookies.name(SESSION_COOKIE)) else {
            return Ok(None);
        };
        match self.sessions.load(&id).await {
            Ok(found) => Ok(found.map(|data| (id, data))),
            Err(e) => {
                METRICS.store_errors.with_label_values(&["load"]).inc();
                tracing::error!(error = %e, "session store failed");
                Err(e)
            }
        }
    }

    /// The session of a request, if any. A store failure is an error: the
    /// caller refuses the request.
    pub async fn session_of(&self, req: &Req) -> Result<Option<(String, SessionData)>, StoreError> {
        let Some((id, data)) = self.stored_session(req).await? else {
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
        } else if self.in_revoked_group(&data.professional) {
            Some("revoked_group")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.sessions.destroy(&id).await?;
            tracing::warn!(reason, "session of a revoked professional ended");
            if let Err(e) = self
                .db
                .audit(
                    &AuditEvent::new(Event::SessionRevoked, Outcome::Success)
                        .by(&data.professional)
                        .client(req.client_ip)
                        .detail(reason),
                )
                .await
            {
                tracing::error!(error = %e, "audit write failed");
            }
            return Ok(None);
        }
        Ok(Some((id, data)))
    }

    /// Whether the policies' `revoked` group lists this professional.
    pub fn in_revoked_group(&self, p: &crate::identity::Professional) -> bool {
        self.policies
            .snapshot()
            .groups_of(&crate::access::professional(p))
            .contains(&crate::revocation::REVOKED_GROUP)
    }

    /// The user block every page shows.
    pub fn user_view(&self, data: &SessionData) -> crate::views::UserView {
        let p = &data.professional;
        crate::views::UserView {
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
        let idle_end = data.last_seen + self.config.sessions.idle_timeout.as_secs() as i64;
        let absolute_end = data.created_at + self.config.sessions.absolute_timeout.as_secs() as i64;
        (idle_end.min(absolute_end) - now).max(0) * 1000
    }

    pub fn error(&self, page: &ErrorPage) -> Resp {
        self.pages.error(page, None)
    }

    /// Answers one of espace-ps's own routes.
    pub async fn handle_local(&self, req: Req) -> Resp {
        match RouteClass::of(&req.path) {
            RouteClass::Auth => crate::auth::handle(self, req).await,
            RouteClass::Health => self.health(&req).await,
            RouteClass::Static => match (req.method == Method::GET || req.method == Method::HEAD)
                .then(|| pages::asset(&req.path))
                .flatten()
            {
                Some(a) => {
                    let mut r = http::Response::new(bytes::Bytes::from_static(a.body));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(a.content_type),
                    );
                    web::security_headers(
                        r.headers_mut(),
                        if a.revalidate {
                            web::Cache::Revalidate
                        } else {
                            web::Cache::Public
                        },
                    );
                    r
                }
                None => self.error(&pages::NOT_FOUND),
            },
            RouteClass::Portal => crate::portal::handle(self, req).await,
            RouteClass::Viewer => self.error(&pages::NOT_FOUND),
        }
    }

    async fn health(&self, req: &Req) -> Resp {
        match req.path.as_str() {
            "/-/healthz" => web::text(StatusCode::OK, "ok\n"),
            "/-/readyz" => {
                let store = self.sessions.ping().await;
                let db = self.db.ping().await;
                let records_ok = match &self.records {
                    Some(r) => r.ping().await.is_ok(),
                    None => true,
                };
                match (store, db) {
                    (Ok(()), Ok(())) if !records_ok => web::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: records database unreachable\n",
                    ),
                    (Ok(()), Ok(())) => web::text(StatusCode::OK, "ready\n"),
                    (Err(_), _) => web::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: session store unreachable\n",
                    ),
                    (_, Err(_)) => web::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: portal database unreachable\n",
                    ),
                }
            }
            _ => self.error(&pages::NOT_FOUND),
        }
    }

    /// For a request to the viewer: the session, or the response that
    /// refuses it (login redirect, 401, or 503 when the store is down).
    pub async fn viewer_session(&self, req: &Req) -> Result<(String, SessionData), Resp> {
        match self.session_of(req).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(self.login_required(req)),
            Err(_) => Err(self.error(&pages::UNAVAILABLE)),
        }
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
        let wants_html = req
            .header("accept")
            .is_some_and(|a| a.contains("text/html"));
        let mut resp = if (req.method == Method::GET || req.method == Method::HEAD) && wants_html {
            let back = web::safe_return_to(&req.path_and_query()).unwrap_or_else(|| "/".into());
            web::redirect(&format!(
                "/auth/login?return_to={}",
                urlencoding::encode(&back)
            ))
        } else {
            web::json(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "authentification requise"}),
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
}

#[cfg(test)]
mod tests {
    use super::RouteClass::{self, *};

    #[test]
    fn route_classes() {
        let cases = [
            ("/auth/login", Auth),
            ("/auth", Auth),
            ("/authx", Viewer),
            ("/-/readyz", Health),
            ("/static/style.css", Static),
            ("/", Portal),
            ("/portail/patients", Portal),
            ("/portailx", Viewer),
            ("/web-viewer/app/viewer.html", Viewer),
            ("/dicom-web/studies", Viewer),
        ];
        for (path, class) in cases {
            assert_eq!(RouteClass::of(path), class, "{path}");
        }
    }
}
