//! The `espace-ps` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use espace_ps::app::App;
use espace_ps::config::{Config, LogFormat};
use espace_ps::devidp_server::DevIdpApp;
use espace_ps::server::build_server;
use espace_ps_devidp::{DevClient, DevIdp, DevIdpConfig};

/// mimalloc rather than the system allocator: a proxied request and a policy
/// decision make many small short-lived allocations (headers, Cedar values),
/// where it is measurably faster (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "espace-ps",
    version,
    about = "Espace professionnel de santé: Pro Santé Connect login and access policies in front of a hospital image viewer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a configuration file.
    Serve {
        /// The TOML configuration file (see docs/configuration.md).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file: exit 0 with a one-line summary, or
    /// non-zero naming each offending key and its line.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Run everything on this machine with embedded defaults: the dev
    /// identity provider, SQLite, in-memory sessions, the viewer on 127.0.0.1:8042.
    Demo {
        /// Where the portal listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the dev identity provider listens.
        #[arg(long, default_value = "127.0.0.1:8081")]
        idp_listen: SocketAddr,
        /// The admin listener (metrics).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// The viewer upstream (Orthanc in the demo).
        #[arg(long, default_value = "127.0.0.1:8042")]
        viewer: String,
        /// Where the demo keeps its SQLite database.
        #[arg(long, default_value = ".demo")]
        data_dir: PathBuf,
        /// The access policies directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Run the demo as if it were this instant (RFC 3339, e.g.
        /// 2028-02-29T10:00:00Z): the generated records, the unseen
        /// results, grants and sessions all follow (tests).
        #[arg(long, value_parser = espace_ps::clock::parse_instant)]
        now: Option<time::OffsetDateTime>,
    },
    /// Generate the demo records (seeded, reproducible) and load the
    /// matching DICOM studies into an Orthanc viewer.
    DemoData {
        /// The records database to fill (created if missing).
        #[arg(long, default_value = "sqlite://.demo/records.sqlite")]
        records: String,
        #[arg(long, default_value_t = 1961)]
        seed: u64,
        /// Random patients on top of the showcase ones.
        #[arg(long, default_value_t = 2000)]
        patients: u32,
        /// Orthanc's base URL; studies are generated and uploaded there.
        #[arg(long)]
        orthanc: Option<String>,
        /// At most this many studies are uploaded.
        #[arg(long, default_value_t = 400)]
        studies: u32,
    },
    /// Manage the sessions of running instances (see docs/operations.md).
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },

    /// Dossier-number access: unlock a number locked by its daily failure budget.
    Dossiers {
        #[command(subcommand)]
        command: DossiersCommand,
    },
    /// Check and explain the access policies (see docs/policies.md).
    Policies {
        #[command(subcommand)]
        command: espace_ps_access::cli::PoliciesCommand,
    },
    /// Run the development identity provider alone (a Pro Santé Connect
    /// look-alike for demos; never for production).
    DevIdp {
        /// Where it listens (loopback unless --allow-remote).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Allow a non-loopback listen address.
        #[arg(long)]
        allow_remote: bool,
        /// The client the proxy uses.
        #[arg(long, default_value = "espace-ps-demo")]
        client_id: String,
        /// The client secret (env ESPACE_DEVIDP_CLIENT_SECRET).
        #[arg(long, env = "ESPACE_DEVIDP_CLIENT_SECRET")]
        client_secret: String,
        /// The proxy's public origin, e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        portal_url: String,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// End every live session of a professional on every instance (card
    /// stolen, struck off). To also refuse new logins, add them to the
    /// `revoked` group of the policies' groups.toml.
    Revoke {
        /// The professional's national id (idNat_PS).
        #[arg(long)]
        national_id: String,
        /// The configuration file the instances run with (database, session store).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DossiersCommand {
    /// Clear the lock of a dossier number whose failed attempts (by anyone)
    /// ran out its daily budget; its past failures no longer count. Audited.
    Unlock {
        /// The dossier number, as typed on the portal's form.
        number: String,
        /// The configuration file of the instances (its portal database).
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn sessions_command(command: SessionsCommand) -> ExitCode {
    match command {
        SessionsCommand::Revoke {
            national_id,
            config,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration\n{e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let national_id = match espace_ps::identity::NationalId::parse(&national_id) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("error: --national-id: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(LogFormat::Text, "warn");
            // The revocation is dated on the instances' clock: sessions
            // opened before it end.
            if !apply_test_clock(&config) {
                return ExitCode::FAILURE;
            }
            match startup_runtime().block_on(espace_ps::revocation::revoke(&config, &national_id)) {
                Ok(report) => {
                    let ended = match report.ended_in_store {
                        Some(n) => format!("{n} live session(s) deleted from Redis; "),
                        None => String::new(),
                    };
                    println!(
                        "revoked: the sessions of {} opened until now end on every instance ({ended}each instance checks within {:?}); recorded at {} ms and audited",
                        national_id.as_str(),
                        espace_ps::revocation::REFRESH,
                        report.revoked_at_ms
                    );
                    println!(
                        "to refuse new logins, add this national id to [groups.{}] in groups.toml",
                        espace_ps::revocation::REVOKED_GROUP
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    print_error_chain(&e);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `espace-ps dossiers unlock`: 0 when unlocked, 1 when the number was not
/// locked, 2 on a configuration error, 3 when the database fails.
fn dossiers(command: DossiersCommand) -> ExitCode {
    let DossiersCommand::Unlock { number, config } = command;
    let config = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid configuration\n{e}", config.display());
            return ExitCode::from(2);
        }
    };
    init_logging(LogFormat::Text, "warn");
    // The audit record is dated on the instances' clock.
    if !apply_test_clock(&config) {
        return ExitCode::FAILURE;
    }
    let number = number.trim().to_owned();
    let run = async {
        let db = espace_ps::state::PortalDb::connect(&config.database.url, 1).await?;
        let unlocked = db.unlock_dossier_number(&number).await?;
        if unlocked {
            db.audit(&espace_ps::audit::AuditEvent {
                event: "dossier_number_unlocked",
                outcome: "success",
                resource: Some(number.clone()),
                detail: Some("cli".into()),
                ..Default::default()
            })
            .await?;
        }
        Ok::<_, espace_ps::state::DbError>(unlocked)
    };
    match startup_runtime().block_on(run) {
        Ok(true) => {
            println!("dossier number unlocked");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("this dossier number is not locked: nothing done");
            ExitCode::from(1)
        }
        Err(e) => {
            print_error_chain(&e);
            ExitCode::from(3)
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
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
fn startup_runtime() -> &'static tokio::runtime::Runtime {
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

fn print_error_chain(e: &dyn std::error::Error) {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}

const ISSUER_PATH: &str = "/auth/realms/esante-wallet";

fn dev_idp(listen: SocketAddr, client: DevClient) -> Result<Arc<DevIdp>, String> {
    let issuer =
        url::Url::parse(&format!("http://{listen}{ISSUER_PATH}")).map_err(|e| e.to_string())?;
    DevIdp::new(DevIdpConfig::with_defaults(issuer, vec![client]))
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policies { command } => espace_ps_access::cli::run(command),
        Command::Sessions { command } => sessions_command(command),
        Command::Dossiers { command } => dossiers(command),
        Command::DemoData {
            records,
            seed,
            patients,
            orthanc,
            studies,
        } => {
            init_logging(LogFormat::Text, "warn");
            let run = async {
                if let Some(dir) = espace_ps::demo::sqlite_file(&records)
                    .and_then(|p| std::path::Path::new(p).parent())
                {
                    let _ = std::fs::create_dir_all(dir);
                }
                let generated = espace_ps::demo::ensure_records(&records, seed, patients).await?;
                if !generated {
                    eprintln!("demo-data: {records} already holds records; left as is");
                }
                if let Some(o) = orthanc {
                    espace_ps::demo::load_studies(&records, &o, studies).await?;
                }
                Ok::<_, espace_ps::demo::DemoDataError>(())
            };
            match startup_runtime().block_on(run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    print_error_chain(&e);
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                println!("{}: {}", file.display(), c.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid configuration", file.display());
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration\n{e}", config.display());
                    return ExitCode::from(2);
                }
            };
            init_logging(config.logging.format, &config.logging.level);
            serve(config, None)
        }
        Command::Demo {
            listen,
            idp_listen,
            admin_listen,
            viewer,
            data_dir,
            policies,
            now,
        } => {
            init_logging(LogFormat::Text, "info");
            if let Some(t) = now {
                if espace_ps::clock::start_at(t).is_err() {
                    return ExitCode::FAILURE;
                }
                tracing::warn!(now = %t, "demo: the clock is moved (--now)");
            }
            if let Err(e) = std::fs::create_dir_all(&data_dir) {
                eprintln!("cannot create {}: {e}", data_dir.display());
                return ExitCode::FAILURE;
            }
            let secret = espace_ps::session::new_token();
            let public = format!("http://{listen}");
            let db = data_dir.join("espace-ps.sqlite");
            let records = format!("sqlite://{}", data_dir.join("records.sqlite").display());
            let prepared = startup_runtime().block_on(async {
                espace_ps::demo::ensure_records(&records, 1961, 2000).await?;
                // Load the studies into the viewer when it runs and is empty.
                let base = format!("http://{viewer}");
                let empty = match reqwest::get(format!("{base}/studies")).await {
                    Ok(r) if r.status().is_success() => r
                        .json::<Vec<serde_json::Value>>()
                        .await
                        .map(|v| v.is_empty())
                        .unwrap_or(false),
                    _ => {
                        eprintln!(
                            "demo: no viewer answers on {viewer}: the portal runs without images"
                        );
                        false
                    }
                };
                if empty {
                    espace_ps::demo::load_studies(&records, &base, 400).await?;
                }
                Ok::<_, espace_ps::demo::DemoDataError>(())
            });
            if let Err(e) = prepared {
                print_error_chain(&e);
                return ExitCode::FAILURE;
            }
            let toml = format!(
                r#"
[server]
listen = "{listen}"
admin_listen = "{admin_listen}"
public_url = "{public}"

[upstream]
address = "{viewer}"

[psc]
issuer = "http://{idp_listen}{ISSUER_PATH}"
client_id = "espace-ps-demo"
client_secret = "{secret}"
dev_idp = true

[database]
url = "sqlite://{}?mode=rwc"

[records]
url = "{records}?mode=ro"

[policies]
dir = "{}"
"#,
                db.display(),
                policies.display()
            );
            let config = match Config::from_toml(&toml, |_| None) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("demo configuration invalid (a bug):\n{e}");
                    return ExitCode::FAILURE;
                }
            };
            let idp = match dev_idp(
                idp_listen,
                DevClient {
                    client_id: "espace-ps-demo".into(),
                    client_secret: secret,
                    redirect_uris: vec![format!("{public}/auth/callback")],
                    post_logout_redirect_uris: vec![format!("{public}/auth/logged-out")],
                },
            ) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("dev identity provider: {e}");
                    return ExitCode::FAILURE;
                }
            };
            eprintln!("{}", idp.warning_banner());
            println!("\nEspace professionnel de santé (démonstration) : {public}/");
            println!("Identités de démonstration (fournisseur d'identité de développement) :");
            for p in idp.professionals() {
                println!("  {}  {}", p.national_id, p.display_name());
            }
            println!("Visualiseur attendu sur {viewer}. Arrêt : Ctrl-C.\n");
            serve(config, Some((idp_listen, idp)))
        }
        Command::DevIdp {
            listen,
            allow_remote,
            client_id,
            client_secret,
            portal_url,
        } => {
            init_logging(LogFormat::Text, "info");
            if !listen.ip().is_loopback() && !allow_remote {
                eprintln!("refusing to listen on {listen}: the dev identity provider binds to loopback unless --allow-remote is given");
                return ExitCode::from(2);
            }
            let portal = portal_url.trim_end_matches('/');
            let idp = match dev_idp(
                listen,
                DevClient {
                    client_id,
                    client_secret,
                    redirect_uris: vec![format!("{portal}/auth/callback")],
                    post_logout_redirect_uris: vec![format!("{portal}/auth/logged-out")],
                },
            ) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("dev identity provider: {e}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("{}", idp.warning_banner());
            let mut server = pingora::server::Server::new_with_opt_and_conf(
                Some(pingora::server::configuration::Opt::default()),
                pingora::server::configuration::ServerConf {
                    threads: 1,
                    grace_period_seconds: Some(0),
                    graceful_shutdown_timeout_seconds: Some(1),
                    ..Default::default()
                },
            );
            server.bootstrap();
            let mut svc = pingora::services::listening::Service::new(
                "espace-ps dev-idp".into(),
                DevIdpApp(idp),
            );
            svc.add_tcp(&listen.to_string());
            server.add_service(svc);
            server.run_forever()
        }
    }
}

/// Moves espace-ps's clock by the configuration's `[testing]
/// clock_offset_secs`, if any (tests); false when it cannot be moved.
fn apply_test_clock(config: &Config) -> bool {
    let Some(offset) = config.testing.clock_offset else {
        return true;
    };
    if espace_ps::clock::set_offset(offset).is_err() {
        eprintln!("the clock could not be moved: it already was");
        return false;
    }
    tracing::warn!(
        offset_secs = offset.whole_seconds(),
        "the clock is moved ([testing] clock_offset_secs): for tests only"
    );
    true
}

fn serve(config: Config, idp: Option<(SocketAddr, Arc<DevIdp>)>) -> ExitCode {
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
                espace_ps::viewer::reload_route_table(&viewer, &dir, &name);
            }
            espace_ps::app::record_reload(outcome);
        }
    });
    let mut server = build_server(&config, app);
    if let Some((listen, idp)) = idp {
        let mut svc =
            pingora::services::listening::Service::new("espace-ps dev-idp".into(), DevIdpApp(idp));
        svc.add_tcp(&listen.to_string());
        server.add_service(svc);
    }
    server.run_forever()
}
