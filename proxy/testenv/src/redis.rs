//! A throwaway Redis: no persistence, loopback only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{file_contains, free_port, Service};
use crate::Started;

pub(crate) fn start(dir: &Path, pids: &Path) -> Result<Started, String> {
    let port = free_port()?;
    let log = dir.join("redis.log");
    let mut redis = Service::spawn(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir),
        &log,
        pids,
        "TERM",
    )?;
    redis.wait_ready("redis-server", &log, Duration::from_secs(20), || {
        file_contains(&log, "Ready to accept connections") && ping(port)
    })?;
    Ok(Started {
        vars: vec![(
            "ESPACE_TEST_REDIS_URL".into(),
            format!("redis://127.0.0.1:{port}/"),
        )],
        services: vec![redis],
    })
}

/// Does Redis on `port` answer PING?
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = [0u8; 5];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut answer).is_ok() && &answer == b"+PONG"
}
