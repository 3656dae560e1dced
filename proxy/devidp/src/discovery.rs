//! Discovery document and JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::keys::{DEV_ONLY_RSA_E, DEV_ONLY_RSA_N};
use crate::{web, DevIdp};

/// RFC 7638 thumbprint of the DEV-ONLY public key, used as its `kid`.
pub(crate) fn jwk_thumbprint() -> String {
    let canonical = format!(r#"{{"e":"{DEV_ONLY_RSA_E}","kty":"RSA","n":"{DEV_ONLY_RSA_N}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

pub(crate) fn discovery(idp: &DevIdp) -> Response<Bytes> {
    let oidc = format!("{}/protocol/openid-connect", idp.issuer());
    web::json(
        StatusCode::OK,
        &json!({
            "issuer": idp.issuer(),
            "authorization_endpoint": idp.authorization_endpoint(),
            "token_endpoint": format!("{oidc}/token"),
            "userinfo_endpoint": format!("{oidc}/userinfo"),
            "jwks_uri": format!("{oidc}/certs"),
            "end_session_endpoint": format!("{oidc}/logout"),
            "acr_values_supported": ["eidas1"],
            // espace-ps refuses to trust a provider carrying this marker
            // unless its configuration says `dev_idp = true`.
            "espace_ps_dev_idp": true,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "scope_all"],
            "claims_supported": [
                "iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "acr",
                "SubjectNameID", "preferred_username", "given_name", "family_name",
                "SubjectRole", "SubjectOrganization", "SubjectOrganizationID",
                "Secteur_Activite", "Palier_Authentification", "authMode",
                "otherIds", "SubjectRefPro"
            ],
        }),
    )
}

pub(crate) fn jwks(idp: &DevIdp) -> Response<Bytes> {
    web::json(
        StatusCode::OK,
        &json!({
            "keys": [{
                "kid": idp.kid,
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "n": DEV_ONLY_RSA_N,
                "e": DEV_ONLY_RSA_E,
            }]
        }),
    )
}
