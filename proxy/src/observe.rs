//! What is observed of each request, outside of any decision: its
//! `X-Request-Id`, its line in the access log and its request metrics.
//! The Pingora layer (`server`) calls these from its phases; everything
//! here is cheap (no label lookup by string, one small allocation for a
//! generated id).
//!
//! The access log line (target `espace_ps::access`, level `info`) carries
//! the method, the route class, the status, the duration and the request
//! id: never the path or query (they carry study UIDs and dossier
//! numbers), an identity, a name or an address. The audit trail is the
//! record of who did what.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use http::{header, HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::apps::http_app::ServeHttp;
use pingora::prelude::{ErrorSource, ErrorType};
use pingora::protocols::http::ServerSession;

use crate::app::App;
use crate::metrics::{self, RouteHandles, UpstreamError, METRICS};
use crate::router::RouteClass;

/// The header of the request id: read from a trusted gateway, sent to the
/// viewer, returned to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a gateway.
const MAX_ID_LEN: usize = 128;

/// Whether a gateway's request id may be used as ours: 1 to 128 characters
/// among letters, digits and `-_.:=+` (UUIDs, nginx's `$request_id`, AWS's
/// `Root=1-…`); nothing that could forge a log line or a field.
pub fn well_formed_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_ID_LEN
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:=+".contains(b))
}

/// A new request id: this process's random 48-bit prefix and a counter
/// (`3f9c0a1b22e4-1a`), unique across instances and restarts without
/// drawing random bytes per request.
pub fn new_request_id() -> HeaderValue {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        use rand_core::RngCore;
        rand_core::OsRng.next_u64() & 0xffff_ffff_ffff
    });
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 12 + 1 + at most 16 hex digits, written into a stack buffer.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 29];
    let mut len = 0;
    for shift in (0..12).rev() {
        buf[len] = HEX[((*PREFIX >> (shift * 4)) & 0xf) as usize];
        len += 1;
    }
    buf[len] = b'-';
    len += 1;
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for shift in (0..digits).rev() {
        buf[len] = HEX[((n >> (shift * 4)) & 0xf) as usize];
        len += 1;
    }
    // Shared from its own allocation: the id is cloned into the viewer's
    // request and into the response, which then only count a reference
    // (bytes copied into a header value are moved again at their first
    // clone).
    struct Id([u8; 29], usize);
    impl AsRef<[u8]> for Id {
        fn as_ref(&self) -> &[u8] {
            &self.0[..self.1]
        }
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(Id(buf, len)))
        .expect("hex digits are a header value")
}

/// The request id of a request: the gateway's when the connection comes
/// from a trusted gateway and its value is well formed, else a new one.
/// The trust check runs only when the header is there.
pub fn request_id(
    header: Option<&HeaderValue>,
    peer: Option<std::net::IpAddr>,
    trusted: &[IpNet],
) -> HeaderValue {
    if let (Some(v), Some(peer)) = (header, peer) {
        let peer = peer.to_canonical();
        if well_formed_id(v.as_bytes()) && trusted.iter().any(|n| n.contains(&peer)) {
            return v.clone();
        }
    }
    new_request_id()
}

/// The route classes, in [`slot`] order.
const ROUTES: [RouteClass; 5] = [
    RouteClass::Auth,
    RouteClass::Health,
    RouteClass::Static,
    RouteClass::Portal,
    RouteClass::Viewer,
];

/// A route class's place in [`RequestMetrics`] (exhaustive: a new class
/// does not compile until it has one).
fn slot(route: RouteClass) -> usize {
    match route {
        RouteClass::Auth => 0,
        RouteClass::Health => 1,
        RouteClass::Static => 2,
        RouteClass::Portal => 3,
        RouteClass::Viewer => 4,
    }
}

/// The request counters and histograms of every route class, resolved once.
pub struct RequestMetrics([RouteHandles; 5]);

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics(ROUTES.map(|r| RouteHandles::new(r.label())))
    }
}

impl RequestMetrics {
    /// Counts a finished request and writes its access log line.
    pub fn finish(
        &self,
        method: &http::Method,
        route: RouteClass,
        status: u16,
        elapsed: Duration,
        request_id: &HeaderValue,
        error: Option<&pingora::Error>,
    ) {
        self.0[slot(route)].observe(status, elapsed.as_secs_f64());
        if let Some(kind) = error.and_then(upstream_error) {
            metrics::count_upstream_error(kind);
        }
        // A request id is ASCII by construction (generated or well formed).
        let id = std::str::from_utf8(request_id.as_bytes()).unwrap_or("-");
        tracing::info!(
            target: "espace_ps::access",
            method = method.as_str(),
            route = route.label(),
            status,
            ms = elapsed.as_millis() as u64,
            request_id = id,
            error = error.map(|e| e.etype().as_str()),
            "request"
        );
    }
}

/// What kind of viewer failure an error of a proxied request is; None when
/// the viewer was not at fault (the client, or espace-ps itself).
pub fn upstream_error(e: &pingora::Error) -> Option<UpstreamError> {
    if e.esource() != &ErrorSource::Upstream {
        return None;
    }
    Some(match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => UpstreamError::Timeout,
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::SocketError => UpstreamError::Connect,
        ErrorType::ConnectionClosed
        | ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error => UpstreamError::Closed,
        _ => UpstreamError::Other,
    })
}

// === admin listener ===

/// `/metrics`, `/-/healthz` and `/-/readyz` on the admin listener (what a
/// Kubernetes probe or a monitoring system asks, off the public network).
/// A scrape counts the live sessions first (`espace_sessions_active`; a
/// store that does not answer within a second leaves the last count).
pub struct AdminApp {
    pub app: Arc<App>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (status, ctype, body) = match session.req_header().uri.path() {
            "/metrics" => {
                let count = self.app.router.sessions.count_live();
                match tokio::time::timeout(Duration::from_secs(1), count).await {
                    Ok(Ok(n)) => METRICS.sessions_active.set(n as i64),
                    Ok(Err(e)) => tracing::debug!(error = %e, "live sessions not counted"),
                    Err(_) => tracing::debug!("live sessions not counted: timeout"),
                }
                (
                    200,
                    "text/plain; version=0.0.4",
                    metrics::render().into_bytes(),
                )
            }
            "/-/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            "/-/readyz" => match self.app.router.readiness().await {
                Ok(()) => (200, "text/plain", b"ready\n".to_vec()),
                Err(why) => (503, "text/plain", why.as_bytes().to_vec()),
            },
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        http::Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, ctype)
            .header(header::CONTENT_LENGTH, body.len())
            .body(body)
            .expect("static response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_class_has_its_slot() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert_eq!(slot(*r), i, "{r:?}");
        }
    }

    #[test]
    fn generated_ids_are_unique_and_well_formed() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(well_formed_id(id.as_bytes()), "{id:?}");
            assert_eq!(id.as_bytes()[12], b'-', "{id:?}");
        }
        assert_eq!(
            a.as_bytes()[..12],
            b.as_bytes()[..12],
            "one prefix per process"
        );
    }

    #[test]
    fn a_gateway_id_is_kept_only_from_a_trusted_gateway_and_well_formed() {
        let gw: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let from_gw = Some("10.1.2.3".parse().unwrap());
        let from_client = Some("192.0.2.7".parse().unwrap());
        let good = HeaderValue::from_static("7d2c1f0e-4b1a-4a57-9a3e-1f0c2b3d4e5f");
        assert_eq!(request_id(Some(&good), from_gw, &gw), good);
        assert_ne!(request_id(Some(&good), from_client, &gw), good);
        // An IPv4-mapped gateway address is the gateway.
        let mapped = Some("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(request_id(Some(&good), mapped, &gw), good);
        for bad in ["a b", "x\"y", "", "id;drop", "é"] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert_ne!(request_id(Some(&v), from_gw, &gw), v, "{bad:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_ne!(request_id(Some(&long), from_gw, &gw), long);
    }

    #[test]
    fn only_the_viewers_failures_count_as_upstream_errors() {
        let up = |t| upstream_error(&pingora::Error::new_up(t));
        assert_eq!(up(ErrorType::ConnectRefused), Some(UpstreamError::Connect));
        assert_eq!(up(ErrorType::ReadTimedout), Some(UpstreamError::Timeout));
        assert_eq!(up(ErrorType::ConnectionClosed), Some(UpstreamError::Closed));
        let client_gone = pingora::Error::new_down(ErrorType::ConnectionClosed);
        assert_eq!(upstream_error(&client_gone), None);
        let ours = pingora::Error::new(ErrorType::HTTPStatus(403));
        assert_eq!(upstream_error(&ours), None);
    }
}
