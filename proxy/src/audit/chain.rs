//! Tamper evidence. Every row is a link of a hash chain: it stores its
//! chain's id, its sequence number in that chain, the hash of the chain's
//! previous row and its own hash (SHA-256 over the previous hash and every
//! column). Each process writes a few chains of its own (`store.rs`), so
//! instances never serialize their writes on one another.
//!
//! `verify` walks the rows in id order and finds an altered row (its hash),
//! a deleted or inserted row (a gap or a repeat in its chain's sequence, a
//! previous hash that does not match) and a row outside any chain among
//! chained ones. Someone with full SQL rights can rewrite a row and rehash
//! every row after it, or cut a chain's tail: the chain heads that left the
//! database (written periodically to the log stream by [`HeadLogger`], or
//! exported by `espace-ps audit heads`) catch both.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::store::{hex, ROW_COLUMNS};
use crate::state::{DbError, PortalDb};

/// The previous hash of a chain's first row.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The message of the log line that carries a chain head.
pub const HEAD_LOG_MESSAGE: &str = "audit chain head";

/// Every column of a row that its hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub at_ms: i64,
    pub actor: Option<String>,
    pub event: String,
    pub method: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub resource: Option<String>,
    pub detail: Option<String>,
    pub patient_id: Option<String>,
    pub dossier: Option<String>,
    pub study_uid: Option<String>,
    pub report_id: Option<String>,
    pub access_path: Option<String>,
    pub policy: Option<String>,
    pub request_id: Option<String>,
    pub search_hash: Option<String>,
    pub result_count: Option<i64>,
}

impl StoredRow {
    fn of(r: &sqlx::any::AnyRow) -> Result<StoredRow, sqlx::Error> {
        Ok(StoredRow {
            at_ms: r.try_get(0)?,
            actor: r.try_get(1)?,
            event: r.try_get(2)?,
            method: r.try_get(3)?,
            outcome: r.try_get(4)?,
            client_addr: r.try_get(5)?,
            resource: r.try_get(6)?,
            detail: r.try_get(7)?,
            patient_id: r.try_get(8)?,
            dossier: r.try_get(9)?,
            study_uid: r.try_get(10)?,
            report_id: r.try_get(11)?,
            access_path: r.try_get(12)?,
            policy: r.try_get(13)?,
            request_id: r.try_get(14)?,
            search_hash: r.try_get(15)?,
            result_count: r.try_get(16)?,
        })
    }
}

/// The hash of a row: SHA-256 over a version tag, the previous hash, the
/// chain, the sequence number and every column, each length-prefixed (an
/// absent value is told apart from an empty one).
pub(crate) fn row_hash(prev: &str, chain: &str, seq: i64, r: &StoredRow) -> String {
    let mut h = Sha256::new();
    h.update(b"espace-ps audit v1\n");
    let mut text = |v: Option<&str>| match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    };
    text(Some(prev));
    text(Some(chain));
    text(Some(&seq.to_string()));
    text(Some(&r.at_ms.to_string()));
    text(r.actor.as_deref());
    text(Some(&r.event));
    text(r.method.as_deref());
    text(Some(&r.outcome));
    text(r.client_addr.as_deref());
    text(r.resource.as_deref());
    text(r.detail.as_deref());
    text(r.patient_id.as_deref());
    text(r.dossier.as_deref());
    text(r.study_uid.as_deref());
    text(r.report_id.as_deref());
    text(r.access_path.as_deref());
    text(r.policy.as_deref());
    text(r.request_id.as_deref());
    text(r.search_hash.as_deref());
    text(r.result_count.map(|n| n.to_string()).as_deref());
    hex(&h.finalize())
}

/// The last row of a chain at some moment: what leaves the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainHead {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain={} seq={} hash={}",
            self.chain, self.seq, self.hash
        )
    }
}

/// The chain heads found in a text: the log stream (text or JSON lines) or
/// the output of `espace-ps audit heads`. Every `chain=… seq=… hash=…` is a
/// head; other lines are skipped.
pub fn parse_heads(text: &str) -> Vec<ChainHead> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("chain=") {
            rest = &rest[at..];
            let field = |name: &str, s: &str| -> Option<String> {
                let start = s.find(name)? + name.len();
                let v: String = s[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                Some(v)
            };
            let head = (|| {
                let chain = field("chain=", rest)?;
                let seq = field(" seq=", rest)?.parse().ok()?;
                let hash = field(" hash=", rest)?;
                (hash.len() == 64).then_some(ChainHead { chain, seq, hash })
            })();
            out.extend(head);
            rest = &rest["chain=".len()..];
        }
    }
    out
}

/// Writes the heads of this process's chains to the log stream every
/// `interval` (when they moved) and once more when dropped (shutdown).
pub struct HeadLogger {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the head logger of `db`'s chains.
pub fn spawn_head_logger(db: PortalDb, interval: Duration) -> HeadLogger {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("audit-heads".into())
        .spawn(move || {
            let mut logged: HashSet<ChainHead> = HashSet::new();
            loop {
                let done = !matches!(
                    stopped.recv_timeout(interval),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );
                for head in db.audit_heads() {
                    if logged.insert(head.clone()) {
                        tracing::info!(target: "espace_ps::audit", "{HEAD_LOG_MESSAGE} {head}");
                    }
                }
                if done {
                    return;
                }
            }
        })
        .ok();
    HeadLogger {
        stop: Some(stop),
        thread,
    }
}

impl Drop for HeadLogger {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Rows in a chain, checked.
    pub rows: u64,
    pub chains: usize,
    /// Rows older than the chains (written before the trail was chained).
    pub unchained: u64,
    /// Heads from outside the database that were checked.
    pub heads_checked: usize,
    /// Purge checkpoints whose signature was checked.
    pub checkpoints: usize,
    /// The first broken row, if any.
    pub broken: Option<Broken>,
}

/// Where the trail stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The row's id (None: the row is gone).
    pub id: Option<i64>,
    pub chain: Option<String>,
    pub seq: Option<i64>,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "row id {id}")?,
            None => write!(f, "missing row")?,
        }
        if let (Some(c), Some(s)) = (&self.chain, self.seq) {
            write!(f, " (chain {c}, seq {s})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Checks every chain of the trail, and each head of `heads` (heads that
/// left the database) against it. A trail with purge checkpoints needs
/// their key: see [`verify_signed`].
pub async fn verify(db: &PortalDb, heads: &[ChainHead]) -> Result<Verification, DbError> {
    verify_signed(db, heads, None).await
}

/// [`verify`], each chain starting from its newest purge checkpoint, whose
/// signature must be `checkpoint_key`'s (without a key, a checkpoint is
/// reported as unverifiable: the trail is not declared intact).
pub async fn verify_signed(
    db: &PortalDb,
    heads: &[ChainHead],
    checkpoint_key: Option<&[u8]>,
) -> Result<Verification, DbError> {
    let mut wanted: HashMap<(String, i64), String> = HashMap::new();
    for h in heads {
        wanted.insert((h.chain.clone(), h.seq), h.hash.clone());
    }
    // chain -> (last seq, last hash)
    let mut chains: HashMap<String, (i64, String)> = HashMap::new();
    let mut out = Verification {
        rows: 0,
        chains: 0,
        unchained: 0,
        heads_checked: heads.len(),
        checkpoints: 0,
        broken: None,
    };
    let mut head_breaks: Vec<Broken> = Vec::new();
    // The purge checkpoints: each chain resumes after its newest one.
    let mut purged_before: HashMap<String, i64> = HashMap::new();
    for cp in super::purge::checkpoints(db).await? {
        let broken = |reason: &str| Broken {
            id: None,
            chain: Some(cp.chain.clone()),
            seq: Some(cp.seq),
            reason: reason.to_owned(),
        };
        match checkpoint_key {
            None => {
                out.broken = Some(broken(
                    "a purge checkpoint cannot be checked without the checkpoint key (audit.checkpoint_key_file)",
                ));
                return Ok(out);
            }
            Some(key) if !cp.signed_by(key) => {
                out.broken = Some(broken(
                    "the purge checkpoint's signature does not match: the checkpoint was altered or forged",
                ));
                return Ok(out);
            }
            Some(_) => {}
        }
        out.checkpoints += 1;
        if cp.chain == super::purge::UNCHAINED {
            continue;
        }
        if let Some(h) = wanted.get(&(cp.chain.clone(), cp.seq)) {
            if *h != cp.row_hash {
                head_breaks.push(broken(
                    "the purge checkpoint differs from the chain head that left the database: the chain was rewritten before the purge",
                ));
            }
        }
        let newest = purged_before.entry(cp.chain.clone()).or_insert(0);
        if cp.seq > *newest {
            *newest = cp.seq;
            chains.insert(cp.chain.clone(), (cp.seq, cp.row_hash.clone()));
        }
    }
    let sql = format!(
        "SELECT {ROW_COLUMNS}, id, chain, seq, prev_hash, row_hash FROM audit_events \
         WHERE id > $1 ORDER BY id LIMIT 5000"
    );
    let mut after: i64 = 0;
    loop {
        let rows = sqlx::query(&sql).bind(after).fetch_all(db.pool()).await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let id: i64 = r.try_get(17)?;
            after = id;
            let chain: Option<String> = r.try_get(18)?;
            let Some(chain) = chain else {
                if out.rows == 0 {
                    out.unchained += 1;
                    continue;
                }
                out.broken = Some(Broken {
                    id: Some(id),
                    chain: None,
                    seq: None,
                    reason: "a row outside any chain among chained rows: inserted".into(),
                });
                return Ok(out);
            };
            let seq: Option<i64> = r.try_get(19)?;
            let prev: Option<String> = r.try_get(20)?;
            let stored: Option<String> = r.try_get(21)?;
            let row = StoredRow::of(r)?;
            let (last_seq, last_hash) = chains
                .get(&chain)
                .cloned()
                .unwrap_or((0, GENESIS.to_owned()));
            let broken = |reason: String| Broken {
                id: Some(id),
                chain: Some(chain.clone()),
                seq,
                reason,
            };
            let seq_n = seq.unwrap_or(-1);
            if seq_n != last_seq + 1 {
                out.broken = Some(broken(if seq_n <= last_seq {
                    format!("sequence {seq_n} after {last_seq}: a row was inserted or replayed")
                } else {
                    format!(
                        "sequence {seq_n} after {last_seq}: {} row(s) before it were deleted",
                        seq_n - last_seq - 1
                    )
                }));
                return Ok(out);
            }
            if prev.as_deref() != Some(last_hash.as_str()) {
                out.broken = Some(broken(
                    "its previous hash is not the previous row's hash: the chain was altered"
                        .into(),
                ));
                return Ok(out);
            }
            let computed = row_hash(&last_hash, &chain, seq_n, &row);
            if stored.as_deref() != Some(computed.as_str()) {
                out.broken = Some(broken(
                    "its content does not match its hash: the row was altered".into(),
                ));
                return Ok(out);
            }
            if let Some(h) = wanted.get(&(chain.clone(), seq_n)) {
                if *h != computed {
                    head_breaks.push(broken(
                        "differs from the chain head that left the database: this row or one before it was rewritten and the chain rehashed".into(),
                    ));
                }
            }
            out.rows += 1;
            chains.insert(chain, (seq_n, computed));
        }
    }
    out.chains = chains.len();
    for h in heads {
        let last = chains.get(&h.chain).map_or(0, |(s, _)| *s);
        if last < h.seq {
            head_breaks.push(Broken {
                id: None,
                chain: Some(h.chain.clone()),
                seq: Some(last + 1),
                reason: format!(
                    "the chain ends at sequence {last} but its head at {} left the database: its tail was deleted",
                    h.seq
                ),
            });
        }
    }
    out.broken = head_breaks
        .into_iter()
        .min_by_key(|b| b.id.unwrap_or(i64::MAX));
    Ok(out)
}

/// What someone with full SQL rights can do to hide an alteration: recompute
/// the previous and own hashes of every row of `chain` from its rows as
/// they now are (after rewriting one, or renumbering after an insertion).
/// Only the tests use it, to show that `verify` still catches the forgery
/// against the heads that left the database; the update it runs is refused
/// by the trail's triggers and, on PostgreSQL, by the runtime role's rights.
#[doc(hidden)]
pub async fn forge_rehash(db: &PortalDb, chain: &str) -> Result<u64, DbError> {
    let sql =
        format!("SELECT {ROW_COLUMNS}, id, seq FROM audit_events WHERE chain = $1 ORDER BY seq");
    let rows = sqlx::query(&sql).bind(chain).fetch_all(db.pool()).await?;
    let mut prev = GENESIS.to_owned();
    let mut n = 0;
    for r in &rows {
        let id: i64 = r.try_get(17)?;
        let seq: i64 = r.try_get(18)?;
        let hash = row_hash(&prev, chain, seq, &StoredRow::of(r)?);
        sqlx::query("UPDATE audit_events SET prev_hash = $1, row_hash = $2 WHERE id = $3")
            .bind(prev.clone())
            .bind(hash.clone())
            .bind(id)
            .execute(db.pool())
            .await?;
        prev = hash;
        n += 1;
    }
    Ok(n)
}

/// The last row of every chain in the database now (`espace-ps audit
/// heads`: to copy out of the database, e.g. by a daily job).
pub async fn stored_heads(db: &PortalDb) -> Result<Vec<ChainHead>, DbError> {
    let rows = sqlx::query(
        "SELECT a.chain, a.seq, a.row_hash FROM audit_events a WHERE a.chain IS NOT NULL \
         AND a.seq = (SELECT MAX(b.seq) FROM audit_events b WHERE b.chain = a.chain) \
         ORDER BY a.id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ChainHead {
                chain: r.try_get(0)?,
                seq: r.try_get(1)?,
                hash: r.try_get(2)?,
            })
        })
        .collect()
}
