//! A Redis primary, one replica and three Sentinels on loopback ports, for
//! one test (the test kills the primary: nothing shares it). Debian's
//! `redis-server` and `redis-sentinel` (or `redis-server --sentinel`).
//! Every process is killed when the [`SentinelSet`] is dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{file_contains, free_port, Service};

/// The service name the Sentinels monitor.
pub const SERVICE: &str = "espace";

pub struct SentinelSet {
    pub primary_port: u16,
    pub replica_port: u16,
    pub sentinel_ports: Vec<u16>,
    primary: Option<Service>,
    /// The replica and the Sentinels, killed on drop.
    _others: Vec<Service>,
    _dir: PathBuf,
}

impl SentinelSet {
    /// Starts them in `dir` (created; the caller removes it) and waits until
    /// the replica is in sync and every Sentinel knows the primary and
    /// the replica.
    pub fn start(dir: &Path) -> Result<SentinelSet, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let pids = dir.join("pids");
        let ports = distinct_ports(5)?;
        let (primary_port, replica_port) = (ports[0], ports[1]);
        let redis = |name: &str, port: u16, replica_of: Option<u16>| {
            let data = dir.join(name);
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            let log = dir.join(format!("{name}.log"));
            let mut cmd = Command::new("redis-server");
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&data);
            if let Some(p) = replica_of {
                cmd.args(["--replicaof", "127.0.0.1", &p.to_string()]);
            }
            let mut s = Service::spawn(&mut cmd, &log, &pids, "TERM")?;
            s.wait_ready(name, &log, Duration::from_secs(20), || {
                file_contains(&log, "Ready to accept connections")
            })?;
            Ok::<_, String>(s)
        };
        let primary = redis("primary", primary_port, None)?;
        let replica = redis("replica", replica_port, Some(primary_port))?;
        let mut others = vec![replica];
        for (i, &port) in ports[2..].iter().enumerate() {
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "bind 127.0.0.1\nport {port}\ndir {}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 10000\n\
                     sentinel parallel-syncs {SERVICE} 1\n",
                    dir.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let log = dir.join(format!("sentinel-{i}.log"));
            let mut cmd = if which("redis-sentinel") {
                let mut c = Command::new("redis-sentinel");
                c.arg(&conf);
                c
            } else {
                let mut c = Command::new("redis-server");
                c.arg(&conf).arg("--sentinel");
                c
            };
            let mut s = Service::spawn(&mut cmd, &log, &pids, "TERM")?;
            s.wait_ready("redis-sentinel", &log, Duration::from_secs(20), || {
                file_contains(&log, "+monitor master")
            })?;
            others.push(s);
        }
        let set = SentinelSet {
            primary_port,
            replica_port,
            sentinel_ports: ports[2..].to_vec(),
            primary: Some(primary),
            _others: others,
            _dir: dir.to_owned(),
        };
        // The replica in sync, and known to every Sentinel (they learn it
        // from the primary's INFO, every 10 s at first).
        wait(Duration::from_secs(30), "the replica in sync", || {
            command(replica_port, &["INFO", "replication"])
                .is_some_and(|s| s.contains("master_link_status:up"))
        })?;
        for (i, _) in set.sentinel_ports.iter().enumerate() {
            let log = dir.join(format!("sentinel-{i}.log"));
            wait(
                Duration::from_secs(30),
                "the Sentinels knowing the replica",
                || file_contains(&log, "+slave slave"),
            )?;
        }
        Ok(set)
    }

    /// Starts the killed primary again (as systemd would): the Sentinels
    /// turn it into a replica of the new primary. Waits until the new
    /// primary has it in sync.
    pub fn restart_old_primary(&mut self) -> Result<(), String> {
        let dir = self._dir.clone();
        let log = dir.join("primary-again.log");
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &self.primary_port.to_string(),
        ])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.join("primary"));
        let mut s = Service::spawn(&mut cmd, &log, &dir.join("pids"), "TERM")?;
        s.wait_ready("the old primary", &log, Duration::from_secs(20), || {
            file_contains(&log, "Ready to accept connections")
        })?;
        self.primary = Some(s);
        let new_primary = self.replica_port;
        // The Sentinels' reconfiguration and a full resync: seconds on an
        // idle machine, over a minute under heavy disk load (a fresh-ci run
        // beside a 15 GB data load timed out at 60 s).
        wait(
            Duration::from_secs(180),
            "the old primary back as a replica",
            || {
                command(new_primary, &["INFO", "replication"])
                    .is_some_and(|s| s.contains("connected_slaves:1") && s.contains("state=online"))
            },
        )
    }

    /// `host:port` of each Sentinel.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// Kills the primary (SIGKILL): the Sentinels fail over to the replica.
    pub fn kill_primary(&mut self) {
        drop(self.primary.take());
    }

    /// The port of the primary a Sentinel names now.
    pub fn current_primary(&self) -> Option<u16> {
        let answer = command(
            self.sentinel_ports[0],
            &["SENTINEL", "get-master-addr-by-name", SERVICE],
        )?;
        // "*2 $9 127.0.0.1 $4 6379": the last line is the port.
        answer.lines().last()?.trim().parse().ok()
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// `n` distinct free ports.
fn distinct_ports(n: usize) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for _ in 0..n * 20 {
        let p = free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
        if ports.len() == n {
            return Ok(ports);
        }
    }
    Err("no free ports".into())
}

fn wait(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    while !ready() {
        if std::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A command's raw RESP answer (loopback, 2 s timeout), or None.
fn command(port: u16, args: &[&str]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    // One answer: read until a short read after the first bytes.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}
