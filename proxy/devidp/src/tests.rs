//! Whole flows through `DevIdp::handle`, plus the refusals a demo user would notice.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::*;
use crate::professionals::{ELISE_MARTIN_DUPRE, FRANCOIS_KERGUELEN, HERVE_LEFEVRE};

const ISSUER: &str = "http://127.0.0.1:8081/auth/realms/esante-wallet";
const CLIENT: &str = "espace-ps";
const SECRET: &str = "s3cret-de-demo";
const REDIRECT: &str = "http://127.0.0.1:8080/oidc/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:8080/deconnecte";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn idp() -> DevIdp {
    let client = DevClient {
        client_id: CLIENT.into(),
        client_secret: SECRET.into(),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
    };
    DevIdp::new(DevIdpConfig::with_defaults(
        Url::parse(ISSUER).unwrap(),
        vec![client],
    ))
    .unwrap()
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn auth_params(state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", CLIENT.into()),
        ("redirect_uri", REDIRECT.into()),
        ("response_type", "code".into()),
        ("scope", "openid scope_all".into()),
        ("acr_values", "eidas1".into()),
        ("state", state.into()),
        ("nonce", "n-0S6_WzA2Mj".into()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

fn encode(params: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

async fn get(idp: &DevIdp, uri: &str, bearer: Option<&str>) -> Response<Bytes> {
    let mut req = Request::builder().method(Method::GET).uri(uri);
    if let Some(t) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    idp.handle(req.body(Bytes::new()).unwrap()).await
}

async fn post(
    idp: &DevIdp,
    uri: &str,
    params: &[(&str, String)],
    basic: Option<(&str, &str)>,
) -> Response<Bytes> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let creds = STANDARD.encode(format!("{id}:{secret}"));
        req = req.header(header::AUTHORIZATION, format!("Basic {creds}"));
    }
    idp.handle(req.body(Bytes::from(encode(params))).unwrap())
        .await
}

fn text(res: &Response<Bytes>) -> String {
    String::from_utf8(res.body().to_vec()).unwrap()
}

fn body_json(res: &Response<Bytes>) -> Value {
    serde_json::from_slice(res.body()).unwrap()
}

fn location(res: &Response<Bytes>) -> Url {
    Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap()
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn token_uri() -> String {
    format!("{ISSUER}/protocol/openid-connect/token")
}

/// Signs in through the page's form and returns the code from the redirect.
async fn sign_in(idp: &DevIdp, national_id: &str, mode: &str) -> String {
    let mut form = auth_params("etat-123");
    form.push(("national_id", national_id.into()));
    form.push(("auth_mode", mode.into()));
    let res = post(idp, "/auth", &form, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", text(&res));
    let loc = location(&res);
    assert!(loc.as_str().starts_with(REDIRECT));
    assert_eq!(query(&loc, "state").as_deref(), Some("etat-123"));
    query(&loc, "code").unwrap()
}

fn token_form(code: &str, verifier: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", verifier.into()),
    ]
}

/// Verifies a JWT against the IdP's own JWKS, looked up by `kid`.
async fn verify(idp: &DevIdp, jwt: &str) -> Value {
    let jwks: JwkSet = serde_json::from_slice(
        get(
            idp,
            &format!("{ISSUER}/protocol/openid-connect/certs"),
            None,
        )
        .await
        .body(),
    )
    .unwrap();
    let kid = decode_header(jwt).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("kid in JWKS");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[CLIENT]);
    v.set_issuer(&[ISSUER]);
    decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn full_card_flow_issues_verifiable_tokens_and_signed_userinfo() {
    let idp = idp();
    let page = get(
        &idp,
        &format!("/auth?{}", encode(&auth_params("etat-123"))),
        None,
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = text(&page);
    for needle in [
        "Pro Santé Connect (simulateur de démonstration)",
        "fournisseur d'identité de démonstration",
        "Carte CPS",
        "Application e-CPS",
        "Se connecter avec la carte CPS",
        "Se connecter avec e-CPS",
        "Dr Élise Martin-Dupré",
        "François Kerguélen",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    for id in professionals::DEMO_NATIONAL_IDS {
        assert!(html.contains(id));
    }
    assert!(page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));

    let code = sign_in(&idp, ELISE_MARTIN_DUPRE, "CARD").await;
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, VERIFIER),
        Some((CLIENT, SECRET)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    let tokens = body_json(&res);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 120);

    let id = verify(&idp, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(id["acr"], "eidas1");
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["SubjectNameID"], ELISE_MARTIN_DUPRE);
    assert_eq!(id["preferred_username"], ELISE_MARTIN_DUPRE);
    let sub = id["sub"].as_str().unwrap();
    assert!(sub.starts_with("f:") && sub.ends_with(&format!(":{ELISE_MARTIN_DUPRE}")));
    assert!(id["auth_time"].as_u64().is_some());

    let access = tokens["access_token"].as_str().unwrap();
    let res = get(
        &idp,
        &format!("{ISSUER}/protocol/openid-connect/userinfo"),
        Some(access),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/jwt");
    let info = verify(&idp, &text(&res)).await;
    assert_eq!(info["sub"], sub);
    assert_eq!(info["SubjectNameID"], ELISE_MARTIN_DUPRE);
    assert_eq!(info["given_name"], "Élise");
    assert_eq!(info["authMode"], "CARD");
    assert_eq!(info["SubjectRole"][0], "10^1.2.250.1.213.1.1.5.5");
    assert_eq!(info["otherIds"][0]["origine"], "RPPS");
    assert_eq!(info["otherIds"][0]["identifiant"], "99700123450");
    let exercice = &info["SubjectRefPro"]["exercices"][0];
    assert_eq!(exercice["codeProfession"], "10");
    assert_eq!(exercice["codeSavoirFaire"], "SM54");
    assert!(exercice["activities"][0]["numeroFinessSite"].is_string());

    // Logout back to the registered page, with state.
    let logout = format!(
        "{ISSUER}/protocol/openid-connect/logout?{}",
        encode(&[
            ("id_token_hint", tokens["id_token"].as_str().unwrap().into()),
            ("post_logout_redirect_uri", AFTER_LOGOUT.into()),
            ("state", "au-revoir".into()),
        ])
    );
    let res = get(&idp, &logout, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = location(&res);
    assert!(loc.as_str().starts_with(AFTER_LOGOUT));
    assert_eq!(query(&loc, "state").as_deref(), Some("au-revoir"));
    // Logout revoked the access token.
    let res = get(
        &idp,
        &format!("{ISSUER}/protocol/openid-connect/userinfo"),
        Some(access),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn app_tab_sets_mobile_mode_and_client_secret_post_works() {
    let idp = idp();
    let code = sign_in(&idp, FRANCOIS_KERGUELEN, "MOBILE").await;
    let mut form = token_form(&code, VERIFIER);
    form.push(("client_id", CLIENT.into()));
    form.push(("client_secret", SECRET.into()));
    let res = post(&idp, &token_uri(), &form, None).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    let access = body_json(&res)["access_token"].as_str().unwrap().to_owned();
    let res = get(
        &idp,
        &format!("{ISSUER}/protocol/openid-connect/userinfo"),
        Some(&access),
    )
    .await;
    let info = verify(&idp, &text(&res)).await;
    assert_eq!(info["authMode"], "MOBILE");
    assert_eq!(info["SubjectNameID"], FRANCOIS_KERGUELEN);
    assert_eq!(info["otherIds"][0]["origine"], "ADELI");
    assert_eq!(info["SubjectRole"][0], "70^1.2.250.1.213.1.1.5.5");
}

#[tokio::test]
async fn unknown_typed_national_id_shows_the_page_again_escaped() {
    let idp = idp();
    let mut form = auth_params("etat");
    form.push(("national_id", "<b>899999999999".into()));
    form.push(("auth_mode", "MOBILE".into()));
    let res = post(&idp, "/auth", &form, None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(header::LOCATION).is_none());
    let html = text(&res);
    assert!(html.contains("Identifiant national inconnu"));
    assert!(html.contains("&lt;b&gt;899999999999"));
    assert!(html.contains("id=\"onglet-appli\" checked"));
}

#[tokio::test]
async fn wrong_redirect_uri_or_client_is_refused_without_redirect() {
    let idp = idp();
    for (key, value) in [
        ("redirect_uri", "http://127.0.0.1:8080/oidc/callback/evil"),
        ("redirect_uri", "https://attaquant.example/"),
        ("client_id", "inconnu"),
    ] {
        let params: Vec<_> = auth_params("etat")
            .into_iter()
            .map(|(k, v)| {
                if k == key {
                    (k, value.to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        let res = get(&idp, &format!("/auth?{}", encode(&params)), None).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{key}={value}");
        assert!(res.headers().get(header::LOCATION).is_none());
        let mut form = params.clone();
        form.push(("national_id", ELISE_MARTIN_DUPRE.into()));
        form.push(("auth_mode", "CARD".into()));
        let res = post(&idp, "/auth", &form, None).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers().get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn missing_pkce_is_reported_to_the_registered_redirect_uri() {
    let idp = idp();
    let params: Vec<_> = auth_params("etat")
        .into_iter()
        .filter(|(k, _)| *k != "code_challenge")
        .collect();
    let res = get(&idp, &format!("/auth?{}", encode(&params)), None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = location(&res);
    assert!(loc.as_str().starts_with(REDIRECT));
    assert_eq!(query(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query(&loc, "state").as_deref(), Some("etat"));
    assert!(query(&loc, "code").is_none());
}

#[tokio::test]
async fn wrong_pkce_verifier_is_refused_and_burns_the_code() {
    let idp = idp();
    let code = sign_in(&idp, HERVE_LEFEVRE, "CARD").await;
    let wrong = "x".repeat(43);
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, &wrong),
        Some((CLIENT, SECRET)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(&res)["error"], "invalid_grant");
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, VERIFIER),
        Some((CLIENT, SECRET)),
    )
    .await;
    assert_eq!(body_json(&res)["error"], "invalid_grant");
}

#[tokio::test]
async fn code_reuse_is_refused_and_revokes_the_access_token() {
    let idp = idp();
    let code = sign_in(&idp, HERVE_LEFEVRE, "CARD").await;
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, VERIFIER),
        Some((CLIENT, SECRET)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = body_json(&res)["access_token"].as_str().unwrap().to_owned();
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, VERIFIER),
        Some((CLIENT, SECRET)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(&res)["error"], "invalid_grant");
    let res = get(
        &idp,
        &format!("{ISSUER}/protocol/openid-connect/userinfo"),
        Some(&access),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_client_secret_is_refused_with_401() {
    let idp = idp();
    let code = sign_in(&idp, ELISE_MARTIN_DUPRE, "CARD").await;
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, VERIFIER),
        Some((CLIENT, "mauvais")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(&res)["error"], "invalid_client");
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_some());
    // The code survives a failed client authentication.
    let res = post(
        &idp,
        &token_uri(),
        &token_form(&code, VERIFIER),
        Some((CLIENT, SECRET)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn unregistered_post_logout_redirect_uri_is_refused() {
    let idp = idp();
    let uri = format!(
        "{ISSUER}/protocol/openid-connect/logout?{}",
        encode(&[
            ("client_id", CLIENT.into()),
            (
                "post_logout_redirect_uri",
                "https://attaquant.example/".into()
            ),
            ("state", "x".into()),
        ])
    );
    let res = get(&idp, &uri, None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(header::LOCATION).is_none());
    // Without a client, even a registered URI is refused.
    let uri = format!(
        "{ISSUER}/protocol/openid-connect/logout?{}",
        encode(&[("post_logout_redirect_uri", AFTER_LOGOUT.into())])
    );
    assert_eq!(
        get(&idp, &uri, None).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn reflected_parameters_are_html_escaped() {
    let idp = idp();
    let evil = "\"><script>alert(1)</script>";
    let res = get(&idp, &format!("/auth?{}", encode(&auth_params(evil))), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = text(&res);
    assert!(!html.contains("<script>"));
    assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
}

#[tokio::test]
async fn discovery_is_served_at_both_paths_with_psc_layout() {
    let idp = idp();
    for path in ["wallet-openid-configuration", "openid-configuration"] {
        let res = get(&idp, &format!("{ISSUER}/.well-known/{path}"), None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let d = body_json(&res);
        assert_eq!(d["issuer"], ISSUER);
        assert_eq!(d["authorization_endpoint"], "http://127.0.0.1:8081/auth");
        assert_eq!(d["token_endpoint"], token_uri());
        assert_eq!(
            d["jwks_uri"],
            format!("{ISSUER}/protocol/openid-connect/certs")
        );
        assert_eq!(d["acr_values_supported"][0], "eidas1");
        assert_eq!(d["code_challenge_methods_supported"][0], "S256");
    }
    let res = get(&idp, "/ailleurs", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = get(&idp, &token_uri(), None).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn config_problems_are_all_listed() {
    let mut cfg = DevIdpConfig::with_defaults(Url::parse(ISSUER).unwrap(), vec![]);
    cfg.professionals[0].national_id = "899700123451".into();
    let Err(DevIdpError::InvalidConfig { problems }) = DevIdp::new(cfg) else {
        panic!("expected InvalidConfig");
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("clients"));
    assert!(problems[1].contains("Luhn"));
}

#[test]
fn warning_banner_is_loud_and_lists_the_professionals() {
    let banner = idp().warning_banner();
    assert!(banner.contains("DÉMONSTRATION"));
    assert!(banner.contains("dev_idp = true"));
    for id in professionals::DEMO_NATIONAL_IDS {
        assert!(banner.contains(id));
    }
}

// === Hopital Manager simulator ===

fn idp_with_hm() -> DevIdp {
    let mut cfg = DevIdpConfig::with_defaults(
        Url::parse(ISSUER).unwrap(),
        vec![DevClient {
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![],
        }],
    );
    cfg.hopital_manager = Some(HmSimulatorConfig {
        launch_url: Url::parse("http://127.0.0.1:8080/auth/hm-sso").unwrap(),
        issuer: "hopital-manager-simulation".into(),
        audience: "espace-ps-demo".into(),
    });
    DevIdp::new(cfg).unwrap()
}

#[tokio::test]
async fn the_hopital_manager_simulator_is_off_unless_configured() {
    let res = get(&idp(), "/hopital-manager", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(!idp().warning_banner().contains("Hopital Manager"));
    assert!(idp_with_hm()
        .warning_banner()
        .contains("Hopital Manager (SIMULATION"));
}

#[tokio::test]
async fn the_simulator_page_says_it_is_a_simulator_and_lists_the_professionals() {
    let idp = idp_with_hm();
    let res = get(&idp, "/hopital-manager", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(&res);
    assert!(page.contains("Hopital Manager (simulation)"), "{page}");
    assert!(page.contains("simulateur"));
    assert!(page.contains("clé de démonstration publique"));
    for p in idp.professionals() {
        assert!(page.contains(&format!("value=\"{}\"", p.national_id)));
    }
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:8080;"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // Not `no-referrer`: the launch's POST must carry the simulator's Origin.
    assert_eq!(
        res.headers()[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
}

/// The launch page posts a token that espace-ps's verification accepts:
/// ES256 with the published key, the configured issuer and audience, a
/// fresh `jti`, the chosen professional and dossier, 120 s of life.
#[tokio::test]
async fn a_simulated_launch_signs_a_token_for_the_chosen_professional_and_dossier() {
    let idp = idp_with_hm();
    let form = [
        ("national_id", HERVE_LEFEVRE.to_owned()),
        ("dossier", " 2024/0001 ".to_owned()),
    ];
    let res = post(&idp, "/hopital-manager/lancer", &form, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(&res);
    assert!(
        page.contains("action=\"http://127.0.0.1:8080/auth/hm-sso\""),
        "{page}"
    );
    let token = regex_lite_token(&page);
    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(hm_sim::KID));
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&["hopital-manager-simulation"]);
    v.set_audience(&["espace-ps-demo"]);
    let pem = DecodingKey::from_ec_pem(keys::DEV_ONLY_HM_EC_PUBLIC_KEY_PEM.as_bytes()).unwrap();
    let claims = decode::<Value>(&token, &pem, &v).unwrap().claims;
    assert_eq!(claims["national_id"], HERVE_LEFEVRE);
    assert_eq!(claims["family_name"], "Lefèvre");
    assert_eq!(claims["professions"], serde_json::json!(["10"]));
    assert_eq!(claims["savoir_faire"], serde_json::json!(["SM44"]));
    assert_eq!(claims["dossier"], "2024/0001");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        hm_sim::LAUNCH_LIFETIME
    );
    // The JWKS publishes the same key.
    let jwks: JwkSet = serde_json::from_value(body_json(
        &get(&idp, "/hopital-manager/jwks.json", None).await,
    ))
    .unwrap();
    let jwk = jwks.find(hm_sim::KID).unwrap();
    decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    let pem_res = get(&idp, "/hopital-manager/cle-publique.pem", None).await;
    assert_eq!(text(&pem_res), keys::DEV_ONLY_HM_EC_PUBLIC_KEY_PEM);
    // Two launches, two `jti`s.
    let again = regex_lite_token(&text(
        &post(&idp, "/hopital-manager/lancer", &form, None).await,
    ));
    let jti = |t: &str| decode::<Value>(t, &pem, &v).unwrap().claims["jti"].clone();
    assert_ne!(jti(&token), jti(&again));
}

#[tokio::test]
async fn a_simulated_launch_for_an_unknown_professional_is_refused() {
    let idp = idp_with_hm();
    let form = [("national_id", "899700000021".to_owned())];
    let res = post(&idp, "/hopital-manager/lancer", &form, None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = text(&res);
    assert!(page.contains("Choisissez un professionnel de la liste."));
    assert!(!page.contains("name=\"token\""));
}

/// The hidden `token` field of the launch page.
fn regex_lite_token(page: &str) -> String {
    let start = page.find("name=\"token\" value=\"").expect("token field") + 20;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}
