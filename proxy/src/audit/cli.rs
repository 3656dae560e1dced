//! `espace-ps audit …`: the DPO's and the administrator's commands.
//!
//! - `verify` checks the hash chains (and the heads given with `--heads`):
//!   exit 0 intact, 1 broken (the first broken row is printed), 2 a
//!   configuration or argument error, 3 the database failed;
//! - `heads` prints the last row of every chain, to copy out of the
//!   database;
//! - `export` lists the accesses to one patient's data, or one
//!   professional's accesses, in French (CSV, JSON or printable HTML);
//! - `purge` removes the rows older than `audit.retention_days` under
//!   signed checkpoints (`purge.rs`), with the owner role.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, LogFormat};
use crate::run::{init_logging, print_error_chain, startup_runtime};
use crate::state::PortalDb;

/// Which portal database: the instances' configuration file, or its URL.
/// The `audit` commands never migrate it (a reader's role may not): its
/// schema must be up to date (`espace-ps migrate`).
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The configuration file of the instances (its portal database).
    #[arg(long, short, required_unless_present = "database_url")]
    config: Option<PathBuf>,
    /// The portal database's URL instead (`sqlite://…`, `postgres://…`).
    #[arg(long, conflicts_with = "config")]
    database_url: Option<String>,
}

impl Target {
    fn url(&self) -> Result<String, ExitCode> {
        match (&self.database_url, &self.config) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(c)) => load(c).map(|c| c.database.url),
            (None, None) => Err(ExitCode::from(2)),
        }
    }

    /// The purge checkpoints' key: the configuration's, or the
    /// environment's (`ESPACE_AUDIT_CHECKPOINT_KEY`, `_FILE`, credential).
    fn checkpoint_key(&self) -> Result<Option<Vec<u8>>, ExitCode> {
        config_or_environment(self.config.as_deref()).map(|c| c.audit.checkpoint_key)
    }
}

/// The configuration file's settings, or without one the defaults with the
/// environment's secrets.
fn config_or_environment(file: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    match file {
        Some(f) => load(f),
        None => Config::from_environment().map_err(|e| {
            eprintln!("invalid environment\n{e}");
            ExitCode::from(2)
        }),
    }
}

/// `espace-ps audit <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no row of the audit trail was altered, deleted or inserted:
    /// exit 0 when intact, 1 with the first broken row.
    Verify {
        #[command(flatten)]
        target: Target,
        /// A file of chain heads that left the database: the log stream
        /// (lines "audit chain head chain=… seq=… hash=…") or saved output
        /// of `espace-ps audit heads`. May be repeated.
        #[arg(long)]
        heads: Vec<PathBuf>,
    },
    /// Print the last row of every chain ("chain=… seq=… hash=…"), to keep
    /// outside the database (then `verify --heads` catches a rewrite).
    Heads {
        #[command(flatten)]
        target: Target,
    },
    /// Every access to one patient's data (`--patient`), or every access by
    /// one professional (`--professional`), in French, oldest first.
    Export {
        #[command(flatten)]
        target: Target,
        /// The patient's id in the hospital's records.
        #[arg(
            long,
            required_unless_present = "professional",
            conflicts_with = "professional"
        )]
        patient: Option<String>,
        /// A professional's RPPS (11 digits) or national id.
        #[arg(long)]
        professional: Option<String>,
        /// From this day (YYYY-MM-DD, France's time), included.
        #[arg(long)]
        from: Option<String>,
        /// To this day (YYYY-MM-DD), included.
        #[arg(long)]
        to: Option<String>,
        /// csv (`;`, for a spreadsheet), json, or html (a page to print).
        #[arg(long, value_enum, default_value = "csv")]
        format: super::export::Format,
    },
    /// Remove the rows older than `[audit] retention_days`, whole chain
    /// segments, each replaced by a checkpoint signed with the checkpoint
    /// key; run it with the owner role (the runtime role cannot delete).
    /// Exit 0 done (or nothing to do), 1 the trail is broken (nothing
    /// purged), 2 a configuration error, 3 the database failed.
    Purge {
        /// The instances' configuration file (`[audit] retention_days`,
        /// `checkpoint_key_file`, the database).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The portal database's URL with the owner role (instead of the
        /// configuration's, which is the runtime role's).
        #[arg(long)]
        database_url: Option<String>,
        /// Say what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Chain heads that left the database (as for `verify`): the trail
        /// is checked against them before anything is signed and removed.
        #[arg(long)]
        heads: Vec<PathBuf>,
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
        AuditCommand::Verify { target, heads } => {
            let url = match target.url() {
                Ok(u) => u,
                Err(code) => return code,
            };
            let key = match target.checkpoint_key() {
                Ok(k) => k,
                Err(code) => return code,
            };
            let known = match read_heads(&heads) {
                Ok(h) => h,
                Err(code) => return code,
            };
            let run = async {
                let db = PortalDb::open(&url, 1, false).await?;
                if key.is_none() && !super::purge::checkpoints(&db).await?.is_empty() {
                    return Ok(None);
                }
                super::verify_signed(&db, &known, key.as_deref())
                    .await
                    .map(Some)
            };
            match startup_runtime().block_on(run) {
                Ok(None) => {
                    eprintln!("error: the trail was purged: its checkpoints need the checkpoint key (audit.checkpoint_key_file in --config, or ESPACE_AUDIT_CHECKPOINT_KEY)");
                    ExitCode::from(2)
                }
                Ok(Some(v)) => match &v.broken {
                    None => {
                        println!(
                            "intact: {} rows in {} chains verified, {} heads from outside the database checked, {} purge checkpoints checked, {} rows older than the chains",
                            v.rows, v.chains, v.heads_checked, v.checkpoints, v.unchained
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
        AuditCommand::Heads { target } => {
            let url = match target.url() {
                Ok(u) => u,
                Err(code) => return code,
            };
            let run = async {
                let db = PortalDb::open(&url, 1, false).await?;
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
        AuditCommand::Export {
            target,
            patient,
            professional,
            from,
            to,
            format,
        } => export(target, patient, professional, from, to, format),
        AuditCommand::Purge {
            config,
            database_url,
            dry_run,
            heads,
        } => purge(config, database_url, dry_run, &heads),
    }
}

/// The heads in `files` (log streams or saved `audit heads` output).
fn read_heads(files: &[PathBuf]) -> Result<Vec<super::ChainHead>, ExitCode> {
    let mut known = Vec::new();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(text) => known.extend(super::parse_heads(&text)),
            Err(e) => {
                eprintln!("--heads {}: {e}", file.display());
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(known)
}

fn purge(
    config: Option<PathBuf>,
    database_url: Option<String>,
    dry_run: bool,
    heads: &[PathBuf],
) -> ExitCode {
    let known = match read_heads(heads) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let c = match config_or_environment(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !crate::run::apply_test_clock(&c) {
        return ExitCode::from(2);
    }
    let Some(days) = c.audit.retention_days else {
        println!("audit.retention_days is not set: nothing is purged");
        return ExitCode::SUCCESS;
    };
    let Some(key) = c.audit.checkpoint_key.clone() else {
        eprintln!("error: a purge needs the checkpoint key (audit.checkpoint_key_file or ESPACE_AUDIT_CHECKPOINT_KEY)");
        return ExitCode::from(2);
    };
    let url = database_url.unwrap_or(c.database.url);
    let before_ms = crate::state::now_ms() - i64::from(days) * 86_400_000;
    let run = async {
        // No migration here: the schema must be up to date already.
        let db = PortalDb::open(&url, 1, false).await?;
        super::purge::purge(&db, &known, before_ms, &key, dry_run).await
    };
    match startup_runtime().block_on(run) {
        Ok(p) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for s in &p.segments {
                let chain = if s.chain.is_empty() {
                    "(rows older than the chains)"
                } else {
                    &s.chain
                };
                println!(
                    "{verb} chain {chain} up to seq {}: {} rows",
                    s.last_seq, s.rows
                );
            }
            println!(
                "{verb} {} rows older than {days} days in {} segments",
                p.rows(),
                p.segments.len()
            );
            ExitCode::SUCCESS
        }
        Err(super::purge::PurgeError::Broken(b)) => {
            println!("broken: {b}: nothing purged");
            ExitCode::from(1)
        }
        Err(e @ super::purge::PurgeError::Segment { .. }) => {
            println!("broken: {e}");
            ExitCode::from(1)
        }
        Err(super::purge::PurgeError::Db(e)) => {
            print_error_chain(&e);
            ExitCode::from(3)
        }
    }
}

fn export(
    target: Target,
    patient: Option<String>,
    professional: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: super::export::Format,
) -> ExitCode {
    use super::export::{self as x, Subject};
    let url = match target.url() {
        Ok(u) => u,
        Err(code) => return code,
    };
    let (subject, title) = match (patient, professional) {
        (Some(p), _) => (
            Subject::Patient(p.trim().to_owned()),
            format!("Accès aux données du patient {}", p.trim()),
        ),
        (None, Some(raw)) => match x::professional_id(&raw) {
            Ok(id) => (
                Subject::Professional(id),
                format!("Accès du professionnel {}", raw.trim()),
            ),
            Err(e) => {
                eprintln!("error: --professional: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => return ExitCode::from(2),
    };
    let from_ms = match from.as_deref().map(x::paris_day_start_ms).transpose() {
        Ok(v) => v.unwrap_or(i64::MIN),
        Err(e) => {
            eprintln!("error: --from: {e}");
            return ExitCode::from(2);
        }
    };
    let to_ms = match to.as_deref().map(x::paris_day_end_ms).transpose() {
        Ok(v) => v.unwrap_or(i64::MAX),
        Err(e) => {
            eprintln!("error: --to: {e}");
            return ExitCode::from(2);
        }
    };
    let title = match (&from, &to) {
        (Some(f), Some(t)) => format!("{title}, du {f} au {t}"),
        (Some(f), None) => format!("{title}, depuis le {f}"),
        (None, Some(t)) => format!("{title}, jusqu'au {t}"),
        (None, None) => title,
    };
    let run = async {
        let db = PortalDb::open(&url, 1, false).await?;
        x::lines(&db, &subject, from_ms, to_ms).await
    };
    match startup_runtime().block_on(run) {
        Ok(lines) => match x::render(&lines, format, &title) {
            Ok(text) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(text.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            print_error_chain(&e);
            ExitCode::from(3)
        }
    }
}

/// `espace-ps migrate`: 0 when the schema is up to date, 2 on a usage
/// error, 3 when the database fails.
pub fn migrate(target: Target) -> ExitCode {
    init_logging(LogFormat::Text, "warn");
    let url = match target.url() {
        Ok(u) => u,
        Err(code) => return code,
    };
    match startup_runtime().block_on(PortalDb::open(&url, 1, true)) {
        Ok(_) => {
            println!("the portal database's schema is up to date");
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error_chain(&e);
            ExitCode::from(3)
        }
    }
}
