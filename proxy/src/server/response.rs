//! What the client receives from the viewer: the security headers every
//! viewer answer gets, download content cut without the permission, and
//! the bodies espace-ps reads as they stream by (viewer pages rewritten,
//! DICOM JSON the resolver learns from).

use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::{titled, values, Ctx, DOWNLOAD_CUT};
use crate::metrics::METRICS;
use crate::viewer::Gate;

/// A DICOM JSON answer being kept for the resolver.
pub(super) struct Learning {
    kept: Vec<Bytes>,
    size: usize,
    /// Its `Content-Length`: read on its last chunk, before that chunk is
    /// sent, so the viewer's next requests find it learnt.
    expected: Option<usize>,
}

/// `response_filter`: the viewer answer's header as the client gets it.
pub(super) fn headers(
    hide_download: &[String],
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
                hide_download,
                &nonce,
                ctx.forward.as_ref().map_or(&[][..], |f| &f.downloads),
            )));
        }
    }
    Ok(())
}

/// `response_body_filter`: a chunk of the viewer's answer.
pub(super) fn body(
    gate: &Gate,
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
            gate.learn_from_answer(&whole);
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
