//! Policy test cases (`policies/tests/*.toml`): each names a request and the
//! expected decision. `espace-ps policies check` and every reload run them;
//! a failing case refuses the whole set.
//!
//! ```toml
//! [[case]]
//! name = "médecin traitant sees the dossier"
//! action = "view_dossier"
//! expect = "allow"                 # or "deny"
//! policies = ["care-team"]         # optional: the @id that must decide
//! professional = { national_id = "810001", rpps = "10001", login_method = "psc_card" }
//! resource = { type = "dossier", id = "D1", patient_id = "P1" }
//! context = { care_team = [{ dossier_id = "D1", roles = ["MT"] }] }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::load::Problem;
use crate::model::AccessRequest;
use crate::model::{Action, Decision, Professional, RequestContext, Resource};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<TestCase>>,
}

/// One test case.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub expect: Expect,
    /// When given, the decision's policy ids must be exactly these (any order).
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    pub professional: Professional,
    pub action: Action,
    pub resource: Resource,
    #[serde(default)]
    pub context: RequestContext,
}

/// The expected decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Allow,
    Deny,
}

impl TestCase {
    pub fn request(&self) -> AccessRequest {
        AccessRequest {
            professional: self.professional.clone(),
            action: self.action,
            resource: self.resource.clone(),
            context: self.context.clone(),
        }
    }

    /// `None` when the decision matches, else why not.
    pub fn mismatch(&self, decision: &Decision) -> Option<String> {
        let got = if decision.allowed {
            Expect::Allow
        } else {
            Expect::Deny
        };
        if got != self.expect {
            let mut why = format!(
                "expected {:?}, got {:?} (policies: [{}])",
                self.expect,
                got,
                decision.policy_ids.join(", ")
            )
            .to_lowercase();
            if !decision.errors.is_empty() {
                why.push_str(&format!("; errors: {}", decision.errors.join("; ")));
            }
            return Some(why);
        }
        if let Some(expected) = &self.policies {
            let mut want = expected.clone();
            want.sort();
            let mut have = decision.policy_ids.clone();
            have.sort();
            if want != have {
                return Some(format!(
                    "decided by [{}], expected [{}]",
                    have.join(", "),
                    want.join(", ")
                ));
            }
        }
        None
    }
}

/// A parsed test file.
#[derive(Clone, Debug)]
pub struct TestFile {
    pub path: PathBuf,
    /// Each case with its 1-based line.
    pub cases: Vec<(usize, TestCase)>,
}

impl TestFile {
    pub(crate) fn parse(path: &Path, text: &str) -> Result<TestFile, Problem> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            Problem::at_offset(
                path,
                text,
                e.span().map(|s| s.start),
                format!("invalid test file: {}", e.message()),
            )
        })?;
        let cases = raw
            .cases
            .into_iter()
            .map(|c| {
                let line = text[..c.span().start.min(text.len())].matches('\n').count() + 1;
                (line, c.into_inner())
            })
            .collect();
        Ok(TestFile {
            path: path.to_path_buf(),
            cases,
        })
    }
}

/// The result of running every test case.
#[derive(Clone, Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failures: Vec<Problem>,
}

pub(crate) fn run(files: &[TestFile], decide: impl Fn(&AccessRequest) -> Decision) -> TestReport {
    let mut report = TestReport::default();
    for file in files {
        for (line, case) in &file.cases {
            let decision = decide(&case.request());
            match case.mismatch(&decision) {
                None => report.passed += 1,
                Some(why) => report.failures.push(Problem {
                    file: file.path.clone(),
                    line: Some(*line),
                    column: None,
                    message: format!("test case {:?} failed: {why}", case.name),
                }),
            }
        }
    }
    report
}
