//! The audit trail's second sink (issue 13, item 6): an image view shown
//! by the real Orthanc is stored in the portal database AND leaves as the
//! same event, one JSON line, to a file (that logrotate may move away) or to
//! a real syslog receiver (Debian's rsyslogd, imtcp on a loopback port, plain
//! TCP and TLS); a sink that is down never fails the request and is counted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// Polls `f` until it answers (every 20 ms, at most 15 s).
async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..750 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The stored row of `event` (the last one), as the JSON the sink sends.
async fn stored(proxy: &Proxy, event: &str) -> serde_json::Value {
    use sqlx::Row;
    let db = proxy.db().await;
    let r = sqlx::query(
        "SELECT at_ms, actor, outcome, patient_id, study_uid, report_id, request_id, access_path, \
         policy, chain, seq, row_hash FROM audit_events WHERE event = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(event)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let s = |i: usize| r.try_get::<Option<String>, _>(i).unwrap();
    serde_json::json!({
        "at_ms": r.try_get::<i64, _>(0).unwrap(),
        "actor": s(1),
        "event": event,
        "outcome": s(2),
        "patient_id": s(3),
        "study_uid": s(4),
        "report_id": s(5),
        "request_id": s(6),
        "access_path": s(7),
        "policy": s(8),
        "chain": s(9),
        "seq": r.try_get::<i64, _>(10).unwrap(),
        "row_hash": s(11),
    })
}

/// The shipped JSON lines in `text` (anything before the `{` of each line
/// is the receiver's own prefix).
fn shipped(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}")))
        .collect()
}

/// Whether `line` says what `row` says (every field of `row`).
fn same_event(line: &serde_json::Value, row: &serde_json::Value) -> bool {
    row.as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| line.get(k) == Some(v))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// One image view by Élise; the response's status.
async fn image_view(fx: &Fixture, proxy: &Proxy, elise: &Browser) -> u16 {
    let study = fx.study(SCANAP_DOSSIER_SCANNER);
    let url = format!("{}/instances/{}/preview", proxy.base, study.iid());
    send(&elise.client, Method::GET, &url, None, None)
        .await
        .status
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

on_both_backends!(an_image_view_is_shipped_to_a_file_as_stored);

/// The file sink: the image view's line is the stored row; once the file
/// is moved away (logrotate's default), the next event goes to a new file
/// at the configured path, and the moved file keeps what it had.
async fn an_image_view_is_shipped_to_a_file_as_stored(backend: Backend) {
    let fx = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (proxy, _idp) = proxy_on(
        &fx,
        backend,
        Some(format!("ship_file = \"{}\"\n", file.display())),
    )
    .await;
    let elise = login(&proxy, ELISE).await;
    assert_eq!(image_view(&fx, &proxy, &elise).await, 200);
    let row = stored(&proxy, "images_view").await;
    assert_eq!(
        row["study_uid"],
        fx.study(SCANAP_DOSSIER_SCANNER).uid.as_str()
    );
    let lines = until("the image view in the file", || {
        let l = shipped(&read(&file));
        l.iter().any(|l| same_event(l, &row)).then_some(l)
    })
    .await;
    // The login before it was shipped too, each event once.
    assert!(lines.iter().any(|l| l["event"] == "login"), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "images_view").count(),
        1
    );

    // Rotation: the file moved away, the next event starts a new one.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&file, &rotated).unwrap();
    let report = report_of(&fx, SCANAP_DOSSIER_EPAULE).await;
    let page = send(
        &elise.client,
        Method::GET,
        &format!("{}/portail/comptes-rendus/{report}", proxy.base),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    let read_row = stored(&proxy, "report_view").await;
    until("the report view in the new file", || {
        shipped(&read(&file))
            .iter()
            .any(|l| same_event(l, &read_row))
            .then_some(())
    })
    .await;
    let old = shipped(&read(&rotated));
    assert_eq!(old.len(), lines.len(), "the moved file changed: {old:?}");
    // Counted once written (the login, the image view, the report view).
    let mut written = 0.0;
    for _ in 0..750 {
        written = metric(&proxy.metrics().await, "espace_audit_shipped_total");
        if written >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(written >= 3.0, "espace_audit_shipped_total = {written}");
}

/// A throwaway rsyslogd: imtcp on a loopback port (TLS through
/// rsyslog-gnutls when given a server certificate), every message written
/// to one file as "APP-NAME MSGID MSG".
struct Rsyslog {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    async fn start(tls: Option<&Path>) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = dir.path().join("out.log");
        let (global, input) = match tls {
            None => (String::new(), "module(load=\"imtcp\")\n".to_owned()),
            Some(pki) => (
                format!(
                    "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{0}/ca.pem\" \
                     DefaultNetstreamDriverCertFile=\"{0}/server.pem\" DefaultNetstreamDriverKeyFile=\"{0}/server.key\")\n",
                    pki.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n"
                    .to_owned(),
            ),
        };
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{dir}\")\n{global}{input}\
                 input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
                 template(name=\"line\" type=\"string\" string=\"%app-name% %msgid% %msg%\\n\")\n\
                 action(type=\"omfile\" file=\"{out}\" template=\"line\")\n",
                dir = dir.path().display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let bin = if Path::new("/usr/sbin/rsyslogd").exists() {
            "/usr/sbin/rsyslogd"
        } else {
            "rsyslogd"
        };
        let child = Command::new(bin)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("rsyslogd (Debian's rsyslog; scripts/test.sh installs it)");
        let r = Rsyslog {
            child,
            port,
            out,
            _dir: dir,
        };
        until("rsyslogd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        r
    }

    fn text(&self) -> String {
        read(&self.out)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image view reaches a real syslog receiver as an RFC 5424 message of
/// espace-ps, message id `audit`, the JSON line as its message.
#[tokio::test]
async fn an_image_view_is_shipped_to_rsyslog() {
    let fx = fixture().await;
    let rsyslog = Rsyslog::start(None).await;
    let (proxy, _idp) = proxy_on(
        &fx,
        Backend::Sqlite,
        Some(format!("ship_syslog = \"127.0.0.1:{}\"\n", rsyslog.port)),
    )
    .await;
    let elise = login(&proxy, ELISE).await;
    assert_eq!(image_view(&fx, &proxy, &elise).await, 200);
    let row = stored(&proxy, "images_view").await;
    let text = until("the image view in rsyslog's output", || {
        let t = rsyslog.text();
        shipped(&t).iter().any(|l| same_event(l, &row)).then_some(t)
    })
    .await;
    let line = text.lines().find(|l| l.contains("images_view")).unwrap();
    assert!(line.starts_with("espace-ps audit {"), "{line}");
}

/// The same over TLS (rsyslog-gnutls), the receiver's certificate checked
/// against `ship_syslog_ca_file`.
#[tokio::test]
async fn an_image_view_is_shipped_to_rsyslog_over_tls() {
    let fx = fixture().await;
    let pki = tempfile::tempdir().unwrap();
    make_server_pki(pki.path());
    let rsyslog = Rsyslog::start(Some(pki.path())).await;
    let (proxy, _idp) = proxy_on(
        &fx,
        Backend::Sqlite,
        Some(format!(
            "ship_syslog = \"127.0.0.1:{}\"\nship_syslog_ca_file = \"{}\"\n",
            rsyslog.port,
            pki.path().join("ca.pem").display()
        )),
    )
    .await;
    let elise = login(&proxy, ELISE).await;
    assert_eq!(image_view(&fx, &proxy, &elise).await, 200);
    let row = stored(&proxy, "images_view").await;
    until("the image view in rsyslog's output over TLS", || {
        shipped(&rsyslog.text())
            .iter()
            .any(|l| same_event(l, &row))
            .then_some(())
    })
    .await;
}

/// A CA and a server certificate for 127.0.0.1 (openssl), and a CA that
/// signed nothing (`other-ca.pem`), in `dir`.
fn make_server_pki(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=espace-ps audit test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    // A CA that signed nothing here.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "other-ca.key",
        "-out",
        "other-ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=another CA",
    ]);
}

/// The receiver is down (nothing listens): the image is shown, its row is
/// stored, and the lost events are counted (`sink_down`).
#[tokio::test]
async fn a_sink_that_is_down_fails_no_request_and_is_counted() {
    let fx = fixture().await;
    let nobody = free_port();
    let (proxy, _idp) = proxy_on(
        &fx,
        Backend::Sqlite,
        Some(format!("ship_syslog = \"127.0.0.1:{nobody}\"\n")),
    )
    .await;
    let elise = login(&proxy, ELISE).await;
    assert_eq!(image_view(&fx, &proxy, &elise).await, 200);
    let row = stored(&proxy, "images_view").await;
    assert_eq!(
        row["study_uid"],
        fx.study(SCANAP_DOSSIER_SCANNER).uid.as_str()
    );
    let series = "espace_audit_ship_dropped_total{reason=\"sink_down\"}";
    let mut dropped = 0.0;
    for _ in 0..750 {
        dropped = metric(&proxy.metrics().await, series);
        if dropped >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The login and the image view, at least.
    assert!(dropped >= 2.0, "{series} = {dropped}");
    assert_eq!(
        metric(&proxy.metrics().await, "espace_audit_shipped_total"),
        0.0
    );
}

/// A receiver whose certificate the configured CA did not sign gets
/// nothing: the TLS handshake fails, the events are counted as dropped.
#[tokio::test]
async fn a_receiver_with_a_certificate_of_another_ca_gets_nothing() {
    let fx = fixture().await;
    let pki = tempfile::tempdir().unwrap();
    make_server_pki(pki.path());
    let rsyslog = Rsyslog::start(Some(pki.path())).await;
    let (proxy, _idp) = proxy_on(
        &fx,
        Backend::Sqlite,
        Some(format!(
            "ship_syslog = \"127.0.0.1:{}\"\nship_syslog_ca_file = \"{}\"\n",
            rsyslog.port,
            pki.path().join("other-ca.pem").display()
        )),
    )
    .await;
    let elise = login(&proxy, ELISE).await;
    assert_eq!(image_view(&fx, &proxy, &elise).await, 200);
    let series = "espace_audit_ship_dropped_total{reason=\"sink_down\"}";
    let mut dropped = 0.0;
    for _ in 0..750 {
        dropped = metric(&proxy.metrics().await, series);
        if dropped >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped >= 2.0, "{series} = {dropped}");
    assert_eq!(shipped(&rsyslog.text()), Vec::<serde_json::Value>::new());
}
