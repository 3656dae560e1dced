//! Token-endpoint client authentication by mutual TLS (`tls_client_auth`,
//! RFC 8705) against the PSC look-alike provider behind a real TLS
//! terminator: the harness (`espace_ps_testenv`) starts nginx in front of the
//! provider (asking for client certificates, verifying them against a
//! throwaway CA and forwarding them to the provider) and names the CA, two
//! client certificates and the first one's subject DN (`ESPACE_TEST_MTLS_*`). The
//! provider advertises nginx's token endpoint in discovery's
//! `mtls_endpoint_aliases` and checks the certificate's DN against the one
//! registered for the client.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::harness::*;
use super::psc_login::{PscSetup, PAUL};

/// Which certificate the proxy presents, and whether it trusts the test CA.
struct MtlsOpts {
    cert_var: &'static str,
    key_var: &'static str,
    trust_test_ca: bool,
}

const REGISTERED: MtlsOpts = MtlsOpts {
    cert_var: "ESPACE_TEST_MTLS_CLIENT_CERT",
    key_var: "ESPACE_TEST_MTLS_CLIENT_KEY",
    trust_test_ca: true,
};

/// Registers a `tls_client_auth` client bound to the registered
/// certificate's DN; returns the registration answer.
async fn register(port: u16) -> Value {
    let issuer = peer("ESPACE_TEST_OIDC_ISSUER");
    let reg = json!({
        "redirect_uris": [format!("http://127.0.0.1:{port}/auth/callback")],
        "post_logout_redirect_uris": [format!("http://127.0.0.1:{port}/auth/logged-out")],
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": peer("ESPACE_TEST_MTLS_CLIENT_DN"),
        "id_token_signed_response_alg": "RS256",
        "userinfo_signed_response_alg": "RS256",
    });
    let r = reqwest::Client::new()
        .post(format!("{issuer}/clients-registrations/openid-connect"))
        .json(&reg)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let client: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{client}");
    assert_eq!(client["token_endpoint_auth_method"], "tls_client_auth");
    client
}

/// Registers a client and starts a proxy configured for mutual TLS with it.
async fn mtls_setup(opts: &MtlsOpts) -> (PscSetup, Value) {
    let issuer = peer("ESPACE_TEST_OIDC_ISSUER");
    let port = free_port();
    let client = register(port).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let mut psc = format!(
        "issuer = \"{issuer}\"\ndiscovery_url = \"{issuer}/.well-known/wallet-openid-configuration\"\n\
         client_id = \"{client_id}\"\nclient_auth = \"tls_client_auth\"\n\
         tls_client_cert = \"{}\"\ntls_client_key = \"{}\"\nid_token_algs = [\"RS256\"]\n",
        peer(opts.cert_var),
        peer(opts.key_var),
    );
    if opts.trust_test_ca {
        psc.push_str(&format!("ca_file = \"{}\"\n", peer("ESPACE_TEST_MTLS_CA")));
    }
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(psc),
        ..Default::default()
    })
    .await;
    let setup = PscSetup {
        proxy,
        client_id,
        control: peer("ESPACE_TEST_OIDC_CONTROL"),
    };
    (setup, client)
}

/// A token request with a made-up code: the provider authenticates the
/// client first, so `invalid_grant` means the client got through and
/// `invalid_client` that it did not. Returns (status, OAuth error).
async fn token_probe(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    headers: &[(&str, String)],
) -> (StatusCode, String) {
    let mut rb = http.post(token_endpoint).form(&[
        ("grant_type", "authorization_code"),
        ("code", "not-a-code"),
        ("client_id", client_id),
        ("redirect_uri", "http://127.0.0.1:9/callback"),
    ]);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn mtls_http(cert_var: &str, key_var: &str) -> reqwest::Client {
    let mut pem = std::fs::read(peer(cert_var)).unwrap();
    pem.push(b'\n');
    pem.extend(std::fs::read(peer(key_var)).unwrap());
    let ca = std::fs::read(peer("ESPACE_TEST_MTLS_CA")).unwrap();
    reqwest::Client::builder()
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

async fn discovery() -> Value {
    let issuer = peer("ESPACE_TEST_OIDC_ISSUER");
    reqwest::get(format!("{issuer}/.well-known/wallet-openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_peers_enforce_mutual_tls() {
    // Discovery advertises the terminator's token endpoint and the method.
    let doc = discovery().await;
    let mtls_token = doc["mtls_endpoint_aliases"]["token_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        mtls_token.starts_with(&format!("{}/", peer("ESPACE_TEST_MTLS_URL"))),
        "{mtls_token}"
    );
    assert!(doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("tls_client_auth")));
    let plain_token = doc["token_endpoint"].as_str().unwrap().to_owned();

    let client = register(free_port()).await;
    let client_id = client["client_id"].as_str().unwrap();
    // tls_client_auth: the provider hands out no secret at all.
    assert!(client.get("client_secret").is_none(), "{client}");

    // Through the terminator with the registered certificate: authenticated
    // (the made-up code is what fails).
    let good = mtls_http(
        "ESPACE_TEST_MTLS_CLIENT_CERT",
        "ESPACE_TEST_MTLS_CLIENT_KEY",
    );
    assert_eq!(
        token_probe(&good, &mtls_token, client_id, &[]).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    // Another certificate from the same CA: its DN is not the registered one.
    let other = mtls_http("ESPACE_TEST_MTLS_OTHER_CERT", "ESPACE_TEST_MTLS_OTHER_KEY");
    assert_eq!(
        token_probe(&other, &mtls_token, client_id, &[]).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // A secret is no way in for this client.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:some-secret"))
    );
    assert_eq!(
        token_probe(&good, &mtls_token, client_id, &[("authorization", basic)]).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // Straight to the provider, claiming the registered (public) certificate
    // in the terminator's headers without the terminator's secret: refused.
    let cert = std::fs::read_to_string(peer("ESPACE_TEST_MTLS_CLIENT_CERT")).unwrap();
    let forged = [
        ("x-ssl-client-cert", urlencoding::encode(&cert).into_owned()),
        ("x-ssl-client-verify", "SUCCESS".to_owned()),
        ("x-mtls-terminator-secret", "0".repeat(48)),
    ];
    assert_eq!(
        token_probe(&reqwest::Client::new(), &plain_token, client_id, &forged).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
}

#[tokio::test]
async fn signs_in_with_the_registered_client_certificate() {
    let (s, client) = mtls_setup(&REGISTERED).await;
    assert!(client.get("client_secret").is_none(), "{client}");
    let b = Browser::new();
    let home = s.login(&b, PAUL).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Paul MARTIN"), "{}", home.body);
    assert!(home.body.contains("99700000013"), "{}", home.body);
    assert!(b.cookies_for(&s.proxy.base).contains_key("espace-session"));
    let db = s.proxy.db().await;
    assert_eq!(db.account_count(PAUL).await.unwrap(), 1);
    let last = &db.audit_tail(1).await.unwrap()[0];
    assert_eq!(last.method.as_deref(), Some("psc_card"));
    // The client has no secret and the provider accepts nothing but its
    // certificate (see the_peers_enforce_mutual_tls), so this login went
    // through the terminator with the certificate.
}

#[tokio::test]
async fn another_client_certificate_is_refused_at_the_token_exchange() {
    let (s, _) = mtls_setup(&MtlsOpts {
        cert_var: "ESPACE_TEST_MTLS_OTHER_CERT",
        key_var: "ESPACE_TEST_MTLS_OTHER_KEY",
        trust_test_ca: true,
    })
    .await;
    // Same setup as signs_in_with_the_registered_client_certificate but for
    // the certificate: the provider answers invalid_client (its DN is not the
    // registered one), and the user sees the refusal page.
    s.assert_refused(PAUL, "token_exchange").await;
}

#[tokio::test]
async fn an_untrusted_terminator_certificate_is_refused() {
    // Same setup as signs_in_with_the_registered_client_certificate but
    // without ca_file: the terminator's certificate (from the test CA) does
    // not verify, so the token request fails at the TLS handshake.
    let (s, _) = mtls_setup(&MtlsOpts {
        trust_test_ca: false,
        ..REGISTERED
    })
    .await;
    s.assert_refused(PAUL, "token_exchange").await;
}
