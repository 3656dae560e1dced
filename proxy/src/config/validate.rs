//! The checks that turn the file ([`file::ConfigFile`]) into the validated
//! [`Config`]: environment overrides, values that serde cannot refuse alone
//! (addresses, URLs, bounds, combinations), every problem collected with its
//! key and, when the value is in the file, its line.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::file::{self, span_of};
use super::*;

mod audit;
mod stores;

/// Reads the file's shape. A problem serde finds (a syntax error, an unknown
/// key, a value of the wrong type or outside its set) stops there: it is the
/// only one reported, named by its key path.
pub(super) fn parse(text: &str) -> Result<file::ConfigFile, ConfigIssue> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = serde_key(e.path());
        let e = e.into_inner();
        let message = e.message().to_owned();
        // An unknown key is named by itself (a typo is easier to spot bare).
        let key = unknown_field(&message).unwrap_or(key);
        ConfigIssue {
            key,
            line: e.span().map(|s| line_of(text, s.start)),
            message,
        }
    })
}

/// Validates the parsed file; `env` looks up environment overrides.
pub(super) fn validate(
    text: &str,
    f: file::ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    let mut v = Validator {
        text,
        issues: Vec::new(),
    };
    let config = v.build(f, env);
    if v.issues.is_empty() {
        Ok(config)
    } else {
        Err(v.issues)
    }
}

/// The dotted key of serde's path (`sessions.store`), without list indexes
/// and without `toml::Spanned`'s own fields; `(file)` for the whole file.
fn serde_key(path: &serde_path_to_error::Path) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } if !key.starts_with("$__") => {
                Some(key.as_str())
            }
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        "(file)".to_owned()
    } else {
        keys.join(".")
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// serde's message for an unknown key is "unknown field `x`, expected ...".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn is_database_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

struct Validator<'a> {
    text: &'a str,
    issues: Vec<ConfigIssue>,
}

impl Validator<'_> {
    /// A problem with `key`, on the line of `span` (None: not in the file).
    fn issue_at(&mut self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            key: key.to_owned(),
            line: span.map(|s| line_of(self.text, s.start)),
            message: message.into(),
        });
    }

    /// A problem with the value `at` of `key`.
    fn issue<T>(&mut self, key: &str, at: &Spanned<T>, message: impl Into<String>) {
        self.issue_at(key, span_of(at), message);
    }

    fn socket(&mut self, key: &str, raw: &Spanned<String>, default: &str) -> SocketAddr {
        raw.get_ref().parse().unwrap_or_else(|_| {
            self.issue(
                key,
                raw,
                format!("`{}` is not an address like 127.0.0.1:8080", raw.get_ref()),
            );
            default.parse().expect("default address")
        })
    }

    fn url(&mut self, key: &str, raw: &Spanned<String>) -> Option<Url> {
        match Url::parse(raw.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                let message = format!("`{}` is not an absolute http(s) URL", raw.get_ref());
                self.issue(key, raw, message);
                None
            }
        }
    }

    /// A readable file, or a problem with `key`.
    fn readable(&mut self, key: &str, path: &Spanned<PathBuf>) {
        if !path.get_ref().is_file() {
            let message = format!("{} is not a readable file", path.get_ref().display());
            self.issue(key, path, message);
        }
    }

    fn build(&mut self, f: file::ConfigFile, env: &dyn Fn(&str) -> Option<String>) -> Config {
        let server = self.server(f.server);
        let upstream = self.upstream(f.upstream);
        let psc = f.psc.map(|p| self.psc(p, &server.public_url, env));
        let hm_sso = f.hm_sso.map(|h| self.hm_sso(h));
        let sessions = self.sessions(f.sessions, env);

        let database_url = f.database.url;
        let mut database = DatabaseConfig {
            url: env(ENV_DATABASE_URL).unwrap_or_else(|| database_url.get_ref().clone()),
            max_connections: f.database.max_connections,
            migrate: f.database.migrate,
            allow_audit_rewrite: f.database.allow_audit_rewrite,
        };
        if !is_database_url(&database.url) {
            self.issue(
                "database.url",
                &database_url,
                "must be a sqlite: or postgres:// URL",
            );
        } else if let Some(ca) = &f.database.ca_file {
            database.url = self.with_ca_file("database.ca_file", &database.url, ca);
        }

        let portal = self.portal(f.portal);
        let mut records = RecordsConfig {
            url: env(ENV_RECORDS_URL)
                .or_else(|| f.records.url.as_ref().map(|u| u.get_ref().clone())),
            max_connections: f.records.max_connections,
        };
        if records.url.as_deref().is_some_and(|u| !is_database_url(u)) {
            let span = f.records.url.as_ref().and_then(span_of);
            self.issue_at("records.url", span, "must be a sqlite: or postgres:// URL");
        } else if let (Some(url), Some(ca)) = (&records.url, &f.records.ca_file) {
            records.url = Some(self.with_ca_file("records.ca_file", url, ca));
        }

        // At most about a century either way: a bound that keeps the
        // arithmetic of dates far from overflow.
        const MAX_OFFSET_SECS: i64 = 100 * 366 * 86_400;
        let clock_offset = match f.testing.clock_offset_secs {
            Some(s) if s.get_ref().abs() > MAX_OFFSET_SECS => {
                self.issue(
                    "testing.clock_offset_secs",
                    &s,
                    format!("must be between -{MAX_OFFSET_SECS} and {MAX_OFFSET_SECS}"),
                );
                None
            }
            Some(s) => Some(time::Duration::seconds(s.into_inner())),
            None => None,
        };
        let rate_limit = self.rate_limit(f.rate_limit);
        let audit = self.audit(f.audit, env);

        Config {
            server,
            upstream,
            psc,
            hm_sso,
            sessions,
            database,
            logging: LoggingConfig {
                format: f.logging.format,
                level: f.logging.level,
            },
            rate_limit,
            portal,
            records,
            policies: PoliciesConfig {
                dir: f.policies.dir,
            },
            testing: TestingConfig { clock_offset },
            audit,
        }
    }

    fn server(&mut self, s: file::Server) -> ServerConfig {
        let listen = self.socket("server.listen", &s.listen, "127.0.0.1:8080");
        let admin_listen = self.socket("server.admin_listen", &s.admin_listen, "127.0.0.1:9090");
        let public_raw = s
            .public_url
            .unwrap_or_else(|| file::unspanned(format!("http://{listen}")));
        let public_url = self
            .url("server.public_url", &public_raw)
            .unwrap_or_else(|| Url::parse("http://127.0.0.1:8080").expect("static URL"));
        if public_url.path() != "/" || public_url.query().is_some() {
            self.issue(
                "server.public_url",
                &public_raw,
                "must be an origin only (scheme, host and port), without a path",
            );
        }
        if public_url.scheme() == "http" && !is_loopback_host(&public_url) {
            self.issue(
                "server.public_url",
                &public_raw,
                "plain http is only allowed on a loopback host (demo and tests); use https",
            );
        }
        let mut trusted_gateways = Vec::new();
        for g in s.trusted_gateways.get_ref() {
            match parse_ip_net(g) {
                Some(n) => trusted_gateways.push(n),
                None => self.issue(
                    "server.trusted_gateways",
                    &s.trusted_gateways,
                    format!("`{g}` is not an IP address or network"),
                ),
            }
        }
        if *s.threads.get_ref() == 0 {
            self.issue("server.threads", &s.threads, "must be at least 1");
        }
        for (key, v, max) in [
            ("server.grace_period_secs", &s.grace_period_secs, 3600),
            (
                "server.shutdown_timeout_secs",
                &s.shutdown_timeout_secs,
                600,
            ),
            ("server.drain_delay_secs", &s.drain_delay_secs, 600),
        ] {
            if *v.get_ref() > max {
                self.issue(key, v, format!("must be at most {max}"));
            }
        }
        ServerConfig {
            listen,
            admin_listen,
            public_url,
            threads: s.threads.into_inner(),
            trusted_gateways,
            drain_delay: Duration::from_secs(s.drain_delay_secs.into_inner()),
            grace_period: Duration::from_secs(s.grace_period_secs.into_inner()),
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout_secs.into_inner()),
            upgrade_sock: s.upgrade_sock,
        }
    }

    fn upstream(&mut self, u: file::Upstream) -> UpstreamConfig {
        let address = u.address.get_ref();
        if address.parse::<SocketAddr>().is_err() && !address.contains(':') {
            self.issue("upstream.address", &u.address, "must be host:port");
        }
        UpstreamConfig {
            address: u.address.into_inner(),
            viewer: u.viewer,
            hide_download: u.hide_download,
            tls: u.tls,
            sni: u.sni,
            ohif_dir: u.ohif_dir,
        }
    }

    fn portal(&mut self, p: file::Portal) -> PortalConfig {
        for (key, v, max) in [
            ("portal.unseen_days", &p.unseen_days, 366),
            ("portal.search_limit", &p.search_limit, 100),
            ("portal.grant_days", &p.grant_days, 366),
            ("portal.dossier_attempts_max", &p.dossier_attempts_max, 100),
            (
                "portal.dossier_lockout_minutes",
                &p.dossier_lockout_minutes,
                24 * 60,
            ),
            (
                "portal.dossier_daily_failures_max",
                &p.dossier_daily_failures_max,
                1000,
            ),
        ] {
            if *v.get_ref() == 0 || *v.get_ref() > max {
                self.issue(key, v, format!("must be between 1 and {max}"));
            }
        }
        if let Some(c) = &p.support_contact {
            let t = c.get_ref().trim();
            if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
                self.issue(
                    "portal.support_contact",
                    c,
                    "must be one line of 1 to 200 characters".to_owned(),
                );
            }
        }
        PortalConfig {
            support_contact: p.support_contact.map(|c| c.into_inner().trim().to_owned()),
            pages_dir: p.pages_dir,
            unseen_days: p.unseen_days.into_inner(),
            search_limit: p.search_limit.into_inner(),
            grant_days: p.grant_days.into_inner(),
            dossier_attempts_max: p.dossier_attempts_max.into_inner(),
            dossier_lockout_minutes: p.dossier_lockout_minutes.into_inner(),
            dossier_daily_failures_max: p.dossier_daily_failures_max.into_inner(),
            accounts_unused_days: p.accounts_unused_days.map(|d| {
                if *d.get_ref() == 0 {
                    self.issue("portal.accounts_unused_days", &d, "must be at least 1");
                }
                d.into_inner()
            }),
        }
    }

    fn rate_limit(&mut self, r: file::RateLimit) -> RateLimitConfig {
        if *r.login_per_minute.get_ref() < 1 {
            self.issue(
                "rate_limit.login_per_minute",
                &r.login_per_minute,
                "must be at least 1",
            );
        }
        for (key, v) in [
            (
                "rate_limit.dossier_submit_per_minute",
                &r.dossier_submit_per_minute,
            ),
            (
                "rate_limit.dossier_submit_per_minute_per_address",
                &r.dossier_submit_per_minute_per_address,
            ),
            (
                "rate_limit.record_views_per_minute",
                &r.record_views_per_minute,
            ),
            (
                "rate_limit.record_views_per_minute_per_address",
                &r.record_views_per_minute_per_address,
            ),
        ] {
            if *v.get_ref() == 0 {
                self.issue(key, v, "must be at least 1");
            }
        }
        RateLimitConfig {
            login_per_minute: r.login_per_minute.into_inner(),
            lookups: LookupLimits {
                dossier_submit_per_account: r.dossier_submit_per_minute.into_inner(),
                dossier_submit_per_address: r.dossier_submit_per_minute_per_address.into_inner(),
                record_views_per_account: r.record_views_per_minute.into_inner(),
                record_views_per_address: r.record_views_per_minute_per_address.into_inner(),
            },
        }
    }

    fn psc(
        &mut self,
        p: file::Psc,
        public_url: &Url,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> PscConfig {
        let fallback = || Url::parse("http://invalid.invalid/").expect("static URL");
        let issuer = self.url("psc.issuer", &p.issuer).unwrap_or_else(fallback);
        let discovery_url = match &p.discovery_url {
            Some(d) => self.url("psc.discovery_url", d).unwrap_or_else(fallback),
            None => {
                let base = p.issuer.get_ref().trim_end_matches('/');
                Url::parse(&format!("{base}/.well-known/wallet-openid-configuration"))
                    .unwrap_or_else(|_| fallback())
            }
        };
        let redirect_uri = match &p.redirect_uri {
            Some(r) => self.url("psc.redirect_uri", r).unwrap_or_else(fallback),
            None => public_url.join("/auth/callback").expect("static path"),
        };
        let post_logout_redirect_uri = match &p.post_logout_redirect_uri {
            Some(r) => self
                .url("psc.post_logout_redirect_uri", r)
                .unwrap_or_else(fallback),
            None => public_url.join("/auth/logged-out").expect("static path"),
        };
        if p.client_id.get_ref().trim().is_empty() {
            self.issue("psc.client_id", &p.client_id, "must not be empty");
        }
        let client_secret = env(ENV_PSC_CLIENT_SECRET).or(p.client_secret);
        match p.client_auth {
            ClientAuth::ClientSecretBasic if client_secret.is_none() => self.issue_at(
                "psc.client_secret",
                None,
                format!("required with client_secret_basic (or set {ENV_PSC_CLIENT_SECRET})"),
            ),
            ClientAuth::TlsClientAuth => {
                for (key, path) in [
                    ("psc.tls_client_cert", &p.tls_client_cert),
                    ("psc.tls_client_key", &p.tls_client_key),
                ] {
                    match path {
                        None => self.issue_at(key, None, "required with tls_client_auth"),
                        Some(path) => self.readable(key, path),
                    }
                }
            }
            ClientAuth::ClientSecretBasic => {}
        }
        let id_token_algs = self.psc_algs("psc.id_token_algs", &p.id_token_algs, &client_secret);
        // Keycloak signs userinfo under a setting of its own: an HS256 ID
        // token with an RS256 userinfo must not widen the ID token's list.
        let userinfo_algs = match &p.userinfo_algs {
            Some(algs) => self.psc_algs("psc.userinfo_algs", algs, &client_secret),
            None => id_token_algs.clone(),
        };
        if !p.scopes.get_ref().iter().any(|s| s == "openid") {
            self.issue("psc.scopes", &p.scopes, "must include \"openid\"");
        }
        if let Some(ca) = &p.ca_file {
            self.readable("psc.ca_file", ca);
        }
        let required_acr = p
            .required_acr
            .unwrap_or_else(|| p.acr_values.split(' ').map(str::to_owned).collect());
        PscConfig {
            issuer,
            discovery_url,
            client_id: p.client_id.into_inner(),
            client_secret,
            redirect_uri,
            post_logout_redirect_uri,
            scopes: p.scopes.into_inner(),
            acr_values: p.acr_values,
            required_acr,
            id_token_algs,
            userinfo_algs,
            client_auth: p.client_auth,
            tls_client_cert: p.tls_client_cert.map(Spanned::into_inner),
            tls_client_key: p.tls_client_key.map(Spanned::into_inner),
            ca_file: p.ca_file.map(Spanned::into_inner),
            dev_idp: p.dev_idp,
            http_timeout: Duration::from_secs(p.http_timeout_secs),
        }
    }

    /// A list of PSC signature algorithms: RS256 and/or HS256 (which needs
    /// the client secret), at least one.
    fn psc_algs(
        &mut self,
        key: &str,
        algs: &Spanned<Vec<IdTokenAlg>>,
        client_secret: &Option<String>,
    ) -> Vec<IdTokenAlg> {
        for alg in algs.get_ref() {
            if *alg == IdTokenAlg::Hs256 && client_secret.is_none() {
                self.issue(
                    key,
                    algs,
                    "HS256 needs the client secret to verify signatures",
                );
            }
        }
        if algs.get_ref().is_empty() {
            self.issue(key, algs, "at least one algorithm is required");
        }
        algs.get_ref().clone()
    }

    fn hm_sso(&mut self, h: file::HmSso) -> HmSsoConfig {
        if h.public_keys.get_ref().is_empty() && h.jwks_url.is_none() {
            self.issue(
                "hm_sso.public_keys",
                &h.public_keys,
                "give public_keys (PEM files) or jwks_url",
            );
        }
        for key in h.public_keys.get_ref() {
            // Each key is reported on the line of the list.
            let key = Spanned::new(h.public_keys.span(), key.clone());
            self.readable("hm_sso.public_keys", &key);
            if std::fs::read_to_string(key.get_ref()).is_ok_and(|pem| is_demo_hm_key(&pem)) {
                let message = format!(
                    "{} is the public key of the demo's Hopital Manager simulator, whose private key is public: never trusted",
                    key.get_ref().display()
                );
                self.issue("hm_sso.public_keys", &key, message);
            }
        }
        let jwks_url = h
            .jwks_url
            .as_ref()
            .and_then(|u| self.url("hm_sso.jwks_url", u));
        if h.issuer.get_ref().trim().is_empty() {
            self.issue("hm_sso.issuer", &h.issuer, "must not be empty");
        }
        if h.audience.get_ref().trim().is_empty() {
            self.issue("hm_sso.audience", &h.audience, "must not be empty");
        }
        let mut allowed_origins = Vec::new();
        for raw in h.allowed_origins.get_ref() {
            match origin_of(raw) {
                Some(o) => allowed_origins.push(o),
                None => self.issue(
                    "hm_sso.allowed_origins",
                    &h.allowed_origins,
                    format!(
                        "`{raw}` is not an origin: scheme, host and optional port only, like https://hm.chu.example"
                    ),
                ),
            }
        }
        let max_lifetime = *h.max_lifetime_secs.get_ref();
        if max_lifetime == 0 || max_lifetime > 3600 {
            self.issue(
                "hm_sso.max_lifetime_secs",
                &h.max_lifetime_secs,
                "must be between 1 and 3600",
            );
        }
        HmSsoConfig {
            issuer: h.issuer.into_inner(),
            audience: h.audience.into_inner(),
            algorithms: h.algorithms,
            public_keys: h.public_keys.into_inner(),
            jwks_url,
            max_lifetime: Duration::from_secs(max_lifetime),
            leeway: Duration::from_secs(h.leeway_secs),
            allowed_origins,
        }
    }
}

/// The public key of the dev identity provider's Hopital Manager simulator
/// (`proxy/devidp`): its private half is in the repository, so no
/// configuration may name it in `hm_sso.public_keys` (the demo binary
/// trusts the simulator through its JWKS, on loopback).
const DEMO_HM_PUBLIC_KEY: &str = include_str!("../../devidp/src/hm_sim_key.pub.pem");

/// Whether `pem` is [`DEMO_HM_PUBLIC_KEY`] (whitespace aside).
fn is_demo_hm_key(pem: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    squeeze(pem) == squeeze(DEMO_HM_PUBLIC_KEY)
}

/// `raw` as browsers serialize it in `Origin` (`https://host[:port]`, the
/// default port left out), or None when it is not exactly an http(s) origin
/// (a path, query, fragment or user name is refused, not dropped).
fn origin_of(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return None;
    }
    // "https://HM.example/" and "https://hm.example:443" name the same origin.
    Some(url.origin().ascii_serialization())
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
