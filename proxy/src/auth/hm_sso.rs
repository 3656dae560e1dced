//! Single sign-on from Hopital Manager: a short-lived JWT signed by Hopital
//! Manager (RS256 or ES256 only), verified with configured PEM keys or a
//! JWKS URL. `iss`, `aud`, `exp`, `nbf`, `iat` are checked, the lifetime is
//! capped, and `jti` is single use (the caller remembers it in the session
//! store until the token's expiry). A verified launch signs no one in by
//! itself: the caller parks it as a [`PendingLaunch`] and the browser that
//! started it continues it (see `auth::hm_sso_launch`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::{HmAlg, HmSsoConfig};
use crate::identity::{LoginMethod, NationalId, NationalIdError, Professional};
use crate::web::safe_return_to;

const JWKS_TTL: Duration = Duration::from_secs(600);
/// A token whose `kid` the kept JWKS does not list makes espace-ps fetch it
/// again (Hopital Manager rotated its key), at most this often.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HmSsoError {
    #[error("no token in the request")]
    Missing,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token lifetime above the configured maximum")]
    TooLong,
    #[error("token has no jti")]
    NoJti,
    #[error("token already used")]
    Replayed,
    #[error("keys unavailable: {0}")]
    Keys(String),
    #[error("national identifier: {0}")]
    NationalId(#[from] NationalIdError),
}

impl HmSsoError {
    /// Why the launch is refused, as its page and audit record say.
    pub fn failure(&self) -> super::failure::HmFailure {
        use super::failure::HmFailure as F;
        match self {
            HmSsoError::Missing => F::MissingToken,
            HmSsoError::Invalid(_) => F::TokenInvalid,
            HmSsoError::TooLong => F::LifetimeTooLong,
            HmSsoError::NoJti => F::NoJti,
            HmSsoError::Replayed => F::Replayed,
            HmSsoError::Keys(_) => F::KeysUnavailable,
            HmSsoError::NationalId(_) => F::NationalId,
        }
    }
}

/// The claims Hopital Manager sends.
#[derive(Debug, Deserialize)]
struct HmClaims {
    /// National id (`8` + RPPS, `0` + ADELI…); `sub` is used when absent.
    national_id: Option<String>,
    sub: Option<String>,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    professions: Vec<String>,
    #[serde(default)]
    savoir_faire: Vec<String>,
    jti: Option<String>,
    exp: i64,
    iat: i64,
    /// Optionally, what to open: a dossier number, a patient id, or a path.
    dossier: Option<String>,
    patient: Option<String>,
    return_to: Option<String>,
}

/// A verified SSO launch.
#[derive(Debug, Clone)]
pub struct HmLaunch {
    pub professional: Professional,
    pub jti: String,
    /// How long the `jti` must be remembered.
    pub jti_ttl: Duration,
    /// Where to send the browser: a same-origin path.
    pub target: String,
}

/// A verified launch waiting in the session store (under a one-time id)
/// until the browser that started it continues: straight away for a POST
/// from one of `hm_sso.allowed_origins`, after the user's confirmation on
/// a page otherwise. The raw token never comes back through the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLaunch {
    pub professional: Professional,
    pub target: String,
    /// SHA-256 of the browser-binding cookie set with the launch's answer:
    /// only the browser that started the launch can continue it.
    pub browser: String,
    /// The CSRF value the confirmation form must carry back.
    pub csrf_token: String,
    /// POSTed from an allowed origin: no confirmation page, unless another
    /// professional is signed in in this browser.
    pub direct: bool,
}

impl PendingLaunch {
    /// How the page names the professional: "Dr Prénom NOM" for a
    /// physician (profession code 10), the name alone otherwise.
    pub fn label(&self) -> String {
        let name = self.professional.display_name();
        if self.professional.professions.iter().any(|p| p == "10") {
            format!("Dr {name}")
        } else {
            name
        }
    }
}

pub struct HmSso {
    cfg: HmSsoConfig,
    static_keys: Vec<(HmAlg, DecodingKey)>,
    http: reqwest::Client,
    jwks: RwLock<Option<(Arc<jsonwebtoken::jwk::JwkSet>, Instant)>>,
}

impl HmSso {
    pub fn new(cfg: HmSsoConfig) -> Result<HmSso, HmSsoError> {
        let mut static_keys = Vec::new();
        for path in &cfg.public_keys {
            let pem = std::fs::read(path)
                .map_err(|e| HmSsoError::Keys(format!("{}: {e}", path.display())))?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                static_keys.push((HmAlg::Rs256, k));
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                static_keys.push((HmAlg::Es256, k));
            } else {
                return Err(HmSsoError::Keys(format!(
                    "{}: not an RSA or EC public key in PEM",
                    path.display()
                )));
            }
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HmSsoError::Keys(e.to_string()))?;
        Ok(HmSso {
            cfg,
            static_keys,
            http,
            jwks: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &HmSsoConfig {
        &self.cfg
    }

    /// The JWKS, kept [`JWKS_TTL`]; fetched again sooner when it does not
    /// list `kid` (a key rotation), at most once per [`JWKS_MIN_REFETCH`].
    async fn jwks(
        &self,
        kid: Option<&str>,
    ) -> Result<Option<Arc<jsonwebtoken::jwk::JwkSet>>, HmSsoError> {
        let Some(url) = &self.cfg.jwks_url else {
            return Ok(None);
        };
        if let Some((set, at)) = self.jwks.read().await.as_ref() {
            let listed = kid.is_none_or(|k| set.find(k).is_some());
            if at.elapsed() < JWKS_TTL && (listed || at.elapsed() < JWKS_MIN_REFETCH) {
                return Ok(Some(set.clone()));
            }
        }
        let set: jsonwebtoken::jwk::JwkSet = self
            .http
            .get(url.clone())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| HmSsoError::Keys(e.to_string()))?
            .json()
            .await
            .map_err(|e| HmSsoError::Keys(e.to_string()))?;
        let set = Arc::new(set);
        *self.jwks.write().await = Some((set.clone(), Instant::now()));
        Ok(Some(set))
    }

    /// Verifies a token. The caller then claims its `jti` once.
    pub async fn verify(&self, token: &str, now: i64) -> Result<HmLaunch, HmSsoError> {
        let invalid = |e: &dyn std::fmt::Display| HmSsoError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        let alg = match header.alg {
            Algorithm::RS256 => HmAlg::Rs256,
            Algorithm::ES256 => HmAlg::Es256,
            other => return Err(HmSsoError::Invalid(format!("algorithm {other:?} refused"))),
        };
        if !self.cfg.algorithms.contains(&alg) {
            return Err(HmSsoError::Invalid(format!(
                "algorithm {alg:?} not configured"
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        validation.set_issuer(&[&self.cfg.issuer]);
        validation.set_audience(&[&self.cfg.audience]);
        validation.validate_nbf = true;
        validation.leeway = self.cfg.leeway.as_secs();

        let decode = |keys: &[DecodingKey], last: &mut HmSsoError| {
            keys.iter().find_map(|key| {
                match jsonwebtoken::decode::<HmClaims>(token, key, &validation) {
                    Ok(d) => Some(d.claims),
                    Err(e) => {
                        *last = invalid(&e);
                        None
                    }
                }
            })
        };
        let mut last = HmSsoError::Invalid("no key for this token".into());
        // The PEM keys first: a token they verify needs no JWKS (nor its
        // server up).
        let static_keys: Vec<DecodingKey> = self
            .static_keys
            .iter()
            .filter(|(a, _)| *a == alg)
            .map(|(_, k)| k.clone())
            .collect();
        let mut claims = decode(&static_keys, &mut last);
        if claims.is_none() {
            if let Some(set) = self.jwks(header.kid.as_deref()).await? {
                let jwks: Vec<DecodingKey> = match &header.kid {
                    Some(kid) => set.find(kid).into_iter().collect::<Vec<_>>(),
                    None => set.keys.iter().collect(),
                }
                .into_iter()
                .filter_map(|j| DecodingKey::from_jwk(j).ok())
                .collect();
                claims = decode(&jwks, &mut last);
            }
        }
        let claims = claims.ok_or(last)?;

        let leeway = self.cfg.leeway.as_secs() as i64;
        if claims.iat > now + leeway {
            return Err(HmSsoError::Invalid("issued in the future".into()));
        }
        if claims.exp - claims.iat > self.cfg.max_lifetime.as_secs() as i64 {
            return Err(HmSsoError::TooLong);
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or(HmSsoError::NoJti)?;
        // `national_id` is the national identifier by name; `sub` may be
        // anything Hopital Manager numbers its users with, so it counts only
        // when it has the shape of an RPPS or ADELI identifier.
        let national_id = match (claims.national_id, claims.sub) {
            (Some(id), _) => NationalId::parse(&id)?,
            (None, Some(sub)) => NationalId::parse_rpps_or_adeli(&sub)?,
            (None, None) => return Err(NationalIdError::Missing.into()),
        };
        let mut professional = Professional::new(
            national_id,
            claims.given_name.trim().to_owned(),
            claims.family_name.trim().to_owned(),
            LoginMethod::HmSso,
        );
        professional.professions = claims.professions;
        professional.savoir_faire = claims.savoir_faire;
        let enc = |s: &str| urlencoding::encode(s).into_owned();
        let target = if let Some(d) = claims.dossier.filter(|d| !d.is_empty()) {
            format!("/portail/dossiers/{}", enc(&d))
        } else if let Some(p) = claims.patient.filter(|p| !p.is_empty()) {
            format!("/portail/patients/{}", enc(&p))
        } else {
            claims
                .return_to
                .as_deref()
                .and_then(safe_return_to)
                .unwrap_or_else(|| "/".to_owned())
        };
        let jti_ttl = Duration::from_secs((claims.exp - now + leeway).clamp(1, 7200) as u64);
        Ok(HmLaunch {
            professional,
            jti,
            jti_ttl,
            target,
        })
    }
}
