//! Why a login was refused, and the French page that says so. Every reason
//! has its code (the audit record's detail, the metric's label) and its
//! page; the mapping is exhaustive, so a new reason cannot go unexplained.

use http::StatusCode;

use crate::audit::{AuditMethod, Event};
use crate::pages::ErrorPage;

/// A refused login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    Psc(PscFailure),
    Hm(HmFailure),
}

/// A refused Pro Santé Connect login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PscFailure {
    /// Pro Santé Connect is not configured on this server.
    NotConfigured,
    /// The callback came without a pending login of this browser.
    FlowMissing,
    /// The callback's `state` is not the one of this browser's login.
    StateMismatch,
    /// The provider answered with an error (refused, cancelled).
    ProviderError,
    /// The callback has no authorization code.
    MissingCode,
    /// The provider (discovery, keys) cannot be reached.
    ProviderUnreachable,
    /// The provider's discovery names another issuer.
    IssuerMismatch,
    /// The development identity provider, where it is not trusted.
    DevIdpUntrusted,
    /// The code could not be exchanged for tokens.
    TokenExchange,
    /// The token answer has no ID token.
    NoIdToken,
    /// The ID token does not verify.
    IdTokenInvalid,
    /// The authentication level (eIDAS substantial) was not reached.
    Acr,
    /// The userinfo answer does not verify.
    UserInfoInvalid,
    /// The national id is missing or malformed.
    NationalId,
}

/// A refused Hopital Manager single sign-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmFailure {
    NotConfigured,
    MissingToken,
    TokenInvalid,
    LifetimeTooLong,
    NoJti,
    Replayed,
    KeysUnavailable,
    NationalId,
    /// The parked launch is gone (expired or used).
    LaunchExpired,
    /// The launch was started in another browser.
    LaunchOtherBrowser,
    /// The confirmation did not come from our page.
    LaunchCsrf,
}

const LOGIN_FAILED: &str = "La connexion a échoué";
const HM_LOGIN_FAILED: &str = "La connexion depuis Hopital Manager a échoué";
const RETRY: (&str, &str) = ("/auth/login", "Recommencer la connexion");

impl PscFailure {
    pub fn code(self) -> &'static str {
        match self {
            PscFailure::NotConfigured => "not_configured",
            PscFailure::FlowMissing => "flow_missing",
            PscFailure::StateMismatch => "state_mismatch",
            PscFailure::ProviderError => "provider_error",
            PscFailure::MissingCode => "missing_code",
            PscFailure::ProviderUnreachable => "provider_unreachable",
            PscFailure::IssuerMismatch => "issuer_mismatch",
            PscFailure::DevIdpUntrusted => "dev_idp_untrusted",
            PscFailure::TokenExchange => "token_exchange",
            PscFailure::NoIdToken => "no_id_token",
            PscFailure::IdTokenInvalid => "id_token_invalid",
            PscFailure::Acr => "acr",
            PscFailure::UserInfoInvalid => "userinfo_invalid",
            PscFailure::NationalId => "national_id",
        }
    }

    fn message(self) -> &'static str {
        match self {
            PscFailure::FlowMissing | PscFailure::StateMismatch => {
                "La demande de connexion a expiré ou ne correspond pas à celle de votre navigateur. Recommencez la connexion."
            }
            PscFailure::ProviderError => "Pro Santé Connect a refusé ou annulé la connexion.",
            PscFailure::MissingCode => "La réponse de Pro Santé Connect est incomplète.",
            PscFailure::TokenExchange | PscFailure::NoIdToken => {
                "La connexion n'a pas pu être finalisée auprès de Pro Santé Connect (code expiré ou déjà utilisé). Recommencez la connexion."
            }
            PscFailure::IdTokenInvalid => {
                "Le jeton d'identité reçu de Pro Santé Connect n'est pas valide. Par sécurité, la connexion est refusée."
            }
            PscFailure::Acr => {
                "Votre connexion n'a pas atteint le niveau de sécurité exigé pour consulter des données de santé : celui d'une carte CPS ou de l'application e-CPS (niveau « substantiel » de la réglementation européenne eIDAS). Reconnectez-vous avec votre carte CPS ou l'application e-CPS."
            }
            PscFailure::UserInfoInvalid => {
                "Les informations de votre identité professionnelle n'ont pas pu être vérifiées auprès de Pro Santé Connect."
            }
            PscFailure::NationalId => {
                "Votre identifiant national de professionnel de santé est absent ou mal formé. Contactez le support de l'établissement."
            }
            PscFailure::DevIdpUntrusted | PscFailure::IssuerMismatch => {
                "Le fournisseur d'identité n'est pas celui attendu par l'établissement. La connexion est refusée."
            }
            PscFailure::ProviderUnreachable | PscFailure::NotConfigured => {
                "Pro Santé Connect est momentanément injoignable. Réessayez dans quelques minutes."
            }
        }
    }

    fn status(self) -> StatusCode {
        match self {
            PscFailure::ProviderUnreachable => StatusCode::BAD_GATEWAY,
            PscFailure::NotConfigured => StatusCode::NOT_FOUND,
            PscFailure::FlowMissing
            | PscFailure::StateMismatch
            | PscFailure::ProviderError
            | PscFailure::MissingCode
            | PscFailure::IssuerMismatch
            | PscFailure::DevIdpUntrusted
            | PscFailure::TokenExchange
            | PscFailure::NoIdToken
            | PscFailure::IdTokenInvalid
            | PscFailure::Acr
            | PscFailure::UserInfoInvalid
            | PscFailure::NationalId => StatusCode::FORBIDDEN,
        }
    }
}

impl HmFailure {
    pub fn code(self) -> &'static str {
        match self {
            HmFailure::NotConfigured => "not_configured",
            HmFailure::MissingToken => "missing_token",
            HmFailure::TokenInvalid => "token_invalid",
            HmFailure::LifetimeTooLong => "lifetime_too_long",
            HmFailure::NoJti => "no_jti",
            HmFailure::Replayed => "replayed",
            HmFailure::KeysUnavailable => "keys_unavailable",
            HmFailure::NationalId => "national_id",
            HmFailure::LaunchExpired => "launch_expired",
            HmFailure::LaunchOtherBrowser => "launch_other_browser",
            HmFailure::LaunchCsrf => "launch_csrf",
        }
    }

    fn message(self) -> &'static str {
        match self {
            HmFailure::Replayed => {
                "Ce lien de connexion depuis Hopital Manager a déjà été utilisé. Relancez l'accès depuis Hopital Manager."
            }
            HmFailure::NationalId => {
                "Votre identifiant national de professionnel de santé est absent ou mal formé dans la demande d'Hopital Manager."
            }
            HmFailure::KeysUnavailable => {
                "Les clés de vérification d'Hopital Manager sont momentanément indisponibles. Réessayez dans quelques minutes."
            }
            HmFailure::NotConfigured => {
                "La connexion depuis Hopital Manager n'est pas activée sur ce serveur."
            }
            HmFailure::LaunchExpired => {
                "Cette demande de connexion depuis Hopital Manager a expiré ou a déjà servi. Relancez l'accès depuis Hopital Manager."
            }
            HmFailure::LaunchOtherBrowser => {
                "Cette demande de connexion n'a pas été ouverte dans ce navigateur. Relancez l'accès depuis Hopital Manager."
            }
            HmFailure::LaunchCsrf => {
                "La confirmation ne provient pas de la page de connexion de l'espace professionnel de santé. Par sécurité, la connexion est refusée. Relancez l'accès depuis Hopital Manager."
            }
            HmFailure::MissingToken
            | HmFailure::TokenInvalid
            | HmFailure::LifetimeTooLong
            | HmFailure::NoJti => {
                "La demande de connexion d'Hopital Manager n'est pas valide ou a expiré. Relancez l'accès depuis Hopital Manager."
            }
        }
    }

    fn status(self) -> StatusCode {
        match self {
            HmFailure::KeysUnavailable => StatusCode::BAD_GATEWAY,
            HmFailure::NotConfigured => StatusCode::NOT_FOUND,
            HmFailure::MissingToken
            | HmFailure::TokenInvalid
            | HmFailure::LifetimeTooLong
            | HmFailure::NoJti
            | HmFailure::Replayed
            | HmFailure::NationalId
            | HmFailure::LaunchExpired
            | HmFailure::LaunchOtherBrowser
            | HmFailure::LaunchCsrf => StatusCode::FORBIDDEN,
        }
    }
}

impl LoginFailure {
    /// The reason code: the audit record's detail and the metric's label.
    pub fn code(self) -> &'static str {
        match self {
            LoginFailure::Psc(f) => f.code(),
            LoginFailure::Hm(f) => f.code(),
        }
    }

    /// The audit event and method (also the metric's label) of this kind
    /// of login.
    pub fn event_and_method(self) -> (Event, AuditMethod) {
        match self {
            LoginFailure::Psc(_) => (Event::Login, AuditMethod::Psc),
            LoginFailure::Hm(_) => (Event::HmSso, AuditMethod::HmSso),
        }
    }

    /// The French page that explains the refusal.
    pub fn page(self) -> ErrorPage {
        match self {
            LoginFailure::Psc(f) => ErrorPage::new(f.status(), LOGIN_FAILED, f.message())
                .with_reference(f.code())
                .with_action(RETRY.0, RETRY.1),
            LoginFailure::Hm(f) => {
                ErrorPage::new(f.status(), HM_LOGIN_FAILED, f.message()).with_reference(f.code())
            }
        }
    }
}

impl From<PscFailure> for LoginFailure {
    fn from(f: PscFailure) -> LoginFailure {
        LoginFailure::Psc(f)
    }
}

impl From<HmFailure> for LoginFailure {
    fn from(f: HmFailure) -> LoginFailure {
        LoginFailure::Hm(f)
    }
}
