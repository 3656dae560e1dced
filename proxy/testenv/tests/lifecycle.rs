//! The services' life from start to cleanup, through the
//! `espace-ps-test-services` program (the owner of its own run): it starts
//! every service, the addresses it prints answer, and once it is gone the
//! watchdogs stop every process of the run and remove the run's directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Is there a live process (not a zombie) with this pid?
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rfind(')').is_some_and(|i| !s[i + 2..].starts_with('Z')))
}

#[test]
fn services_start_answer_and_stop_with_their_run() {
    let mut program = Command::new(env!("CARGO_BIN_EXE_espace-ps-test-services"))
        .env_remove("ESPACE_TEST_REDIS_URL")
        .env_remove("ESPACE_TEST_PG_URL")
        .env_remove("ESPACE_TEST_OIDC_ISSUER")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut vars = Vec::new();
    for line in BufReader::new(program.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("Ctrl-C") {
            break;
        }
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            vars.push((k.to_owned(), v.trim_matches('\'').to_owned()));
        }
    }
    let var = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not printed: {vars:?}"))
    };
    assert_eq!(vars.len(), 17, "{vars:?}");

    // Redis answers PING; PostgreSQL and the provider accept connections.
    let redis = var("ESPACE_TEST_REDIS_URL");
    let addr = redis.trim_start_matches("redis://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 5];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG");
    let pg = var("ESPACE_TEST_PG_URL");
    let pg_addr = pg.split('@').nth(1).unwrap().split('/').next().unwrap();
    TcpStream::connect(pg_addr).unwrap();
    let control = var("ESPACE_TEST_OIDC_CONTROL");
    TcpStream::connect(control.trim_start_matches("http://")).unwrap();
    assert!(std::path::Path::new(&var("ESPACE_TEST_MTLS_CLIENT_KEY")).exists());
    assert!(var("ESPACE_TEST_MTLS_CLIENT_DN").contains("CN=espace-ps-client"));
    // The TLS stores accept connections (their TLS is tested by espace-ps).
    for url in [
        var("ESPACE_TEST_TLS_REDIS_URL"),
        var("ESPACE_TEST_TLS_PG_URL"),
    ] {
        let host_port = url.rsplit('@').next().unwrap();
        let host_port = host_port.trim_start_matches("rediss://");
        TcpStream::connect(host_port.split('/').next().unwrap()).unwrap();
    }
    assert!(std::path::Path::new(&var("ESPACE_TEST_TLS_OTHER_CA")).exists());

    // The run's directory and the processes its state files name.
    let uid = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    let base = std::env::temp_dir().join(format!("espace-ps-tests-{}", uid.unwrap()));
    let prefix = format!("run-{}-", program.id());
    let run: PathBuf = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .expect("the program's run directory")
        .path();
    let mut pids = Vec::new();
    for name in ["redis", "postgres", "oidc", "tls"] {
        let state = std::fs::read_to_string(run.join(format!("{name}.env"))).unwrap();
        for line in state.lines() {
            if let Some(rest) = line.strip_prefix("pid ") {
                pids.push(rest.split(' ').next().unwrap().parse::<u32>().unwrap());
            }
        }
    }
    assert_eq!(
        pids.len(),
        6,
        "redis, postgres, node, nginx, Redis and PostgreSQL over TLS"
    );
    assert!(pids.iter().all(|&p| running(p)));

    program.kill().unwrap();
    program.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|&p| running(p)) || run.exists() {
        assert!(
            Instant::now() < deadline,
            "still there 30 s after the run ended: {:?}, {}",
            pids.iter().filter(|&&p| running(p)).collect::<Vec<_>>(),
            run.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
