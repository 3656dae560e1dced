//! Pingora wiring. The `ProxyHttp` methods only sequence the work, each
//! in its own module:
//! - `request_filter` routes: espace-ps's own routes are answered by
//!   `local`; a viewer request is admitted or answered by `admit`
//!   (session, then the gate's verdict);
//! - `upstream_request_filter`: `upstream` writes the request the viewer
//!   gets;
//! - `response_filter` and `response_body_filter`: `response` writes the
//!   answer the client gets;
//! - `fail_to_proxy`: `local`'s French pages; `logging` counts.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};

use crate::app::App;
use crate::config::Config;
use crate::observe::{RequestMetrics, X_REQUEST_ID};
use crate::router::RouteClass;
use crate::session::SessionData;

mod admit;
mod local;
mod response;
mod upstream;

/// The error type of a viewer response cut before its body (download
/// content to someone without the download permission): answered with the
/// "Téléchargement non autorisé" page.
const DOWNLOAD_CUT: &str = "viewer download cut";

pub use crate::viewer::VIEWER_UNAVAILABLE;

pub struct EspaceProxy {
    app: Arc<App>,
    /// What the viewer receives besides the validated request.
    to_viewer: upstream::ToViewer,
    /// Request counters and durations by route class, resolved once.
    request_metrics: RequestMetrics,
}

pub struct Ctx {
    route: RouteClass,
    started: Instant,
    client_ip: IpAddr,
    session: Option<Arc<SessionData>>,
    /// What the viewer guard allowed: the target to forward and whether
    /// DICOM bytes may come back.
    forward: Option<crate::viewer::Forward>,
    /// An HTML page of the viewer being rewritten to get our additions.
    /// Boxed: the rewriter is over a KiB, and the context is moved with
    /// Pingora's request future on every request, page or not.
    inject: Option<Box<crate::inject::PageRewriter>>,
    /// A DICOM JSON answer kept as it streams by, for the resolver to
    /// learn its instances at its end (`Forward::learn`).
    learn: Option<response::Learning>,
    /// Counts this request as in flight (a drain waits for it).
    _in_flight: crate::drain::InFlight,
    /// `X-Request-Id`: the gateway's or ours; sent to the viewer, returned.
    request_id: http::HeaderValue,
    /// When the request went to the viewer (its response time).
    upstream_sent: Option<Instant>,
}

impl EspaceProxy {
    pub fn new(app: Arc<App>) -> EspaceProxy {
        EspaceProxy {
            to_viewer: upstream::ToViewer::new(&app),
            app,
            request_metrics: RequestMetrics::default(),
        }
    }
}

/// Constant header values, validated once when compiled (`from_static`
/// called at run time checks every byte again, on every request).
mod values {
    use http::HeaderValue;
    pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
    pub const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
    pub const SAME_ORIGIN: HeaderValue = HeaderValue::from_static("same-origin");
    pub const FRAME_ANCESTORS_SELF: HeaderValue =
        HeaderValue::from_static("frame-ancestors 'self'");
    pub const IDENTITY: HeaderValue = HeaderValue::from_static("identity");
}

/// Header names as written to the wire, for Pingora's `insert_header`.
/// Pingora keeps each header's case in a second map: a `HeaderName` given
/// to it is looked up in Pingora's short list of title-case spellings on
/// every call (and, outside that list, copied in lower case), a
/// `&'static str` is taken as it is. Every viewer request inserts these.
/// (The headers of our own pages, from an `http::Response`, keep Pingora's
/// spelling of a `HeaderName`, lower case outside its list: HTTP reads
/// header names case-insensitively.)
mod titled {
    pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
    pub const HOST: &str = "Host";
    pub const FORWARDED: &str = "Forwarded";
    pub const X_REQUEST_ID: &str = "X-Request-Id";
    pub const CACHE_CONTROL: &str = "Cache-Control";
    pub const X_CONTENT_TYPE_OPTIONS: &str = "X-Content-Type-Options";
    pub const REFERRER_POLICY: &str = "Referrer-Policy";
    pub const CONTENT_SECURITY_POLICY: &str = "Content-Security-Policy";
    pub const CONTENT_SECURITY_POLICY_REPORT_ONLY: &str = "Content-Security-Policy-Report-Only";
}

#[async_trait]
impl ProxyHttp for EspaceProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            route: RouteClass::Viewer,
            started: Instant::now(),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            session: None,
            forward: None,
            inject: None,
            learn: None,
            _in_flight: crate::drain::InFlight::new(),
            request_id: http::HeaderValue::from_static("-"),
            upstream_sent: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.route = RouteClass::of(session.req_header().uri.path());
        ctx.request_id = crate::observe::request_id(
            session.req_header().headers.get(&X_REQUEST_ID),
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            &self.app.config.server.trusted_gateways,
        );
        if ctx.route != RouteClass::Viewer {
            return local::answer(&self.app, session, ctx).await;
        }
        admit::viewer_request(&self.app, self.to_viewer.session_cookie(), session, ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // Deny by default: nothing reaches the viewer without a session and
        // a decision.
        if ctx.session.is_none() || ctx.forward.is_none() {
            return Err(Error::explain(
                ErrorType::HTTPStatus(403),
                "no session for a viewer request",
            ));
        }
        let up = &self.app.config.upstream;
        Ok(Box::new(HttpPeer::new(
            up.address.as_str(),
            up.tls,
            up.sni.clone(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.to_viewer.rewrite(upstream_request, ctx)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response::headers(
            &self.app.config.upstream.hide_download,
            upstream_response,
            ctx,
        )
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        response::body(&self.app.gate, body, end_of_stream, ctx)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        local::fail_to_proxy(&self.app, session, e, ctx).await
    }

    /// What Pingora's own error logs say about a request: never the path
    /// or query (they carry study UIDs and ids), only the method and route class.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        format!("{} <{}>", session.req_header().method, ctx.route.label())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        // The access log line: no path, query, identity or address (those
        // belong to the audit trail). Status 0: the client went away first.
        self.request_metrics.finish(
            &session.req_header().method,
            ctx.route,
            status,
            ctx.started.elapsed(),
            &ctx.request_id,
            e,
        );
    }
}

/// A Pingora server with espace-ps's services, ready to run; with
/// `upgrade`, it takes the listening sockets over from the running process
/// (`serve --upgrade`, then SIGQUIT to the old one).
pub fn build_server(config: &Config, app: Arc<App>, upgrade: bool) -> pingora::server::Server {
    let s = &config.server;
    let conf = ServerConf {
        threads: s.threads,
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs()),
        upgrade_sock: s.upgrade_sock.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let admin_app = crate::observe::AdminApp { app: app.clone() };
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        EspaceProxy::new(app),
        "espace-ps",
    );
    proxy.add_tcp(&config.server.listen.to_string());
    let mut admin = pingora::services::listening::Service::new("espace-ps admin".into(), admin_app);
    admin.add_tcp(&config.server.admin_listen.to_string());
    server.add_service(proxy);
    server.add_service(admin);
    server
}
