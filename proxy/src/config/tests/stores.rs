//! The session store, the portal database and the process's life: TLS to
//! Redis and PostgreSQL, Sentinel, shutdown timings.

use super::*;

#[test]
fn a_ca_file_makes_postgres_verify_the_server() {
    let ca = std::env::temp_dir().join(format!("espace-ca-test-{}.pem", std::process::id()));
    std::fs::write(&ca, "not read here").unwrap();
    let ca_s = ca.display().to_string();
    let c = Config::from_toml(
        &format!(
            "[database]\nurl = \"postgres://espace@db.chu.example/espace\"\nca_file = \"{ca_s}\"\n\n\
             [records]\nurl = \"postgres://ro@db.chu.example/dpi?sslmode=verify-ca\"\nca_file = \"{ca_s}\"\n"
        ),
        no_env,
    )
    .unwrap();
    let rootcert = format!("sslrootcert={}", urlencoding::encode(&ca_s));
    assert!(
        c.database.url.contains("sslmode=verify-full"),
        "{}",
        c.database.url
    );
    assert!(c.database.url.contains(&rootcert), "{}", c.database.url);
    let records = c.records.url.unwrap();
    assert!(records.contains("sslmode=verify-ca"), "{records}");
    assert!(!records.contains("verify-full"), "{records}");
    assert!(records.contains(&rootcert), "{records}");
    // A mode that would not verify, or fall back to plaintext, is refused;
    // and a CA file means nothing to SQLite.
    let i = issues(&format!(
        "[database]\nurl = \"postgres://db/e?sslmode=prefer\"\nca_file = \"{ca_s}\"\n\n\
         [records]\nurl = \"sqlite://r.sqlite\"\nca_file = \"{ca_s}\"\n"
    ));
    let keys: Vec<_> = i.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert_eq!(
        keys,
        vec![("database.ca_file", Some(3)), ("records.ca_file", Some(7))]
    );
    assert!(i[0].message.contains("sslmode=prefer"), "{}", i[0].message);
    let i = issues("[database]\nurl = \"postgres://db/e\"\nca_file = \"/nonexistent/ca.pem\"\n");
    assert_eq!(i[0].key, "database.ca_file");
    let _ = std::fs::remove_file(ca);
}

#[test]
fn redis_tls_files_need_rediss_and_go_in_pairs() {
    let pem = std::env::temp_dir().join(format!("espace-redis-test-{}.pem", std::process::id()));
    std::fs::write(&pem, "not read here").unwrap();
    let pem = pem.display().to_string();
    let c = Config::from_toml(
        &format!(
            "[sessions]\nstore = \"redis\"\nredis_url = \"rediss://r.chu.example:6380/0\"\n\
             redis_ca_file = \"{pem}\"\nredis_client_cert = \"{pem}\"\nredis_client_key = \"{pem}\"\n"
        ),
        no_env,
    )
    .unwrap();
    let SessionStoreConfig::Redis(r) = &c.sessions.store else {
        panic!("redis expected");
    };
    assert_eq!(r.tls.ca_file.as_deref(), Some(std::path::Path::new(&pem)));
    assert!(r.tls.client_cert.is_some());
    assert!(c.summary().contains("Redis sessions (TLS)"));
    let i = issues(&format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"redis://r:6379/0\"\nredis_ca_file = \"{pem}\"\n\
         redis_client_cert = \"{pem}\"\n"
    ));
    let keys: Vec<_> = i.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("sessions.redis_ca_file", Some(4)),
            ("sessions.redis_client_cert", Some(5)),
            ("sessions.redis_client_key", Some(5)),
        ]
    );
    let _ = std::fs::remove_file(&pem);
}

#[test]
fn shutdown_timings_default_and_are_bounded() {
    let c = Config::defaults();
    assert_eq!(c.server.grace_period, Duration::from_secs(120));
    assert_eq!(c.server.drain_delay, Duration::from_secs(10));
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(
        c.server.upgrade_sock,
        std::path::Path::new("/run/espace-ps/upgrade.sock")
    );
    let i = issues("[server]\ngrace_period_secs = 7200\ndrain_delay_secs = 1000\n");
    let keys: Vec<_> = i.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("server.grace_period_secs", Some(2)),
            ("server.drain_delay_secs", Some(3)),
        ]
    );
}

#[test]
fn sentinels_name_the_primary_and_wait_for_one_replica() {
    let c = Config::from_toml(
        "[sessions]\nstore = \"redis\"\nredis_sentinels = [\"10.0.0.1:26379\", \"redis-b.chu.example:26379\"]\n\
         redis_service = \"espace-ps\"\n",
        no_env,
    )
    .unwrap();
    let SessionStoreConfig::Redis(r) = &c.sessions.store else {
        panic!("redis expected");
    };
    assert_eq!(r.sentinels.len(), 2);
    assert_eq!(r.service, "espace-ps");
    assert_eq!(r.url, "");
    // A write waits for one replica by default with Sentinels…
    assert_eq!(r.wait_replicas, 1);
    assert_eq!(r.wait_timeout, Duration::from_millis(500));
    assert!(c.summary().contains("Redis sessions through Sentinel"));
    // …and for none with one Redis, unless asked.
    let c = Config::from_toml(
        "[sessions]\nstore = \"redis\"\nredis_url = \"redis://r:6379/0\"\n",
        no_env,
    )
    .unwrap();
    let SessionStoreConfig::Redis(r) = &c.sessions.store else {
        panic!("redis expected");
    };
    assert_eq!(r.wait_replicas, 0);
    let i = issues(
        "[sessions]\nstore = \"redis\"\nredis_sentinels = [\"nope\"]\nredis_wait_timeout_ms = 0\n",
    );
    let keys: Vec<_> = i.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("sessions.redis_sentinels", Some(3)),
            ("sessions.redis_service", Some(3)),
            ("sessions.redis_wait_timeout_ms", Some(4)),
        ]
    );
}
