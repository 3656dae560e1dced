//! What the viewer receives: exactly the request the gate validated, with
//! the client's identity claims and our cookies taken out and the headers a
//! proxy owes its upstream put in (`Host`, `Forwarded`, `X-Forwarded-For`,
//! `X-Request-Id`).

use std::net::IpAddr;
use std::time::Instant;

use http::header;
use pingora::prelude::*;

use super::{titled, values, Ctx};
use crate::app::App;
use crate::web::{FLOW_COOKIE, SESSION_COOKIE};

/// The fixed part of what the viewer receives, computed once.
pub(super) struct ToViewer {
    /// The `Forwarded` value sent to the viewer (from `server.public_url`).
    forwarded: http::HeaderValue,
    /// The `Host` sent to the viewer (`upstream.address`).
    host: http::HeaderValue,
    /// The names of our cookies (session, login flow), never sent to the
    /// viewer.
    our_cookies: [String; 2],
}

impl ToViewer {
    pub(super) fn new(app: &App) -> ToViewer {
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
        ToViewer {
            forwarded: header(format!("host={host};proto={}", public.scheme())),
            host: header(app.config.upstream.address.clone()),
            our_cookies: [
                app.cookies.name(SESSION_COOKIE),
                app.cookies.name(FLOW_COOKIE),
            ],
        }
    }

    /// The name of the session cookie.
    pub(super) fn session_cookie(&self) -> &str {
        &self.our_cookies[0]
    }

    /// `upstream_request_filter`: the request as the viewer gets it.
    pub(super) fn rewrite(
        &self,
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
        upstream_request.insert_header(titled::HOST, self.host.clone())?;
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
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
