//! Authorization endpoint (sign-in page and its POST) and end-session endpoint.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use jsonwebtoken::{DecodingKey, Validation};
use url::Url;

use crate::keys::{DEV_ONLY_RSA_E, DEV_ONLY_RSA_N};
use crate::pages::{self, SignIn};
use crate::web::{self, Params};
use crate::{now, AuthMode, CodeGrant, DevIdp, CODE_LIFETIME};

/// A validated authorization request.
#[derive(Debug)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    nonce: String,
    code_challenge: String,
    acr_values: Option<String>,
}

/// Why an authorization request was refused.
enum Refusal {
    /// Client or redirect URI cannot be trusted: show a page, never redirect.
    Page(&'static str),
    /// Tell the client, at its registered redirect URI (RFC 6749 §4.1.2.1).
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: &'static str,
        state: Option<String>,
    },
}

// === impl AuthRequest ===

impl AuthRequest {
    fn validate(idp: &DevIdp, p: Result<Params, String>) -> Result<Self, Refusal> {
        let p = p.map_err(|_| Refusal::Page("Requête invalide : un paramètre est répété."))?;
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let client = idp
            .client(get("client_id"))
            .ok_or(Refusal::Page("Application inconnue (client_id)."))?;
        let redirect_uri = get("redirect_uri");
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(Refusal::Page(
                "Adresse de retour (redirect_uri) non enregistrée pour cette application.",
            ));
        }
        let refuse = |error, description| Refusal::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            error,
            description,
            state: p.get("state").cloned(),
        };
        if get("response_type") != "code" {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        if !get("scope").split(' ').any(|s| s == "openid") {
            return Err(refuse("invalid_scope", "scope must include openid"));
        }
        if get("code_challenge_method") != "S256" || !is_pkce_value(get("code_challenge")) {
            return Err(refuse(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            ));
        }
        if get("state").is_empty() {
            return Err(refuse("invalid_request", "state is required"));
        }
        if get("nonce").is_empty() {
            return Err(refuse("invalid_request", "nonce is required"));
        }
        Ok(Self {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scope: get("scope").to_owned(),
            state: get("state").to_owned(),
            nonce: get("nonce").to_owned(),
            code_challenge: get("code_challenge").to_owned(),
            acr_values: p.get("acr_values").cloned(),
        })
    }

    /// The parameters to carry through the sign-in form.
    fn hidden(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", &self.redirect_uri),
            ("response_type", "code"),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(acr) = &self.acr_values {
            out.push(("acr_values", acr));
        }
        out
    }
}

/// RFC 7636: 43 to 128 characters from the unreserved set.
pub(crate) fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn refused(r: Refusal) -> Response<Bytes> {
    match r {
        Refusal::Page(msg) => pages::error_page(StatusCode::BAD_REQUEST, msg),
        Refusal::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => match Url::parse(&redirect_uri) {
            Ok(mut url) => {
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("error", error)
                        .append_pair("error_description", description);
                    if let Some(state) = state {
                        q.append_pair("state", &state);
                    }
                }
                web::redirect(&url)
            }
            Err(_) => pages::error_page(StatusCode::BAD_REQUEST, "Adresse de retour invalide."),
        },
    }
}

fn sign_in(
    idp: &DevIdp,
    status: StatusCode,
    req: &AuthRequest,
    active: AuthMode,
    error: Option<&str>,
    typed_id: &str,
) -> Response<Bytes> {
    let action = idp.authorize_path();
    pages::sign_in_page(
        status,
        &SignIn {
            action: &action,
            client_id: &req.client_id,
            hidden: &req.hidden(),
            professionals: idp.professionals(),
            active,
            error,
            typed_id,
        },
    )
}

/// GET: the sign-in page.
pub(crate) fn show(idp: &DevIdp, req: &Request<Bytes>) -> Response<Bytes> {
    match AuthRequest::validate(idp, web::query_params(req)) {
        Ok(auth) => sign_in(idp, StatusCode::OK, &auth, AuthMode::Card, None, ""),
        Err(r) => refused(r),
    }
}

/// POST: the professional was chosen; issue a code and go back to the client.
pub(crate) fn submit(idp: &DevIdp, req: &Request<Bytes>) -> Response<Bytes> {
    let Some(form) = web::form_params(req) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Formulaire invalide.");
    };
    let national_id = form
        .as_ref()
        .ok()
        .and_then(|f| f.get("national_id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mode = form
        .as_ref()
        .ok()
        .and_then(|f| f.get("auth_mode"))
        .and_then(|m| AuthMode::parse(m));
    let auth = match AuthRequest::validate(idp, form) {
        Ok(auth) => auth,
        Err(r) => return refused(r),
    };
    let Some(mode) = mode else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Mode d'authentification inconnu.");
    };
    if idp.professional(&national_id).is_none() {
        let msg = "Identifiant national inconnu de ce simulateur. Choisissez un des \
                   identifiants de démonstration.";
        return sign_in(
            idp,
            StatusCode::BAD_REQUEST,
            &auth,
            mode,
            Some(msg),
            &national_id,
        );
    }

    let code = crate::token::random_token();
    let now = now();
    idp.state().codes.insert(
        code.clone(),
        CodeGrant {
            client_id: auth.client_id,
            redirect_uri: auth.redirect_uri.clone(),
            code_challenge: auth.code_challenge,
            nonce: auth.nonce,
            national_id,
            auth_mode: mode,
            auth_time: now,
            expires_at: now + CODE_LIFETIME,
            redeemed: None,
        },
    );
    // The redirect URI was matched against the registered list in `validate`.
    match Url::parse(&auth.redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", &auth.state);
            web::redirect(&url)
        }
        Err(_) => pages::error_page(StatusCode::BAD_REQUEST, "Adresse de retour invalide."),
    }
}

/// GET end-session: `id_token_hint`, `post_logout_redirect_uri`, `state`
/// (and optionally `client_id`). Revokes the professional's access tokens.
pub(crate) fn logout(idp: &DevIdp, req: &Request<Bytes>) -> Response<Bytes> {
    let Ok(p) = web::query_params(req) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Requête invalide.");
    };
    let hint = match p.get("id_token_hint") {
        Some(t) => match verify_own_id_token(idp, t) {
            Some(claims) => Some(claims),
            None => return pages::error_page(StatusCode::BAD_REQUEST, "id_token_hint invalide."),
        },
        None => None,
    };
    let client_id = match (p.get("client_id"), &hint) {
        (Some(c), Some(h)) if *c != h.aud => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "client_id ne correspond pas à id_token_hint.",
            )
        }
        (Some(c), _) => Some(c.as_str()),
        (None, Some(h)) => Some(h.aud.as_str()),
        (None, None) => None,
    };
    if let Some(h) = &hint {
        let national_id = h.sub.rsplit(':').next().unwrap_or("");
        idp.state()
            .tokens
            .retain(|_, t| !(t.client_id == h.aud && t.national_id == national_id));
    }
    let Some(target) = p.get("post_logout_redirect_uri") else {
        return pages::signed_out_page();
    };
    let registered = client_id
        .and_then(|c| idp.client(c))
        .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == target));
    if !registered {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Adresse de retour après déconnexion (post_logout_redirect_uri) non enregistrée \
             pour cette application.",
        );
    }
    match Url::parse(target) {
        Ok(mut url) => {
            if let Some(state) = p.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            web::redirect(&url)
        }
        Err(_) => pages::error_page(StatusCode::BAD_REQUEST, "Adresse de retour invalide."),
    }
}

#[derive(serde::Deserialize)]
struct HintClaims {
    aud: String,
    sub: String,
}

/// Checks an `id_token_hint` was signed by us; an expired one is fine.
fn verify_own_id_token(idp: &DevIdp, token: &str) -> Option<HintClaims> {
    let key = DecodingKey::from_rsa_components(DEV_ONLY_RSA_N, DEV_ONLY_RSA_E).ok()?;
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[idp.issuer()]);
    v.set_required_spec_claims(&["iss", "aud", "sub"]);
    jsonwebtoken::decode::<HintClaims>(token, &key, &v)
        .ok()
        .map(|d| d.claims)
}
