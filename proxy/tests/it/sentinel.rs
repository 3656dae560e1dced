//! Redis high availability: sessions through Sentinel (one primary, one
//! replica, three Sentinels, Debian's `redis-server` and `redis-sentinel`).
//! The primary is killed: sessions created before the failover keep
//! working on both instances (every session write waited for the replica);
//! new logins are refused while no replica can confirm them (the cost of
//! `WAIT` with a single replica) and work again once the lost node is back
//! as a replica. And the login rate limit, counted in the shared store,
//! holds across instances.

use std::time::Duration;

use reqwest::StatusCode;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";
const NOEL: &str = "899700345673";

fn sentinel_sessions(set: &espace_ps_testenv::sentinel::SentinelSet, prefix: &str) -> String {
    let list: Vec<String> = set.sentinels().iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "store = \"redis\"\nredis_sentinels = [{}]\nredis_service = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        list.join(", "),
        espace_ps_testenv::sentinel::SERVICE
    )
}

/// A browser holding the session cookie `cookie` for `base`.
fn holding(cookie: &str, base: &str) -> Browser {
    let b = Browser::new();
    b.jar.add_cookie_str(
        &format!("espace-session={cookie}"),
        &reqwest::Url::parse(base).unwrap(),
    );
    b
}

#[tokio::test]
async fn sessions_survive_the_loss_of_the_redis_primary() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = espace_ps_testenv::sentinel::SentinelSet::start(dir.path()).unwrap();
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let (a, _idp, upstream) = proxy_with_dev_idp(ProxyOpts {
        sessions: Some(sentinel_sessions(&set, &prefix)),
        ..Default::default()
    })
    .await;
    let b_proxy = Proxy::start(ProxyOpts {
        sessions: Some(sentinel_sessions(&set, &prefix)),
        upstream: Some(upstream),
        ..Default::default()
    })
    .await;
    assert!(a.logs().contains("Redis sessions through Sentinel"));

    // A session created before the failover.
    let before = Browser::new();
    let home = dev_idp_login(&before, &a.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let cookie = before.cookies_for(&a.base)["espace-session"].clone();

    let old_primary = set.primary_port;
    set.kill_primary();
    wait_until(Duration::from_secs(30), "the Sentinels' failover", || {
        let now = set.current_primary();
        async move { now.is_some_and(|p| p != old_primary) }
    })
    .await;
    assert_eq!(set.current_primary(), Some(set.replica_port));

    // The session from before works on both instances (a refusal while the
    // instances find the new primary is a 503, never a lost session).
    for base in [&a.base, &b_proxy.base] {
        let b = holding(&cookie, base);
        let url = format!("{base}/");
        wait_until(
            Duration::from_secs(20),
            "the session after failover",
            || {
                let (b, url) = (&b, url.clone());
                async move {
                    let r = b.get(&url).await;
                    assert_ne!(r.status, StatusCode::SEE_OTHER, "session lost: {}", r.body);
                    r.status == StatusCode::OK
                }
            },
        )
        .await;
        let r = b.get(&url).await;
        assert!(r.body.contains("Élise MARTIN-DUPRÉ"));
    }

    // With its only replica gone, the new primary cannot have a write
    // confirmed by a replica (WAIT): a new login is refused (503), never
    // acknowledged on one copy only…
    let refused = Browser::new()
        .get(&format!("{}/auth/login?start=1", a.base))
        .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    // …until the lost node is back, as a replica of the new primary.
    set.restart_old_primary().unwrap();

    // A login after the failover, on A, works on B too.
    let after = Browser::new();
    let home = dev_idp_login(&after, &a.base, NOEL, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let cookie = after.cookies_for(&a.base)["espace-session"].clone();
    let r = holding(&cookie, &b_proxy.base)
        .get(&format!("{}/", b_proxy.base))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn the_login_rate_limit_holds_across_instances() {
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let opts = ProxyOpts {
        sessions: Some(format!(
            "store = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
            peer("ESPACE_TEST_REDIS_URL")
        )),
        login_per_minute: Some(4),
        ..Default::default()
    };
    // Two instances sharing the Redis (each with a dev provider of its own).
    let (a, _idp_a, _) = proxy_with_dev_idp(opts.clone()).await;
    let (b, _idp_b, _) = proxy_with_dev_idp(opts).await;
    let browser = Browser::new();
    let start = |base: &str| format!("{base}/auth/login?start=1");
    // Two login starts on each: the limit of 4 is reached between them…
    for base in [&a.base, &b.base, &a.base, &b.base] {
        assert_eq!(
            browser.get(&start(base)).await.status,
            StatusCode::SEE_OTHER
        );
    }
    // …so the fifth is refused on either instance, not allowed 4 more on each.
    for base in [&a.base, &b.base] {
        let r = browser.get(&start(base)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{base}");
        assert!(r.body.contains("Trop de tentatives"));
    }
}
