//! The services the espace-ps tests talk to, started by the tests
//! themselves: a throwaway Redis, a PostgreSQL cluster, and the PSC
//! look-alike OpenID provider with nginx in front of it for mutual TLS (and
//! the throwaway PKI for it). A test asks for one with [`peer`], by the name
//! of the environment variable that `scripts/test.sh` used to export
//! (`ESPACE_TEST_REDIS_URL`, `ESPACE_TEST_PG_URL`, `ESPACE_TEST_OIDC_*`,
//! `ESPACE_TEST_MTLS_*`, and `ESPACE_TEST_TLS_*` for Redis and PostgreSQL
//! over TLS on a throwaway CA).
//!
//! - When that variable is set, its value is used and nothing is started
//!   (services someone runs by hand: `scripts/test.sh --keep-services`).
//! - Otherwise the service is started once per **test run** and shared by
//!   every test process of the run. nextest runs each test in a process of
//!   its own, so a service per process would start hundreds of times
//!   (PostgreSQL's `initdb` alone takes seconds): the run is the process
//!   that started the test binary (nextest, or cargo for `cargo test`),
//!   identified by its pid and start time. The first test process that
//!   needs a service starts it under a lock file in the run's directory
//!   (`$TMPDIR/espace-ps-tests-UID/run-PID-START/`) and writes its addresses
//!   there; the others read them. The services run in process groups of
//!   their own, with their output in log files (no pipe of a test stays
//!   open), and a small watchdog (`/bin/sh`) per service waits for the run
//!   to end, then stops them and removes their data: nothing outlives the
//!   `cargo nextest run` or `cargo test` that started it.
//!
//! Linux only (`/proc`); the programs come from Debian's packages
//! (`redis-server`, `postgresql`, `nginx`, `openssl`, `curl`, `nodejs`,
//! `npm`), which `scripts/test.sh` installs.

mod oidc;
mod pki;
mod postgres;
mod process;
mod redis;
pub mod sentinel;
mod tls;

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use process::{alive, stat, Service};

/// A service's variables: name and value.
type Vars = Vec<(String, String)>;

/// A service started by this process: its variables, and its processes
/// (stopped on drop until [`Service::keep`]).
pub(crate) struct Started {
    pub(crate) vars: Vars,
    pub(crate) services: Vec<Service>,
}

/// The services, each with the variables that name it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Group {
    Redis,
    Postgres,
    Oidc,
    /// Redis and PostgreSQL over TLS on a throwaway CA.
    Tls,
}

impl Group {
    const ALL: [Group; 4] = [Group::Redis, Group::Postgres, Group::Oidc, Group::Tls];

    fn name(self) -> &'static str {
        match self {
            Group::Redis => "redis",
            Group::Postgres => "postgres",
            Group::Oidc => "oidc",
            Group::Tls => "tls",
        }
    }

    /// Its variables; the first one decides whether the group comes from the
    /// environment.
    fn vars(self) -> &'static [&'static str] {
        match self {
            Group::Redis => &["ESPACE_TEST_REDIS_URL"],
            Group::Postgres => &["ESPACE_TEST_PG_URL"],
            Group::Oidc => &[
                "ESPACE_TEST_OIDC_ISSUER",
                "ESPACE_TEST_OIDC_CONTROL",
                "ESPACE_TEST_MTLS_URL",
                "ESPACE_TEST_MTLS_CA",
                "ESPACE_TEST_MTLS_CLIENT_CERT",
                "ESPACE_TEST_MTLS_CLIENT_KEY",
                "ESPACE_TEST_MTLS_CLIENT_DN",
                "ESPACE_TEST_MTLS_OTHER_CERT",
                "ESPACE_TEST_MTLS_OTHER_KEY",
            ],
            Group::Tls => &[
                "ESPACE_TEST_TLS_REDIS_URL",
                "ESPACE_TEST_TLS_PG_URL",
                "ESPACE_TEST_TLS_CA",
                "ESPACE_TEST_TLS_OTHER_CA",
                "ESPACE_TEST_TLS_CLIENT_CERT",
                "ESPACE_TEST_TLS_CLIENT_KEY",
            ],
        }
    }

    fn of(var: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.vars().contains(&var))
    }

    fn index(self) -> usize {
        self as usize
    }

    fn start(self, dir: &Path, pids: &Path) -> Result<Started, String> {
        match self {
            Group::Redis => redis::start(dir, pids),
            Group::Postgres => postgres::start(dir, pids),
            Group::Oidc => oidc::start(dir, pids),
            Group::Tls => tls::start(dir, pids),
        }
    }
}

/// The value of a test service variable (`ESPACE_TEST_REDIS_URL`,
/// `ESPACE_TEST_PG_URL`, `ESPACE_TEST_OIDC_*`, `ESPACE_TEST_MTLS_*`): from
/// the environment when set, else from the service this run shares,
/// started now if no test process of the run did yet. Panics (the test
/// fails) with the reason when the service cannot be started.
pub fn peer(var: &str) -> String {
    let group = Group::of(var).unwrap_or_else(|| panic!("{var} is not a test service variable"));
    let vars = group_vars(group).unwrap_or_else(|e| panic!("{var}: {e}"));
    vars.into_iter()
        .find(|(k, _)| k == var)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{var} missing from the {} service", group.name()))
}

/// Every test service variable with its value, the services started (side
/// by side) where their variables are not set.
pub fn exports() -> Result<Vec<(String, String)>, String> {
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = Group::ALL
            .into_iter()
            .map(|g| s.spawn(move || group_vars(g)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

/// Makes this process the owner of the run: the services it starts live
/// as long as it does (the `espace-ps-test-services` program). Call it
/// before anything else of this crate.
pub fn own_the_run() {
    let me = std::process::id();
    let _ = OWNER.set(Owner {
        pid: me,
        start: stat(me).map(|(_, s)| s).unwrap_or(0),
    });
}

/// The services of this run (started by this crate, not from the
/// environment) whose processes have exited.
pub fn dead_services() -> Vec<&'static str> {
    let Ok(run) = run_dir(owner()) else {
        return Vec::new();
    };
    Group::ALL
        .into_iter()
        .filter(|g| {
            std::fs::read_to_string(run.join(format!("{}.env", g.name())))
                .is_ok_and(|s| !parse_state(&s).0.iter().all(|&(p, t)| alive(p, t)))
        })
        .map(Group::name)
        .collect()
}

/// The variables of a group: the environment's, or the shared service's
/// (looked up once per process).
fn group_vars(group: Group) -> Result<Vars, String> {
    if let Some(vars) = from_env(group, |n| std::env::var(n).ok()) {
        return vars;
    }
    static CACHE: [OnceLock<Result<Vars, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    CACHE[group.index()].get_or_init(|| shared(group)).clone()
}

/// The group's variables from `env` when its first one is set (all of them
/// then, or an error); `None` when it is not.
fn from_env(group: Group, env: impl Fn(&str) -> Option<String>) -> Option<Result<Vars, String>> {
    let names = group.vars();
    env(names[0])?;
    Some(
        names
            .iter()
            .map(|&n| {
                env(n).map(|v| (n.to_owned(), v)).ok_or_else(|| {
                    format!(
                        "{} is set but {n} is not: set every variable of the {} service or none \
                         (the tests then start it)",
                        names[0],
                        group.name()
                    )
                })
            })
            .collect(),
    )
}

/// The process whose life is the run's, by pid and start time.
#[derive(Clone, Copy, Debug)]
struct Owner {
    pid: u32,
    start: u64,
}

static OWNER: OnceLock<Owner> = OnceLock::new();

/// The run: the process that started this test binary (nextest, cargo,
/// a shell), or this process when it is an orphan.
fn owner() -> Owner {
    *OWNER.get_or_init(|| {
        let parent = std::os::unix::process::parent_id();
        match stat(parent) {
            Some((_, start)) if parent > 1 => Owner { pid: parent, start },
            _ => {
                let me = std::process::id();
                Owner {
                    pid: me,
                    start: stat(me).map(|(_, s)| s).unwrap_or(0),
                }
            }
        }
    })
}

/// `$TMPDIR/espace-ps-tests-UID/run-PID-START`, created (traversable by the
/// PostgreSQL user when we are root).
fn run_dir(owner: Owner) -> Result<PathBuf, String> {
    let run = base_dir()?.join(format!("run-{}-{}", owner.pid, owner.start));
    std::fs::create_dir_all(&run).map_err(|e| format!("{}: {e}", run.display()))?;
    Ok(run)
}

/// `$TMPDIR/espace-ps-tests-UID`, created, ours.
pub(crate) fn base_dir() -> Result<PathBuf, String> {
    let uid = rustix::process::getuid().as_raw();
    let base = std::env::temp_dir().join(format!("espace-ps-tests-{uid}"));
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let meta = std::fs::metadata(&base).map_err(|e| e.to_string())?;
    if meta.uid() != uid {
        return Err(format!("{} belongs to another user", base.display()));
    }
    Ok(base)
}

/// Opens (creating) `path` and takes an exclusive lock on it, held until
/// the file is dropped.
pub(crate) fn lock_file(path: &Path) -> Result<File, String> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(f)
}

/// The state file: `pid PID START` lines, then `NAME=VALUE` lines.
fn parse_state(s: &str) -> (Vec<(u32, u64)>, Vars) {
    let mut procs = Vec::new();
    let mut vars = Vec::new();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix("pid ") {
            if let Some((p, t)) = rest.split_once(' ') {
                if let (Ok(p), Ok(t)) = (p.parse(), t.parse()) {
                    procs.push((p, t));
                }
            }
        } else if let Some((k, v)) = line.split_once('=') {
            vars.push((k.to_owned(), v.to_owned()));
        }
    }
    (procs, vars)
}

/// The group's service for this run: reused, or started (once per run: the
/// lock file makes the other test processes wait, then read its state).
fn shared(group: Group) -> Result<Vars, String> {
    let owner = owner();
    let run = run_dir(owner)?;
    let name = group.name();
    let file = |ext: &str| run.join(format!("{name}.{ext}"));
    let _lock = lock_file(&file("lock"))?;
    if let Ok(e) = std::fs::read_to_string(file("failed")) {
        return Err(format!(
            "{e}\n(an earlier test process of this run failed to start it; see {})",
            file("failed").display()
        ));
    }
    if let Ok(s) = std::fs::read_to_string(file("env")) {
        let (procs, vars) = parse_state(&s);
        if procs.iter().all(|&(p, t)| alive(p, t)) {
            return Ok(vars);
        }
        eprintln!("espace-ps-testenv: the shared {name} exited; starting it again");
    }
    sweep_stale_runs(&run);
    ensure_watchdog(owner, &run, name)?;
    let dir = run.join(name);
    let began = Instant::now();
    let mut error = String::new();
    // A service that lost the race for its port exits: try again.
    for attempt in 1..=3 {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match group.start(&dir, &file("pids")) {
            Ok(started) => {
                let mut state = String::new();
                for s in &started.services {
                    let _ = writeln!(state, "pid {} {}", s.pid, s.start);
                }
                for (k, v) in &started.vars {
                    let _ = writeln!(state, "{k}={v}");
                }
                let tmp = file("env.tmp");
                std::fs::write(&tmp, state)
                    .and_then(|()| std::fs::rename(&tmp, file("env")))
                    .map_err(|e| format!("{}: {e}", file("env").display()))?;
                started.services.into_iter().for_each(Service::keep);
                eprintln!(
                    "espace-ps-testenv: {name} started in {:.2?} (attempt {attempt}) in {}, \
                     shared until process {} ends",
                    began.elapsed(),
                    dir.display(),
                    owner.pid
                );
                return Ok(started.vars);
            }
            Err(e) => error = e,
        }
    }
    let error = format!("could not start {name} for the tests: {error}");
    let _ = std::fs::write(file("failed"), &error);
    Err(error)
}

/// Stops a service's processes and removes its files once the run's owner
/// is gone. Arguments: OWNER_PID OWNER_START RUN_DIR NAME. The processes are
/// the `PID:START:SIGNAL` lines of RUN_DIR/NAME.pids (a pid is signalled
/// only while it is still the process that started at START): each gets its
/// stop signal, then SIGKILL if it still runs 10 s later.
const WATCHDOG: &str = r#"
owner=$1 owner_start=$2 run=$3 name=$4
alive() {
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  want=$2
  set -- ${st##*") "}
  [ "$1" != Z ] && [ "${20}" = "$want" ]
}
signal_all() {
  left=
  for p in $pids; do
    pid=${p%%:*}
    rest=${p#*:}
    start=${rest%%:*}
    sig=${rest#*:}
    if alive "$pid" "$start"; then
      left=1
      case $1 in
        "") ;;
        -) kill -s "$sig" "$pid" 2>/dev/null ;;
        *) kill -s "$1" "$pid" 2>/dev/null ;;
      esac
    fi
  done
  [ -n "$left" ]
}
while alive "$owner" "$owner_start"; do sleep 0.5; done
pids=$(cat "$run/$name.pids" 2>/dev/null)
signal_all -
i=0
while [ $i -lt 100 ] && signal_all ""; do sleep 0.1; i=$((i + 1)); done
signal_all KILL
rm -rf "$run/$name" "$run/$name".*
rmdir "$run" 2>/dev/null
exit 0
"#;

/// Removes what runs whose owner and watchdogs are all gone left behind
/// (a watchdog killed with its session): their processes get SIGKILL, their
/// directories are removed. `current` is this run's directory.
fn sweep_stale_runs(current: &Path) {
    let Some(base) = current.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let pid_start = |s: &str| -> Option<(u32, u64)> {
        let mut it = s.trim().split(':');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    for run in entries.flatten().map(|e| e.path()) {
        let Some(owner) = run
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|n| pid_start(&n.replacen('-', ":", 1)))
        else {
            continue;
        };
        if run == current || alive(owner.0, owner.1) {
            continue;
        }
        let files: Vec<PathBuf> = std::fs::read_dir(&run)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        let read = |ext: &str| {
            files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == ext))
                .filter_map(|f| std::fs::read_to_string(f).ok())
                .flat_map(|s| s.lines().filter_map(pid_start).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        if read("watchdog").iter().any(|&(p, t)| alive(p, t)) {
            continue;
        }
        for (p, t) in read("pids") {
            if alive(p, t) {
                if let Some(pid) = rustix::process::Pid::from_raw(p as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&run);
    }
}

/// Starts the group's watchdog unless it runs already.
fn ensure_watchdog(owner: Owner, run: &Path, name: &str) -> Result<(), String> {
    let marker = run.join(format!("{name}.watchdog"));
    if let Ok(s) = std::fs::read_to_string(&marker) {
        if let Some((p, t)) = s.trim().split_once(':') {
            if let (Ok(p), Ok(t)) = (p.parse(), t.parse()) {
                if alive(p, t) {
                    return Ok(());
                }
            }
        }
    }
    // The script comes on standard input (`ps` shows the arguments only).
    let mut child = Command::new("/bin/sh")
        .args(["-s", "--"])
        .arg(owner.pid.to_string())
        .arg(owner.start.to_string())
        .arg(run)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("watchdog: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(WATCHDOG.as_bytes())
            .map_err(|e| format!("watchdog: {e}"))?;
    }
    let start = stat(child.id()).map(|(_, s)| s).unwrap_or(0);
    std::fs::write(&marker, format!("{}:{start}\n", child.id())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_belongs_to_one_group() {
        for g in Group::ALL {
            assert_eq!(Group::ALL[g.index()], g);
            for v in g.vars() {
                assert_eq!(Group::of(v), Some(g));
            }
        }
        assert_eq!(Group::of("ESPACE_TEST_NOW"), None);
    }

    #[test]
    fn set_variables_are_used_all_or_none() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(from_env(Group::Redis, env(&[])).is_none());
        assert_eq!(
            from_env(
                Group::Redis,
                env(&[("ESPACE_TEST_REDIS_URL", "redis://h:1/")])
            ),
            Some(Ok(vec![(
                "ESPACE_TEST_REDIS_URL".into(),
                "redis://h:1/".into()
            )]))
        );
        // Only a secondary variable set: the service is started.
        assert!(from_env(Group::Oidc, env(&[("ESPACE_TEST_MTLS_CA", "/ca.pem")])).is_none());
        // The first one without the others: an error naming a missing one.
        let e = from_env(Group::Oidc, env(&[("ESPACE_TEST_OIDC_ISSUER", "http://i")]))
            .unwrap()
            .unwrap_err();
        assert!(e.contains("ESPACE_TEST_OIDC_CONTROL"), "{e}");
    }

    #[test]
    fn state_round_trips() {
        let (procs, vars) = parse_state("pid 12 345\npid 13 346\nA=x=y\nB=\n");
        assert_eq!(procs, vec![(12, 345), (13, 346)]);
        assert_eq!(
            vars,
            vec![("A".into(), "x=y".into()), ("B".into(), String::new())]
        );
    }
}
