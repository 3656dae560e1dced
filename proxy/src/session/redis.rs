//! The Redis store (several instances).

use std::time::Duration;

use async_trait::async_trait;

use super::{KvStore, StoreError};

/// Redis store, shared by every espace-ps instance. The connection is made
/// lazily and re-made by the connection manager; every command has a
/// deadline so an outage turns into a quick refusal.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    timeout: Duration,
}

impl RedisStore {
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Unreachable(e.to_string()))?;
        Ok(RedisStore {
            client,
            conn: tokio::sync::Mutex::new(None),
            timeout: Duration::from_millis(1500),
        })
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
        .map_err(|e| StoreError::Unreachable(e.to_string()))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(|e| StoreError::Unreachable(e.to_string()))
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
            .map_err(|e| StoreError::Unreachable(e.to_string()))
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
    async fn count_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        // SCAN (never KEYS: it does not block Redis), the prefix's glob
        // characters escaped; bounded, so a huge keyspace cannot keep it
        // going for ever (the gauge is then a lower bound).
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let (mut cursor, mut count) = (0u64, 0u64);
        for _ in 0..10_000 {
            let (next, keys): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .clone(),
                )
                .await?;
            count += keys.len() as u64;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(count)
    }
}
