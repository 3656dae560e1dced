//! The Content-Security-Policy of the viewer's HTML pages (route table
//! `[csp]`, docs/policies.md): on every HTML page of the viewer, in place of
//! whatever the viewer sent, with a fresh nonce per response that is the one
//! on the elements espace-ps injects; not on images. And `policies check`
//! refuses a table whose policy would let a script in, at file:line.
//!
//! The viewer here is a small fake upstream that answers an HTML page (with
//! a lax policy of its own) and a PNG, behind the shipped Orthanc table.

use std::process::Command;

use reqwest::StatusCode;

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";
const PAGE: &str =
    "<!DOCTYPE html><html><head><title>Viewer</title></head><body><p>viewer</p></body></html>";

/// A viewer that answers `.html` with a page (and its own lax policy),
/// `.png` with an image, anything else 404.
async fn start_html_upstream() -> (String, tokio::task::JoinHandle<()>) {
    start_fake_upstream(|req: FakeRequest| async move {
        let path = req.target.split('?').next().unwrap_or("").to_owned();
        let (status, ctype, body): (u16, &str, Vec<u8>) = if path.ends_with(".html") {
            (200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec())
        } else if path.ends_with(".png") {
            (200, "image/png", b"\x89PNG\r\n\x1a\nnot really".to_vec())
        } else {
            (404, "text/plain", b"not found".to_vec())
        };
        FakeResponse {
            status,
            headers: vec![
                format!("content-type: {ctype}"),
                "content-security-policy: default-src * 'unsafe-inline' 'unsafe-eval'".into(),
            ],
            body,
        }
    })
    .await
}

/// `espace-ps policies check DIR`.
fn policies_check(dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["policies", "check"])
        .arg(dir)
        .output()
        .unwrap()
}

/// The nonce of a policy; the same in script-src and style-src.
fn nonce_of(csp: &str) -> String {
    let find = |directive: &str| -> String {
        let d = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.split(' ').next() == Some(directive))
            .unwrap_or_else(|| panic!("no {directive} in {csp}"));
        let n = d
            .split(' ')
            .find_map(|s| s.strip_prefix("'nonce-")?.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no nonce in {d}"));
        n.to_owned()
    };
    let n = find("script-src");
    assert_eq!(find("style-src"), n, "one nonce per response: {csp}");
    n
}

#[tokio::test]
async fn viewer_pages_get_the_table_policy_with_a_fresh_nonce_images_do_not() {
    let (upstream, _task) = start_html_upstream().await;
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        upstream: Some(upstream),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);

    let url = format!("{}/web-viewer/app/viewer.html?series=x", proxy.base);
    let first = b.get(&url).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let csps: Vec<&str> = first
        .headers
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(csps.len(), 1, "one policy, the table's: {csps:?}");
    let csp = csps[0];
    // The shipped Orthanc table's policy, not the viewer's own lax one.
    assert!(!csp.contains("default-src *"), "{csp}");
    assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    for d in [
        "default-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        "script-src-attr 'unsafe-hashes' 'sha256-",
    ] {
        assert!(csp.contains(d), "{d} in {csp}");
    }
    let nonce = nonce_of(csp);
    assert!(nonce.len() >= 22, "128 bits at least: {nonce}");
    // Every element espace-ps added carries the nonce.
    let body = &first.body;
    let injected = &body[..body.find("<title>").expect("the viewer's head")];
    for tag in ["<style", "<link", "<script"] {
        for (i, _) in injected.match_indices(tag) {
            let end = injected[i..].find('>').unwrap() + i;
            assert!(
                injected[i..end].contains(&format!("nonce=\"{nonce}\"")),
                "{tag} without the response's nonce: {}",
                &injected[i..=end]
            );
        }
    }
    assert!(
        injected.matches(&format!("nonce=\"{nonce}\"")).count() >= 2,
        "{injected}"
    );
    assert!(body.contains("espace-ps-bandeau"), "the banner is injected");

    // A new response, a new nonce, on the page and in the header alike.
    let second = b.get(&url).await;
    let csp2 = second.headers["content-security-policy"].to_str().unwrap();
    let nonce2 = nonce_of(csp2);
    assert_ne!(nonce2, nonce, "the nonce is per response");
    assert!(second.body.contains(&format!("nonce=\"{nonce2}\"")));
    assert!(!second.body.contains(&nonce), "the old nonce is gone");

    // Images are not documents: no page policy, no nonce.
    let png = b
        .get(&format!("{}/web-viewer/app/images/logo.png", proxy.base))
        .await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.headers["content-type"], "image/png");
    let png_csp = png.headers["content-security-policy"].to_str().unwrap();
    assert!(!png_csp.contains("nonce"), "{png_csp}");
    assert!(!png_csp.contains("script-src"), "{png_csp}");
}

#[test]
fn policies_check_refuses_an_unsafe_viewer_csp_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped_policies(), dir.path());
    let table = dir.path().join("viewers/orthanc.toml");
    let text = std::fs::read_to_string(&table).unwrap();
    let good = "script-src = [\"'self'\"]\n";
    assert!(text.contains(good), "the shipped table has {good}");
    let bad = text.replacen(
        good,
        "script-src = [\n  \"'self'\",\n  \"'unsafe-inline'\",\n]\n",
        1,
    );
    let line = bad
        .lines()
        .position(|l| l.contains("\"'unsafe-inline'\""))
        .unwrap()
        + 1;
    std::fs::write(&table, bad).unwrap();
    let out = policies_check(dir.path());
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("orthanc.toml:{line}:"))
            && text.contains("csp script-src: \"'unsafe-inline'\": refused"),
        "expected orthanc.toml:{line}: … in:\n{text}"
    );

    // A missing object-src is refused at the [csp] header.
    let text = std::fs::read_to_string(shipped_policies().join("viewers/orthanc.toml")).unwrap();
    let header_line = text.lines().position(|l| l.trim() == "[csp]").unwrap() + 1;
    std::fs::write(&table, text.replacen("object-src = [\"'none'\"]\n", "", 1)).unwrap();
    let out = policies_check(dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("orthanc.toml:{header_line}:"))
            && err.contains("object-src is required"),
        "{err}"
    );
}
