//! espace-ps's own database: accounts created at first login and the audit
//! trail (later: seen marks, dossier grants). SQLite by default, PostgreSQL
//! by URL, through sqlx's `Any` driver; each backend has its own migrations.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::identity::Professional;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the portal database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the portal database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("portal database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The portal database.
#[derive(Clone)]
pub struct PortalDb {
    pool: AnyPool,
    backend: Backend,
}

/// The result of recording a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLogin {
    pub account_id: i64,
    /// True at the first login: the account was created now.
    pub created: bool,
}

/// Milliseconds since the epoch, on espace-ps's one clock.
pub use crate::clock::now_ms;

impl PortalDb {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PortalDb, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(DbError::Connect)?;
        if backend == Backend::Sqlite {
            // WAL lets readers go on while one writer writes.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(DbError::Connect)?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(DbError::Migrate)?;
        Ok(PortalDb { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Creates the account at the first login, updates it at the next ones.
    pub async fn record_login(&self, p: &Professional) -> Result<AccountLogin, DbError> {
        let now = now_ms();
        let row: AnyRow = sqlx::query(
            "INSERT INTO accounts (national_id, rpps, given_name, family_name, last_login_method, \
                                   first_login_at, last_login_at, login_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, 1) \
             ON CONFLICT (national_id) DO UPDATE SET \
                rpps = excluded.rpps, given_name = excluded.given_name, \
                family_name = excluded.family_name, last_login_method = excluded.last_login_method, \
                last_login_at = excluded.last_login_at, login_count = accounts.login_count + 1 \
             RETURNING id, login_count",
        )
        .bind(p.national_id.as_str())
        .bind(p.rpps.as_deref())
        .bind(&p.given_name)
        .bind(&p.family_name)
        .bind(p.login_method.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let account_id: i64 = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        Ok(AccountLogin {
            account_id,
            created: count == 1,
        })
    }

    /// Counts accounts for a national id (tests and operations).
    pub async fn account_count(&self, national_id: &str) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) FROM accounts WHERE national_id = $1")
            .bind(national_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

// === portal state: seen marks, dossier grants, dossier-number attempts ===

impl PortalDb {
    /// Marks a report seen by an account (idempotent).
    pub async fn mark_seen(&self, account_id: i64, report_id: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO seen_reports (account_id, report_id, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, report_id) DO NOTHING",
        )
        .bind(account_id)
        .bind(report_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Which of `report_ids` the account has seen.
    pub async fn seen_among(
        &self,
        account_id: i64,
        report_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, DbError> {
        let mut seen = std::collections::HashSet::new();
        for chunk in report_ids.chunks(100) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT report_id FROM seen_reports WHERE account_id = $1 AND report_id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(account_id);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                seen.insert(row.try_get::<String, _>(0)?);
            }
        }
        Ok(seen)
    }

    /// Records (or renews) a dossier-number grant until `expires_at_ms`.
    pub async fn grant_dossier(
        &self,
        account_id: i64,
        dossier_number: &str,
        expires_at_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO dossier_grants (account_id, dossier_number, granted_at, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, dossier_number) \
             DO UPDATE SET granted_at = excluded.granted_at, expires_at = excluded.expires_at",
        )
        .bind(account_id)
        .bind(dossier_number)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The dossiers this account holds a live grant for.
    pub async fn granted_dossiers(&self, account_id: i64) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT dossier_number FROM dossier_grants WHERE account_id = $1 AND expires_at > $2 \
             ORDER BY granted_at DESC",
        )
        .bind(account_id)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn has_grant(&self, account_id: i64, dossier_number: &str) -> Result<bool, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM dossier_grants WHERE account_id = $1 AND dossier_number = $2 \
             AND expires_at > $3",
        )
        .bind(account_id)
        .bind(dossier_number)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    pub async fn record_dossier_attempt(
        &self,
        account_id: i64,
        dossier_number: &str,
        success: bool,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO dossier_attempts (account_id, dossier_number, at_ms, success) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(account_id)
        .bind(dossier_number)
        .bind(now_ms())
        .bind(i64::from(success))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed attempts since `since_ms`: by this account, and on this dossier number (by anyone).
    pub async fn dossier_failures_since(
        &self,
        account_id: i64,
        dossier_number: &str,
        since_ms: i64,
    ) -> Result<(i64, i64), DbError> {
        let by_account = sqlx::query(
            "SELECT COUNT(*) FROM dossier_attempts WHERE account_id = $1 AND at_ms >= $2 AND success = 0",
        )
        .bind(account_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        let on_dossier = sqlx::query(
            "SELECT COUNT(*) FROM dossier_attempts WHERE dossier_number = $1 AND at_ms >= $2 AND success = 0",
        )
        .bind(dossier_number)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok((by_account, on_dossier))
    }
}
