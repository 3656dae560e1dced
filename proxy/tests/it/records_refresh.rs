//! `espace-ps records refresh`: the name-search views (materialized, as
//! docs/records.md ships them) refreshed on a real PostgreSQL, so a new
//! patient on a care team becomes findable; the refresh is dated and every
//! instance exposes that date as a metric (the staleness alert's input).

use espace_ps_demo_data::{self as demo_data, DemoConfig};
use sqlx::Connection;

use super::harness::*;
use super::stores::fresh_pg_database;

/// Replaces the generator's token tables by the shipped materialized views.
async fn with_materialized_views(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    for stmt in [
        "DROP TABLE rec_search_tokens",
        "DROP TABLE rec_patient_tokens",
    ] {
        sqlx::query(stmt).execute(&mut conn).await.unwrap();
    }
    for sql in [
        include_str!("../../records/schema/postgres-tokens-view.sql"),
        include_str!("../../records/schema/postgres-search-tokens-view.sql"),
    ] {
        let body: Vec<&str> = sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        for stmt in body.join("\n").split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::query(stmt).execute(&mut conn).await.unwrap();
        }
    }
}

async fn indexed(url: &str, token: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM rec_search_tokens WHERE token = $1")
        .bind(token)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn records_refresh_makes_a_new_patient_findable_and_dates_it() {
    let url = fresh_pg_database().await;
    let mut demo = DemoConfig::demo(test_today());
    demo.patients = 50;
    demo_data::generate(&url, &demo).await.unwrap();
    with_materialized_views(&url).await;
    // A new patient on a care team, after the views were built.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for stmt in [
        "INSERT INTO rec_patients VALUES ('P-NEW', 'ZYGOMATIQUE', 'Anne', 'F', '1970-01-01')",
        "INSERT INTO rec_dossiers VALUES ('D-NEW', 'P-NEW', '2026-11-01')",
        "INSERT INTO rec_care_team VALUES ('D-NEW', '899700123450', '10001234567', 'MEDECIN')",
    ] {
        sqlx::query(stmt).execute(&mut conn).await.unwrap();
    }
    assert_eq!(indexed(&url, "ZYGOMATIQUE").await, 0, "not yet refreshed");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("espace-ps.toml");
    std::fs::write(
        &config,
        format!(
            "[records]\nurl = \"{url}\"\n\n[testing]\nclock_offset_secs = {}\n",
            clock_offset_secs()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["records", "refresh", "--config"])
        .arg(&config)
        .env_remove("ESPACE_RECORDS_URL")
        .env_remove("ESPACE_RECORDS_REFRESH_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("refreshed"), "{stdout}");
    assert_eq!(indexed(&url, "ZYGOMATIQUE").await, 1);

    // An instance on these records exposes when they were refreshed.
    let proxy = Proxy::start(ProxyOpts {
        records_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let now = test_now().unix_timestamp();
    let metrics = proxy.metrics().await;
    let at: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("espace_records_search_refreshed_timestamp_seconds "))
        .unwrap_or_else(|| panic!("no refresh metric:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!((now - 300..=now + 300).contains(&at), "{at} vs {now}");
}
