//! Server-side sessions and the other short-lived records of a login:
//! pending login flows (state, nonce, PKCE verifier) and single-use token ids.
//!
//! The browser holds an opaque 256-bit id only; the store keys records by
//! the SHA-256 of that id, so a dump of the store holds no usable cookie.
//! Two stores: in-memory (one instance) and Redis (several instances). A
//! store error is an error to the caller, who answers "no" (503), never "yes".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use parking_lot::Mutex;
use rand::RngCore;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::Professional;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unreachable: {0}")]
    Unreachable(String),
    #[error("session store timed out")]
    Timeout,
    #[error("session record unreadable: {0}")]
    Corrupt(String),
}

/// A key-value store with expiry: what a session store needs and no more.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    async fn del(&self, key: &str) -> Result<(), StoreError>;
    /// Get and delete in one step (single use).
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Set only if absent; true when this call set it.
    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Set only if present (never re-creates a deleted key); true when
    /// this call set it.
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
    /// Adds `member` to the set at `key` and sets the set's expiry to `ttl`.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Removes `member` from the set at `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// The members of the set at `key` (empty when absent).
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Adds one to the counter at `key` and returns its new value, in one
    /// atomic step. A counter that does not exist (or has expired) starts at
    /// 1 and lives `window` from then: a fixed window (rate limits).
    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}

// === impl MemoryStore ===

/// One-instance store. Expired entries are dropped when read and swept
/// every few hundred writes.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    map: HashMap<String, (Vec<u8>, Instant)>,
    sets: HashMap<String, (std::collections::BTreeSet<String>, Instant)>,
    writes: u64,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryInner) -> T) -> T {
        let mut g = self.inner.lock();
        f(&mut g)
    }
}

impl MemoryInner {
    fn live(&mut self, key: &str) -> Option<&Vec<u8>> {
        let now = Instant::now();
        if self.map.get(key).is_some_and(|(_, exp)| *exp <= now) {
            self.map.remove(key);
        }
        self.map.get(key).map(|(v, _)| v)
    }

    fn insert(&mut self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.writes += 1;
        if self.writes % 256 == 0 {
            let now = Instant::now();
            self.map.retain(|_, (_, exp)| *exp > now);
            self.sets.retain(|_, (_, exp)| *exp > now);
        }
        self.map
            .insert(key.to_owned(), (value, Instant::now() + ttl));
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|m| m.live(key).cloned()))
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| m.insert(key, value.to_vec(), ttl));
        Ok(())
    }
    async fn del(&self, key: &str) -> Result<(), StoreError> {
        self.with(|m| {
            m.map.remove(key);
            m.sets.remove(key);
        });
        Ok(())
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|m| {
            let v = m.live(key).cloned();
            m.map.remove(key);
            v
        }))
    }
    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|m| {
            if m.live(key).is_some() {
                false
            } else {
                m.insert(key, Vec::new(), ttl);
                true
            }
        }))
    }
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|m| {
            if m.live(key).is_some() {
                m.insert(key, value.to_vec(), ttl);
                true
            } else {
                false
            }
        }))
    }
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| {
            let now = Instant::now();
            let entry = m
                .sets
                .entry(key.to_owned())
                .or_insert_with(|| (Default::default(), now));
            if entry.1 <= now {
                entry.0.clear();
            }
            entry.0.insert(member.to_owned());
            entry.1 = now + ttl;
        });
        Ok(())
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(|m| {
            if let Some((set, _)) = m.sets.get_mut(key) {
                set.remove(member);
                if set.is_empty() {
                    m.sets.remove(key);
                }
            }
        });
        Ok(())
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|m| match m.sets.get(key) {
            Some((set, exp)) if *exp > Instant::now() => set.iter().cloned().collect(),
            _ => Vec::new(),
        }))
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        Ok(self.with(|m| {
            let current = m
                .live(key)
                .map(|v| <[u8; 8]>::try_from(v.as_slice()).map_or(0, u64::from_be_bytes));
            match current {
                Some(n) => {
                    let n = n.saturating_add(1);
                    if let Some((v, _)) = m.map.get_mut(key) {
                        *v = n.to_be_bytes().to_vec();
                    }
                    n
                }
                None => {
                    m.insert(key, 1u64.to_be_bytes().to_vec(), window);
                    1
                }
            }
        }))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

// === impl RedisStore ===

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
}

// === impl Sessions ===

/// What the server keeps for a signed-in professional.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionData {
    pub professional: Professional,
    pub account_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// The ID token, kept for PSC's logout `id_token_hint`.
    pub id_token: Option<String>,
    /// "Mes dernières recherches": patients opened during the session, newest first.
    #[serde(default)]
    pub recent_patients: Vec<RecentPatient>,
}

/// A patient opened during the session (what "Mes dernières recherches" shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentPatient {
    pub id: String,
    pub sex: String,
    pub family_name: String,
    pub given_name: String,
    /// `jj/mm/aaaa`.
    pub birth_date: String,
}

/// A login in progress: what the callback must find again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginFlow {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

/// The lifetime of a pending login.
pub const FLOW_TTL: Duration = Duration::from_secs(600);

pub struct Sessions {
    store: Arc<dyn KvStore>,
    prefix: String,
    idle: Duration,
    absolute: Duration,
}

/// The hex SHA-256 of an id: what stores and caches key on, never the id.
pub fn digest(id: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(id.as_bytes()) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A new random opaque id: 256 bits, base64url.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

use crate::clock::now_secs;

/// Touch the record (and push its idle deadline) at most this often.
const TOUCH_EVERY: i64 = 30;

impl Sessions {
    pub fn new(
        store: Arc<dyn KvStore>,
        prefix: &str,
        idle: Duration,
        absolute: Duration,
    ) -> Sessions {
        Sessions {
            store,
            prefix: prefix.to_owned(),
            idle,
            absolute,
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{}", self.prefix, digest(id))
    }

    /// The set of a professional's session keys (for revocation). Keyed by
    /// the digest of the national id; members are session-id digests.
    fn index_key(&self, national_id: &str) -> String {
        self.key("nid", national_id)
    }

    fn session_key_of_digest(&self, session_digest: &str) -> String {
        format!("{}s:{session_digest}", self.prefix)
    }

    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).expect("session records serialize")
    }

    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Starts a session: always a new id (no fixation).
    pub async fn create(
        &self,
        professional: Professional,
        account_id: i64,
        id_token: Option<String>,
    ) -> Result<(String, SessionData), StoreError> {
        let id = new_token();
        let now = now_secs();
        let data = SessionData {
            professional,
            account_id,
            csrf_token: new_token(),
            created_at: now,
            last_seen: now,
            id_token,
            recent_patients: Vec::new(),
        };
        self.store
            .set(&self.key("s", &id), &Self::encode(&data), self.idle)
            .await?;
        // The professional's index, kept as long as their newest session
        // can live: `revoke_national_id` finds every session from it.
        self.store
            .set_add(
                &self.index_key(data.professional.national_id.as_str()),
                &digest(&id),
                self.absolute,
            )
            .await?;
        Ok((id, data))
    }

    /// The live session for an id, or None when unknown, idle too long or
    /// past its absolute lifetime.
    pub async fn load(&self, id: &str) -> Result<Option<SessionData>, StoreError> {
        if id.len() != 43 {
            return Ok(None);
        }
        let key = self.key("s", id);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let mut data: SessionData = Self::decode(&raw)?;
        let now = now_secs();
        let absolute_end = data.created_at + self.absolute.as_secs() as i64;
        if now >= absolute_end || now - data.last_seen >= self.idle.as_secs() as i64 {
            self.store.del(&key).await?;
            self.unindex(&data, id).await;
            return Ok(None);
        }
        if now - data.last_seen >= TOUCH_EVERY {
            data.last_seen = now;
            let remaining = Duration::from_secs((absolute_end - now) as u64);
            // Only if still there: a logout (or revocation) between our GET
            // and this write must not bring the session back.
            if !self
                .store
                .set_xx(&key, &Self::encode(&data), self.idle.min(remaining))
                .await?
            {
                return Ok(None);
            }
        }
        Ok(Some(data))
    }

    /// Writes back a session's data (recent patients…), keeping its
    /// deadlines. Only if the session still exists: false when it was
    /// destroyed meanwhile (logout, timeout, revocation), and then nothing
    /// is written. Session ids are never reused (a new random id at every
    /// login), so "still exists" cannot be a later session under the same key.
    pub async fn update(&self, id: &str, data: &SessionData) -> Result<bool, StoreError> {
        let now = now_secs();
        let absolute_end = data.created_at + self.absolute.as_secs() as i64;
        let remaining = Duration::from_secs((absolute_end - now).max(1) as u64);
        self.store
            .set_xx(
                &self.key("s", id),
                &Self::encode(data),
                self.idle.min(remaining),
            )
            .await
    }

    pub async fn destroy(&self, id: &str) -> Result<(), StoreError> {
        let key = self.key("s", id);
        if let Some(raw) = self.store.take(&key).await? {
            if let Ok(data) = Self::decode::<SessionData>(&raw) {
                self.unindex(&data, id).await;
            }
        }
        Ok(())
    }

    /// Drops a session from its professional's index (best effort: the
    /// index only serves revocation, which skips ids that are gone).
    async fn unindex(&self, data: &SessionData, id: &str) {
        let _ = self
            .store
            .set_remove(
                &self.index_key(data.professional.national_id.as_str()),
                &digest(id),
            )
            .await;
    }

    /// Ends every session of a professional in this store: what
    /// `espace-ps sessions revoke` does. Returns how many were live.
    pub async fn revoke_national_id(&self, national_id: &str) -> Result<usize, StoreError> {
        let index = self.index_key(national_id);
        let mut ended = 0;
        for member in self.store.set_members(&index).await? {
            if self
                .store
                .take(&self.session_key_of_digest(&member))
                .await?
                .is_some()
            {
                ended += 1;
            }
        }
        self.store.del(&index).await?;
        Ok(ended)
    }

    /// Records a pending login under a new id (the flow cookie).
    pub async fn put_flow(&self, flow: &LoginFlow) -> Result<String, StoreError> {
        let id = new_token();
        self.store
            .set(&self.key("f", &id), &Self::encode(flow), FLOW_TTL)
            .await?;
        Ok(id)
    }

    /// Takes a pending login: a flow is used once.
    pub async fn take_flow(&self, id: &str) -> Result<Option<LoginFlow>, StoreError> {
        match self.store.take(&self.key("f", id)).await? {
            Some(raw) => Self::decode(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// Keeps a short-lived record (a login waiting for the user's
    /// confirmation) under a new random id, keyed like sessions by the
    /// digest of that id.
    pub async fn park<T: Serialize>(
        &self,
        kind: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let id = new_token();
        self.store
            .set(
                &self.key(&format!("p-{kind}"), &id),
                &Self::encode(value),
                ttl,
            )
            .await?;
        Ok(id)
    }

    /// Reads a parked record without using it up.
    pub async fn peek_parked<T: DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.store.get(&self.key(&format!("p-{kind}"), id)).await? {
            Some(raw) => Self::decode(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// Takes a parked record: it is used once.
    pub async fn take_parked<T: DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.store.take(&self.key(&format!("p-{kind}"), id)).await? {
            Some(raw) => Self::decode(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// Remembers a single-use token id (a JWT `jti`) until `ttl`; false if
    /// it was already used.
    pub async fn claim_once(
        &self,
        namespace: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store
            .set_nx(&self.key(&format!("once-{namespace}"), id), ttl)
            .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{LoginMethod, NationalId};

    fn pro() -> Professional {
        Professional::new(
            NationalId::parse("0123456789").unwrap(),
            "A".into(),
            "B".into(),
            LoginMethod::PscCard,
        )
    }

    fn sessions(idle: u64, absolute: u64) -> Sessions {
        Sessions::new(
            Arc::new(MemoryStore::default()),
            "t:",
            Duration::from_secs(idle),
            Duration::from_secs(absolute),
        )
    }

    #[tokio::test]
    async fn new_id_each_login_and_destroy() {
        let s = sessions(60, 600);
        let (a, _) = s.create(pro(), 1, None).await.unwrap();
        let (b, _) = s.create(pro(), 1, None).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(s.load(&a).await.unwrap().is_some());
        s.destroy(&a).await.unwrap();
        assert!(s.load(&a).await.unwrap().is_none());
        assert!(s.load(&b).await.unwrap().is_some());
        assert!(s.load("short").await.unwrap().is_none());
    }

    /// A session whose stored record was changed by `age`, as if time passed.
    async fn aged(age: impl FnOnce(&mut SessionData)) -> (Sessions, String) {
        let s = sessions(60, 600);
        let (id, mut data) = s.create(pro(), 1, None).await.unwrap();
        age(&mut data);
        let key = s.key("s", &id);
        s.store
            .set(&key, &Sessions::encode(&data), Duration::from_secs(60))
            .await
            .unwrap();
        (s, id)
    }

    #[tokio::test]
    async fn absolute_lifetime_ends_a_session() {
        let (s, id) = aged(|d| d.created_at -= 601).await;
        assert!(s.load(&id).await.unwrap().is_none());
        let (s, id) = aged(|d| d.created_at -= 599).await;
        assert!(s.load(&id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn idle_timeout_ends_a_session() {
        let (s, id) = aged(|d| d.last_seen -= 61).await;
        assert!(s.load(&id).await.unwrap().is_none());
        let (s, id) = aged(|d| d.last_seen -= 59).await;
        assert!(s.load(&id).await.unwrap().is_some());
    }

    /// The logout race: a request that loaded the session before the
    /// logout must not write it back after.
    #[tokio::test]
    async fn a_destroyed_session_is_not_resurrected_by_a_late_write() {
        let s = sessions(60, 600);
        let (id, _) = s.create(pro(), 1, None).await.unwrap();
        let mut loaded = s.load(&id).await.unwrap().unwrap();
        s.destroy(&id).await.unwrap();
        loaded.recent_patients.push(RecentPatient {
            id: "p".into(),
            sex: "F".into(),
            family_name: "X".into(),
            given_name: "Y".into(),
            birth_date: "01/01/1970".into(),
        });
        assert!(!s.update(&id, &loaded).await.unwrap());
        assert!(s.load(&id).await.unwrap().is_none());
    }

    /// The same race on the touch that `load` makes every 30 seconds.
    #[tokio::test]
    async fn the_touch_of_load_does_not_resurrect_a_session() {
        let s = sessions(60, 600);
        let (id, mut data) = s.create(pro(), 1, None).await.unwrap();
        data.last_seen -= TOUCH_EVERY + 1;
        let key = s.key("s", &id);
        // A store that loses the key between the read and the write of `load`.
        struct DelAfterGet(MemoryStore);
        #[async_trait]
        impl KvStore for DelAfterGet {
            async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let v = self.0.get(key).await?;
                self.0.del(key).await?;
                Ok(v)
            }
            async fn set(&self, k: &str, v: &[u8], t: Duration) -> Result<(), StoreError> {
                self.0.set(k, v, t).await
            }
            async fn del(&self, k: &str) -> Result<(), StoreError> {
                self.0.del(k).await
            }
            async fn take(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.0.take(k).await
            }
            async fn set_nx(&self, k: &str, t: Duration) -> Result<bool, StoreError> {
                self.0.set_nx(k, t).await
            }
            async fn set_xx(&self, k: &str, v: &[u8], t: Duration) -> Result<bool, StoreError> {
                self.0.set_xx(k, v, t).await
            }
            async fn set_add(&self, k: &str, m: &str, t: Duration) -> Result<(), StoreError> {
                self.0.set_add(k, m, t).await
            }
            async fn set_remove(&self, k: &str, m: &str) -> Result<(), StoreError> {
                self.0.set_remove(k, m).await
            }
            async fn set_members(&self, k: &str) -> Result<Vec<String>, StoreError> {
                self.0.set_members(k).await
            }
            async fn incr_window(&self, k: &str, w: Duration) -> Result<u64, StoreError> {
                self.0.incr_window(k, w).await
            }
            async fn ping(&self) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let store = Arc::new(DelAfterGet(MemoryStore::default()));
        store
            .0
            .set(&key, &Sessions::encode(&data), Duration::from_secs(60))
            .await
            .unwrap();
        let racy = Sessions::new(
            store.clone(),
            "t:",
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        assert!(racy.load(&id).await.unwrap().is_none());
        assert!(store.0.get(&key).await.unwrap().is_none(), "written back");
    }

    #[tokio::test]
    async fn revoke_ends_every_session_of_one_professional() {
        let s = sessions(60, 600);
        let (a, _) = s.create(pro(), 1, None).await.unwrap();
        let (b, _) = s.create(pro(), 1, None).await.unwrap();
        let other = Professional::new(
            NationalId::parse("0987654321").unwrap(),
            "C".into(),
            "D".into(),
            LoginMethod::PscCard,
        );
        let (c, _) = s.create(other, 2, None).await.unwrap();
        s.destroy(&b).await.unwrap();
        assert_eq!(s.revoke_national_id("0123456789").await.unwrap(), 1);
        assert!(s.load(&a).await.unwrap().is_none());
        assert!(s.load(&c).await.unwrap().is_some());
        assert_eq!(s.revoke_national_id("0123456789").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn flows_and_jti_are_single_use() {
        let s = sessions(60, 600);
        let flow = LoginFlow {
            state: "st".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/".into(),
        };
        let id = s.put_flow(&flow).await.unwrap();
        assert_eq!(s.take_flow(&id).await.unwrap().unwrap().state, "st");
        assert!(s.take_flow(&id).await.unwrap().is_none());
        assert!(s
            .claim_once("hm", "jti-1", Duration::from_secs(5))
            .await
            .unwrap());
        assert!(!s
            .claim_once("hm", "jti-1", Duration::from_secs(5))
            .await
            .unwrap());
    }

    #[test]
    fn digest_is_lowercase_hex_sha256() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn store_keys_do_not_contain_the_cookie() {
        let s = sessions(60, 600);
        let id = new_token();
        let key = s.key("s", &id);
        assert!(!key.contains(&id));
        assert!(key.starts_with("t:s:"));
    }
}
