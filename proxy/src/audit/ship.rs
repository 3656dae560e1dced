//! The second sink: every audit event, once stored, also leaves as one
//! JSON line, to a file or to a syslog receiver (RFC 5424 over TCP, TLS
//! optional), so that the hospital's SIEM receives the same events.
//!
//! The database write decides (no record, no access); this sink never
//! blocks nor fails a request: the event is put on a bounded queue without
//! waiting, and one thread of its own writes the queue out. A full queue
//! (the sink slower than the traffic) or a sink that refuses (file not
//! writable, receiver down: retried at most once a second) drops the event
//! and counts it in `espace_audit_ship_dropped_total{reason}`; the
//! database still holds it.
//!
//! The file is reopened when its path no longer names the open file (moved
//! away by logrotate) or is gone; `copytruncate` works too (lines are
//! appended). Syslog messages use octet-counting framing (RFC 6587, as RFC
//! 5425 requires over TLS), facility `audit`, app name `espace-ps`, message
//! id `audit`, the JSON line as the message.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chain::StoredRow;
use crate::config::{ShipConfig, ShipTarget};
use crate::metrics::METRICS;

/// How long a connection to the receiver, or a write to it, may take.
const NET_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failure, the sink is not tried again before this.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The queue to the sink's thread.
pub(crate) struct Shipper {
    tx: SyncSender<String>,
}

impl Shipper {
    /// Starts the sink's thread. A TLS configuration that cannot be built
    /// (an unreadable CA file) is an error at start.
    pub(crate) fn start(config: &ShipConfig) -> io::Result<Shipper> {
        let mut sink: Box<dyn Sink> = match &config.target {
            ShipTarget::File(path) => Box::new(FileSink {
                path: path.clone(),
                open: None,
            }),
            ShipTarget::Syslog { address, ca_file } => Box::new(SyslogSink::new(address, ca_file)?),
        };
        let (tx, rx) = sync_channel::<String>(config.queue);
        std::thread::Builder::new()
            .name("audit-ship".into())
            .spawn(move || drain(&mut *sink, rx))?;
        Ok(Shipper { tx })
    }

    /// A sink that could not start: every line counts as dropped.
    pub(crate) fn stopped() -> Shipper {
        let (tx, _) = sync_channel::<String>(1);
        Shipper { tx }
    }

    /// Queues one line; never waits.
    pub(crate) fn ship(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => dropped("queue_full"),
            Err(TrySendError::Disconnected(_)) => dropped("sink_down"),
        }
    }
}

fn dropped(reason: &str) {
    METRICS
        .audit_ship_dropped
        .with_label_values(&[reason])
        .inc();
}

fn drain(sink: &mut dyn Sink, rx: Receiver<String>) {
    let mut last_warning: Option<Instant> = None;
    for line in rx {
        match sink.write(&line) {
            Ok(()) => METRICS.audit_shipped.inc(),
            Err(e) => {
                dropped("sink_down");
                // One warning a minute at most (never the line itself).
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "audit sink unavailable: events dropped (the database keeps them)");
                    last_warning = Some(Instant::now());
                }
            }
        }
    }
}

trait Sink: Send {
    fn write(&mut self, line: &str) -> io::Result<()>;
}

/// Appends to a file, reopened when rotated.
struct FileSink {
    path: PathBuf,
    /// The open file and its (device, inode).
    open: Option<(std::fs::File, (u64, u64))>,
}

impl Sink for FileSink {
    fn write(&mut self, line: &str) -> io::Result<()> {
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if self.open.as_ref().map(|(_, id)| *id) != now || now.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            let m = file.metadata()?;
            self.open = Some((file, (m.dev(), m.ino())));
        }
        let (file, _) = self.open.as_mut().expect("opened above");
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // One write: a line is never split between two files.
        file.write_all(&bytes).inspect_err(|_| self.open = None)
    }
}

/// RFC 5424 over TCP (TLS when a CA is given).
struct SyslogSink {
    address: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    context: fasyslog::format::SyslogContext,
    conn: Option<Box<dyn Write + Send>>,
    retry_at: Option<Instant>,
}

impl SyslogSink {
    fn new(address: &str, ca_file: &Option<PathBuf>) -> io::Result<SyslogSink> {
        let tls = match ca_file {
            None => None,
            Some(ca) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
                    .map_err(io::Error::other)?
                {
                    roots
                        .add(cert.map_err(io::Error::other)?)
                        .map_err(io::Error::other)?;
                }
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(io::Error::other)?;
                Some((Arc::new(config), name))
            }
        };
        let mut context = fasyslog::format::SyslogContext::new();
        context
            .facility(fasyslog::Facility::AUDIT)
            .appname("espace-ps");
        Ok(SyslogSink {
            address: address.to_owned(),
            tls,
            context,
            conn: None,
            retry_at: None,
        })
    }

    fn connect(&self) -> io::Result<Box<dyn Write + Send>> {
        let mut last = io::Error::other("the address resolves to nothing");
        for addr in self.address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, NET_TIMEOUT) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(NET_TIMEOUT))?;
                    stream.set_read_timeout(Some(NET_TIMEOUT))?;
                    stream.set_nodelay(true)?;
                    return Ok(match &self.tls {
                        None => Box::new(stream),
                        Some((config, name)) => {
                            let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                                .map_err(io::Error::other)?;
                            Box::new(rustls::StreamOwned::new(conn, stream))
                        }
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Sink for SyslogSink {
    fn write(&mut self, line: &str) -> io::Result<()> {
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return Err(io::Error::other("syslog receiver down, retrying shortly"));
            }
            match self.connect() {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.retry_at = Some(Instant::now() + RETRY_AFTER);
                    return Err(e);
                }
            }
        }
        let message = self
            .context
            .format_rfc5424(
                fasyslog::Severity::INFORMATIONAL,
                Some("audit"),
                Vec::new(),
                Some(line),
            )
            .to_string();
        let framed = format!("{} {message}", message.len());
        let conn = self.conn.as_mut().expect("connected above");
        let sent = conn.write_all(framed.as_bytes()).and_then(|_| conn.flush());
        if sent.is_err() {
            self.conn = None;
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        sent
    }
}

/// One event as the sink receives it: every stored column, with its place
/// in its chain (the SIEM can match it with the database's row).
pub(crate) fn json_line(row: &StoredRow, chain: &str, seq: i64, hash: &str) -> String {
    let at = jiff::Timestamp::from_millisecond(row.at_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    serde_json::json!({
        "at": at,
        "at_ms": row.at_ms,
        "actor": row.actor,
        "event": row.event,
        "method": row.method,
        "outcome": row.outcome,
        "client_addr": row.client_addr,
        "resource": row.resource,
        "detail": row.detail,
        "patient_id": row.patient_id,
        "dossier": row.dossier,
        "study_uid": row.study_uid,
        "report_id": row.report_id,
        "access_path": row.access_path,
        "policy": row.policy,
        "request_id": row.request_id,
        "search_hash": row.search_hash,
        "result_count": row.result_count,
        "chain": chain,
        "seq": seq,
        "row_hash": hash,
    })
    .to_string()
}
