//! The composition root: [`App::build`] makes every service from the
//! configuration and wires them together; nothing else lives here. The
//! Pingora layer (`server`) only sequences: it asks
//! [`crate::router::RouteClass`], then either hands a local request to the
//! [`Router`] or checks the session ([`SessionCheck`]) and asks the viewer
//! [`Gate`] before forwarding to the viewer.

use std::sync::Arc;
use std::time::Duration;

use crate::access::{Access, StoredFacts};
use crate::auth::hm_sso::HmSso;
use crate::auth::psc::PscClient;
use crate::auth::{Login, SessionCheck};
use crate::config::{Config, SessionStoreConfig};
use crate::metrics::METRICS;
use crate::pages::{self, ErrorPage, Pages};
use crate::portal::{LookupLimiters, Portal};
use crate::ratelimit::Limiter;
use crate::router::Router;
use crate::session::{KvStore, MemoryStore, RedisStore, Sessions, StoreError};
use crate::state::PortalDb;
use crate::viewer::Gate;
use crate::web::{Cookies, Resp};

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

pub struct App {
    pub config: Arc<Config>,
    pub pages: Arc<Pages>,
    pub cookies: Cookies,
    /// The session of each request, checked against the revocations.
    pub check: Arc<SessionCheck>,
    /// The access policies and the facts they decide on.
    pub access: Arc<Access>,
    /// The viewer's route table, the study resolver and the decisions.
    pub gate: Arc<Gate>,
    /// espace-ps's own routes: auth, portal, health, static files.
    pub router: Router,
    /// The softviewer's static site (`[upstream] ohif_dir`), if served.
    pub site: Option<crate::viewer::site::Site>,
    /// Reloads the policies when their files change (kept alive here).
    _policy_watcher: Option<espace_ps_access::PolicyWatcher>,
    /// Writes the audit chains' heads to the log stream (and at shutdown).
    _audit_heads: crate::audit::HeadLogger,
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
        let config = Arc::new(config);
        let pages = Arc::new(Pages::new(config.portal.pages_dir.as_deref())?);
        let store: Arc<dyn KvStore> = match &config.sessions.store {
            SessionStoreConfig::Memory => Arc::new(MemoryStore::default()),
            SessionStoreConfig::Redis(redis) => {
                let store = RedisStore::from_config(redis)?;
                // A certificate refused is a configuration error: stop
                // now. An unreachable Redis is not (sessions answer 503
                // until it is back).
                store.check_tls().await?;
                Arc::new(store)
            }
        };
        let lookup_limits = LookupLimiters::new(
            &store,
            &config.sessions.key_prefix,
            &config.rate_limit.lookups,
        );
        let login_limit = Limiter::per_minute(
            store.clone(),
            &config.sessions.key_prefix,
            "login",
            config.rate_limit.login_per_minute.max(1) as u64,
        );
        let sessions = Arc::new(Sessions::new(
            store,
            &config.sessions.key_prefix,
            config.sessions.idle_timeout,
            config.sessions.absolute_timeout,
        ));
        let db = PortalDb::open_for_serve(&config.database).await?;
        let db = db.with_audit(crate::audit::AuditSettings::of(&config.audit));
        let audit_heads =
            crate::audit::spawn_head_logger(db.clone(), config.audit.head_log_interval);
        let psc = config.psc.clone().map(PscClient::new).transpose()?;
        let hm_sso = config.hm_sso.clone().map(HmSso::new).transpose()?;
        let records = match &config.records.url {
            Some(url) => {
                let records =
                    espace_ps_records::Records::connect_with(url, config.records.max_connections)
                        .await?;
                records.check_search_index().await?;
                Some(records)
            }
            None => None,
        };
        let policies = espace_ps_access::Engine::load(&config.policies.dir)?;
        let table = crate::viewer::load_table(&config.policies.dir, &config.upstream.viewer)
            .map_err(AppError::RouteTable)?
            .ok_or_else(|| {
                AppError::RouteTable(format!(
                    "no route table named {:?} in {}/viewers",
                    config.upstream.viewer,
                    config.policies.dir.display()
                ))
            })?;
        let access = Arc::new(Access::new(
            policies,
            Arc::new(StoredFacts {
                records: records.clone(),
                db: db.clone(),
            }),
        ));
        // The route table names how its archive is asked (`[resolver]`).
        let resolver = crate::viewer::resolver_for(&table, &viewer_base(&config))
            .map_err(|e| AppError::Viewer(e.to_string()))?;
        let viewer = Arc::new(Gate::new(
            Some(table),
            resolver,
            access.clone(),
            Arc::new(db.clone()),
        ));
        let on_reload = {
            let viewer = viewer.clone();
            let dir = config.policies.dir.clone();
            let name = config.upstream.viewer.clone();
            move |outcome: espace_ps_access::ReloadOutcome| {
                if matches!(outcome, espace_ps_access::ReloadOutcome::Reloaded { .. }) {
                    crate::viewer::reload_route_table(&viewer, &dir, &name);
                }
                record_reload(outcome);
            }
        };
        let watcher = match access
            .policies()
            .watch(Duration::from_millis(300), on_reload)
        {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "policy files are not watched; reload with SIGHUP");
                None
            }
        };
        let cookies = Cookies::new(&config.server);
        let check = Arc::new(SessionCheck {
            sessions: sessions.clone(),
            cookies: cookies.clone(),
            pages: pages.clone(),
            db: db.clone(),
            access: access.clone(),
            revocations: crate::revocation::Revocations::new(config.sessions.absolute_timeout),
            idle_timeout: config.sessions.idle_timeout,
            absolute_timeout: config.sessions.absolute_timeout,
        });
        let login = Arc::new(Login {
            check: check.clone(),
            sessions: sessions.clone(),
            cookies: cookies.clone(),
            pages: pages.clone(),
            db: db.clone(),
            access: access.clone(),
            psc,
            hm_sso,
            login_limit,
            public_origin: config.server.public_origin(),
            support_contact: config.portal.support_contact.clone(),
        });
        let portal = Arc::new(Portal {
            check: check.clone(),
            access: access.clone(),
            records: records.clone(),
            db: db.clone(),
            sessions: sessions.clone(),
            pages: pages.clone(),
            lookup_limits,
            viewer: viewer.clone(),
            config: config.clone(),
        });
        let router = Router {
            login,
            portal,
            pages: pages.clone(),
            sessions,
            db,
            records,
        };
        let site = (!config.upstream.ohif_dir.is_empty()).then(|| {
            crate::viewer::site::Site::new(
                &config.upstream.ohif_dir,
                config.upstream.hide_download.clone(),
            )
        });
        Ok(Arc::new(App {
            config,
            pages,
            cookies,
            check,
            access,
            gate: viewer,
            router,
            site,
            _policy_watcher: watcher,
            _audit_heads: audit_heads,
        }))
    }

    pub fn error(&self, page: &ErrorPage) -> Resp {
        self.pages.error(page, None)
    }
}

/// `http(s)://host:port` of the viewer, for espace-ps's own calls.
fn viewer_base(config: &Config) -> String {
    let up = &config.upstream;
    format!("{}://{}", if up.tls { "https" } else { "http" }, up.address)
}
