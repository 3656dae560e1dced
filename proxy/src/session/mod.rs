//! Server-side sessions and the other short-lived records of a login:
//! pending login flows (state, nonce, PKCE verifier) and single-use token ids.
//!
//! The browser holds an opaque 256-bit id only; the store keys records by
//! the SHA-256 of that id, so a dump of the store holds no usable cookie.
//! Two stores: in-memory (one instance) and Redis (several instances). A
//! store error is an error to the caller, who answers "no" (503), never "yes".
//!
//! Layout: `store` (the `KvStore` interface), `memory` and `redis`
//! (its two implementations), this module (sessions, login flows, parked
//! values and single-use ids on any store).

mod memory;
mod redis;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use parking_lot::Mutex;
use rand_core::RngCore;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::Professional;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
pub use self::store::{KvStore, StoreError};

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
    /// The dossier opened by its number (the entry links to that dossier,
    /// not to the patient, which the grant does not open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dossier: Option<String>,
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
    /// Session records already decoded, by store key, with the exact bytes
    /// they were decoded from. Every load still reads the store (the one
    /// authority: logout, expiry, revocation, another instance's write); it
    /// only skips decoding bytes it has decoded before. Bounded; emptied
    /// when full.
    /// Keyed by store key (a digest no client chooses): foldhash.
    decoded: Mutex<HashMap<String, Decoded, foldhash::fast::RandomState>>,
}

/// A session record's bytes as the store had them, and their decoding.
type Decoded = (Vec<u8>, Arc<SessionData>);

/// The most decoded sessions kept (a few MiB at most).
const DECODED_CAPACITY: usize = 4096;

/// The hex SHA-256 of an id: what stores and caches key on, never the id.
pub fn digest(id: &str) -> String {
    let hex = hex_digest(id);
    std::str::from_utf8(&hex).expect("hex digits").to_owned()
}

/// [`digest`], shared: the viewer path keys its caches by it (one
/// allocation, where `digest(id).into()` takes two).
pub fn digest_shared(id: &str) -> Arc<str> {
    let hex = hex_digest(id);
    Arc::from(std::str::from_utf8(&hex).expect("hex digits"))
}

fn hex_digest(id: &str) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in Sha256::digest(id.as_bytes()).into_iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

/// A new random opaque id: 256 bits, base64url.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut b);
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
            decoded: Mutex::new(HashMap::default()),
        }
    }

    /// Decodes a session record, or reuses the value decoded from the
    /// same bytes before.
    fn decode_session(&self, key: &str, raw: Vec<u8>) -> Result<Arc<SessionData>, StoreError> {
        if let Some((bytes, data)) = self.decoded.lock().get(key) {
            if *bytes == raw {
                return Ok(data.clone());
            }
        }
        let data = Arc::new(Self::decode::<SessionData>(&raw)?);
        self.remember(key, raw, &data);
        Ok(data)
    }

    fn remember(&self, key: &str, raw: Vec<u8>, data: &Arc<SessionData>) {
        let mut decoded = self.decoded.lock();
        if decoded.len() >= DECODED_CAPACITY && !decoded.contains_key(key) {
            decoded.clear();
        }
        decoded.insert(key.to_owned(), (raw, data.clone()));
    }

    fn forget(&self, key: &str) {
        self.decoded.lock().remove(key);
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
        // Pushed rather than `format!`ed: every viewer request builds it.
        let mut key = String::with_capacity(self.prefix.len() + 2 + session_digest.len());
        key.push_str(&self.prefix);
        key.push_str("s:");
        key.push_str(session_digest);
        key
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
        let loaded = self.load_digested(id, &digest(id)).await?;
        Ok(loaded.map(Arc::unwrap_or_clone))
    }

    /// [`Sessions::load`] with the id's [`digest`] already computed (the
    /// viewer path keys its caches by it too: computed once per request),
    /// shared with the decoded copy rather than copied.
    pub async fn load_digested(
        &self,
        id: &str,
        id_digest: &str,
    ) -> Result<Option<Arc<SessionData>>, StoreError> {
        if id.len() != 43 {
            return Ok(None);
        }
        let key = self.session_key_of_digest(id_digest);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let mut data = self.decode_session(&key, raw)?;
        let now = now_secs();
        let absolute_end = data.created_at + self.absolute.as_secs() as i64;
        if now >= absolute_end || now - data.last_seen >= self.idle.as_secs() as i64 {
            self.forget(&key);
            self.store.del(&key).await?;
            self.unindex(&data, id).await;
            return Ok(None);
        }
        if now - data.last_seen >= TOUCH_EVERY {
            Arc::make_mut(&mut data).last_seen = now;
            let remaining = Duration::from_secs((absolute_end - now) as u64);
            let raw = Self::encode(&data);
            // Only if still there: a logout (or revocation) between our GET
            // and this write must not bring the session back.
            if !self
                .store
                .set_xx(&key, &raw, self.idle.min(remaining))
                .await?
            {
                self.forget(&key);
                return Ok(None);
            }
            self.remember(&key, raw, &data);
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
        self.forget(&key);
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

    /// How many sessions the store holds (idle ones expire in the store
    /// itself; one past its absolute lifetime but touched recently may be
    /// counted until its next use or idle expiry).
    pub async fn count_live(&self) -> Result<u64, StoreError> {
        self.store.count_prefix(&format!("{}s:", self.prefix)).await
    }
}

#[cfg(test)]
mod tests;
