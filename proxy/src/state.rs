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
    #[error("portal database unavailable: the same query failed less than a second ago")]
    RecentlyFailed,
    #[error("the portal database's schema is at migration {applied}, this version needs {needed}: run `espace-ps migrate` with the owner role ([database] migrate = false)")]
    Outdated { applied: i64, needed: i64 },
    #[error("the portal database role may UPDATE, DELETE or TRUNCATE audit_events: refusing to start. Run serve with a role that may only INSERT and SELECT the trail (docs/operations.md, \"Audit trail\"), or, in development only, set [database] allow_audit_rewrite = true")]
    AuditRewritable,
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
    /// The audit trail's writing side (its chains), shared by the clones.
    trail: std::sync::Arc<crate::audit::store::Trail>,
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
        Self::open(url, max_connections, true).await
    }

    /// The database as `serve` opens it: migrated or not as `[database]
    /// migrate` says (not: the schema must already be up to date), then
    /// refused when the role could rewrite the audit trail (PostgreSQL)
    /// unless `allow_audit_rewrite` (development).
    pub async fn open_for_serve(
        config: &crate::config::DatabaseConfig,
    ) -> Result<PortalDb, DbError> {
        let db = Self::open(&config.url, config.max_connections, config.migrate).await?;
        if !config.allow_audit_rewrite && db.can_rewrite_audit().await? {
            return Err(DbError::AuditRewritable);
        }
        Ok(db)
    }

    /// Whether this connection's role may update, delete or truncate audit
    /// rows (PostgreSQL's privileges; always false on SQLite, whose file's
    /// permissions are the operator's).
    pub async fn can_rewrite_audit(&self) -> Result<bool, DbError> {
        if self.backend != Backend::Postgres {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT CASE WHEN has_table_privilege('audit_events', 'UPDATE') \
                 OR has_table_privilege('audit_events', 'DELETE') \
                 OR has_table_privilege('audit_events', 'TRUNCATE') THEN 1 ELSE 0 END",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i32, _>(0)? == 1)
    }

    /// Connects; brings the schema up to date when `migrate`, otherwise
    /// checks that it is.
    pub async fn open(url: &str, max_connections: u32, migrate: bool) -> Result<PortalDb, DbError> {
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
        if migrate {
            migrator.run(&pool).await.map_err(DbError::Migrate)?;
        } else {
            let needed = migrator.iter().map(|m| m.version).max().unwrap_or(0);
            let applied: i64 =
                sqlx::query("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await
                    .and_then(|r| r.try_get(0))
                    .unwrap_or(0);
            if applied < needed {
                return Err(DbError::Outdated { applied, needed });
            }
        }
        Ok(PortalDb {
            pool,
            backend,
            trail: std::sync::Arc::new(crate::audit::store::Trail::new(
                crate::audit::store::Trail::random_settings(),
            )),
        })
    }

    /// The same database with the audit trail's settings (the search key).
    /// Call it before cloning: the clones made before keep the old ones.
    pub fn with_audit(self, settings: crate::audit::AuditSettings) -> PortalDb {
        PortalDb {
            trail: std::sync::Arc::new(crate::audit::store::Trail::new(settings)),
            ..self
        }
    }

    pub(crate) fn trail(&self) -> &crate::audit::store::Trail {
        &self.trail
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
        // 1,000 parameters a query: well under PostgreSQL's and SQLite's
        // limits; the home page asks about 2,000 ids in two round trips.
        for chunk in report_ids.chunks(1_000) {
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

    /// Whether this account held a dossier-number grant on this dossier that
    /// has expired (and holds no live one): the dossier's page then says so
    /// and offers the form again, instead of "Dossier introuvable".
    pub async fn grant_expired(
        &self,
        account_id: i64,
        dossier_number: &str,
    ) -> Result<bool, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM dossier_grants WHERE account_id = $1 AND dossier_number = $2 \
             AND expires_at <= $3",
        )
        .bind(account_id)
        .bind(dossier_number)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Reserves a slot for one dossier-number attempt, atomically: under a
    /// lock on this account's row and on this number's row (PostgreSQL row
    /// locks; SQLite `BEGIN IMMEDIATE`, one writer at a time), it counts the
    /// failures and, when the limits allow, inserts the attempt as a failure.
    /// Only a granted slot may be evaluated against the records; it becomes a
    /// success with [`PortalDb::dossier_attempt_succeeded`] or stays a
    /// failure. Concurrent attempts, on any instance, therefore never
    /// evaluate more than the limits allow.
    pub async fn reserve_dossier_attempt(
        &self,
        account_id: i64,
        dossier_number: &str,
        limits: AttemptLimits,
    ) -> Result<Reservation, DbError> {
        let now = now_ms();
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        // The account's row first, the number's row second: every attempt
        // locks in this order, so two attempts never wait on each other in a cycle.
        sqlx::query(
            "INSERT INTO dossier_attempt_accounts (account_id, touched_at) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET touched_at = excluded.touched_at",
        )
        .bind(account_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "INSERT INTO dossier_number_budgets (dossier_number, budget_since) VALUES ($1, 0) \
             ON CONFLICT (dossier_number) DO UPDATE SET budget_since = dossier_number_budgets.budget_since \
             RETURNING budget_since, locked_at",
        )
        .bind(dossier_number)
        .fetch_one(&mut *tx)
        .await?;
        let budget_since: i64 = row.try_get(0)?;
        let locked_at: Option<i64> = row.try_get(1)?;
        if locked_at.is_some() {
            tx.commit().await?;
            return Ok(Reservation::NumberLocked { newly: false });
        }
        let window_since = now - limits.window_ms;
        let count = |sql: &'static str, key: Key, since: i64| {
            let q = sqlx::query(sql);
            let q = match key {
                Key::Account => q.bind(account_id),
                Key::Number => q.bind(dossier_number.to_owned()),
            };
            q.bind(since)
        };
        let mine: i64 = count(
            "SELECT COUNT(*) FROM dossier_attempts WHERE account_id = $1 AND at_ms >= $2 AND success = 0",
            Key::Account,
            window_since,
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        const ON_NUMBER: &str = "SELECT COUNT(*) FROM dossier_attempts WHERE dossier_number = $1 AND at_ms >= $2 AND success = 0";
        let on_number: i64 = count(ON_NUMBER, Key::Number, window_since.max(budget_since))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let today_on_number: i64 = count(
            ON_NUMBER,
            Key::Number,
            (now - DAILY_BUDGET_MS).max(budget_since),
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if today_on_number >= limits.daily_max {
            sqlx::query(
                "UPDATE dossier_number_budgets SET locked_at = $2 WHERE dossier_number = $1",
            )
            .bind(dossier_number)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Reservation::NumberLocked { newly: true });
        }
        if mine >= limits.max || on_number >= limits.max {
            tx.commit().await?;
            return Ok(Reservation::LockedOut);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO dossier_attempts (account_id, dossier_number, at_ms, success) \
             VALUES ($1, $2, $3, 0) RETURNING id",
        )
        .bind(account_id)
        .bind(dossier_number)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(Reservation::Granted(AttemptSlot(id)))
    }

    /// Turns a reserved attempt into a success (it stays a failure otherwise).
    pub async fn dossier_attempt_succeeded(&self, slot: AttemptSlot) -> Result<(), DbError> {
        sqlx::query("UPDATE dossier_attempts SET success = 1 WHERE id = $1")
            .bind(slot.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Is this dossier number locked (its daily failure budget ran out)?
    pub async fn dossier_number_locked(&self, dossier_number: &str) -> Result<bool, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM dossier_number_budgets WHERE dossier_number = $1 AND locked_at IS NOT NULL",
        )
        .bind(dossier_number)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Clears the lock of a dossier number (an administrator's decision):
    /// the failures so far no longer count against it. False when the
    /// number was not locked. The failures that stop counting are those
    /// recorded so far (by their own times, whatever the clock of the
    /// process that unlocks).
    pub async fn unlock_dossier_number(&self, dossier_number: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE dossier_number_budgets SET locked_at = NULL, budget_since = \
                 COALESCE((SELECT MAX(at_ms) FROM dossier_attempts WHERE dossier_number = $1), 0) + 1 \
             WHERE dossier_number = $1 AND locked_at IS NOT NULL",
        )
        .bind(dossier_number)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The window over which the daily failure budget of a dossier number counts.
pub const DAILY_BUDGET_MS: i64 = 24 * 3_600_000;

#[derive(Clone, Copy)]
enum Key {
    Account,
    Number,
}

/// The limits an attempt is counted against.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Failures allowed per account, and per number, within `window_ms`.
    pub max: i64,
    pub window_ms: i64,
    /// Failures allowed per number within 24 hours before it is locked.
    pub daily_max: i64,
}

/// A reserved dossier-number attempt (a row that counts as a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptSlot(i64);

/// The answer of [`PortalDb::reserve_dossier_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Evaluate the attempt.
    Granted(AttemptSlot),
    /// Too many recent failures by this account or on this number.
    LockedOut,
    /// The number's daily budget ran out: locked until an administrator
    /// unlocks it (`newly`: by this attempt).
    NumberLocked { newly: bool },
}
