//! Running espace-ps as a process: logging, the start-up runtime, and
//! [`serve`], which the `espace-ps serve` command and the separate demo
//! binary (`espace-ps-demo`, which adds its dev identity provider as an
//! extra service) both call.

use std::process::ExitCode;
use std::time::Duration;

use pingora::services::ServiceWithDependents;

use crate::app::App;
use crate::config::{Config, LogFormat};
use crate::server::build_server;

/// Installs rustls's process-wide crypto provider (ring) once, before any
/// TLS connection: Redis (`rediss://`) asks rustls for the process default,
/// and a process where two providers are compiled in and none is installed
/// panics at its first TLS connection. Pingora, reqwest and sqlx use ring
/// too. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Logs to stderr (stdout is for what the commands print), as text or JSON,
/// at `level` unless `RUST_LOG` says otherwise.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    // Logs go to stderr; stdout is for what the commands print.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A runtime that lives as long as the process: the database pool and
/// other connections made at start-up are driven by it.
pub fn startup_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("espace-io")
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// An error and its causes, one per line, on stderr.
pub fn print_error_chain(e: &dyn std::error::Error) {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}

/// Moves espace-ps's clock by the configuration's `[testing]
/// clock_offset_secs`, if any (tests); false when it cannot be moved.
pub fn apply_test_clock(config: &Config) -> bool {
    let Some(offset) = config.testing.clock_offset else {
        return true;
    };
    if crate::clock::set_offset(offset).is_err() {
        eprintln!("the clock could not be moved: it already was");
        return false;
    }
    tracing::warn!(
        offset_secs = offset.whole_seconds(),
        "the clock is moved ([testing] clock_offset_secs): for tests only"
    );
    true
}

/// Builds the application from `config` and runs the proxy until the
/// process is stopped, with `extra` services (listeners already added) on
/// the same Pingora server: the demo binary adds its dev identity provider
/// there; `espace-ps serve` adds none.
pub fn serve(config: Config, extra: Vec<Box<dyn ServiceWithDependents>>) -> ExitCode {
    serve_with(config, extra, false)
}

/// [`serve`]; with `upgrade`, taking the listening sockets over from the
/// running process (`espace-ps serve --upgrade`, then SIGQUIT to the old
/// one: see `drain`).
pub fn serve_with(
    config: Config,
    extra: Vec<Box<dyn ServiceWithDependents>>,
    upgrade: bool,
) -> ExitCode {
    install_tls_provider();
    if !apply_test_clock(&config) {
        return ExitCode::FAILURE;
    }
    let app = match startup_runtime().block_on(App::build(config.clone())) {
        Ok(app) => app,
        Err(e) => {
            print_error_chain(&e);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("{}", config.summary());
    // The age of the records' name-search views, as a metric.
    if let Some(records) = app.router.records.clone() {
        crate::records_refresh::watch(records, Duration::from_secs(60));
    }
    // SIGHUP reloads the policies (as a file change does).
    let engine = app.access.policies().clone();
    let viewer = app.gate.clone();
    let (dir, name) = (config.policies.dir.clone(), config.upstream.viewer.clone());
    startup_runtime().spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policies");
            let outcome = engine.reload();
            // Route tables are not watched: SIGHUP reloads them too.
            if !matches!(outcome, espace_ps_access::ReloadOutcome::Rejected { .. }) {
                crate::viewer::reload_route_table(&viewer, &dir, &name);
            }
            crate::app::record_reload(outcome);
        }
    });
    let mut server = build_server(&config, app, upgrade);
    server.add_services(extra);
    // SIGTERM, SIGQUIT and SIGINT are ours (see `drain`): readyz flips and
    // the listeners stay open for the drain delay; the process ends once
    // no request is left in flight, within the grace period.
    crate::drain::exit_when_idle(server.watch_execution_phase(), Duration::from_millis(250));
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(crate::drain::DrainSignal {
            drain_delay: config.server.drain_delay,
        }),
    });
    ExitCode::SUCCESS
}
