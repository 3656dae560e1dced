//! The portal's pages: handlebars templates compiled into the binary (a
//! missing one fails the build), strict mode, HTML escaping kept, and an
//! optional directory that overrides them for a hospital's branding.
//! Static files come from an explicit allowlist, never from a request path.

use std::path::Path;

use handlebars::Handlebars;
use http::StatusCode;
use serde::Serialize;

use crate::views::{Page, UserView};
use crate::web::{self, Resp};

macro_rules! template {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../portal-pages/templates/", $name, ".hbs")),
        )
    };
}

/// The page templates (compiled in: a missing one fails the build).
const TEMPLATES: &[(&str, &str)] = &[
    template!("base"),
    template!("login"),
    template!("home"),
    template!("error"),
    template!("logout"),
    template!("search"),
    template!("dossier_form"),
    template!("patient"),
    template!("report"),
    template!("hm_sso_confirm"),
];

/// A static asset: path served, content type, bytes, cache policy.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// Revalidate every time (the service worker and the manifest must update promptly).
    pub revalidate: bool,
}

macro_rules! asset {
    ($path:literal, $file:literal, $ctype:literal, $revalidate:literal) => {
        Asset {
            path: $path,
            content_type: $ctype,
            body: include_bytes!(concat!("../../portal-pages/static/", $file)),
            revalidate: $revalidate,
        }
    };
}

/// The allowlist of static files (compiled in).
pub const ASSETS: &[Asset] = &[
    asset!(
        "/static/style.css",
        "style.css",
        "text/css; charset=utf-8",
        false
    ),
    asset!(
        "/static/app.js",
        "app.js",
        "text/javascript; charset=utf-8",
        false
    ),
    asset!(
        "/static/hors-ligne.html",
        "hors-ligne.html",
        "text/html; charset=utf-8",
        false
    ),
    asset!(
        "/static/icons/icon-192.png",
        "icons/icon-192.png",
        "image/png",
        false
    ),
    asset!(
        "/static/icons/icon-512.png",
        "icons/icon-512.png",
        "image/png",
        false
    ),
    asset!(
        "/static/icons/maskable-512.png",
        "icons/maskable-512.png",
        "image/png",
        false
    ),
    asset!(
        "/static/icons/apple-touch-icon.png",
        "icons/apple-touch-icon.png",
        "image/png",
        false
    ),
    asset!(
        "/manifest.webmanifest",
        "manifest.webmanifest",
        "application/manifest+json",
        true
    ),
    asset!("/sw.js", "sw.js", "text/javascript; charset=utf-8", true),
];

#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error("template {name} is invalid: {source}")]
    Template {
        name: String,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("cannot read template override {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Pages {
    hb: Handlebars<'static>,
}

/// The error page's own fields.
#[derive(Debug, Serialize)]
struct ErrorView<'a> {
    heading: &'a str,
    message: &'a str,
    /// The incident number shown to the user (never the internal code).
    reference: Option<String>,
    action_href: &'a str,
    action_label: &'a str,
}

/// What a French error page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub heading: &'static str,
    pub message: &'static str,
    /// A short internal reason code (`csrf`, `requete-invalide`…). Never
    /// shown: the page shows an incident number instead, and the log line
    /// of that number carries the code, for the help desk.
    pub reference: Option<&'static str>,
    pub action_href: &'static str,
    pub action_label: &'static str,
}

impl ErrorPage {
    pub const fn new(status: StatusCode, heading: &'static str, message: &'static str) -> Self {
        ErrorPage {
            status,
            heading,
            message,
            reference: None,
            action_href: "/",
            action_label: "Retour à l'accueil",
        }
    }

    pub const fn with_reference(mut self, reference: &'static str) -> Self {
        self.reference = Some(reference);
        self
    }

    pub const fn with_action(mut self, href: &'static str, label: &'static str) -> Self {
        self.action_href = href;
        self.action_label = label;
        self
    }
}

pub const NOT_FOUND: ErrorPage = ErrorPage::new(
    StatusCode::NOT_FOUND,
    "Page introuvable",
    "La page demandée n'existe pas.",
);
/// A report that does not exist and one this professional may not read
/// answer the same words (no existence oracle), as a missing dossier does.
pub const REPORT_NOT_FOUND: ErrorPage = ErrorPage::new(
    StatusCode::NOT_FOUND,
    "Compte rendu introuvable",
    "Ce compte rendu n'existe pas ou vous n'y avez pas accès.",
);
/// The same for the images of an exam.
pub const IMAGES_NOT_FOUND: ErrorPage = ErrorPage::new(
    StatusCode::NOT_FOUND,
    "Images introuvables",
    "Ces images n'existent pas ou vous n'y avez pas accès.",
);
pub const UNAVAILABLE: ErrorPage = ErrorPage::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "Service momentanément indisponible",
    "L'espace professionnel de santé ne peut pas vérifier votre session pour le moment. Par sécurité, l'accès est refusé. Réessayez dans quelques minutes.",
)
.with_reference("indisponible");
pub const TOO_MANY: ErrorPage = ErrorPage::new(
    StatusCode::TOO_MANY_REQUESTS,
    "Trop de tentatives",
    "Trop de tentatives de connexion depuis votre adresse. Patientez une minute avant de réessayer.",
)
.with_reference("limite");
pub const TOO_MANY_LOOKUPS: ErrorPage = ErrorPage::new(
    StatusCode::TOO_MANY_REQUESTS,
    "Trop de demandes",
    "Vous avez consulté trop de dossiers en peu de temps. Patientez une minute avant de réessayer.",
)
.with_reference("limite-dossiers");

pub const FORBIDDEN_CSRF: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Action non effectuée",
    "Par sécurité, cette action n'a pas été effectuée : la page d'où elle vient est trop ancienne, ou elle a été envoyée depuis un autre site. Revenez à la page, rechargez-la, puis recommencez.",
)
.with_reference("csrf");
pub const METHOD_NOT_ALLOWED: ErrorPage = ErrorPage::new(
    StatusCode::METHOD_NOT_ALLOWED,
    "Action non permise",
    "Cette action n'est pas permise sur cette page.",
);

impl Pages {
    pub fn new(override_dir: Option<&Path>) -> Result<Pages, PagesError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        for (name, text) in TEMPLATES {
            let owned;
            let text = match override_dir.map(|d| d.join(format!("{name}.hbs"))) {
                Some(p) if p.is_file() => {
                    owned = std::fs::read_to_string(&p).map_err(|source| PagesError::Read {
                        path: p.display().to_string(),
                        source,
                    })?;
                    owned.as_str()
                }
                _ => text,
            };
            hb.register_template_string(name, text)
                .map_err(|e| PagesError::Template {
                    name: (*name).to_owned(),
                    source: Box::new(e),
                })?;
        }
        Ok(Pages { hb })
    }

    /// Renders a page. A rendering failure is a bug: the user gets a plain
    /// error page and the cause goes to the log (without the data).
    pub fn render<T: Serialize>(&self, status: StatusCode, name: &str, data: &T) -> Resp {
        match self.hb.render(name, data) {
            Ok(body) => web::html(status, body),
            Err(e) => {
                tracing::error!(template = name, error = %e.reason(), "template rendering failed");
                web::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Erreur interne de l'espace professionnel de santé.",
                )
            }
        }
    }

    pub fn error(&self, page: &ErrorPage, user: Option<&UserView>) -> Resp {
        let reference = page.reference.map(|code| {
            let number = incident_number();
            // The help desk finds the code by the number the user quotes.
            tracing::warn!(
                reference = %number,
                code,
                status = page.status.as_u16(),
                "error page shown"
            );
            number
        });
        let data = Page {
            title: page.heading,
            user,
            refresh_to: None,
            body: ErrorView {
                heading: page.heading,
                message: page.message,
                reference,
                action_href: page.action_href,
                action_label: page.action_label,
            },
        };
        self.render(page.status, "error", &data)
    }
}

/// A number the user can read out to the help desk: eight random digits,
/// `1234-5678`.
fn incident_number() -> String {
    use rand_core::RngCore;
    let n = rand_core::OsRng.next_u32() % 100_000_000;
    format!("{:04}-{:04}", n / 10_000, n % 10_000)
}

pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_page_is_french_and_escaped() {
        let p = Pages::new(None).unwrap();
        let user = UserView {
            name: "<b>x</b>".into(),
            national_id: "899700123450".into(),
            rpps: None,
            login_method: "Hopital Manager",
            csrf_token: "t".into(),
            session_remaining_ms: 0,
        };
        let r = p.error(&NOT_FOUND, Some(&user));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = String::from_utf8(r.body().to_vec()).unwrap();
        assert!(body.contains("Page introuvable"));
        assert!(body.contains("lang=\"fr\""));
        assert!(body.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }

    #[test]
    fn override_directory_replaces_a_template() {
        let dir = std::env::temp_dir().join(format!("espace-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("login.hbs"), "{{#> base}}CHU de Test{{/base}}").unwrap();
        let p = Pages::new(Some(&dir)).unwrap();
        let r = p.render(
            StatusCode::OK,
            "login",
            &json!({"title": "x", "user": null}),
        );
        assert!(String::from_utf8_lossy(r.body()).contains("CHU de Test"));
        std::fs::write(dir.join("login.hbs"), "{{#if}}").unwrap();
        assert!(Pages::new(Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The user reads a sentence and a number, never the internal code;
    /// the code stays in the log line of that number.
    #[test]
    fn error_page_shows_an_incident_number_not_the_code() {
        let p = Pages::new(None).unwrap();
        let r = p.error(&FORBIDDEN_CSRF, None);
        let body = String::from_utf8(r.body().to_vec()).unwrap();
        assert!(!body.contains("csrf"), "{body}");
        let number = regex::Regex::new(r"la référence <strong>(\d{4}-\d{4})</strong>")
            .unwrap()
            .captures(&body)
            .unwrap_or_else(|| panic!("no incident number: {body}"))[1]
            .to_owned();
        let again = String::from_utf8(p.error(&FORBIDDEN_CSRF, None).body().to_vec()).unwrap();
        assert!(!again.contains(&number), "a new number for each incident");
        // A page without a code shows no number.
        let body = String::from_utf8(p.error(&NOT_FOUND, None).body().to_vec()).unwrap();
        assert!(!body.contains("référence"), "{body}");
    }

    #[test]
    fn only_listed_assets_are_served() {
        assert!(asset("/static/style.css").is_some());
        assert!(asset("/static/../Cargo.toml").is_none());
    }
}
