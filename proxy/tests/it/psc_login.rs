//! Pro Santé Connect login against node-oidc-provider configured like PSC
//! (discovery at PSC's path, authorize on another host, PKCE required, PSC
//! claims, signed userinfo, RS256 and HS256 ID tokens), started by the
//! harness (`espace_ps_testenv`). Faults are injected by the provider's test API into
//! the next token or userinfo response of one client.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::harness::*;

pub(super) const PAUL: &str = "899700000013"; // CARD, otherIds
const CLAIRE: &str = "899700000021"; // MOBILE, otherIDs casing
const SOPHIE_ADELI: &str = "0123456789";
const EXTRA: &str = "899700000039"; // unknown claims
const MINIMAL: &str = "899700000047";
const MALFORMED: &str = "8ABC";

pub(super) struct PscSetup {
    pub(super) proxy: Proxy,
    pub(super) client_id: String,
    pub(super) control: String,
}

/// Registers a client on the provider and starts a proxy for it.
async fn psc_setup(
    id_alg: &str,
    userinfo_alg: Option<&str>,
    issuer_override: Option<&str>,
) -> PscSetup {
    psc_setup_with(id_alg, userinfo_alg, issuer_override, "").await
}

/// [`psc_setup`] with more lines for the proxy's `[psc]` table.
async fn psc_setup_with(
    id_alg: &str,
    userinfo_alg: Option<&str>,
    issuer_override: Option<&str>,
    extra_psc: &str,
) -> PscSetup {
    let issuer = peer("ESPACE_TEST_OIDC_ISSUER");
    let control = peer("ESPACE_TEST_OIDC_CONTROL");
    let port = free_port();
    let mut reg = json!({
        "redirect_uris": [format!("http://127.0.0.1:{port}/auth/callback")],
        "post_logout_redirect_uris": [format!("http://127.0.0.1:{port}/auth/logged-out")],
        "token_endpoint_auth_method": "client_secret_basic",
        "id_token_signed_response_alg": id_alg,
    });
    if let Some(alg) = userinfo_alg {
        reg["userinfo_signed_response_alg"] = json!(alg);
    }
    let r = reqwest::Client::new()
        .post(format!("{issuer}/clients-registrations/openid-connect"))
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let client: Value = r.json().await.unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let algs = if id_alg == "HS256" {
        "[\"HS256\"]"
    } else {
        "[\"RS256\"]"
    };
    let psc = format!(
        "issuer = \"{}\"\ndiscovery_url = \"{issuer}/.well-known/wallet-openid-configuration\"\n\
         client_id = \"{client_id}\"\nclient_secret = \"{secret}\"\nid_token_algs = {algs}\n{extra_psc}",
        issuer_override.unwrap_or(&issuer)
    );
    let proxy = Proxy::start(ProxyOpts {
        port: Some(port),
        psc: Some(psc),
        ..Default::default()
    })
    .await;
    PscSetup {
        proxy,
        client_id,
        control,
    }
}

impl PscSetup {
    pub(super) async fn fault(&self, fault: Value) {
        let mut f = fault;
        f["client_id"] = json!(self.client_id);
        let r = reqwest::Client::new()
            .post(format!("{}/__test/faults", self.control))
            .json(&f)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "fault not accepted: {}",
            r.text().await.unwrap()
        );
    }

    /// Runs the browser until PSC sends it back to our callback; returns
    /// the callback URL (not yet visited).
    pub(super) async fn to_callback(&self, b: &Browser, login_hint: &str) -> String {
        let start = b
            .get(&format!("{}/auth/login?start=1", self.proxy.base))
            .await;
        assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
        let mut url = reqwest::Url::parse(&start.location().unwrap()).unwrap();
        // PSC's authorize endpoint is on another host than its token endpoint.
        assert_eq!(url.host_str(), Some("localhost"));
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["acr_values"], "eidas1");
        assert_eq!(q["scope"], "openid scope_all");
        assert!(!q["state"].is_empty() && !q["nonce"].is_empty());
        url.query_pairs_mut().append_pair("login_hint", login_hint);
        let mut next = url.to_string();
        for _ in 0..10 {
            if next.starts_with(&format!("{}/auth/callback", self.proxy.base)) {
                return next;
            }
            let p = b.get(&next).await;
            assert!(
                p.status.is_redirection(),
                "{}: {} {}",
                next,
                p.status,
                p.body
            );
            next = p.location().unwrap();
        }
        panic!("PSC never came back to the callback");
    }

    pub(super) async fn login(&self, b: &Browser, login_hint: &str) -> Page {
        let cb = self.to_callback(b, login_hint).await;
        b.get_follow(&cb).await
    }

    pub(super) async fn assert_refused(&self, login_hint: &str, reference: &str) {
        let b = Browser::new();
        let page = self.login(&b, login_hint).await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "{reference}: {}",
            page.body
        );
        assert!(page.body.contains("La connexion a échoué"));
        // A sentence and an incident number; the code is in the log line.
        self.proxy.assert_incident(&page.body, reference).await;
        assert!(!b
            .cookies_for(&self.proxy.base)
            .contains_key("espace-session"));
        let db = self.proxy.db().await;
        assert_eq!(
            db.account_count(login_hint).await.unwrap(),
            0,
            "{reference}"
        );
        let last = &db.audit_tail(1).await.unwrap()[0];
        assert_eq!(
            (last.outcome.as_str(), last.detail.as_deref()),
            ("refused", Some(reference))
        );
    }
}

#[tokio::test]
async fn rs256_id_token_and_signed_userinfo() {
    let s = psc_setup("RS256", Some("RS256"), None).await;
    let b = Browser::new();
    let home = s.login(&b, PAUL).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Paul MARTIN"), "{}", home.body);
    assert!(home.body.contains("99700000013"));
    assert!(home.body.contains("carte CPS"));
    let db = s.proxy.db().await;
    assert_eq!(db.account_count(PAUL).await.unwrap(), 1);
    let login = &db.audit_tail(1).await.unwrap()[0];
    assert_eq!(login.method.as_deref(), Some("psc_card"));

    // Logout ends the session here and sends the browser to PSC's end-session.
    let form = home.form_fields("/auth/logout");
    let out = b
        .post_form(
            &format!("{}/auth/logout", s.proxy.base),
            &form,
            &s.proxy.base,
        )
        .await;
    let href = regex::Regex::new(r#"id="continuer" href="([^"]+)""#)
        .unwrap()
        .captures(&out.body)
        .map(|c| html_unescape(&c[1]))
        .unwrap();
    assert!(href.starts_with(&format!(
        "{}/protocol/openid-connect/logout?id_token_hint=",
        peer("ESPACE_TEST_OIDC_ISSUER")
    )));
    let back = b.get_follow(&href).await;
    assert!(
        back.url
            .starts_with(&format!("{}/auth/logged-out?state=", s.proxy.base)),
        "{}",
        back.url
    );
    assert_eq!(
        b.get(&format!("{}/", s.proxy.base)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn hs256_id_token_and_userinfo_with_the_client_secret() {
    let s = psc_setup("HS256", Some("HS256"), None).await;
    let b = Browser::new();
    let home = s.login(&b, CLAIRE).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Claire DURAND"));
    // authMode MOBILE: the e-CPS app.
    assert!(home.body.contains("application e-CPS"));
}

/// Issue 9: Keycloak signs the ID token and the userinfo under two client
/// settings; an HS256 ID token with an RS256 userinfo is a normal
/// registration. `userinfo_algs` admits it without admitting RS256 ID tokens.
#[tokio::test]
async fn hs256_id_token_with_rs256_userinfo() {
    let s = psc_setup_with(
        "HS256",
        Some("RS256"),
        None,
        "userinfo_algs = [\"RS256\"]\n",
    )
    .await;
    let home = s.login(&Browser::new(), CLAIRE).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Claire DURAND"), "{}", home.body);

    // Only the userinfo may be RS256: an RS256 ID token is refused.
    s.fault(json!({"id_token": {"alg": "RS256"}})).await;
    s.assert_refused(PAUL, "id_token_invalid").await;
    // And an HS256 userinfo, not in userinfo_algs, too.
    s.fault(json!({"userinfo": {"alg": "HS256"}})).await;
    s.assert_refused(PAUL, "userinfo_invalid").await;
    let home = s.login(&Browser::new(), PAUL).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
}

/// Without `userinfo_algs`, the userinfo is held to `id_token_algs`.
#[tokio::test]
async fn userinfo_algs_default_to_the_id_token_algs() {
    let s = psc_setup("HS256", Some("RS256"), None).await;
    s.assert_refused(CLAIRE, "userinfo_invalid").await;
}

#[tokio::test]
async fn json_userinfo_unknown_claims_adeli_and_minimal_accounts() {
    let s = psc_setup("RS256", None, None).await;
    let home = s.login(&Browser::new(), EXTRA).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("99700000039"));
    let home = s.login(&Browser::new(), SOPHIE_ADELI).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("aucun (identifiant non RPPS)"));
    let home = s.login(&Browser::new(), MINIMAL).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("99700000047"));
}

#[tokio::test]
async fn forged_or_wrong_id_tokens_are_refused() {
    let s = psc_setup("RS256", Some("RS256"), None).await;
    let cases = [
        (
            json!({"id_token": {"claims": {"iss": "https://evil.example/realm"}}}),
            "id_token_invalid",
        ),
        (
            json!({"id_token": {"claims": {"aud": "another-client"}}}),
            "id_token_invalid",
        ),
        (
            json!({"id_token": {"claims": {"nonce": "not-the-nonce"}}}),
            "id_token_invalid",
        ),
        (json!({"id_token": {"expired": true}}), "id_token_invalid"),
        (json!({"id_token": {"alg": "none"}}), "id_token_invalid"),
        (
            json!({"id_token": {"alg": "HS256-with-rsa-public-key"}}),
            "id_token_invalid",
        ),
        (
            json!({"id_token": {"alg": "RS256-wrong-key"}}),
            "id_token_invalid",
        ),
        (json!({"id_token": {"claims": {"acr": null}}}), "acr"),
        (json!({"id_token": {"claims": {"acr": "eidas2"}}}), "acr"),
        (
            json!({"userinfo": {"sub": "f:00000000-0000-0000-0000-000000000000:899700000021"}}),
            "userinfo_invalid",
        ),
        (
            json!({"userinfo": {"claims": {"SubjectNameID": null}}}),
            "national_id",
        ),
        (
            json!({"userinfo": {"claims": {"SubjectNameID": "899700000012"}}}),
            "national_id",
        ),
    ];
    for (fault, reference) in cases {
        s.fault(fault.clone()).await;
        s.assert_refused(PAUL, reference).await;
    }
    // A malformed national id straight from the provider.
    s.assert_refused(MALFORMED, "national_id").await;
    // And the same client still signs in when nothing is wrong.
    let home = s.login(&Browser::new(), PAUL).await;
    assert_eq!(home.status, StatusCode::OK);
}

#[tokio::test]
async fn hs256_signed_with_a_wrong_secret_is_refused() {
    let s = psc_setup("HS256", None, None).await;
    s.fault(json!({"id_token": {"alg": "HS256-wrong-secret"}}))
        .await;
    s.assert_refused(PAUL, "id_token_invalid").await;
}

#[tokio::test]
async fn state_and_code_are_single_use() {
    let s = psc_setup("RS256", None, None).await;
    let b = Browser::new();
    let cb = s.to_callback(&b, PAUL).await;
    let first = b.get_follow(&cb).await;
    assert_eq!(first.status, StatusCode::OK);

    // The same callback again: the pending login is gone.
    let again = Browser::new();
    let r = again.get(&cb).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.proxy.assert_incident(&r.body, "flow_missing").await;

    // A replayed code with a fresh, valid state: PSC refuses the code.
    let replay = Browser::new();
    let new_cb = reqwest::Url::parse(&s.to_callback(&replay, PAUL).await).unwrap();
    let new_state = new_cb
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let old_code = reqwest::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let forged = format!(
        "{}/auth/callback?code={}&state={}",
        s.proxy.base,
        urlencoding::encode(&old_code),
        urlencoding::encode(&new_state)
    );
    let r = replay.get(&forged).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    s.proxy.assert_incident(&r.body, "token_exchange").await;
    assert!(!replay
        .cookies_for(&s.proxy.base)
        .contains_key("espace-session"));

    // A callback without state.
    let nostate = Browser::new();
    let cb = reqwest::Url::parse(&s.to_callback(&nostate, PAUL).await).unwrap();
    let code = cb
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let r = nostate
        .get(&format!("{}/auth/callback?code={code}", s.proxy.base))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.proxy.assert_incident(&r.body, "state_mismatch").await;
}

#[tokio::test]
async fn a_provider_answering_for_another_issuer_is_refused() {
    let s = psc_setup(
        "RS256",
        None,
        Some("https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"),
    )
    .await;
    let b = Browser::new();
    let r = b.get(&format!("{}/auth/login?start=1", s.proxy.base)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.proxy.assert_incident(&r.body, "issuer_mismatch").await;
}
