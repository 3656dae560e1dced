//! Configuration in three layers: the TOML file format (`file::*`, serde with
//! `deny_unknown_fields`), environment overrides for secrets, and one
//! validated [`Config`] that the rest of the code sees.
//!
//! Validation collects every error and names the key (and its line when the
//! key is in the file), so `espace-ps check-config` can point at it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

/// Environment variables that override secrets and connection strings.
pub const ENV_PSC_CLIENT_SECRET: &str = "ESPACE_PSC_CLIENT_SECRET";
pub const ENV_REDIS_URL: &str = "ESPACE_REDIS_URL";
pub const ENV_DATABASE_URL: &str = "ESPACE_DATABASE_URL";
pub const ENV_RECORDS_URL: &str = "ESPACE_RECORDS_URL";

/// The file format. Every table rejects unknown keys.
pub mod file {
    use serde::Deserialize;
    use std::path::PathBuf;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConfigFile {
        #[serde(default)]
        pub server: Server,
        #[serde(default)]
        pub upstream: Upstream,
        pub psc: Option<Psc>,
        pub hm_sso: Option<HmSso>,
        #[serde(default)]
        pub sessions: Sessions,
        #[serde(default)]
        pub database: Database,
        #[serde(default)]
        pub logging: Logging,
        #[serde(default)]
        pub rate_limit: RateLimit,
        #[serde(default)]
        pub portal: Portal,
        #[serde(default)]
        pub records: Records,
        #[serde(default)]
        pub policies: Policies,
        #[serde(default)]
        pub testing: Testing,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        pub listen: Option<String>,
        pub admin_listen: Option<String>,
        pub public_url: Option<String>,
        pub threads: Option<usize>,
        #[serde(default)]
        pub trusted_gateways: Vec<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Upstream {
        pub address: Option<String>,
        pub viewer: Option<String>,
        pub hide_download: Option<Vec<String>>,
        pub tls: Option<bool>,
        pub sni: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Psc {
        pub issuer: String,
        pub discovery_url: Option<String>,
        pub client_id: String,
        pub client_secret: Option<String>,
        pub redirect_uri: Option<String>,
        pub post_logout_redirect_uri: Option<String>,
        pub scopes: Option<Vec<String>>,
        pub acr_values: Option<String>,
        pub required_acr: Option<Vec<String>>,
        pub id_token_algs: Option<Vec<String>>,
        pub userinfo_algs: Option<Vec<String>>,
        pub client_auth: Option<String>,
        pub tls_client_cert: Option<PathBuf>,
        pub tls_client_key: Option<PathBuf>,
        pub ca_file: Option<PathBuf>,
        pub dev_idp: Option<bool>,
        pub http_timeout_secs: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HmSso {
        pub issuer: String,
        pub audience: String,
        pub algorithms: Option<Vec<String>>,
        #[serde(default)]
        pub public_keys: Vec<PathBuf>,
        pub jwks_url: Option<String>,
        pub max_lifetime_secs: Option<u64>,
        pub leeway_secs: Option<u64>,
        #[serde(default)]
        pub allowed_origins: Vec<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sessions {
        pub store: Option<String>,
        pub redis_url: Option<String>,
        pub key_prefix: Option<String>,
        pub idle_timeout_secs: Option<u64>,
        pub absolute_timeout_secs: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Database {
        pub url: Option<String>,
        pub max_connections: Option<u32>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Logging {
        pub format: Option<String>,
        pub level: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RateLimit {
        pub login_per_minute: Option<isize>,
        pub dossier_submit_per_minute: Option<u64>,
        pub dossier_submit_per_minute_per_address: Option<u64>,
        pub record_views_per_minute: Option<u64>,
        pub record_views_per_minute_per_address: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Portal {
        pub pages_dir: Option<PathBuf>,
        pub unseen_days: Option<u32>,
        pub search_limit: Option<u32>,
        pub grant_days: Option<u32>,
        pub dossier_attempts_max: Option<u32>,
        pub dossier_lockout_minutes: Option<u32>,
        pub dossier_daily_failures_max: Option<u32>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Records {
        pub url: Option<String>,
        pub max_connections: Option<u32>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Policies {
        pub dir: Option<PathBuf>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Testing {
        pub clock_offset_secs: Option<i64>,
    }
}

// === impl Config ===

/// The validated configuration the rest of espace-ps uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub psc: Option<PscConfig>,
    pub hm_sso: Option<HmSsoConfig>,
    pub sessions: SessionConfig,
    pub database_url: String,
    pub database_max_connections: u32,
    pub logging: LoggingConfig,
    pub login_rate_per_minute: isize,
    /// Rate limits on the dossier lookups, kept in the session store.
    pub lookup_limits: LookupLimits,
    pub pages_dir: Option<PathBuf>,
    pub policies_dir: PathBuf,
    pub portal: PortalConfig,
    /// The hospital records (read-only); None: the portal has no records.
    pub records_url: Option<String>,
    pub records_max_connections: u32,
    /// Tests only: how far espace-ps's clock is moved from the system clock (see `clock`).
    pub clock_offset: Option<time::Duration>,
}

/// Portal rules (user guide sections 2 and 3).
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Results younger than this many days are listed on the home page.
    pub unseen_days: u32,
    /// At most this many patients per name search.
    pub search_limit: u32,
    /// A dossier opened by number and birth date stays open this long.
    pub grant_days: u32,
    /// Failed dossier-number attempts before a lockout, per professional and per dossier number.
    pub dossier_attempts_max: u32,
    /// How long a lockout lasts (and the window failures are counted in).
    pub dossier_lockout_minutes: u32,
    /// Failed attempts on one dossier number, by anyone, in 24 hours after
    /// which that number is locked until an administrator unlocks it.
    pub dossier_daily_failures_max: u32,
}

/// Per-minute limits on the portal's dossier lookups (`POST /portail/dossier`,
/// `GET /portail/dossiers/{n}`, `GET /portail/patients/{id}`), per account and
/// per client address, shared by every instance through the session store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    pub dossier_submit_per_account: u64,
    pub dossier_submit_per_address: u64,
    pub record_views_per_account: u64,
    pub record_views_per_address: u64,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The origin browsers use (scheme, host, port), without a path.
    pub public_url: Url,
    pub threads: usize,
    pub trusted_gateways: Vec<IpNet>,
}

impl ServerConfig {
    /// `https://host[:port]`, as browsers send it in `Origin`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Secure cookies (and the `__Host-` prefix) unless the public URL is
    /// plain http on a loopback host (demo and tests only).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub address: String,
    /// The route table (`policies/viewers/*.toml`, by its `name`) of this viewer.
    pub viewer: String,
    /// CSS selectors of the viewer's download controls, hidden from
    /// professionals without the habilitation.
    pub hide_download: Vec<String>,
    pub tls: bool,
    pub sni: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// Mutual TLS with a client certificate (RFC 8705 `tls_client_auth`).
    TlsClientAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenAlg {
    Rs256,
    Hs256,
}

#[derive(Clone)]
pub struct PscConfig {
    pub issuer: Url,
    pub discovery_url: Url,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: Url,
    pub post_logout_redirect_uri: Url,
    pub scopes: Vec<String>,
    pub acr_values: String,
    pub required_acr: Vec<String>,
    pub id_token_algs: Vec<IdTokenAlg>,
    /// Accepted algorithms of a signed userinfo response (Keycloak signs it
    /// under a client setting of its own); defaults to `id_token_algs`.
    pub userinfo_algs: Vec<IdTokenAlg>,
    pub client_auth: ClientAuth,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// Extra trusted root certificates (PEM) for calls to PSC.
    pub ca_file: Option<PathBuf>,
    pub dev_idp: bool,
    pub http_timeout: Duration,
}

impl fmt::Debug for PscConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PscConfig")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("client_auth", &self.client_auth)
            .field("dev_idp", &self.dev_idp)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmAlg {
    Rs256,
    Es256,
}

#[derive(Debug, Clone)]
pub struct HmSsoConfig {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<HmAlg>,
    pub public_keys: Vec<PathBuf>,
    pub jwks_url: Option<Url>,
    pub max_lifetime: Duration,
    pub leeway: Duration,
    /// Hopital Manager's origins (`https://host[:port]`, as browsers send
    /// them in `Origin`): a launch POSTed from one of them goes straight
    /// through; any other launch is confirmed on a page first.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum SessionStoreConfig {
    Memory,
    Redis { url: String },
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: SessionStoreConfig,
    pub key_prefix: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub format: LogFormat,
    pub level: String,
}

/// An IP network (`10.0.0.0/8`, or a single address), from the `ipnet` crate.
pub use ipnet::IpNet;

/// Parses a network (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes the IPv4
/// network it maps, since client addresses are canonicalized before they
/// are compared (see `web::client_ip`).
pub fn parse_ip_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => IpNet::from(s.parse::<IpAddr>().ok()?),
    };
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .ok()
                .map(IpNet::V4);
        }
    }
    Some(net)
}

/// One configuration problem: the key, its line in the file when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

impl Config {
    /// Reads, parses and validates a configuration file, applying environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, |k| std::env::var(k).ok())
    }

    /// Parses and validates configuration text. `env` looks up environment overrides.
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parsed: file::ConfigFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().to_owned();
            let key = unknown_field(&message).unwrap_or_else(|| "(file)".to_owned());
            ConfigError::Invalid(vec![ConfigIssue { key, line, message }])
        })?;
        let mut v = Validator {
            text,
            issues: Vec::new(),
        };
        let config = v.build(parsed, &env);
        if v.issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(v.issues))
        }
    }

    /// The embedded defaults: one instance, nothing else installed.
    pub fn defaults() -> Config {
        Config::from_toml("", |_| None).expect("the empty configuration is valid")
    }

    /// A one-line summary for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let login = match (&self.psc, &self.hm_sso) {
            (Some(p), Some(_)) if p.dev_idp => "dev identity provider + Hopital Manager SSO",
            (Some(p), None) if p.dev_idp => "dev identity provider",
            (Some(_), Some(_)) => "Pro Santé Connect + Hopital Manager SSO",
            (Some(_), None) => "Pro Santé Connect",
            (None, Some(_)) => "Hopital Manager SSO only",
            (None, None) => "no login method",
        };
        let store = match self.sessions.store {
            SessionStoreConfig::Memory => "in-memory sessions",
            SessionStoreConfig::Redis { .. } => "Redis sessions",
        };
        let db = if self.database_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        let clock = match self.clock_offset {
            Some(d) => format!(", CLOCK MOVED by {} s (tests only)", d.whole_seconds()),
            None => String::new(),
        };
        format!(
            "ok: listen {} (public {}), viewer {}, {login}, {store}, portal database {db}{clock}",
            self.server.listen,
            self.server.public_origin(),
            self.upstream.address
        )
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

struct Validator<'a> {
    text: &'a str,
    issues: Vec<ConfigIssue>,
}

impl Validator<'_> {
    fn line_of_key(&self, path: &str) -> Option<usize> {
        let doc = toml_edit::ImDocument::parse(self.text).ok()?;
        let mut parts = path.split('.').peekable();
        let mut table = doc.as_table();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                let span = table.key(part)?.span()?;
                return Some(line_of(self.text, span.start));
            }
            table = table.get(part)?.as_table()?;
        }
        None
    }

    fn issue(&mut self, key: &str, message: impl Into<String>) {
        let line = self.line_of_key(key);
        self.issues.push(ConfigIssue {
            key: key.to_owned(),
            line,
            message: message.into(),
        });
    }

    fn socket(&mut self, key: &str, value: Option<String>, default: &str) -> SocketAddr {
        let raw = value.unwrap_or_else(|| default.to_owned());
        raw.parse().unwrap_or_else(|_| {
            self.issue(
                key,
                format!("`{raw}` is not an address like 127.0.0.1:8080"),
            );
            default.parse().expect("default address")
        })
    }

    fn url(&mut self, key: &str, raw: &str) -> Option<Url> {
        match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                self.issue(key, format!("`{raw}` is not an absolute http(s) URL"));
                None
            }
        }
    }

    fn build(&mut self, f: file::ConfigFile, env: &dyn Fn(&str) -> Option<String>) -> Config {
        let listen = self.socket("server.listen", f.server.listen, "127.0.0.1:8080");
        let admin_listen = self.socket(
            "server.admin_listen",
            f.server.admin_listen,
            "127.0.0.1:9090",
        );
        let public_raw = f
            .server
            .public_url
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = self
            .url("server.public_url", &public_raw)
            .unwrap_or_else(|| Url::parse("http://127.0.0.1:8080").expect("static URL"));
        if public_url.path() != "/" || public_url.query().is_some() {
            self.issue(
                "server.public_url",
                "must be an origin only (scheme, host and port), without a path",
            );
        }
        if public_url.scheme() == "http" && !is_loopback_host(&public_url) {
            self.issue(
                "server.public_url",
                "plain http is only allowed on a loopback host (demo and tests); use https",
            );
        }
        let mut trusted_gateways = Vec::new();
        for g in &f.server.trusted_gateways {
            match parse_ip_net(g) {
                Some(n) => trusted_gateways.push(n),
                None => self.issue(
                    "server.trusted_gateways",
                    format!("`{g}` is not an IP address or network"),
                ),
            }
        }
        let threads = f.server.threads.unwrap_or(2);
        if threads == 0 {
            self.issue("server.threads", "must be at least 1");
        }

        let upstream = UpstreamConfig {
            address: f
                .upstream
                .address
                .unwrap_or_else(|| "127.0.0.1:8042".to_owned()),
            viewer: f.upstream.viewer.unwrap_or_else(|| "orthanc".to_owned()),
            hide_download: f
                .upstream
                .hide_download
                .unwrap_or_else(|| vec!["button[title=\"Download DICOM\"]".to_owned()]),
            tls: f.upstream.tls.unwrap_or(false),
            sni: f.upstream.sni.unwrap_or_default(),
        };
        if upstream.address.parse::<SocketAddr>().is_err() && !upstream.address.contains(':') {
            self.issue("upstream.address", "must be host:port");
        }

        let psc = f.psc.map(|p| self.psc(p, &public_url, env));
        let hm_sso = f.hm_sso.map(|h| self.hm_sso(h));

        let store_kind = f.sessions.store.unwrap_or_else(|| "memory".to_owned());
        let redis_url = env(ENV_REDIS_URL).or(f.sessions.redis_url);
        let store = match store_kind.as_str() {
            "memory" => SessionStoreConfig::Memory,
            "redis" => match redis_url {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    SessionStoreConfig::Redis { url }
                }
                Some(_) => {
                    self.issue(
                        "sessions.redis_url",
                        "must start with redis:// or rediss://",
                    );
                    SessionStoreConfig::Memory
                }
                None => {
                    self.issue(
                        "sessions.redis_url",
                        format!("required when store = \"redis\" (or set {ENV_REDIS_URL})"),
                    );
                    SessionStoreConfig::Memory
                }
            },
            other => {
                self.issue(
                    "sessions.store",
                    format!("`{other}`: expected \"memory\" or \"redis\""),
                );
                SessionStoreConfig::Memory
            }
        };
        let idle = f.sessions.idle_timeout_secs.unwrap_or(30 * 60);
        let absolute = f.sessions.absolute_timeout_secs.unwrap_or(4 * 3600);
        if idle == 0 || absolute == 0 || idle > absolute {
            self.issue(
                "sessions.idle_timeout_secs",
                "idle and absolute timeouts must be positive, idle not above absolute",
            );
        }
        let sessions = SessionConfig {
            store,
            key_prefix: f
                .sessions
                .key_prefix
                .unwrap_or_else(|| "espace-ps:".to_owned()),
            idle_timeout: Duration::from_secs(idle),
            absolute_timeout: Duration::from_secs(absolute),
        };

        let database_url = env(ENV_DATABASE_URL)
            .or(f.database.url)
            .unwrap_or_else(|| "sqlite://espace-ps.sqlite?mode=rwc".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            self.issue(
                "database.url",
                "must be a sqlite: or postgres:// URL".to_owned(),
            );
        }

        let format = match f.logging.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                self.issue(
                    "logging.format",
                    format!("`{other}`: expected \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        };
        let portal = PortalConfig {
            unseen_days: f.portal.unseen_days.unwrap_or(30),
            search_limit: f.portal.search_limit.unwrap_or(20),
            grant_days: f.portal.grant_days.unwrap_or(7),
            dossier_attempts_max: f.portal.dossier_attempts_max.unwrap_or(5),
            dossier_lockout_minutes: f.portal.dossier_lockout_minutes.unwrap_or(15),
            dossier_daily_failures_max: f.portal.dossier_daily_failures_max.unwrap_or(10),
        };
        for (key, v, max) in [
            ("portal.unseen_days", portal.unseen_days, 366),
            ("portal.search_limit", portal.search_limit, 100),
            ("portal.grant_days", portal.grant_days, 366),
            (
                "portal.dossier_attempts_max",
                portal.dossier_attempts_max,
                100,
            ),
            (
                "portal.dossier_lockout_minutes",
                portal.dossier_lockout_minutes,
                24 * 60,
            ),
            (
                "portal.dossier_daily_failures_max",
                portal.dossier_daily_failures_max,
                1000,
            ),
        ] {
            if v == 0 || v > max {
                self.issue(key, format!("must be between 1 and {max}"));
            }
        }
        let records_url = env(ENV_RECORDS_URL).or(f.records.url);
        if let Some(u) = &records_url {
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                self.issue("records.url", "must be a sqlite: or postgres:// URL");
            }
        }
        // At most about a century either way: a bound that keeps the
        // arithmetic of dates far from overflow.
        const MAX_OFFSET_SECS: i64 = 100 * 366 * 86_400;
        let clock_offset = match f.testing.clock_offset_secs {
            Some(s) if s.abs() > MAX_OFFSET_SECS => {
                self.issue(
                    "testing.clock_offset_secs",
                    format!("must be between -{MAX_OFFSET_SECS} and {MAX_OFFSET_SECS}"),
                );
                None
            }
            Some(s) => Some(time::Duration::seconds(s)),
            None => None,
        };
        let login_rate = f.rate_limit.login_per_minute.unwrap_or(30);
        if login_rate < 1 {
            self.issue("rate_limit.login_per_minute", "must be at least 1");
        }
        let lookup_limits = LookupLimits {
            dossier_submit_per_account: f.rate_limit.dossier_submit_per_minute.unwrap_or(20),
            dossier_submit_per_address: f
                .rate_limit
                .dossier_submit_per_minute_per_address
                .unwrap_or(60),
            record_views_per_account: f.rate_limit.record_views_per_minute.unwrap_or(120),
            record_views_per_address: f
                .rate_limit
                .record_views_per_minute_per_address
                .unwrap_or(600),
        };
        for (key, v) in [
            (
                "rate_limit.dossier_submit_per_minute",
                lookup_limits.dossier_submit_per_account,
            ),
            (
                "rate_limit.dossier_submit_per_minute_per_address",
                lookup_limits.dossier_submit_per_address,
            ),
            (
                "rate_limit.record_views_per_minute",
                lookup_limits.record_views_per_account,
            ),
            (
                "rate_limit.record_views_per_minute_per_address",
                lookup_limits.record_views_per_address,
            ),
        ] {
            if v == 0 {
                self.issue(key, "must be at least 1");
            }
        }

        Config {
            server: ServerConfig {
                listen,
                admin_listen,
                public_url,
                threads,
                trusted_gateways,
            },
            upstream,
            psc,
            hm_sso,
            sessions,
            database_url,
            database_max_connections: f.database.max_connections.unwrap_or(8),
            logging: LoggingConfig {
                format,
                level: f.logging.level.unwrap_or_else(|| "info".to_owned()),
            },
            login_rate_per_minute: login_rate,
            lookup_limits,
            pages_dir: f.portal.pages_dir,
            policies_dir: f.policies.dir.unwrap_or_else(|| PathBuf::from("policies")),
            portal,
            records_url,
            records_max_connections: f.records.max_connections.unwrap_or(8),
            clock_offset,
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
                let base = p.issuer.trim_end_matches('/');
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
        if p.client_id.trim().is_empty() {
            self.issue("psc.client_id", "must not be empty");
        }
        let client_secret = env(ENV_PSC_CLIENT_SECRET).or(p.client_secret);
        let client_auth = match p.client_auth.as_deref().unwrap_or("client_secret_basic") {
            "client_secret_basic" => ClientAuth::ClientSecretBasic,
            "tls_client_auth" => ClientAuth::TlsClientAuth,
            other => {
                self.issue(
                    "psc.client_auth",
                    format!("`{other}`: expected \"client_secret_basic\" or \"tls_client_auth\""),
                );
                ClientAuth::ClientSecretBasic
            }
        };
        match client_auth {
            ClientAuth::ClientSecretBasic if client_secret.is_none() => self.issue(
                "psc.client_secret",
                format!("required with client_secret_basic (or set {ENV_PSC_CLIENT_SECRET})"),
            ),
            ClientAuth::TlsClientAuth => {
                for (key, path) in [
                    ("psc.tls_client_cert", &p.tls_client_cert),
                    ("psc.tls_client_key", &p.tls_client_key),
                ] {
                    match path {
                        None => self.issue(key, "required with tls_client_auth"),
                        Some(path) if !path.is_file() => {
                            self.issue(key, format!("{} is not a readable file", path.display()))
                        }
                        Some(_) => {}
                    }
                }
            }
            _ => {}
        }
        let id_token_names = p
            .id_token_algs
            .clone()
            .unwrap_or_else(|| vec!["RS256".to_owned()]);
        let id_token_algs = self.psc_algs("psc.id_token_algs", &id_token_names, &client_secret);
        // Keycloak signs userinfo under a setting of its own: an HS256 ID
        // token with an RS256 userinfo must not widen the ID token's list.
        let userinfo_algs = match &p.userinfo_algs {
            Some(names) => self.psc_algs("psc.userinfo_algs", names, &client_secret),
            None => id_token_algs.clone(),
        };
        let scopes = p
            .scopes
            .unwrap_or_else(|| vec!["openid".to_owned(), "scope_all".to_owned()]);
        if !scopes.iter().any(|s| s == "openid") {
            self.issue("psc.scopes", "must include \"openid\"");
        }
        if let Some(ca) = &p.ca_file {
            if !ca.is_file() {
                self.issue(
                    "psc.ca_file",
                    format!("{} is not a readable file", ca.display()),
                );
            }
        }
        let acr_values = p.acr_values.unwrap_or_else(|| "eidas1".to_owned());
        let required_acr = p
            .required_acr
            .unwrap_or_else(|| acr_values.split(' ').map(str::to_owned).collect());
        PscConfig {
            issuer,
            discovery_url,
            client_id: p.client_id,
            client_secret,
            redirect_uri,
            post_logout_redirect_uri,
            scopes,
            acr_values,
            required_acr,
            id_token_algs,
            userinfo_algs,
            client_auth,
            tls_client_cert: p.tls_client_cert,
            tls_client_key: p.tls_client_key,
            ca_file: p.ca_file,
            dev_idp: p.dev_idp.unwrap_or(false),
            http_timeout: Duration::from_secs(p.http_timeout_secs.unwrap_or(10)),
        }
    }

    /// A list of PSC signature algorithms: RS256 and/or HS256 (which needs
    /// the client secret), at least one.
    fn psc_algs(
        &mut self,
        key: &str,
        names: &[String],
        client_secret: &Option<String>,
    ) -> Vec<IdTokenAlg> {
        let mut algs = Vec::new();
        for alg in names {
            match alg.as_str() {
                "RS256" => algs.push(IdTokenAlg::Rs256),
                "HS256" => {
                    if client_secret.is_none() {
                        self.issue(key, "HS256 needs the client secret to verify signatures");
                    }
                    algs.push(IdTokenAlg::Hs256)
                }
                other => self.issue(key, format!("`{other}`: only RS256 and HS256 are accepted")),
            }
        }
        if algs.is_empty() {
            self.issue(key, "at least one algorithm is required");
        }
        algs
    }

    fn hm_sso(&mut self, h: file::HmSso) -> HmSsoConfig {
        let mut algorithms = Vec::new();
        for alg in h
            .algorithms
            .unwrap_or_else(|| vec!["RS256".to_owned(), "ES256".to_owned()])
        {
            match alg.as_str() {
                "RS256" => algorithms.push(HmAlg::Rs256),
                "ES256" => algorithms.push(HmAlg::Es256),
                other => self.issue(
                    "hm_sso.algorithms",
                    format!("`{other}`: only RS256 and ES256 are accepted"),
                ),
            }
        }
        if h.public_keys.is_empty() && h.jwks_url.is_none() {
            self.issue(
                "hm_sso.public_keys",
                "give public_keys (PEM files) or jwks_url",
            );
        }
        for key in &h.public_keys {
            if !key.is_file() {
                self.issue(
                    "hm_sso.public_keys",
                    format!("{} is not a readable file", key.display()),
                );
            }
        }
        let jwks_url = h
            .jwks_url
            .as_deref()
            .and_then(|u| self.url("hm_sso.jwks_url", u));
        if h.issuer.trim().is_empty() {
            self.issue("hm_sso.issuer", "must not be empty");
        }
        if h.audience.trim().is_empty() {
            self.issue("hm_sso.audience", "must not be empty");
        }
        let mut allowed_origins = Vec::new();
        for raw in &h.allowed_origins {
            match origin_of(raw) {
                Some(o) => allowed_origins.push(o),
                None => self.issue(
                    "hm_sso.allowed_origins",
                    format!(
                        "`{raw}` is not an origin: scheme, host and optional port only, like https://hm.chu.example"
                    ),
                ),
            }
        }
        let max_lifetime = h.max_lifetime_secs.unwrap_or(300);
        if max_lifetime == 0 || max_lifetime > 3600 {
            self.issue("hm_sso.max_lifetime_secs", "must be between 1 and 3600");
        }
        HmSsoConfig {
            issuer: h.issuer,
            audience: h.audience,
            algorithms,
            public_keys: h.public_keys,
            jwks_url,
            max_lifetime: Duration::from_secs(max_lifetime),
            leeway: Duration::from_secs(h.leeway_secs.unwrap_or(30)),
            allowed_origins,
        }
    }
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

#[cfg(test)]
mod tests;
