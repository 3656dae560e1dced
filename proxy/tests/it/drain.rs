//! Graceful drain and upgrade (`drain.rs`): on SIGTERM `/-/readyz` answers
//! 503 at once, new connections are still served during the drain delay,
//! then refused, and a download started before the signal completes, byte
//! for byte; the process then exits by itself, long before its grace period
//! ends. On `serve --upgrade` + SIGQUIT a new process takes the listening
//! socket over: no connection is refused while the old one hands over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::devidp_login::proxy_with_dev_idp;
use super::harness::*;

const ELISE: &str = "899700123450";
/// The download: 40 MiB, streamed by the viewer in 128 KiB chunks 25 ms
/// apart (8 s at least), so that it spans the signal, the drain delay and
/// the listeners' closing.
const CHUNK: usize = 128 * 1024;
const CHUNKS: usize = 320;
/// `server.drain_delay_secs` of the test.
const DRAIN_DELAY: Duration = Duration::from_secs(4);
const TOTAL: u64 = (CHUNK * CHUNKS) as u64;

/// The byte at `offset` of the download (a pattern the client checks).
fn byte_at(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// A viewer that streams every answer slowly (see [`CHUNK`]).
async fn start_slow_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let header = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/javascript\r\n\
                     content-length: {TOTAL}\r\nconnection: close\r\n\r\n"
                );
                if sock.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                for c in 0..CHUNKS {
                    let start = (c * CHUNK) as u64;
                    let chunk: Vec<u8> = (0..CHUNK as u64).map(|i| byte_at(start + i)).collect();
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            });
        }
    });
    addr
}

/// Is the process gone (exited, or a zombie its parent has not reaped)?
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rfind(')').is_some_and(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A GET on a connection of its own (a client that keeps none open).
async fn fresh_get(url: &str) -> Result<reqwest::Response, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
}

#[tokio::test]
async fn sigterm_drains_a_download_finishes_and_new_connections_are_served_during_the_delay() {
    let upstream = start_slow_upstream().await;
    let (proxy, _idp, _) = proxy_with_dev_idp(ProxyOpts {
        upstream: Some(upstream),
        server: Some(format!(
            "drain_delay_secs = {}\ngrace_period_secs = 60\n",
            DRAIN_DELAY.as_secs()
        )),
        ..Default::default()
    })
    .await;
    let b = Browser::new();
    let home = dev_idp_login(&b, &proxy.base, ELISE, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);

    // The download starts before the signal.
    let received = Arc::new(AtomicU64::new(0));
    let download = {
        let (client, received) = (b.client.clone(), received.clone());
        let url = format!("{}/web-viewer/libs/big.js", proxy.base);
        tokio::spawn(async move {
            let mut r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let mut offset = 0u64;
            while let Some(chunk) = r.chunk().await.unwrap() {
                for (i, byte) in chunk.iter().enumerate() {
                    assert_eq!(
                        *byte,
                        byte_at(offset + i as u64),
                        "at {}",
                        offset + i as u64
                    );
                }
                offset += chunk.len() as u64;
                received.store(offset, Ordering::SeqCst);
            }
            offset
        })
    };
    wait_until(
        Duration::from_secs(10),
        "the download's first bytes",
        || {
            let r = received.load(Ordering::SeqCst);
            async move { r > 0 }
        },
    )
    .await;

    let pid = proxy.pid();
    signal(pid, "TERM");
    let signalled = Instant::now();
    // Out of the gateway's rotation at once…
    let readyz = format!("{}/-/readyz", proxy.base);
    wait_until(DRAIN_DELAY, "readyz answering 503", || {
        let readyz = readyz.clone();
        async move {
            fresh_get(&readyz)
                .await
                .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        }
    })
    .await;
    // …yet a new connection is still served during the drain delay.
    let served = fresh_get(&format!("{}/-/healthz", proxy.base))
        .await
        .expect("a new connection during the drain delay");
    assert_eq!(served.status(), StatusCode::OK);
    assert!(
        signalled.elapsed() < DRAIN_DELAY,
        "checked after the drain delay: {:?}",
        signalled.elapsed()
    );

    // Then the listener closes while the download is still going.
    let healthz = format!("{}/-/healthz", proxy.base);
    wait_until(Duration::from_secs(10), "new connections refused", || {
        let healthz = healthz.clone();
        async move { fresh_get(&healthz).await.is_err() }
    })
    .await;
    let at_close = received.load(Ordering::SeqCst);
    assert!(
        at_close < TOTAL,
        "the download ended before the listener closed: the test proves nothing"
    );

    // The download completes, every byte right.
    let total = tokio::time::timeout(Duration::from_secs(60), download)
        .await
        .expect("download finished")
        .unwrap();
    assert_eq!(total, TOTAL);
    // And the process leaves as soon as nothing is in flight, not after
    // its 60 s grace period.
    wait_until(Duration::from_secs(15), "espace-ps exited", || async move {
        exited(pid)
    })
    .await;
    assert!(signalled.elapsed() < Duration::from_secs(40));
    assert!(proxy.logs().contains("drained: no request in flight"));
}

#[tokio::test]
async fn an_upgrade_hands_the_listening_socket_over_without_refusing_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let old = Proxy::start(ProxyOpts {
        upstream: Some(start_echo_upstream().await.0),
        server: Some(format!(
            "drain_delay_secs = 0\ngrace_period_secs = 30\nupgrade_sock = \"{}\"\n",
            sock.display()
        )),
        ..Default::default()
    })
    .await;
    // Clients keep opening new connections throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let hammer = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = format!("{}/-/healthz", old.base);
        tokio::spawn(async move {
            // Bounded: at most 3000 requests (a few per 10 ms).
            for _ in 0..3000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match fresh_get(&url).await {
                    Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // The new binary waits for the sockets on the upgrade socket…
    let config = old.dir.path().join("espace-ps.toml");
    let stderr = dir.path().join("new.log");
    let mut new = std::process::Command::new(BIN)
        .args(["serve", "--upgrade", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let sock_for_wait = sock.clone();
    wait_until(Duration::from_secs(20), "the upgrade socket", || {
        let s = sock_for_wait.clone();
        async move { s.exists() }
    })
    .await;
    // …and the old one hands them over on SIGQUIT, then drains and exits.
    let old_pid = old.pid();
    signal(old_pid, "QUIT");
    wait_until(
        Duration::from_secs(40),
        "the old process exited",
        || async move { exited(old_pid) },
    )
    .await;
    // The new one serves on the same address, on new connections.
    let r = fresh_get(&format!("{}/-/healthz", old.base))
        .await
        .expect("the new process answers");
    assert_eq!(r.status(), StatusCode::OK);
    stop.store(true, Ordering::SeqCst);
    hammer.await.unwrap();
    let _ = new.kill();
    let _ = new.wait();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(ok > 50, "too few requests to prove anything: {ok}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the upgrade\n{}",
        ok + failed,
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
}
