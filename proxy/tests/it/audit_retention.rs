//! Retention (issue 13, item 5) on SQLite and on a real PostgreSQL: `audit
//! purge` removes whole chain segments older than the limit under signed
//! checkpoints, `audit verify` still passes on what remains and still finds
//! tampering (of what remains, of a checkpoint, a purge without one); the
//! runtime role cannot purge; `espace-ps purge` removes exactly the
//! documented rows about people and nothing newer.

use std::process::Command;

use espace_ps::audit::purge::{self, Purged};
use espace_ps::audit::{self, AuditEvent, ChainHead, Event, Outcome};
use espace_ps::retention::{self, Removed, Rules};
use espace_ps::state::PortalDb;
use sqlx::Row;

use super::audit_trail::{drop_protections, elise, exec, fresh_url, ip, scalar_i64};
use super::harness::*;
use super::stores::fresh_pg_database;

on_both_backends!(
    purge_removes_only_old_segments_and_verify_passes,
    verify_finds_tampering_after_a_purge,
    purge_command_follows_retention_days,
    people_purge_removes_exactly_what_is_documented,
);

const KEY: &[u8] = b"checkpoint-key-of-the-tests-0123456789abcdef";

async fn write(db: &PortalDb, n: usize, tag: &str) {
    for i in 0..n {
        db.audit(
            &AuditEvent::new(Event::ReportView, Outcome::Success)
                .by(&elise())
                .client(ip())
                .on(format!("CR-{tag}-{i}")),
        )
        .await
        .unwrap();
    }
}

/// Waits until the clock is past `ms` (rows written next are newer).
async fn clock_past(ms: i64) {
    for _ in 0..1000 {
        if espace_ps::state::now_ms() > ms {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("the clock did not move");
}

/// 8 old rows, then 8 newer ones, in the 4 chains of one process; the
/// limit between them, and the heads that left the database after each
/// batch.
struct Trail {
    db: PortalDb,
    limit: i64,
    old_heads: Vec<ChainHead>,
    new_heads: Vec<ChainHead>,
    _dir: tempfile::TempDir,
}

async fn two_batches(backend: super::harness::Backend) -> Trail {
    let (url, dir) = fresh_url(backend).await;
    let db = PortalDb::connect(&url, 2).await.unwrap();
    write(&db, 8, "old").await;
    let old_heads = db.audit_heads();
    let limit = scalar_i64(&db, "SELECT MAX(at_ms) FROM audit_events").await + 1;
    clock_past(limit).await;
    write(&db, 8, "new").await;
    let new_heads = db.audit_heads();
    assert_eq!(old_heads.len(), 4, "{old_heads:?}");
    Trail {
        db,
        limit,
        old_heads,
        new_heads,
        _dir: dir,
    }
}

/// Every row as stored (id and every column the export reads).
async fn snapshot(db: &PortalDb) -> (Vec<String>, i64) {
    let rows = db.audit_tail(1000).await.unwrap();
    (
        rows.iter().map(|r| format!("{r:?}")).collect(),
        scalar_i64(db, "SELECT COUNT(*) FROM audit_checkpoints").await,
    )
}

async fn purge_removes_only_old_segments_and_verify_passes(backend: Backend) {
    let t = two_batches(backend).await;
    let before = snapshot(&t.db).await;

    // A dry run says what would go and changes nothing.
    let dry = purge::purge(&t.db, &[], t.limit, KEY, true).await.unwrap();
    assert_eq!((dry.rows(), dry.segments.len(), dry.dry_run), (8, 4, true));
    assert_eq!(snapshot(&t.db).await, before);

    let done: Purged = purge::purge(&t.db, &[], t.limit, KEY, false).await.unwrap();
    assert_eq!(done.segments, dry.segments);
    // Only the old rows went; every new one is still there, untouched.
    let left = t.db.audit_tail(1000).await.unwrap();
    assert_eq!(left.len(), 8);
    assert!(left.iter().all(|r| r.at_ms >= t.limit), "{left:?}");
    assert_eq!(
        before.0[..8],
        left.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>()[..]
    );
    assert_eq!(
        scalar_i64(&t.db, "SELECT COUNT(*) FROM audit_checkpoints").await,
        4
    );

    // What remains verifies, against the heads that left before and after.
    let mut heads = t.old_heads.clone();
    heads.extend(t.new_heads.clone());
    let v = audit::verify_signed(&t.db, &heads, Some(KEY))
        .await
        .unwrap();
    assert_eq!(v.broken, None, "{v:?}");
    assert_eq!((v.rows, v.checkpoints, v.chains), (8, 4, 4));
    // Without the key, or with another one, the checkpoints are not trusted.
    let b = audit::verify(&t.db, &[]).await.unwrap().broken.unwrap();
    assert!(b.reason.contains("without the checkpoint key"), "{b}");
    let b = audit::verify_signed(&t.db, &[], Some(b"another key of thirty-two bytes!!"))
        .await
        .unwrap()
        .broken
        .unwrap();
    assert!(b.reason.contains("signature"), "{b}");

    // Writing goes on after the purge; a second purge finds nothing to do.
    write(&t.db, 4, "after").await;
    let again = purge::purge(&t.db, &[], t.limit, KEY, false).await.unwrap();
    assert_eq!(again.rows(), 0);
    let v = audit::verify_signed(&t.db, &heads, Some(KEY))
        .await
        .unwrap();
    assert_eq!((v.broken, v.rows), (None, 12));

    // The database itself refuses to delete a row under no checkpoint, and
    // to alter a checkpoint (the owner role's mistakes and bugs).
    let id = scalar_i64(&t.db, "SELECT MAX(id) FROM audit_events").await;
    let err = sqlx::query("DELETE FROM audit_events WHERE id = $1")
        .bind(id)
        .execute(t.db.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("UPDATE audit_checkpoints SET seq = seq + 1")
        .execute(t.db.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// The first row of the chain of the row `id`'s chain that is left.
async fn first_left_of_some_chain(db: &PortalDb) -> (String, i64) {
    let r = sqlx::query("SELECT chain, MIN(seq) FROM audit_events GROUP BY chain ORDER BY chain")
        .fetch_one(db.pool())
        .await
        .unwrap();
    (r.try_get(0).unwrap(), r.try_get(1).unwrap())
}

async fn broken(db: &PortalDb, heads: &[ChainHead]) -> audit::Broken {
    let v = audit::verify_signed(db, heads, Some(KEY)).await.unwrap();
    v.broken
        .clone()
        .unwrap_or_else(|| panic!("tampering not found: {v:?}"))
}

/// Someone with full SQL rights (protections dropped) after a purge.
async fn verify_finds_tampering_after_a_purge(backend: Backend) {
    let unprotect = |db: PortalDb| async move {
        drop_protections(&db).await;
        let s: &[&str] = match db.backend() {
            espace_ps::state::Backend::Sqlite => &[
                "DROP TRIGGER audit_checkpoints_no_update",
                "DROP TRIGGER audit_checkpoints_no_delete",
            ],
            espace_ps::state::Backend::Postgres => {
                &["ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"]
            }
        };
        for sql in s {
            exec(&db, sql).await;
        }
        db
    };

    // A checkpoint altered: it no longer matches its signature.
    let t = two_batches(backend).await;
    purge::purge(&t.db, &[], t.limit, KEY, false).await.unwrap();
    let db = unprotect(t.db).await;
    let (chain, _) = first_left_of_some_chain(&db).await;
    sqlx::query("UPDATE audit_checkpoints SET seq = seq + 1 WHERE chain = $1")
        .bind(&chain)
        .execute(db.pool())
        .await
        .unwrap();
    let b = broken(&db, &[]).await;
    assert_eq!(b.chain.as_deref(), Some(chain.as_str()), "{b}");
    assert!(b.reason.contains("signature"), "{b}");

    // A checkpoint deleted: its chain now starts after a gap.
    let t = two_batches(backend).await;
    purge::purge(&t.db, &[], t.limit, KEY, false).await.unwrap();
    let db = unprotect(t.db).await;
    let (chain, first) = first_left_of_some_chain(&db).await;
    sqlx::query("DELETE FROM audit_checkpoints WHERE chain = $1")
        .bind(&chain)
        .execute(db.pool())
        .await
        .unwrap();
    let b = broken(&db, &[]).await;
    assert_eq!(
        (b.chain.as_deref(), b.seq),
        (Some(chain.as_str()), Some(first)),
        "{b}"
    );
    assert!(b.reason.contains("deleted"), "{b}");

    // A remaining row altered.
    let t = two_batches(backend).await;
    purge::purge(&t.db, &[], t.limit, KEY, false).await.unwrap();
    let db = unprotect(t.db).await;
    let id = scalar_i64(&db, "SELECT MAX(id) FROM audit_events").await;
    exec(
        &db,
        &format!("UPDATE audit_events SET actor = '899999999999' WHERE id = {id}"),
    )
    .await;
    let b = broken(&db, &[]).await;
    assert_eq!(b.id, Some(id), "{b}");
    assert!(b.reason.contains("altered"), "{b}");

    // A purge without a checkpoint (the head of a chain deleted), then a
    // forged checkpoint signed with another key.
    let t = two_batches(backend).await;
    let db = unprotect(t.db).await;
    let (chain, _) = first_left_of_some_chain(&db).await;
    let sql = format!("DELETE FROM audit_events WHERE chain = '{chain}' AND seq <= 2");
    exec(&db, &sql).await;
    let b = broken(&db, &[]).await;
    assert_eq!(
        (b.chain.as_deref(), b.seq),
        (Some(chain.as_str()), Some(3)),
        "{b}"
    );
    assert!(b.reason.contains("deleted"), "{b}");
    // The forger knows the purged row's hash (the next row's previous hash)
    // but not the key.
    let hash: String =
        sqlx::query("SELECT prev_hash FROM audit_events WHERE chain = $1 AND seq = 3")
            .bind(&chain)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    sqlx::query(
        "INSERT INTO audit_checkpoints (chain, seq, row_hash, before_ms, purged_rows, purged_at_ms, signature) \
         VALUES ($1, 2, $2, $3, 2, $3, $4)",
    )
    .bind(&chain)
    .bind(&hash)
    .bind(t.limit)
    .bind("0".repeat(64))
    .execute(db.pool())
    .await
    .unwrap();
    let b = broken(&db, &[]).await;
    assert!(b.reason.contains("signature"), "{b}");

    // A purge refuses to sign over a broken trail.
    let err = purge::purge(&db, &[], t.limit, KEY, false)
        .await
        .unwrap_err();
    assert!(matches!(err, purge::PurgeError::Broken(_)), "{err}");
    drop(t.old_heads);
    drop(t.new_heads);

    // A row rewritten and its chain rehashed: the chain alone looks intact,
    // the heads that left the database do not; a purge given them refuses
    // to sign a checkpoint over the forgery.
    let t = two_batches(backend).await;
    let heads = t.new_heads.clone();
    let db = unprotect(t.db).await;
    let (chain, _) = first_left_of_some_chain(&db).await;
    exec(
        &db,
        &format!(
            "UPDATE audit_events SET actor = '899999999999' WHERE chain = '{chain}' AND seq = 1"
        ),
    )
    .await;
    audit::forge_rehash(&db, &chain).await.unwrap();
    assert_eq!(
        audit::verify_signed(&db, &[], Some(KEY))
            .await
            .unwrap()
            .broken,
        None
    );
    let err = purge::purge(&db, &heads, t.limit, KEY, false)
        .await
        .unwrap_err();
    assert!(matches!(err, purge::PurgeError::Broken(_)), "{err}");
    assert_eq!(
        scalar_i64(&db, "SELECT COUNT(*) FROM audit_checkpoints").await,
        0
    );
}

/// A configuration for the commands: the database, the retention, the
/// checkpoint key, and a clock moved `offset_days` ahead.
fn command_config(
    dir: &std::path::Path,
    url: &str,
    retention_days: Option<u32>,
    extra: &str,
    offset_days: i64,
) -> std::path::PathBuf {
    let key = dir.join("checkpoint.key");
    std::fs::write(&key, KEY).unwrap();
    let path = dir.join("espace-ps.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"{url}\"\nallow_audit_rewrite = true\n\n[audit]\ncheckpoint_key_file = \"{}\"\n{}\n{extra}\n[testing]\nclock_offset_secs = {}\n",
            key.display(),
            retention_days
                .map(|d| format!("retention_days = {d}\n"))
                .unwrap_or_default(),
            offset_days * 86_400
        ),
    )
    .unwrap();
    path
}

fn espace_ps(args: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("ESPACE_DATABASE_URL")
        .env_remove("ESPACE_AUDIT_CHECKPOINT_KEY")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `espace-ps audit purge` as shipped: nothing without `retention_days`;
/// with it, only rows older than the limit on the command's clock (moved
/// ahead, so that no test depends on today's date); `--dry-run` changes
/// nothing; `audit verify` passes afterwards with the key of the
/// configuration.
async fn purge_command_follows_retention_days(backend: Backend) {
    let (url, dir) = fresh_url(backend).await;
    let db = PortalDb::connect(&url, 2).await.unwrap();
    write(&db, 6, "x").await;
    let before = snapshot(&db).await;
    let run = |retention: Option<u32>, offset_days: i64, args: &[&str]| {
        let config = command_config(dir.path(), &url, retention, "", offset_days);
        espace_ps(args, &config)
    };
    let (code, out) = run(None, 10, &["audit", "purge"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("retention_days is not set"), "{out}");
    // Rows 2 days old, a limit of 3 days: nothing.
    let (code, out) = run(Some(3), 2, &["audit", "purge"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("removed 0 rows"), "{out}");
    // Rows 4 days old: a dry run first.
    let (code, out) = run(Some(3), 4, &["audit", "purge", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("would remove 6 rows"), "{out}");
    assert_eq!(snapshot(&db).await, before);
    let (code, out) = run(Some(3), 4, &["audit", "purge"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("removed 6 rows"), "{out}");
    assert_eq!(
        scalar_i64(&db, "SELECT COUNT(*) FROM audit_events").await,
        0
    );
    // The chains go on; verify checks them from their checkpoints.
    write(&db, 3, "y").await;
    let (code, out) = run(Some(3), 4, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("intact: 3 rows"), "{out}");
    assert!(out.contains("4 purge checkpoints checked"), "{out}");
    // Without the key, verify cannot vouch for the checkpoints: a usage error.
    let out = Command::new(BIN)
        .args(["audit", "verify", "--database-url", &url])
        .env_remove("ESPACE_AUDIT_CHECKPOINT_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("checkpoint key"), "{err}");
}

/// Rows about people, each just older or just newer than its limit.
async fn people_purge_removes_exactly_what_is_documented(backend: Backend) {
    let (url, dir) = fresh_url(backend).await;
    let db = PortalDb::connect(&url, 2).await.unwrap();
    let now = espace_ps::state::now_ms();
    let day = 86_400_000;
    // Accounts: unused for 100 days and named by no audit row (goes);
    // unused as long but named by the trail (stays); used 10 days ago.
    let mut ids = Vec::new();
    for (nid, last) in [
        ("810000000001", now - 100 * day),
        ("810000000002", now - 100 * day),
        ("810000000003", now - 10 * day),
    ] {
        let id: i64 = sqlx::query(
            "INSERT INTO accounts (national_id, rpps, given_name, family_name, last_login_method, \
             first_login_at, last_login_at, login_count) VALUES ($1, NULL, 'A', 'B', 'psc_card', $2, $2, 1) RETURNING id",
        )
        .bind(nid)
        .bind(last)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        ids.push(id);
    }
    exec(
        &db,
        &format!(
            "INSERT INTO audit_events (at_ms, actor, event, outcome) VALUES ({}, '810000000002', 'login', 'success')",
            now - 100 * day
        ),
    )
    .await;
    let (gone, kept, recent) = (ids[0], ids[1], ids[2]);
    let rows = [
        format!("INSERT INTO dossier_grants VALUES ({kept}, 'D-EXPIRED', {}, {})", now - 8 * day, now - day),
        format!("INSERT INTO dossier_grants VALUES ({kept}, 'D-AT-NOW', {}, {now})", now - 7 * day),
        format!("INSERT INTO dossier_grants VALUES ({kept}, 'D-LIVE', {}, {})", now - day, now + 6 * day),
        format!("INSERT INTO dossier_grants VALUES ({gone}, 'D-OF-GONE', {}, {})", now - day, now + 6 * day),
        format!("INSERT INTO seen_reports VALUES ({recent}, 'CR-OLD', {})", now - 30 * day - 1),
        format!("INSERT INTO seen_reports VALUES ({recent}, 'CR-NEW', {})", now - 30 * day + 60_000),
        format!("INSERT INTO seen_reports VALUES ({gone}, 'CR-OF-GONE', {})", now - day),
        format!("INSERT INTO dossier_attempts (account_id, dossier_number, at_ms, success) VALUES ({recent}, 'D-A', {}, 0)", now - 25 * 3_600_000),
        format!("INSERT INTO dossier_attempts (account_id, dossier_number, at_ms, success) VALUES ({recent}, 'D-B', {}, 0)", now - 23 * 3_600_000),
        // Sessions live 12 hours at most here: a revocation older than that
        // and an hour ends nothing any more.
        format!("INSERT INTO session_revocations (national_id, revoked_at_ms) VALUES ('810000000009', {})", now - 13 * 3_600_000 - 1),
        format!("INSERT INTO session_revocations (national_id, revoked_at_ms) VALUES ('810000000008', {})", now - 13 * 3_600_000 + 60_000),
    ];
    for sql in &rows {
        exec(&db, sql).await;
    }
    let list = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query(sql)
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let state = || async {
        (
            list("SELECT national_id FROM accounts ORDER BY national_id").await,
            list("SELECT dossier_number FROM dossier_grants ORDER BY dossier_number").await,
            list("SELECT report_id FROM seen_reports ORDER BY report_id").await,
            list("SELECT dossier_number FROM dossier_attempts ORDER BY dossier_number").await,
            list("SELECT national_id FROM session_revocations ORDER BY national_id").await,
        )
    };
    let before = state().await;
    let rules = Rules {
        now_ms: now,
        unseen_days: 30,
        lockout_minutes: 15,
        accounts_unused_days: Some(90),
        session_lifetime_ms: 12 * 3_600_000,
    };
    let dry = retention::purge(&db, rules, true).await.unwrap();
    let expected = Removed {
        expired_grants: 2,
        seen_marks: 1,
        attempts: 1,
        accounts: 1,
        revocations: 1,
    };
    assert_eq!(dry, expected);
    assert_eq!(state().await, before, "a dry run changed something");
    // Without accounts_unused_days, accounts are kept.
    let no_accounts = Rules {
        accounts_unused_days: None,
        ..rules
    };
    let r = retention::purge(&db, no_accounts, true).await.unwrap();
    assert_eq!(r.accounts, 0);
    assert_eq!(retention::purge(&db, rules, false).await.unwrap(), expected);
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        state().await,
        (
            s(&["810000000002", "810000000003"]),
            s(&["D-LIVE"]),
            s(&["CR-NEW"]),
            s(&["D-B"]),
            s(&["810000000008"]),
        )
    );
    // The shipped command, its clock 40 days ahead: the seen mark, the
    // attempt and the revocation left are old by then; the live grant has
    // expired; the recent account (50 days unused) stays under a 90-day
    // limit.
    let config = command_config(
        dir.path(),
        &url,
        None,
        "[portal]\naccounts_unused_days = 90\nunseen_days = 30\n",
        40,
    );
    let (code, out) = espace_ps(&["purge", "--dry-run"], &config);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("would remove: 1 expired dossier grants, 1 seen marks older than 30 days, 1 dossier-number attempts, 1 session revocations, 0 accounts"), "{out}");
    let (code, out) = espace_ps(&["purge"], &config);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        state().await,
        (
            s(&["810000000002", "810000000003"]),
            s(&[]),
            s(&[]),
            s(&[]),
            s(&[])
        )
    );
}

/// On PostgreSQL the runtime role (INSERT and SELECT on the trail) cannot
/// purge: the command fails and every row is still there.
#[tokio::test]
async fn the_runtime_role_cannot_purge() {
    let admin_url = fresh_pg_database().await;
    let (base, dbname) = admin_url.rsplit_once('/').unwrap();
    let tag = dbname.trim_start_matches("espace_t_");
    let app = format!("app_{tag}");
    let admin = PortalDb::connect(&admin_url, 1).await.unwrap();
    for sql in [
        format!("CREATE ROLE {app} LOGIN PASSWORD 'a'"),
        format!("GRANT CONNECT ON DATABASE {dbname} TO {app}"),
        format!("GRANT USAGE ON SCHEMA public TO {app}"),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, seen_reports, dossier_grants, \
             dossier_attempts, dossier_attempt_accounts, dossier_number_budgets, \
             session_revocations TO {app}"
        ),
        format!("GRANT SELECT, INSERT ON audit_events TO {app}"),
        format!("GRANT SELECT ON _sqlx_migrations TO {app}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app}"),
    ] {
        exec(&admin, &sql).await;
    }
    let host = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let host = host.trim_start_matches("postgres://");
    let app_url = format!("postgres://{app}:a@{host}/{dbname}");
    let app_db = PortalDb::open(&app_url, 1, false).await.unwrap();
    write(&app_db, 4, "app").await;
    let dir = tempfile::tempdir().unwrap();
    let config = command_config(dir.path(), &app_url, Some(1), "", 5);
    for args in [
        &["audit", "purge"][..],
        &["audit", "purge", "--dry-run"][..],
    ] {
        let (code, out) = espace_ps(args, &config);
        assert_eq!(code, Some(3), "{args:?}: {out}");
        assert!(
            out.contains("permission denied for table audit_checkpoints"),
            "{args:?}: {out}"
        );
    }
    // Nor by hand, checkpoint or not.
    for sql in [
        "DELETE FROM audit_events",
        "INSERT INTO audit_checkpoints (chain, seq, row_hash, before_ms, purged_rows, purged_at_ms, signature) VALUES ('x', 1, 'h', 0, 0, 0, 's')",
    ] {
        let err = sqlx::query(sql).execute(app_db.pool()).await.unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
    }
    assert_eq!(
        scalar_i64(&admin, "SELECT COUNT(*) FROM audit_events").await,
        4
    );
    // The owner purges the same rows.
    let owner_config = command_config(dir.path(), &admin_url, Some(1), "", 5);
    let (code, out) = espace_ps(&["audit", "purge"], &owner_config);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("removed 4 rows"), "{out}");
}
