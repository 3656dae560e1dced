//! Plain HTTP values for the pages espace-ps serves itself: the request as
//! handlers see it, responses with the security headers built in one place,
//! the one cookie builder, the client address, safe `return_to` paths, and
//! the CSRF check. No sockets here: handlers are plain async functions.

use std::net::IpAddr;

use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::config::{IpNet, ServerConfig};

/// A request to one of espace-ps's own routes, body read in full (bounded).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client_ip: IpAddr,
    /// The request's id (`X-Request-Id`), for its audit records.
    pub request_id: String,
}

pub type Resp = http::Response<Bytes>;

/// The most a local route reads of a request body.
pub const MAX_LOCAL_BODY: usize = 64 * 1024;

impl Req {
    /// First value of a query parameter (decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_param(self.query.as_deref()?.as_bytes(), name)
    }

    /// First value of an `application/x-www-form-urlencoded` body parameter.
    pub fn form_param(&self, name: &str) -> Option<String> {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return None;
        }
        form_param(&self.body, name)
    }

    /// The value of the first cookie named `name`, over every `Cookie`
    /// header line.
    pub fn cookie(&self, name: &str) -> Option<String> {
        cookie_value(&self.headers, name).map(str::to_owned)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path with its query, as the browser asked for it.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// The value of the first cookie named `name` over every `Cookie` header
/// line, borrowed: as the `cookie` crate reads a `Cookie` header (pieces
/// split on `;`, name and value trimmed, a piece without `=` skipped), without
/// building a cookie per piece (this runs on every viewer request).
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    if name.is_empty() {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|piece| piece.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim())
}

fn form_param(data: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(data)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

// === responses ===

pub use espace_ps_http::Cache;

/// The security headers every page of ours carries (the builders below and
/// [`security_headers`] set them, from `espace_ps_http`).
pub const SECURITY: espace_ps_http::SecurityHeaders = espace_ps_http::SecurityHeaders(&[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), usb=()",
    ),
]);

/// Adds the security headers every page of ours carries.
pub fn security_headers(headers: &mut HeaderMap, cache: Cache) {
    SECURITY.apply(headers, cache);
}

pub fn html(status: StatusCode, body: String) -> Resp {
    SECURITY.html(status, body)
}

/// A JSON answer from a view struct (or a `serde_json::Value`).
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Resp {
    SECURITY.json(status, body)
}

pub fn text(status: StatusCode, body: &'static str) -> Resp {
    SECURITY.text(status, body)
}

/// A 303 to `location` (a relative path or an absolute URL we built).
pub fn redirect(location: &str) -> Resp {
    SECURITY.redirect(location)
}

pub fn add_cookie(resp: &mut Resp, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

// === cookies ===

/// The one cookie builder: `__Host-` prefix, Secure, HttpOnly, SameSite=Lax,
/// Path=/ on https; without the prefix and Secure only on a loopback http
/// origin (demo and tests).
#[derive(Debug, Clone)]
pub struct Cookies {
    secure: bool,
}

pub const SESSION_COOKIE: &str = "espace-session";
pub const FLOW_COOKIE: &str = "espace-login";

impl Cookies {
    pub fn new(server: &ServerConfig) -> Cookies {
        Cookies {
            secure: server.secure_cookies(),
        }
    }

    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// The `Set-Cookie` value; `max_age` None: a browser-session cookie.
    pub fn set(&self, base: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = Cookie::build((self.name(base), value.to_owned()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure);
        if let Some(age) = max_age {
            c = c.max_age(time::Duration::seconds(
                i64::try_from(age).unwrap_or(i64::MAX),
            ));
        }
        c.build().to_string()
    }

    pub fn clear(&self, base: &str) -> String {
        self.set(base, "", Some(0))
    }
}

// === client address ===

/// The client's address.
///
/// Addresses are canonicalized first (`::ffff:10.0.0.5` is `10.0.0.5`), so
/// IPv4-mapped peers match IPv4 gateway networks. When the connection does
/// not come from a trusted gateway, the client is the peer. Otherwise
/// `X-Forwarded-For` is read right to left (every header line, in order):
/// each trusted gateway vouches for the entry to its left, so the walk stops
/// at the first address that is not a trusted gateway, and that is the
/// client. Entries left of it are the client's own claims and are never
/// read, garbage included. An entry that is not an address at or right of
/// that point (a gateway wrote something unreadable) ends the walk too: the
/// client is then the last trusted hop, the nearest address a trusted
/// gateway vouches for, never a value further left that the client may have
/// made up. Empty list elements are skipped (RFC 9110 lists allow them), and
/// an entry may carry a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // None: an unreadable entry. Split on the raw bytes: a gateway that
    // appends to the client's header (`<client's value>, <address>`) puts
    // the address it vouches for on the same line as whatever bytes the
    // client sent, so one byte that is not text spoils its own entry only.
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        hops.extend(
            v.as_bytes()
                .split(|b| *b == b',')
                .map(|p| p.trim_ascii())
                .filter(|p| !p.is_empty())
                .map(|p| std::str::from_utf8(p).ok().and_then(parse_forwarded_addr)),
        );
    }
    let mut last_trusted = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(&ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => return last_trusted,
        }
    }
    last_trusted
}

/// One `X-Forwarded-For` entry: an address, optionally with a port.
fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

// === return_to ===

/// A same-origin relative path to go back to after login, or None. Refuses
/// absolute URLs, scheme-relative `//host`, `/\host`, encoded variants of
/// those, control characters, and our own `/auth/` routes.
pub fn safe_return_to(raw: &str) -> Option<String> {
    if raw.len() > 2048 || !raw.starts_with('/') {
        return None;
    }
    // Decode repeatedly so that encoded slashes or backslashes cannot hide.
    let mut decoded = raw.to_owned();
    for _ in 0..3 {
        let next = urlencoding::decode(&decoded).ok()?.into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let bad_start = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 2 && matches!(b[1], b'/' | b'\\')
    };
    if bad_start(raw)
        || bad_start(&decoded)
        || decoded.contains('\\')
        || decoded.chars().any(|c| c.is_control())
        || raw.chars().any(|c| c.is_control() || c == ' ')
        || decoded.starts_with("/auth/")
    {
        return None;
    }
    // The URL parser must agree it stays on our origin.
    let base = url::Url::parse("https://espace.invalid/").expect("static URL");
    let joined = base.join(raw).ok()?;
    if joined.origin() != base.origin() {
        return None;
    }
    Some(raw.to_owned())
}

// === CSRF ===

/// A state-changing request carries our CSRF token and comes from our origin.
pub fn csrf_ok(req: &Req, expected_token: &str, public_origin: &str) -> bool {
    let origin_ok = match req.header("origin") {
        Some(o) => o == public_origin,
        None => req
            .header("referer")
            .is_some_and(|r| r == public_origin || r.starts_with(&format!("{public_origin}/"))),
    };
    let token = req
        .form_param("csrf_token")
        .or_else(|| req.header("x-csrf-token").map(str::to_owned))
        .unwrap_or_default();
    let token_ok = !expected_token.is_empty()
        && subtle::ConstantTimeEq::ct_eq(token.as_bytes(), expected_token.as_bytes()).into();
    origin_ok && token_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;

    #[test]
    fn return_to_accepts_plain_paths() {
        for ok in [
            "/",
            "/patients/12",
            "/app/viewer.html?study=1.2.3",
            "/a%20b",
        ] {
            assert_eq!(safe_return_to(ok).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn return_to_refuses_open_redirects() {
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%252Fevil.example",
            "\\\\evil.example",
            "/\tevil",
            "/%09/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/auth/logout",
            "/%61uth/logout",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad}");
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_from_gateways() {
        let gw = vec![crate::config::parse_ip_net("10.0.0.0/8").unwrap()];
        let h = xff(&["203.0.113.9, 10.0.0.7"]);
        let peer_gw = ip("10.0.0.1");
        let peer_other = ip("198.51.100.1");
        assert_eq!(client_ip(peer_gw, &h, &gw), ip("203.0.113.9"));
        assert_eq!(client_ip(peer_other, &h, &gw), peer_other);
        // Nothing forwarded: the gateway itself.
        assert_eq!(client_ip(peer_gw, &HeaderMap::new(), &gw), peer_gw);
        // Only gateways: the left-most of them, the hop that started it.
        assert_eq!(
            client_ip(peer_gw, &xff(&["10.0.0.9, 10.0.0.7"]), &gw),
            ip("10.0.0.9")
        );
    }

    /// Issue 9: one unparsable entry made the client the gateway.
    #[test]
    fn client_ip_ignores_garbage_left_of_the_client() {
        let gw = vec![crate::config::parse_ip_net("10.0.0.0/8").unwrap()];
        let peer = ip("10.0.0.1");
        for (values, want) in [
            // The client sent garbage (or a spoofed address) of its own.
            (&["garbage, 203.0.113.9"][..], "203.0.113.9"),
            (&["garbage, 203.0.113.9, 10.0.0.7"][..], "203.0.113.9"),
            (&["1.2.3.4, <script>, 203.0.113.9"][..], "203.0.113.9"),
            (&["garbage", "203.0.113.9, 10.0.0.7"][..], "203.0.113.9"),
            (&["203.0.113.9:4711"][..], "203.0.113.9"),
            (&["[2001:db8::1]:4711"][..], "2001:db8::1"),
            (&["203.0.113.9,, "][..], "203.0.113.9"),
            // Garbage right of the client: the last trusted hop, never
            // the (spoofable) address further left.
            (&["203.0.113.9, garbage"][..], "10.0.0.1"),
            (&["198.51.100.7, garbage, 10.0.0.7"][..], "10.0.0.7"),
        ] {
            assert_eq!(client_ip(peer, &xff(values), &gw), ip(want), "{values:?}");
        }
        // A header line that is not text is garbage at its place.
        let mut h = xff(&["203.0.113.9"]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(client_ip(peer, &h, &gw), peer);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        h.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(peer, &h, &gw), ip("203.0.113.9"));
        // A gateway that appends to the client's own header: a byte that is
        // not text in the client's part spoils that entry only.
        let h = {
            let mut h = HeaderMap::new();
            h.append(
                "x-forwarded-for",
                HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap(),
            );
            h
        };
        assert_eq!(client_ip(peer, &h, &gw), ip("203.0.113.9"));
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.9, \xff").unwrap(),
        );
        assert_eq!(client_ip(peer, &h, &gw), peer);
    }

    /// Issue 9: `::ffff:10.0.0.5` is the IPv4 gateway 10.0.0.5.
    #[test]
    fn client_ip_canonicalizes_ipv4_mapped_addresses() {
        let gw = vec![crate::config::parse_ip_net("10.0.0.0/8").unwrap()];
        let h = xff(&["::ffff:203.0.113.9, ::ffff:10.0.0.7"]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.5"), &h, &gw), ip("203.0.113.9"));
        // An untrusted mapped peer is reported in its IPv4 form.
        assert_eq!(
            client_ip(ip("::ffff:198.51.100.1"), &h, &gw),
            ip("198.51.100.1")
        );
        // Configured as a mapped network, it matches the same peers.
        let mapped = vec![crate::config::parse_ip_net("::ffff:10.0.0.0/104").unwrap()];
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &h, &mapped),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &mapped), ip("203.0.113.9"));
    }

    #[test]
    fn cookies_are_host_prefixed_and_secure_on_https() {
        let c = Cookies { secure: true };
        let s = c.set(SESSION_COOKIE, "abc", None);
        // The `cookie` crate writes the attributes in its own order.
        assert_eq!(
            s,
            "__Host-espace-session=abc; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        let attrs = |s: &str| {
            let mut a: Vec<String> = s.split("; ").map(str::to_owned).collect();
            a.sort();
            a
        };
        assert_eq!(
            attrs(&s),
            attrs("__Host-espace-session=abc; Path=/; HttpOnly; SameSite=Lax; Secure")
        );
        assert!(c.clear(SESSION_COOKIE).contains("Max-Age=0"));
        assert_eq!(
            attrs(&c.clear(SESSION_COOKIE)),
            attrs("__Host-espace-session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
        );
        assert_eq!(
            attrs(&c.set(FLOW_COOKIE, "f", Some(600))),
            attrs("__Host-espace-login=f; Path=/; HttpOnly; SameSite=Lax; Max-Age=600; Secure")
        );
        let plain = Cookies { secure: false };
        assert_eq!(plain.name(SESSION_COOKIE), "espace-session");
        assert!(!plain.set(SESSION_COOKIE, "abc", None).contains("Secure"));
        assert_eq!(
            attrs(&plain.set(SESSION_COOKIE, "abc", None)),
            attrs("espace-session=abc; Path=/; HttpOnly; SameSite=Lax")
        );
    }

    #[test]
    fn request_cookies_are_read_over_every_header_line() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; espace-session=s1=; b".parse().unwrap(),
        );
        headers.append(
            header::COOKIE,
            "espace-login=f;espace-session=s2".parse().unwrap(),
        );
        let req = Req {
            method: Method::GET,
            path: "/".into(),
            query: None,
            headers,
            body: Bytes::new(),
            client_ip: "127.0.0.1".parse().unwrap(),
            request_id: "t-1".into(),
        };
        assert_eq!(req.cookie(SESSION_COOKIE).as_deref(), Some("s1="));
        assert_eq!(req.cookie(FLOW_COOKIE).as_deref(), Some("f"));
        assert_eq!(req.cookie("a").as_deref(), Some("1"));
        assert_eq!(req.cookie("b"), None);
        assert_eq!(req.cookie("__Host-espace-session"), None);
    }

    /// The hand-written reading names the cookie the `cookie` crate names,
    /// on every odd header line a client may send.
    #[test]
    fn cookie_reading_agrees_with_the_cookie_crate() {
        let lines = [
            "a=1; espace-session=s1=; b",
            " espace-session = s2 ;x=y",
            ";;espace-session=;espace-session=s3",
            "=v; espace-session=\"q\"",
            "espace-session",
            "espace-sessionx=1; xespace-session=2",
            "\tespace-session=tab\t; a=b",
            "a=1;;  ; espace-session=s4; espace-session=s5",
            "",
        ];
        for line in lines {
            let mut headers = HeaderMap::new();
            headers.append(header::COOKIE, line.parse().unwrap());
            for name in [SESSION_COOKIE, "a", "x", ""] {
                let crate_reads = Cookie::split_parse(line)
                    .filter_map(Result::ok)
                    .find(|c| c.name() == name)
                    .map(|c| c.value().to_owned());
                assert_eq!(
                    cookie_value(&headers, name).map(str::to_owned),
                    crate_reads,
                    "{name} in {line:?}"
                );
            }
        }
    }

    fn post(headers: &[(&str, &str)], body: &str) -> Req {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        for (k, v) in headers {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Req {
            method: Method::POST,
            path: "/x".into(),
            query: None,
            headers: h,
            body: Bytes::from(body.to_owned()),
            client_ip: "127.0.0.1".parse().unwrap(),
            request_id: "t-1".into(),
        }
    }

    #[test]
    fn csrf_needs_token_and_origin() {
        let o = "https://espace.example";
        assert!(csrf_ok(&post(&[("origin", o)], "csrf_token=tok"), "tok", o));
        assert!(!csrf_ok(
            &post(&[("origin", o)], "csrf_token=other"),
            "tok",
            o
        ));
        assert!(!csrf_ok(
            &post(&[("origin", "https://evil")], "csrf_token=tok"),
            "tok",
            o
        ));
        assert!(!csrf_ok(&post(&[], "csrf_token=tok"), "tok", o));
        assert!(csrf_ok(
            &post(&[("referer", "https://espace.example/x")], "csrf_token=tok"),
            "tok",
            o
        ));
        assert!(!csrf_ok(
            &post(
                &[("referer", "https://espace.example.evil/")],
                "csrf_token=tok"
            ),
            "tok",
            o
        ));
        assert!(!csrf_ok(&post(&[("origin", o)], "csrf_token="), "", o));
    }
}
