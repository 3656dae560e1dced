//! Reading a policy directory: schema, policies, groups and test cases.
//!
//! What is read (everything else, including the `viewers/` subfolder, is
//! ignored here; the viewer route tables are read by
//! [`crate::viewer::load_dir`], which `policies check` also runs):
//!
//! | path | holds |
//! |---|---|
//! | `schema.cedarschema` | the Cedar schema (required) |
//! | `*.cedar` (top level only) | policies, each with a unique `@id` (at least one file) |
//! | `groups.toml` | the administrator's groups (optional) |
//! | `tests/*.toml` | policy test cases (optional) |

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

use crate::groups::GroupIndex;
use crate::testcases::TestFile;

/// The schema file name inside a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The groups file name inside a policy directory.
pub const GROUPS_FILE: &str = "groups.toml";
/// The test-case folder inside a policy directory.
pub const TESTS_DIR: &str = "tests";

// === impl Problem ===

/// One thing wrong with a policy directory, located as precisely as the
/// source allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    pub message: String,
}

impl Problem {
    /// A problem at a byte offset of `text` (the content of `file`).
    pub(crate) fn at_offset(
        file: &Path,
        text: &str,
        offset: Option<usize>,
        message: String,
    ) -> Problem {
        let (line, column) = match offset {
            Some(off) => {
                let (l, c) = line_col(text, off);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Problem {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    }

    /// A problem with a whole file.
    pub(crate) fn in_file(file: &Path, message: String) -> Problem {
        Problem::at_offset(file, "", None, message)
    }

    /// A problem from a Cedar diagnostic: the first label gives the place,
    /// the message and help are kept.
    fn from_diagnostic(file: &Path, text: &str, diag: &dyn Diagnostic) -> Problem {
        let offset = diag.labels().and_then(|mut l| l.next()).map(|l| l.offset());
        let mut message = diag.to_string();
        if let Some(help) = diag.help() {
            message.push_str(&format!(" (help: {help})"));
        }
        Problem::at_offset(file, text, offset, message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

// === impl LoadError ===

/// A policy directory that cannot be used. Nothing of it is in force.
#[derive(Debug, thiserror::Error)]
#[error("policy directory {dir} refused: {}", summary(.problems))]
pub struct LoadError {
    pub dir: PathBuf,
    pub problems: Vec<Problem>,
}

fn summary(problems: &[Problem]) -> String {
    match problems {
        [] => "no detail".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

// === impl PolicyDir ===

/// A parsed and strictly validated policy directory (test cases parsed, not
/// yet run).
pub(crate) struct PolicyDir {
    pub schema: Schema,
    pub policies: PolicySet,
    /// `@id` -> the file it came from.
    pub policy_files: HashMap<String, PathBuf>,
    pub groups: GroupIndex,
    pub tests: Vec<TestFile>,
    /// Hash of every file read, to tell an unchanged directory.
    pub fingerprint: u64,
    pub warnings: Vec<Problem>,
}

/// Read, parse and strictly validate a policy directory. Collects every
/// problem it can rather than stopping at the first.
pub(crate) fn read_dir(dir: &Path) -> Result<PolicyDir, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut hasher = DefaultHasher::new();

    // --- schema
    let schema_path = dir.join(SCHEMA_FILE);
    let schema = match read_text(&schema_path, &mut hasher) {
        Ok(text) => match Schema::from_cedarschema_str(&text) {
            Ok((schema, schema_warnings)) => {
                for w in schema_warnings {
                    warnings.push(Problem::from_diagnostic(&schema_path, &text, &w));
                }
                Some(schema)
            }
            Err(e) => {
                problems.push(Problem::from_diagnostic(&schema_path, &text, &e));
                None
            }
        },
        Err(p) => {
            problems.push(p);
            None
        }
    };

    // --- policies
    let mut policies = PolicySet::new();
    let mut policy_files: HashMap<String, PathBuf> = HashMap::new();
    // Policy id -> (file, text) to locate validation errors.
    let mut sources: HashMap<String, (PathBuf, std::sync::Arc<str>)> = HashMap::new();
    let cedar_files = match list_files(dir, "cedar") {
        Ok(files) => files,
        Err(p) => {
            problems.push(p);
            Vec::new()
        }
    };
    if cedar_files.is_empty() && problems.is_empty() {
        problems.push(Problem::in_file(
            dir,
            "no policy file (*.cedar) in this directory".to_string(),
        ));
    }
    for path in &cedar_files {
        let text: std::sync::Arc<str> = match read_text(path, &mut hasher) {
            Ok(t) => t.into(),
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let parsed = match PolicySet::from_str(&text) {
            Ok(set) => set,
            Err(errs) => {
                for e in errs.iter() {
                    problems.push(Problem::from_diagnostic(path, &text, e));
                }
                continue;
            }
        };
        let statics = parsed.policies().map(|p| {
            (
                p.annotation("id").map(str::to_string),
                p.to_cedar(),
                Statement::Policy(p.clone()),
            )
        });
        let templates = parsed.templates().map(|t| {
            (
                t.annotation("id").map(str::to_string),
                Some(t.to_cedar()),
                Statement::Template(t.clone()),
            )
        });
        for (id, src, stmt) in statics.chain(templates) {
            let offset = src.as_deref().and_then(|s| text.find(s));
            let Some(id) = id else {
                problems.push(Problem::at_offset(
                    path,
                    &text,
                    offset,
                    "policy has no @id annotation (every policy needs a unique @id(\"...\"))"
                        .to_string(),
                ));
                continue;
            };
            if id.is_empty() || id.chars().any(|c| c.is_whitespace()) {
                problems.push(Problem::at_offset(
                    path,
                    &text,
                    offset,
                    format!("invalid @id {id:?}: use a non-empty id without spaces"),
                ));
                continue;
            }
            if let Some(other) = policy_files.get(&id) {
                problems.push(Problem::at_offset(
                    path,
                    &text,
                    offset,
                    format!("duplicate @id {id:?} (also in {})", other.display()),
                ));
                continue;
            }
            let pid = PolicyId::new(&id);
            let added = match stmt {
                Statement::Policy(p) => policies.add(p.new_id(pid)),
                Statement::Template(t) => policies.add_template(t.new_id(pid)),
            };
            if let Err(e) = added {
                problems.push(Problem::at_offset(path, &text, offset, e.to_string()));
                continue;
            }
            policy_files.insert(id.clone(), path.clone());
            sources.insert(id, (path.clone(), text.clone()));
        }
    }

    // --- strict validation
    if let Some(schema) = &schema {
        let validator = Validator::new(schema.clone());
        let result = validator.validate(&policies, ValidationMode::Strict);
        for e in result.validation_errors() {
            let id = e.policy_id().to_string();
            match sources.get(&id) {
                Some((path, text)) => problems.push(Problem::from_diagnostic(path, text, e)),
                None => problems.push(Problem::in_file(dir, e.to_string())),
            }
        }
        for w in result.validation_warnings() {
            let id = w.policy_id().to_string();
            if let Some((path, text)) = sources.get(&id) {
                warnings.push(Problem::from_diagnostic(path, text, w));
            }
        }
    }

    // --- groups
    let groups_path = dir.join(GROUPS_FILE);
    let groups = if groups_path.exists() {
        match read_text(&groups_path, &mut hasher) {
            Ok(text) => match GroupIndex::parse(&groups_path, &text) {
                Ok(g) => g,
                Err(ps) => {
                    problems.extend(ps);
                    GroupIndex::default()
                }
            },
            Err(p) => {
                problems.push(p);
                GroupIndex::default()
            }
        }
    } else {
        GroupIndex::default()
    };

    // --- test cases
    let mut tests = Vec::new();
    let tests_dir = dir.join(TESTS_DIR);
    if tests_dir.is_dir() {
        match list_files(&tests_dir, "toml") {
            Ok(files) => {
                for path in files {
                    match read_text(&path, &mut hasher) {
                        Ok(text) => match TestFile::parse(&path, &text) {
                            Ok(t) => tests.push(t),
                            Err(p) => problems.push(p),
                        },
                        Err(p) => problems.push(p),
                    }
                }
            }
            Err(p) => problems.push(p),
        }
    }

    match schema {
        Some(schema) if problems.is_empty() => Ok(PolicyDir {
            schema,
            policies,
            policy_files,
            groups,
            tests,
            fingerprint: hasher.finish(),
            warnings,
        }),
        _ => Err(problems),
    }
}

enum Statement {
    Policy(cedar_policy::Policy),
    Template(cedar_policy::Template),
}

fn read_text(path: &Path, hasher: &mut DefaultHasher) -> Result<String, Problem> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::in_file(path, format!("cannot read: {e}")))?;
    path.file_name().hash(hasher);
    text.hash(hasher);
    Ok(text)
}

/// Regular files directly in `dir` ending in `.ext`, sorted by name. Hidden
/// files (editor swap files and the like) are skipped.
fn list_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, Problem> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Problem::in_file(dir, format!("cannot read directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()) == Some(ext)
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}
