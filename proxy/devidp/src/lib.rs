//! A Pro Santé Connect look-alike for demos and for hospitals without PSC
//! sandbox access. DEV-ONLY: anyone can sign in as any listed professional,
//! and the signing key is public (see [`keys`]). The proxy trusts it only with
//! `dev_idp = true`.
//!
//! [`DevIdp::handle`] is a pure request handler; the caller supplies the HTTP
//! server. Paths follow PSC (Keycloak realm `esante-wallet`):
//!
//! | endpoint | path |
//! |---|---|
//! | discovery | `{issuer}/.well-known/wallet-openid-configuration` (also `/.well-known/openid-configuration`) |
//! | authorize (GET page, POST choice) | `{authorize_base}/auth` (PSC: `https://wallet.esw.esante.gouv.fr/auth`); also `{issuer}/protocol/openid-connect/auth` |
//! | token (POST) | `{issuer}/protocol/openid-connect/token` |
//! | userinfo (GET/POST, Bearer) | `{issuer}/protocol/openid-connect/userinfo` |
//! | jwks | `{issuer}/protocol/openid-connect/certs` |
//! | end session (GET) | `{issuer}/protocol/openid-connect/logout` |
//!
//! Routing looks at the request path only, so if `authorize_base` names
//! another host, that host must also be routed to this handler.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use jsonwebtoken::EncodingKey;
use parking_lot::{Mutex, MutexGuard};
use url::Url;

mod authorize;
mod discovery;
pub mod hm_sim;
pub mod keys;
mod pages;
pub mod professionals;
mod token;
mod web;

#[cfg(test)]
mod tests;

pub use hm_sim::HmSimulatorConfig;
pub use professionals::DemoProfessional;

/// Authorization code lifetime, seconds.
const CODE_LIFETIME: u64 = 60;
/// Access and ID token lifetime, seconds (PSC: about 2 minutes).
const TOKEN_LIFETIME: u64 = 120;
/// Keycloak federated `sub` is `f:<provider uuid>:<national id>`; this is our fixed provider id.
const FEDERATION_ID: &str = "5f0c7a2e-9d41-4c3b-8e6a-d3e0b1c2a9f4";

/// A relying party registered with the dev IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClient {
    pub client_id: String,
    pub client_secret: String,
    /// Compared to the `redirect_uri` parameter as exact strings.
    pub redirect_uris: Vec<String>,
    /// Compared to `post_logout_redirect_uri` as exact strings.
    pub post_logout_redirect_uris: Vec<String>,
}

/// Everything the dev IdP needs; see [`DevIdpConfig::with_defaults`].
#[derive(Debug, Clone)]
pub struct DevIdpConfig {
    /// e.g. `http://127.0.0.1:8081/auth/realms/esante-wallet` (no trailing slash needed).
    pub issuer: Url,
    /// Base of the authorization endpoint, which is `{authorize_base}/auth`
    /// (PSC serves it on the `wallet.*` host). Default: the issuer's origin.
    pub authorize_base: Url,
    pub clients: Vec<DevClient>,
    pub professionals: Vec<DemoProfessional>,
    /// The Hopital Manager simulator under `/hopital-manager` ([`hm_sim`]);
    /// `None` (the default): those pages answer 404.
    pub hopital_manager: Option<HmSimulatorConfig>,
}

/// The configuration was refused; every problem is listed, naming its key.
#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("invalid dev IdP configuration: {}", problems.join("; "))]
    InvalidConfig { problems: Vec<String> },
    #[error("cannot load the dev IdP signing key")]
    LoadKey(#[source] jsonwebtoken::errors::Error),
}

/// The dev IdP: configuration, signing key and in-memory codes and tokens.
pub struct DevIdp {
    cfg: DevIdpConfig,
    issuer: String,
    key: EncodingKey,
    kid: String,
    state: Mutex<State>,
}

/// How the professional "authenticated": the tab they used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    Card,
    Mobile,
}

#[derive(Debug, Default)]
struct State {
    codes: HashMap<String, CodeGrant>,
    tokens: HashMap<String, AccessGrant>,
}

/// What an authorization code stands for.
#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: String,
    national_id: String,
    auth_mode: AuthMode,
    auth_time: u64,
    expires_at: u64,
    /// Set once redeemed (or once a redemption was attempted): the access
    /// token issued, revoked if the code is presented again.
    redeemed: Option<Option<String>>,
}

/// What an access token stands for.
#[derive(Debug, Clone)]
struct AccessGrant {
    client_id: String,
    national_id: String,
    auth_mode: AuthMode,
    expires_at: u64,
}

// === impl AuthMode ===

impl AuthMode {
    fn as_str(self) -> &'static str {
        match self {
            AuthMode::Card => "CARD",
            AuthMode::Mobile => "MOBILE",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "CARD" => Some(AuthMode::Card),
            "MOBILE" => Some(AuthMode::Mobile),
            _ => None,
        }
    }
}

// === impl DevIdpConfig ===

impl DevIdpConfig {
    /// Authorization on the issuer's origin and the default demo professionals.
    pub fn with_defaults(issuer: Url, clients: Vec<DevClient>) -> Self {
        let mut authorize_base = issuer.clone();
        authorize_base.set_path("/");
        authorize_base.set_query(None);
        authorize_base.set_fragment(None);
        Self {
            issuer,
            authorize_base,
            clients,
            professionals: DemoProfessional::defaults(),
            hopital_manager: None,
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, url) in [
            ("issuer", &self.issuer),
            ("authorize_base", &self.authorize_base),
        ] {
            if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
                problems.push(format!("{key}: must be an http(s) URL, got {url}"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                problems.push(format!("{key}: must not have a query or fragment"));
            }
        }
        if self.clients.is_empty() {
            problems.push("clients: at least one client is required".into());
        }
        let mut seen = Vec::new();
        for c in &self.clients {
            let key = format!("clients[{}]", c.client_id);
            if c.client_id.is_empty() {
                problems.push("clients: a client_id is empty".into());
            }
            if seen.contains(&&c.client_id) {
                problems.push(format!("{key}: duplicate client_id"));
            }
            seen.push(&c.client_id);
            if c.client_secret.is_empty() {
                problems.push(format!("{key}.client_secret: must not be empty"));
            }
            if c.redirect_uris.is_empty() {
                problems.push(format!("{key}.redirect_uris: at least one is required"));
            }
            let uris = c.redirect_uris.iter().map(|u| ("redirect_uris", u));
            let logout = c
                .post_logout_redirect_uris
                .iter()
                .map(|u| ("post_logout_redirect_uris", u));
            for (field, uri) in uris.chain(logout) {
                match Url::parse(uri) {
                    Ok(u) if u.fragment().is_none() && matches!(u.scheme(), "http" | "https") => {}
                    _ => problems.push(format!(
                        "{key}.{field}: {uri:?} is not an absolute http(s) URL without fragment"
                    )),
                }
            }
        }
        if self.professionals.is_empty() {
            problems.push("professionals: at least one is required".into());
        }
        let mut ids = Vec::new();
        for p in &self.professionals {
            if let Some(why) = professionals::national_id_problem(&p.national_id) {
                problems.push(format!(
                    "professionals[{}].national_id: {why}",
                    p.national_id
                ));
            }
            if ids.contains(&&p.national_id) {
                problems.push(format!(
                    "professionals[{}]: duplicate national_id",
                    p.national_id
                ));
            }
            ids.push(&p.national_id);
        }
        problems
    }
}

// === impl DevIdp ===

impl DevIdp {
    /// Validates the configuration (listing every problem) and loads the DEV-ONLY key.
    pub fn new(cfg: DevIdpConfig) -> Result<Self, DevIdpError> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(DevIdpError::InvalidConfig { problems });
        }
        let key = EncodingKey::from_rsa_pem(keys::DEV_ONLY_RSA_PRIVATE_KEY_PEM.as_bytes())
            .map_err(DevIdpError::LoadKey)?;
        let issuer = cfg.issuer.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            cfg,
            issuer,
            key,
            kid: discovery::jwk_thumbprint(),
            state: Mutex::new(State::default()),
        })
    }

    /// The issuer exactly as it appears in `iss` and discovery (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The authorization endpoint: `{authorize_base}/auth`.
    pub fn authorization_endpoint(&self) -> String {
        format!(
            "{}/auth",
            self.cfg.authorize_base.as_str().trim_end_matches('/')
        )
    }

    /// The PSC-style discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/wallet-openid-configuration", self.issuer)
    }

    /// The professionals shown on the sign-in page.
    pub fn professionals(&self) -> &[DemoProfessional] {
        &self.cfg.professionals
    }

    /// The loud warning the CLI prints at start (French, like every user-facing text).
    pub fn warning_banner(&self) -> String {
        let line = "!".repeat(78);
        let mut out = format!(
            "{line}\n\
             !! ATTENTION : FOURNISSEUR D'IDENTITÉ DE DÉMONSTRATION (simulateur Pro Santé Connect)\n\
             !! Ce n'est PAS Pro Santé Connect. N'importe qui peut s'y connecter comme n'importe\n\
             !! quel professionnel listé ci-dessous, sans carte CPS ni e-CPS, et sa clé de\n\
             !! signature est publique. Ne jamais l'utiliser en production ni avec de vraies\n\
             !! données de patients : le proxy ne lui fait confiance qu'avec dev_idp = true.\n\
             !! Émetteur (issuer) : {}\n\
             !! Découverte        : {}\n\
             !! Autorisation      : {}\n\
             !! Professionnels de démonstration :\n",
            self.issuer,
            self.discovery_url(),
            self.authorization_endpoint(),
        );
        for p in &self.cfg.professionals {
            out.push_str(&format!(
                "!!   {}  {} ({})\n",
                p.national_id,
                p.display_name(),
                p.role_label()
            ));
        }
        if let Some(hm) = &self.cfg.hopital_manager {
            out.push_str(&format!(
                "!! Hopital Manager (SIMULATION, clé de démonstration publique) : \
                 {}{}\n!!   lancements envoyés à {}\n",
                self.cfg.authorize_base.as_str().trim_end_matches('/'),
                hm_sim::PREFIX,
                hm.launch_url
            ));
        }
        out.push_str(&line);
        out
    }

    /// Answers one HTTP request. Never panics on client input.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let path = req.uri().path().trim_end_matches('/');
        if path == hm_sim::PREFIX || path.starts_with("/hopital-manager/") {
            return hm_sim::handle(self, &req, path);
        }
        let rel = path.strip_prefix(self.issuer_path()).unwrap_or("");
        let authorize_path = self.authorize_path();
        let method = req.method().clone();
        let route = if path == authorize_path || rel == "/protocol/openid-connect/auth" {
            Route::Authorize
        } else {
            match rel {
                "/.well-known/wallet-openid-configuration"
                | "/.well-known/openid-configuration" => Route::Discovery,
                "/protocol/openid-connect/token" => Route::Token,
                "/protocol/openid-connect/userinfo" => Route::Userinfo,
                "/protocol/openid-connect/certs" => Route::Certs,
                "/protocol/openid-connect/logout" => Route::Logout,
                _ => return pages::error_page(StatusCode::NOT_FOUND, "Page introuvable."),
            }
        };
        match (route, method) {
            (Route::Discovery, Method::GET) => discovery::discovery(self),
            (Route::Certs, Method::GET) => discovery::jwks(self),
            (Route::Authorize, Method::GET) => authorize::show(self, &req),
            (Route::Authorize, Method::POST) => authorize::submit(self, &req),
            (Route::Token, Method::POST) => token::token(self, &req),
            (Route::Userinfo, Method::GET | Method::POST) => token::userinfo(self, &req),
            (Route::Logout, Method::GET) => authorize::logout(self, &req),
            (route, _) => web::method_not_allowed(route.allowed()),
        }
    }

    fn issuer_path(&self) -> &str {
        self.cfg.issuer.path().trim_end_matches('/')
    }

    fn authorize_path(&self) -> String {
        format!(
            "{}/auth",
            self.cfg.authorize_base.path().trim_end_matches('/')
        )
    }

    fn client(&self, client_id: &str) -> Option<&DevClient> {
        self.cfg.clients.iter().find(|c| c.client_id == client_id)
    }

    fn professional(&self, national_id: &str) -> Option<&DemoProfessional> {
        self.cfg
            .professionals
            .iter()
            .find(|p| p.national_id == national_id)
    }

    /// The Keycloak-style federated subject: `f:<provider uuid>:<national id>`.
    fn subject(national_id: &str) -> String {
        format!("f:{FEDERATION_ID}:{national_id}")
    }

    /// Locks the state and drops expired codes and tokens.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock();
        let now = now();
        state.codes.retain(|_, c| c.expires_at > now);
        state.tokens.retain(|_, t| t.expires_at > now);
        state
    }
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Discovery,
    Authorize,
    Token,
    Userinfo,
    Certs,
    Logout,
}

impl Route {
    fn allowed(self) -> &'static str {
        match self {
            Route::Discovery | Route::Certs | Route::Logout => "GET",
            Route::Authorize | Route::Userinfo => "GET, POST",
            Route::Token => "POST",
        }
    }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
