//! espace-ps's own routes: which part answers a path ([`RouteClass`]), and
//! the dispatch of the local ones: `/auth/*` to the login service, the
//! portal pages to the portal, health and static files here. Requests to
//! the viewer are the gate's ([`crate::viewer::Gate`]), sequenced by the
//! Pingora layer (`server`).

use std::sync::Arc;

use http::{Method, StatusCode};

use crate::auth::Login;
use crate::pages::{self, Pages};
use crate::portal::Portal;
use crate::session::Sessions;
use crate::state::PortalDb;
use crate::web::{self, Req, Resp};

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

/// Answers espace-ps's own routes.
pub struct Router {
    pub login: Arc<Login>,
    pub portal: Arc<Portal>,
    pub pages: Arc<Pages>,
    /// What `/-/readyz` checks.
    pub sessions: Arc<Sessions>,
    pub db: PortalDb,
    pub records: Option<espace_ps_records::Records>,
}

impl Router {
    /// Answers one of espace-ps's own routes.
    pub async fn handle(&self, req: Req) -> Resp {
        match RouteClass::of(&req.path) {
            RouteClass::Auth => self.login.handle(req).await,
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
                None => self.pages.error(&pages::NOT_FOUND, None),
            },
            RouteClass::Portal => self.portal.handle(req).await,
            RouteClass::Viewer => self.pages.error(&pages::NOT_FOUND, None),
        }
    }

    async fn health(&self, req: &Req) -> Resp {
        match req.path.as_str() {
            "/-/healthz" => web::text(StatusCode::OK, "ok\n"),
            // Draining (SIGTERM): out of the gateway's rotation at once.
            "/-/readyz" if crate::drain::draining() => {
                web::text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n")
            }
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
            _ => self.pages.error(&pages::NOT_FOUND, None),
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
