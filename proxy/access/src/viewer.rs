//! Viewer requests: canonicalization and classification.
//!
//! Every request that espace-ps forwards to the image viewer (Orthanc in tests
//! and in the demo, the hospital's softviewer in production) goes through two
//! pure steps before any decision:
//!
//! 1. [`canonicalize`] turns the raw method, request target and headers into
//!    a [`CanonicalRequest`], or a [`Rejection`] when the request is
//!    ambiguous (encoded slashes, dot segments, double encoding, duplicate
//!    security-relevant query parameters, method overrides...). The proxy
//!    forwards [`CanonicalRequest::target`], never the raw target, so the
//!    viewer sees exactly what was validated.
//! 2. [`RouteTable::classify`] finds the first route of the viewer's route
//!    table (`policies/viewers/*.toml`, format in `docs/policies.md`,
//!    "Viewer route tables") that matches, and tells which resource the
//!    request touches and its action [`Class`]. Anything it cannot classify
//!    is [`Classification::Denied`].
//!
//! No I/O happens on the request path: tables are loaded once
//! ([`RouteTable::load`]) and both steps are plain functions, unit-tested,
//! checked against a bypass corpus and fuzzed (`proxy/access/fuzz`,
//! `docs/fuzzing.md`).
//!
//! ```
//! use espace_ps_access::viewer::{Class, Classification, RouteTable, ResourceRef};
//!
//! let table = RouteTable::parse(
//!     "orthanc.toml",
//!     include_str!("../../../policies/viewers/orthanc.toml"),
//! ).expect("valid table");
//! let (req, class) = table
//!     .classify_raw("GET", "/dicom-web/studies/1.2.3?accept=application%2Fzip", &[])
//!     .expect("canonical");
//! assert_eq!(req.target(), "/dicom-web/studies/1.2.3?accept=application/zip");
//! let Classification::Candidate(c) = class else { panic!("denied") };
//! assert_eq!(c.class, Class::Download);
//! assert_eq!(c.resource, ResourceRef::One { kind: espace_ps_access::viewer::IdKind::DicomUid, id: "1.2.3".into() });
//! ```

mod canonical;
mod classify;
#[doc(hidden)]
pub mod corpus;
mod csp;
#[doc(hidden)]
pub mod fuzzing;
mod media;
mod resolver;
mod segment;
mod table;

pub use canonical::{
    canonicalize, canonicalize_with, reads_header, CanonicalRequest, QueryParam, Rejection,
    BUILTIN_SECURITY_KEYS, MAX_PATH_BYTES, MAX_QUERY_BYTES, METHOD_OVERRIDE_HEADERS,
};
pub use classify::{is_well_formed, Candidate, Classification, Denied, IdKind, ResourceRef};
pub use csp::Csp;
pub use media::MediaType;
pub use resolver::{Resolver, STUDY_PLACEHOLDER};
pub use table::{load_dir, Class, Level, RouteTable, VIEWERS_DIR};

#[cfg(test)]
mod tests;
