//! "Hopital Manager (simulation)": a page that does what Hopital Manager
//! does when a hospital user opens a dossier in espace-ps. It signs a launch
//! token (ES256, with the DEV-ONLY key of [`crate::keys`]) for a chosen demo
//! professional and dossier, and has the browser POST it to espace-ps's
//! `/auth/hm-sso`, as Hopital Manager's own page would (see
//! `docs/hm-sso.md`). DEV-ONLY: anyone can launch as anyone, and the key is
//! public; espace-ps trusts it only in the demo's configuration.
//!
//! | path | what |
//! |---|---|
//! | `GET /hopital-manager` | choose a professional and a dossier |
//! | `POST /hopital-manager/lancer` | sign the token; a page that posts it to espace-ps |
//! | `GET /hopital-manager/jwks.json` | the simulator's public key as a JWKS |
//! | `GET /hopital-manager/cle-publique.pem` | the same key in PEM |

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use crate::keys::{DEV_ONLY_HM_EC_PRIVATE_KEY_PEM, DEV_ONLY_HM_EC_PUBLIC_KEY_PEM};
use crate::token::random_token;
use crate::web::{self, escape};
use crate::{now, DevIdp};

/// Where the simulator's pages live on the dev IdP's listener.
pub const PREFIX: &str = "/hopital-manager";
/// Lifetime of a launch token, seconds (espace-ps accepts up to its
/// `hm_sso.max_lifetime_secs`, 300 by default).
pub const LAUNCH_LIFETIME: u64 = 120;
/// The `kid` of the simulator's key in its JWKS and in the tokens' header.
pub const KID: &str = "hopital-manager-simulation-1";

/// What the simulator signs and where it sends it.
#[derive(Debug, Clone)]
pub struct HmSimulatorConfig {
    /// espace-ps's launch endpoint, e.g. `http://127.0.0.1:8080/auth/hm-sso`.
    pub launch_url: Url,
    /// The `iss` of its tokens (espace-ps's `hm_sso.issuer`).
    pub issuer: String,
    /// The `aud` of its tokens (espace-ps's `hm_sso.audience`).
    pub audience: String,
}

const TITLE: &str = "Hopital Manager (simulation)";

const STYLE: &str = "\
body{margin:0;font-family:Arial,sans-serif;background:#f3f5f7;color:#1b1b1b}\
header{background:#0b4f6c;color:#fff;padding:12px 24px;display:flex;gap:12px;align-items:baseline}\
header .logo{font-weight:700;font-size:1.3em}\
header .sim{background:#ffd166;color:#1b1b1b;font-weight:700;padding:2px 8px}\
main{max-width:760px;margin:24px auto;padding:0 16px}\
h1{font-size:1.5em;color:#0b4f6c}\
.warning{background:#fff4e5;border-left:6px solid #b34000;padding:12px 16px;margin:16px 0}\
.error{background:#ffe9e9;border-left:6px solid #ce0500;padding:12px 16px;margin:16px 0}\
fieldset{background:#fff;border:1px solid #ccd;padding:12px 16px}\
fieldset label{display:block;padding:6px 0}\
input[type=text]{font-size:1em;padding:8px;width:16em}\
button{background:#0b4f6c;color:#fff;border:0;padding:10px 16px;font-size:1em;cursor:pointer;margin-top:12px}\
button:focus-visible,input:focus-visible{outline:3px solid #ffd166}\
pre{background:#fff;border:1px solid #ccd;padding:12px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
";

/// Submits the launch form at once, as Hopital Manager does (the button
/// stays for a browser without JavaScript).
const AUTO_SUBMIT: &str = "document.getElementById('lancement').submit();";

fn hash(s: &str) -> String {
    STANDARD.encode(Sha256::digest(s.as_bytes()))
}

/// Nothing but the inline style and the auto-submit script, by hash; forms
/// may go to the simulator itself and to espace-ps's launch URL.
fn csp(launch_url: &Url) -> String {
    static HASHES: OnceLock<(String, String)> = OnceLock::new();
    let (style, script) = HASHES.get_or_init(|| (hash(STYLE), hash(AUTO_SUBMIT)));
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; script-src 'sha256-{script}'; \
         form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        launch_url.origin().ascii_serialization()
    )
}

fn layout(body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{TITLE}</title><style>{STYLE}</style></head><body>\
         <header><span class=\"logo\">Hopital Manager</span>\
         <span class=\"sim\">simulation de démonstration</span></header>\
         <main>\n<div class=\"warning\" role=\"note\"><strong>Attention : simulateur \
         d'Hopital Manager.</strong> Cette page n'est pas Hopital Manager : elle signe un jeton \
         de lancement avec une clé de démonstration publique, pour n'importe quel professionnel \
         choisi ici. L'espace professionnel de santé ne lui fait confiance qu'en démonstration. \
         Ne l'utilisez jamais avec de vraies données de patients.</div>\n{body}\n</main></body></html>\n"
    )
}

/// A page of the simulator. Its referrer policy is not `no-referrer` (the
/// dev IdP's default): with it, browsers send `Origin: null` on the
/// launch's cross-origin POST, and espace-ps cannot tell that the launch
/// came from Hopital Manager (it then asks the user to confirm).
fn page(status: StatusCode, cfg: &HmSimulatorConfig, body: &str) -> Response<Bytes> {
    let mut res = web::html(status, layout(body), &csp(&cfg.launch_url));
    res.headers_mut().insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    res
}

/// Answers a request under [`PREFIX`] (404 when the simulator is off).
pub(crate) fn handle(idp: &DevIdp, req: &Request<Bytes>, path: &str) -> Response<Bytes> {
    let Some(cfg) = &idp.cfg.hopital_manager else {
        return crate::pages::error_page(StatusCode::NOT_FOUND, "Page introuvable.");
    };
    match (path, req.method()) {
        (PREFIX, &Method::GET) => choose(idp, cfg, None),
        ("/hopital-manager/lancer", &Method::POST) => launch(idp, cfg, req),
        ("/hopital-manager/jwks.json", &Method::GET) => web::json(StatusCode::OK, &jwks()),
        ("/hopital-manager/cle-publique.pem", &Method::GET) => {
            web::pem(DEV_ONLY_HM_EC_PUBLIC_KEY_PEM)
        }
        (PREFIX, _) => web::method_not_allowed("GET"),
        ("/hopital-manager/lancer", _) => web::method_not_allowed("POST"),
        _ => crate::pages::error_page(StatusCode::NOT_FOUND, "Page introuvable."),
    }
}

/// The simulator's public key as a JWKS (`kid` [`KID`]).
pub fn jwks() -> serde_json::Value {
    json!({ "keys": [{
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
        "kid": KID,
        "x": crate::keys::DEV_ONLY_HM_EC_X,
        "y": crate::keys::DEV_ONLY_HM_EC_Y,
    }]})
}

/// The first page: who is signed in to Hopital Manager, which dossier.
fn choose(idp: &DevIdp, cfg: &HmSimulatorConfig, error: Option<&str>) -> Response<Bytes> {
    let mut pros = String::new();
    for (i, p) in idp.professionals().iter().enumerate() {
        let id = escape(&p.national_id);
        let checked = if i == 0 { " checked" } else { "" };
        pros.push_str(&format!(
            "<label><input type=\"radio\" name=\"national_id\" value=\"{id}\"{checked}> \
             {} – {} ({id})</label>",
            escape(&p.display_name()),
            escape(&p.role_label()),
        ));
    }
    let error = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{TITLE}</h1>{error}\
         <p>Choisissez le professionnel connecté à Hopital Manager et le dossier qu'il ouvre : \
         le simulateur signe un jeton de lancement et l'envoie à l'espace professionnel de \
         santé ({launch}).</p>\
         <form method=\"post\" action=\"/hopital-manager/lancer\">\
         <fieldset><legend>Professionnel connecté à Hopital Manager</legend>{pros}</fieldset>\
         <p><label for=\"dossier\">Numéro de dossier à ouvrir (facultatif)</label><br>\
         <input type=\"text\" id=\"dossier\" name=\"dossier\" autocomplete=\"off\"></p>\
         <button type=\"submit\">Ouvrir dans l'espace professionnel de santé</button></form>\
         <p>Clé publique du simulateur : <a href=\"/hopital-manager/jwks.json\">JWKS</a>, \
         <a href=\"/hopital-manager/cle-publique.pem\">PEM</a>.</p>",
        launch = escape(cfg.launch_url.as_str()),
    );
    page(
        if error.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        cfg,
        &body,
    )
}

/// Signs the launch token and answers the page that posts it to espace-ps.
fn launch(idp: &DevIdp, cfg: &HmSimulatorConfig, req: &Request<Bytes>) -> Response<Bytes> {
    let params = match web::form_params(req) {
        Some(Ok(p)) => p,
        _ => return choose(idp, cfg, Some("Formulaire invalide.")),
    };
    let chosen = params.get("national_id").map(String::as_str).unwrap_or("");
    let Some(pro) = idp.professional(chosen) else {
        return choose(idp, cfg, Some("Choisissez un professionnel de la liste."));
    };
    let dossier = params.get("dossier").map(|d| d.trim()).unwrap_or_default();
    if dossier.len() > 64 || dossier.chars().any(char::is_control) {
        return choose(idp, cfg, Some("Numéro de dossier invalide."));
    }
    let now = now();
    let mut claims = json!({
        "iss": cfg.issuer,
        "aud": cfg.audience,
        "iat": now,
        "nbf": now,
        "exp": now + LAUNCH_LIFETIME,
        "jti": random_token(),
        "national_id": pro.national_id,
        "given_name": pro.given_name,
        "family_name": pro.family_name,
        "professions": [pro.profession_code],
        "savoir_faire": if pro.skill_code.is_empty() { vec![] } else { vec![pro.skill_code.clone()] },
    });
    if !dossier.is_empty() {
        claims["dossier"] = json!(dossier);
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(KID.to_owned());
    let token = match EncodingKey::from_ec_pem(DEV_ONLY_HM_EC_PRIVATE_KEY_PEM.as_bytes())
        .and_then(|key| jsonwebtoken::encode(&header, &claims, &key))
    {
        Ok(t) => t,
        Err(_) => {
            return crate::pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Le jeton n'a pas pu être signé.",
            )
        }
    };
    let shown = serde_json::to_string_pretty(&claims).unwrap_or_default();
    let body = format!(
        "<h1>Lancement vers l'espace professionnel de santé</h1>\
         <p>Hopital Manager envoie ce jeton (ES256, clé « {KID} », valable {LAUNCH_LIFETIME} s, \
         utilisable une fois) par un formulaire POST à <code>{launch}</code>. Contenu du jeton :</p>\
         <pre>{shown}</pre>\
         <form id=\"lancement\" method=\"post\" action=\"{launch}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button type=\"submit\">Continuer vers l'espace professionnel de santé</button></form>\
         <script>{AUTO_SUBMIT}</script>",
        launch = escape(cfg.launch_url.as_str()),
        shown = escape(&shown),
        token = escape(&token),
    );
    page(StatusCode::OK, cfg, &body)
}
