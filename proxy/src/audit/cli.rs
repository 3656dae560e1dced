//! `espace-ps audit …`: the DPO's and the administrator's commands.
//!
//! - `verify` checks the hash chains (and the heads given with `--heads`):
//!   exit 0 intact, 1 broken (the first broken row is printed), 2 a
//!   configuration or argument error, 3 the database failed;
//! - `heads` prints the last row of every chain, to copy out of the
//!   database;
//! - `export` lists the accesses to one patient's data, or one
//!   professional's accesses, in French (CSV, JSON or printable HTML).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, LogFormat};
use crate::run::{init_logging, print_error_chain, startup_runtime};
use crate::state::PortalDb;

/// `espace-ps audit <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no row of the audit trail was altered, deleted or inserted:
    /// exit 0 when intact, 1 with the first broken row.
    Verify {
        /// The configuration file of the instances (its portal database).
        #[arg(long, short)]
        config: PathBuf,
        /// A file of chain heads that left the database: the log stream
        /// (lines "audit chain head chain=… seq=… hash=…") or saved output
        /// of `espace-ps audit heads`. May be repeated.
        #[arg(long)]
        heads: Vec<PathBuf>,
    },
    /// Print the last row of every chain ("chain=… seq=… hash=…"), to keep
    /// outside the database (then `verify --heads` catches a rewrite).
    Heads {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(config: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(config).map_err(|e| {
        eprintln!("{}: invalid configuration\n{e}", config.display());
        ExitCode::from(2)
    })
}

/// Runs one `audit` command.
pub fn run(command: AuditCommand) -> ExitCode {
    init_logging(LogFormat::Text, "warn");
    match command {
        AuditCommand::Verify { config, heads } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut known = Vec::new();
            for file in &heads {
                match std::fs::read_to_string(file) {
                    Ok(text) => known.extend(super::parse_heads(&text)),
                    Err(e) => {
                        eprintln!("--heads {}: {e}", file.display());
                        return ExitCode::from(2);
                    }
                }
            }
            let run = async {
                let db = PortalDb::connect(&config.database.url, 1).await?;
                super::verify(&db, &known).await
            };
            match startup_runtime().block_on(run) {
                Ok(v) => match &v.broken {
                    None => {
                        println!(
                            "intact: {} rows in {} chains verified, {} heads from outside the database checked, {} rows older than the chains",
                            v.rows, v.chains, v.heads_checked, v.unchained
                        );
                        ExitCode::SUCCESS
                    }
                    Some(b) => {
                        println!("broken: {b}");
                        ExitCode::from(1)
                    }
                },
                Err(e) => {
                    print_error_chain(&e);
                    ExitCode::from(3)
                }
            }
        }
        AuditCommand::Heads { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let run = async {
                let db = PortalDb::connect(&config.database.url, 1).await?;
                super::stored_heads(&db).await
            };
            match startup_runtime().block_on(run) {
                Ok(heads) => {
                    for h in heads {
                        println!("{h}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    print_error_chain(&e);
                    ExitCode::from(3)
                }
            }
        }
    }
}
