//! Processes of the test services: spawning one detached from the test
//! (its own process group, output to a log file, its pid recorded for the
//! watchdog), waiting until it is ready, and telling whether a pid is still
//! the process we started (Linux `/proc`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// State and start time (clock ticks since boot) of a process, from
/// `/proc/PID/stat`; the start time tells a process from a later one that
/// got the same pid.
pub(crate) fn stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // starttime is field 22 of the line, the 20th after COMM.
    Some((state, fields.get(19)?.parse().ok()?))
}

/// Is `pid` still the process that started at `start`, and not a zombie?
pub(crate) fn alive(pid: u32, start: u64) -> bool {
    matches!(stat(pid), Some((state, s)) if s == start && state != 'Z')
}

/// A loopback TCP port nobody listens on now (the kernel's choice; a
/// service that loses the race fails to bind and is started again).
pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `n` random bytes from the kernel, in hex.
pub(crate) fn random_hex(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last lines of a log file, for an error message.
pub(crate) fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("---- last lines of {}\n{tail}\n----", path.display())
}

/// Runs a command to its end; its standard output, or an error with its
/// output when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A service process we started: killed on drop unless [`Service::keep`]
/// was called (then the run's watchdog stops it when the run ends).
pub(crate) struct Service {
    child: Option<Child>,
    pub(crate) pid: u32,
    /// Its start time (see [`stat`]).
    pub(crate) start: u64,
}

impl Service {
    /// Spawns `cmd` in a process group of its own (a signal to the test's
    /// group, e.g. nextest's on a timeout, does not reach a service other
    /// tests share), with standard output and error appended to `log` (so
    /// that no pipe of the test stays open: nextest would call it leaky),
    /// and records `PID:START:SIGNAL` in `pids`, the file the watchdog reads.
    pub(crate) fn spawn(
        cmd: &mut Command,
        log: &Path,
        pids: &Path,
        stop_signal: &str,
    ) -> Result<Service, String> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        let pid = child.id();
        let start = stat(pid).map(|(_, s)| s).unwrap_or(0);
        let service = Service {
            child: Some(child),
            pid,
            start,
        };
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(pids)
            .and_then(|mut f| writeln!(f, "{pid}:{start}:{stop_signal}"))
            .map_err(|e| format!("{}: {e}", pids.display()))?;
        Ok(service)
    }

    /// Waits until `ready` holds: an error with the end of `log` when the
    /// process exits first or `timeout` passes.
    pub(crate) fn wait_ready(
        &mut self,
        what: &str,
        log: &Path,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{what} exited ({status}) before it was ready\n{}",
                        log_tail(log)
                    ));
                }
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    log_tail(log)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Leaves the process running once the test process is gone.
    pub(crate) fn keep(mut self) {
        self.child = None;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Does the file contain `needle` (a service's "ready" line in its log:
/// proves that OUR process listens, not another one on the same port)?
pub(crate) fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
}

/// Does `GET path` on 127.0.0.1:`port` answer 200 (plain HTTP/1.0)?
pub(crate) fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_wrong_start_is_not() {
        let me = std::process::id();
        let (state, start) = stat(me).expect("own /proc stat");
        assert_ne!(state, 'Z');
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        assert!(stat(u32::MAX).is_none());
    }

    #[test]
    fn random_hex_has_the_length_asked() {
        let h = random_hex(8).unwrap();
        assert_eq!(h.len(), 16);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
