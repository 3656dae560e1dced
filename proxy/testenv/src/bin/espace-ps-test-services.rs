//! `espace-ps-test-services`: starts the test services (Redis, PostgreSQL,
//! the OpenID provider behind nginx), prints their `export` lines and waits;
//! they stop when this program does (Ctrl-C, SIGTERM) or when one of them
//! exits. Run by `scripts/test.sh --keep-services`, to run tests or tools by
//! hand against one set of services.

use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    espace_ps_testenv::own_the_run();
    let began = Instant::now();
    let vars = match espace_ps_testenv::exports() {
        Ok(vars) => vars,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Services are up ({:.1?}); in another shell:\n",
        began.elapsed()
    );
    for (k, v) in &vars {
        let _ = writeln!(out, "export {k}='{}'", v.replace('\'', r"'\''"));
    }
    let _ = writeln!(out, "\nCtrl-C stops them.");
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let dead = espace_ps_testenv::dead_services();
        if !dead.is_empty() {
            eprintln!("{} exited; stopping", dead.join(", "));
            std::process::exit(1);
        }
    }
}
