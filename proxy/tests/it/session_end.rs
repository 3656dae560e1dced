//! Issue 9 §5 and §7: what happens when a session ends without a logout
//! (timeouts, revocation), and `espace-ps sessions revoke` with the
//! policies' `revoked` group, on two instances sharing Redis.

use std::time::Duration;

use reqwest::StatusCode;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";

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


/// The next page load after an idle or absolute timeout: the login page,
/// and the browser is told to drop what the portal stored ("Mes dernières
/// recherches", caches) with `Clear-Site-Data`, and the dead cookie goes.
#[tokio::test]
async fn a_timed_out_session_clears_the_browser_storage_at_the_next_page_load() {
    // Idle and absolute timeouts end a session the same way (`load` finds
    // none; unit tests in session.rs cover both); idle is quicker to reach.
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
        // While the session lives, pages do not clear anything.
        assert!(home.headers.get("clear-site-data").is_none(), "{what}");

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
