//! The file format: the serde shape of the TOML file, one struct per table,
//! with the defaults of `docs/configuration.md`.
//!
//! Every table rejects unknown keys; a missing table or key takes its default
//! (`#[serde(default)]`). A value from a closed set is an enum, so an
//! unknown one is refused by serde with its key and line. A value that
//! validation (`validate.rs`) may still refuse is [`Spanned`], so the problem
//! is reported on its line; a default is spanned nowhere (see [`unspanned`]).

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ClientAuth, HmAlg, IdTokenAlg, LogFormat};

/// A default value: not in the file, so an empty span (a value in the file
/// is at least one character long).
pub fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// Where `value` is in the file, or None for a default.
pub fn span_of<T>(value: &Spanned<T>) -> Option<Range<usize>> {
    Some(value.span()).filter(|s| !s.is_empty())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub server: Server,
    pub upstream: Upstream,
    pub psc: Option<Psc>,
    pub hm_sso: Option<HmSso>,
    pub sessions: Sessions,
    pub database: Database,
    pub logging: Logging,
    pub rate_limit: RateLimit,
    pub portal: Portal,
    pub records: Records,
    pub policies: Policies,
    pub testing: Testing,
    pub audit: Audit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: Spanned<String>,
    pub admin_listen: Spanned<String>,
    /// None: `http://{listen}`.
    pub public_url: Option<Spanned<String>>,
    pub threads: Spanned<usize>,
    pub trusted_gateways: Spanned<Vec<String>>,
    /// After SIGTERM's drain delay: how long requests in flight may take.
    pub grace_period_secs: Spanned<u64>,
    /// After the grace period: how long the runtimes get to stop.
    pub shutdown_timeout_secs: Spanned<u64>,
    /// After SIGTERM: new connections still accepted this long (readyz 503).
    pub drain_delay_secs: Spanned<u64>,
    /// The Unix socket the listening sockets are handed over on (upgrade).
    pub upgrade_sock: PathBuf,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: unspanned("127.0.0.1:8080".to_owned()),
            admin_listen: unspanned("127.0.0.1:9090".to_owned()),
            public_url: None,
            threads: unspanned(2),
            trusted_gateways: unspanned(Vec::new()),
            grace_period_secs: unspanned(120),
            shutdown_timeout_secs: unspanned(5),
            drain_delay_secs: unspanned(10),
            upgrade_sock: PathBuf::from("/run/espace-ps/upgrade.sock"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    pub address: Spanned<String>,
    pub viewer: String,
    pub hide_download: Vec<String>,
    pub tls: bool,
    pub sni: String,
    pub ohif_dir: String,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            address: unspanned("127.0.0.1:8042".to_owned()),
            viewer: "orthanc".to_owned(),
            hide_download: vec!["button[title=\"Download DICOM\"]".to_owned()],
            tls: false,
            sni: String::new(),
            ohif_dir: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Psc {
    pub issuer: Spanned<String>,
    /// None: `{issuer}/.well-known/wallet-openid-configuration`.
    pub discovery_url: Option<Spanned<String>>,
    pub client_id: Spanned<String>,
    /// Or `ESPACE_PSC_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// None: `{public_url}/auth/callback`.
    pub redirect_uri: Option<Spanned<String>>,
    /// None: `{public_url}/auth/logged-out`.
    pub post_logout_redirect_uri: Option<Spanned<String>>,
    #[serde(default = "psc_scopes")]
    pub scopes: Spanned<Vec<String>>,
    #[serde(default = "psc_acr_values")]
    pub acr_values: String,
    /// None: the words of `acr_values`.
    pub required_acr: Option<Vec<String>>,
    #[serde(default = "psc_id_token_algs")]
    pub id_token_algs: Spanned<Vec<IdTokenAlg>>,
    /// None: `id_token_algs`.
    pub userinfo_algs: Option<Spanned<Vec<IdTokenAlg>>>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    pub tls_client_cert: Option<Spanned<PathBuf>>,
    pub tls_client_key: Option<Spanned<PathBuf>>,
    pub ca_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub dev_idp: bool,
    #[serde(default = "psc_http_timeout_secs")]
    pub http_timeout_secs: u64,
}

fn psc_scopes() -> Spanned<Vec<String>> {
    unspanned(vec!["openid".to_owned(), "scope_all".to_owned()])
}

fn psc_acr_values() -> String {
    "eidas1".to_owned()
}

fn psc_id_token_algs() -> Spanned<Vec<IdTokenAlg>> {
    unspanned(vec![IdTokenAlg::Rs256])
}

fn psc_http_timeout_secs() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmSso {
    pub issuer: Spanned<String>,
    pub audience: Spanned<String>,
    #[serde(default = "hm_algorithms")]
    pub algorithms: Vec<HmAlg>,
    #[serde(default = "nothing")]
    pub public_keys: Spanned<Vec<PathBuf>>,
    pub jwks_url: Option<Spanned<String>>,
    #[serde(default = "hm_max_lifetime_secs")]
    pub max_lifetime_secs: Spanned<u64>,
    #[serde(default = "hm_leeway_secs")]
    pub leeway_secs: u64,
    #[serde(default = "nothing")]
    pub allowed_origins: Spanned<Vec<String>>,
}

fn hm_algorithms() -> Vec<HmAlg> {
    vec![HmAlg::Rs256, HmAlg::Es256]
}

fn hm_max_lifetime_secs() -> Spanned<u64> {
    unspanned(300)
}

fn hm_leeway_secs() -> u64 {
    30
}

fn nothing<T>() -> Spanned<Vec<T>> {
    unspanned(Vec::new())
}

/// Where sessions are kept (`sessions.store`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStore {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    pub store: SessionStore,
    /// Or `ESPACE_REDIS_URL`; required with `store = "redis"`.
    pub redis_url: Option<Spanned<String>>,
    pub key_prefix: String,
    pub idle_timeout_secs: Spanned<u64>,
    pub absolute_timeout_secs: u64,
    /// PEM roots trusted for `rediss://` (None: the system's roots).
    pub redis_ca_file: Option<Spanned<PathBuf>>,
    /// A client certificate (PEM) for `rediss://`, with its key.
    pub redis_client_cert: Option<Spanned<PathBuf>>,
    pub redis_client_key: Option<Spanned<PathBuf>>,
    /// `host:port` of the Sentinels; the primary is asked of them.
    pub redis_sentinels: Spanned<Vec<String>>,
    /// The primary's name at the Sentinels.
    pub redis_service: Option<Spanned<String>>,
    /// Replicas that must have a session or one-time id write (WAIT).
    /// None: 1 with Sentinels, 0 without.
    pub redis_wait_replicas: Option<u32>,
    pub redis_wait_timeout_ms: Spanned<u64>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            store: SessionStore::Memory,
            redis_url: None,
            key_prefix: "espace-ps:".to_owned(),
            idle_timeout_secs: unspanned(30 * 60),
            absolute_timeout_secs: 4 * 3600,
            redis_ca_file: None,
            redis_client_cert: None,
            redis_client_key: None,
            redis_sentinels: unspanned(Vec::new()),
            redis_service: None,
            redis_wait_replicas: None,
            redis_wait_timeout_ms: unspanned(500),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Or `ESPACE_DATABASE_URL`.
    pub url: Spanned<String>,
    pub max_connections: u32,
    /// PEM roots for TLS to PostgreSQL (`sslrootcert`, `sslmode=verify-full`).
    pub ca_file: Option<Spanned<PathBuf>>,
    /// `serve` applies the migrations (false: `espace-ps migrate` does).
    pub migrate: bool,
    /// Development only: start even when the role can rewrite the audit trail.
    pub allow_audit_rewrite: bool,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: unspanned("sqlite://espace-ps.sqlite?mode=rwc".to_owned()),
            max_connections: 8,
            ca_file: None,
            migrate: true,
            allow_audit_rewrite: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    pub format: LogFormat,
    pub level: String,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    pub login_per_minute: Spanned<isize>,
    pub dossier_submit_per_minute: Spanned<u64>,
    pub dossier_submit_per_minute_per_address: Spanned<u64>,
    pub record_views_per_minute: Spanned<u64>,
    pub record_views_per_minute_per_address: Spanned<u64>,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            login_per_minute: unspanned(30),
            dossier_submit_per_minute: unspanned(20),
            dossier_submit_per_minute_per_address: unspanned(60),
            record_views_per_minute: unspanned(120),
            record_views_per_minute_per_address: unspanned(600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Portal {
    pub pages_dir: Option<PathBuf>,
    pub unseen_days: Spanned<u32>,
    pub search_limit: Spanned<u32>,
    pub grant_days: Spanned<u32>,
    pub dossier_attempts_max: Spanned<u32>,
    pub dossier_lockout_minutes: Spanned<u32>,
    pub dossier_daily_failures_max: Spanned<u32>,
    /// The hospital's support contact, shown in the login help.
    pub support_contact: Option<Spanned<String>>,
    /// `espace-ps purge` deletes accounts unused this long; none: kept.
    pub accounts_unused_days: Option<Spanned<u32>>,
}

impl Default for Portal {
    fn default() -> Self {
        Portal {
            pages_dir: None,
            unseen_days: unspanned(30),
            search_limit: unspanned(20),
            grant_days: unspanned(7),
            dossier_attempts_max: unspanned(5),
            dossier_lockout_minutes: unspanned(15),
            dossier_daily_failures_max: unspanned(10),
            support_contact: None,
            accounts_unused_days: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Records {
    /// Or `ESPACE_RECORDS_URL`; None: the portal has no records.
    pub url: Option<Spanned<String>>,
    pub max_connections: u32,
    /// PEM roots for TLS to PostgreSQL (`sslrootcert`, `sslmode=verify-full`).
    pub ca_file: Option<Spanned<PathBuf>>,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            url: None,
            max_connections: 8,
            ca_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    pub dir: PathBuf,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            dir: PathBuf::from("policies"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Testing {
    pub clock_offset_secs: Option<Spanned<i64>>,
}

/// The audit trail (`[audit]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// The key of the name-search hashes (or `ESPACE_AUDIT_SEARCH_KEY`).
    pub search_key_file: Option<Spanned<PathBuf>>,
    /// How often the chain heads are written to the log stream.
    pub head_log_interval_secs: Spanned<u64>,
    /// `audit purge` removes rows older than this; none: nothing purged.
    pub retention_days: Option<Spanned<u32>>,
    /// The key that signs purge checkpoints (or `ESPACE_AUDIT_CHECKPOINT_KEY`).
    pub checkpoint_key_file: Option<Spanned<PathBuf>>,
    /// The second sink: one JSON line per event appended to this file…
    pub ship_file: Option<Spanned<PathBuf>>,
    /// …or sent to this syslog receiver (`host:port`, RFC 5424 over TCP).
    pub ship_syslog: Option<Spanned<String>>,
    /// TLS to the syslog receiver, its certificate checked against this CA.
    pub ship_syslog_ca_file: Option<Spanned<PathBuf>>,
    /// Events waiting for the sink at most; past it they are dropped (counted).
    pub ship_queue: Spanned<u32>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            search_key_file: None,
            head_log_interval_secs: unspanned(300),
            retention_days: None,
            checkpoint_key_file: None,
            ship_file: None,
            ship_syslog: None,
            ship_syslog_ca_file: None,
            ship_queue: unspanned(10_000),
        }
    }
}
