//! Token endpoint (authorization code + PKCE) and signed userinfo.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, Header};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::authorize::is_pkce_value;
use crate::web::{self, Params};
use crate::{now, AccessGrant, DemoProfessional, DevClient, DevIdp, TOKEN_LIFETIME};

/// 256 random bits, base64url: authorization codes and access tokens.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn invalid_client(description: &str) -> Response<Bytes> {
    let mut res = web::oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"esante-wallet\""),
    );
    res
}

fn invalid_grant(description: &str) -> Response<Bytes> {
    web::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_request(description: &str) -> Response<Bytes> {
    web::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Compares secrets in constant time (hashing first hides their lengths).
fn secret_matches(expected: &str, given: &str) -> bool {
    Sha256::digest(expected.as_bytes())
        .ct_eq(&Sha256::digest(given.as_bytes()))
        .into()
}

/// A failed client authentication.
enum ClientAuthError {
    /// 401 `invalid_client`.
    Client(&'static str),
    /// 400 `invalid_request`.
    Request(&'static str),
}

impl ClientAuthError {
    fn response(self) -> Response<Bytes> {
        match self {
            ClientAuthError::Client(d) => invalid_client(d),
            ClientAuthError::Request(d) => invalid_request(d),
        }
    }
}

/// `client_secret_basic` or `client_secret_post`, exactly one of them.
fn authenticate_client<'a>(
    idp: &'a DevIdp,
    req: &Request<Bytes>,
    form: &Params,
) -> Result<&'a DevClient, ClientAuthError> {
    use ClientAuthError::{Client, Request as BadRequest};
    let basic = match req.headers().get(header::AUTHORIZATION) {
        Some(v) => Some(parse_basic(v).ok_or(Client("malformed Basic credentials"))?),
        None => None,
    };
    let (id, secret) = match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => return Err(BadRequest("use one client authentication method only")),
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|c| *c != id) {
                return Err(BadRequest("client_id does not match the Basic credentials"));
            }
            (id, secret)
        }
        (None, Some(secret)) => (
            form.get("client_id").cloned().unwrap_or_default(),
            secret.clone(),
        ),
        (None, None) => return Err(Client("client authentication is required")),
    };
    match idp.client(&id) {
        Some(c) if secret_matches(&c.client_secret, &secret) => Ok(c),
        _ => Err(Client("unknown client or wrong secret")),
    }
}

/// RFC 6749 §2.3.1: base64 of form-urlencoded `id:secret`.
fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        urlencoding::decode(&s.replace('+', " "))
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// POST token: `grant_type=authorization_code`, `code`, `redirect_uri`, `code_verifier`.
pub(crate) fn token(idp: &DevIdp, req: &Request<Bytes>) -> Response<Bytes> {
    let form = match web::form_params(req) {
        Some(Ok(form)) => form,
        Some(Err(name)) => return invalid_request(&format!("repeated parameter {name}")),
        None => return invalid_request("expected an application/x-www-form-urlencoded body"),
    };
    let client = match authenticate_client(idp, req, &form) {
        Ok(c) => c,
        Err(e) => return e.response(),
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "authorization_code" {
        return web::oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }

    let mut guard = idp.state();
    let state = &mut *guard;
    let Some(grant) = state.codes.get_mut(get("code")) else {
        return invalid_grant("unknown or expired code");
    };
    if grant.client_id != client.client_id {
        return invalid_grant("code was issued to another client");
    }
    if let Some(issued) = grant.redeemed.take() {
        // Replay: refuse and revoke what the first redemption produced.
        grant.redeemed = Some(None);
        if let Some(access_token) = issued {
            state.tokens.remove(&access_token);
        }
        return invalid_grant("code already used");
    }
    // Single use from here on, whatever the outcome.
    grant.redeemed = Some(None);
    let grant = grant.clone();
    if grant.redirect_uri != get("redirect_uri") {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    let verifier = get("code_verifier");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !is_pkce_value(verifier) || challenge != grant.code_challenge {
        return invalid_grant("PKCE verification failed");
    }
    let Some(pro) = idp.professional(&grant.national_id) else {
        return invalid_grant("unknown professional");
    };

    let now = now();
    let sub = DevIdp::subject(&pro.national_id);
    let id_token = json!({
        "iss": idp.issuer(),
        "aud": client.client_id,
        "azp": client.client_id,
        "sub": sub,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "auth_time": grant.auth_time,
        "nonce": grant.nonce,
        "acr": "eidas1",
        "SubjectNameID": pro.national_id,
        "preferred_username": pro.national_id,
    });
    let Some(id_token) = sign(idp, &id_token) else {
        return signing_failed();
    };
    let access_token = random_token();
    state.tokens.insert(
        access_token.clone(),
        AccessGrant {
            client_id: client.client_id.clone(),
            national_id: pro.national_id.clone(),
            auth_mode: grant.auth_mode,
            expires_at: now + TOKEN_LIFETIME,
        },
    );
    if let Some(g) = state.codes.get_mut(get("code")) {
        g.redeemed = Some(Some(access_token.clone()));
    }
    web::json(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "id_token": id_token,
            "scope": "openid scope_all",
        }),
    )
}

/// Signs claims with the DEV-ONLY key; `None` cannot happen with the embedded key.
fn sign(idp: &DevIdp, claims: &Value) -> Option<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(idp.kid.clone());
    jsonwebtoken::encode(&header, claims, &idp.key).ok()
}

fn signing_failed() -> Response<Bytes> {
    web::oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "signing failed",
    )
}

/// GET/POST userinfo with `Authorization: Bearer`: a signed JWT (`application/jwt`).
pub(crate) fn userinfo(idp: &DevIdp, req: &Request<Bytes>) -> Response<Bytes> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let grant = token.and_then(|t| idp.state().tokens.get(&t).cloned());
    let Some(grant) = grant else {
        let mut res = web::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "missing, unknown, expired or revoked access token",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return res;
    };
    let Some(pro) = idp.professional(&grant.national_id) else {
        return web::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "unknown professional",
        );
    };
    let now = now();
    let mut claims = userinfo_claims(pro, grant.auth_mode.as_str());
    if let Value::Object(map) = &mut claims {
        map.insert("iss".into(), idp.issuer().into());
        map.insert("aud".into(), grant.client_id.into());
        map.insert("sub".into(), DevIdp::subject(&pro.national_id).into());
        map.insert("iat".into(), now.into());
        map.insert("exp".into(), (now + TOKEN_LIFETIME).into());
    }
    match sign(idp, &claims) {
        Some(t) => web::jwt(t),
        None => signing_failed(),
    }
}

/// PSC's userinfo claims for one professional.
fn userinfo_claims(p: &DemoProfessional, auth_mode: &str) -> Value {
    let organization_id = format!("1{}", p.organization_finess);
    json!({
        "SubjectNameID": p.national_id,
        "preferred_username": p.national_id,
        "given_name": p.given_name,
        "family_name": p.family_name,
        "SubjectRole": [format!("{}^1.2.250.1.213.1.1.5.5", p.profession_code)],
        "SubjectOrganization": p.organization_name,
        "SubjectOrganizationID": organization_id,
        "Secteur_Activite": "SA01^1.2.250.1.71.4.2.4",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "authMode": auth_mode,
        "otherIds": [{
            "identifiant": p.register_number(),
            "origine": p.register(),
            "qualite": 1,
        }],
        "SubjectRefPro": {
            "codeCivilite": p.civility,
            "exercices": [{
                "codeProfession": p.profession_code,
                "codeCategorieProfessionnelle": p.professional_category,
                "codeCiviliteDexercice": p.practice_civility,
                "nomDexercice": p.family_name,
                "prenomDexercice": p.given_name,
                "codeTypeSavoirFaire": p.skill_type,
                "codeSavoirFaire": p.skill_code,
                "activities": [{
                    "codeModeExercice": "S",
                    "codeSecteurDactivite": "SA01",
                    "codeSectionPharmacien": "",
                    "codeRole": "",
                    "numeroSiretSite": "",
                    "numeroSirenSite": "",
                    "numeroFinessSite": p.organization_finess,
                    "numeroFinessetablissementJuridique": "",
                    "identifiantTechniqueDeLaStructure": organization_id,
                    "raisonSocialeSite": p.organization_name,
                    "enseigneCommercialeSite": "",
                }],
            }],
        },
    })
}
