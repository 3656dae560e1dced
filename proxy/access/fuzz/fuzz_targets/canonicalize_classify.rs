//! Arbitrary method, request target and headers (one per line: method,
//! target, then `name: value` headers) through canonicalization and
//! classification with the shipped Orthanc table. Panics (= findings) on a
//! panic inside, a canonical target that does not canonicalize to itself or
//! classifies differently, a malformed id in a candidate, class X as a
//! candidate, or a DICOM/ZIP negotiation that is not class D. The invariants
//! live in `espace_ps_access::viewer::fuzzing`, shared with the seeded
//! property test of `cargo test`.
#![no_main]

use std::sync::OnceLock;

use espace_ps_access::viewer::{fuzzing, RouteTable};
use libfuzzer_sys::fuzz_target;

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        RouteTable::parse("policies/viewers/orthanc.toml", fuzzing::ORTHANC_TABLE)
            .expect("shipped Orthanc table is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    fuzzing::check_bytes(table(), data);
});
