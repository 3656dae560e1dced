//! Issue 9 §5 and §7: what happens when a session ends without a logout
//! (timeouts, revocation), and `espace-ps sessions revoke` with the
//! policies' `revoked` group, on two instances sharing Redis.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";
const HERVE: &str = "899700234562";

/// Polls `f` until it gives a value or `timeout` passes.
async fn poll_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn redis_sessions(prefix: &str) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        peer("ESPACE_TEST_REDIS_URL")
    )
}

/// The next page load after an idle or absolute timeout: the login page,
/// and the browser is told to drop what the portal stored ("Mes dernières
/// recherches", caches) with `Clear-Site-Data`, and the dead cookie goes.
#[tokio::test]
async fn a_timed_out_session_clears_the_browser_storage_at_the_next_page_load() {
    // Idle and absolute timeouts end a session the same way (`load` finds
    // none; unit tests in session.rs cover both); idle is quicker to reach.
    let remaining_re = regex::Regex::new(r#"data-session-remaining-ms="(\d+)""#).unwrap();
    for (what, sessions) in [(
        "idle",
        "idle_timeout_secs = 2\nabsolute_timeout_secs = 3600\n",
    )] {
        let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
            sessions: Some(sessions.into()),
            ..Default::default()
        })
        .await;
        let b = Browser::new();
        let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
        assert_eq!(home.status, StatusCode::OK, "{what}");
        // While the session lives, pages do not clear anything, and say how
        // long it lives if idle (the script forgets the list after that,
        // even on the offline page).
        assert!(home.headers.get("clear-site-data").is_none(), "{what}");
        let remaining: i64 = remaining_re
            .captures(&home.body)
            .unwrap_or_else(|| panic!("{what}: no data-session-remaining-ms"))[1]
            .parse()
            .unwrap();
        assert!(remaining > 0 && remaining <= 2000, "{what}: {remaining}");

        let url = format!("{}/portail/recherche", proxy.base);
        let page = poll_for(
            Duration::from_secs(10),
            "the session to time out",
            || async {
                let page = b.get(&url).await;
                (page.status == StatusCode::SEE_OTHER).then_some(page)
            },
        )
        .await;
        assert!(
            page.location().unwrap().contains("/auth/login"),
            "{what}: {:?}",
            page.location()
        );
        let clear = page
            .headers
            .get("clear-site-data")
            .unwrap_or_else(|| panic!("{what}: no Clear-Site-Data on the page after the timeout"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(clear.contains("\"storage\""), "{what}: {clear}");
        assert!(
            page.set_cookies()
                .iter()
                .any(|c| c.starts_with("espace-session=;") || c.contains("Max-Age=0")),
            "{what}: the dead session cookie is not cleared: {:?}",
            page.set_cookies()
        );
        // The API answers 401 with the same signal (the page's script also
        // clears its list on a 401).
        let b2 = Browser::new();
        let home = dev_idp_login(&b2, &proxy.base, ELISE, "/").await;
        assert_eq!(home.status, StatusCode::OK);
        let api = format!("{}/api/portail/patients?q=scanap", proxy.base);
        let api_page = poll_for(
            Duration::from_secs(10),
            "the API session to time out",
            || async {
                let p = b2
                    .request(
                        reqwest::Method::GET,
                        &api,
                        None,
                        &[("accept", "application/json")],
                    )
                    .await;
                (p.status == StatusCode::UNAUTHORIZED).then_some(p)
            },
        )
        .await;
        assert!(api_page
            .headers
            .get("clear-site-data")
            .is_some_and(|v| v.to_str().unwrap().contains("\"storage\"")));
        // A browser without a session cookie is not told to clear anything.
        let fresh = Browser::new().get(&format!("{}/", proxy.base)).await;
        assert_eq!(fresh.status, StatusCode::SEE_OTHER);
        assert!(fresh.headers.get("clear-site-data").is_none());
    }
}

fn revoke(config: &std::path::Path, national_id: &str) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args([
            "sessions",
            "revoke",
            "--national-id",
            national_id,
            "--config",
        ])
        .arg(config)
        .env_remove("ESPACE_PSC_CLIENT_SECRET")
        .env_remove("ESPACE_REDIS_URL")
        .env_remove("ESPACE_DATABASE_URL")
        .env_remove("ESPACE_RECORDS_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A browser holding the session cookie of `from` for `base`.
fn with_session_of(from: &Browser, from_base: &str, base: &str) -> Browser {
    let cookie = from.cookies_for(from_base)["espace-session"].clone();
    let b = Browser::new();
    b.jar.add_cookie_str(
        &format!("espace-session={cookie}"),
        &reqwest::Url::parse(base).unwrap(),
    );
    b
}

/// Adds (or removes) Élise in `[groups.revoked]` of a policy directory.
fn set_revoked_group(policies: &std::path::Path, with_elise: bool) {
    let path = policies.join("groups.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let without = "national_ids = [\"8-policy-test-only\"]";
    let with = format!("national_ids = [\"8-policy-test-only\", \"{ELISE}\"]");
    let text = if with_elise {
        assert!(text.contains(without), "no sentinel line in groups.toml");
        text.replace(without, &with)
    } else {
        text.replace(&with, without)
    };
    std::fs::write(&path, text).unwrap();
}

/// Issue 9 §7, on two instances sharing Redis (and the portal database):
/// `espace-ps sessions revoke` ends Élise's sessions on both (the next
/// request on either instance finds no session), leaves Hervé's alone, is
/// audited; while she is in the `revoked` group a new login is refused,
/// and once removed she can sign in again.
#[tokio::test]
async fn revoke_ends_the_sessions_on_both_instances_and_the_group_refuses_login() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&shipped_policies(), &policies);
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("portal.sqlite").display()
    );
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let (a, _idp, upstream) = proxy_with_dev_idp(ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        database_url: Some(database_url.clone()),
        policies_dir: Some(policies.clone()),
        ..Default::default()
    })
    .await;
    let b = Proxy::start(ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        upstream: Some(upstream),
        database_url: Some(database_url.clone()),
        policies_dir: Some(policies.clone()),
        ..Default::default()
    })
    .await;

    // Élise: one session used on A, another used on B; Hervé on B.
    let elise_a = Browser::new();
    assert_eq!(
        dev_idp_login(&elise_a, &a.base, ELISE, "/").await.status,
        StatusCode::OK
    );
    let login = Browser::new();
    dev_idp_login(&login, &a.base, ELISE, "/").await;
    let elise_b = with_session_of(&login, &a.base, &b.base);
    let login = Browser::new();
    dev_idp_login(&login, &a.base, HERVE, "/").await;
    let herve_b = with_session_of(&login, &a.base, &b.base);
    for (who, browser, base) in [
        ("Élise on A", &elise_a, &a.base),
        ("Élise on B", &elise_b, &b.base),
        ("Hervé on B", &herve_b, &b.base),
    ] {
        let home = browser.get(&format!("{base}/")).await;
        assert_eq!(home.status, StatusCode::OK, "{who}");
    }

    let (ok, out, err) = revoke(&a.dir.path().join("espace-ps.toml"), ELISE);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("2 live session(s) deleted from Redis"),
        "{out}"
    );

    // The next request of either session, on either instance, is refused:
    // no page, back to the login.
    for (who, browser, base) in [
        ("Élise on A", &elise_a, &a.base),
        ("Élise on B", &elise_b, &b.base),
    ] {
        let home = browser.get(&format!("{base}/")).await;
        assert_eq!(home.status, StatusCode::SEE_OTHER, "{who}: {}", home.body);
        assert!(home.location().unwrap().contains("/auth/login"), "{who}");
        // A viewer request too.
        let viewer = browser
            .request(
                reqwest::Method::GET,
                &format!("{base}/studies"),
                None,
                &[("accept", "application/json")],
            )
            .await;
        assert_eq!(viewer.status, StatusCode::UNAUTHORIZED, "{who}: viewer");
    }
    assert_eq!(
        herve_b.get(&format!("{}/", b.base)).await.status,
        StatusCode::OK,
        "Hervé's session must live on"
    );
    let audit = audit_trail(&database_url).await;
    assert!(
        audit.iter().any(|e| e.event == "sessions_revoke"
            && e.outcome == "success"
            && e.resource.as_deref() == Some(ELISE)
            && e.detail
                .as_deref()
                .is_some_and(|d| d.contains("2 live sessions"))),
        "{audit:?}"
    );

    // Revoking ends the sessions only: she may sign in again until the
    // administrator puts her in the `revoked` group; then the login is
    // refused (and audited), and given back once she is removed.
    set_revoked_group(&policies, true);
    let refused = poll_for(Duration::from_secs(15), "the policy reload", || async {
        let page = dev_idp_login(&Browser::new(), &a.base, ELISE, "/").await;
        (page.status == StatusCode::FORBIDDEN).then_some(page)
    })
    .await;
    assert!(refused.body.contains("Accès suspendu"), "{}", refused.body);
    assert!(
        !refused
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("espace-session=") && !c.contains("Max-Age=0")),
        "a session cookie was set: {:?}",
        refused.set_cookies()
    );
    let audit = audit_trail(&database_url).await;
    assert!(
        audit.iter().any(|e| e.actor.as_deref() == Some(ELISE)
            && e.outcome == "refused"
            && e.detail.as_deref() == Some("revoked")),
        "{audit:?}"
    );
    set_revoked_group(&policies, false);
    wait_until(Duration::from_secs(15), "the access given back", || async {
        dev_idp_login(&Browser::new(), &a.base, ELISE, "/")
            .await
            .status
            == StatusCode::OK
    })
    .await;
}

/// With the memory store, the command cannot reach the serving process:
/// the revocation recorded in the portal database ends the session at its
/// next load (each instance reads the list at most once a second).
#[tokio::test]
async fn revoke_reaches_an_instance_with_the_memory_store() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let elise = Browser::new();
    assert_eq!(
        dev_idp_login(&elise, &proxy.base, ELISE, "/").await.status,
        StatusCode::OK
    );
    let herve = Browser::new();
    dev_idp_login(&herve, &proxy.base, HERVE, "/").await;
    let (ok, out, err) = revoke(&proxy.dir.path().join("espace-ps.toml"), ELISE);
    assert!(ok, "{out}{err}");
    wait_until(
        espace_ps::revocation::REFRESH * 3,
        "the revocation to reach the instance",
        || async { elise.get(&format!("{}/", proxy.base)).await.status == StatusCode::SEE_OTHER },
    )
    .await;
    assert_eq!(
        herve.get(&format!("{}/", proxy.base)).await.status,
        StatusCode::OK
    );
    // Signing in again after the revocation works (she is not in the group).
    wait_until(Duration::from_secs(5), "a new login", || async {
        dev_idp_login(&Browser::new(), &proxy.base, ELISE, "/")
            .await
            .status
            == StatusCode::OK
    })
    .await;
    // A malformed national id is refused by the command.
    let (ok, _, err) = revoke(&proxy.dir.path().join("espace-ps.toml"), "ELISE");
    assert!(!ok);
    assert!(err.contains("--national-id"), "{err}");
}

/// Logging out needs the session store only: while the revocation list (in
/// the portal database) cannot be read, pages are refused (deny by
/// default), but "Déconnexion" still ends the session, so the next person
/// at a shared workstation does not find it alive once the database is back.
#[tokio::test]
async fn logout_ends_the_session_while_the_revocation_list_is_unreadable() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    let form = home.form_fields("/auth/logout");
    let db = proxy.db().await;
    let rename = |from: &str, to: &str| {
        let sql = format!("ALTER TABLE {from} RENAME TO {to}");
        let pool = db.pool().clone();
        async move { sqlx::query(&sql).execute(&pool).await.unwrap() }
    };
    // The revocation list becomes unreadable (as in a database outage).
    rename("session_revocations", "session_revocations_away").await;
    let home_url = format!("{}/", proxy.base);
    wait_until(
        Duration::from_secs(10),
        "pages refused while revocations are unreadable",
        || async { b.get(&home_url).await.status == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;
    let out = b
        .post_form(&format!("{}/auth/logout", proxy.base), &form, &proxy.base)
        .await;
    assert_ne!(
        out.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "logout refused: {}",
        out.body
    );
    // The database is back: the session is gone.
    rename("session_revocations_away", "session_revocations").await;
    let login_url = format!("{}/portail/recherche", proxy.base);
    wait_until(Duration::from_secs(10), "the database back", || async {
        b.get(&login_url).await.status != StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let after = b.get(&home_url).await;
    assert_ne!(
        after.status,
        StatusCode::OK,
        "the session survived the logout"
    );
    assert!(
        after.location().is_some_and(|l| l.contains("/auth/login?")),
        "{} {:?}",
        after.status,
        after.location()
    );
}
