//! Revoking a professional at once (card stolen, struck off): `espace-ps
//! sessions revoke --national-id ID` ends every live session of that
//! professional on every instance, and the policies' `revoked` group
//! refuses them every action and any new login until they are removed.
//!
//! How a command in another process reaches every instance:
//! - the revocation is recorded in the portal database, which every
//!   instance shares; each instance reads the recent revocations at most
//!   once per [`REFRESH`] and ends, at load, any session of a revoked
//!   professional created before the revocation. This is what reaches the
//!   memory store, which lives inside one serving process;
//! - with Redis, the command also deletes the professional's sessions
//!   directly, found through the per-professional index the session store
//!   keeps ([`crate::session::Sessions::revoke_national_id`]): they end at
//!   once, before any instance refreshes its list.
//!
//! A failure to read the list is a failure to load the session: refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sqlx::Row;

use crate::audit::{AuditEvent, AuditMethod, Event, Outcome};
use crate::state::{now_ms, DbError, PortalDb};

/// The policy group whose members are refused everything, login included.
pub const REVOKED_GROUP: &str = "revoked";

/// How stale an instance's copy of the revocation list may be.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The revocation is dated by the clock of the host that runs the command,
/// a session by the clock of the instance that opened it: sessions opened
/// up to this long after the revocation end too, so that clocks a little
/// apart (NTP keeps them far closer) cannot let a session opened just
/// before it live on. A login in that span ends at its next request; the
/// `revoked` group refuses new logins for good. Hosts whose clocks differ
/// by more must be fixed (docs/operations.md).
pub const CLOCK_SKEW_MARGIN_MS: i64 = 5_000;

impl PortalDb {
    /// Records that the sessions of `national_id` opened until now end.
    /// Returns the revocation time (unix milliseconds).
    pub async fn record_revocation(&self, national_id: &str) -> Result<i64, DbError> {
        let at = now_ms();
        sqlx::query("INSERT INTO session_revocations (national_id, revoked_at_ms) VALUES ($1, $2)")
            .bind(national_id)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(at)
    }

    /// The latest revocation of each professional revoked after `since_ms`.
    pub async fn revocations_since(&self, since_ms: i64) -> Result<HashMap<String, i64>, DbError> {
        let rows = sqlx::query(
            "SELECT national_id, MAX(revoked_at_ms) FROM session_revocations \
             WHERE revoked_at_ms > $1 GROUP BY national_id",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }
}

/// National id → latest revocation (unix milliseconds), or the failure to
/// read it, and when it was read.
type ListCopy = (Instant, Result<HashMap<String, i64>, ()>);

/// An instance's copy of the revocation list, refreshed at most every
/// [`REFRESH`]: one small query per second per instance, not per request.
pub struct Revocations {
    /// Revocations older than this cannot concern a live session (the
    /// absolute session lifetime).
    lookback: Duration,
    /// The copy: read by every request while it is fresh without a lock or
    /// a shared reference count (`arc_swap`; every viewer request asks: an
    /// async lock here made them queue behind one another, and behind each
    /// refresh's query).
    cache: ArcSwapOption<ListCopy>,
    /// Held by the one request that refreshes a stale copy; the others
    /// that find it stale wait for that refresh rather than query too.
    refreshing: tokio::sync::Mutex<()>,
}

/// Whether the list revokes a session of `national_id` created at
/// `created_at` (unix seconds): created before the revocation, or less
/// than [`CLOCK_SKEW_MARGIN_MS`] after it (the safe side).
fn revokes(list: &HashMap<String, i64>, national_id: &str, created_at: i64) -> bool {
    list.get(national_id).is_some_and(|&revoked_at_ms| {
        created_at.saturating_mul(1000) <= revoked_at_ms.saturating_add(CLOCK_SKEW_MARGIN_MS)
    })
}

impl Revocations {
    pub fn new(absolute_session_lifetime: Duration) -> Revocations {
        Revocations {
            lookback: absolute_session_lifetime,
            cache: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The answer of the copy, when it is younger than [`REFRESH`].
    fn fresh(&self, national_id: &str, created_at: i64) -> Option<Result<bool, DbError>> {
        let cached = self.cache.load();
        let (at, list) = cached.as_deref()?;
        (at.elapsed() < REFRESH).then(|| match list {
            Ok(list) => Ok(revokes(list, national_id, created_at)),
            Err(()) => Err(DbError::RecentlyFailed),
        })
    }

    /// Whether a session of `national_id` created at `created_at` (unix
    /// seconds) was revoked ([`revokes`]). The list is read at most once per
    /// [`REFRESH`]; a failure is kept as long, so that during a database
    /// outage the requests waiting here are refused at once instead of each
    /// waiting for its own timeout.
    pub async fn is_revoked(
        &self,
        db: &PortalDb,
        national_id: &str,
        created_at: i64,
    ) -> Result<bool, DbError> {
        if let Some(fresh) = self.fresh(national_id, created_at) {
            return fresh;
        }
        let _refreshing = self.refreshing.lock().await;
        // Refreshed while this request waited: taken as it is.
        if let Some(fresh) = self.fresh(national_id, created_at) {
            return fresh;
        }
        let since = now_ms() - self.lookback.as_millis() as i64 - CLOCK_SKEW_MARGIN_MS - 1000;
        match db.revocations_since(since).await {
            Ok(list) => {
                let revoked = revokes(&list, national_id, created_at);
                self.cache.store(Some(Arc::new((Instant::now(), Ok(list)))));
                Ok(revoked)
            }
            Err(e) => {
                self.cache.store(Some(Arc::new((Instant::now(), Err(())))));
                Err(e)
            }
        }
    }
}

/// What `espace-ps sessions revoke` did.
#[derive(Debug)]
pub struct RevokeReport {
    /// When the revocation was recorded (unix milliseconds).
    pub revoked_at_ms: i64,
    /// Sessions deleted from the shared store at once (Redis); `None` for
    /// the memory store, which only the serving process can reach.
    pub ended_in_store: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("revocation recorded, but the session store failed: {0} (instances still end the sessions within {REFRESH:?}, at their next request)")]
    Store(#[from] crate::session::StoreError),
}

/// `espace-ps sessions revoke`: records the revocation in the portal
/// database (every instance ends the sessions at their next load), deletes
/// the professional's sessions from Redis at once, and audits it.
pub async fn revoke(
    config: &crate::config::Config,
    national_id: &crate::identity::NationalId,
) -> Result<RevokeReport, RevokeError> {
    use crate::config::SessionStoreConfig;
    let db = PortalDb::connect(&config.database.url, 1).await?;
    let revoked_at_ms = db.record_revocation(national_id.as_str()).await?;
    let ended = match &config.sessions.store {
        SessionStoreConfig::Memory => Ok(None),
        SessionStoreConfig::Redis(redis) => {
            let sessions = crate::session::Sessions::new(
                Arc::new(crate::session::RedisStore::from_config(redis)?),
                &config.sessions.key_prefix,
                config.sessions.idle_timeout,
                config.sessions.absolute_timeout,
            );
            sessions
                .revoke_national_id(national_id.as_str())
                .await
                .map(Some)
        }
    };
    let detail = match &ended {
        Ok(None) => "recorded; memory store: ended at next request".to_owned(),
        Ok(Some(n)) => format!("recorded; redis: {n} live sessions deleted"),
        Err(_) => "recorded; redis unreachable: ended at next request".to_owned(),
    };
    db.audit(
        &AuditEvent::new(Event::SessionsRevoke, Outcome::Success)
            .method(AuditMethod::Cli)
            .on(national_id.as_str())
            .detail(detail),
    )
    .await?;
    Ok(RevokeReport {
        revoked_at_ms,
        ended_in_store: ended?,
    })
}
