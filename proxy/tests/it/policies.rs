//! The administrator's workflow on a running proxy: a policy directory that
//! changes is reloaded; a bad set is refused, counted, and the last good set
//! stays in force; SIGHUP reloads too. And `espace-ps policies check`.

use std::process::Command;
use std::time::Duration;

use super::harness::*;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_bad_policy_edit_is_refused_and_a_good_one_applied_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&shipped_policies(), &policies);
    let proxy = Proxy::start(ProxyOpts {
        policies_dir: Some(policies.clone()),
        ..Default::default()
    })
    .await;
    let refused = "espace_policy_reloads_total{outcome=\"refused\"}";
    let applied = "espace_policy_reloads_total{outcome=\"applied\"}";

    // A syntax error: refused, counted, the proxy keeps serving.
    let file = policies.join("care-team.cedar");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{good}\npermit (principal, action, resource\n"),
    )
    .unwrap();
    wait_until(Duration::from_secs(20), "the refused reload", || async {
        metric(&proxy.metrics().await, refused) >= 1.0
    })
    .await;
    assert_eq!(
        metric(&proxy.metrics().await, "espace_policy_reload_failing"),
        1.0
    );
    wait_until(Duration::from_secs(5), "the refusal in the log", || async {
        proxy.logs().contains("policy reload refused")
    })
    .await;
    let health = reqwest::get(format!("{}/-/readyz", proxy.base))
        .await
        .unwrap();
    assert!(health.status().is_success());

    // Fixed, with a change: applied.
    std::fs::write(&file, good.replace("\"AD\"", "\"AD\", \"IN\"")).unwrap();
    wait_until(Duration::from_secs(20), "the applied reload", || async {
        metric(&proxy.metrics().await, applied) >= 1.0
    })
    .await;
    assert_eq!(
        metric(&proxy.metrics().await, "espace_policy_reload_failing"),
        0.0
    );

    // SIGHUP with another change: applied again.
    std::fs::write(&file, good.clone()).unwrap();
    let before = metric(&proxy.metrics().await, applied);
    let _ = Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status();
    wait_until(Duration::from_secs(20), "the SIGHUP reload", || async {
        metric(&proxy.metrics().await, applied) > before
    })
    .await;
}

#[test]
fn policies_check_passes_on_the_shipped_set_and_fails_with_a_location() {
    let ok = Command::new(BIN)
        .args(["policies", "check"])
        .arg(shipped_policies())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped_policies(), dir.path());
    std::fs::write(
        dir.path().join("extra.cedar"),
        "@id(\"extra\")\npermit (principal, action == EspacePs::Action::\"no_such_action\", resource);\n",
    )
    .unwrap();
    let bad = Command::new(BIN)
        .args(["policies", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(text.contains("extra.cedar:2:"), "{text}");
}

#[test]
fn a_proxy_with_invalid_policies_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped_policies(), dir.path());
    std::fs::write(dir.path().join("broken.cedar"), "permit (").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n[database]\nurl = \"sqlite://{}?mode=rwc\"\n[policies]\ndir = \"{}\"\n",
            free_port(),
            free_port(),
            dir.path().join("db.sqlite").display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.cedar"));
}
