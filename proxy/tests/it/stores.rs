//! Sessions in a real Redis shared by two instances, the refusal when Redis
//! is down, and the portal database on a real PostgreSQL.

use reqwest::StatusCode;
use sqlx::Connection;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";

fn redis_sessions(prefix: &str) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        peer("ESPACE_TEST_REDIS_URL")
    )
}

/// A fresh PostgreSQL database for one test.
pub async fn fresh_pg_database() -> String {
    let admin_url = peer("ESPACE_TEST_PG_URL");
    let name = format!(
        "espace_t_{}",
        espace_ps::session::new_token()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .chars()
            .take(12)
            .collect::<String>()
    );
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[tokio::test]
async fn two_instances_share_sessions_through_redis() {
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let (a, _idp, upstream) = proxy_with_dev_idp(ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        ..Default::default()
    })
    .await;
    // Instance B: same Redis, same prefix, its own port.
    let b_proxy = Proxy::start(ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        upstream: Some(upstream),
        ..Default::default()
    })
    .await;
    let browser = Browser::new();
    dev_idp_login(&browser, &a.base, ELISE, "/").await;
    let cookie = browser.cookies_for(&a.base)["espace-session"].clone();

    let other = Browser::new();
    other.jar.add_cookie_str(
        &format!("espace-session={cookie}"),
        &reqwest::Url::parse(&b_proxy.base).unwrap(),
    );
    let home = other.get(&format!("{}/", b_proxy.base)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Élise MARTIN-DUPRÉ"));

    // Logout on B ends the session on A too.
    let form = home.form_fields("/auth/logout");
    let out = other
        .post_form(
            &format!("{}/auth/logout", b_proxy.base),
            &form,
            &b_proxy.base,
        )
        .await;
    assert!(out.status.is_success() || out.status.is_redirection());
    assert_eq!(
        browser.get(&format!("{}/", a.base)).await.status,
        StatusCode::SEE_OTHER
    );
    // Redis holds the session under a hash, never the cookie value.
    let mut redis = redis::Client::open(peer("ESPACE_TEST_REDIS_URL"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains(&cookie)));
}

#[tokio::test]
async fn redis_down_means_no_access() {
    // A Redis address where nothing listens.
    let dead = format!("redis://127.0.0.1:{}/", free_port());
    let proxy = Proxy::start(ProxyOpts {
        sessions: Some(format!("store = \"redis\"\nredis_url = \"{dead}\"\n")),
        upstream: Some(start_echo_upstream().await.0),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    b.jar.add_cookie_str(
        &format!("espace-session={}", espace_ps::session::new_token()),
        &reqwest::Url::parse(&proxy.base).unwrap(),
    );
    for path in ["/", "/dicom-web/studies", "/web-viewer/app/viewer.html"] {
        let r = b.get(&format!("{}{path}", proxy.base)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(r.body.contains("Service momentanément indisponible"));
    }
    let ready = reqwest::get(format!("{}/-/readyz", proxy.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Liveness stays up: the process is fine, its store is not.
    let live = reqwest::get(format!("{}/-/healthz", proxy.base))
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
}

#[tokio::test]
async fn redis_remembers_hm_jti_across_instances() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let keys = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let opts = ProxyOpts {
        sessions: Some(redis_sessions(&prefix)),
        hm_sso: Some(format!(
            "issuer = \"hopital-manager\"\naudience = \"espace-ps\"\npublic_keys = [\"{}\"]\n",
            keys.join("hm-rs256.pub.pem").display()
        )),
        ..Default::default()
    };
    let a = Proxy::start(opts.clone()).await;
    let b = Proxy::start(opts).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &serde_json::json!({"iss": "hopital-manager", "aud": "espace-ps", "iat": now, "exp": now + 60,
                            "jti": espace_ps::session::new_token(), "national_id": ELISE}),
        &EncodingKey::from_rsa_pem(&std::fs::read(keys.join("hm-rs256.key.pem")).unwrap()).unwrap(),
    )
    .unwrap();
    let browser = Browser::new();
    let first = browser
        .get(&format!("{}/auth/hm-sso?token={token}", a.base))
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    // The launch waiting for its confirmation is in the shared store too:
    // the other instance shows the page (cookies ignore the port).
    let next = first.location().unwrap().replacen(&a.base, &b.base, 1);
    let page = browser.get(&next).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Continuer en tant que"), "{}", page.body);
    let replay = Browser::new()
        .get(&format!("{}/auth/hm-sso?token={token}", b.base))
        .await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    // The incident number on the page; the code in instance b's log.
    b.assert_incident(&replay.body, "replayed").await;
}

#[tokio::test]
async fn portal_state_on_postgresql() {
    let url = fresh_pg_database().await;
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (count, first, last): (i64, i64, i64) = sqlx::query_as(
        "SELECT login_count, first_login_at, last_login_at FROM accounts WHERE national_id = $1",
    )
    .bind(ELISE)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(count, 1);
    assert_eq!(first, last);
    // The audit trail refuses changes.
    let update = sqlx::query("UPDATE audit_events SET outcome = 'success'")
        .execute(&mut conn)
        .await;
    assert!(update.is_err());
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut conn)
        .await;
    assert!(delete.is_err());
}

#[tokio::test]
async fn sqlite_audit_trail_is_append_only() {
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts::default()).await;
    dev_idp_login(&Browser::new(), &proxy.base, ELISE, "/").await;
    let db = proxy.db().await;
    let update = sqlx::query("UPDATE audit_events SET actor = NULL")
        .execute(db.pool())
        .await;
    assert!(update.is_err());
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(db.pool())
        .await;
    assert!(delete.is_err());
    assert_eq!(db.audit_tail(10).await.unwrap().len(), 1);
}

fn redis_sessions_direct(prefix: &str) -> espace_ps::session::Sessions {
    let store = espace_ps::session::RedisStore::new(&peer("ESPACE_TEST_REDIS_URL")).unwrap();
    espace_ps::session::Sessions::new(
        std::sync::Arc::new(store),
        prefix,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(600),
    )
}

fn professional(national_id: &str) -> espace_ps::identity::Professional {
    espace_ps::identity::Professional::new(
        espace_ps::identity::NationalId::parse(national_id).unwrap(),
        "Élise".into(),
        "MARTIN-DUPRÉ".into(),
        espace_ps::identity::LoginMethod::PscCard,
    )
}

/// The logout race on Redis: a request that loaded the session before the
/// logout writes it back after (recent patients); the session stays ended.
#[tokio::test]
async fn redis_a_destroyed_session_is_not_resurrected_by_a_late_write() {
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let s = redis_sessions_direct(&prefix);
    let (id, _) = s.create(professional(ELISE), 1, None).await.unwrap();
    let mut loaded = s.load(&id).await.unwrap().unwrap();
    s.destroy(&id).await.unwrap();
    loaded
        .recent_patients
        .push(espace_ps::session::RecentPatient {
            id: "p".into(),
            sex: "F".into(),
            family_name: "X".into(),
            given_name: "Y".into(),
            birth_date: "01/01/1970".into(),
            dossier: None,
        });
    assert!(!s.update(&id, &loaded).await.unwrap(), "update wrote");
    assert!(s.load(&id).await.unwrap().is_none(), "session resurrected");
}

/// The per-professional index on Redis: revocation from another process
/// (another `Sessions` on the same Redis) ends that professional's sessions only.
#[tokio::test]
async fn redis_revoke_ends_every_session_of_one_professional() {
    let prefix = format!("t-{}:", espace_ps::session::new_token());
    let a = redis_sessions_direct(&prefix);
    let (s1, _) = a.create(professional(ELISE), 1, None).await.unwrap();
    let (s2, _) = a.create(professional(ELISE), 1, None).await.unwrap();
    let (other, _) = a.create(professional("0123456789"), 2, None).await.unwrap();
    let b = redis_sessions_direct(&prefix);
    assert_eq!(b.revoke_national_id(ELISE).await.unwrap(), 2);
    assert!(a.load(&s1).await.unwrap().is_none());
    assert!(a.load(&s2).await.unwrap().is_none());
    assert!(a.load(&other).await.unwrap().is_some());
}
