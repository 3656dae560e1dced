//! Tests of the viewer module: canonicalization, classification of every
//! row of the design's route tables, route-table validation, the bypass
//! corpus (`tests/bypass-corpus.toml`) and a seeded property test sharing the
//! fuzz target's invariants.

use std::sync::OnceLock;

use super::fuzzing::ORTHANC_TABLE;
use super::RouteTable;

mod canonical;
mod classify;
mod corpus;
mod property;
mod resolver;
mod table;

/// The shipped Orthanc table, parsed once.
pub(super) fn orthanc() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        RouteTable::parse("policies/viewers/orthanc.toml", ORTHANC_TABLE).unwrap_or_else(|ps| {
            let text: Vec<String> = ps.iter().map(ToString::to_string).collect();
            panic!("shipped table invalid:\n{}", text.join("\n"))
        })
    })
}

/// Headers from pairs.
pub(super) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}
