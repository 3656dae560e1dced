//! Writing and reading `audit_events`. Every row is the next link of one of
//! this process's hash chains (see `chain.rs`): a few chains per process,
//! each written by one writer at a time, so instances never wait on each
//! other and one instance's writes do not all queue behind one lock.

use std::sync::atomic::{AtomicUsize, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

use super::chain::{row_hash, ChainHead, StoredRow, GENESIS};
use super::event::AuditEvent;
use crate::state::{now_ms, DbError, PortalDb};

/// How many chains one process writes at once.
const LANES: usize = 4;

/// The trail's settings a process runs with.
#[derive(Clone)]
pub struct AuditSettings {
    /// The key of the name-search hashes: the same on every instance (so
    /// that one professional's searches correlate), never in the database.
    pub search_key: Vec<u8>,
    /// The second sink (`[audit] ship_*`), if any.
    pub ship: Option<crate::config::ShipConfig>,
}

impl AuditSettings {
    /// The settings of `[audit]`; without a key, a random one of this
    /// process (with a warning: the hashes then correlate only within it).
    pub fn of(config: &crate::config::AuditConfig) -> AuditSettings {
        match &config.search_key {
            Some(k) => AuditSettings {
                search_key: k.clone(),
                ship: config.ship.clone(),
            },
            None => {
                tracing::warn!("no audit.search_key_file: name searches are hashed with a key of this process only");
                AuditSettings {
                    ship: config.ship.clone(),
                    ..Trail::random_settings()
                }
            }
        }
    }
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSettings { search_key: .. }")
    }
}

/// One chain being written: its id, the last sequence number and hash.
struct Lane {
    chain: Option<String>,
    seq: i64,
    head: String,
}

/// This process's writing side of the trail.
pub(crate) struct Trail {
    /// A random id of this process: every chain it starts is named after it.
    instance: String,
    chains_started: AtomicUsize,
    lanes: Vec<tokio::sync::Mutex<Lane>>,
    next: AtomicUsize,
    /// The last stored row of each lane's chain, read by the head logger.
    heads: parking_lot::Mutex<Vec<Option<ChainHead>>>,
    search_key: Vec<u8>,
    /// The second sink's queue.
    shipper: Option<super::ship::Shipper>,
}

impl Trail {
    pub(crate) fn new(settings: AuditSettings) -> Trail {
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        Trail {
            instance: hex(&id),
            chains_started: AtomicUsize::new(0),
            lanes: (0..LANES)
                .map(|_| {
                    tokio::sync::Mutex::new(Lane {
                        chain: None,
                        seq: 0,
                        head: GENESIS.to_owned(),
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            heads: parking_lot::Mutex::new(vec![None; LANES]),
            search_key: settings.search_key,
            shipper: settings.ship.as_ref().map(|s| {
                super::ship::Shipper::start(s).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "the audit sink cannot start: every event is counted as dropped");
                    super::ship::Shipper::stopped()
                })
            }),
        }
    }

    /// A key of its own for a process that was given none (the hashes
    /// then correlate only within this process).
    pub(crate) fn random_settings() -> AuditSettings {
        let mut key = vec![0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        AuditSettings {
            search_key: key,
            ship: None,
        }
    }

    fn search_hash(&self, text: &str) -> String {
        let normalized: String = text.trim().to_lowercase();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.search_key).expect("any key length");
        mac.update(normalized.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }

    fn new_chain(&self) -> String {
        let n = self.chains_started.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.instance)
    }

    /// The last stored row of each chain this process writes.
    pub(crate) fn heads(&self) -> Vec<ChainHead> {
        self.heads.lock().iter().flatten().cloned().collect()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A stored audit record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub actor: Option<String>,
    pub event: String,
    pub method: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
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

/// The columns of a row, in the order of [`StoredRow`], then the chain's.
pub(crate) const ROW_COLUMNS: &str =
    "at_ms, actor, event, method, outcome, client_addr, resource, \
     detail, patient_id, dossier, study_uid, report_id, access_path, policy, request_id, \
     search_hash, result_count";

impl PortalDb {
    /// Stores one record as the next link of one of this process's chains.
    pub async fn audit(&self, e: &AuditEvent) -> Result<(), DbError> {
        let trail = self.trail();
        let i = trail.next.fetch_add(1, Ordering::Relaxed) % LANES;
        let mut lane = trail.lanes[i].lock().await;
        let chain = match &lane.chain {
            Some(c) => c.clone(),
            None => {
                let c = trail.new_chain();
                lane.chain = Some(c.clone());
                c
            }
        };
        let row = StoredRow {
            at_ms: now_ms(),
            actor: e.actor.clone(),
            event: e.event.to_owned(),
            method: e.method.map(str::to_owned),
            outcome: e.outcome.to_owned(),
            client_addr: e.client_addr.clone(),
            resource: e.resource.clone(),
            detail: e.detail.clone(),
            patient_id: e.patient_id.clone(),
            dossier: e.dossier.clone(),
            study_uid: e.study_uid.clone(),
            report_id: e.report_id.clone(),
            access_path: e.access_path.map(str::to_owned),
            policy: e.policy.clone(),
            request_id: e.request_id.clone(),
            search_hash: e.search.as_ref().map(|t| trail.search_hash(&t.0)),
            result_count: e.result_count,
        };
        let seq = lane.seq + 1;
        let hash = row_hash(&lane.head, &chain, seq, &row);
        let shipped = trail
            .shipper
            .as_ref()
            .map(|s| (s, super::ship::json_line(&row, &chain, seq, &hash)));
        let sql = format!(
            "INSERT INTO audit_events ({ROW_COLUMNS}, chain, seq, prev_hash, row_hash) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        );
        let done = sqlx::query(&sql)
            .bind(row.at_ms)
            .bind(row.actor)
            .bind(row.event)
            .bind(row.method)
            .bind(row.outcome)
            .bind(row.client_addr)
            .bind(row.resource)
            .bind(row.detail)
            .bind(row.patient_id)
            .bind(row.dossier)
            .bind(row.study_uid)
            .bind(row.report_id)
            .bind(row.access_path)
            .bind(row.policy)
            .bind(row.request_id)
            .bind(row.search_hash)
            .bind(row.result_count)
            .bind(chain.clone())
            .bind(seq)
            .bind(lane.head.clone())
            .bind(hash.clone())
            .execute(self.pool())
            .await;
        match done {
            Ok(_) => {
                lane.seq = seq;
                lane.head = hash.clone();
                trail.heads.lock()[i] = Some(ChainHead { chain, seq, hash });
                drop(lane);
                if let Some((shipper, line)) = shipped {
                    shipper.ship(line);
                }
                Ok(())
            }
            Err(err) => {
                crate::metrics::METRICS.audit_write_failures.inc();
                // Stored or not, we cannot tell (a commit may have succeeded
                // before the error): this chain ends here, the next write
                // starts a new one.
                *lane = Lane {
                    chain: None,
                    seq: 0,
                    head: GENESIS.to_owned(),
                };
                Err(err.into())
            }
        }
    }

    /// The last row this process wrote in each of its chains.
    pub fn audit_heads(&self) -> Vec<ChainHead> {
        self.trail().heads()
    }

    /// The newest records first (operations and tests).
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
        let sql = format!("SELECT {ROW_COLUMNS} FROM audit_events ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(record_of).collect()
    }
}

/// A record from a row selected with [`ROW_COLUMNS`] first.
pub(crate) fn record_of(r: &sqlx::any::AnyRow) -> Result<AuditRecord, DbError> {
    Ok(AuditRecord {
        at_ms: r.try_get(0)?,
        actor: r.try_get(1)?,
        event: r.try_get(2)?,
        method: r.try_get(3)?,
        outcome: r.try_get(4)?,
        client_addr: r.try_get(5)?,
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
