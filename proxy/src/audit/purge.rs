//! Retention: `espace-ps audit purge` removes the rows older than
//! `[audit] retention_days`, chain segment by chain segment, and leaves a
//! signed checkpoint in their place so that `verify` still checks what
//! remains.
//!
//! A segment is the oldest part of one chain: its rows from the first one
//! (or the last checkpoint) up to the last row before the first row that is
//! not older than the limit. A chain is never cut in the middle: a row older
//! than the limit that follows a newer one (a clock moved back) waits for
//! the next purge. Before deleting anything the purge verifies the whole
//! trail and refuses when it is broken (it must not sign over tampering).
//!
//! The checkpoint stores the chain, the last purged sequence number, that
//! row's hash and the purge's limit, signed with HMAC-SHA-256 under the
//! checkpoint key (`audit.checkpoint_key_file`): someone who can write the
//! database but does not hold the key cannot make a checkpoint that
//! `verify` accepts, so deleting the head of a chain without one, or
//! altering one, is found. The database lets a row be deleted only under a
//! checkpoint of its chain (migration 0014's trigger), and on PostgreSQL
//! only the owner role may delete at all.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

use super::chain::{verify_signed, Broken, GENESIS};
use super::store::hex;
use crate::state::{DbError, PortalDb};

/// The chain name of the checkpoints of the rows older than the chains.
pub(crate) const UNCHAINED: &str = "";

/// One checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub chain: String,
    /// The last purged row's sequence number (the number of rows purged,
    /// for the rows older than the chains).
    pub seq: i64,
    /// The last purged row's hash: the next row's previous hash.
    pub row_hash: String,
    /// The purge's limit (Unix milliseconds).
    pub before_ms: i64,
    pub signature: String,
}

impl Checkpoint {
    /// Whether its signature is the key's.
    pub fn signed_by(&self, key: &[u8]) -> bool {
        let expected = sign(key, &self.chain, self.seq, &self.row_hash, self.before_ms);
        let a = expected.as_bytes();
        let b = self.signature.as_bytes();
        a.len() == b.len() && subtle::ConstantTimeEq::ct_eq(a, b).into()
    }
}

/// HMAC-SHA-256 over a version tag and each field, length-prefixed.
pub(crate) fn sign(key: &[u8], chain: &str, seq: i64, row_hash: &str, before_ms: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(b"espace-ps audit checkpoint v1\n");
    for field in [chain, &seq.to_string(), row_hash, &before_ms.to_string()] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    hex(&mac.finalize().into_bytes())
}

/// Every checkpoint, oldest first.
pub async fn checkpoints(db: &PortalDb) -> Result<Vec<Checkpoint>, DbError> {
    let rows = sqlx::query(
        "SELECT chain, seq, row_hash, before_ms, signature FROM audit_checkpoints ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                chain: r.try_get(0)?,
                seq: r.try_get(1)?,
                row_hash: r.try_get(2)?,
                before_ms: r.try_get(3)?,
                signature: r.try_get(4)?,
            })
        })
        .collect()
}

/// One segment purged (or that a dry run would purge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The chain ('' for the rows older than the chains).
    pub chain: String,
    /// The last sequence number purged.
    pub last_seq: i64,
    pub rows: u64,
}

/// What a purge did, or would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Purged {
    pub segments: Vec<Segment>,
    pub dry_run: bool,
}

impl Purged {
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(
        "the audit trail is broken, nothing purged (a purge must not sign over tampering): {0}"
    )]
    Broken(Broken),
    #[error("chain {chain}: {found} rows to purge where its sequence numbers say {expected}: nothing of this chain purged")]
    Segment {
        chain: String,
        expected: u64,
        found: u64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for PurgeError {
    fn from(e: sqlx::Error) -> Self {
        PurgeError::Db(e.into())
    }
}

/// Removes every chain's rows older than `before_ms` (whole segments, see
/// the module), leaving a checkpoint signed with `key` for each; with
/// `dry_run`, only says what it would remove. The trail is verified first,
/// against `heads` (heads that left the database) too.
pub async fn purge(
    db: &PortalDb,
    heads: &[super::ChainHead],
    before_ms: i64,
    key: &[u8],
    dry_run: bool,
) -> Result<Purged, PurgeError> {
    let v = verify_signed(db, heads, Some(key)).await?;
    if let Some(b) = v.broken {
        return Err(PurgeError::Broken(b));
    }
    let mut out = Purged {
        segments: Vec::new(),
        dry_run,
    };
    let chains = sqlx::query(
        "SELECT chain, MIN(seq), MAX(seq) FROM audit_events WHERE chain IS NOT NULL GROUP BY chain ORDER BY MIN(id)",
    )
    .fetch_all(db.pool())
    .await?;
    for r in &chains {
        let chain: String = r.try_get(0)?;
        let first: i64 = r.try_get(1)?;
        let last: i64 = r.try_get(2)?;
        let first_kept: Option<i64> =
            sqlx::query("SELECT MIN(seq) FROM audit_events WHERE chain = $1 AND at_ms >= $2")
                .bind(&chain)
                .bind(before_ms)
                .fetch_one(db.pool())
                .await?
                .try_get(0)?;
        let last_purged = first_kept.map_or(last, |s| s - 1);
        if last_purged < first {
            continue;
        }
        let hash: String =
            sqlx::query("SELECT row_hash FROM audit_events WHERE chain = $1 AND seq = $2")
                .bind(&chain)
                .bind(last_purged)
                .fetch_one(db.pool())
                .await?
                .try_get(0)?;
        let rows = (last_purged - first + 1) as u64;
        if !dry_run {
            let mut tx = db.pool().begin().await?;
            insert_checkpoint(&mut tx, &chain, last_purged, &hash, before_ms, rows, key).await?;
            let done = sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq <= $2")
                .bind(&chain)
                .bind(last_purged)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != rows {
                // Rolled back (the transaction is dropped): nothing of it goes.
                return Err(PurgeError::Segment {
                    chain,
                    expected: rows,
                    found: done.rows_affected(),
                });
            }
            tx.commit().await?;
        }
        out.segments.push(Segment {
            chain,
            last_seq: last_purged,
            rows,
        });
    }
    // The rows older than the chains (before migration 0013), if any.
    let old: i64 =
        sqlx::query("SELECT COUNT(*) FROM audit_events WHERE chain IS NULL AND at_ms < $1")
            .bind(before_ms)
            .fetch_one(db.pool())
            .await?
            .try_get(0)?;
    if old > 0 {
        if !dry_run {
            let mut tx = db.pool().begin().await?;
            insert_checkpoint(&mut tx, UNCHAINED, old, GENESIS, before_ms, old as u64, key).await?;
            sqlx::query("DELETE FROM audit_events WHERE chain IS NULL AND at_ms < $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        out.segments.push(Segment {
            chain: UNCHAINED.to_owned(),
            last_seq: old,
            rows: old as u64,
        });
    }
    Ok(out)
}

async fn insert_checkpoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chain: &str,
    seq: i64,
    hash: &str,
    before_ms: i64,
    rows: u64,
    key: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (chain, seq, row_hash, before_ms, purged_rows, purged_at_ms, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(chain)
    .bind(seq)
    .bind(hash)
    .bind(before_ms)
    .bind(rows as i64)
    .bind(crate::state::now_ms())
    .bind(sign(key, chain, seq, hash, before_ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
