//! The command line as an administrator uses it.

use std::process::Command;

use super::harness::BIN;

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_summarizes_a_good_file() {
    let (ok, out, _) = check(
        "[server]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://espace.chu.example\"\n",
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("ok: listen 127.0.0.1:8443"), "{out}");
}

#[test]
fn check_config_names_the_key_and_line() {
    let (ok, _, err) =
        check("[server]\nlisten = \"127.0.0.1:8443\"\n\n[sessions]\nstore = \"memcached\"\n");
    assert!(!ok);
    assert!(err.contains("line 5: `sessions.store`"), "{err}");
    let (ok, _, err) = check("[psc]\nissuer = \"https://x.example/realm\"\nclient_id = \"c\"\nclient_secret = \"s\"\nclinet_secret = \"typo\"\n");
    assert!(!ok);
    assert!(err.contains("line 5: `clinet_secret`"), "{err}");
}

#[test]
fn shipped_configs_are_valid() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut seen = 0;
    for entry in std::fs::read_dir(deploy).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            seen += 1;
            let out = Command::new(BIN)
                .arg("check-config")
                .arg(&path)
                .env("ESPACE_PSC_CLIENT_SECRET", "from-environment")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(seen > 0, "deploy/ ships no configuration example");
}

#[test]
fn help_is_available_on_each_command() {
    for cmd in ["serve", "check-config", "demo", "dev-idp"] {
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
