//! TLS to the stores: a real Redis that speaks TLS only and asks for a
//! client certificate, a real PostgreSQL that refuses plaintext, both on a
//! throwaway CA (`espace_ps_testenv`, `ESPACE_TEST_TLS_*`). Sessions and the
//! portal database work over verified TLS; a wrong CA, a wrong host name or
//! a missing client certificate stops espace-ps at start with a clear error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::Connection;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";

fn ca() -> String {
    peer("ESPACE_TEST_TLS_CA")
}

/// `[sessions]` on the TLS Redis at `url`, with the test CA and, when
/// `client_cert`, the client certificate.
fn tls_sessions(url: &str, ca: &str, client_cert: bool) -> String {
    let mut s = format!(
        "store = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"t-{}:\"\nredis_ca_file = \"{ca}\"\n",
        espace_ps::session::new_token()
    );
    if client_cert {
        s.push_str(&format!(
            "redis_client_cert = \"{}\"\nredis_client_key = \"{}\"\n",
            peer("ESPACE_TEST_TLS_CLIENT_CERT"),
            peer("ESPACE_TEST_TLS_CLIENT_KEY")
        ));
    }
    s
}

/// A fresh database on the TLS PostgreSQL: its URL without TLS parameters
/// (the proxy adds them from `ca_file`).
async fn fresh_tls_database() -> String {
    let admin = peer("ESPACE_TEST_TLS_PG_URL");
    let verified = format!("{admin}?sslmode=verify-full&sslrootcert={}", ca());
    let name = format!(
        "espace_tls_{}",
        espace_ps::session::new_token()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .chars()
            .take(12)
            .collect::<String>()
    );
    let mut conn = sqlx::PgConnection::connect(&verified).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[tokio::test]
async fn sessions_and_the_portal_database_work_over_verified_tls() {
    let database = fresh_tls_database().await;
    // The servers really refuse plaintext: what works below is TLS.
    assert!(
        sqlx::PgConnection::connect(&format!("{database}?sslmode=disable"))
            .await
            .is_err(),
        "the TLS PostgreSQL accepted a plaintext connection"
    );
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        sessions: Some(tls_sessions(
            &peer("ESPACE_TEST_TLS_REDIS_URL"),
            &ca(),
            true,
        )),
        database_url: Some(database.clone()),
        database_ca_file: Some(ca()),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Élise MARTIN-DUPRÉ"));
    // The session lives in the TLS Redis: a second request finds it.
    let again = b.get(&format!("{}/", proxy.base)).await;
    assert_eq!(again.status, StatusCode::OK);
    let ready = reqwest::get(format!("{}/-/readyz", proxy.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // The login's audit row is in the TLS PostgreSQL.
    let trail = audit_trail(&format!(
        "{database}?sslmode=verify-full&sslrootcert={}",
        ca()
    ))
    .await;
    assert!(
        trail.iter().any(|e| e.event.starts_with("login")),
        "{trail:?}"
    );
    assert!(proxy.logs().contains("Redis sessions (TLS)"));
}

/// Runs `espace-ps serve` with `[sessions]` and `[database]` bodies and
/// expects it to stop by itself (non-zero) within 30 s: its stderr.
fn start_fails(sessions: &str, database: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("espace-ps.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n\n\
             [database]\n{database}\n\n[sessions]\n{sessions}\n\n[policies]\ndir = \"{}\"\n",
            free_port(),
            free_port(),
            shipped_policies().display()
        ),
    )
    .unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("ESPACE_REDIS_URL")
        .env_remove("ESPACE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "espace-ps started anyway:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(!status.success(), "{log}");
    log
}

fn sqlite_database(dir: &tempfile::TempDir) -> String {
    format!(
        "url = \"sqlite://{}?mode=rwc\"",
        dir.path().join("p.sqlite").display()
    )
}

#[tokio::test]
async fn a_wrong_ca_stops_the_start() {
    let other = peer("ESPACE_TEST_TLS_OTHER_CA");
    let dir = tempfile::tempdir().unwrap();
    // Redis's certificate against another CA.
    let log = start_fails(
        &tls_sessions(&peer("ESPACE_TEST_TLS_REDIS_URL"), &other, true),
        &sqlite_database(&dir),
    );
    assert!(
        log.contains("TLS to the session store refused") && log.contains("UnknownIssuer"),
        "{log}"
    );
    // PostgreSQL's.
    let database = fresh_tls_database().await;
    let log = start_fails(
        "store = \"memory\"",
        &format!("url = \"{database}\"\nca_file = \"{other}\""),
    );
    assert!(
        log.contains("cannot connect to the portal database") && log.contains("UnknownIssuer"),
        "{log}"
    );
}

#[tokio::test]
async fn a_wrong_host_name_stops_the_start() {
    // The servers' certificates name 127.0.0.1 only; `localhost` reaches
    // the same servers under a name the certificates do not carry.
    let dir = tempfile::tempdir().unwrap();
    let redis = peer("ESPACE_TEST_TLS_REDIS_URL").replace("127.0.0.1", "localhost");
    let log = start_fails(&tls_sessions(&redis, &ca(), true), &sqlite_database(&dir));
    assert!(
        log.contains("TLS to the session store refused") && log.contains("not valid for name"),
        "{log}"
    );
    let database = fresh_tls_database().await.replace("127.0.0.1", "localhost");
    let log = start_fails(
        "store = \"memory\"",
        &format!("url = \"{database}\"\nca_file = \"{}\"", ca()),
    );
    assert!(
        log.contains("cannot connect to the portal database") && log.contains("not valid for name"),
        "{log}"
    );
}

#[tokio::test]
async fn redis_asking_for_a_client_certificate_refuses_a_start_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = start_fails(
        &tls_sessions(&peer("ESPACE_TEST_TLS_REDIS_URL"), &ca(), false),
        &sqlite_database(&dir),
    );
    assert!(log.contains("TLS to the session store refused"), "{log}");
}
