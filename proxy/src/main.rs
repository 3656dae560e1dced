//! The `espace-ps` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use espace_ps::config::{Config, LogFormat};
use espace_ps::run::{
    apply_test_clock, init_logging, install_tls_provider, print_error_chain, serve_with,
    startup_runtime,
};

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
        /// Take the listening sockets over from the running espace-ps
        /// (then send it SIGQUIT): a binary upgrade with no refused
        /// connection (see docs/operations.md).
        #[arg(long)]
        upgrade: bool,
    },
    /// Check a configuration file: exit 0 with a one-line summary, or
    /// non-zero naming each offending key and its line.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
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
    /// The hospital records (see docs/records.md).
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Check and explain the access policies (see docs/policies.md).
    Policies {
        #[command(subcommand)]
        // Boxed: the largest variant, now that the demo commands are gone.
        command: Box<espace_ps_access::cli::PoliciesCommand>,
    },
    /// The audit trail: verify its chains, export a patient's accesses
    /// (see the "Audit trail" chapter of docs/operations.md).
    Audit {
        #[command(subcommand)]
        command: espace_ps::audit::cli::AuditCommand,
    },
    /// Bring the portal database's schema up to date, with the owner role
    /// (then `serve` runs with `[database] migrate = false` and a role that
    /// may only INSERT and SELECT the audit trail).
    Migrate {
        #[command(flatten)]
        target: espace_ps::audit::cli::Target,
    },
    /// Apply the retention of what espace-ps keeps about people besides the
    /// audit trail: expired dossier grants, old seen marks, dossier-number
    /// attempts and session revocations, unused accounts ("Audit trail"
    /// chapter of docs/operations.md;
    /// the trail itself: `audit purge`).
    Purge {
        /// The instances' configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Count what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
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
enum RecordsCommand {
    /// Refresh the name-search views (rec_patient_tokens, then
    /// rec_search_tokens) without blocking readers, and date the refresh
    /// (espace_records_search_refreshed_timestamp_seconds). Run it on a
    /// schedule (systemd timer, cron). PostgreSQL only.
    Refresh {
        /// The configuration file of the instances (its `[records] url`).
        #[arg(long, short)]
        config: PathBuf,
        /// A URL of a role allowed to refresh the views (their owner),
        /// instead of `[records] url` (read-only), or ESPACE_RECORDS_REFRESH_URL.
        #[arg(long, env = "ESPACE_RECORDS_REFRESH_URL")]
        url: Option<String>,
    },
}

/// `espace-ps records refresh`: 0 when refreshed, 2 on a configuration
/// error, 3 when the database fails.
fn records_command(command: RecordsCommand) -> ExitCode {
    let RecordsCommand::Refresh { config, url } = command;
    let config = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid configuration\n{e}", config.display());
            return ExitCode::from(2);
        }
    };
    init_logging(LogFormat::Text, "warn");
    if !apply_test_clock(&config) {
        return ExitCode::FAILURE;
    }
    let Some(url) = url.or(config.records.url.clone()) else {
        eprintln!("no records database: set [records] url or --url");
        return ExitCode::from(2);
    };
    if !url.starts_with("postgres") {
        eprintln!("only PostgreSQL records have views to refresh");
        return ExitCode::from(2);
    }
    match startup_runtime().block_on(espace_ps::records_refresh::refresh(&url)) {
        Ok(took) => {
            println!(
                "records name-search views refreshed in {:.1} s",
                took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error_chain(&e);
            ExitCode::from(3)
        }
    }
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
            use espace_ps::audit::{AuditEvent, Event, Outcome};
            // No method: the command line is named in `detail` (as stored so far).
            db.audit(
                &AuditEvent::new(Event::DossierNumberUnlocked, Outcome::Success)
                    .on(number.clone())
                    .detail("cli"),
            )
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

fn main() -> ExitCode {
    install_tls_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Policies { command } => espace_ps_access::cli::run(*command),
        Command::Sessions { command } => sessions_command(command),
        Command::Dossiers { command } => dossiers(command),
        Command::Records { command } => records_command(command),
        Command::Audit { command } => espace_ps::audit::cli::run(command),
        Command::Migrate { target } => espace_ps::audit::cli::migrate(target),
        Command::Purge { config, dry_run } => espace_ps::retention::run(&config, dry_run),
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
        Command::Serve { config, upgrade } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration\n{e}", config.display());
                    return ExitCode::from(2);
                }
            };
            init_logging(config.logging.format, &config.logging.level);
            serve_with(config, Vec::new(), upgrade)
        }
    }
}
