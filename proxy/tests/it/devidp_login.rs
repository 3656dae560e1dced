//! Login through the dev identity provider, the session it opens, the
//! viewer gate, logout and CSRF, against the real binary.

use reqwest::StatusCode;

use super::harness::*;

const ELISE: &str = "899700123450";
const ADELI_KINE: &str = "0759970013";
const SECRET: &str = "test-secret-for-the-dev-idp-0123456789";

/// A GET through the proxy to the echo upstream: the answer (a 200) and
/// what the viewer received (its request line and headers).
async fn echoed(b: &Browser, url: &str, headers: &[(&str, &str)]) -> (Page, serde_json::Value) {
    let r = b.request(reqwest::Method::GET, url, None, headers).await;
    assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
    let seen = serde_json::from_str(&r.body).unwrap();
    (r, seen)
}

/// A proxy trusting a fresh dev IdP, with `extra.upstream` as the viewer,
/// or an echo upstream when it names none.
pub async fn proxy_with_dev_idp(extra: ProxyOpts) -> (Proxy, DevIdpServer, String) {
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let (idp, issuer) = start_dev_idp(&portal, SECRET).await;
    let (upstream, _task) = match extra.upstream.clone() {
        Some(u) => (u, tokio::spawn(async {})),
        None => start_echo_upstream().await,
    };
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(format!(
            "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\ndev_idp = true\n"
        )),
        upstream: Some(upstream.clone()),
        ..extra
    })
    .await;
    std::mem::forget(_task);
    (proxy, idp, upstream)
}

#[tokio::test]
async fn doctor_signs_in_and_sees_name_and_rpps() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let b = Browser::new();
    // Not signed in: the home page sends to the login page, which has the button.
    let login = b.get_follow(&format!("{}/", proxy.base)).await;
    assert!(login.url.contains("/auth/login"), "{}", login.url);
    assert!(login.body.contains("Je me connecte"));

    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(home.url, format!("{}/", proxy.base));
    assert!(home.body.contains("Élise MARTIN-DUPRÉ"), "{}", home.body);
    assert!(home.body.contains("99700123450"));
    assert!(home.body.contains("carte CPS"));
    assert_eq!(home.headers["cache-control"], "no-store");

    // The account was created at this first login, and the login audited.
    let db = proxy.db().await;
    assert_eq!(db.account_count(ELISE).await.unwrap(), 1);
    let audit = db.audit_tail(5).await.unwrap();
    let login = audit.iter().find(|a| a.event == "login").unwrap();
    assert_eq!(login.actor.as_deref(), Some(ELISE));
    assert_eq!(login.outcome, "success");
    assert_eq!(login.method.as_deref(), Some("psc_card"));
    assert_eq!(login.detail.as_deref(), Some("account_created"));
    assert_eq!(login.client_addr.as_deref(), Some("127.0.0.1"));

    // A second login (another browser, with a session id planted by an
    // attacker) keeps one account and gets a new id of its own.
    let first = b.cookies_for(&proxy.base)["espace-session"].clone();
    let other = Browser::new();
    let planted = "A".repeat(43);
    other.jar.add_cookie_str(
        &format!("espace-session={planted}"),
        &reqwest::Url::parse(&proxy.base).unwrap(),
    );
    dev_idp_login(&other, &proxy.base, ELISE, "/").await;
    let second = other.cookies_for(&proxy.base)["espace-session"].clone();
    assert_ne!(second, planted);
    assert_ne!(first, second);
    assert_eq!(db.account_count(ELISE).await.unwrap(), 1);
    assert_eq!(
        b.get(&format!("{}/", proxy.base)).await.status,
        StatusCode::OK
    );

    // The login is logged, without personal data.
    let logs = proxy.logs();
    assert!(
        logs.contains("login") && logs.contains("account=1"),
        "{logs}"
    );
    assert!(!logs.contains(ELISE) && !logs.contains("99700123450"));
    assert!(!logs.contains("Martin") && !logs.contains("MARTIN"));
}

#[tokio::test]
async fn adeli_professional_has_no_rpps() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ADELI_KINE, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("aucun (identifiant non RPPS)"),
        "{}",
        home.body
    );
}

#[tokio::test]
async fn return_to_brings_back_to_the_page_asked() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let b = Browser::new();
    // The viewer sends an unauthenticated browser to login with return_to.
    let r = b
        .get(&format!(
            "{}/web-viewer/app/viewer.html?series=1",
            proxy.base
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let loc = r.location().unwrap();
    assert!(
        loc.ends_with("/auth/login?return_to=%2Fweb-viewer%2Fapp%2Fviewer.html%3Fseries%3D1"),
        "{loc}"
    );
    let landed = dev_idp_login(
        &b,
        &proxy.base,
        ELISE,
        "/web-viewer/app/viewer.html?series=1",
    )
    .await;
    assert_eq!(
        landed.url,
        format!("{}/web-viewer/app/viewer.html?series=1", proxy.base)
    );
}

#[tokio::test]
async fn open_redirect_variants_land_on_the_portal() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "/%252F%252Fevil.example",
        "http:evil.example",
    ] {
        let b = Browser::new();
        let landed = dev_idp_login(&b, &proxy.base, ELISE, evil).await;
        assert_eq!(landed.url, format!("{}/", proxy.base), "return_to {evil}");
    }
}

#[tokio::test]
async fn viewer_needs_a_session_and_gets_no_client_identity() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let b = Browser::new();
    let api = b
        .request(
            reqwest::Method::GET,
            &format!("{}/dicom-web/studies", proxy.base),
            None,
            &[("accept", "application/dicom+json")],
        )
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);

    dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    b.jar
        .add_cookie_str("viewer-pref=1", &reqwest::Url::parse(&proxy.base).unwrap());
    // An unscoped search of every study: refused (deny by default).
    let r = b
        .request(
            reqwest::Method::GET,
            &format!("{}/dicom-web/studies", proxy.base),
            None,
            &[("accept", "application/dicom+json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The viewer application itself goes through, stripped of client identity.
    let (r, seen) = echoed(
        &b,
        &format!("{}/web-viewer/app/viewer.html?series=1", proxy.base),
        &[
            ("x-remote-user", "admin"),
            ("x-forwarded-user", "admin"),
            ("authorization", "Basic YWRtaW46YWRtaW4="),
            ("accept-encoding", "gzip, br"),
        ],
    )
    .await;
    assert_eq!(
        seen["request_line"],
        "GET /web-viewer/app/viewer.html?series=1 HTTP/1.1"
    );
    let headers: Vec<String> = seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    for banned in ["x-remote-user", "x-forwarded-user", "authorization"] {
        assert!(
            !headers.iter().any(|h| h.starts_with(&format!("{banned}:"))),
            "{banned} reached the viewer: {headers:?}"
        );
    }
    let cookie = headers.iter().find(|h| h.starts_with("cookie:")).unwrap();
    assert!(!cookie.contains("espace-session"), "{cookie}");
    assert!(cookie.contains("viewer-pref=1"));
    // A page is rewritten on its way back: asked for uncompressed.
    let encodings: Vec<&String> = headers
        .iter()
        .filter(|h| h.starts_with("accept-encoding:"))
        .collect();
    assert_eq!(encodings, ["accept-encoding: identity"], "{headers:?}");
    assert_eq!(r.headers["cache-control"], "no-store");
    // A target spelled otherwise reaches the viewer in its canonical form,
    // the one that was decided (a canonical one goes on byte for byte).
    let (_, seen) = echoed(
        &b,
        &format!("{}/web-viewer/app/%76iewer.html?&series=1&&", proxy.base),
        &[],
    )
    .await;
    assert_eq!(
        seen["request_line"],
        "GET /web-viewer/app/viewer.html?series=1 HTTP/1.1"
    );
    // A method override asking for another method is refused outright.
    let r = b
        .request(
            reqwest::Method::GET,
            &format!("{}/web-viewer/app/viewer.html?series=1", proxy.base),
            None,
            &[("x-http-method-override", "DELETE")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn logout_needs_csrf_and_ends_the_session_at_psc_too() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    let form = home.form_fields("/auth/logout");
    assert_eq!(form[0].0, "csrf_token");

    // Without the token, or from another origin: refused, still signed in.
    let no_token = b
        .post_form(&format!("{}/auth/logout", proxy.base), &[], &proxy.base)
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let other_origin = b
        .post_form(
            &format!("{}/auth/logout", proxy.base),
            &form,
            "https://evil.example",
        )
        .await;
    assert_eq!(other_origin.status, StatusCode::FORBIDDEN);
    assert_eq!(
        b.get(&format!("{}/", proxy.base)).await.status,
        StatusCode::OK
    );

    let out = b
        .post_form(&format!("{}/auth/logout", proxy.base), &form, &proxy.base)
        .await;
    assert_eq!(out.status, StatusCode::OK);
    let end_session = regex::Regex::new(r#"id="continuer" href="([^"]+)""#)
        .unwrap()
        .captures(&out.body)
        .map(|c| html_unescape(&c[1]))
        .expect("a link to PSC's end-session endpoint");
    let url = reqwest::Url::parse(&end_session).unwrap();
    assert!(url.path().ends_with("/protocol/openid-connect/logout"));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(q["id_token_hint"].split('.').count() == 3);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("{}/auth/logged-out", proxy.base)
    );
    assert!(!q["state"].is_empty());
    assert!(out
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("espace-session=;")));

    // PSC sends the browser back to our logged-out page.
    let back = b.get_follow(&end_session).await;
    assert!(
        back.url
            .starts_with(&format!("{}/auth/logged-out", proxy.base)),
        "{}",
        back.url
    );
    assert!(back.body.contains("Vous êtes déconnecté"));
    let r = b.get(&format!("{}/", proxy.base)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let db = proxy.db().await;
    assert!(db
        .audit_tail(5)
        .await
        .unwrap()
        .iter()
        .any(|a| a.event == "logout" && a.actor.as_deref() == Some(ELISE)));
}

#[tokio::test]
async fn login_is_rate_limited_per_address() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        login_per_minute: Some(3),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let url = format!("{}/auth/login?start=1", proxy.base);
    for _ in 0..3 {
        assert_eq!(b.get(&url).await.status, StatusCode::SEE_OTHER);
    }
    let limited = b.get(&url).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.body.contains("Trop de tentatives"));
    let metrics = reqwest::get(format!("{}/metrics", proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("espace_rate_limited_total{endpoint=\"login\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn serve_refuses_the_dev_idp_unless_configured() {
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let (_idp, issuer) = start_dev_idp(&portal, SECRET).await;
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(format!(
            "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\n"
        )),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let r = b.get(&format!("{}/auth/login?start=1", proxy.base)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("fournisseur d&#x27;identité n&#x27;est pas celui attendu")
            || r.body.contains("n'est pas celui attendu"),
        "{}",
        r.body
    );
    assert!(!b.cookies_for(&proxy.base).contains_key("espace-login"));
}

#[tokio::test]
async fn callback_without_the_pending_login_is_refused() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    // A callback with no flow cookie (a forged or replayed link).
    let b = Browser::new();
    let r = b
        .get(&format!("{}/auth/callback?code=abc&state=xyz", proxy.base))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("La connexion a échoué"));
    proxy.assert_incident(&r.body, "flow_missing").await;
    assert!(!b.cookies_for(&proxy.base).contains_key("espace-session"));

    // A wrong state with a real pending login.
    let start = b.get(&format!("{}/auth/login?start=1", proxy.base)).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let r = b
        .get(&format!(
            "{}/auth/callback?code=abc&state=wrong",
            proxy.base
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    proxy.assert_incident(&r.body, "state_mismatch").await;
    assert!(!b.cookies_for(&proxy.base).contains_key("espace-session"));
    let db = proxy.db().await;
    let refused: Vec<_> = db
        .audit_tail(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 2);
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_without_personal_data() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        log_format_json: true,
        ..Default::default()
    })
    .await;
    dev_idp_login(&Browser::new(), &proxy.base, ELISE, "/").await;
    wait_until(
        std::time::Duration::from_secs(5),
        "the login log line",
        || async { proxy.logs().contains("\"login\"") },
    )
    .await;
    let logs = proxy.logs();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    assert!(!logs.contains(ELISE) && !logs.contains("Élise"));
}
