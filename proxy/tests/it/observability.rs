//! What an operator watches (issue 15, item 2): the metrics on the admin
//! listener, the access log line of each request and the `X-Request-Id`,
//! against the real binary. A client that hangs up before its answer is not
//! a server error; a refused decision is counted as a deny; the access log
//! names no path, id or professional.

use std::time::Duration;

use espace_ps_demo_data::{self as demo_data, showcase::*, DemoConfig};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = ELISE_NATIONAL_ID;

/// The value of the sample whose line is exactly `name{labels}`, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Demo records in a SQLite file (on the tests' pinned day).
async fn sqlite_records(dir: &std::path::Path) -> String {
    let url = format!("sqlite://{}", dir.join("records.sqlite").display());
    let mut c = DemoConfig::demo(test_today());
    c.patients = 50;
    demo_data::generate(&url, &c).await.unwrap();
    format!("{url}?mode=ro")
}

/// A viewer that answers `…/slow.html` only once told to (the test hangs up
/// first), and anything else at once with the request's `x-request-id`.
async fn start_viewer(
    release: std::sync::Arc<tokio::sync::Notify>,
    received: tokio::sync::mpsc::UnboundedSender<String>,
) -> (String, tokio::task::JoinHandle<()>) {
    start_fake_upstream(move |req: FakeRequest| {
        let (release, received) = (release.clone(), received.clone());
        async move {
            let _ = received.send(req.target.clone());
            if req.target.ends_with("/slow.html") {
                release.notified().await;
            }
            let id = req
                .headers
                .iter()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-request-id"))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default();
            FakeResponse {
                status: 200,
                headers: vec!["content-type: text/plain".into()],
                body: id.into_bytes(),
            }
        }
    })
    .await
}

#[tokio::test]
async fn metrics_access_log_and_request_id_tell_the_operator_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let records = sqlite_records(dir.path()).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (viewer, _task) = start_viewer(release.clone(), received_tx).await;
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        upstream: Some(viewer),
        records_url: Some(records),
        log_format_json: true,
        ..Default::default()
    })
    .await;

    // What any instance shows before a request: its build and its process.
    let m = proxy.metrics().await;
    assert!(
        m.contains(&format!(
            "espace_build_info{{revision=\"unknown\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    for name in ["process_cpu_seconds_total", "process_resident_memory_bytes"] {
        assert!(m.contains(name), "{name}");
    }
    assert_eq!(sample(&m, "espace_sessions_active"), 0.0);
    // Readiness on the admin listener too (Kubernetes probes it there).
    let ready = reqwest::get(format!("{}/-/readyz", proxy.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.unwrap(), "ready\n");

    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    // Every answer of ours carries a request id.
    let id = home.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.len() >= 14, "{id}");
    assert_eq!(
        sample(&proxy.metrics().await, "espace_sessions_active"),
        1.0,
        "the signed-in session is live"
    );

    // A refused decision is counted as a deny: Noël is on no care team of
    // SCANAP Françoise (Élise, on several, now sees her whole history).
    let deny = "espace_policy_decisions_total{action=\"view_dossier\",outcome=\"deny\"}";
    let noel = Browser::new();
    let noel_home = dev_idp_login(&noel, &proxy.base, NOEL_NATIONAL_ID, "/").await;
    assert_eq!(noel_home.status, StatusCode::OK, "{}", noel_home.body);
    let before = sample(&proxy.metrics().await, deny);
    let refused = noel
        .get(&format!(
            "{}/portail/dossiers/{SCANAP_DOSSIER_FEMUR}",
            proxy.base
        ))
        .await;
    assert_ne!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(!refused.body.contains("FEMUR"));
    assert_eq!(sample(&proxy.metrics().await, deny), before + 1.0);

    // The viewer gets the request's id, and the client the same one.
    let page = b
        .get(&format!("{}/web-viewer/app/viewer.html", proxy.base))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let forwarded = page.headers["x-request-id"].to_str().unwrap();
    assert_eq!(page.body, forwarded, "the viewer saw the id the client got");
    assert_ne!(forwarded, id, "one id per request");
    assert_eq!(
        received.recv().await.as_deref(),
        Some("/web-viewer/app/viewer.html")
    );
    let m = proxy.metrics().await;
    assert!(
        sample(&m, "espace_upstream_response_seconds_count") >= 1.0,
        "{m}"
    );
    // A client's own id is not taken from a client that is no gateway.
    let own = b
        .request(
            reqwest::Method::GET,
            &format!("{}/web-viewer/app/viewer.html", proxy.base),
            None,
            &[("x-request-id", "client-chosen-id")],
        )
        .await;
    assert_ne!(own.headers["x-request-id"], "client-chosen-id");
    assert_eq!(own.body, own.headers["x-request-id"].to_str().unwrap());

    // A client that hangs up while the viewer is still working: no answer
    // was written (status 0), and that is not a server error.
    let cookie = b.cookies_for(&proxy.base)["espace-session"].clone();
    let viewer_5xx = "espace_requests_total{route=\"viewer\",status=\"5xx\"}";
    let viewer_closed = "espace_requests_total{route=\"viewer\",status=\"closed\"}";
    let before_5xx = sample(&proxy.metrics().await, viewer_5xx);
    while received.try_recv().is_ok() {}
    let mut sock = tokio::net::TcpStream::connect(proxy.base.trim_start_matches("http://"))
        .await
        .unwrap();
    sock.write_all(
        format!(
            "GET /web-viewer/app/slow.html HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: espace-session={cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let arrived = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("the request reaches the viewer");
    assert_eq!(arrived.as_deref(), Some("/web-viewer/app/slow.html"));
    drop(sock);
    wait_until(
        Duration::from_secs(10),
        "the abandoned request counted",
        || async { sample(&proxy.metrics().await, viewer_closed) >= 1.0 },
    )
    .await;
    release.notify_waiters();
    assert_eq!(
        sample(&proxy.metrics().await, viewer_5xx),
        before_5xx,
        "a client disconnect is not a 5xx"
    );

    // One access log line per request, at info: method, route class,
    // status, duration and request id; never a path, an id or a name.
    let logs = proxy.logs();
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "espace_ps::access")
        .collect();
    assert!(access.len() >= 8, "{logs}");
    for line in &access {
        assert_eq!(line["level"], "INFO", "{line}");
        let f = &line["fields"];
        for key in ["method", "route", "status", "ms", "request_id"] {
            assert!(!f[key].is_null(), "{key} in {line}");
        }
        let text = line.to_string();
        for secret in [
            ELISE,
            ELISE_RPPS,
            SCANAP_DOSSIER_FEMUR,
            "/portail",
            "/web-viewer",
            "viewer.html",
            "MARTIN",
            &cookie,
        ] {
            assert!(!text.contains(secret), "{secret} in {line}");
        }
    }
    let of = |id: &str| {
        access
            .iter()
            .find(|l| l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}: {logs}"))
    };
    let line = of(forwarded);
    assert_eq!(line["fields"]["route"], "viewer");
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(line["fields"]["method"], "GET");
    assert!(
        access
            .iter()
            .any(|l| l["fields"]["route"] == "viewer" && l["fields"]["status"] == 0),
        "the abandoned request has its line, status 0: {logs}"
    );
}

/// A request id from a trusted gateway is kept, sent on to the viewer and
/// returned; a malformed one is replaced.
#[tokio::test]
async fn a_trusted_gateways_request_id_is_kept_end_to_end() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (received_tx, _received) = tokio::sync::mpsc::unbounded_channel();
    let (viewer, _task) = start_viewer(release, received_tx).await;
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        upstream: Some(viewer),
        trusted_gateways: Some("[\"127.0.0.1\"]".into()),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let url = format!("{}/web-viewer/app/viewer.html", proxy.base);
    let gateway_id = "7d2c1f0e-4b1a-4a57-9a3e-1f0c2b3d4e5f";
    let page = b
        .request(
            reqwest::Method::GET,
            &url,
            None,
            &[("x-request-id", gateway_id)],
        )
        .await;
    assert_eq!(page.headers["x-request-id"], gateway_id);
    assert_eq!(page.body, gateway_id, "the viewer got the gateway's id");
    let forged = b
        .request(
            reqwest::Method::GET,
            &url,
            None,
            &[("x-request-id", "id\" level=ERROR")],
        )
        .await;
    let replaced = forged.headers["x-request-id"].to_str().unwrap();
    assert!(!replaced.contains('"'), "{replaced}");
    assert_eq!(forged.body, replaced);
    // Our own pages carry it too.
    let health = b
        .request(
            reqwest::Method::GET,
            &format!("{}/-/healthz", proxy.base),
            None,
            &[("x-request-id", gateway_id)],
        )
        .await;
    assert_eq!(health.headers["x-request-id"], gateway_id);
}

/// With Redis, `espace_sessions_active` is the store's total: a session
/// opened on one instance is counted by both, and a logout takes it off.
/// Keys of other prefixes (another deployment on the same Redis) and the
/// login's other records are not sessions.
#[tokio::test]
async fn live_sessions_are_counted_in_the_shared_redis_store() {
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let sessions = format!(
        "store = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        peer("ESPACE_TEST_REDIS_URL")
    );
    let (a, _idp, upstream) = proxy_with_dev_idp(ProxyOpts {
        sessions: Some(sessions.clone()),
        ..Default::default()
    })
    .await;
    let b = Proxy::start(ProxyOpts {
        sessions: Some(sessions),
        upstream: Some(upstream),
        ..Default::default()
    })
    .await;
    let active = "espace_sessions_active";
    assert_eq!(sample(&a.metrics().await, active), 0.0);
    let browser = Browser::new();
    let home = dev_idp_login(&browser, &a.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert_eq!(sample(&a.metrics().await, active), 1.0);
    assert_eq!(sample(&b.metrics().await, active), 1.0, "the shared total");
    let other = Browser::new();
    let home = dev_idp_login(&other, &a.base, INES_NATIONAL_ID, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert_eq!(sample(&b.metrics().await, active), 2.0);
    // Logging out ends the session in the store.
    let form = home.form_fields("/auth/logout");
    let out = other
        .post_form(&format!("{}/auth/logout", a.base), &form, &a.base)
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(sample(&b.metrics().await, active), 1.0);
}
