//! The Pro Santé Connect client: authorization code flow with PKCE S256,
//! `state` and `nonce`, on the `openidconnect` crate.
//!
//! PSC quirks handled here: discovery at a configured URL (PSC serves it at
//! `/.well-known/wallet-openid-configuration`), the authorize endpoint on
//! another host, `acr` checked against the configured values, ID tokens in
//! RS256 (JWKS by `kid`) or HS256 (client secret), userinfo as JSON or as a
//! signed JWT, client authentication by secret or by mutual TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde_json::Value;
use tokio::sync::RwLock;
use url::Url;

use crate::config::{ClientAuth, IdTokenAlg, PscConfig};
use crate::identity::{NationalIdError, Professional};
use crate::session::LoginFlow;

/// How long discovery and keys are kept before they are fetched again.
const PROVIDER_TTL: Duration = Duration::from_secs(600);
/// Marker the espace-ps dev identity provider puts in its discovery document.
pub const DEV_IDP_MARKER: &str = "espace_ps_dev_idp";

/// Why a PSC login failed. `code()` is a fixed reason code for the audit
/// trail and metrics; the French text is chosen by the caller.
#[derive(Debug, thiserror::Error)]
pub enum PscError {
    #[error("identity provider unreachable or discovery invalid: {0}")]
    Provider(String),
    #[error("the discovered issuer {found} is not the configured {expected}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the provider is the espace-ps dev identity provider, and dev_idp is not set")]
    DevIdpUntrusted,
    #[error("token exchange refused: {0}")]
    TokenExchange(String),
    #[error("no ID token in the token response")]
    NoIdToken,
    #[error("ID token rejected: {0}")]
    IdToken(String),
    #[error("authentication level {0:?} is not accepted")]
    Acr(Option<String>),
    #[error("userinfo rejected: {0}")]
    UserInfo(String),
    #[error("national identifier: {0}")]
    NationalId(#[from] NationalIdError),
}

impl PscError {
    /// Why the login is refused, as its page and audit record say.
    pub fn failure(&self) -> super::failure::PscFailure {
        use super::failure::PscFailure as F;
        match self {
            PscError::Provider(_) => F::ProviderUnreachable,
            PscError::IssuerMismatch { .. } => F::IssuerMismatch,
            PscError::DevIdpUntrusted => F::DevIdpUntrusted,
            PscError::TokenExchange(_) => F::TokenExchange,
            PscError::NoIdToken => F::NoIdToken,
            PscError::IdToken(_) => F::IdTokenInvalid,
            PscError::Acr(_) => F::Acr,
            PscError::UserInfo(_) => F::UserInfoInvalid,
            PscError::NationalId(_) => F::NationalId,
        }
    }
}

/// What a successful login gives.
#[derive(Debug, Clone)]
pub struct PscLogin {
    pub professional: Professional,
    /// The raw ID token, for PSC's logout `id_token_hint`.
    pub id_token: String,
}

/// Discovery, keys and endpoints of the provider, fetched lazily and kept
/// for a while.
struct Provider {
    metadata: CoreProviderMetadata,
    jwks: jsonwebtoken::jwk::JwkSet,
    userinfo_endpoint: Option<Url>,
    end_session_endpoint: Option<Url>,
    /// RFC 8705 `mtls_endpoint_aliases.token_endpoint`, used with mutual TLS.
    mtls_token_endpoint: Option<Url>,
    fetched: Instant,
}

pub struct PscClient {
    cfg: PscConfig,
    http: reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
}

fn provider_err(e: impl std::fmt::Display) -> PscError {
    PscError::Provider(e.to_string())
}

impl PscClient {
    /// Builds the HTTP client (with the mTLS identity when configured).
    pub fn new(cfg: PscConfig) -> Result<PscClient, PscError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.http_timeout)
            .user_agent("espace-ps");
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(provider_err)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(provider_err)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if cfg.client_auth == ClientAuth::TlsClientAuth {
            let (Some(cert), Some(key)) = (&cfg.tls_client_cert, &cfg.tls_client_key) else {
                return Err(PscError::Provider(
                    "tls_client_auth without certificate and key".into(),
                ));
            };
            let mut pem = std::fs::read(cert).map_err(provider_err)?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(provider_err)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(provider_err)?;
            builder = builder.identity(identity);
        }
        Ok(PscClient {
            http: builder.build().map_err(provider_err)?,
            cfg,
            provider: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &PscConfig {
        &self.cfg
    }

    async fn provider(&self, refresh: bool) -> Result<Arc<Provider>, PscError> {
        if !refresh {
            if let Some(p) = self.provider.read().await.as_ref() {
                if p.fetched.elapsed() < PROVIDER_TTL {
                    return Ok(p.clone());
                }
            }
        }
        let mut slot = self.provider.write().await;
        let p = Arc::new(self.discover().await?);
        *slot = Some(p.clone());
        Ok(p)
    }

    async fn get_json(&self, url: &Url) -> Result<(Value, Vec<u8>), PscError> {
        let resp = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(provider_err)?;
        if !resp.status().is_success() {
            return Err(PscError::Provider(format!(
                "{url} answered {}",
                resp.status()
            )));
        }
        let bytes = resp.bytes().await.map_err(provider_err)?.to_vec();
        let value = serde_json::from_slice(&bytes).map_err(provider_err)?;
        Ok((value, bytes))
    }

    async fn discover(&self) -> Result<Provider, PscError> {
        let (doc, raw) = self.get_json(&self.cfg.discovery_url).await?;
        if doc.get(DEV_IDP_MARKER).and_then(Value::as_bool) == Some(true) && !self.cfg.dev_idp {
            return Err(PscError::DevIdpUntrusted);
        }
        let metadata: CoreProviderMetadata = serde_json::from_slice(&raw).map_err(provider_err)?;
        let found = metadata.issuer().as_str().trim_end_matches('/');
        let expected = self.cfg.issuer.as_str().trim_end_matches('/');
        if found != expected {
            return Err(PscError::IssuerMismatch {
                expected: expected.to_owned(),
                found: found.to_owned(),
            });
        }
        let jwks_url = Url::parse(metadata.jwks_uri().as_str()).map_err(provider_err)?;
        let (jwks_value, jwks_raw) = self.get_json(&jwks_url).await?;
        let oidc_jwks: CoreJsonWebKeySet =
            serde_json::from_slice(&jwks_raw).map_err(provider_err)?;
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(jwks_value).map_err(provider_err)?;
        let url_field = |name: &str| {
            doc.get(name)
                .and_then(Value::as_str)
                .and_then(|u| Url::parse(u).ok())
        };
        let mtls_token_endpoint = doc
            .get("mtls_endpoint_aliases")
            .and_then(|a| a.get("token_endpoint"))
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok());
        Ok(Provider {
            mtls_token_endpoint,
            userinfo_endpoint: url_field("userinfo_endpoint"),
            end_session_endpoint: url_field("end_session_endpoint"),
            metadata: metadata.set_jwks(oidc_jwks),
            jwks,
            fetched: Instant::now(),
        })
    }

    fn client(
        &self,
        p: &Provider,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        PscError,
    > {
        // With mutual TLS no secret goes to the token endpoint (the ID
        // token verifier below still uses it for HS256).
        let secret = match self.cfg.client_auth {
            ClientAuth::ClientSecretBasic => self.cfg.client_secret.clone().map(ClientSecret::new),
            ClientAuth::TlsClientAuth => None,
        };
        let auth_type = match self.cfg.client_auth {
            ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
            ClientAuth::TlsClientAuth => AuthType::RequestBody,
        };
        let mut metadata = p.metadata.clone();
        if let (ClientAuth::TlsClientAuth, Some(alias)) =
            (self.cfg.client_auth, &p.mtls_token_endpoint)
        {
            metadata = metadata.set_token_endpoint(Some(
                openidconnect::TokenUrl::new(alias.to_string()).map_err(provider_err)?,
            ));
        }
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.cfg.client_id.clone()),
            secret,
        )
        .set_redirect_uri(
            RedirectUrl::new(self.cfg.redirect_uri.to_string()).map_err(provider_err)?,
        )
        .set_auth_type(auth_type);
        Ok(client)
    }

    /// Starts a login: the URL to send the browser to, and what the
    /// callback must find again.
    pub async fn begin(&self, return_to: String) -> Result<(Url, LoginFlow), PscError> {
        let p = self.provider(false).await?;
        let client = self.client(&p)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.cfg.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        for acr in self.cfg.acr_values.split_whitespace() {
            req = req.add_auth_context_value(AuthenticationContextClass::new(acr.to_owned()));
        }
        let (url, state, nonce) = req.url();
        Ok((
            url,
            LoginFlow {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to,
            },
        ))
    }

    /// Finishes a login from the callback's `code` (state already checked).
    pub async fn complete(&self, flow: &LoginFlow, code: &str) -> Result<PscLogin, PscError> {
        let p = self.provider(false).await?;
        let client = self.client(&p)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(provider_err)?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| PscError::TokenExchange(token_error_text(&e)))?;
        let id_token = token.id_token().ok_or(PscError::NoIdToken)?;
        let nonce = Nonce::new(flow.nonce.clone());
        let algs: Vec<CoreJwsSigningAlgorithm> = self
            .cfg
            .id_token_algs
            .iter()
            .map(|a| match a {
                IdTokenAlg::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                IdTokenAlg::Hs256 => CoreJwsSigningAlgorithm::HmacSha256,
            })
            .collect();

        let verify = |p: &Provider| {
            let client_id = ClientId::new(self.cfg.client_id.clone());
            let issuer = p.metadata.issuer().clone();
            let jwks = p.metadata.jwks().clone();
            let verifier = match &self.cfg.client_secret {
                Some(secret) => CoreIdTokenVerifier::new_confidential_client(
                    client_id,
                    ClientSecret::new(secret.clone()),
                    issuer,
                    jwks,
                ),
                None => CoreIdTokenVerifier::new_public_client(client_id, issuer, jwks),
            }
            .set_allowed_algs(algs.clone());
            id_token.claims(&verifier, &nonce).map(|c| {
                (
                    c.subject().as_str().to_owned(),
                    c.auth_context_ref().map(|a| a.as_str().to_owned()),
                )
            })
        };
        let (subject, acr) = match verify(&p) {
            Ok(c) => c,
            // A key we do not know yet: the provider may have rotated its keys.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let p = self.provider(true).await?;
                verify(&p).map_err(|e| PscError::IdToken(e.to_string()))?
            }
            Err(e) => return Err(PscError::IdToken(e.to_string())),
        };
        if !acr
            .as_ref()
            .is_some_and(|a| self.cfg.required_acr.contains(a))
        {
            return Err(PscError::Acr(acr));
        }
        let claims = self
            .user_info(&p, token.access_token().secret(), &subject)
            .await?;
        let professional = Professional::from_psc_claims(&claims)?;
        Ok(PscLogin {
            professional,
            id_token: id_token.to_string(),
        })
    }

    /// Userinfo as JSON or as a signed JWT (verified like the ID token, with
    /// the algorithms of `userinfo_algs`);
    /// its `sub` must equal the ID token's.
    async fn user_info(
        &self,
        p: &Provider,
        access_token: &str,
        subject: &str,
    ) -> Result<Value, PscError> {
        let url = p
            .userinfo_endpoint
            .clone()
            .ok_or_else(|| PscError::UserInfo("no userinfo endpoint in discovery".into()))?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/jwt, application/json")
            .send()
            .await
            .map_err(|e| PscError::UserInfo(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(PscError::UserInfo(format!("status {}", resp.status())));
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = resp
            .bytes()
            .await
            .map_err(|e| PscError::UserInfo(e.to_string()))?;
        let claims: Value = if content_type.starts_with("application/jwt") {
            let jwt = std::str::from_utf8(&body)
                .map_err(|e| PscError::UserInfo(e.to_string()))?
                .trim();
            self.verify_userinfo_jwt(p, jwt)?
        } else if content_type.starts_with("application/json") {
            serde_json::from_slice(&body).map_err(|e| PscError::UserInfo(e.to_string()))?
        } else {
            return Err(PscError::UserInfo(format!(
                "unexpected content type {content_type}"
            )));
        };
        if claims.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(PscError::UserInfo("sub differs from the ID token's".into()));
        }
        Ok(claims)
    }

    fn verify_userinfo_jwt(&self, p: &Provider, jwt: &str) -> Result<Value, PscError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let bad = |e: &dyn std::fmt::Display| PscError::UserInfo(e.to_string());
        let header = jsonwebtoken::decode_header(jwt).map_err(|e| bad(&e))?;
        let key = match header.alg {
            Algorithm::RS256 if self.cfg.userinfo_algs.contains(&IdTokenAlg::Rs256) => {
                let jwk = match &header.kid {
                    Some(kid) => p.jwks.find(kid),
                    None if p.jwks.keys.len() == 1 => p.jwks.keys.first(),
                    None => None,
                }
                .ok_or_else(|| PscError::UserInfo("no key for the userinfo signature".into()))?;
                DecodingKey::from_jwk(jwk).map_err(|e| bad(&e))?
            }
            Algorithm::HS256 if self.cfg.userinfo_algs.contains(&IdTokenAlg::Hs256) => {
                let secret =
                    self.cfg.client_secret.as_deref().ok_or_else(|| {
                        PscError::UserInfo("HS256 without a client secret".into())
                    })?;
                DecodingKey::from_secret(secret.as_bytes())
            }
            other => {
                return Err(PscError::UserInfo(format!(
                    "userinfo algorithm {other:?} not accepted"
                )))
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["sub"]);
        validation.set_audience(&[&self.cfg.client_id]);
        validation.set_issuer(&[
            self.cfg.issuer.as_str(),
            self.cfg.issuer.as_str().trim_end_matches('/'),
        ]);
        let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation).map_err(|e| bad(&e))?;
        Ok(data.claims)
    }

    /// PSC's end-session URL with `id_token_hint`, `post_logout_redirect_uri` and `state`.
    pub async fn logout_url(&self, id_token_hint: Option<&str>, state: &str) -> Option<Url> {
        let p = self.provider(false).await.ok()?;
        let mut url = p.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair(
                "post_logout_redirect_uri",
                self.cfg.post_logout_redirect_uri.as_str(),
            );
            q.append_pair("state", state);
            q.append_pair("client_id", &self.cfg.client_id);
        }
        Some(url)
    }

    /// Whether discovery and keys can be fetched now (readiness).
    pub async fn reachable(&self) -> bool {
        self.provider(false).await.is_ok()
    }
}

fn token_error_text<RE: std::error::Error + 'static>(
    e: &openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => r.error().to_string(),
        other => other.to_string(),
    }
}
