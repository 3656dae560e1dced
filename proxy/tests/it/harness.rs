//! The test harness: boots the real `espace-ps` binary with every listener on
//! a free loopback port, a browser-like HTTP client that follows redirects by
//! hand with a cookie jar, a wait-until helper, and the real peers (Redis,
//! PostgreSQL, the OpenID provider: [`peer`], started once per test run by
//! `espace_ps_testenv` unless `ESPACE_TEST_*` names them).

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

pub const BIN: &str = env!("CARGO_BIN_EXE_espace-ps");

/// The instant every test process lives at: `ESPACE_TEST_NOW` (RFC 3339;
/// `scripts/test.sh` runs the date-sensitive tests again with it moved), or
/// a fixed instant. No test reads the system date: the generated records,
/// the expectations and the proxy's clock all come from this one value.
pub fn test_now() -> time::OffsetDateTime {
    const PINNED: &str = "2026-11-30T09:30:00Z";
    let s = std::env::var("ESPACE_TEST_NOW").unwrap_or_else(|_| PINNED.to_owned());
    espace_ps::clock::parse_instant(&s).unwrap_or_else(|e| panic!("ESPACE_TEST_NOW={s}: {e}"))
}

/// How far every espace-ps process of this test lives from the system
/// clock (`[testing] clock_offset_secs`): computed once, so that the
/// instances and commands a test starts at different moments all read one
/// clock, which read [`test_now`] when the test began.
pub fn clock_offset_secs() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| (test_now() - time::OffsetDateTime::now_utc()).whole_seconds())
}

/// The date of [`test_now`].
pub fn test_today() -> time::Date {
    test_now().date()
}

/// A peer's address (`ESPACE_TEST_REDIS_URL`, `ESPACE_TEST_PG_URL`,
/// `ESPACE_TEST_OIDC_*`, `ESPACE_TEST_MTLS_*`): the variable's value when
/// set, else the service this test run shares, started by the first test
/// that needs it (`espace_ps_testenv`); a clear failure when it cannot start.
pub fn peer(var: &str) -> String {
    espace_ps_testenv::peer(var)
}

/// A loopback port nobody listens on, for a server the test starts.
///
/// Taken from a block of ports of this process's own (chosen by its pid),
/// below the kernel's ephemeral range: a port from `bind(0)` is free for
/// every process at once, so two tests running side by side could both pick
/// it, one proxy would fail to bind, and its test would talk to the other
/// test's proxy (seen: a PSC login test answered 404 by a proxy without PSC).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BASE: u32 = 20_000;
    const BLOCK: u32 = 16;
    const BLOCKS: u32 = 750; // ports 20000 to 31999
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let block = BASE + (std::process::id() % BLOCKS) * BLOCK;
    for _ in 0..BLOCK {
        let port = (block + NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    // The whole block is in use: the kernel's choice.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_healthy(url: &str, child: &mut Child, stderr: &std::path::Path) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "espace-ps exited ({status}) before it was healthy:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "espace-ps not healthy at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sections of a test configuration.
#[derive(Default, Clone)]
pub struct ProxyOpts {
    /// Body of the `[psc]` table.
    pub psc: Option<String>,
    /// Body of the `[hm_sso]` table.
    pub hm_sso: Option<String>,
    /// Body of the `[sessions]` table.
    pub sessions: Option<String>,
    /// Portal database URL; a fresh SQLite file by default.
    pub database_url: Option<String>,
    /// The viewer upstream address.
    pub upstream: Option<String>,
    pub login_per_minute: Option<u32>,
    /// Fixed listen port (when a peer must know the redirect URI in advance).
    pub port: Option<u16>,
    pub log_format_json: bool,
    /// The policy directory; the repository's `policies/` by default.
    pub policies_dir: Option<std::path::PathBuf>,
    /// Hospital records URL (`[records] url`); none by default.
    pub records_url: Option<String>,
    /// Body of the `[portal]` table.
    pub portal: Option<String>,
    /// `[database] max_connections`.
    pub database_max_connections: Option<u32>,
    /// More lines of the `[rate_limit]` table (after `login_per_minute`).
    pub rate_limit: Option<String>,
    /// `[database] ca_file` (TLS to PostgreSQL).
    pub database_ca_file: Option<String>,
    /// More lines of the `[server]` table (shutdown timings…).
    pub server: Option<String>,
    /// `[server] trusted_gateways` (a TOML array).
    pub trusted_gateways: Option<String>,
    /// Body of the `[audit]` table.
    pub audit: Option<String>,
    /// More lines of the `[database]` table; by default the development
    /// switch `allow_audit_rewrite = true` (the tests' PostgreSQL role owns
    /// the tables).
    pub database_extra: Option<String>,
    /// `[upstream] viewer`: the route table's name; `orthanc` by default.
    pub viewer: Option<String>,
    /// `[upstream] ohif_dir`: the OHIF site espace-ps serves; none by default.
    pub ohif_dir: Option<std::path::PathBuf>,
}

/// The repository's shipped policy directory.
pub fn shipped_policies() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A running `espace-ps serve`, killed on drop.
pub struct Proxy {
    child: Child,
    pub base: String,
    pub admin: String,
    pub database_url: String,
    pub dir: tempfile::TempDir,
}

impl Proxy {
    pub async fn start(opts: ProxyOpts) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port = opts.port.unwrap_or_else(free_port);
        let admin = free_port();
        let database_url = opts.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("portal.sqlite").display()
            )
        });
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             public_url = \"http://127.0.0.1:{port}\"\nthreads = 1\n{}\n{}\n\
             [upstream]\naddress = \"{}\"\n{}\n[database]\nurl = \"{database_url}\"\n{}\n\
             [rate_limit]\nlogin_per_minute = {}\n{}\n[logging]\nformat = \"{}\"\nlevel = \"info\"\n\n\
             [policies]\ndir = \"{}\"\n",
            opts.server.as_deref().unwrap_or_default(),
            opts.trusted_gateways
                .as_ref()
                .map(|g| format!("trusted_gateways = {g}\n"))
                .unwrap_or_default(),
            opts.upstream.as_deref().unwrap_or("127.0.0.1:9"),
            opts.viewer
                .as_deref()
                .map(|v| format!("viewer = \"{v}\"\n"))
                .unwrap_or_default()
                + &opts
                    .ohif_dir
                    .as_ref()
                    .map(|d| format!("ohif_dir = {:?}\n", d.display().to_string()))
                    .unwrap_or_default(),
            opts.database_max_connections
                .map(|n| format!("max_connections = {n}\n"))
                .unwrap_or_default()
                + &opts
                    .database_ca_file
                    .as_ref()
                    .map(|f| format!("ca_file = \"{f}\"\n"))
                    .unwrap_or_default()
                + opts
                    .database_extra
                    .as_deref()
                    .unwrap_or("allow_audit_rewrite = true\n"),
            opts.login_per_minute.unwrap_or(1000),
            opts.rate_limit.as_deref().unwrap_or_default(),
            if opts.log_format_json { "json" } else { "text" },
            opts.policies_dir
                .clone()
                .unwrap_or_else(shipped_policies)
                .display(),
        );
        for (name, body) in [
            ("psc", &opts.psc),
            ("hm_sso", &opts.hm_sso),
            ("sessions", &opts.sessions),
            ("portal", &opts.portal),
            ("audit", &opts.audit),
        ] {
            if let Some(body) = body {
                toml.push_str(&format!("\n[{name}]\n{body}\n"));
            }
        }
        if let Some(url) = &opts.records_url {
            toml.push_str(&format!("\n[records]\nurl = \"{url}\"\n"));
        }
        toml.push_str(&format!(
            "\n[testing]\nclock_offset_secs = {}\n",
            clock_offset_secs()
        ));
        let config = dir.path().join("espace-ps.toml");
        std::fs::write(&config, toml).unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("ESPACE_PSC_CLIENT_SECRET")
            .env_remove("ESPACE_REDIS_URL")
            .env_remove("ESPACE_DATABASE_URL")
            .env_remove("ESPACE_RECORDS_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&format!("{base}/-/healthz"), &mut child, &stderr).await;
        Proxy {
            child,
            base,
            admin: format!("http://127.0.0.1:{admin}"),
            database_url,
            dir,
        }
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The text of the admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// What the proxy has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub async fn db(&self) -> espace_ps::state::PortalDb {
        espace_ps::state::PortalDb::connect(&self.database_url, 1)
            .await
            .unwrap()
    }

    /// The proxy's audit trail, oldest first.
    pub async fn audit_trail(&self) -> Vec<AuditEntry> {
        audit_trail(&self.database_url).await
    }

    /// The single number a query of the portal database answers (`COUNT(*)`…).
    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(self.db().await.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }
}

/// One row of an audit trail.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Option<String>,
    pub event: String,
    pub outcome: String,
    pub resource: Option<String>,
    pub detail: Option<String>,
}

/// The audit trail of the portal database at `database_url`, oldest first.
pub async fn audit_trail(database_url: &str) -> Vec<AuditEntry> {
    use sqlx::Row;
    let db = espace_ps::state::PortalDb::connect(database_url, 1)
        .await
        .unwrap();
    sqlx::query("SELECT actor, event, outcome, resource, detail FROM audit_events ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| AuditEntry {
            actor: r.try_get(0).unwrap(),
            event: r.try_get(1).unwrap(),
            outcome: r.try_get(2).unwrap(),
            resource: r.try_get(3).unwrap(),
            detail: r.try_get(4).unwrap(),
        })
        .collect()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev identity provider (`espace-ps-devidp`, served in this test
/// process on its own runtime) on a free loopback port; stopped on drop.
pub struct DevIdpServer(Option<tokio::runtime::Runtime>);

impl Drop for DevIdpServer {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The dev identity provider on a free port, registered for a proxy at
/// `portal` (client `espace-ps-test`); returns it and its issuer URL. It runs
/// in this process (the production binary has no `dev-idp` command), on a
/// runtime of its own, so it answers whatever the test's runtime does.
pub async fn start_dev_idp(portal: &str, secret: &str) -> (DevIdpServer, String) {
    use espace_ps_devidp::{DevClient, DevIdp, DevIdpConfig};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cell: Arc<std::sync::OnceLock<DevIdp>> = Arc::default();
    let serving = cell.clone();
    let (addr, _task) = rt
        .spawn(start_fake_upstream(move |req: FakeRequest| {
            let serving = serving.clone();
            async move {
                let idp = serving
                    .get()
                    .expect("the dev IdP is set before its address is known");
                let mut builder = http::Request::builder()
                    .method(req.method.as_str())
                    .uri(req.target.as_str());
                for (k, v) in req.headers.iter().filter_map(|l| l.split_once(':')) {
                    builder = builder.header(k.trim(), v.trim());
                }
                let resp = idp
                    .handle(builder.body(bytes::Bytes::from(req.body)).unwrap())
                    .await;
                let (parts, body) = resp.into_parts();
                FakeResponse {
                    status: parts.status.as_u16(),
                    headers: parts
                        .headers
                        .iter()
                        .filter(|(k, _)| {
                            *k != http::header::CONTENT_LENGTH && *k != http::header::CONNECTION
                        })
                        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
                        .collect(),
                    body: body.to_vec(),
                }
            }
        }))
        .await
        .unwrap();
    let issuer = format!("http://{addr}/auth/realms/esante-wallet");
    let client = DevClient {
        client_id: "espace-ps-test".into(),
        client_secret: secret.into(),
        redirect_uris: vec![format!("{portal}/auth/callback")],
        post_logout_redirect_uris: vec![format!("{portal}/auth/logged-out")],
    };
    let idp = DevIdp::new(DevIdpConfig::with_defaults(
        reqwest::Url::parse(&issuer).unwrap(),
        vec![client],
    ))
    .unwrap();
    assert!(cell.set(idp).is_ok());
    (DevIdpServer(Some(rt)), issuer)
}

// === a browser-like client ===

pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

/// One response, body read.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        let loc = self.headers.get("location")?.to_str().ok()?;
        Some(
            reqwest::Url::parse(&self.url)
                .unwrap()
                .join(loc)
                .unwrap()
                .to_string(),
        )
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// Hidden and named inputs of the first form whose action ends with `action`.
    pub fn form_fields(&self, action: &str) -> Vec<(String, String)> {
        let form_re =
            regex::Regex::new(r#"(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>"#).unwrap();
        let input_re =
            regex::Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)""#).unwrap();
        for f in form_re.captures_iter(&self.body) {
            if f[1].ends_with(action) {
                return input_re
                    .captures_iter(&f[2])
                    .map(|c| (c[1].to_owned(), html_unescape(&c[2])))
                    .collect();
            }
        }
        panic!(
            "no form with action {action} in {}:\n{}",
            self.url, self.body
        );
    }
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&#x60;", "`")
        .replace("&amp;", "&")
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Browser { client, jar }
    }

    pub async fn request(
        &self,
        method: Method,
        url: &str,
        form: Option<&[(String, String)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut rb = self.client.request(method, url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            rb = rb.header("accept", "text/html,application/xhtml+xml");
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(f) = form {
            rb = rb.form(f);
        }
        let r = rb.send().await.unwrap();
        Page {
            url: r.url().to_string(),
            status: r.status(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        self.request(Method::GET, url, None, &[]).await
    }

    pub async fn post_form(&self, url: &str, form: &[(String, String)], origin: &str) -> Page {
        self.request(Method::POST, url, Some(form), &[("origin", origin)])
            .await
    }

    /// Follows redirects from `page` (GET each Location), at most 10 hops.
    pub async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..10 {
            if !page.status.is_redirection() {
                return page;
            }
            let next = page.location().expect("redirect without Location");
            page = self.get(&next).await;
        }
        panic!("too many redirects, last at {}", page.url);
    }

    pub async fn get_follow(&self, url: &str) -> Page {
        let p = self.get(url).await;
        self.follow(p).await
    }

    /// Cookies the jar would send to `url`, by name.
    pub fn cookies_for(&self, url: &str) -> HashMap<String, String> {
        use reqwest::cookie::CookieStore;
        let url = reqwest::Url::parse(url).unwrap();
        self.jar
            .cookies(&url)
            .map(|h| {
                h.to_str()
                    .unwrap()
                    .split("; ")
                    .filter_map(|c| c.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Signs in through the dev identity provider as `national_id` with the
/// card tab; returns the page the portal lands on.
pub async fn dev_idp_login(
    b: &Browser,
    proxy_base: &str,
    national_id: &str,
    return_to: &str,
) -> Page {
    let start = b
        .get(&format!(
            "{proxy_base}/auth/login?start=1&return_to={}",
            urlencoding::encode(return_to)
        ))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let authorize = b.follow(start).await;
    assert_eq!(authorize.status, StatusCode::OK, "{}", authorize.body);
    assert!(authorize.body.contains("Carte CPS"));
    let mut form = authorize.form_fields("/auth");
    form.retain(|(k, _)| k != "auth_mode");
    form.push(("auth_mode".into(), "CARD".into()));
    form.push(("national_id".into(), national_id.into()));
    let action = reqwest::Url::parse(&authorize.url)
        .unwrap()
        .join("/auth")
        .unwrap();
    let chosen = b
        .request(Method::POST, action.as_str(), Some(&form), &[])
        .await;
    assert_eq!(chosen.status, StatusCode::SEE_OTHER, "{}", chosen.body);
    b.follow(chosen).await
}

/// A request as a fake upstream received it.
pub struct FakeRequest {
    /// The request line as sent (`GET /path HTTP/1.1`).
    pub request_line: String,
    pub method: String,
    /// The origin-form target (path and query).
    pub target: String,
    /// Header lines as sent, `name: value`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

/// What a fake upstream answers.
pub struct FakeResponse {
    pub status: u16,
    /// Header lines, `name: value` (content-length and connection are added).
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

/// An HTTP/1.1 upstream on a free loopback port that answers every request
/// (one per connection) with `handler`: a stand-in viewer whose answers a
/// test chooses. Returns its address and the task serving it.
pub async fn start_fake_upstream<F, Fut>(handler: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(FakeRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = FakeResponse> + Send,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end - 4]).to_string();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or("").to_owned();
                let mut words = request_line.split(' ');
                let method = words.next().unwrap_or("").to_owned();
                let target = words.next().unwrap_or("").to_owned();
                let headers: Vec<String> = lines.map(str::to_owned).collect();
                let length: usize = headers
                    .iter()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = buf[head_end..].to_vec();
                while body.len() < length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                let r = handler(FakeRequest {
                    request_line,
                    method,
                    target,
                    headers,
                    body,
                })
                .await;
                let mut out = format!("HTTP/1.1 {} X\r\n", r.status);
                for h in &r.headers {
                    out.push_str(h);
                    out.push_str("\r\n");
                }
                out.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    r.body.len()
                ));
                let mut out = out.into_bytes();
                out.extend_from_slice(&r.body);
                let _ = sock.write_all(&out).await;
            });
        }
    });
    (addr, task)
}

/// A tiny upstream that answers every request with what it received
/// (method, path, headers) as JSON: it lets tests see what the proxy forwards.
pub async fn start_echo_upstream() -> (String, tokio::task::JoinHandle<()>) {
    start_fake_upstream(|req: FakeRequest| async move {
        let request_line = req.request_line;
        let headers: Vec<String> = req.headers.iter().map(|l| l.to_ascii_lowercase()).collect();
        FakeResponse {
            status: 200,
            headers: vec!["content-type: application/json".into()],
            body: serde_json::json!({"request_line": request_line, "headers": headers})
                .to_string()
                .into_bytes(),
        }
    })
    .await
}

/// Copies a directory tree (a policy directory to edit in a test).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The incident number an error page shows ("… la référence
/// <strong>1234-5678</strong>."), if any.
pub fn incident_number(body: &str) -> Option<String> {
    regex::Regex::new(r"la référence <strong>(\d{4}-\d{4})</strong>")
        .unwrap()
        .captures(body)
        .map(|c| c[1].to_owned())
}

impl Proxy {
    /// The page shows an incident number, not the internal `code`, and the
    /// proxy's log line of that number carries the code (the help desk
    /// finds it by the number the user quotes).
    pub async fn assert_incident(&self, body: &str, code: &str) {
        let number = incident_number(body)
            .unwrap_or_else(|| panic!("no incident number on the page: {body}"));
        assert!(
            !body.contains(&format!("Référence : {code}")),
            "the internal code {code} is shown: {body}"
        );
        wait_until(
            Duration::from_secs(5),
            "the incident's log line",
            || async {
                self.logs()
                    .lines()
                    .any(|l| l.contains(&number) && l.contains(code))
            },
        )
        .await;
    }
}

/// The two portal database backends a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the same async test body on SQLite and on PostgreSQL: for each
/// `name`, a module `name` with the tests `sqlite` and `postgres` calling
/// `name(Backend)` of the module that invokes it.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Backend;
            #[tokio::test]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    )*};
}
pub(crate) use on_both_backends;
