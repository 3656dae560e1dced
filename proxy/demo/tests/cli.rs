//! The `espace-ps-demo` command: the demo commands moved out of the
//! production binary (their tests were in `proxy/tests/it/cli.rs` and
//! `proxy/tests/it/devidp_login.rs`, same names).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_espace-ps-demo");

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_is_available_on_each_command() {
    for cmd in ["demo", "demo-data", "dev-idp"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

#[test]
fn dev_idp_refuses_a_public_address() {
    let out = Command::new(BIN)
        .args([
            "dev-idp",
            "--listen",
            "0.0.0.0:18081",
            "--client-secret",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// Demo records left by an older espace-ps (no name-search index) are
/// generated anew rather than leaving a demo whose searches fail; current
/// ones are left as they are.
#[test]
fn demo_data_regenerates_records_that_predate_the_search_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.sqlite");
    let url = format!("sqlite://{}", file.display());
    let demo_data = || {
        let out = Command::new(BIN)
            .args(["demo-data", "--records", &url, "--patients", "5"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let count = |table: &str| -> i64 {
        let out = Command::new("sqlite3")
            .arg(&file)
            .arg(format!("SELECT COUNT(*) FROM {table}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(-1)
    };
    demo_data();
    let index_rows = count("rec_search_tokens");
    assert!(index_rows > 0);

    let out = Command::new("sqlite3")
        .arg(&file)
        .arg("DROP TABLE rec_search_tokens")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(count("rec_search_tokens"), -1, "the table is gone");

    let said = demo_data();
    assert!(said.contains("generating it anew"), "{said}");
    assert_eq!(count("rec_search_tokens"), index_rows);

    let said = demo_data();
    assert!(said.contains("left as is"), "{said}");
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Hidden inputs of the first form whose action ends with `action`.
fn form_fields(body: &str, action: &str) -> Vec<(String, String)> {
    let form_re = regex::Regex::new(r#"(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>"#).unwrap();
    let input_re =
        regex::Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)""#).unwrap();
    let form = form_re
        .captures_iter(body)
        .find(|f| f[1].ends_with(action))
        .unwrap_or_else(|| panic!("no form with action {action}:\n{body}"));
    input_re
        .captures_iter(&form[2])
        .map(|c| {
            let v = c[2]
                .replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&#x3D;", "=")
                .replace("&#x2F;", "/")
                .replace("&amp;", "&");
            (c[1].to_owned(), v)
        })
        .collect()
}

/// GETs `url`, then each Location (at most 10 hops); returns the last
/// response's URL, status and body.
async fn follow(
    client: &reqwest::Client,
    mut resp: reqwest::Response,
) -> (reqwest::Url, reqwest::StatusCode, String) {
    for _ in 0..10 {
        if !resp.status().is_redirection() {
            break;
        }
        let loc = resp.headers()["location"].to_str().unwrap();
        let next = resp.url().join(loc).unwrap();
        resp = client
            .get(next)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
    }
    let (url, status) = (resp.url().clone(), resp.status());
    (url, status, resp.text().await.unwrap())
}

#[tokio::test]
async fn demo_command_runs_the_whole_thing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, idp, admin) = (free_port(), free_port(), free_port());
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--idp-listen", &format!("127.0.0.1:{idp}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--policies")
        .arg(policies)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(format!("{base}/-/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sign in as Dr Hervé Lefèvre with the card tab of the dev IdP.
    let start = client
        .get(format!("{base}/auth/login?start=1&return_to=%2F"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), reqwest::StatusCode::SEE_OTHER);
    let (authorize_url, status, authorize) = follow(&client, start).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{authorize}");
    assert!(authorize.contains("Carte CPS"));
    let mut form = form_fields(&authorize, "/auth");
    form.retain(|(k, _)| k != "auth_mode");
    form.push(("auth_mode".into(), "CARD".into()));
    form.push(("national_id".into(), "899700234562".into()));
    let chosen = client
        .post(authorize_url.join("/auth").unwrap())
        .header("accept", "text/html")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), reqwest::StatusCode::SEE_OTHER);
    let (_, status, home) = follow(&client, chosen).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{home}");
    assert!(home.contains("Hervé LEFÈVRE"), "{home}");

    // The Hopital Manager simulator (demo only): its launch, posted from
    // its origin as its page does, signs Dr Inès Haddad-Leclère in
    // straight away (the demo trusts its key and its origin).
    let hm = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let idp_base = format!("http://127.0.0.1:{idp}");
    let page = hm
        .get(format!("{idp_base}/hopital-manager"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(page.text().await.unwrap().contains("simulation"));
    let launch_page = hm
        .post(format!("{idp_base}/hopital-manager/lancer"))
        .form(&[("national_id", "899700456785"), ("dossier", "")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        launch_page.contains(&format!("action=\"{base}/auth/hm-sso\"")),
        "{launch_page}"
    );
    let token = form_fields(&launch_page, "/auth/hm-sso")
        .into_iter()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1;
    let posted = hm
        .post(format!("{base}/auth/hm-sso"))
        .header("origin", &idp_base)
        .header("accept", "text/html")
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), reqwest::StatusCode::SEE_OTHER);
    let (url, status, home) = follow(&hm, posted).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{home}");
    assert_eq!(url.path(), "/", "straight in, no confirmation page");
    assert!(home.contains("Inès HADDAD-LECLÈRE"), "{home}");
}
