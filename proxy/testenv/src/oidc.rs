//! The PSC look-alike OpenID provider (`proxy/tests/peers/oidc-provider`,
//! node-oidc-provider, plain HTTP) with nginx in front of it as a TLS
//! terminator that asks for client certificates (mutual TLS, RFC 8705), and
//! the throwaway PKI both use (made with openssl).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::process::{file_contains, free_port, http_ok, random_hex, run, Service};
use crate::Started;

/// The provider's directory in the repository.
pub(crate) fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/oidc-provider")
}

pub(crate) fn start(dir: &Path, pids: &Path) -> Result<Started, String> {
    let provider = provider_dir();
    npm_ci(&provider)?;
    let oidc_port = free_port()?;
    let mtls_port = loop {
        let p = free_port()?;
        if p != oidc_port {
            break p;
        }
    };
    let pki = dir.join("mtls");
    crate::pki::make_pki(&pki)?;
    let secret = random_hex(24)?;

    let provider_log = dir.join("oidc-provider.log");
    let mut node = Service::spawn(
        Command::new("node")
            .current_dir(&provider)
            .env("OIDC_MTLS_TERMINATOR_SECRET", &secret)
            .args(["server.mjs", "--port", &oidc_port.to_string()])
            .args(["--mtls-url", &format!("https://127.0.0.1:{mtls_port}")]),
        &provider_log,
        pids,
        "TERM",
    )?;

    let ngx = dir.join("nginx");
    std::fs::create_dir_all(&ngx).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&ngx, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let nginx_error_log = dir.join("nginx-error.log");
    let conf = ngx.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(dir, &ngx, &pki, &secret, mtls_port, oidc_port),
    )
    .map_err(|e| e.to_string())?;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let nginx_log = dir.join("nginx.log");
    let mut nginx = Service::spawn(
        Command::new(if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        })
        .arg("-p")
        .arg(&ngx)
        .arg("-e")
        .arg(&nginx_error_log)
        .arg("-c")
        .arg(&conf),
        &nginx_log,
        pids,
        "TERM",
    )?;

    node.wait_ready(
        "oidc-provider",
        &provider_log,
        Duration::from_secs(30),
        || {
            file_contains(
                &provider_log,
                &format!("ready on http://127.0.0.1:{oidc_port}"),
            ) && http_ok(oidc_port, "/__test/health")
        },
    )?;
    let ca = pki.join("ca.pem");
    let mtls_url = format!("https://127.0.0.1:{mtls_port}");
    nginx.wait_ready(
        "nginx (mutual TLS terminator)",
        &nginx_error_log,
        Duration::from_secs(30),
        || {
            run(Command::new("curl")
                .args(["-fsS", "-o", "/dev/null", "--max-time", "2", "--cacert"])
                .arg(&ca)
                .arg(format!("{mtls_url}/__test/health")))
            .is_ok()
        },
    )?;

    let dn = run(Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(pki.join("client.pem")))?;
    let dn = dn.trim().trim_start_matches("subject=").trim().to_owned();
    let file = |name: &str| pki.join(name).display().to_string();
    let base = format!("http://127.0.0.1:{oidc_port}");
    Ok(Started {
        vars: vec![
            (
                "ESPACE_TEST_OIDC_ISSUER".into(),
                format!("{base}/auth/realms/esante-wallet"),
            ),
            ("ESPACE_TEST_OIDC_CONTROL".into(), base),
            ("ESPACE_TEST_MTLS_URL".into(), mtls_url),
            ("ESPACE_TEST_MTLS_CA".into(), file("ca.pem")),
            ("ESPACE_TEST_MTLS_CLIENT_CERT".into(), file("client.pem")),
            ("ESPACE_TEST_MTLS_CLIENT_KEY".into(), file("client.key")),
            ("ESPACE_TEST_MTLS_CLIENT_DN".into(), dn),
            ("ESPACE_TEST_MTLS_OTHER_CERT".into(), file("other.pem")),
            ("ESPACE_TEST_MTLS_OTHER_KEY".into(), file("other.key")),
        ],
        services: vec![node, nginx],
    })
}

/// `npm ci` in `dir` when `node_modules` is absent or was installed from
/// another lock file (the stamp `scripts/test.sh` also reads and writes).
pub(crate) fn npm_ci(dir: &Path) -> Result<(), String> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("{}/package-lock.json: {e}", dir.display()))?;
    let want = Sha256::digest(&lock)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
    let stamp = dir.join("node_modules/.espace-lock.sha256");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        return Ok(());
    }
    // Two runs at once: one `npm ci` at a time.
    let _guard = crate::lock_file(&crate::base_dir()?.join("npm-ci.lock"))?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        return Ok(());
    }
    run(Command::new("npm")
        .current_dir(dir)
        .args(["ci", "--no-audit", "--no-fund"]))
    .map_err(|e| format!("the test OpenID provider's dependencies: {e}"))?;
    std::fs::write(&stamp, format!("{want}\n")).map_err(|e| e.to_string())
}

/// nginx on `mtls_port` in front of the provider on `oidc_port`. TLS with
/// the test CA's server certificate; a client certificate is asked for
/// (optional_no_ca: nginx records the verification against the test CA in
/// $ssl_client_verify and the provider refuses anything but SUCCESS); the
/// certificate goes to the provider in X-SSL-Client-Cert, with the shared
/// secret that makes the provider believe that header.
fn nginx_conf(
    logs: &Path,
    ngx: &Path,
    pki: &Path,
    secret: &str,
    mtls_port: u16,
    oidc_port: u16,
) -> String {
    // As root the workers would switch to nobody, who cannot enter the run dir.
    let user = if rustix::process::getuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let (logs, ngx, pki) = (logs.display(), ngx.display(), pki.display());
    format!(
        "# generated by espace-ps-testenv: TLS terminator in front of the test provider
{user}
daemon off;
worker_processes 1;
pid {ngx}/nginx.pid;
error_log {logs}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {logs}/nginx-access.log;
  client_body_temp_path {ngx}/client_body;
  proxy_temp_path {ngx}/proxy;
  fastcgi_temp_path {ngx}/fastcgi;
  uwsgi_temp_path {ngx}/uwsgi;
  scgi_temp_path {ngx}/scgi;
  server {{
    listen 127.0.0.1:{mtls_port} ssl;
    ssl_certificate {pki}/server.pem;
    ssl_certificate_key {pki}/server.key;
    ssl_client_certificate {pki}/ca.pem;
    ssl_verify_client optional_no_ca;
    location / {{
      proxy_pass http://127.0.0.1:{oidc_port};
      proxy_http_version 1.1;
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
      proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
      proxy_set_header X-Mtls-Terminator-Secret {secret};
    }}
  }}
}}
"
    )
}
