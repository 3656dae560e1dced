//! The Redis store (several instances): one Redis, or a primary found
//! through Sentinel (`sessions.redis_sentinels`).
//!
//! With Sentinel the primary is resolved when a connection is made; a
//! failover error (connection lost, `READONLY` from a demoted primary, a
//! timeout) drops the connection so that the next call asks the Sentinels
//! again, and the call is tried once more on the new primary. Retrying is
//! safe for every operation here in the deny-by-default sense: a repeated
//! `GETDEL` finds nothing (a refusal), a repeated `INCR` counts one more.
//!
//! Replication is asynchronous: a write acknowledged by a primary that dies
//! before its replica has it is lost in the failover (a session that
//! vanishes, a one-time `jti` that can be replayed, a logout undone). So
//! every write but the rate-limit counters is followed by `WAIT n timeout`
//! in the same round trip (`sessions.redis_wait_replicas`): the write
//! succeeds only once `n` replicas have it.

use std::time::Duration;

use async_trait::async_trait;

use super::{KvStore, StoreError};
use crate::config::{RedisConfig, RedisTls};

/// `tls`'s roots and client certificate, read; None when neither is set.
fn certificates(tls: &RedisTls) -> Result<Option<redis::TlsCertificates>, StoreError> {
    if tls.ca_file.is_none() && tls.client_cert.is_none() {
        return Ok(None);
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| StoreError::Unreachable(format!("Redis TLS: {}: {e}", p.display())))
    };
    let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
    let client_tls = match &tls.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A client for `url`, with `tls`'s roots and client certificate when set.
fn client(url: &str, tls: &RedisTls) -> Result<redis::Client, StoreError> {
    let bad = |e: String| StoreError::Unreachable(format!("Redis client: {e}"));
    match certificates(tls)? {
        None => redis::Client::open(url).map_err(|e| bad(e.to_string())),
        Some(certs) => redis::Client::build_with_tls(url, certs).map_err(|e| bad(e.to_string())),
    }
}

/// The error of a Redis call: a TLS refusal (certificate, handshake) told
/// apart from an unreachable server.
fn store_error(e: redis::RedisError) -> StoreError {
    if tls_failure(&e) {
        StoreError::Tls(e.to_string())
    } else {
        StoreError::Unreachable(e.to_string())
    }
}

/// Is a rustls error (a certificate refused, a TLS alert) among the causes
/// of `e`? `io::Error` hides its inner error from `source()`: look inside.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Where the primary is: a URL, or the Sentinels' answer.
enum Source {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

/// Redis store, shared by every espace-ps instance. The connection is made
/// lazily and re-made by the connection manager (and, with Sentinel, after
/// a failover error); every command has a deadline so an outage turns into
/// a quick refusal.
pub struct RedisStore {
    source: Source,
    tls: bool,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    timeout: Duration,
    /// `WAIT` after each write: replicas and their deadline (0: no WAIT).
    wait_replicas: u32,
    wait_timeout: Duration,
}

impl RedisStore {
    /// A store at `url` (`redis://` or `rediss://` with the system's roots).
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::from_config(&RedisConfig {
            url: url.to_owned(),
            ..Default::default()
        })
    }

    /// The store of `[sessions]`: its URL or Sentinels, and, for TLS, the
    /// CA file and client certificate.
    pub fn from_config(config: &RedisConfig) -> Result<RedisStore, StoreError> {
        let source = if config.sentinels.is_empty() {
            Source::Direct(client(&config.url, &config.tls)?)
        } else {
            Source::Sentinel(tokio::sync::Mutex::new(sentinel_client(config)?))
        };
        Ok(RedisStore {
            source,
            tls: config.url.starts_with("rediss://"),
            conn: tokio::sync::Mutex::new(None),
            timeout: Duration::from_millis(1500),
            wait_replicas: config.wait_replicas,
            wait_timeout: config.wait_timeout,
        })
    }

    /// At start: connects once over TLS (`rediss://`) and fails when the
    /// server's certificate (or ours) is refused, so that a wrong CA or
    /// host name stops the start with a clear error. Any other failure
    /// (Redis down) is only logged: sessions answer 503 until it is back.
    pub async fn check_tls(&self) -> Result<(), StoreError> {
        if !self.tls {
            return Ok(());
        }
        match self.run::<String>(redis::cmd("PING").clone()).await {
            Ok(_) => Ok(()),
            Err(StoreError::Tls(e)) => Err(StoreError::Tls(e)),
            Err(e) => {
                tracing::warn!(error = %e, "Redis is not reachable at start; sessions answer 503 until it is");
                Ok(())
            }
        }
    }

    async fn conn(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let client = match &self.source {
            Source::Direct(c) => c.clone(),
            Source::Sentinel(s) => {
                let mut s = s.lock().await;
                tokio::time::timeout(self.timeout * 2, s.async_get_client())
                    .await
                    .map_err(|_| StoreError::Timeout)?
                    .map_err(store_error)?
            }
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            self.timeout * 2,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(store_error)?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs `pipe` on the primary; with Sentinel, a failover error drops
    /// the connection and the pipeline runs once more on the primary the
    /// Sentinels name then.
    async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let attempts = match self.source {
            Source::Direct(_) => 1,
            Source::Sentinel(_) => 2,
        };
        let mut last = StoreError::Timeout;
        for _ in 0..attempts {
            let mut c = match self.conn().await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let outcome = tokio::time::timeout(self.timeout, pipe.query_async::<T>(&mut c)).await;
            let e = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    let failover = e.is_connection_dropped()
                        || e.is_io_error()
                        || e.is_connection_refusal()
                        || e.kind() == redis::ErrorKind::ReadOnly;
                    let e = store_error(e);
                    if !failover {
                        return Err(e);
                    }
                    e
                }
                Err(_) => StoreError::Timeout,
            };
            if matches!(self.source, Source::Sentinel(_)) {
                tracing::warn!(error = %e, "Redis primary lost: asking the Sentinels again");
                *self.conn.lock().await = None;
            }
            last = e;
        }
        Err(last)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        let (v,): (T,) = self.query(&pipe).await?;
        Ok(v)
    }

    /// Runs a write, then (when configured) `WAIT` for the replicas in the
    /// same round trip: an error unless enough replicas acknowledged it.
    async fn write<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        if self.wait_replicas == 0 {
            return self.run(cmd).await;
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd)
            .cmd("WAIT")
            .arg(self.wait_replicas)
            .arg(self.wait_timeout.as_millis() as u64);
        let (v, acked): (T, u32) = self.query(&pipe).await?;
        if acked < self.wait_replicas {
            crate::metrics::METRICS
                .store_errors
                .with_label_values(&["replication"])
                .inc();
            return Err(StoreError::Unreachable(format!(
                "write reached {acked} replica(s) of {} within {:?}",
                self.wait_replicas, self.wait_timeout
            )));
        }
        Ok(v)
    }
}

/// A Sentinel client for `config.service`, TLS (and certificates) to the
/// Sentinels and the nodes alike when `config.url` is `rediss://`; the
/// URL's database, user and password go to the nodes.
fn sentinel_client(config: &RedisConfig) -> Result<redis::sentinel::SentinelClient, StoreError> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let bad = |e: String| StoreError::Unreachable(format!("Redis Sentinel client: {e}"));
    let tls = config.url.starts_with("rediss://");
    let mut addrs = Vec::new();
    for s in &config.sentinels {
        let (host, port) = s
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| bad(format!("{s}: not host:port")))?;
        addrs.push(if tls {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host, port)
        });
    }
    let mut b =
        SentinelClientBuilder::new(addrs, config.service.clone(), SentinelServerType::Master)
            .map_err(|e| bad(e.to_string()))?;
    if !config.url.is_empty() {
        let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(|e| bad(e.to_string()))?;
        b = b.set_client_to_redis_db(info.redis.db);
        if let Some(u) = info.redis.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = info.redis.password {
            b = b.set_client_to_redis_password(p);
        }
    }
    if tls {
        b = b
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(certs) = certificates(&config.tls)? {
            b = b
                .set_client_to_redis_certificates(certs.clone())
                .set_client_to_sentinel_certificates(certs);
        }
    }
    b.build().map_err(|e| bad(e.to_string()))
}

fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

#[async_trait]
impl KvStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(redis::cmd("GET").arg(key).clone()).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.write(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .clone(),
        )
        .await
    }
    async fn del(&self, key: &str) -> Result<(), StoreError> {
        self.write::<i64>(redis::cmd("DEL").arg(key).clone())
            .await
            .map(|_| ())
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.write(redis::cmd("GETDEL").arg(key).clone()).await
    }
    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let r: Option<String> = self
            .write(
                redis::cmd("SET")
                    .arg(key)
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .clone(),
            )
            .await?;
        Ok(r.is_some())
    }
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let r: Option<String> = self
            .write(
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("XX")
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .clone(),
            )
            .await?;
        Ok(r.is_some())
    }
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        // SADD and its expiry in one MULTI, then WAIT when configured.
        const SCRIPT: &str = "redis.call('SADD', KEYS[1], ARGV[1]) \
             redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1";
        self.write::<i64>(
            redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(key)
                .arg(member)
                .arg(ttl_ms(ttl))
                .clone(),
        )
        .await
        .map(|_| ())
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.write::<i64>(redis::cmd("SREM").arg(key).arg(member).clone())
            .await
            .map(|_| ())
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.run(redis::cmd("SMEMBERS").arg(key).clone()).await
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        // INCR and the expiry in one script: no counter is left without a
        // deadline, and concurrent callers on any instance see one count.
        // No WAIT: a count lost in a failover only lets a few more tries.
        const SCRIPT: &str = "local n = redis.call('INCR', KEYS[1]) \
             if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
             return n";
        let n: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(ttl_ms(window))
                    .clone(),
            )
            .await?;
        Ok(n.max(0) as u64)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.run::<String>(redis::cmd("PING").clone())
            .await
            .map(|_| ())
    }
}
