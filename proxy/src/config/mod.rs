//! Configuration in three layers: the TOML file format ([`file`], serde with
//! `deny_unknown_fields`), environment overrides for secrets, and one
//! validated [`Config`] that the rest of the code sees, nested as the file
//! is (`config.database.url` is the file's `[database] url`).
//!
//! - `file.rs`: the serde shape of the file and its defaults;
//! - `validate.rs`: the checks that turn it into a [`Config`];
//! - this module: the validated types, loading and the `check-config` summary.
//!
//! Every problem is named by its key (and its line when the key is in the
//! file), so `espace-ps check-config` can point at it. A problem with the
//! file's shape (syntax, unknown key, wrong type, a value outside its set)
//! is reported alone; the checks after it collect every problem.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

pub mod file;
pub mod secrets;
mod validate;

/// Environment variables that override secrets and connection strings.
pub const ENV_PSC_CLIENT_SECRET: &str = "ESPACE_PSC_CLIENT_SECRET";
pub const ENV_REDIS_URL: &str = "ESPACE_REDIS_URL";
pub const ENV_DATABASE_URL: &str = "ESPACE_DATABASE_URL";
pub const ENV_RECORDS_URL: &str = "ESPACE_RECORDS_URL";
pub const ENV_AUDIT_SEARCH_KEY: &str = "ESPACE_AUDIT_SEARCH_KEY";
pub const ENV_AUDIT_CHECKPOINT_KEY: &str = "ESPACE_AUDIT_CHECKPOINT_KEY";

// === impl Config ===

/// The validated configuration the rest of espace-ps uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub psc: Option<PscConfig>,
    pub hm_sso: Option<HmSsoConfig>,
    pub sessions: SessionConfig,
    pub database: DatabaseConfig,
    pub logging: LoggingConfig,
    pub rate_limit: RateLimitConfig,
    pub portal: PortalConfig,
    pub records: RecordsConfig,
    pub policies: PoliciesConfig,
    pub testing: TestingConfig,
    pub audit: AuditConfig,
}

/// The audit trail (`[audit]`).
#[derive(Clone)]
pub struct AuditConfig {
    /// The key of the name-search hashes: None, a random key per process
    /// (the hashes then correlate only within one process's life).
    pub search_key: Option<Vec<u8>>,
    pub head_log_interval: Duration,
    /// `audit purge` removes rows older than this many days (None: nothing).
    pub retention_days: Option<u32>,
    /// The key of the purge checkpoints' signatures (`audit purge`,
    /// `audit verify`); the serving instances do not need it.
    pub checkpoint_key: Option<Vec<u8>>,
    /// The second sink of the audit events, if any.
    pub ship: Option<ShipConfig>,
}

/// Where the audit events are shipped besides the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipTarget {
    /// One JSON line per event, appended (reopened when rotated).
    File(PathBuf),
    /// RFC 5424 over TCP to `host:port`, over TLS when a CA is given.
    Syslog {
        address: String,
        ca_file: Option<PathBuf>,
    },
}

/// The second sink and its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipConfig {
    pub target: ShipTarget,
    pub queue: usize,
}

impl fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditConfig")
            .field("search_key", &self.search_key.as_ref().map(|_| ".."))
            .field("head_log_interval", &self.head_log_interval)
            .field("retention_days", &self.retention_days)
            .field(
                "checkpoint_key",
                &self.checkpoint_key.as_ref().map(|_| ".."),
            )
            .field("ship", &self.ship)
            .finish()
    }
}

/// espace-ps's own state: accounts, audit trail, grants (`[database]`).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// A `sqlite:` or `postgres://` URL.
    pub url: String,
    pub max_connections: u32,
    /// `serve` applies the migrations (false: the owner role ran
    /// `espace-ps migrate`, and `serve` checks the schema is up to date).
    pub migrate: bool,
    /// Development only: start even when the role may rewrite audit rows.
    pub allow_audit_rewrite: bool,
}

/// The hospital records, read-only (`[records]`).
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    /// A `sqlite:` or `postgres://` URL; None: the portal has no records.
    pub url: Option<String>,
    pub max_connections: u32,
}

/// Cedar policies and viewer route tables (`[policies]`).
#[derive(Debug, Clone)]
pub struct PoliciesConfig {
    pub dir: PathBuf,
}

/// Never in production (`[testing]`).
#[derive(Debug, Clone, Default)]
pub struct TestingConfig {
    /// How far espace-ps's clock is moved from the system clock (see `clock`).
    pub clock_offset: Option<time::Duration>,
}

/// Rate limits (`[rate_limit]`), counted in the session store.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Login starts, callbacks and SSO launches per client address per minute (at least 1).
    pub login_per_minute: isize,
    /// Rate limits on the dossier lookups.
    pub lookups: LookupLimits,
}

/// Portal rules (user guide sections 2 and 3).
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Templates that replace the embedded ones of the same name (branding).
    pub pages_dir: Option<PathBuf>,
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
    /// The hospital's support contact (a sentence: phone, address), shown
    /// in the login page's help; None: the help says to ask the hospital.
    pub support_contact: Option<String>,
    /// `espace-ps purge` deletes accounts unused this many days (None: kept).
    pub accounts_unused_days: Option<u32>,
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
    /// Shutdown (see `drain`): new connections accepted this long after
    /// SIGTERM, `/-/readyz` answering 503.
    pub drain_delay: Duration,
    /// Then requests in flight have this long to finish.
    pub grace_period: Duration,
    /// Then the runtimes this long to stop.
    pub shutdown_timeout: Duration,
    /// The Unix socket of the graceful upgrade (`serve --upgrade`, SIGQUIT).
    pub upgrade_sock: PathBuf,
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
    /// The installed OHIF site (deploy/ohif/install.sh), served under
    /// `/visionneuse/`; empty: not served.
    pub ohif_dir: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client secret.
    #[default]
    ClientSecretBasic,
    /// Mutual TLS with a client certificate (RFC 8705 `tls_client_auth`).
    TlsClientAuth,
}

/// A PSC signature algorithm (`RS256`, `HS256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
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

/// A Hopital Manager signature algorithm (`RS256`, `ES256`: never HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
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
    Redis(RedisConfig),
}

/// A Redis shared by the instances (`[sessions] store = "redis"`).
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` (TLS). With Sentinels, only its scheme
    /// (TLS or not), database, user and password are used (may be empty).
    pub url: String,
    pub tls: RedisTls,
    /// `host:port` of each Sentinel; empty: `url` is the one Redis.
    pub sentinels: Vec<String>,
    /// The primary's name at the Sentinels (`sentinel monitor NAME …`).
    pub service: String,
    /// A write succeeds once this many replicas have it (`WAIT`); 0: no WAIT.
    pub wait_replicas: u32,
    /// How long a write waits for them.
    pub wait_timeout: Duration,
}

/// TLS settings of `rediss://` beyond the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM roots trusted instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), when Redis asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: SessionStoreConfig,
    pub key_prefix: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
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
    /// Reads, parses and validates a configuration file, applying
    /// environment overrides (from variables, `_FILE` variables or systemd
    /// credentials: [`secrets`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env = |k: &str| std::env::var(k).ok();
        let resolved = secrets::resolve(&env).map_err(ConfigError::Invalid)?;
        Config::from_toml(&text, |k| resolved.get(k).cloned().or_else(|| env(k)))
    }

    /// Parses and validates configuration text. `env` looks up environment overrides.
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parsed = validate::parse(text).map_err(|i| ConfigError::Invalid(vec![i]))?;
        validate::validate(text, parsed, &env).map_err(ConfigError::Invalid)
    }

    /// The embedded defaults with the environment's overrides (secrets
    /// from variables, `_FILE` variables or systemd credentials): the
    /// configuration of a command given no file.
    pub fn from_environment() -> Result<Config, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        let resolved = secrets::resolve(&env).map_err(ConfigError::Invalid)?;
        Config::from_toml("", |k| resolved.get(k).cloned().or_else(|| env(k)))
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
        let store = match &self.sessions.store {
            SessionStoreConfig::Memory => "in-memory sessions",
            SessionStoreConfig::Redis(r) => {
                match (r.sentinels.is_empty(), r.url.starts_with("rediss://")) {
                    (true, true) => "Redis sessions (TLS)",
                    (true, false) => "Redis sessions",
                    (false, true) => "Redis sessions through Sentinel (TLS)",
                    (false, false) => "Redis sessions through Sentinel",
                }
            }
        };
        let db = if self.database.url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        let clock = match self.testing.clock_offset {
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

#[cfg(test)]
mod tests;
