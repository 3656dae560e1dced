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
    for cmd in [
        "serve",
        "check-config",
        "sessions",
        "dossiers",
        "policies",
        "audit",
        "migrate",
    ] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

/// The demo commands live in the separate `espace-ps-demo` binary (their
/// tests are in `proxy/demo/tests/cli.rs`): the production binary refuses them.
#[test]
fn the_production_binary_has_no_demo_commands() {
    for cmd in ["demo", "demo-data", "dev-idp"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(!out.status.success(), "{cmd} --help");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"),
            "{cmd}"
        );
    }
}
