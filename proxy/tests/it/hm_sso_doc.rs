//! `docs/hm-sso.md` is true: its worked example
//! (`examples/hm-sso/hm_launch.py`, Python with PyJWT, run by Debian's
//! `/usr/bin/python3`) signs launch tokens that a running espace-ps accepts
//! and that open the dossier asked; the JWKS it prints is one espace-ps
//! reads, and a key rotation published there is followed at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use espace_ps_demo_data::{self as demo_data, showcase::*, DemoConfig};
use parking_lot::Mutex;
use reqwest::StatusCode;

use super::harness::*;

const HERVE: &str = "899700234562";
const HM_ORIGIN: &str = "https://hm.chu.example";
const ISSUER: &str = "hopital-manager";
const AUDIENCE: &str = "espace-ps";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// Runs the worked example with these arguments; its standard output.
fn example(args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("examples/hm-sso/hm_launch.py"))
        .args(args)
        .output()
        .expect("/usr/bin/python3 (Debian's python3, with python3-jwt)");
    assert!(
        out.status.success(),
        "hm_launch.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `hm_launch.py token` for Dr Hervé Lefèvre, signed with `key_file`.
fn signed_launch(key_file: &str, kid: Option<&str>, dossier: &str) -> String {
    let key = key(key_file);
    let mut args = vec![
        "token",
        "--key",
        key.to_str().unwrap(),
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--national-id",
        HERVE,
        "--given-name",
        "Hervé",
        "--family-name",
        "Lefèvre",
        "--profession",
        "10",
        "--savoir-faire",
        "SM44",
        "--dossier",
        dossier,
    ];
    if let Some(kid) = kid {
        args.extend(["--kid", kid]);
    }
    example(&args).trim().to_owned()
}

/// The demo records (SQLite) and espace-ps trusting Hopital Manager with
/// `keys` (the body lines of `[hm_sso]` that name the keys).
async fn proxy_with_records(keys: &str) -> (Proxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("records.sqlite").display());
    let mut c = DemoConfig::demo(test_today());
    c.patients = 50;
    demo_data::generate(&url, &c).await.unwrap();
    let proxy = Proxy::start(ProxyOpts {
        records_url: Some(format!("{url}?mode=ro")),
        hm_sso: Some(format!(
            "issuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{keys}\nallowed_origins = [\"{HM_ORIGIN}\"]\n"
        )),
        ..Default::default()
    })
    .await;
    (proxy, dir)
}

/// Posts the token as Hopital Manager's page does (a form from its
/// origin) and follows the redirects: the page the doctor lands on.
async fn launch(proxy: &Proxy, token: &str) -> Page {
    let b = Browser::new();
    let r = b
        .post_form(
            &format!("{}/auth/hm-sso", proxy.base),
            &[("token".to_owned(), token.to_owned())],
            HM_ORIGIN,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    b.follow(r).await
}

fn assert_dossier_open(page: &Page, dossier: &str) {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.url.ends_with(&format!("/portail/dossiers/{dossier}")),
        "{}",
        page.url
    );
    assert!(page.body.contains("SCANAP"), "{}", page.body);
    assert!(page.body.contains("Hervé LEFÈVRE"), "{}", page.body);
}

/// The worked example, RSA and EC keys in PEM: the token it signs is
/// posted and the dossier opens; posted again, it is refused (single use).
#[tokio::test]
async fn the_worked_example_opens_the_dossier() {
    let (proxy, _dir) = proxy_with_records(&format!(
        "public_keys = [\"{}\", \"{}\"]",
        key("hm-rs256.pub.pem").display(),
        key("hm-es256.pub.pem").display()
    ))
    .await;
    for key_file in ["hm-rs256.key.pem", "hm-es256.key.pem"] {
        let token = signed_launch(key_file, None, SCANAP_DOSSIER_SCANNER);
        let page = launch(&proxy, &token).await;
        assert_dossier_open(&page, SCANAP_DOSSIER_SCANNER);
        let again = Browser::new()
            .post_form(
                &format!("{}/auth/hm-sso", proxy.base),
                &[("token".to_owned(), token)],
                HM_ORIGIN,
            )
            .await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "{key_file}");
        assert!(again.body.contains("déjà été utilisé"), "{}", again.body);
    }
    // The HTML form it prints posts the same kind of token to espace-ps.
    let rs = key("hm-rs256.key.pem");
    let page = example(&[
        "form",
        "--portal",
        &proxy.base,
        "--key",
        rs.to_str().unwrap(),
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--national-id",
        HERVE,
        "--given-name",
        "Hervé",
        "--family-name",
        "Lefèvre",
        "--dossier",
        SCANAP_DOSSIER_SCANNER,
    ]);
    assert!(
        page.contains(&format!(
            "<form id=\"lancement\" method=\"post\" action=\"{}/auth/hm-sso\">",
            proxy.base
        )),
        "{page}"
    );
    let start = page.find("name=\"token\" value=\"").unwrap() + 20;
    let token = &page[start..start + page[start..].find('"').unwrap()];
    assert_dossier_open(&launch(&proxy, token).await, SCANAP_DOSSIER_SCANNER);
}

/// Keys published as a JWKS (the example's `jwks` output): a token signed
/// with a key the JWKS lists opens the dossier; after a rotation (a new key
/// published, tokens signed with it at once), espace-ps fetches the JWKS
/// again instead of refusing launches until its copy expires (10 min).
#[tokio::test]
async fn keys_published_as_jwks_and_rotated_are_followed() {
    let jwks_of = |pairs: &[(&str, &str)]| {
        let mut args = vec!["jwks".to_owned()];
        for (file, kid) in pairs {
            args.extend([
                "--public-key".to_owned(),
                key(file).display().to_string(),
                "--kid".to_owned(),
                (*kid).to_owned(),
            ]);
        }
        example(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let published = Arc::new(Mutex::new(jwks_of(&[("hm-rs256.pub.pem", "hm-2026")])));
    let served = published.clone();
    let (jwks_host, _server) = start_fake_upstream(move |_req: FakeRequest| {
        let body = served.lock().clone().into_bytes();
        async move {
            FakeResponse {
                status: 200,
                headers: vec!["content-type: application/json".into()],
                body,
            }
        }
    })
    .await;
    let (proxy, _dir) = proxy_with_records(&format!(
        "algorithms = [\"RS256\"]\njwks_url = \"http://{jwks_host}/jwks.json\""
    ))
    .await;
    let token = signed_launch("hm-rs256.key.pem", Some("hm-2026"), SCANAP_DOSSIER_SCANNER);
    assert_dossier_open(&launch(&proxy, &token).await, SCANAP_DOSSIER_SCANNER);

    // Rotation: the new key is published beside the old one, then used.
    *published.lock() = jwks_of(&[
        ("hm-rs256.pub.pem", "hm-2026"),
        ("other-rs256.pub.pem", "hm-2027"),
    ]);
    let token = signed_launch(
        "other-rs256.key.pem",
        Some("hm-2027"),
        SCANAP_DOSSIER_SCANNER,
    );
    // espace-ps fetches again at most every 10 s for an unknown kid.
    wait_until(
        std::time::Duration::from_secs(15),
        "a launch signed with the rotated key",
        || async {
            let fresh = signed_launch(
                "other-rs256.key.pem",
                Some("hm-2027"),
                SCANAP_DOSSIER_SCANNER,
            );
            launch_status(&proxy, &fresh).await == StatusCode::SEE_OTHER
        },
    )
    .await;
    assert_dossier_open(&launch(&proxy, &token).await, SCANAP_DOSSIER_SCANNER);
}

/// The status of a launch posted from Hopital Manager's origin (303: accepted).
async fn launch_status(proxy: &Proxy, token: &str) -> StatusCode {
    Browser::new()
        .post_form(
            &format!("{}/auth/hm-sso", proxy.base),
            &[("token".to_owned(), token.to_owned())],
            HM_ORIGIN,
        )
        .await
        .status
}

/// PEM keys and a JWKS together: a token a PEM key verifies opens the
/// dossier even while the JWKS server is down (it is not even asked).
#[tokio::test]
async fn a_pem_key_needs_no_jwks_server() {
    let (proxy, _dir) = proxy_with_records(&format!(
        "public_keys = [\"{}\"]\njwks_url = \"http://127.0.0.1:{}/jwks.json\"",
        key("hm-rs256.pub.pem").display(),
        free_port()
    ))
    .await;
    let token = signed_launch("hm-rs256.key.pem", None, SCANAP_DOSSIER_SCANNER);
    assert_dossier_open(&launch(&proxy, &token).await, SCANAP_DOSSIER_SCANNER);
}
