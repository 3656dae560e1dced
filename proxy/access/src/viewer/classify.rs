//! Classification of a canonical request against a route table.
//!
//! First matching route wins. Then, in this order:
//! 1. an explicit `deny` route denies; a side effect (class X) is denied;
//! 2. the first `when` whose query parameter matches changes the class;
//! 3. content negotiation: if any media type the client asked for (the
//!    `Accept` header, the `accept` or `type` query parameters) matches the
//!    table's `download_media`, a class R, V, Q or shell becomes D;
//! 4. the resource is read from the first scope whose source is present;
//!    ids are checked against their kind; a malformed id, a missing id, an
//!    unknown resource, a D without a resource, or a list/wildcard where one
//!    id is expected is denied. Lists are comma-separated only: a backslash
//!    in a list (`A\B`, which Orthanc searches as one value) is denied.

use serde::Deserialize;

use super::canonical::CanonicalRequest;
use super::media::MediaType;
use super::table::{Captures, Class, Level, LevelSpec, Route, RouteTable, Scope, Source, WhenTest};

/// The kind of an id, which tells the proxy how to resolve it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdKind {
    /// Orthanc's resource id: five groups of 8 lower-case hex digits.
    OrthancId,
    /// A DICOM UID: digits and dots, at most 64 characters.
    DicomUid,
    /// A DICOM Patient ID (LO): at most 64 characters, no backslash.
    PatientId,
}

/// The resource a request touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceRef {
    /// No resource (viewer shell).
    None,
    /// The whole system: an unfiltered list or search.
    System,
    /// One resource.
    One { kind: IdKind, id: String },
    /// Several resources (a QIDO UID list, a list parameter): authorize each
    /// or refuse.
    List { kind: IdKind, ids: Vec<String> },
    /// A filter with a wildcard or universal matching: not scoped to known
    /// resources; the proxy must filter the results (or refuse).
    Unscoped { kind: IdKind },
    /// Ids listed in the JSON request body under `field`: the proxy must
    /// check every one of them or deny.
    Body { kind: IdKind, field: String },
}

impl ResourceRef {
    /// The kind of id, when there is one.
    pub fn kind(&self) -> Option<IdKind> {
        match self {
            ResourceRef::None | ResourceRef::System => None,
            ResourceRef::One { kind, .. }
            | ResourceRef::List { kind, .. }
            | ResourceRef::Unscoped { kind }
            | ResourceRef::Body { kind, .. } => Some(*kind),
        }
    }

    /// Whether the resource is not scoped to known ids (system-wide or
    /// wildcard): results must be filtered.
    pub fn is_unscoped(&self) -> bool {
        matches!(self, ResourceRef::System | ResourceRef::Unscoped { .. })
    }
}

/// A request the table could classify. It still needs a decision: this is a
/// candidate for an allow, not an allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub route_id: String,
    pub class: Class,
    pub level: Level,
    pub resource: ResourceRef,
}

impl Candidate {
    /// Whether this is a DICOM download (class D): needs the download
    /// permission, and is audited.
    pub fn is_download(&self) -> bool {
        self.class == Class::Download
    }
}

/// A refused request. `reason` holds no request data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub reason: String,
    /// The route that matched, if any.
    pub route_id: Option<String>,
    /// The class the request would have had, if known (for the audit).
    pub class: Option<Class>,
}

/// The outcome of classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classification {
    Candidate(Candidate),
    Denied(Denied),
}

impl Classification {
    /// Whether the request is a DICOM download attempt (class D), allowed
    /// candidate or denied.
    pub fn is_download(&self) -> bool {
        self.class() == Some(Class::Download)
    }

    /// The class, when known.
    pub fn class(&self) -> Option<Class> {
        match self {
            Classification::Candidate(c) => Some(c.class),
            Classification::Denied(d) => d.class,
        }
    }

    /// The candidate, if not denied.
    pub fn candidate(&self) -> Option<&Candidate> {
        match self {
            Classification::Candidate(c) => Some(c),
            Classification::Denied(_) => None,
        }
    }
}

fn deny(reason: impl Into<String>, route: Option<&Route>, class: Option<Class>) -> Classification {
    Classification::Denied(Denied {
        reason: reason.into(),
        route_id: route.map(|r| r.id.clone()),
        class,
    })
}

// === impl RouteTable ===

impl RouteTable {
    /// Classify a canonical request (canonicalized with
    /// [`RouteTable::canonicalize`], so that the table's keys are known).
    pub fn classify(&self, req: &CanonicalRequest) -> Classification {
        let first = req.segments().first().map(String::as_str);
        // Only the routes that can match this path: by its first segment,
        // then by its number of segments (read from the route itself, so a
        // route that cannot match costs no look at its methods or pattern).
        let count = req.segments().len();
        let candidates = self
            .by_first
            .candidates(first)
            .map(|i| &self.routes[i])
            .filter(|r| r.fits(count));
        self.classify_among(req, candidates)
    }

    /// [`RouteTable::classify`] trying every route in table order, without
    /// the first-segment index and the segment-count filter: the reference
    /// they are checked against (fuzz target and property test).
    #[doc(hidden)]
    pub fn classify_by_scan(&self, req: &CanonicalRequest) -> Classification {
        self.classify_among(req, self.routes.iter())
    }

    fn classify_among<'r>(
        &'r self,
        req: &'r CanonicalRequest,
        routes: impl Iterator<Item = &'r Route>,
    ) -> Classification {
        match Self::first_match(req, routes) {
            Some((route, captures)) => self.outcome(route, req, &captures),
            None => deny(
                "no route of the viewer table matches this request",
                None,
                None,
            ),
        }
    }

    /// The first of `routes` that matches the request (method, path,
    /// required query values), with its named path segments.
    fn first_match<'r>(
        req: &'r CanonicalRequest,
        routes: impl Iterator<Item = &'r Route>,
    ) -> Option<(&'r Route, Captures<'r>)> {
        let method = req.route_method();
        for route in routes {
            let method_ok = route
                .methods
                .iter()
                .any(|m| m == method || (m == "HEAD" && req.method() == "HEAD"));
            if !method_ok {
                continue;
            }
            let Some(captures) = super::table::match_segments(&route.segs, req.segments()) else {
                continue;
            };
            let required = route.require.iter().all(|(k, vals)| {
                req.query_value(k)
                    .is_some_and(|v| vals.iter().any(|w| w == v))
            });
            if required {
                return Some((route, captures));
            }
        }
        None
    }

    /// The named path segments of the route that classifies `req`, as the
    /// client wrote them: a path's parents are captured but never trusted
    /// (the proxy resolves the real ones). For tests.
    #[doc(hidden)]
    pub fn captures_of(&self, req: &CanonicalRequest) -> Vec<(String, String)> {
        Self::first_match(req, self.routes.iter())
            .map(|(_, caps)| {
                caps.iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn outcome(
        &self,
        route: &Route,
        req: &CanonicalRequest,
        captures: &[(&str, &str)],
    ) -> Classification {
        let Some(mut class) = route.class else {
            let reason = route
                .reason
                .clone()
                .unwrap_or_else(|| "denied by the route table".into());
            return deny(reason, Some(route), None);
        };
        // 2. conditional classes
        for w in &route.when {
            let Some(value) = req.query_value(&w.key) else {
                continue;
            };
            let hit = match &w.test {
                WhenTest::Equals(vals) => vals.iter().any(|v| v.eq_ignore_ascii_case(value)),
                WhenTest::Media(pats) => match MediaType::parse_list(value) {
                    Some(ms) => ms.iter().any(|m| pats.iter().any(|p| m.matches(p))),
                    // Unparseable media type in a parameter that decides the
                    // class: take the strictest reading.
                    None => true,
                },
            };
            if hit {
                match w.class {
                    Some(c) => class = c,
                    None => {
                        return deny(
                            format!("denied by a condition on {}", w.key),
                            Some(route),
                            Some(class),
                        )
                    }
                }
                break;
            }
        }
        // 3. negotiation
        if matches!(
            class,
            Class::Raw | Class::Rendered | Class::Search | Class::Shell
        ) && req
            .negotiated()
            .any(|m| self.download_media.iter().any(|p| m.matches(p)))
        {
            class = Class::Download;
        }
        if class == Class::SideEffect {
            return deny(
                "export, send, modify or delete (class X): never allowed through the portal",
                Some(route),
                Some(class),
            );
        }
        // 4. resource
        let Some((scope, level)) = self.pick_scope(route, req, captures) else {
            return deny(
                "the request does not name its resource",
                Some(route),
                Some(class),
            );
        };
        let resource = match read_resource(scope, req, captures) {
            Ok(ResourceRef::None) if level == Level::System => ResourceRef::System,
            Ok(r) => r,
            Err(why) => return deny(why, Some(route), Some(class)),
        };
        if matches!(resource, ResourceRef::Unscoped { .. } | ResourceRef::System)
            && class != Class::Search
        {
            return deny(
                "a wildcard or system-wide resource is only possible for a search",
                Some(route),
                Some(class),
            );
        }
        if resource == ResourceRef::None && class != Class::Shell {
            return deny(
                "this request touches images but names no resource",
                Some(route),
                Some(class),
            );
        }
        Classification::Candidate(Candidate {
            route_id: route.id.clone(),
            class,
            level,
            resource,
        })
    }

    fn pick_scope<'r>(
        &self,
        route: &'r Route,
        req: &CanonicalRequest,
        captures: &[(&str, &str)],
    ) -> Option<(&'r Scope, Level)> {
        let scope = route.scopes.iter().find(|s| match &s.source {
            Source::Query(k) => req.query_value(k).is_some(),
            _ => true,
        })?;
        let level = match &scope.level {
            LevelSpec::Fixed(l) => *l,
            LevelSpec::Path(n) => {
                let v = captures.iter().find(|(k, _)| k == n).map(|(_, v)| *v)?;
                *self.segment_levels.get(v)?
            }
        };
        Some((scope, level))
    }
}

fn read_resource(
    scope: &Scope,
    req: &CanonicalRequest,
    captures: &[(&str, &str)],
) -> Result<ResourceRef, String> {
    let kind = scope.kind;
    let value = match &scope.source {
        Source::None => return Ok(ResourceRef::None),
        Source::Unknown => return Err("the resource cannot be determined from the request".into()),
        Source::Body(field) => {
            return Ok(ResourceRef::Body {
                kind: kind.unwrap_or(IdKind::OrthancId),
                field: field.clone(),
            })
        }
        Source::Path(n) => captures
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| *v)
            .ok_or("missing path id")?,
        Source::Query(k) => req.query_value(k).ok_or("missing query id")?,
    };
    let Some(kind) = kind else {
        return Err("no id kind".into());
    };
    if !scope.list {
        // A byte scan: `str::contains` with a set of chars decodes each one.
        if value
            .bytes()
            .any(|b| matches!(b, b',' | b'\\' | b'*' | b'?'))
        {
            return Err("one id expected, got a list or a wildcard".into());
        }
        check_id(kind, value)?;
        return Ok(ResourceRef::One {
            kind,
            id: value.to_string(),
        });
    }
    // A backslash is DICOM's value separator, but Orthanc's DICOMweb plugin
    // searches `A\B` as one value while a comma list is searched element by
    // element: two layers reading one filter differently. Refuse it; only
    // comma lists are lists, and every element of one is decided.
    if value.contains('\\') {
        return Err("a backslash in an id list (only commas separate ids)".into());
    }
    let parts: Vec<&str> = value.split(',').collect();
    if parts.iter().any(|p| p.is_empty() || p.contains(['*', '?'])) {
        return Ok(ResourceRef::Unscoped { kind });
    }
    for p in &parts {
        check_id(kind, p)?;
    }
    // Repeated ids count once (`1.3\1.3` is one study: found by fuzzing).
    let mut ids: Vec<String> = Vec::with_capacity(parts.len());
    for p in parts {
        if !ids.iter().any(|i| i == p) {
            ids.push(p.to_string());
        }
    }
    Ok(if ids.len() == 1 {
        ResourceRef::One {
            kind,
            id: ids.remove(0),
        }
    } else {
        ResourceRef::List { kind, ids }
    })
}

/// Check an id against its kind.
pub(crate) fn check_id(kind: IdKind, id: &str) -> Result<(), String> {
    if is_well_formed(kind, id) {
        Ok(())
    } else {
        Err(format!("malformed id for kind {kind:?}"))
    }
}

/// Whether `id` has the form of an id of this kind (what a route table's
/// resource must be; also what an archive's answers are read for).
pub fn is_well_formed(kind: IdKind, id: &str) -> bool {
    match kind {
        // Five groups of eight lowercase hex digits joined by '-' (44 bytes).
        IdKind::OrthancId => {
            id.len() == 44
                && id.as_bytes().chunks(9).all(|group| {
                    group[..8]
                        .iter()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                        && group.get(8).is_none_or(|&b| b == b'-')
                })
        }
        // Digits in non-empty components separated by single dots.
        IdKind::DicomUid => {
            let b = id.as_bytes();
            !b.is_empty()
                && b.len() <= 64
                && b[0] != b'.'
                && b[b.len() - 1] != b'.'
                && b.iter().all(|&c| c.is_ascii_digit() || c == b'.')
                && !b.windows(2).any(|w| w == b"..")
        }
        IdKind::PatientId => {
            !id.is_empty()
                && id.chars().count() <= 64
                && !id.contains('\\')
                && !id.chars().any(char::is_control)
        }
    }
}
