//! `espace-ps policies ...`: the administrator's commands.
//!
//! - `check [DIR]` parses, strictly validates and tests a policy directory,
//!   and validates its viewer route tables (`DIR/viewers/*.toml`); prints every problem as `file:line:column: message`; exits 1 on any.
//! - `explain ...` decides one request and prints the decision with the
//!   `@id` of the policies that decided it; exits 0 when allowed, 1 when
//!   denied, 2 when the request or the directory cannot be used.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::engine::build_snapshot;
use crate::model::{
    AccessRequest, Action, DossierRoles, LoginMethod, Professional, RequestContext, Resource, Via,
};

/// `espace-ps policies <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum PoliciesCommand {
    /// Parse, validate strictly against the schema and run the test cases of
    /// a policy directory; validate its viewer route tables (viewers/*.toml).
    Check {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: Option<PathBuf>,
    },
    /// Decide one request and print the decision and the policies that made it.
    Explain {
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// A TOML file holding the whole request (same shape as a test case,
        /// without name and expect). Replaces the other request options.
        #[arg(long, conflicts_with_all = ["national_id", "action", "resource"])]
        request: Option<PathBuf>,
        /// National id (idNat_PS) of the professional.
        #[arg(long, required_unless_present = "request")]
        national_id: Option<String>,
        /// RPPS of the professional (omit for ADELI-only professionals).
        #[arg(long)]
        rpps: Option<String>,
        /// Profession code (repeatable).
        #[arg(long = "profession")]
        professions: Vec<String>,
        /// Savoir-faire code (repeatable).
        #[arg(long = "savoir-faire")]
        savoir_faire: Vec<String>,
        /// Login method: psc_card, psc_app or hm_sso.
        #[arg(long, default_value = "psc_card")]
        login: String,
        /// Action: search_patients, view_dossier, view_report, view_images,
        /// download_dicom, open_dossier_by_number.
        #[arg(long, required_unless_present = "request")]
        action: Option<String>,
        /// Resource as TYPE:ID: patient:P, dossier:D, report:R, study:UID, series:UID.
        #[arg(long, required_unless_present = "request")]
        resource: Option<String>,
        /// Patient of a dossier resource.
        #[arg(long)]
        patient: Option<String>,
        /// Dossier of a report, study or series resource.
        #[arg(long)]
        dossier: Option<String>,
        /// Study of a series resource.
        #[arg(long)]
        study: Option<String>,
        /// Care-team roles on a dossier, as DOSSIER=ROLE[,ROLE...] (repeatable).
        #[arg(long = "roles")]
        roles: Vec<String>,
        /// Access through a dossier-number grant for this dossier.
        #[arg(long)]
        grant: Option<String>,
        /// The birth date matched (open_dossier_by_number).
        #[arg(long)]
        birth_date_verified: bool,
        /// Time of the request, unix seconds (default: now).
        #[arg(long)]
        now: Option<i64>,
    },
}

/// Run a command, writing to stdout and stderr.
pub fn run(cmd: PoliciesCommand) -> ExitCode {
    let code = run_with(cmd, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}

/// Run a command with the given outputs; returns the exit code.
pub fn run_with(cmd: PoliciesCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match cmd {
        PoliciesCommand::Check { dir } => {
            check(&dir.unwrap_or_else(|| PathBuf::from("policies")), out, err)
        }
        PoliciesCommand::Explain {
            dir,
            request,
            national_id,
            rpps,
            professions,
            savoir_faire,
            login,
            action,
            resource,
            patient,
            dossier,
            study,
            roles,
            grant,
            birth_date_verified,
            now,
        } => {
            let req = match request {
                Some(path) => read_request(&path),
                None => build_request(RequestArgs {
                    national_id: national_id.unwrap_or_default(),
                    rpps,
                    professions,
                    savoir_faire,
                    login,
                    action: action.unwrap_or_default(),
                    resource: resource.unwrap_or_default(),
                    patient,
                    dossier,
                    study,
                    roles,
                    grant,
                    birth_date_verified,
                    now,
                }),
            };
            match req {
                Ok(req) => explain(&dir, &req, out, err),
                Err(e) => {
                    let _ = writeln!(err, "error: {e}");
                    2
                }
            }
        }
    }
}

/// `policies check DIR`: the policies, their test cases, and the viewer
/// route tables of `DIR/viewers/*.toml`.
pub fn check(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let viewers = crate::viewer::load_dir(dir);
    let policies = build_snapshot(dir, 1, true);
    match (policies, viewers) {
        (Ok((snapshot, report, warnings)), Ok(tables)) => {
            for w in &warnings {
                let _ = writeln!(err, "warning: {w}");
            }
            let ids = snapshot.policy_ids();
            let tables: Vec<String> = tables
                .iter()
                .map(|t| {
                    format!(
                        "{} ({} routes, {} resolver)",
                        t.name(),
                        t.len(),
                        t.resolver().kind()
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{}: OK: schema valid, {} policies valid in strict mode ({}), {} groups, {} test cases passed, {} viewer route tables valid ({})",
                dir.display(),
                ids.len(),
                ids.join(", "),
                snapshot.group_count(),
                report.passed,
                tables.len(),
                tables.join(", ")
            );
            0
        }
        (policies, viewers) => {
            let mut problems = policies.err().unwrap_or_default();
            problems.extend(viewers.err().unwrap_or_default());
            for p in &problems {
                let _ = writeln!(err, "error: {p}");
            }
            let _ = writeln!(
                err,
                "{}: FAILED: {} problem(s); the set would be refused",
                dir.display(),
                problems.len()
            );
            1
        }
    }
}

/// `policies explain`.
pub fn explain(dir: &Path, req: &AccessRequest, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    // Test cases are not run: explain is how one finds out why one fails.
    let snapshot = match build_snapshot(dir, 1, false) {
        Ok((s, _, _)) => s,
        Err(problems) => {
            for p in &problems {
                let _ = writeln!(err, "error: {p}");
            }
            return 2;
        }
    };
    let decision = snapshot.decide(req);
    let _ = writeln!(
        out,
        "decision: {}",
        if decision.allowed { "ALLOW" } else { "DENY" }
    );
    if decision.policy_ids.is_empty() {
        let _ = writeln!(out, "decided by: no policy matched (deny by default)");
    } else {
        for id in &decision.policy_ids {
            let file = snapshot
                .policy_file(id)
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            let _ = writeln!(out, "decided by: {id} ({file})");
        }
    }
    for e in &decision.errors {
        let _ = writeln!(out, "error: {e} (an error is a deny)");
    }
    let groups = snapshot.groups_of(&req.professional);
    let _ = writeln!(
        out,
        "professional: {} rpps={} login={} groups=[{}]",
        req.professional.national_id,
        req.professional.rpps.as_deref().unwrap_or("(none)"),
        req.professional.login_method.as_str(),
        groups.join(", ")
    );
    if decision.allowed {
        0
    } else {
        1
    }
}

struct RequestArgs {
    national_id: String,
    rpps: Option<String>,
    professions: Vec<String>,
    savoir_faire: Vec<String>,
    login: String,
    action: String,
    resource: String,
    patient: Option<String>,
    dossier: Option<String>,
    study: Option<String>,
    roles: Vec<String>,
    grant: Option<String>,
    birth_date_verified: bool,
    now: Option<i64>,
}

fn read_request(path: &Path) -> Result<AccessRequest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn build_request(a: RequestArgs) -> Result<AccessRequest, String> {
    let login_method = match a.login.replace('-', "_").as_str() {
        "psc_card" => LoginMethod::PscCard,
        "psc_app" => LoginMethod::PscApp,
        "hm_sso" => LoginMethod::HmSso,
        other => return Err(format!("unknown login method {other:?}")),
    };
    let action = Action::from_name(&a.action.replace('-', "_"))
        .ok_or_else(|| format!("unknown action {:?}", a.action))?;
    let (kind, id) = a
        .resource
        .split_once(':')
        .ok_or_else(|| format!("resource {:?} is not TYPE:ID", a.resource))?;
    let need = |what: &str, v: &Option<String>| {
        v.clone()
            .ok_or_else(|| format!("a {kind} resource needs --{what}"))
    };
    let id = id.to_string();
    let resource = match kind {
        "patient" => Resource::Patient { id },
        "dossier" => Resource::Dossier {
            id,
            patient_id: need("patient", &a.patient)?,
        },
        "report" => Resource::Report {
            id,
            dossier_id: need("dossier", &a.dossier)?,
        },
        "study" => Resource::Study {
            uid: id,
            dossier_id: need("dossier", &a.dossier)?,
        },
        "series" => Resource::Series {
            uid: id,
            study_uid: need("study", &a.study)?,
            dossier_id: need("dossier", &a.dossier)?,
        },
        other => return Err(format!("unknown resource type {other:?}")),
    };
    let mut care_team = Vec::new();
    for r in &a.roles {
        let (dossier_id, codes) = r
            .split_once('=')
            .ok_or_else(|| format!("--roles {r:?} is not DOSSIER=ROLE[,ROLE...]"))?;
        care_team.push(DossierRoles {
            dossier_id: dossier_id.to_string(),
            roles: codes
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let now = a.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    Ok(AccessRequest {
        professional: Professional {
            national_id: a.national_id,
            rpps: a.rpps,
            professions: a.professions,
            savoir_faire: a.savoir_faire,
            login_method,
        },
        action,
        resource,
        context: RequestContext {
            via: match a.grant {
                Some(dossier_id) => Via::Grant { dossier_id },
                None => Via::CareTeam,
            },
            care_team,
            birth_date_verified: a.birth_date_verified,
            now,
        },
    })
}

#[cfg(test)]
mod tests;
