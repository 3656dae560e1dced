//! Single sign-on from Hopital Manager: a signed JWT opens a session; every
//! malformed, expired, replayed or wrongly signed token ends on a French page
//! with no session and no account. Only a POST from Hopital Manager's
//! configured origin goes straight through; any other launch (a cross-site
//! form, a link) is confirmed on a page naming who the token is for, and
//! never replaces a live session silently.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::harness::*;

const DOCTOR: &str = "899700345673";
const OTHER: &str = "899700000021";
const HM_ORIGIN: &str = "https://hm.chu.example";
const EVIL_ORIGIN: &str = "https://evil.example";

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    let now = now();
    json!({
        "iss": "hopital-manager",
        "aud": "espace-ps",
        "iat": now,
        "nbf": now,
        "exp": now + 120,
        "jti": format!("jti-{}", espace_ps::session::new_token()),
        "national_id": DOCTOR,
        "given_name": "Noël",
        "family_name": "Bénard",
        "professions": ["10"],
    })
}

fn sign(claims: &Value, alg: Algorithm, key_file: &str) -> String {
    let pem = std::fs::read(key(key_file)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(&pem),
        _ => unreachable!(),
    };
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

async fn proxy() -> Proxy {
    proxy_with_policies(None).await
}

async fn proxy_with_policies(policies_dir: Option<PathBuf>) -> Proxy {
    Proxy::start(ProxyOpts {
        policies_dir,
        hm_sso: Some(format!(
            "issuer = \"hopital-manager\"\naudience = \"espace-ps\"\npublic_keys = [\"{}\", \"{}\"]\nmax_lifetime_secs = 300\nleeway_secs = 5\nallowed_origins = [\"{HM_ORIGIN}\"]\n",
            key("hm-rs256.pub.pem").display(),
            key("hm-es256.pub.pem").display()
        )),
        ..Default::default()
    })
    .await
}

async fn launch_get(b: &Browser, proxy: &Proxy, token: &str) -> Page {
    b.get(&format!("{}/auth/hm-sso?token={token}", proxy.base))
        .await
}

/// A form POSTed to `/auth/hm-sso` from `origin` (None: no `Origin` header).
async fn launch_post(b: &Browser, proxy: &Proxy, token: &str, origin: Option<&str>) -> Page {
    let form = [("token".to_owned(), token.to_owned())];
    let url = format!("{}/auth/hm-sso", proxy.base);
    match origin {
        Some(o) => b.post_form(&url, &form, o).await,
        None => {
            b.request(reqwest::Method::POST, &url, Some(&form[..]), &[])
                .await
        }
    }
}

/// Hopital Manager's own launch: a POST from its origin, redirects followed.
async fn launch_from_hm(b: &Browser, proxy: &Proxy, token: &str) -> Page {
    let r = launch_post(b, proxy, token, Some(HM_ORIGIN)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    b.follow(r).await
}

/// Clicks "Continuer" on the confirmation page.
async fn confirm(b: &Browser, proxy: &Proxy, page: &Page) -> Page {
    let form = page.form_fields("/auth/hm-sso/confirm");
    b.post_form(
        &format!("{}/auth/hm-sso/confirm", proxy.base),
        &form,
        &proxy.base,
    )
    .await
}

fn session_cookie(b: &Browser, proxy: &Proxy) -> Option<String> {
    b.cookies_for(&proxy.base).get("espace-session").cloned()
}

/// Successful logins in the audit trail.
async fn successful_logins(proxy: &Proxy) -> usize {
    let audit = proxy.db().await.audit_tail(1000).await.unwrap();
    audit.iter().filter(|a| a.outcome == "success").count()
}

fn other_claims() -> Value {
    let mut c = claims();
    c["national_id"] = json!(OTHER);
    c["given_name"] = json!("Claire");
    c["family_name"] = json!("Durand");
    c
}

fn rs(c: &Value) -> String {
    sign(c, Algorithm::RS256, "hm-rs256.key.pem")
}

/// The confirmation page: names who the token is for, signs no one in.
fn assert_confirmation_page(page: &Page, who: &str) {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("Continuer en tant que Dr {who}")),
        "{}",
        page.body
    );
    assert!(
        page.url.contains("/auth/hm-sso/confirm?launch="),
        "{}",
        page.url
    );
}

async fn assert_refused(proxy: &Proxy, token: &str, reference: &str) {
    let b = Browser::new();
    let r = launch_get(&b, proxy, token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r
        .body
        .contains("La connexion depuis Hopital Manager a échoué"));
    // A sentence and an incident number; the code is in the log line.
    proxy.assert_incident(&r.body, reference).await;
    assert!(!b.cookies_for(&proxy.base).contains_key("espace-session"));
    assert_eq!(proxy.db().await.account_count(DOCTOR).await.unwrap(), 0);
}

#[tokio::test]
async fn a_signed_launch_opens_a_session_rs256_and_es256() {
    let proxy = proxy().await;
    for (alg, file) in [
        (Algorithm::RS256, "hm-rs256.key.pem"),
        (Algorithm::ES256, "hm-es256.key.pem"),
    ] {
        let b = Browser::new();
        let home = launch_from_hm(&b, &proxy, &sign(&claims(), alg, file)).await;
        assert_eq!(home.status, StatusCode::OK, "{alg:?}: {}", home.body);
        assert!(home.body.contains("Noël BÉNARD"), "{}", home.body);
        assert!(home.body.contains("Hopital Manager"));
    }
    let db = proxy.db().await;
    assert_eq!(db.account_count(DOCTOR).await.unwrap(), 1);
    let audit = db.audit_tail(2).await.unwrap();
    assert!(audit.iter().all(|a| a.event == "hm_sso"
        && a.outcome == "success"
        && a.method.as_deref() == Some("hm_sso")));
}

#[tokio::test]
async fn a_form_post_launch_opens_the_dossier_asked() {
    let proxy = proxy().await;
    let b = Browser::new();
    let mut c = claims();
    c["dossier"] = json!("2024/0001");
    let token = sign(&c, Algorithm::RS256, "hm-rs256.key.pem");
    // Hopital Manager posts from its own (configured) origin: no CSRF
    // token, the signature and the origin are the proof; the browser goes on
    // through a same-site GET (where its session cookie, if any, is sent).
    let r = launch_post(&b, &proxy, &token, Some(HM_ORIGIN)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r
        .location()
        .unwrap()
        .starts_with(&format!("{}/auth/hm-sso/confirm?launch=", proxy.base)));
    let next = r.location().unwrap();
    let r = b.get(&next).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location().unwrap(),
        format!("{}/portail/dossiers/2024%2F0001", proxy.base)
    );
    assert!(session_cookie(&b, &proxy).is_some());
    // The continuation URL is used up.
    let again = Browser::new().get(&next).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    proxy.assert_incident(&again.body, "launch_expired").await;
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let proxy = proxy().await;
    // Used once whatever the path: a launch that only showed the
    // confirmation page, and one that went straight through.
    for direct in [false, true] {
        let token = rs(&claims());
        let b = Browser::new();
        if direct {
            assert_eq!(
                launch_from_hm(&b, &proxy, &token).await.status,
                StatusCode::OK
            );
        } else {
            let page = b.follow(launch_get(&b, &proxy, &token).await).await;
            assert_confirmation_page(&page, "Noël BÉNARD");
        }
        for again in [
            launch_get(&Browser::new(), &proxy, &token).await,
            launch_post(&Browser::new(), &proxy, &token, Some(HM_ORIGIN)).await,
            launch_get(&b, &proxy, &token).await,
        ] {
            assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
            assert!(again.body.contains("déjà été utilisé"));
        }
    }
}

/// Issue 9 (login CSRF): an attacker's page auto-submits a form carrying a
/// valid token of the attacker's own account. Whatever the way (a POST from
/// another origin, a POST without `Origin`, a GET link), nobody is signed
/// in until the user confirms on a page that names the account.
#[tokio::test]
async fn a_cross_site_launch_signs_no_one_in_until_confirmed() {
    let proxy = proxy().await;
    for way in ["evil origin", "no origin", "get", "hm origin as GET"] {
        let b = Browser::new();
        let token = rs(&claims());
        let logins_before = successful_logins(&proxy).await;
        let r = match way {
            "evil origin" => launch_post(&b, &proxy, &token, Some(EVIL_ORIGIN)).await,
            "no origin" => launch_post(&b, &proxy, &token, None).await,
            "get" => launch_get(&b, &proxy, &token).await,
            _ => {
                b.request(
                    reqwest::Method::GET,
                    &format!("{}/auth/hm-sso?token={token}", proxy.base),
                    None,
                    &[("origin", HM_ORIGIN)],
                )
                .await
            }
        };
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{way}: {}", r.body);
        let page = b.follow(r).await;
        assert_confirmation_page(&page, "Noël BÉNARD");
        assert!(page.body.contains(DOCTOR), "{way}");
        assert!(
            !page.body.contains("Vous êtes connecté en tant que"),
            "{way}"
        );
        // The raw token never comes back through the page.
        assert!(!page.body.contains(&token), "{way}");
        assert_eq!(session_cookie(&b, &proxy), None, "{way}");
        let home = b.get(&format!("{}/", proxy.base)).await;
        assert_eq!(home.status, StatusCode::SEE_OTHER, "{way}: signed in");
        assert_eq!(successful_logins(&proxy).await, logins_before, "{way}");

        // Reloading the page is harmless; "Continuer" signs in.
        let page = b.get(&page.url).await;
        assert_confirmation_page(&page, "Noël BÉNARD");
        let r = confirm(&b, &proxy, &page).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{way}: {}", r.body);
        let home = b.follow(r).await;
        assert_eq!(home.status, StatusCode::OK, "{way}");
        assert!(home.body.contains("Noël BÉNARD"), "{way}");
        assert!(session_cookie(&b, &proxy).is_some());
        // Confirmed once only.
        let again = confirm(&b, &proxy, &page).await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "{way}");
        proxy.assert_incident(&again.body, "launch_expired").await;
    }
}

/// Issue 9 (silent session swap): the victim is signed in; an attacker's
/// cross-site form carries a token for another professional. The live
/// session stays; the page says who is signed in; only "Continuer"
/// replaces it. Even Hopital Manager's own POST asks first.
#[tokio::test]
async fn a_launch_never_replaces_a_live_session_silently() {
    let proxy = proxy().await;
    for origin in [Some(EVIL_ORIGIN), None, Some(HM_ORIGIN)] {
        let b = Browser::new();
        let home = launch_from_hm(&b, &proxy, &rs(&claims())).await;
        assert!(home.body.contains("Noël BÉNARD"));
        let before = session_cookie(&b, &proxy).unwrap();

        let r = launch_post(&b, &proxy, &rs(&other_claims()), origin).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{origin:?}: {}", r.body);
        let page = b.follow(r).await;
        assert_confirmation_page(&page, "Claire DURAND");
        assert!(
            page.body
                .contains("Vous êtes connecté en tant que <strong>Noël BÉNARD</strong>"),
            "{origin:?}: {}",
            page.body
        );
        assert_eq!(session_cookie(&b, &proxy).as_deref(), Some(before.as_str()));
        let home = b.get(&format!("{}/", proxy.base)).await;
        assert_eq!(home.status, StatusCode::OK);
        assert!(home.body.contains("Noël BÉNARD"), "{origin:?}");
        assert!(!home.body.contains("Claire DURAND"), "{origin:?}");

        // Confirmed: the old session ends, the new one starts.
        let r = confirm(&b, &proxy, &page).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{origin:?}: {}", r.body);
        let after = session_cookie(&b, &proxy).unwrap();
        assert_ne!(after, before);
        let home = b.follow(r).await;
        assert!(home.body.contains("Claire DURAND"), "{origin:?}");
        let old = Browser::new();
        old.jar.add_cookie_str(
            &format!("espace-session={before}"),
            &reqwest::Url::parse(&proxy.base).unwrap(),
        );
        assert_eq!(
            old.get(&format!("{}/", proxy.base)).await.status,
            StatusCode::SEE_OTHER,
            "{origin:?}: the replaced session still works"
        );
    }
    assert_eq!(proxy.db().await.account_count(OTHER).await.unwrap(), 1);
}

/// The same professional launched again while signed in: the session
/// goes on, no page, no new session.
#[tokio::test]
async fn a_launch_for_the_professional_signed_in_keeps_the_session() {
    let proxy = proxy().await;
    let b = Browser::new();
    launch_from_hm(&b, &proxy, &rs(&claims())).await;
    let before = session_cookie(&b, &proxy).unwrap();
    let mut c = claims();
    c["dossier"] = json!("2024/0001");
    let r = launch_post(&b, &proxy, &rs(&c), Some(EVIL_ORIGIN)).await;
    let r = b.get(&r.location().unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location().unwrap(),
        format!("{}/portail/dossiers/2024%2F0001", proxy.base)
    );
    assert_eq!(session_cookie(&b, &proxy), Some(before));
}

/// The confirmation belongs to the browser that started the launch, is
/// posted from our origin with the page's CSRF value, and is used once.
#[tokio::test]
async fn the_confirmation_cannot_be_forged_or_moved_to_another_browser() {
    let proxy = proxy().await;
    let attacker = Browser::new();
    let victim = Browser::new();

    // The attacker's own launch, continued in the victim's browser.
    let page = attacker
        .follow(launch_get(&attacker, &proxy, &rs(&claims())).await)
        .await;
    assert_confirmation_page(&page, "Noël BÉNARD");
    let moved = victim.get(&page.url).await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    proxy
        .assert_incident(&moved.body, "launch_other_browser")
        .await;
    let moved = confirm(&victim, &proxy, &page).await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    proxy
        .assert_incident(&moved.body, "launch_other_browser")
        .await;
    assert_eq!(session_cookie(&victim, &proxy), None);

    // From another origin, or without the CSRF value.
    let page = attacker
        .follow(launch_get(&attacker, &proxy, &rs(&claims())).await)
        .await;
    let form = page.form_fields("/auth/hm-sso/confirm");
    let r = attacker
        .post_form(
            &format!("{}/auth/hm-sso/confirm", proxy.base),
            &form,
            EVIL_ORIGIN,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    proxy.assert_incident(&r.body, "launch_csrf").await;
    let page = attacker
        .follow(launch_get(&attacker, &proxy, &rs(&claims())).await)
        .await;
    let mut form = page.form_fields("/auth/hm-sso/confirm");
    form.retain(|(k, _)| k != "csrf_token");
    form.push(("csrf_token".into(), "x".repeat(43)));
    let r = attacker
        .post_form(
            &format!("{}/auth/hm-sso/confirm", proxy.base),
            &form,
            &proxy.base,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    proxy.assert_incident(&r.body, "launch_csrf").await;
    // Each refusal used the launch up.
    let r = confirm(&attacker, &proxy, &page).await;
    proxy.assert_incident(&r.body, "launch_expired").await;
    assert_eq!(session_cookie(&attacker, &proxy), None);
    assert_eq!(proxy.db().await.account_count(DOCTOR).await.unwrap(), 0);
}

#[tokio::test]
async fn bad_tokens_are_refused_without_session_or_account() {
    let proxy = proxy().await;

    let mut expired = claims();
    expired["iat"] = json!(now() - 400);
    expired["nbf"] = json!(now() - 400);
    expired["exp"] = json!(now() - 200);
    assert_refused(&proxy, &rs(&expired), "token_invalid").await;

    assert_refused(
        &proxy,
        &sign(&claims(), Algorithm::RS256, "other-rs256.key.pem"),
        "token_invalid",
    )
    .await;

    // The classic confusion: HS256 "signed" with the RSA public key.
    assert_refused(
        &proxy,
        &sign(&claims(), Algorithm::HS256, "hm-rs256.pub.pem"),
        "token_invalid",
    )
    .await;

    let mut no_aud = claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_refused(&proxy, &rs(&no_aud), "token_invalid").await;

    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("another-app");
    assert_refused(&proxy, &rs(&wrong_aud), "token_invalid").await;

    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("someone-else");
    assert_refused(&proxy, &rs(&wrong_iss), "token_invalid").await;

    let mut long = claims();
    long["exp"] = json!(now() + 3600);
    assert_refused(&proxy, &rs(&long), "lifetime_too_long").await;

    let mut not_yet = claims();
    not_yet["nbf"] = json!(now() + 120);
    assert_refused(&proxy, &rs(&not_yet), "token_invalid").await;

    let mut no_jti = claims();
    no_jti.as_object_mut().unwrap().remove("jti");
    assert_refused(&proxy, &rs(&no_jti), "no_jti").await;

    let mut bad_id = claims();
    bad_id["national_id"] = json!("8ABC");
    assert_refused(&proxy, &rs(&bad_id), "national_id").await;

    // Issue 9: without `national_id`, `sub` counts only when it has the
    // shape of an RPPS or ADELI identifier, never an internal user id.
    for sub in ["42", "12345", "3123456789", "899700345674", "hm-user-42"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("national_id");
        c["sub"] = json!(sub);
        assert_refused(&proxy, &rs(&c), "national_id").await;
    }

    // alg: none, hand-made.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    assert_refused(&proxy, &none, "token_invalid").await;

    assert_refused(&proxy, "", "missing_token").await;

    let audit = proxy.db().await.audit_tail(20).await.unwrap();
    assert!(audit
        .iter()
        .all(|a| a.outcome == "refused" && a.actor.is_none()));
}

/// A token without `national_id` whose `sub` is an RPPS national id signs in
/// under that id.
#[tokio::test]
async fn a_national_id_in_sub_is_accepted() {
    let proxy = proxy().await;
    let mut c = claims();
    c.as_object_mut().unwrap().remove("national_id");
    c["sub"] = json!(DOCTOR);
    let home = launch_from_hm(&Browser::new(), &proxy, &rs(&c)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert_eq!(proxy.db().await.account_count(DOCTOR).await.unwrap(), 1);
}

/// A professional in the policies' `revoked` group cannot come in through
/// Hopital Manager either (the same refusal as a Pro Santé Connect login):
/// no session, no account, an audited refusal.
#[tokio::test]
async fn a_launch_for_a_revoked_professional_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&shipped_policies(), &policies);
    let groups = policies.join("groups.toml");
    let text = std::fs::read_to_string(&groups).unwrap();
    let sentinel = "national_ids = [\"8-policy-test-only\"]";
    assert!(text.contains(sentinel), "no sentinel line in groups.toml");
    std::fs::write(
        &groups,
        text.replace(
            sentinel,
            &format!("national_ids = [\"8-policy-test-only\", \"{DOCTOR}\"]"),
        ),
    )
    .unwrap();
    let proxy = proxy_with_policies(Some(policies)).await;
    let b = Browser::new();
    let page = launch_from_hm(&b, &proxy, &rs(&claims())).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("Accès suspendu"), "{}", page.body);
    assert_eq!(session_cookie(&b, &proxy), None);
    let db = proxy.db().await;
    assert_eq!(db.account_count(DOCTOR).await.unwrap(), 0);
    assert_eq!(successful_logins(&proxy).await, 0);
    assert!(
        proxy
            .audit_trail()
            .await
            .iter()
            .any(|a| a.actor.as_deref() == Some(DOCTOR)
                && a.outcome == "refused"
                && a.detail.as_deref() == Some("revoked")),
        "{:?}",
        proxy.audit_trail().await
    );
}
