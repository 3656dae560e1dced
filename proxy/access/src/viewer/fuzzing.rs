//! Invariants checked by the fuzz target (`proxy/access/fuzz`) and by the
//! seeded property test. Not part of the supported API.

use super::canonical::CanonicalRequest;
use super::classify::{check_id, Classification, ResourceRef};
use super::table::{Class, RouteTable};

/// The Orthanc table shipped in `policies/viewers/orthanc.toml`.
pub const ORTHANC_TABLE: &str = include_str!("../../../../policies/viewers/orthanc.toml");

/// Split fuzz input into method, target and headers: the first line is the
/// method, the second the target, then one `name: value` header per line.
pub fn split_input(data: &[u8]) -> (String, String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("").to_string();
    let target = lines.next().unwrap_or("").to_string();
    let headers = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.to_string(), v.trim_start().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    (method, target, headers)
}

/// Canonicalize and classify; panic if an invariant does not hold:
/// - the canonical target canonicalizes to the same request, which
///   classifies the same way (idempotence);
/// - the canonical target is short enough to be accepted again;
/// - an id in a candidate is well-formed for its kind;
/// - a request negotiating DICOM or ZIP is never a weaker class than D;
/// - class X is never a candidate;
/// - the first-segment index classifies as a scan of every route does.
pub fn check(
    table: &RouteTable,
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> Outcome {
    let Ok(req) = table.canonicalize(method, target, headers) else {
        return Outcome::Rejected;
    };
    let class = table.classify(&req);
    assert_eq!(
        table.classify_by_scan(&req),
        class,
        "the first-segment index changed the classification"
    );
    let again_target = req.target();
    let again = table
        .canonicalize(req.method(), &again_target, headers)
        .unwrap_or_else(|e| {
            panic!("canonical target {again_target:?} (from {target:?}) is rejected: {e}")
        });
    assert_eq!(
        again, req,
        "canonicalization is not idempotent for {target:?}"
    );
    assert_eq!(again.target(), again_target, "target() is not stable");
    assert_eq!(table.classify(&again), class, "classification changed");
    check_candidate(table, &req, &class);
    match class {
        Classification::Candidate(_) => Outcome::Candidate,
        Classification::Denied(_) => Outcome::Denied,
    }
}

/// What a checked request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Rejected,
    Denied,
    Candidate,
}

fn check_candidate(table: &RouteTable, req: &CanonicalRequest, class: &Classification) {
    let Classification::Candidate(c) = class else {
        return;
    };
    assert_ne!(c.class, Class::SideEffect, "class X must be denied");
    match &c.resource {
        ResourceRef::One { kind, id } => assert!(check_id(*kind, id).is_ok(), "bad id {id:?}"),
        ResourceRef::List { kind, ids } => {
            assert!(ids.len() > 1);
            for id in ids {
                assert!(check_id(*kind, id).is_ok(), "bad id {id:?}");
            }
        }
        ResourceRef::None => assert_eq!(c.class, Class::Shell),
        ResourceRef::System | ResourceRef::Unscoped { .. } => assert_eq!(c.class, Class::Search),
        ResourceRef::Body { .. } => {}
    }
    let wants_download = req
        .negotiated()
        .any(|m| table.download_media.iter().any(|p| m.matches(p)));
    if wants_download {
        assert_eq!(
            c.class,
            Class::Download,
            "download negotiated but class {}",
            c.class
        );
    }
}

/// Entry point for byte input.
pub fn check_bytes(table: &RouteTable, data: &[u8]) -> Outcome {
    let (method, target, headers) = split_input(data);
    check(table, &method, &target, &headers)
}
