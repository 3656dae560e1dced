//! The French HTML pages: sign-in (PSC look-alike), errors, signed out.
//! Every reflected value goes through [`escape`]. No JavaScript: the tabs
//! are CSS radio buttons.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::web::{self, escape};
use crate::{AuthMode, DemoProfessional};

const TITLE: &str = "Pro Santé Connect (simulateur de démonstration)";

const STYLE: &str = "\
body{margin:0;font-family:Marianne,Arial,sans-serif;background:#f6f6f6;color:#161616}\
header{background:#fff;border-bottom:4px solid #000091;padding:12px 24px;display:flex;gap:12px;align-items:baseline}\
header .logo{font-weight:700;font-size:1.3em;color:#000091}\
header .sim{color:#b34000;font-weight:700}\
main{max-width:760px;margin:24px auto;padding:0 16px}\
h1{font-size:1.5em;color:#000091}\
.warning{background:#fff4e5;border-left:6px solid #b34000;padding:12px 16px;margin:16px 0}\
.error{background:#ffe9e9;border-left:6px solid #ce0500;padding:12px 16px;margin:16px 0}\
.tabs>input{position:absolute;opacity:0}\
.tabs>label{display:inline-block;padding:10px 20px;border:1px solid #ddd;border-bottom:none;background:#eee;cursor:pointer;font-weight:700}\
.tabs>input:checked+label{background:#fff;color:#000091;border-top:3px solid #000091}\
.tabs>input:focus-visible+label{outline:2px solid #0a76f6}\
.panel{display:none;background:#fff;border:1px solid #ddd;padding:16px}\
#onglet-carte:checked~.panel-carte,#onglet-appli:checked~.panel-appli{display:block}\
ul.pros{list-style:none;padding:0}\
ul.pros li{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;gap:8px;border-bottom:1px solid #eee;padding:10px 0}\
.name{font-weight:700}.role,.id{color:#555;font-size:.9em;display:block}\
button{background:#000091;color:#fff;border:0;padding:10px 16px;font-size:1em;cursor:pointer}\
input[type=text]{font-size:1em;padding:8px;width:16em;margin:0 8px 8px 0}\
table{border-collapse:collapse;margin-top:8px}td{padding:4px 12px 4px 0}\
";

/// CSP for every page: nothing but the inline style above, by hash.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

fn layout(body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{TITLE}</title><style>{STYLE}</style></head><body>\
         <header><span class=\"logo\">Pro Santé Connect</span>\
         <span class=\"sim\">simulateur de démonstration</span></header>\
         <main>\n<div class=\"warning\" role=\"alert\"><strong>Attention : fournisseur \
         d'identité de démonstration.</strong> Ce simulateur n'est pas Pro Santé Connect : \
         aucune carte CPS ni application e-CPS n'est vérifiée et n'importe qui peut choisir \
         n'importe quel professionnel. Ne l'utilisez jamais avec de vraies données de patients.\
         </div>\n{body}\n</main></body></html>\n"
    )
}

/// A page with a message and no link back to the client (we may not trust its URLs).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response<Bytes> {
    let body = format!(
        "<h1>{TITLE}</h1><div class=\"error\" role=\"alert\"><p>{}</p></div>",
        escape(message)
    );
    web::html(status, layout(&body), csp())
}

pub(crate) fn signed_out_page() -> Response<Bytes> {
    let body = format!(
        "<h1>{TITLE}</h1><p>Vous êtes déconnecté du simulateur. Vous pouvez fermer cette page.</p>"
    );
    web::html(StatusCode::OK, layout(&body), csp())
}

/// What the sign-in page needs.
pub(crate) struct SignIn<'a> {
    /// Where the forms POST (the authorize path).
    pub action: &'a str,
    pub client_id: &'a str,
    /// The authorize parameters, carried in hidden fields.
    pub hidden: &'a [(&'static str, &'a str)],
    pub professionals: &'a [DemoProfessional],
    pub active: AuthMode,
    pub error: Option<&'a str>,
    /// Previous value of the national-id field.
    pub typed_id: &'a str,
}

pub(crate) fn sign_in_page(status: StatusCode, s: &SignIn<'_>) -> Response<Bytes> {
    let hidden: String = s
        .hidden
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(v)
            )
        })
        .collect();
    let action = escape(s.action);
    let error = s
        .error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    let (card_checked, app_checked) = match s.active {
        AuthMode::Card => (" checked", ""),
        AuthMode::Mobile => ("", " checked"),
    };

    let mut card_list = String::new();
    let mut id_table = String::new();
    for p in s.professionals {
        let (name, role, id) = (
            escape(&p.display_name()),
            escape(&p.role_label()),
            escape(&p.national_id),
        );
        card_list.push_str(&format!(
            "<li><span><span class=\"name\">{name}</span><span class=\"role\">{role}</span>\
             <span class=\"id\">Identifiant national : {id}</span></span>\
             <button type=\"submit\" name=\"national_id\" value=\"{id}\" \
             aria-label=\"Se connecter avec la carte CPS de {name}\">\
             Se connecter avec la carte CPS</button></li>"
        ));
        id_table.push_str(&format!(
            "<tr><td><strong>{id}</strong></td><td>{name}</td><td>{role}</td></tr>"
        ));
    }

    let body = format!(
        "<h1>{TITLE}</h1>\
         <p>L'application <strong>{client}</strong> demande votre identification.</p>{error}\
         <div class=\"tabs\">\
         <input type=\"radio\" name=\"onglet\" id=\"onglet-carte\"{card_checked}>\
         <label for=\"onglet-carte\">Carte CPS</label>\
         <input type=\"radio\" name=\"onglet\" id=\"onglet-appli\"{app_checked}>\
         <label for=\"onglet-appli\">Application e-CPS</label>\
         <section class=\"panel panel-carte\"><h2>Carte CPS</h2>\
         <p>Simulation : choisissez la carte CPS insérée dans le lecteur. Aucun code porteur \
         n'est demandé.</p>\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <input type=\"hidden\" name=\"auth_mode\" value=\"CARD\">\
         <ul class=\"pros\">{card_list}</ul></form></section>\
         <section class=\"panel panel-appli\"><h2>Application e-CPS</h2>\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <input type=\"hidden\" name=\"auth_mode\" value=\"MOBILE\">\
         <p><label for=\"identifiant\">Identifiant national</label></p>\
         <input type=\"text\" id=\"identifiant\" name=\"national_id\" inputmode=\"numeric\" \
         autocomplete=\"username\" required value=\"{typed}\">\
         <button type=\"submit\">Se connecter avec e-CPS</button></form>\
         <p>Simulation : aucune validation n'est demandée sur l'application e-CPS. \
         Identifiants de démonstration :</p><table>{id_table}</table></section>\
         </div>",
        client = escape(s.client_id),
        typed = escape(s.typed_id),
    );
    web::html(status, layout(&body), csp())
}
