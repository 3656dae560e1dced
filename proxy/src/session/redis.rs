//! The Redis store (several instances).

use std::time::Duration;

use async_trait::async_trait;

use super::{KvStore, StoreError};
use crate::config::{RedisConfig, RedisTls};

/// A client for `url`, with `tls`'s roots and client certificate when set.
fn client(url: &str, tls: &RedisTls) -> Result<redis::Client, StoreError> {
    let bad = |e: String| StoreError::Unreachable(format!("Redis client: {e}"));
    if tls.ca_file.is_none() && tls.client_cert.is_none() {
        return redis::Client::open(url).map_err(|e| bad(e.to_string()));
    }
    let read =
        |p: &std::path::Path| std::fs::read(p).map_err(|e| bad(format!("{}: {e}", p.display())));
    let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
    let client_tls = match &tls.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| bad(e.to_string()))
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

/// Redis store, shared by every espace-ps instance. The connection is made
/// lazily and re-made by the connection manager; every command has a
/// deadline so an outage turns into a quick refusal.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    timeout: Duration,
}

impl RedisStore {
    /// A store at `url` (`redis://` or `rediss://` with the system's roots).
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::from_config(&RedisConfig {
            url: url.to_owned(),
            ..Default::default()
        })
    }

    /// The store of `[sessions]`: its URL and, for `rediss://`, the CA
    /// file and client certificate.
    pub fn from_config(config: &RedisConfig) -> Result<RedisStore, StoreError> {
        let client = client(&config.url, &config.tls)?;
        Ok(RedisStore {
            client,
            conn: tokio::sync::Mutex::new(None),
            timeout: Duration::from_millis(1500),
        })
    }

    /// At start: connects once over TLS (`rediss://`) and fails when the
    /// server's certificate (or ours) is refused, so that a wrong CA or
    /// host name stops the start with a clear error. Any other failure
    /// (Redis down) is only logged: sessions answer 503 until it is back.
    pub async fn check_tls(&self) -> Result<(), StoreError> {
        if !matches!(
            self.client.get_connection_info().addr,
            redis::ConnectionAddr::TcpTls { .. }
        ) {
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
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            self.timeout * 2,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(store_error)?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(store_error)
    }
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
        self.run(
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
        self.run::<i64>(redis::cmd("DEL").arg(key).clone())
            .await
            .map(|_| ())
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(redis::cmd("GETDEL").arg(key).clone()).await
    }
    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let r: Option<String> = self
            .run(
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
            .run(
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
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SADD")
            .arg(key)
            .arg(member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl_ms(ttl))
            .ignore();
        tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut c))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(store_error)
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.run::<i64>(redis::cmd("SREM").arg(key).arg(member).clone())
            .await
            .map(|_| ())
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.run(redis::cmd("SMEMBERS").arg(key).clone()).await
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        // INCR and the expiry in one script: no counter is left without a
        // deadline, and concurrent callers on any instance see one count.
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
