//! espace-ps's own answers through Pingora: its routes (portal, login,
//! health, static files), read whole and answered by the local router, and
//! the pages that replace a viewer answer that failed.

use std::net::{IpAddr, Ipv4Addr};

use bytes::{Bytes, BytesMut};
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, Session};

use super::{titled, Ctx, DOWNLOAD_CUT};
use crate::app::App;
use crate::pages::{self, ErrorPage};
use crate::web::{self, Req, Resp, MAX_LOCAL_BODY};

/// A request to one of espace-ps's own routes: its body read (up to
/// [`MAX_LOCAL_BODY`]), answered by the local router. Always answered here.
pub(super) async fn answer(app: &App, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let Some(body) = read_body(session, MAX_LOCAL_BODY).await? else {
        let page = ErrorPage::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "Requête trop volumineuse",
            "La requête envoyée est trop volumineuse.",
        );
        write_response(session, app.error(&page), &ctx.request_id).await?;
        return Ok(true);
    };
    let req = request_of(app, session, body, &ctx.request_id);
    ctx.client_ip = req.client_ip;
    let resp = app.router.handle(req).await;
    write_response(session, resp, &ctx.request_id).await?;
    Ok(true)
}

/// The request as espace-ps's handlers take it (a copy of its headers).
pub(super) fn request_of(
    app: &App,
    session: &Session,
    body: Bytes,
    request_id: &http::HeaderValue,
) -> Req {
    let h = session.req_header();
    Req {
        method: h.method.clone(),
        path: h.uri.path().to_owned(),
        query: h.uri.query().map(str::to_owned),
        headers: h.headers.clone(),
        body,
        client_ip: web::client_ip(
            peer_ip(session),
            &h.headers,
            &app.config.server.trusted_gateways,
        ),
        request_id: request_id.to_str().unwrap_or("-").to_owned(),
    }
}

/// The address of the connection's other end (loopback when it has none,
/// a Unix socket).
pub(super) fn peer_ip(session: &Session) -> IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Writes a whole response of ours to the client, with its request id.
pub(super) async fn write_response(
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

/// A viewer request that failed before its answer reached the client: a
/// French page in its place (none when the client went away).
pub(super) async fn fail_to_proxy(
    app: &App,
    session: &mut Session,
    e: &Error,
    ctx: &Ctx,
) -> FailToProxy {
    if matches!(e.etype(), ErrorType::Custom(DOWNLOAD_CUT)) {
        let refused = app.error(&crate::viewer::DOWNLOAD_REFUSED);
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
            502..=504 => app.error(&crate::viewer::VIEWER_UNAVAILABLE),
            403 => app.error(&pages::ErrorPage::new(
                http::StatusCode::FORBIDDEN,
                "Accès refusé",
                "Vous n'avez pas accès à cette ressource.",
            )),
            _ => app.error(&pages::ErrorPage::new(
                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
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
