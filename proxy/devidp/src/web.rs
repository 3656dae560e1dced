//! Small HTTP helpers: parameter parsing and every response builder, on
//! `espace_ps_http` (shared with the proxy), so the security headers are set
//! in one place.

use std::collections::HashMap;

use bytes::Bytes;
use espace_ps_http::SecurityHeaders;
use http::{header, HeaderValue, Request, Response, StatusCode};

/// Request parameters; OAuth forbids repeating one.
pub(crate) type Params = HashMap<String, String>;

/// Parses a query string or form body. `Err(name)` names a repeated parameter.
pub(crate) fn parse_params(raw: &[u8]) -> Result<Params, String> {
    let mut out = Params::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(out)
}

/// The query parameters of a request.
pub(crate) fn query_params(req: &Request<Bytes>) -> Result<Params, String> {
    parse_params(req.uri().query().unwrap_or("").as_bytes())
}

/// The form body of a POST; `None` if it is not `application/x-www-form-urlencoded`.
pub(crate) fn form_params(req: &Request<Bytes>) -> Option<Result<Params, String>> {
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return None;
    }
    Some(parse_params(req.body()))
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The headers of every response of the dev IdP; HTML pages add their CSP
/// and `X-Frame-Options` ([`html`]).
const SECURITY: SecurityHeaders = SecurityHeaders(&[
    ("pragma", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
]);

/// An HTML page with a strict CSP allowing only its own inline style.
pub(crate) fn html(status: StatusCode, body: String, csp: &str) -> Response<Bytes> {
    let mut res = SECURITY.html(status, body);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Bytes> {
    SECURITY.json(status, value)
}

pub(crate) fn jwt(token: String) -> Response<Bytes> {
    SECURITY.response(StatusCode::OK, "application/jwt", token)
}

/// An OAuth 2.0 error body (RFC 6749 §5.2).
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Bytes> {
    json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

/// `303 See Other` to an already validated location.
pub(crate) fn redirect(location: &url::Url) -> Response<Bytes> {
    let mut res = SECURITY.redirect(location.as_str());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(espace_ps_http::TEXT),
    );
    res
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Bytes> {
    let mut res = SECURITY.text(
        StatusCode::METHOD_NOT_ALLOWED,
        "Méthode non autorisée.".as_bytes(),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// A public key in PEM.
pub(crate) fn pem(body: &str) -> Response<Bytes> {
    SECURITY.response(StatusCode::OK, "application/x-pem-file", body.to_owned())
}
