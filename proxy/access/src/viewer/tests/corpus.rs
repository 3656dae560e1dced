//! The bypass corpus (`bypass-corpus.toml`): every crafted request gives
//! exactly the expected outcome, and nothing expected to be refused or a
//! download comes out weaker.

use super::orthanc;
use crate::viewer::corpus::CorpusCase as Case;
use crate::viewer::{Class, Classification, IdKind, ResourceRef};

/// How strong an outcome is: a refusal beats a download beats the rest.
fn strength(outcome: &Result<Classification, ()>) -> u8 {
    match outcome {
        Err(()) | Ok(Classification::Denied(_)) => 3,
        Ok(Classification::Candidate(c)) if c.class == Class::Download => 2,
        Ok(Classification::Candidate(_)) => 1,
    }
}

fn expected_strength(expect: &str) -> u8 {
    match expect {
        "rejected" | "denied" => 3,
        "D" => 2,
        _ => 1,
    }
}

fn check_case(case: &Case) -> Result<(), String> {
    let table = orthanc();
    let outcome = table
        .classify_raw(&case.method, &case.target, &case.headers)
        .map(|(_, c)| c)
        .map_err(|_| ());
    if strength(&outcome) < expected_strength(&case.expect) {
        return Err(format!("WEAKER than expected: {outcome:?}"));
    }
    match (case.expect.as_str(), &outcome) {
        ("rejected", Err(())) => Ok(()),
        ("rejected", Ok(c)) => Err(format!("not rejected: {c:?}")),
        (_, Err(())) => Err("rejected".to_string()),
        ("denied", Ok(Classification::Denied(d))) => {
            let got = d.class.map(|c| c.code().to_string());
            if case.class.is_some() && got != case.class {
                return Err(format!(
                    "denied with class {got:?}, expected {:?} ({})",
                    case.class, d.reason
                ));
            }
            Ok(())
        }
        ("denied", Ok(c)) => Err(format!("not denied: {c:?}")),
        (want, Ok(Classification::Denied(d))) => {
            Err(format!("expected {want}, denied: {}", d.reason))
        }
        (want, Ok(Classification::Candidate(c))) => {
            let want_class = Class::from_code(want).ok_or(format!("bad expect {want:?}"))?;
            if c.class != want_class {
                return Err(format!("class {} instead of {want}", c.class));
            }
            if let Some(level) = &case.level {
                if c.level.as_str() != level {
                    return Err(format!("level {} instead of {level}", c.level));
                }
            }
            let resource_ok = match (&case.id, &case.ids, case.resource.as_deref()) {
                (Some(id), None, None) => {
                    matches!(&c.resource, ResourceRef::One { id: got, .. } if got == id)
                }
                (None, Some(ids), None) => {
                    matches!(&c.resource, ResourceRef::List { ids: got, .. } if got == ids)
                }
                (None, None, Some("system")) => c.resource == ResourceRef::System,
                (None, None, Some("unscoped")) => {
                    matches!(c.resource, ResourceRef::Unscoped { .. })
                }
                (None, None, Some("body")) => matches!(
                    c.resource,
                    ResourceRef::Body {
                        kind: IdKind::OrthancId,
                        ..
                    }
                ),
                (None, None, Some("none")) => c.resource == ResourceRef::None,
                (None, None, None) => {
                    return Err("a candidate case must give id, ids or resource".into())
                }
                _ => return Err("give one of id, ids, resource".into()),
            };
            if !resource_ok {
                return Err(format!("resource {:?}", c.resource));
            }
            Ok(())
        }
    }
}

#[test]
fn bypass_corpus() {
    let cases = crate::viewer::corpus::bypass_corpus();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case name {:?}",
            case.name
        );
        if let Err(e) = check_case(case) {
            failures.push(format!(
                "{} ({} {}): {e}",
                case.name, case.method, case.target
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
