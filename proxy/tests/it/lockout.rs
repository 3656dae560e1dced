//! Dossier number + birth date against brute force (issue 9, section 2):
//! the lockout holds under concurrent submissions on two instances sharing
//! a PostgreSQL portal database; lookups are rate limited per account and
//! per address in the shared session store (memory, and Redis across two
//! instances); a dossier number's daily failure budget locks it for
//! everyone until `espace-ps dossiers unlock`.

use espace_ps_demo_data::{self as demo_data, showcase::*, DemoConfig};
use reqwest::StatusCode;
use sqlx::Row;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;
use super::stores::fresh_pg_database;

const NOEL: &str = NOEL_NATIONAL_ID;
const HERVE: &str = HERVE_NATIONAL_ID;
const INES: &str = INES_NATIONAL_ID;
const ELISE: &str = ELISE_NATIONAL_ID;

/// Limits high enough not to get in the way of a test about something else.
const NO_LOOKUP_LIMITS: &str = "dossier_submit_per_minute = 10000\n\
     dossier_submit_per_minute_per_address = 10000\n\
     record_views_per_minute = 10000\nrecord_views_per_minute_per_address = 10000\n";

const NUMBER_LOCKED: &str = "l&#x27;accès par ce numéro est bloqué";

/// Demo records in a SQLite file (on the tests' pinned day).
async fn sqlite_records(dir: &std::path::Path) -> String {
    let path = dir.join("records.sqlite");
    let url = format!("sqlite://{}", path.display());
    let mut c = DemoConfig::demo(test_today());
    c.patients = 200;
    demo_data::generate(&url, &c).await.unwrap();
    format!("{url}?mode=ro")
}

fn redis_sessions(prefix: &str) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        peer("ESPACE_TEST_REDIS_URL")
    )
}

/// A second instance sharing the first one's databases and store.
async fn second_instance(opts: &ProxyOpts, upstream: String, database_url: &str) -> Proxy {
    Proxy::start(ProxyOpts {
        upstream: Some(upstream),
        database_url: Some(database_url.to_owned()),
        ..opts.clone()
    })
    .await
}

/// Signs in on `proxy`; the browser and the CSRF token of the dossier form.
async fn signed_in(proxy: &Proxy, who: &str) -> (Browser, String) {
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, who, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let csrf = csrf_of(&b, &proxy.base).await;
    (b, csrf)
}

async fn csrf_of(b: &Browser, base: &str) -> String {
    b.get(&format!("{base}/portail/dossier"))
        .await
        .form_fields("/portail/dossier")
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1
}

/// The same session in another browser, on another instance.
fn session_on(b: &Browser, from: &str, to: &str) -> Browser {
    let cookie = b.cookies_for(from)["espace-session"].clone();
    let other = Browser::new();
    other.jar.add_cookie_str(
        &format!("espace-session={cookie}"),
        &reqwest::Url::parse(to).unwrap(),
    );
    other
}

async fn post_dossier(b: &Browser, base: &str, csrf: &str, numero: &str, naissance: &str) -> Page {
    let form = vec![
        ("csrf_token".to_owned(), csrf.to_owned()),
        ("numero".to_owned(), numero.to_owned()),
        ("naissance".to_owned(), naissance.to_owned()),
    ];
    b.post_form(&format!("{base}/portail/dossier"), &form, base)
        .await
}

/// The sum of a metric's samples whose line starts with `prefix`.
async fn metric_sum(proxies: &[&Proxy], prefix: &str) -> f64 {
    let mut sum = 0.0;
    for p in proxies {
        for line in p.metrics().await.lines() {
            if line.starts_with(prefix) {
                sum += line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap();
            }
        }
    }
    sum
}

// ================================================================== atomic lockout

/// 50 concurrent wrong submissions by three professionals, half on each of two
/// instances sharing a PostgreSQL portal database (pools of 10
/// connections): the records are asked at most `dossier_attempts_max`
/// times in all, and every other submission is refused as locked.
#[tokio::test]
async fn concurrent_wrong_attempts_on_two_instances_stop_at_the_limit() {
    let database_url = fresh_pg_database().await;
    concurrent_wrong_attempts(database_url).await;
}

/// The same with the portal database in one SQLite file shared by both.
#[tokio::test]
async fn concurrent_wrong_attempts_on_two_instances_stop_at_the_limit_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("portal.sqlite").display()
    );
    concurrent_wrong_attempts(database_url).await;
}

async fn concurrent_wrong_attempts(database_url: String) {
    const MAX: usize = 5;
    const SUBMISSIONS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let records = sqlite_records(dir.path()).await;
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let opts = ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        database_url: Some(database_url.clone()),
        database_max_connections: Some(10),
        records_url: Some(records),
        portal: Some(format!(
            "dossier_attempts_max = {MAX}\ndossier_lockout_minutes = 15\ndossier_daily_failures_max = 1000\n"
        )),
        rate_limit: Some(NO_LOOKUP_LIMITS.into()),
        ..Default::default()
    };
    let (a, _idp, upstream) = proxy_with_dev_idp(opts.clone()).await;
    let b = second_instance(&opts, upstream, &database_url).await;
    // Three professionals, each well under their own limit (about 17
    // submissions each against 5 allowed per account): what holds them is
    // the number's own count, which one account's lock alone would not.
    let mut who = Vec::new();
    for national_id in [NOEL, HERVE, INES] {
        let (on_a, csrf) = signed_in(&a, national_id).await;
        let on_b = session_on(&on_a, &a.base, &b.base);
        who.push((on_a, on_b, csrf));
    }

    let mut tasks = Vec::new();
    for i in 0..SUBMISSIONS {
        let (on_a, on_b, csrf) = &who[i % who.len()];
        let (browser, base) = if (i / who.len()) % 2 == 0 {
            (on_a, a.base.clone())
        } else {
            (on_b, b.base.clone())
        };
        let client = browser.client.clone();
        let csrf = csrf.clone();
        tasks.push(tokio::spawn(async move {
            // Wrong birth dates, all different.
            let form = [
                ("csrf_token", csrf),
                ("numero", SCANAP_DOSSIER_FEMUR.to_owned()),
                ("naissance", format!("{:02}/01/1960", i % 28 + 1)),
            ];
            let r = client
                .post(format!("{base}/portail/dossier"))
                .header("origin", &base)
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }));
    }
    let mut wrong = 0;
    let mut locked = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::UNPROCESSABLE_ENTITY => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(body.contains("Trop de tentatives"), "{body}");
                locked += 1
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let evaluated = metric_sum(&[&a, &b], "espace_dossier_number_checks_total").await;
    assert!(
        evaluated <= MAX as f64,
        "{evaluated} pairs evaluated against the records for a limit of {MAX}"
    );
    assert_eq!(evaluated, wrong as f64);
    assert_eq!(wrong, MAX, "the first {MAX} are evaluated");
    assert_eq!(locked, SUBMISSIONS - MAX);
    assert_eq!(
        a.count("SELECT COUNT(*) FROM dossier_attempts").await,
        MAX as i64
    );
    // And the right date is refused too now.
    let (_, on_b, csrf) = &who[0];
    let r = post_dossier(on_b, &b.base, csrf, SCANAP_DOSSIER_FEMUR, "13/08/1961").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
}

// ================================================================== daily budget

/// Ten failures on one number by three professionals within the lockout
/// window limits; the eleventh attempt locks that number for everyone, even
/// with the right birth date, with the same words for a number that does
/// not exist; `espace-ps dossiers unlock` restores it.
#[tokio::test]
async fn daily_budget_locks_a_number_until_an_administrator_unlocks_it() {
    let dir = tempfile::tempdir().unwrap();
    let records = sqlite_records(dir.path()).await;
    let (p, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        records_url: Some(records),
        portal: Some(
            "dossier_attempts_max = 20\ndossier_lockout_minutes = 15\ndossier_daily_failures_max = 10\n"
                .into(),
        ),
        rate_limit: Some(NO_LOOKUP_LIMITS.into()),
        ..Default::default()
    })
    .await;
    let base = p.base.clone();
    let (noel, csrf_n) = signed_in(&p, NOEL).await;
    let (herve, csrf_h) = signed_in(&p, HERVE).await;
    let (ines, csrf_i) = signed_in(&p, INES).await;
    let who = [(&noel, &csrf_n), (&herve, &csrf_h), (&ines, &csrf_i)];
    const UNKNOWN: &str = "20189999999";

    let mut messages = Vec::new();
    for number in [SCANAP_DOSSIER_FEMUR, UNKNOWN] {
        for i in 0..10 {
            let (b, csrf) = who[i % 3];
            let r = post_dossier(b, &base, csrf, number, "01/01/1961").await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{i}: {}",
                r.body
            );
        }
        // The eleventh attempt, by yet another professional: locked.
        let (elise, csrf_e) = signed_in(&p, ELISE).await;
        let r = post_dossier(&elise, &base, &csrf_e, number, "02/01/1961").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(r.body.contains(NUMBER_LOCKED), "{}", r.body);
        messages.push(error_message(&r.body));
    }
    // The same words whether the number exists or not.
    assert_eq!(messages[0], messages[1]);
    assert!(!messages[0].contains("SCANAP") && !messages[0].contains("1961"));

    // The right birth date is refused now, for anyone.
    let r = post_dossier(&noel, &base, &csrf_n, SCANAP_DOSSIER_FEMUR, "13/08/1961").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains(NUMBER_LOCKED));
    assert_eq!(p.count("SELECT COUNT(*) FROM dossier_grants").await, 0);
    assert_eq!(
        metric_sum(&[&p], "espace_dossier_numbers_locked_total ").await,
        2.0
    );
    let db = p.db().await;
    let locks: Vec<String> = sqlx::query(
        "SELECT resource FROM audit_events WHERE event = 'dossier_number_locked' ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get(0).unwrap())
    .collect();
    assert_eq!(locks, vec![SCANAP_DOSSIER_FEMUR, UNKNOWN]);

    // The administrator unlocks it.
    let config = p.dir.path().join("espace-ps.toml");
    let unlock = |number: &str| {
        std::process::Command::new(BIN)
            .args(["dossiers", "unlock", number, "--config"])
            .arg(&config)
            .env_remove("ESPACE_DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = unlock(SCANAP_DOSSIER_FEMUR);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("unlocked"));
    // Twice: nothing to unlock, said so.
    let again = unlock(SCANAP_DOSSIER_FEMUR);
    assert_eq!(again.status.code(), Some(1));
    let audit: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_events WHERE event = 'dossier_number_unlocked' AND resource = $1",
    )
    .bind(SCANAP_DOSSIER_FEMUR)
    .fetch_one(db.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(audit, 1);

    let r = post_dossier(&noel, &base, &csrf_n, SCANAP_DOSSIER_FEMUR, "13/08/1961").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The other number stays locked.
    let r = post_dossier(&herve, &base, &csrf_h, UNKNOWN, "13/08/1961").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
}

/// The error paragraph of the dossier form.
fn error_message(body: &str) -> String {
    let re = regex::Regex::new(r#"(?s)id="erreur-dossier">(.*?)</p>"#).unwrap();
    re.captures(body).expect("an error message")[1].to_owned()
}

// ================================================================== rate limits

const SMALL_LIMITS: &str = "dossier_submit_per_minute = 2\n\
     dossier_submit_per_minute_per_address = 1000\n\
     record_views_per_minute = 3\nrecord_views_per_minute_per_address = 5\n";

/// Per account, then per address, on one instance with sessions in memory.
#[tokio::test]
async fn lookups_are_rate_limited_per_account_and_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let records = sqlite_records(dir.path()).await;
    let (p, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        records_url: Some(records),
        rate_limit: Some(SMALL_LIMITS.into()),
        ..Default::default()
    })
    .await;
    let base = p.base.clone();
    let (noel, csrf) = signed_in(&p, NOEL).await;

    // Three views (existing or not) by Noël, then 429 on either page.
    for path in [
        format!("/portail/dossiers/{SCANAP_DOSSIER_FEMUR}"),
        "/portail/dossiers/20189999999".to_owned(),
        format!("/portail/patients/{SCANAP_PATIENT_ID}"),
    ] {
        let r = noel.get(&format!("{base}{path}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    for path in [
        format!("/portail/patients/{SCANAP_PATIENT_ID}"),
        "/portail/dossiers/20189999999".to_owned(),
        // Reports and studies by id are lookups too (they answer whether
        // the id exists).
        "/portail/comptes-rendus/CR-DOES-NOT-EXIST".to_owned(),
        "/portail/images/1.2.250.1.999.1".to_owned(),
    ] {
        let r = noel.get(&format!("{base}{path}")).await;
        assert_too_many(&r);
    }

    // Two submissions, then 429 without asking the records.
    for _ in 0..2 {
        let r = post_dossier(&noel, &base, &csrf, SCANAP_DOSSIER_FEMUR, "01/01/1961").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r = post_dossier(&noel, &base, &csrf, SCANAP_DOSSIER_FEMUR, "13/08/1961").await;
    assert_too_many(&r);
    assert_eq!(
        metric_sum(&[&p], "espace_dossier_number_checks_total").await,
        2.0
    );
    assert_eq!(p.count("SELECT COUNT(*) FROM dossier_attempts").await, 2);
    // Nothing else changed: the home page still answers.
    assert_eq!(noel.get(&format!("{base}/")).await.status, StatusCode::OK);

    // Élise, from the same address: her own three views would pass, but the
    // address has had three counted views and allows five.
    let (elise, _) = signed_in(&p, ELISE).await;
    for _ in 0..2 {
        let r = elise
            .get(&format!("{base}/portail/dossiers/{SCANAP_DOSSIER_EPAULE}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = elise
        .get(&format!("{base}/portail/dossiers/{SCANAP_DOSSIER_EPAULE}"))
        .await;
    assert_too_many(&r);

    assert!(
        metric_sum(
            &[&p],
            "espace_rate_limited_total{endpoint=\"record_view_account\"}"
        )
        .await
            >= 2.0
    );
    assert_eq!(
        metric_sum(
            &[&p],
            "espace_rate_limited_total{endpoint=\"record_view_address\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric_sum(
            &[&p],
            "espace_rate_limited_total{endpoint=\"dossier_submit_account\"}"
        )
        .await,
        1.0
    );
}

fn assert_too_many(r: &Page) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Trop de demandes"), "{}", r.body);
    assert!(!r.body.contains("SCANAP"));
}

/// The limits hold across two instances sharing Redis.
#[tokio::test]
async fn lookup_limits_hold_across_instances_sharing_redis() {
    let dir = tempfile::tempdir().unwrap();
    let records = sqlite_records(dir.path()).await;
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let opts = ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        records_url: Some(records),
        rate_limit: Some(SMALL_LIMITS.into()),
        ..Default::default()
    };
    let (a, _idp, upstream) = proxy_with_dev_idp(opts.clone()).await;
    let b = second_instance(&opts, upstream, &a.database_url).await;
    let (on_a, csrf) = signed_in(&a, NOEL).await;
    let on_b = session_on(&on_a, &a.base, &b.base);

    let view = format!("/portail/dossiers/{SCANAP_DOSSIER_FEMUR}");
    for (browser, base) in [(&on_a, &a.base), (&on_b, &b.base), (&on_a, &a.base)] {
        let r = browser.get(&format!("{base}{view}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    assert_too_many(&on_b.get(&format!("{}{view}", b.base)).await);

    let r = post_dossier(&on_a, &a.base, &csrf, SCANAP_DOSSIER_FEMUR, "01/01/1961").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = post_dossier(&on_b, &b.base, &csrf, SCANAP_DOSSIER_FEMUR, "01/01/1961").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_too_many(&post_dossier(&on_a, &a.base, &csrf, SCANAP_DOSSIER_FEMUR, "13/08/1961").await);
}

/// `KvStore::incr_window` counts every concurrent hit once, in memory and in
/// Redis, and the Redis counter has a deadline.
#[tokio::test]
async fn incr_window_is_atomic_in_memory_and_redis() {
    use espace_ps::session::{KvStore, MemoryStore, RedisStore};
    use std::sync::Arc;
    use std::time::Duration;
    let redis = Arc::new(RedisStore::new(&peer("ESPACE_TEST_REDIS_URL")).unwrap());
    let stores: [Arc<dyn KvStore>; 2] = [Arc::new(MemoryStore::default()), redis.clone()];
    for store in stores {
        let key = format!("t-{}:counter", espace_ps::session::new_token());
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, key) = (store.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .incr_window(&key, Duration::from_secs(60))
                    .await
                    .unwrap()
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (1..=20).collect::<Vec<u64>>());
    }
    let key = format!("t-{}:counter", espace_ps::session::new_token());
    redis
        .incr_window(&key, Duration::from_secs(60))
        .await
        .unwrap();
    let mut c = redis::Client::open(peer("ESPACE_TEST_REDIS_URL"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}

/// The login limit (per client address) is kept in the shared store too:
/// it holds across two instances sharing Redis.
#[tokio::test]
async fn login_limit_holds_across_instances_sharing_redis() {
    const SECRET: &str = "lockout-test-secret";
    let port = free_port();
    let (_idp, issuer) = start_dev_idp(&format!("http://127.0.0.1:{port}"), SECRET).await;
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let opts = ProxyOpts {
        psc: Some(format!(
            "issuer = \"{issuer}\"\nclient_id = \"espace-ps-test\"\nclient_secret = \"{SECRET}\"\ndev_idp = true\n"
        )),
        sessions: Some(redis_sessions(&prefix)),
        login_per_minute: Some(3),
        ..Default::default()
    };
    let a = Proxy::start(ProxyOpts {
        port: Some(port),
        ..opts.clone()
    })
    .await;
    let b = Proxy::start(opts).await;
    let browser = Browser::new();
    for base in [&a.base, &b.base, &a.base] {
        let r = browser.get(&format!("{base}/auth/login?start=1")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    for base in [&b.base, &a.base] {
        let r = browser.get(&format!("{base}/auth/login?start=1")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(r.body.contains("Trop de tentatives"));
    }
    assert_eq!(
        metric_sum(&[&a, &b], "espace_rate_limited_total{endpoint=\"login\"}").await,
        2.0
    );
}
