//! Orthanc, the viewer/PACS stand-in of tests and the demo: its
//! configuration (rendered from `deploy/orthanc/orthanc.json.in`, the same
//! template `scripts/lib/orthanc.sh` uses), its resource ids, and a
//! throw-away server for tests ([`OrthancServer`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// The Orthanc binary installed by Debian's `orthanc` package.
pub const ORTHANC_BIN: &str = "/usr/sbin/Orthanc";

/// The configuration template (placeholders `@DATA_DIR@`, `@HTTP_PORT@`,
/// `@DICOM_PORT@`).
pub const CONFIG_TEMPLATE: &str = include_str!("../../../deploy/orthanc/orthanc.json.in");

/// Renders the Orthanc configuration: HTTP on `http_port` (loopback only),
/// DICOM port reserved as `dicom_port` (the DICOM server itself is
/// disabled), storage, index and web viewer cache under `data_dir`.
pub fn render_config(data_dir: &Path, http_port: u16, dicom_port: u16) -> Result<String, String> {
    let dir = data_dir.to_str().ok_or("data dir is not UTF-8")?;
    if dir.contains(['"', '\\', '\n', '\r']) || dir.is_empty() {
        return Err(format!("unsupported data dir {dir:?}"));
    }
    Ok(CONFIG_TEMPLATE
        .replace("@DATA_DIR@", dir.trim_end_matches('/'))
        .replace("@HTTP_PORT@", &http_port.to_string())
        .replace("@DICOM_PORT@", &dicom_port.to_string()))
}

/// Formats a SHA-1 digest the way Orthanc does: 5 groups of 8 lowercase
/// hex digits joined by dashes.
fn orthanc_sha1(s: &str) -> String {
    let d = Sha1::digest(s.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    hex.as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).expect("hex"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Orthanc ids of one instance and its parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrthancIds {
    pub patient: String,
    pub study: String,
    pub series: String,
    pub instance: String,
}

/// Computes Orthanc's resource ids from DICOM identifiers, as Orthanc's
/// `DicomInstanceHasher` does: SHA-1 of `PatientID`,
/// `PatientID|StudyInstanceUID`, `…|SeriesInstanceUID`, `…|SOPInstanceUID`.
/// (Checked against a real Orthanc 1.10 in the integration test.)
pub fn orthanc_ids(
    patient_id: &str,
    study_uid: &str,
    series_uid: &str,
    sop_uid: &str,
) -> OrthancIds {
    OrthancIds {
        patient: orthanc_sha1(patient_id),
        study: orthanc_sha1(&format!("{patient_id}|{study_uid}")),
        series: orthanc_sha1(&format!("{patient_id}|{study_uid}|{series_uid}")),
        instance: orthanc_sha1(&format!("{patient_id}|{study_uid}|{series_uid}|{sop_uid}")),
    }
}

/// A free TCP port on 127.0.0.1 (bound then released: a small race is
/// possible if something else grabs it in between).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

#[derive(Debug, thiserror::Error)]
pub enum OrthancError {
    #[error("Orthanc is not installed ({ORTHANC_BIN} is missing): run `apt-get install -y --no-install-recommends orthanc orthanc-dicomweb orthanc-webviewer` or source scripts/lib/orthanc.sh and call orthanc_install")]
    NotInstalled,
    #[error("Orthanc setup failed: {0}")]
    Setup(String),
    #[error("Orthanc exited before answering (status {status}); log {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("Orthanc did not answer GET /system within {0:?}; log {1}")]
    Timeout(Duration, PathBuf),
}

/// A running Orthanc, killed when dropped. Meant for tests and tools;
/// scripts use `scripts/lib/orthanc.sh`.
#[derive(Debug)]
pub struct OrthancServer {
    child: Option<Child>,
    base_url: String,
    http_port: u16,
    dicom_port: u16,
    data_dir: PathBuf,
}

impl OrthancServer {
    /// Writes `DATA_DIR/orthanc.json`, starts Orthanc on free loopback
    /// ports and waits (bounded: `timeout`) until `GET /system` answers 200.
    pub async fn start(data_dir: &Path, timeout: Duration) -> Result<Self, OrthancError> {
        if !Path::new(ORTHANC_BIN).exists() {
            return Err(OrthancError::NotInstalled);
        }
        let setup = |e: std::io::Error| OrthancError::Setup(e.to_string());
        std::fs::create_dir_all(data_dir).map_err(setup)?;
        let http_port = free_port().map_err(setup)?;
        let dicom_port = loop {
            let p = free_port().map_err(setup)?;
            if p != http_port {
                break p;
            }
        };
        let config = render_config(data_dir, http_port, dicom_port).map_err(OrthancError::Setup)?;
        let config_path = data_dir.join("orthanc.json");
        std::fs::write(&config_path, config).map_err(setup)?;
        let log_path = data_dir.join("orthanc.log");
        let log = std::fs::File::create(&log_path).map_err(setup)?;
        let log2 = log.try_clone().map_err(setup)?;
        let child = Command::new(ORTHANC_BIN)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(setup)?;
        let mut server = OrthancServer {
            child: Some(child),
            base_url: format!("http://127.0.0.1:{http_port}"),
            http_port,
            dicom_port,
            data_dir: data_dir.to_path_buf(),
        };
        server.wait_ready(timeout, &log_path).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, timeout: Duration, log_path: &Path) -> Result<(), OrthancError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| OrthancError::Setup(e.to_string()))?;
        let url = format!("{}/system", self.base_url);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = std::fs::read_to_string(log_path).unwrap_or_default();
                    let tail: String = log
                        .lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Err(OrthancError::Exited {
                        status: status.to_string(),
                        log: log_path.to_path_buf(),
                        tail,
                    });
                }
            }
            // Ready when OUR process logged that it listens on the port and
            // /system answers (another server on that port cannot fool us).
            let listening = format!("HTTP server listening on port: {} ", self.http_port);
            let ours = std::fs::read_to_string(log_path).is_ok_and(|l| l.contains(&listening));
            if ours {
                if let Ok(r) = client.get(&url).send().await {
                    if r.status().is_success() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(OrthancError::Timeout(timeout, log_path.to_path_buf()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    pub fn http_port(&self) -> u16 {
        self.http_port
    }
    pub fn dicom_port(&self) -> u16 {
        self.dicom_port
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// Process id of the Orthanc server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OrthancServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_renders_to_json() {
        let c = render_config(Path::new("/tmp/x y/"), 18042, 14242).unwrap();
        let v: serde_json::Value = serde_json::from_str(&c).expect("valid JSON");
        assert_eq!(v["HttpPort"], 18042);
        assert_eq!(v["DicomPort"], 14242);
        assert_eq!(v["StorageDirectory"], "/tmp/x y/storage");
        assert_eq!(v["RemoteAccessAllowed"], false);
        assert_eq!(v["AuthenticationEnabled"], false);
        assert_eq!(v["DicomWeb"]["Root"], "/dicom-web/");
        assert!(!c.contains('@'));
        assert!(render_config(Path::new("/tmp/a\"b"), 1, 2).is_err());
    }

    #[test]
    fn ids_have_orthanc_shape() {
        let ids = orthanc_ids("P1", "1.2.3", "1.2.3.4", "1.2.3.4.5");
        for id in [&ids.patient, &ids.study, &ids.series, &ids.instance] {
            assert_eq!(id.len(), 44);
            assert_eq!(id.split('-').count(), 5);
        }
        assert_ne!(ids.study, ids.series);
    }
}
