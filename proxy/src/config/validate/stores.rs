//! The checks of the stores' settings: the session store (Redis, TLS,
//! Sentinel) and TLS to PostgreSQL (`ca_file`).

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::super::file::{self, span_of, SessionStore};
use super::super::*;
use super::Validator;

impl Validator<'_> {
    /// `url` (a database URL) verifying PostgreSQL's certificate against
    /// `ca`: `sslrootcert` set, `sslmode=verify-full` unless the URL asks
    /// for `verify-ca`; any other `sslmode` (which would not verify, or fall
    /// back to plaintext) is a problem, and so is a SQLite URL.
    pub(super) fn with_ca_file(&mut self, key: &str, url: &str, ca: &Spanned<PathBuf>) -> String {
        self.readable(key, ca);
        let parsed = match Url::parse(url) {
            Ok(u) if u.scheme().starts_with("postgres") => u,
            _ => {
                self.issue(key, ca, "only for a postgres:// URL");
                return url.to_owned();
            }
        };
        let mode = parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned());
        if let Some(m) = mode
            .as_deref()
            .filter(|m| !matches!(*m, "verify-full" | "verify-ca"))
        {
            self.issue(
                key,
                ca,
                format!("the URL's sslmode={m} would not verify the server: use verify-full"),
            );
        }
        let mut out = parsed.clone();
        {
            let mut q = out.query_pairs_mut();
            q.clear();
            for (k, v) in parsed.query_pairs().filter(|(k, _)| k != "sslrootcert") {
                q.append_pair(&k, &v);
            }
            if mode.is_none() {
                q.append_pair("sslmode", "verify-full");
            }
            q.append_pair("sslrootcert", &ca.get_ref().to_string_lossy());
        }
        out.into()
    }

    pub(super) fn sessions(
        &mut self,
        s: file::Sessions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> SessionConfig {
        let redis_span = s.redis_url.as_ref().and_then(span_of);
        let redis_url =
            env(ENV_REDIS_URL).or_else(|| s.redis_url.as_ref().map(|u| u.get_ref().clone()));
        let tls = self.redis_tls(&s, redis_url.as_deref());
        let sentinels = s.redis_sentinels.get_ref().clone();
        for entry in &sentinels {
            let ok = entry
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                self.issue(
                    "sessions.redis_sentinels",
                    &s.redis_sentinels,
                    format!("`{entry}` is not host:port"),
                );
            }
        }
        let service = match (&s.redis_service, sentinels.is_empty()) {
            (Some(name), _) if name.get_ref().trim().is_empty() => {
                self.issue("sessions.redis_service", name, "must not be empty");
                String::new()
            }
            (Some(name), _) => name.get_ref().clone(),
            (None, false) => {
                self.issue(
                    "sessions.redis_service",
                    &s.redis_sentinels,
                    "required with redis_sentinels (the name of `sentinel monitor`)",
                );
                String::new()
            }
            (None, true) => String::new(),
        };
        let wait_timeout_ms = *s.redis_wait_timeout_ms.get_ref();
        if wait_timeout_ms == 0 || wait_timeout_ms > 10_000 {
            self.issue(
                "sessions.redis_wait_timeout_ms",
                &s.redis_wait_timeout_ms,
                "must be between 1 and 10000",
            );
        }
        let redis = |url: String, tls: RedisTls| RedisConfig {
            url,
            tls,
            wait_replicas: s.redis_wait_replicas.unwrap_or(if sentinels.is_empty() {
                0
            } else {
                1
            }),
            wait_timeout: Duration::from_millis(wait_timeout_ms),
            sentinels: sentinels.clone(),
            service: service.clone(),
        };
        let store = match s.store {
            SessionStore::Memory => SessionStoreConfig::Memory,
            SessionStore::Redis if !sentinels.is_empty() => match redis_url {
                Some(url) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
                    self.issue_at(
                        "sessions.redis_url",
                        redis_span,
                        "must start with redis:// or rediss://",
                    );
                    SessionStoreConfig::Memory
                }
                url => SessionStoreConfig::Redis(redis(url.unwrap_or_default(), tls)),
            },
            SessionStore::Redis => match redis_url {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    SessionStoreConfig::Redis(redis(url, tls))
                }
                Some(_) => {
                    self.issue_at(
                        "sessions.redis_url",
                        redis_span,
                        "must start with redis:// or rediss://",
                    );
                    SessionStoreConfig::Memory
                }
                None => {
                    self.issue_at(
                        "sessions.redis_url",
                        None,
                        format!(
                            "required when store = \"redis\" without redis_sentinels (or set {ENV_REDIS_URL})"
                        ),
                    );
                    SessionStoreConfig::Memory
                }
            },
        };
        let idle = *s.idle_timeout_secs.get_ref();
        let absolute = s.absolute_timeout_secs;
        if idle == 0 || absolute == 0 || idle > absolute {
            self.issue(
                "sessions.idle_timeout_secs",
                &s.idle_timeout_secs,
                "idle and absolute timeouts must be positive, idle not above absolute",
            );
        }
        SessionConfig {
            store,
            key_prefix: s.key_prefix,
            idle_timeout: Duration::from_secs(idle),
            absolute_timeout: Duration::from_secs(absolute),
        }
    }

    /// `redis_ca_file`, `redis_client_cert` and `redis_client_key`: readable
    /// files, the certificate with its key, and only for `rediss://`.
    fn redis_tls(&mut self, s: &file::Sessions, url: Option<&str>) -> RedisTls {
        let files = [
            ("sessions.redis_ca_file", &s.redis_ca_file),
            ("sessions.redis_client_cert", &s.redis_client_cert),
            ("sessions.redis_client_key", &s.redis_client_key),
        ];
        for (key, file) in files {
            let Some(file) = file else { continue };
            self.readable(key, file);
            if url.is_some_and(|u| !u.starts_with("rediss://")) {
                self.issue(key, file, "only with a rediss:// URL (TLS)");
            }
        }
        let client_cert = match (&s.redis_client_cert, &s.redis_client_key) {
            (Some(c), Some(k)) => Some((c.get_ref().clone(), k.get_ref().clone())),
            (None, None) => None,
            (Some(c), None) => {
                self.issue(
                    "sessions.redis_client_key",
                    c,
                    "required with redis_client_cert",
                );
                None
            }
            (None, Some(k)) => {
                self.issue(
                    "sessions.redis_client_cert",
                    k,
                    "required with redis_client_key",
                );
                None
            }
        };
        RedisTls {
            ca_file: s.redis_ca_file.as_ref().map(|c| c.get_ref().clone()),
            client_cert,
        }
    }
}
