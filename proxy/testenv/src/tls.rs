//! The stores over TLS, on a throwaway CA: a Redis that speaks TLS only and
//! asks every client for a certificate of that CA, and a PostgreSQL cluster
//! that refuses plaintext connections (`hostssl`). Their server certificate
//! names 127.0.0.1 only (so `localhost` is a wrong host name for them); a
//! second CA that signed nothing stands for a wrong CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{file_contains, free_port, Service};
use crate::Started;

pub(crate) fn start(dir: &Path, pids: &Path) -> Result<Started, String> {
    let pki = dir.join("pki");
    crate::pki::make_pki(&pki)?;
    let redis_port = free_port()?;
    let log = dir.join("redis.log");
    let file = |name: &str| pki.join(name).display().to_string();
    let mut redis = Service::spawn(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &redis_port.to_string()])
            .args(["--tls-cert-file", &file("server.pem")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem")])
            .args(["--tls-auth-clients", "yes"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir),
        &log,
        pids,
        "TERM",
    )?;
    redis.wait_ready("redis-server (TLS)", &log, Duration::from_secs(20), || {
        file_contains(&log, "Ready to accept connections")
            && std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok()
    })?;
    let pg_dir = dir.join("postgres");
    std::fs::create_dir_all(&pg_dir).map_err(|e| e.to_string())?;
    let (postgres, pg_port) = crate::postgres::start_cluster(&pg_dir, pids, Some(&pki))?;
    Ok(Started {
        vars: vec![
            (
                "ESPACE_TEST_TLS_REDIS_URL".into(),
                format!("rediss://127.0.0.1:{redis_port}/"),
            ),
            (
                "ESPACE_TEST_TLS_PG_URL".into(),
                format!("postgres://espace@127.0.0.1:{pg_port}/espace_test"),
            ),
            ("ESPACE_TEST_TLS_CA".into(), file("ca.pem")),
            ("ESPACE_TEST_TLS_OTHER_CA".into(), file("other-ca.pem")),
            ("ESPACE_TEST_TLS_CLIENT_CERT".into(), file("client.pem")),
            ("ESPACE_TEST_TLS_CLIENT_KEY".into(), file("client.key")),
        ],
        services: vec![redis, postgres],
    })
}
