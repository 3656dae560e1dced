//! `espace-ps purge`: the retention of what espace-ps keeps about people
//! besides the audit trail (`audit purge` handles that one), as the
//! "Audit trail" chapter of docs/operations.md states it:
//!
//! - dossier-number grants once expired (they open nothing any more);
//! - "seen" marks older than the home page's window (`portal.unseen_days`):
//!   a report is seen after its date, so such a mark is on a report the
//!   home page no longer lists;
//! - dossier-number attempts older than both the daily budget (24 hours)
//!   and the lockout window (they no longer count);
//! - session revocations older than the absolute session lifetime and an
//!   hour (no session they could end is still alive);
//! - accounts unused for `portal.accounts_unused_days` (not set: kept) and
//!   that no remaining audit row names (the export needs the name and RPPS
//!   of every professional it lists), with their grants, seen marks and
//!   attempts.
//!
//! Sessions (and the recent patients they hold) end by themselves in the
//! session store; the browser's copy of the recent patients is cleared by
//! the portal's script (docs/operations.md).

use sqlx::Row;

use crate::config::Config;
use crate::state::{DbError, PortalDb, DAILY_BUDGET_MS};

const DAY_MS: i64 = 86_400_000;

/// The limits of one purge, from the configuration, at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub now_ms: i64,
    pub unseen_days: u32,
    pub lockout_minutes: u32,
    pub accounts_unused_days: Option<u32>,
    /// `sessions.absolute_timeout`, in milliseconds.
    pub session_lifetime_ms: i64,
}

impl Rules {
    pub fn of(config: &Config, now_ms: i64) -> Rules {
        Rules {
            now_ms,
            unseen_days: config.portal.unseen_days,
            lockout_minutes: config.portal.dossier_lockout_minutes,
            accounts_unused_days: config.portal.accounts_unused_days,
            session_lifetime_ms: config.sessions.absolute_timeout.as_millis() as i64,
        }
    }
}

/// How many rows a purge removed (or, dry, would remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Removed {
    pub expired_grants: u64,
    pub seen_marks: u64,
    pub attempts: u64,
    pub accounts: u64,
    pub revocations: u64,
}

/// Applies `rules` to the portal database; with `dry_run`, counts only.
pub async fn purge(db: &PortalDb, rules: Rules, dry_run: bool) -> Result<Removed, DbError> {
    let seen_before = rules.now_ms - i64::from(rules.unseen_days) * DAY_MS;
    let attempts_before =
        rules.now_ms - DAILY_BUDGET_MS.max(i64::from(rules.lockout_minutes) * 60_000);
    let revocations_before = rules.now_ms - rules.session_lifetime_ms - 3_600_000;
    let mut tx = db.pool().begin().await?;
    let mut out = Removed::default();
    if let Some(days) = rules.accounts_unused_days {
        let unused_before = rules.now_ms - i64::from(days) * DAY_MS;
        let ids: Vec<i64> = sqlx::query(
            "SELECT id FROM accounts WHERE last_login_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM audit_events a WHERE a.actor = accounts.national_id)",
        )
        .bind(unused_before)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
        out.accounts = ids.len() as u64;
        for id in ids {
            for sql in [
                "DELETE FROM seen_reports WHERE account_id = $1",
                "DELETE FROM dossier_grants WHERE account_id = $1",
                "DELETE FROM dossier_attempts WHERE account_id = $1",
                "DELETE FROM dossier_attempt_accounts WHERE account_id = $1",
                "DELETE FROM accounts WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
    }
    for (sql, limit, count) in [
        (
            "dossier_grants WHERE expires_at <= $1",
            rules.now_ms,
            &mut out.expired_grants,
        ),
        (
            "seen_reports WHERE seen_at < $1",
            seen_before,
            &mut out.seen_marks,
        ),
        (
            "dossier_attempts WHERE at_ms < $1",
            attempts_before,
            &mut out.attempts,
        ),
        (
            "session_revocations WHERE revoked_at_ms < $1",
            revocations_before,
            &mut out.revocations,
        ),
    ] {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {sql}"))
            .bind(limit)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        *count = n as u64;
        sqlx::query(&format!("DELETE FROM {sql}"))
            .bind(limit)
            .execute(&mut *tx)
            .await?;
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(out)
}

/// `espace-ps purge --config FILE [--dry-run]`: 0 done, 2 a configuration
/// error, 3 the database failed.
pub fn run(config: &std::path::Path, dry_run: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    crate::run::init_logging(crate::config::LogFormat::Text, "warn");
    let c = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid configuration\n{e}", config.display());
            return ExitCode::from(2);
        }
    };
    if !crate::run::apply_test_clock(&c) {
        return ExitCode::from(2);
    }
    let rules = Rules::of(&c, crate::state::now_ms());
    let work = async {
        let db = PortalDb::connect(&c.database.url, 1).await?;
        purge(&db, rules, dry_run).await
    };
    match crate::run::startup_runtime().block_on(work) {
        Ok(r) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
                "{verb}: {} expired dossier grants, {} seen marks older than {} days, {} dossier-number attempts, {} session revocations, {} accounts{}",
                r.expired_grants,
                r.seen_marks,
                rules.unseen_days,
                r.attempts,
                r.revocations,
                r.accounts,
                match rules.accounts_unused_days {
                    Some(d) => format!(" unused for {d} days"),
                    None => " (portal.accounts_unused_days not set: accounts kept)".into(),
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::run::print_error_chain(&e);
            ExitCode::from(3)
        }
    }
}
