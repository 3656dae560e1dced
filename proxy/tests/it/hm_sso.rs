//! Single sign-on from Hopital Manager: a signed JWT opens a session; every
//! malformed, expired, replayed or wrongly signed token ends on a French page
//! with no session and no account.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::harness::*;

const DOCTOR: &str = "899700345673";

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
    Proxy::start(ProxyOpts {
        hm_sso: Some(format!(
            "issuer = \"hopital-manager\"\naudience = \"espace-ps\"\npublic_keys = [\"{}\", \"{}\"]\nmax_lifetime_secs = 300\nleeway_secs = 5\n",
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

async fn assert_refused(proxy: &Proxy, token: &str, reference: &str) {
    let b = Browser::new();
    let r = launch_get(&b, proxy, token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r
        .body
        .contains("La connexion depuis Hopital Manager a échoué"));
    assert!(
        r.body.contains(reference),
        "expected {reference}: {}",
        r.body
    );
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
        let r = launch_get(&b, &proxy, &sign(&claims(), alg, file)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{alg:?}: {}", r.body);
        let home = b.follow(r).await;
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
    // Hopital Manager posts from its own origin: no CSRF token, the signature is the proof.
    let r = b
        .post_form(
            &format!("{}/auth/hm-sso", proxy.base),
            &[("token".to_owned(), token)],
            "https://hm.chu.example",
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location().unwrap(),
        format!("{}/portail/dossiers/2024%2F0001", proxy.base)
    );
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let proxy = proxy().await;
    let token = sign(&claims(), Algorithm::RS256, "hm-rs256.key.pem");
    let b = Browser::new();
    assert_eq!(
        launch_get(&b, &proxy, &token).await.status,
        StatusCode::SEE_OTHER
    );
    let again = Browser::new();
    let r = launch_get(&again, &proxy, &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("déjà été utilisé"));
    assert!(!again
        .cookies_for(&proxy.base)
        .contains_key("espace-session"));
}

#[tokio::test]
async fn bad_tokens_are_refused_without_session_or_account() {
    let proxy = proxy().await;
    let rs = |c: &Value| sign(c, Algorithm::RS256, "hm-rs256.key.pem");

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
