//! The records' name-search views (`rec_patient_tokens`, then
//! `rec_search_tokens`, materialized in PostgreSQL: `docs/records.md`):
//! `espace-ps records refresh` refreshes them and dates the refresh in the
//! view's comment; every instance reads that date into
//! `espace_records_search_refreshed_timestamp_seconds`, so that a refresh
//! job that stopped is seen (alert on its age).

use std::time::Duration;

use sqlx::Connection;

/// What the refresh writes in `rec_search_tokens`'s comment, before the
/// Unix time of the refresh.
const MARK: &str = "espace-ps refreshed_at_unix=";

/// Refreshes both views, in order, without blocking readers
/// (`CONCURRENTLY`), on a connection of its own (espace-ps's records pool
/// is read-only): `url` must be a role allowed to refresh them (their
/// owner). Returns how long it took. PostgreSQL only.
pub async fn refresh(url: &str) -> Result<Duration, sqlx::Error> {
    let started = std::time::Instant::now();
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for view in ["rec_patient_tokens", "rec_search_tokens"] {
        sqlx::query(&format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"))
            .execute(&mut conn)
            .await?;
    }
    let now = crate::clock::now().unix_timestamp();
    sqlx::query(&format!(
        "COMMENT ON MATERIALIZED VIEW rec_search_tokens IS '{MARK}{now}'"
    ))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(started.elapsed())
}

/// When `rec_search_tokens` was last refreshed by `espace-ps records
/// refresh` (Unix seconds), from its comment; None when never (or not
/// PostgreSQL).
pub async fn refreshed_at(records: &espace_ps_records::Records) -> Option<i64> {
    if records.backend() != espace_ps_records::Backend::Postgres {
        return None;
    }
    let comment: Option<String> =
        sqlx::query_scalar("SELECT obj_description('rec_search_tokens'::regclass, 'pg_class')")
            .fetch_one(records.pool())
            .await
            .ok()?;
    comment?.strip_prefix(MARK)?.trim().parse().ok()
}

/// Sets the gauge now (before the listeners open), then every `every` (a
/// task on the start-up runtime).
pub fn watch(records: espace_ps_records::Records, every: Duration) {
    let rt = crate::run::startup_runtime();
    let gauge = &crate::metrics::METRICS.records_search_refreshed;
    gauge.set(rt.block_on(refreshed_at(&records)).unwrap_or(0));
    rt.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            gauge.set(refreshed_at(&records).await.unwrap_or(0));
        }
    });
}
