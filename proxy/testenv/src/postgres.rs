//! A throwaway PostgreSQL cluster: trust authentication on loopback TCP and
//! a private socket, no fsync, a database `espace_test` owned by `espace`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{file_contains, free_port, run, Service};
use crate::Started;

const DB_USER: &str = "espace";

pub(crate) fn start(dir: &Path, pids: &Path) -> Result<Started, String> {
    let (postgres, port) = start_cluster(dir, pids, None)?;
    Ok(Started {
        vars: vec![(
            "ESPACE_TEST_PG_URL".into(),
            format!("postgres://{DB_USER}@127.0.0.1:{port}/espace_test"),
        )],
        services: vec![postgres],
    })
}

/// Starts a cluster in `dir` with a database `espace_test`; with `tls` (a
/// directory holding `server.pem` and `server.key`), TLS on and plaintext
/// connections refused (`hostssl` only). Its process and port.
pub(crate) fn start_cluster(
    dir: &Path,
    pids: &Path,
    tls: Option<&Path>,
) -> Result<(Service, u16), String> {
    let bin = bin_dir()?;
    let port = free_port()?;
    let os_user = os_user()?;
    let data = dir.join("data");
    if let Some((uid, gid)) = os_user.as_ref().map(|u| (u.uid, u.gid)) {
        // PostgreSQL refuses to run as root: the cluster belongs to its user.
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let as_user = |program: PathBuf| -> Command {
        match &os_user {
            None => Command::new(program),
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .args(["--init-groups", "--"])
                    .arg(program);
                c
            }
        }
    };
    run(as_user(bin.join("initdb")).arg("-D").arg(&data).args([
        "-U",
        DB_USER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]))?;
    // Trust, on loopback TCP (TLS only, when asked) and the private socket only.
    let hba = if tls.is_some() {
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
    } else {
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    };
    std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
    let mut tls_args = Vec::new();
    if let Some(pki) = tls {
        for (name, mode) in [("server.pem", 0o644), ("server.key", 0o600)] {
            let file = pki.join(name);
            if let Some((uid, gid)) = os_user.as_ref().map(|u| (u.uid, u.gid)) {
                std::os::unix::fs::chown(&file, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
        }
        if let Some((uid, gid)) = os_user.as_ref().map(|u| (u.uid, u.gid)) {
            std::os::unix::fs::chown(pki, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        tls_args = vec![
            "-c".to_owned(),
            "ssl=on".to_owned(),
            "-c".to_owned(),
            format!("ssl_cert_file={}", pki.join("server.pem").display()),
            "-c".to_owned(),
            format!("ssl_key_file={}", pki.join("server.key").display()),
        ];
    }
    let log = dir.join("postgres.log");
    // SIGINT: PostgreSQL's fast shutdown.
    let mut postgres = Service::spawn(
        as_user(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                &port.to_string(),
                "-k",
            ])
            .arg(dir)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(&tls_args),
        &log,
        pids,
        "INT",
    )?;
    let port_s = port.to_string();
    // The clients use the private socket: it works with or without TLS.
    let client = |program: &str| {
        let mut c = Command::new(bin.join(program));
        c.arg("-h").arg(dir).args(["-p", &port_s, "-U", DB_USER]);
        c
    };
    postgres.wait_ready("postgres", &log, Duration::from_secs(60), || {
        file_contains(&log, "database system is ready to accept connections")
            && run(client("pg_isready").arg("-q")).is_ok()
    })?;
    run(client("createdb").arg("espace_test"))?;
    Ok((postgres, port))
}

/// The newest Debian PostgreSQL bin directory (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
         apt-get install postgresql, or run ./scripts/test.sh, which installs it"
            .to_owned()
    })
}

struct OsUser {
    uid: u32,
    gid: u32,
}

/// The system user that runs the cluster: none (the current one) unless we
/// are root; then Debian's `postgres`, or an `espace` system user made for it.
fn os_user() -> Result<Option<OsUser>, String> {
    if !rustix::process::getuid().is_root() {
        return Ok(None);
    }
    if let Some(u) = passwd_entry("postgres") {
        return Ok(Some(u));
    }
    if passwd_entry("espace").is_none() {
        run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "espace",
        ]))?;
    }
    passwd_entry("espace")
        .map(Some)
        .ok_or_else(|| "no postgres nor espace system user to run PostgreSQL".to_owned())
}

fn passwd_entry(name: &str) -> Option<OsUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || f[0] != name {
            return None;
        }
        Some(OsUser {
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
        })
    })
}
