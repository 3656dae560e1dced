//! A request for the viewer, admitted or answered here: its session
//! checked (none: the login page; the store down: "service indisponible"),
//! then the gate's verdict. Admitted requests leave their session and the
//! gate's [`Forward`](crate::viewer::Forward) in the context for the
//! filters that follow.

use bytes::Bytes;
use http::header;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::local::{peer_ip, request_of, write_response};
use super::Ctx;
use crate::app::App;
use crate::pages;
use crate::viewer::{Verdict, ViewerRequest};
use crate::web;
use espace_ps_access::viewer::Class;

/// `request_filter` for a viewer request: `Ok(true)` when answered here,
/// `Ok(false)` when it goes on to the viewer.
pub(super) async fn viewer_request(
    app: &App,
    session_cookie: &str,
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<bool> {
    // Read from Pingora's request header (no `Req`: no copy of the
    // headers on every frame).
    let h = session.req_header();
    ctx.client_ip = web::client_ip(
        peer_ip(session),
        &h.headers,
        &app.config.server.trusted_gateways,
    );
    let request_id = ctx.request_id.to_str().unwrap_or("-");
    let found = match web::cookie_value(&h.headers, session_cookie) {
        Some(id) => {
            let key = crate::session::digest_shared(id);
            let checked = app
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
            let req = request_of(app, session, Bytes::new(), &ctx.request_id);
            let resp = app.check.login_required(&req);
            write_response(session, resp, &ctx.request_id).await?;
            return Ok(true);
        }
        Err(_) => {
            let resp = app.error(&pages::UNAVAILABLE);
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
    let verdict = app
        .gate
        .check(&ViewerRequest {
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
        Verdict::Forward(f) => {
            // The softviewer's static files, when espace-ps serves them.
            if let Some(site) = &app.site {
                if f.class == Class::Shell && crate::viewer::site::Site::serves(&f.target) {
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
        Verdict::Refuse(refusal) => {
            write_response(session, app.error(refusal.page()), &ctx.request_id).await?;
            Ok(true)
        }
    }
}
