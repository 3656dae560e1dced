//! Pingora wiring. The `ProxyHttp` methods only sequence the work:
//! `request_filter` routes, answers espace-ps's own routes, and for the
//! viewer checks the session and stops early on "no";
//! `upstream_request_filter` strips what the client must not send upstream;
//! `response_filter` adds headers; `logging` counts.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};

use crate::app::App;
use crate::config::Config;
use crate::metrics::METRICS;
use crate::observe::{RequestMetrics, X_REQUEST_ID};
use crate::pages::{self, ErrorPage};
use crate::router::RouteClass;
use crate::session::SessionData;
use crate::web::{self, Req, Resp, FLOW_COOKIE, MAX_LOCAL_BODY, SESSION_COOKIE};

/// Headers a client may not send to the viewer: identity claims that a
/// viewer might trust, and method overrides. A `match` rather than a list
/// looked up with `contains`: it runs for every header of every viewer
/// request.
fn is_stripped_request_header(name: &str) -> bool {
    matches!(
        name,
        "x-remote-user"
            | "remote-user"
            | "x-forwarded-user"
            | "x-forwarded-email"
            | "x-forwarded-preferred-username"
            | "x-auth-request-user"
            | "x-user"
            | "x-espace-user"
            | "x-espace-rpps"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "authorization"
            | "proxy-authorization"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-real-ip"
    )
}

/// The error type of a viewer response cut before its body (download
/// content to someone without the download permission): answered with the
/// "Téléchargement non autorisé" page.
const DOWNLOAD_CUT: &str = "viewer download cut";

pub use crate::viewer::VIEWER_UNAVAILABLE;

pub struct EspaceProxy {
    app: Arc<App>,
    /// The `Forwarded` value sent to the viewer (from `server.public_url`),
    /// computed once.
    forwarded: http::HeaderValue,
    /// The `Host` sent to the viewer (`upstream.address`).
    upstream_host: http::HeaderValue,
    /// The names of our cookies (session, login flow), never sent to the
    /// viewer: computed once.
    our_cookies: [String; 2],
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
    learn: Option<Learning>,
    /// Counts this request as in flight (a drain waits for it).
    _in_flight: crate::drain::InFlight,
    /// `X-Request-Id`: the gateway's or ours; sent to the viewer, returned.
    request_id: http::HeaderValue,
    /// When the request went to the viewer (its response time).
    upstream_sent: Option<Instant>,
}

/// A DICOM JSON answer being kept for the resolver.
struct Learning {
    kept: Vec<Bytes>,
    size: usize,
    /// Its `Content-Length`: read on its last chunk, before that chunk is
    /// sent, so the viewer's next requests find it learnt.
    expected: Option<usize>,
}

impl EspaceProxy {
    pub fn new(app: Arc<App>) -> EspaceProxy {
        // The viewer builds absolute URLs (RetrieveURL, BulkDataURI) from
        // `Forwarded`: make them point back through espace-ps. Unquoted:
        // Orthanc copies a quoted value, quotes included, into its URLs.
        let public = &app.config.server.public_url;
        let host = match public.port() {
            Some(p) => format!("{}:{p}", public.host_str().unwrap_or("localhost")),
            None => public.host_str().unwrap_or("localhost").to_owned(),
        };
        // Made static (leaked once per proxy): every viewer request clones
        // these two, and a static value is cloned without touching a
        // reference count that both worker threads share.
        let header = |v: String| {
            if v.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t') {
                http::HeaderValue::from_static(Box::leak(v.into_boxed_str()))
            } else {
                http::HeaderValue::from_static("localhost")
            }
        };
        let forwarded = header(format!("host={host};proto={}", public.scheme()));
        let upstream_host = header(app.config.upstream.address.clone());
        let our_cookies = [
            app.cookies.name(SESSION_COOKIE),
            app.cookies.name(FLOW_COOKIE),
        ];
        EspaceProxy {
            app,
            forwarded,
            upstream_host,
            our_cookies,
            request_metrics: RequestMetrics::default(),
        }
    }

    fn request_of(&self, session: &Session, body: Bytes, request_id: &http::HeaderValue) -> Req {
        let h = session.req_header();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Req {
            method: h.method.clone(),
            path: h.uri.path().to_owned(),
            query: h.uri.query().map(str::to_owned),
            headers: h.headers.clone(),
            body,
            client_ip: web::client_ip(peer, &h.headers, &self.app.config.server.trusted_gateways),
            request_id: request_id.to_str().unwrap_or("-").to_owned(),
        }
    }
}

/// Writes a whole response of ours to the client, with its request id.
pub async fn write_response(
    session: &mut Session,
    resp: Resp,
    request_id: &http::HeaderValue,
) -> Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let (parts, body) = resp.into_parts();
    let mut h = ResponseHeader::build(parts.status, Some(parts.headers.len() + 2))?;
    for (k, v) in parts.headers.iter() {
        h.append_header(k.clone(), v.clone())?;
    }
    // A 304 has no body and says nothing of its length.
    if parts.status != http::StatusCode::NOT_MODIFIED {
        h.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    }
    h.insert_header(titled::X_REQUEST_ID, request_id.clone())?;
    let end = head_only || body.is_empty();
    session.write_response_header(Box::new(h), end).await?;
    if !end {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Reads a request body up to `limit` bytes; None when it is longer.
async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
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

/// Whether a piece of a Cookie header (between `;`) is one of our cookies:
/// its name as [`web::cookie_value`] reads it (before `=`, trimmed); a
/// piece without `=` is compared whole.
fn is_our_cookie(piece: &str, ours: &[String]) -> bool {
    let piece = piece.trim();
    let name = piece.split_once('=').map_or(piece, |(n, _)| n.trim());
    ours.iter().any(|o| o == name)
}

/// The Cookie header lines without our own cookies, as one line; None when
/// nothing is left.
fn strip_our_cookies<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    ours: &[String],
) -> Option<String> {
    let mut kept = String::new();
    for line in lines {
        for c in line.split(';').map(str::trim) {
            if c.is_empty() || is_our_cookie(c, ours) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(c);
        }
    }
    (!kept.is_empty()).then_some(kept)
}

/// The Cookie header the viewer gets: the request's Cookie lines without
/// our cookies, as one line; a line that is not text is left out whole.
/// None when nothing is left.
fn forwarded_cookie(
    lines: &http::header::GetAll<'_, http::HeaderValue>,
    ours: &[String],
) -> Option<String> {
    strip_our_cookies(lines.iter().filter_map(|v| v.to_str().ok()), ours)
}

/// Whether espace-ps reads the body of this request's answer (a page it
/// rewrites, DICOM JSON the resolver learns from): such answers are asked
/// for uncompressed.
fn reads_answer_body(forward: &crate::viewer::Forward) -> bool {
    forward.class == espace_ps_access::viewer::Class::Shell || forward.learn
}

/// An address as a header value, IPv4 written by hand (the common case,
/// on every viewer request) rather than through `fmt`.
fn ip_header_value(ip: IpAddr) -> http::HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return http::HeaderValue::try_from(ip.to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("-"));
    };
    let mut buf = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            buf[len] = b'0' + d;
            len += 1;
        }
    }
    http::HeaderValue::from_bytes(&buf[..len])
        .unwrap_or_else(|_| http::HeaderValue::from_static("-"))
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
            let Some(body) = read_body(session, MAX_LOCAL_BODY).await? else {
                let page = ErrorPage::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    "Requête trop volumineuse",
                    "La requête envoyée est trop volumineuse.",
                );
                write_response(session, self.app.error(&page), &ctx.request_id).await?;
                return Ok(true);
            };
            let req = self.request_of(session, body, &ctx.request_id);
            ctx.client_ip = req.client_ip;
            let resp = self.app.router.handle(req).await;
            write_response(session, resp, &ctx.request_id).await?;
            return Ok(true);
        }
        // The viewer path reads what it needs from Pingora's request header
        // (no `Req`: no copy of the headers on every frame).
        let h = session.req_header();
        ctx.client_ip = web::client_ip(
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            &h.headers,
            &self.app.config.server.trusted_gateways,
        );
        let request_id = ctx.request_id.to_str().unwrap_or("-");
        let found = match web::cookie_value(&h.headers, &self.our_cookies[0]) {
            Some(id) => {
                let key = crate::session::digest_shared(id);
                let checked = self
                    .app
                    .check
                    .checked_session(id, &key, ctx.client_ip, request_id)
                    .await;
                checked.map(|data| data.map(|data| (key, data)))
            }
            None => Ok(None),
        };
        let (session_key, data) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                let req = self.request_of(session, Bytes::new(), &ctx.request_id);
                let resp = self.app.check.login_required(&req);
                write_response(session, resp, &ctx.request_id).await?;
                return Ok(true);
            }
            Err(_) => {
                let resp = self.app.error(&pages::UNAVAILABLE);
                write_response(session, resp, &ctx.request_id).await?;
                return Ok(true);
            }
        };
        let h = session.req_header();
        let raw_target = h.uri.path_and_query().map_or("", |pq| pq.as_str());
        // Only the headers the route table reads (method overrides, Accept).
        let headers: Vec<(String, String)> = h
            .headers
            .iter()
            .filter(|(k, _)| espace_ps_access::viewer::reads_header(k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let verdict = self
            .app
            .gate
            .check(&crate::viewer::ViewerRequest {
                session_key: &session_key,
                session: &data,
                method: h.method.as_str(),
                raw_target,
                headers: &headers,
                client_ip: ctx.client_ip,
                request_id,
            })
            .await;
        match verdict {
            crate::viewer::Verdict::Forward(f) => {
                // The softviewer's static files, when espace-ps serves them.
                if let Some(site) = &self.app.site {
                    if f.class == espace_ps_access::viewer::Class::Shell
                        && crate::viewer::site::Site::serves(&f.target)
                    {
                        let h = session.req_header();
                        let resp = site
                            .serve(
                                h.method == http::Method::HEAD,
                                h.headers
                                    .get(header::IF_NONE_MATCH)
                                    .and_then(|v| v.to_str().ok()),
                                &f,
                            )
                            .await;
                        write_response(session, resp, &ctx.request_id).await?;
                        return Ok(true);
                    }
                }
                ctx.session = Some(data);
                ctx.forward = Some(f);
                Ok(false)
            }
            crate::viewer::Verdict::Refuse(refusal) => {
                write_response(session, self.app.error(refusal.page()), &ctx.request_id).await?;
                Ok(true)
            }
        }
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
        // A request has a few headers: look those up in the list, rather
        // than the list's nineteen names up in the request (nothing is
        // allocated when none is there).
        let stripped: Vec<http::HeaderName> = upstream_request
            .headers
            .keys()
            .filter(|k| is_stripped_request_header(k.as_str()))
            .cloned()
            .collect();
        for name in &stripped {
            upstream_request.remove_header(name);
        }
        // Our cookies never reach the viewer: the Cookie lines go as one
        // line without them (a line that is not text goes too). A forwarded
        // request always holds our session cookie: rewritten without a
        // look first.
        let cookie_lines = upstream_request.headers.get_all(header::COOKIE);
        if cookie_lines.iter().next().is_some() {
            let kept = forwarded_cookie(&cookie_lines, &self.our_cookies);
            upstream_request.remove_header(&header::COOKIE);
            if let Some(kept) = kept {
                upstream_request.insert_header(header::COOKIE, kept)?;
            }
        }
        upstream_request.insert_header(titled::X_FORWARDED_FOR, ip_header_value(ctx.client_ip))?;
        // Forward exactly the request that was validated.
        let Some(forward) = &ctx.forward else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(403),
                "no viewer decision",
            ));
        };
        // Most requests are canonical already: then the request line stays
        // as it is (origin-form, byte for byte the validated target).
        let canonical_already = upstream_request.uri.scheme().is_none()
            && upstream_request.uri.authority().is_none()
            && upstream_request.raw_path() == forward.target.as_bytes();
        if !canonical_already {
            let uri: http::Uri = forward.target.parse().map_err(|_| {
                Error::explain(ErrorType::HTTPStatus(400), "canonical target unparsable")
            })?;
            upstream_request.set_uri(uri);
        }
        upstream_request.insert_header(titled::HOST, self.upstream_host.clone())?;
        // The answers whose body espace-ps reads are asked for uncompressed:
        // pages (rewritten) and the DICOM JSON the resolver learns from.
        // Others (frames, images) go through as the viewer encodes them.
        if reads_answer_body(forward) {
            upstream_request.insert_header(header::ACCEPT_ENCODING, values::IDENTITY)?;
        }
        upstream_request.insert_header(titled::FORWARDED, self.forwarded.clone())?;
        upstream_request.insert_header(titled::X_REQUEST_ID, ctx.request_id.clone())?;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(sent) = ctx.upstream_sent.take() {
            METRICS
                .upstream_duration
                .observe(sent.elapsed().as_secs_f64());
        }
        upstream_response.insert_header(titled::X_REQUEST_ID, ctx.request_id.clone())?;
        // Defense in depth: DICOM bytes, archives, bulk octets, gzip and PDF
        // documents never flow to someone who may not download, whatever the
        // route table said.
        let may_download = ctx.forward.as_ref().is_some_and(|f| f.may_download);
        let content_type = upstream_response
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let class = ctx
            .forward
            .as_ref()
            .map_or(espace_ps_access::viewer::Class::Download, |f| f.class);
        if !may_download && crate::viewer::must_cut_without_download(content_type, class) {
            tracing::warn!(
                class = %class,
                "download content cut before its body: no download permission"
            );
            return Err(Error::explain(
                ErrorType::Custom(DOWNLOAD_CUT),
                "download content without download permission",
            ));
        }
        let starts = |prefix: &str| {
            content_type
                .as_bytes()
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
        };
        let is_html = starts("text/html");
        let is_dicom_json = starts("application/dicom+json");
        // Viewer answers carry patient data: never cached, never framed elsewhere.
        upstream_response.insert_header(titled::CACHE_CONTROL, values::NO_STORE)?;
        upstream_response.insert_header(titled::X_CONTENT_TYPE_OPTIONS, values::NOSNIFF)?;
        upstream_response.insert_header(titled::REFERRER_POLICY, values::SAME_ORIGIN)?;
        upstream_response.remove_header(&header::SERVER);
        // Viewer HTML pages run on the portal's origin: they get the route
        // table's policy, with a nonce of this response for what we inject.
        // It replaces whatever the viewer sent (the table is the authority).
        // Only HTML pages use a nonce: no random bytes drawn for the others.
        let nonce = if is_html {
            crate::inject::new_nonce()
        } else {
            String::new()
        };
        match (&ctx.forward, is_html) {
            (Some(forward), true) => {
                let csp = &forward.csp;
                upstream_response.remove_header(&header::CONTENT_SECURITY_POLICY);
                upstream_response.remove_header(&header::CONTENT_SECURITY_POLICY_REPORT_ONLY);
                let name = if csp.report_only() {
                    titled::CONTENT_SECURITY_POLICY_REPORT_ONLY
                } else {
                    titled::CONTENT_SECURITY_POLICY
                };
                upstream_response.insert_header(name, csp.header_value(&nonce))?;
                if let Some(enforced) = csp.enforced_in_report_only() {
                    upstream_response.insert_header(titled::CONTENT_SECURITY_POLICY, enforced)?;
                }
            }
            _ => {
                if upstream_response
                    .headers
                    .get(header::CONTENT_SECURITY_POLICY)
                    .is_none()
                {
                    upstream_response.insert_header(
                        titled::CONTENT_SECURITY_POLICY,
                        values::FRAME_ANCESTORS_SELF,
                    )?;
                }
            }
        }
        // The archive's DICOM JSON answers tell the resolver their instances.
        if ctx.forward.as_ref().is_some_and(|f| f.learn)
            && upstream_response.status == http::StatusCode::OK
            && upstream_response
                .headers
                .get(header::CONTENT_ENCODING)
                .is_none()
            && is_dicom_json
        {
            ctx.learn = Some(Learning {
                kept: Vec::new(),
                size: 0,
                expected: upstream_response
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok()),
            });
        }
        // Viewer HTML pages get the manifest link and the portal header.
        if is_html && upstream_response.status == http::StatusCode::OK {
            let encoding = upstream_response
                .headers
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(encoding) = crate::inject::Encoding::of(encoding.as_deref()) {
                upstream_response.remove_header(&header::CONTENT_LENGTH);
                upstream_response.remove_header(&header::CONTENT_ENCODING);
                upstream_response.remove_header(&header::ETAG);
                ctx.inject = Some(Box::new(crate::inject::PageRewriter::with_downloads(
                    encoding,
                    may_download,
                    &self.app.config.upstream.hide_download,
                    &nonce,
                    ctx.forward.as_ref().map_or(&[][..], |f| &f.downloads),
                )));
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(l) = ctx.learn.as_mut() {
            // Shared, not copied, as it streams: read once at its end.
            if let Some(chunk) = body {
                l.size += chunk.len();
                l.kept.push(chunk.clone());
            }
            if l.size > crate::viewer::dicomweb::LEARN_LIMIT {
                ctx.learn = None;
            } else if end_of_stream || l.expected == Some(l.size) {
                let whole = l.kept.concat();
                ctx.learn = None;
                self.app.gate.learn_from_answer(&whole);
            }
            return Ok(None);
        }
        let Some(page) = ctx.inject.as_mut() else {
            return Ok(None);
        };
        // Streamed: each chunk goes on rewritten as soon as it is read.
        let rewritten = (|| {
            let mut out = match body.take() {
                Some(chunk) => page.write(&chunk)?,
                None => Vec::new(),
            };
            if end_of_stream {
                out.extend(page.end()?);
            }
            Ok::<_, crate::inject::InjectError>(out)
        })()
        .map_err(|e| {
            tracing::warn!(error = %e, "viewer page not rewritten");
            Error::explain(ErrorType::HTTPStatus(502), "viewer page not rewritten")
        })?;
        if !rewritten.is_empty() {
            *body = Some(Bytes::from(rewritten));
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if matches!(e.etype(), ErrorType::Custom(DOWNLOAD_CUT)) {
            let refused = self.app.error(&crate::viewer::DOWNLOAD_REFUSED);
            let _ = write_response(session, refused, &ctx.request_id).await;
            return FailToProxy {
                error_code: 403,
                can_reuse_downstream: false,
            };
        }
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => 0,
                _ => 500,
            },
        };
        if code > 0 {
            let resp = match code {
                502..=504 => self.app.error(&VIEWER_UNAVAILABLE),
                403 => self.app.error(&pages::ErrorPage::new(
                    http::StatusCode::FORBIDDEN,
                    "Accès refusé",
                    "Vous n'avez pas accès à cette ressource.",
                )),
                _ => self.app.error(&pages::ErrorPage::new(
                    http::StatusCode::from_u16(code)
                        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                    "Erreur",
                    "La demande n'a pas pu aboutir.",
                )),
            };
            let _ = write_response(session, resp, &ctx.request_id).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_cookies_never_reach_the_viewer() {
        let ours = ["espace-session".to_owned(), "espace-login".to_owned()];
        assert_eq!(
            strip_our_cookies(["espace-session=abc; viewer=1; espace-login=x"], &ours).as_deref(),
            Some("viewer=1")
        );
        assert_eq!(strip_our_cookies(["espace-session=abc"], &ours), None);
        assert_eq!(
            strip_our_cookies(["espace-session =abc; v=1;espace-login"], &ours).as_deref(),
            Some("v=1")
        );
        // Several Cookie lines become one, ours left out of each.
        assert_eq!(
            strip_our_cookies(["a=1; espace-session=x", "espace-login=y", "b=2;;"], &ours)
                .as_deref(),
            Some("a=1; b=2")
        );
        // Which pieces are ours.
        assert!(is_our_cookie(" espace-session = abc", &ours));
        assert!(is_our_cookie("espace-login", &ours));
        assert!(!is_our_cookie("espace-sessionx=1", &ours));
        assert!(!is_our_cookie("viewer=espace-session", &ours));
        // The header as the request holds it: a line that is not text
        // (bytes beyond ASCII, which a Cookie line may hold) goes whole,
        // our cookie in it too.
        let mut headers = http::HeaderMap::new();
        headers.append(
            header::COOKIE,
            http::HeaderValue::from_bytes(b"espace-session=abc; v=\xe9").unwrap(),
        );
        headers.append(
            header::COOKIE,
            http::HeaderValue::from_static("a=1; espace-login=y"),
        );
        assert_eq!(
            forwarded_cookie(&headers.get_all(header::COOKIE), &ours).as_deref(),
            Some("a=1")
        );
    }

    #[test]
    fn only_answers_whose_body_is_read_are_asked_uncompressed() {
        use espace_ps_access::viewer::{Class, Csp};
        let forward = |class, learn| crate::viewer::Forward {
            target: "/".into(),
            class,
            may_download: false,
            csp: Arc::new(Csp::strict_default()),
            downloads: Vec::new(),
            learn,
        };
        assert!(reads_answer_body(&forward(Class::Shell, false)));
        assert!(reads_answer_body(&forward(Class::Raw, true)));
        assert!(reads_answer_body(&forward(Class::Search, true)));
        assert!(!reads_answer_body(&forward(Class::Raw, false)));
        assert!(!reads_answer_body(&forward(Class::Rendered, false)));
        assert!(!reads_answer_body(&forward(Class::Download, false)));
    }

    #[test]
    fn the_forwarded_address_is_written_as_std_writes_it() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "192.168.1.20",
            "::1",
            "2001:db8::42",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_header_value(ip).to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn identity_headers_and_method_overrides_are_stripped() {
        for name in [
            "authorization",
            "x-forwarded-for",
            "x-http-method-override",
            "x-real-ip",
        ] {
            assert!(is_stripped_request_header(name), "{name}");
        }
        for name in ["accept", "cookie", "x-forwarded", "range"] {
            assert!(!is_stripped_request_header(name), "{name}");
        }
    }
}
