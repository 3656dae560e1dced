//! Route tables (`policies/viewers/*.toml`): the file format, its
//! validation, and the internal, validated [`RouteTable`].
//!
//! The format is documented for administrators in `docs/policies.md`,
//! "Viewer route tables". Routes are tried in file order; the first one
//! whose methods, path pattern and `require`d query values match decides.
//! A route that an earlier route makes unreachable is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;

use super::segment::MixedSegment;
use serde::Deserialize;
use toml::Spanned;

use super::canonical::{canonical_query_key, canonicalize_with, CanonicalRequest, Rejection};
use super::classify::{Classification, IdKind};
use super::csp::{Csp, CspDef};
use super::media::MediaType;
use super::resolver::{self, Resolver, ResolverDef};
use crate::load::Problem;

/// The folder of route tables inside a policy directory.
pub const VIEWERS_DIR: &str = "viewers";

// === file format ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    viewer: ViewerDef,
    #[serde(default)]
    segment_levels: BTreeMap<String, Level>,
    #[serde(default)]
    route: Vec<Spanned<RouteDef>>,
    /// The Content-Security-Policy of the viewer's HTML pages.
    #[serde(default)]
    csp: Option<Spanned<CspDef>>,
    /// How the archive is asked which study a resource belongs to.
    #[serde(default)]
    resolver: Option<Spanned<ResolverDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewerDef {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    security_query_keys: Vec<Spanned<String>>,
    #[serde(default)]
    download_media: Vec<Spanned<String>>,
    /// Send `[csp]` as Content-Security-Policy-Report-Only (to find out what
    /// a new viewer needs); frame-ancestors stays enforced.
    #[serde(default)]
    csp_report_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDef {
    id: String,
    methods: Vec<String>,
    pattern: Spanned<String>,
    class: ClassDef,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    resource: Option<Spanned<String>>,
    #[serde(default)]
    kind: Option<IdKind>,
    #[serde(default)]
    list: bool,
    #[serde(default)]
    scope: Vec<ScopeDef>,
    #[serde(default)]
    require: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    when: Vec<WhenDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeDef {
    level: Level,
    resource: String,
    kind: IdKind,
    #[serde(default)]
    list: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenDef {
    query: String,
    #[serde(default)]
    media: Vec<String>,
    #[serde(default)]
    equals: Vec<String>,
    class: ClassDef,
}

/// A class as written in a table: an action class or an explicit `deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
enum ClassDef {
    D,
    R,
    V,
    Q,
    X,
    #[serde(rename = "shell")]
    Shell,
    #[serde(rename = "deny")]
    Deny,
}

// === public vocabulary ===

/// What a request does with the resource it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// The viewer application itself (HTML, scripts, styles): no resource,
    /// any signed-in user.
    Shell,
    /// V: rendered view (JPEG/PNG/thumbnails).
    Rendered,
    /// Q: search; results must be filtered.
    Search,
    /// R: raw view (pixels, full metadata).
    Raw,
    /// D: download DICOM (Part-10 files, archives). Audited.
    Download,
    /// X: export, send, modify, delete. Never for portal users.
    SideEffect,
}

impl Class {
    /// The letter used in tables and audit records.
    pub fn code(self) -> &'static str {
        match self {
            Class::Shell => "shell",
            Class::Rendered => "V",
            Class::Search => "Q",
            Class::Raw => "R",
            Class::Download => "D",
            Class::SideEffect => "X",
        }
    }

    /// Parse a letter as written in tables.
    pub fn from_code(code: &str) -> Option<Class> {
        Some(match code {
            "shell" => Class::Shell,
            "V" => Class::Rendered,
            "Q" => Class::Search,
            "R" => Class::Raw,
            "D" => Class::Download,
            "X" => Class::SideEffect,
            _ => return None,
        })
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The level of the resource a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No resource (viewer shell).
    None,
    /// The whole system (unfiltered lists and searches).
    System,
    Patient,
    Study,
    Series,
    Instance,
    /// Each resource listed in the request body or a list parameter.
    Listed,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::System => "system",
            Level::Patient => "patient",
            Level::Study => "study",
            Level::Series => "series",
            Level::Instance => "instance",
            Level::Listed => "listed",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === validated table ===

/// One segment of a path pattern.
#[derive(Clone, Debug)]
pub(crate) enum Seg {
    /// Exactly this text.
    Lit(String),
    /// Any one segment, captured.
    Capture(String),
    /// One of these literals, captured.
    OneOf(String, Vec<String>),
    /// Literals and captures inside one segment (`{q}-{instance}_{frame}`).
    Mixed {
        template: String,
        mixed: MixedSegment,
    },
    /// `**`: one or more remaining segments.
    Rest,
}

/// Where a resource id comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Path(String),
    Query(String),
    Body(String),
    /// No resource: shell or system-wide.
    None,
    /// A resource exists but cannot be determined from the request (deny).
    Unknown,
}

#[derive(Clone, Debug)]
pub(crate) enum LevelSpec {
    Fixed(Level),
    /// From a captured alternation, through `segment_levels`.
    Path(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub level: LevelSpec,
    pub source: Source,
    pub kind: Option<IdKind>,
    pub list: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum WhenTest {
    Media(Vec<MediaType>),
    Equals(Vec<String>),
}

#[derive(Clone, Debug)]
pub(crate) struct When {
    pub key: String,
    pub test: WhenTest,
    /// `None`: deny.
    pub class: Option<Class>,
}

#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub id: String,
    pub methods: Vec<String>,
    pub pattern: String,
    pub segs: Vec<Seg>,
    /// `None`: explicit deny with `reason`.
    pub class: Option<Class>,
    pub reason: Option<String>,
    /// Tried in order; the first whose source is present decides. The last
    /// may be a fallback with [`Source::None`].
    pub scopes: Vec<Scope>,
    pub require: Vec<(String, Vec<String>)>,
    pub when: Vec<When>,
    /// Whether the pattern ends with `**` (then it matches paths of at
    /// least `segs.len()` segments, else of exactly that many).
    pub open_ended: bool,
}

impl Route {
    /// Whether a path of `segments` segments can match: decided from the
    /// route itself, before its methods and segments are read.
    pub(crate) fn fits(&self, segments: usize) -> bool {
        if self.open_ended {
            segments >= self.segs.len()
        } else {
            segments == self.segs.len()
        }
    }
}

/// A validated route table for one viewer.
#[derive(Clone, Debug)]
pub struct RouteTable {
    pub(crate) name: String,
    pub(crate) file: PathBuf,
    pub(crate) security_keys: Vec<String>,
    pub(crate) download_media: Vec<MediaType>,
    pub(crate) segment_levels: BTreeMap<String, Level>,
    pub(crate) routes: Vec<Route>,
    /// Which routes a request's first path segment can match, in table
    /// order (see [`FirstSegmentIndex`]).
    pub(crate) by_first: FirstSegmentIndex,
    pub(crate) csp: std::sync::Arc<Csp>,
    pub(crate) resolver: Resolver,
}

/// The routes a request may match, by its first path segment: those whose
/// pattern starts with that literal (or one of its alternatives), merged in
/// table order with those that start with a capture, a mixed segment or
/// `**`, or have no segment. First match wins as in a plain scan; this
/// only skips routes that cannot match.
#[derive(Clone, Debug, Default)]
pub(crate) struct FirstSegmentIndex {
    /// Built from the table; looked up with a request's first segment on
    /// every viewer request: foldhash (seeded per process).
    literal: std::collections::HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
    other: Vec<usize>,
}

impl FirstSegmentIndex {
    fn new(routes: &[Route]) -> FirstSegmentIndex {
        let mut index = FirstSegmentIndex::default();
        for (i, route) in routes.iter().enumerate() {
            match route.segs.first() {
                Some(Seg::Lit(l)) => index.literal.entry(l.clone()).or_default().push(i),
                Some(Seg::OneOf(_, opts)) => {
                    for o in opts {
                        let list = index.literal.entry(o.clone()).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                _ => index.other.push(i),
            }
        }
        index
    }

    /// The indexes of the routes to try for a request whose first segment
    /// is `first`, in table order.
    pub(crate) fn candidates(&self, first: Option<&str>) -> impl Iterator<Item = usize> + '_ {
        let lit: &[usize] = first
            .and_then(|f| self.literal.get(f))
            .map_or(&[], Vec::as_slice);
        let (mut a, mut b) = (lit.iter().peekable(), self.other.iter().peekable());
        std::iter::from_fn(move || match (a.peek(), b.peek()) {
            (Some(&&x), Some(&&y)) if x < y => a.next().copied(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next().copied(),
            (Some(_), None) => a.next().copied(),
            (None, None) => None,
        })
    }
}

// === impl RouteTable ===

impl RouteTable {
    /// Read and validate a route table file.
    pub fn load(path: impl AsRef<Path>) -> Result<RouteTable, Vec<Problem>> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![Problem::in_file(path, format!("cannot read: {e}"))])?;
        RouteTable::parse(path, &text)
    }

    /// Validate a route table from its text; `path` names it in problems.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<RouteTable, Vec<Problem>> {
        let path = path.as_ref();
        let file: FileDef = toml::from_str(text).map_err(|e| {
            vec![Problem::at_offset(
                path,
                text,
                e.span().map(|s| s.start),
                format!("invalid route table: {}", e.message()),
            )]
        })?;
        Builder {
            path,
            text,
            problems: Vec::new(),
        }
        .build(file)
    }

    /// The viewer's name (`[viewer] name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the table was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route (then it denies everything).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Route ids, in order.
    pub fn route_ids(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| r.id.as_str())
    }

    /// The path pattern of a route.
    pub fn route_pattern(&self, id: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.pattern.as_str())
    }

    /// The Content-Security-Policy of the viewer's HTML pages (`[csp]`, or
    /// [`Csp::strict_default`] when the table has none).
    pub fn csp(&self) -> &std::sync::Arc<Csp> {
        &self.csp
    }

    /// How the archive behind the viewer is asked which study a resource
    /// belongs to (`[resolver]`; Orthanc's REST API when absent).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The security-relevant query keys declared by this table, besides the
    /// built-in ones.
    pub fn security_query_keys(&self) -> &[String] {
        &self.security_keys
    }

    /// Canonicalize a request with this table's security-relevant keys.
    pub fn canonicalize(
        &self,
        method: &str,
        raw_target: &str,
        headers: &[(String, String)],
    ) -> Result<CanonicalRequest, Rejection> {
        canonicalize_with(method, raw_target, headers, &self.security_keys)
    }

    /// Canonicalize and classify in one call.
    pub fn classify_raw(
        &self,
        method: &str,
        raw_target: &str,
        headers: &[(String, String)],
    ) -> Result<(CanonicalRequest, Classification), Rejection> {
        let req = self.canonicalize(method, raw_target, headers)?;
        let class = self.classify(&req);
        Ok((req, class))
    }
}

/// Load every `*.toml` of `dir/viewers` (a missing folder is no table).
/// Collects every problem.
pub fn load_dir(policy_dir: &Path) -> Result<Vec<RouteTable>, Vec<Problem>> {
    let dir = policy_dir.join(VIEWERS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        vec![Problem::in_file(
            &dir,
            format!("cannot read directory: {e}"),
        )]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()) == Some("toml")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    let mut tables = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match RouteTable::load(&f) {
            Ok(t) => {
                if let Some(other) = tables.iter().find(|o: &&RouteTable| o.name == t.name) {
                    problems.push(Problem::in_file(
                        &f,
                        format!(
                            "viewer name {:?} already used by {}",
                            t.name,
                            other.file.display()
                        ),
                    ));
                } else {
                    tables.push(t);
                }
            }
            Err(ps) => problems.extend(ps),
        }
    }
    if problems.is_empty() {
        Ok(tables)
    } else {
        Err(problems)
    }
}

// === validation ===

struct Builder<'a> {
    path: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Builder<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        self.problems.push(Problem::at_offset(
            self.path,
            self.text,
            Some(offset),
            message,
        ));
    }

    fn build(mut self, file: FileDef) -> Result<RouteTable, Vec<Problem>> {
        if file.viewer.name.trim().is_empty() {
            self.problem(0, "[viewer] name is empty".to_string());
        }
        // --- security keys
        let mut security_keys = Vec::new();
        for k in &file.viewer.security_query_keys {
            let (canon, known) = canonical_query_key(k.get_ref(), &[]);
            if known {
                self.problem(
                    k.span().start,
                    format!(
                        "security_query_keys: {:?} is built in already ({canon})",
                        k.get_ref()
                    ),
                );
            } else if k.get_ref().is_empty() || canon != *k.get_ref() {
                self.problem(
                    k.span().start,
                    format!("security_query_keys: write {:?} as {canon:?}", k.get_ref()),
                );
            } else {
                security_keys.push(canon);
            }
        }
        // --- media
        let mut download_media = Vec::new();
        for m in &file.viewer.download_media {
            match MediaType::parse(m.get_ref()) {
                Some(mt) => download_media.push(mt),
                None => self.problem(
                    m.span().start,
                    format!("malformed media type {:?}", m.get_ref()),
                ),
            }
        }
        // --- content security policy
        let csp = match &file.csp {
            None => {
                if file.viewer.csp_report_only {
                    self.problem(0, "csp_report_only without a [csp] table".to_string());
                }
                Some(Csp::strict_default())
            }
            Some(def) => {
                // Problems about a missing directive point at the `[csp]` header.
                let at = Regex::new(r"(?m)^[ \t]*\[[ \t]*csp[ \t]*\]")
                    .ok()
                    .and_then(|re| re.find(self.text))
                    .map_or(def.span().start, |m| m.start());
                match Csp::validate(def.get_ref(), at, file.viewer.csp_report_only) {
                    Ok(c) => Some(c),
                    Err(ps) => {
                        for (off, m) in ps {
                            self.problem(off, m);
                        }
                        None
                    }
                }
            }
        };
        // --- resolver
        let resolver_at = file.resolver.as_ref().map_or(0, |d| d.span().start);
        let resolver = match resolver::validate(file.resolver.as_ref().map(|d| d.get_ref())) {
            Ok(r) => r,
            Err(ps) => {
                for m in ps {
                    self.problem(resolver_at, m);
                }
                Resolver::OrthancRest
            }
        };
        // --- routes
        let mut routes: Vec<Route> = Vec::new();
        for def in file.route {
            let start = def.span().start;
            let before = self.problems.len();
            let route = self.route(
                def.into_inner(),
                start,
                &security_keys,
                &file.segment_levels,
            );
            if let Some(route) = route {
                if let Some(kind) = route
                    .scopes
                    .iter()
                    .filter_map(|s| s.kind)
                    .find(|k| !resolver.resolves(*k))
                {
                    let msg = format!(
                        "route {:?}: ids of kind {kind:?} cannot be resolved by the {} resolver ([resolver])",
                        route.id,
                        resolver.kind()
                    );
                    self.problem(start, msg);
                }
                if self.problems.len() == before {
                    if let Some(other) = routes.iter().find(|o| o.id == route.id) {
                        let msg = format!("duplicate route id {:?}", other.id);
                        self.problem(start, msg);
                    } else if let Some(earlier) = routes.iter().find(|o| covers(o, &route)) {
                        let msg = format!(
                            "route {:?} can never match: route {:?} before it matches every request it does (first match wins; move the more specific route first)",
                            route.id, earlier.id
                        );
                        self.problem(start, msg);
                    } else {
                        routes.push(route);
                    }
                }
            }
        }
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        Ok(RouteTable {
            name: file.viewer.name,
            file: self.path.to_path_buf(),
            security_keys,
            download_media,
            segment_levels: file.segment_levels,
            by_first: FirstSegmentIndex::new(&routes),
            routes,
            csp: std::sync::Arc::new(csp.unwrap_or_else(Csp::strict_default)),
            resolver,
        })
    }

    fn route(
        &mut self,
        def: RouteDef,
        start: usize,
        security_keys: &[String],
        segment_levels: &BTreeMap<String, Level>,
    ) -> Option<Route> {
        let id = def.id.clone();
        let at = |what: &str| format!("route {id:?}: {what}");
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.problem(
                start,
                at("id must be non-empty letters, digits, '-' or '_'"),
            );
        }
        // methods
        if def.methods.is_empty() {
            self.problem(start, at("methods is empty"));
        }
        for m in &def.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                self.problem(
                    start,
                    at(&format!("method {m:?} is not an upper-case HTTP method")),
                );
            }
        }
        // pattern
        let pstart = def.pattern.span().start;
        let segs = match parse_pattern(def.pattern.get_ref()) {
            Ok(s) => s,
            Err(e) => {
                self.problem(
                    pstart,
                    at(&format!("pattern {:?}: {e}", def.pattern.get_ref())),
                );
                return None;
            }
        };
        let captures = capture_names(&segs);
        let is_key = |k: &str| -> Result<String, String> {
            let (canon, security) = canonical_query_key(k, security_keys);
            if !security {
                return Err(format!(
                    "query key {k:?} is not security-relevant: add it to [viewer] security_query_keys"
                ));
            }
            if canon != k {
                return Err(format!("write query key {k:?} as {canon:?}"));
            }
            Ok(canon)
        };
        // class
        let class = match def.class {
            ClassDef::Deny => {
                if def.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    self.problem(start, at("class \"deny\" needs a reason"));
                }
                None
            }
            c => Some(class_of(c)),
        };
        // scopes
        let mut scopes = Vec::new();
        let single = def.level.is_some() || def.resource.is_some() || def.kind.is_some();
        if single && !def.scope.is_empty() {
            self.problem(
                start,
                at("use either level/resource/kind or [[route.scope]], not both"),
            );
        }
        let check_scope = |this: &mut Self,
                           level: LevelSpec,
                           resource: &str,
                           kind: Option<IdKind>,
                           list: bool|
         -> Option<Scope> {
            let source = match parse_source(resource) {
                Some(s) => s,
                None => {
                    this.problem(start, at(&format!(
                        "resource {resource:?}: expected path:NAME, query:KEY, body:FIELD, none or unknown"
                    )));
                    return None;
                }
            };
            match &source {
                Source::Path(n) if !captures.contains(n) => {
                    this.problem(
                        start,
                        at(&format!(
                            "resource {resource:?}: no segment {{{n}}} in the pattern"
                        )),
                    );
                }
                Source::Query(k) => {
                    if let Err(e) = is_key(k) {
                        this.problem(start, at(&e));
                    }
                }
                _ => {}
            }
            let needs_kind = matches!(source, Source::Path(_) | Source::Query(_) | Source::Body(_));
            if needs_kind && kind.is_none() {
                this.problem(start, at("a resource read from the request needs a kind"));
            }
            if !needs_kind && kind.is_some() {
                this.problem(start, at("kind given for a route without resource id"));
            }
            match (&level, &source) {
                (LevelSpec::Fixed(Level::None | Level::System), Source::None) => {}
                (_, Source::None) => {
                    this.problem(start, at("resource \"none\" needs level none or system"))
                }
                (LevelSpec::Fixed(Level::None | Level::System), _) => {
                    this.problem(start, at("level none or system takes resource \"none\""))
                }
                (LevelSpec::Fixed(Level::Listed), Source::Path(_)) => {
                    this.problem(start, at("level listed reads a list: use query: or body:"))
                }
                _ => {}
            }
            if let LevelSpec::Path(n) = &level {
                match segs.iter().find_map(|s| match s {
                    Seg::OneOf(name, opts) if name == n => Some(opts),
                    _ => None,
                }) {
                    Some(opts) => {
                        for o in opts {
                            if !segment_levels.contains_key(o) {
                                this.problem(
                                    start,
                                    at(&format!(
                                        "level path:{n}: {o:?} is not in [segment_levels]"
                                    )),
                                );
                            }
                        }
                    }
                    None => this.problem(
                        start,
                        at(&format!(
                            "level path:{n}: needs a segment {{{n}=a|b}} in the pattern"
                        )),
                    ),
                }
            }
            if list && !matches!(source, Source::Query(_)) {
                this.problem(start, at("list = true only applies to a query: resource"));
            }
            Some(Scope {
                level,
                source,
                kind,
                list,
            })
        };
        if !def.scope.is_empty() {
            for s in &def.scope {
                if let Some(sc) = check_scope(
                    self,
                    LevelSpec::Fixed(s.level),
                    &s.resource,
                    Some(s.kind),
                    s.list,
                ) {
                    if matches!(sc.source, Source::None | Source::Unknown) {
                        self.problem(
                            start,
                            at("a [[route.scope]] reads an id: use path:, query: or body:"),
                        );
                    }
                    scopes.push(sc);
                }
            }
            // Fallback when no scope source is present: the system.
            scopes.push(Scope {
                level: LevelSpec::Fixed(Level::System),
                source: Source::None,
                kind: None,
                list: false,
            });
        } else if class.is_some() {
            let resource = def.resource.as_ref().map(|r| r.get_ref().as_str());
            match (def.level.as_deref(), resource) {
                (_, Some("unknown")) => {
                    if def.level.is_some() || def.kind.is_some() {
                        self.problem(start, at("resource \"unknown\" takes no level or kind"));
                    }
                    scopes.push(Scope {
                        level: LevelSpec::Fixed(Level::None),
                        source: Source::Unknown,
                        kind: None,
                        list: false,
                    });
                }
                (Some(level), resource) => {
                    let level = match parse_level(level) {
                        Some(l) => l,
                        None => {
                            self.problem(start, at(&format!(
                                "level {level:?}: expected none, system, patient, study, series, instance, listed or path:NAME"
                            )));
                            return None;
                        }
                    };
                    let resource = resource.unwrap_or("none");
                    if let Some(sc) = check_scope(self, level, resource, def.kind, def.list) {
                        scopes.push(sc);
                    }
                }
                (None, _) => self.problem(start, at("level is required (or [[route.scope]])")),
            }
        } else if single {
            self.problem(start, at("a deny route takes no level, resource or kind"));
        }
        if class == Some(Class::Shell) && !scopes.iter().all(|s| s.source == Source::None) {
            self.problem(start, at("class shell has no resource"));
        }
        // require
        let mut require = Vec::new();
        for (k, vals) in def.require {
            match is_key(&k) {
                Ok(k) => {
                    if vals.is_empty() {
                        self.problem(start, at(&format!("require {k}: list at least one value")));
                    }
                    require.push((k, vals));
                }
                Err(e) => self.problem(start, at(&e)),
            }
        }
        // when
        let mut when = Vec::new();
        for w in def.when {
            let key = match is_key(&w.query) {
                Ok(k) => k,
                Err(e) => {
                    self.problem(start, at(&e));
                    continue;
                }
            };
            let test = match (w.media.is_empty(), w.equals.is_empty()) {
                (false, true) => {
                    let mut ms = Vec::new();
                    for m in &w.media {
                        match MediaType::parse(m) {
                            Some(mt) => ms.push(mt),
                            None => self
                                .problem(start, at(&format!("when: malformed media type {m:?}"))),
                        }
                    }
                    WhenTest::Media(ms)
                }
                (true, false) => WhenTest::Equals(w.equals),
                _ => {
                    self.problem(start, at("when: give exactly one of media or equals"));
                    continue;
                }
            };
            let class = match w.class {
                ClassDef::Deny => None,
                c => Some(class_of(c)),
            };
            when.push(When { key, test, class });
        }
        Some(Route {
            id: def.id,
            methods: def.methods,
            pattern: def.pattern.into_inner(),
            open_ended: matches!(segs.last(), Some(Seg::Rest)),
            segs,
            class,
            reason: def.reason,
            scopes,
            require,
            when,
        })
    }
}

fn class_of(c: ClassDef) -> Class {
    match c {
        ClassDef::D => Class::Download,
        ClassDef::R => Class::Raw,
        ClassDef::V => Class::Rendered,
        ClassDef::Q => Class::Search,
        ClassDef::X => Class::SideEffect,
        ClassDef::Shell | ClassDef::Deny => Class::Shell,
    }
}

fn parse_level(s: &str) -> Option<LevelSpec> {
    if let Some(n) = s.strip_prefix("path:") {
        return Some(LevelSpec::Path(n.to_string()));
    }
    let l: Level = Level::deserialize(toml::Value::String(s.to_string())).ok()?;
    Some(LevelSpec::Fixed(l))
}

fn parse_source(s: &str) -> Option<Source> {
    let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_string());
    if let Some(n) = s.strip_prefix("path:") {
        return nonempty(n).map(Source::Path);
    }
    if let Some(k) = s.strip_prefix("query:") {
        return nonempty(k).map(Source::Query);
    }
    if let Some(f) = s.strip_prefix("body:") {
        return nonempty(f).map(Source::Body);
    }
    match s {
        "none" => Some(Source::None),
        "unknown" => Some(Source::Unknown),
        _ => None,
    }
}

// === patterns ===

fn is_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parse `/a/{b}/{c=x|y}/{q}-{d}/**`.
pub(crate) fn parse_pattern(p: &str) -> Result<Vec<Seg>, String> {
    let rest = p.strip_prefix('/').ok_or("must start with '/'")?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segs = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut add_name = |n: &str| -> Result<(), String> {
        if !is_name(n) {
            return Err(format!(
                "segment name {n:?}: use lower-case letters, digits and '_'"
            ));
        }
        if names.iter().any(|x| x == n) {
            return Err(format!("segment name {n:?} used twice"));
        }
        names.push(n.to_string());
        Ok(())
    };
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err("empty segment (double or trailing slash)".into());
        }
        if *part == "**" {
            if i + 1 != parts.len() {
                return Err("'**' must be the last segment".into());
            }
            segs.push(Seg::Rest);
            continue;
        }
        if part.contains('*') {
            return Err("'*' only as a whole '**' last segment".into());
        }
        if *part == "." || *part == ".." || part.contains(['\\', ';', '%', '?', '#']) {
            return Err(format!(
                "segment {part:?} can never match a canonical request"
            ));
        }
        let whole = part.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        if let Some(inner) = whole.filter(|s| !s.contains(['{', '}'])) {
            match inner.split_once('=') {
                Some((name, opts)) => {
                    add_name(name)?;
                    let opts: Vec<String> = opts.split('|').map(str::to_string).collect();
                    if opts
                        .iter()
                        .any(|o| o.is_empty() || o.contains(['{', '}', '=']))
                    {
                        return Err(format!("segment {part:?}: empty or malformed alternative"));
                    }
                    segs.push(Seg::OneOf(name.to_string(), opts));
                }
                None => {
                    add_name(inner)?;
                    segs.push(Seg::Capture(inner.to_string()));
                }
            }
            continue;
        }
        if !part.contains(['{', '}']) {
            segs.push(Seg::Lit(part.to_string()));
            continue;
        }
        // Mixed segment.
        let mixed = MixedSegment::parse(part, &mut add_name)?;
        segs.push(Seg::Mixed {
            template: part.to_string(),
            mixed,
        });
    }
    Ok(segs)
}

fn capture_names(segs: &[Seg]) -> Vec<String> {
    let mut out = Vec::new();
    for s in segs {
        match s {
            Seg::Capture(n) | Seg::OneOf(n, _) => out.push(n.clone()),
            Seg::Mixed { mixed, .. } => out.extend(mixed.names.iter().cloned()),
            Seg::Lit(_) | Seg::Rest => {}
        }
    }
    out
}

/// A matched route's named path segments, `(name, value)`: borrowed from
/// the route and the request (a request names a few: no allocation).
pub(crate) type Captures<'a> = smallvec::SmallVec<[(&'a str, &'a str); 4]>;

/// Match decoded segments; the captured values on success.
pub(crate) fn match_segments<'a>(segs: &'a [Seg], path: &'a [String]) -> Option<Captures<'a>> {
    // Most routes do not match: check first, then capture. A mixed segment
    // is split only here (once), where a mismatch still fails the whole
    // match.
    if !segments_match(segs, path) {
        return None;
    }
    let mut caps = Captures::new();
    for (seg, p) in segs.iter().zip(path) {
        match seg {
            Seg::Rest => break,
            Seg::Lit(_) => {}
            Seg::Capture(n) | Seg::OneOf(n, _) => caps.push((n.as_str(), p.as_str())),
            Seg::Mixed { mixed, .. } => caps.extend(mixed.capture_each(p)?),
        }
    }
    Some(caps)
}

/// Whether a path can match a route's segments: every segment but the
/// mixed ones, which [`match_segments`] splits (no captures kept).
fn segments_match(segs: &[Seg], path: &[String]) -> bool {
    for (i, seg) in segs.iter().enumerate() {
        if let Seg::Rest = seg {
            return path.len() > i;
        }
        let Some(p) = path.get(i) else {
            return false;
        };
        let ok = match seg {
            Seg::Lit(l) => l == p,
            Seg::Capture(_) => true,
            Seg::OneOf(_, opts) => opts.iter().any(|o| o == p),
            // Split once, by the capture pass (which fails on no match).
            Seg::Mixed { .. } => true,
            Seg::Rest => unreachable!("handled above"),
        };
        if !ok {
            return false;
        }
    }
    path.len() == segs.len()
}

fn methods_of(r: &Route) -> Vec<&str> {
    let mut m: Vec<&str> = r.methods.iter().map(String::as_str).collect();
    if m.contains(&"GET") {
        m.push("HEAD");
    }
    m
}

/// Whether route `a` matches every request that route `b` matches.
fn covers(a: &Route, b: &Route) -> bool {
    let ma = methods_of(a);
    if !methods_of(b).iter().all(|m| ma.contains(m)) {
        return false;
    }
    // a's requirements must be implied by b's.
    for (k, vals) in &a.require {
        match b.require.iter().find(|(bk, _)| bk == k) {
            Some((_, bvals)) if bvals.iter().all(|v| vals.contains(v)) => {}
            _ => return false,
        }
    }
    let mut i = 0;
    loop {
        match (a.segs.get(i), b.segs.get(i)) {
            (None, None) => return true,
            (Some(Seg::Rest), Some(_)) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(_), Some(Seg::Rest)) => return false,
            (Some(sa), Some(sb)) => {
                let ok = match (sa, sb) {
                    (Seg::Capture(_), _) => true,
                    (Seg::Lit(x), Seg::Lit(y)) => x == y,
                    (Seg::Lit(x), Seg::OneOf(_, ys)) => ys.iter().all(|y| y == x),
                    (Seg::OneOf(_, xs), Seg::Lit(y)) => xs.contains(y),
                    (Seg::OneOf(_, xs), Seg::OneOf(_, ys)) => ys.iter().all(|y| xs.contains(y)),
                    (Seg::Mixed { mixed, .. }, Seg::Lit(y)) => mixed.is_match(y),
                    (Seg::Mixed { template: t, .. }, Seg::Mixed { template: u, .. }) => t == u,
                    (Seg::Mixed { mixed, .. }, Seg::OneOf(_, ys)) => {
                        ys.iter().all(|y| mixed.is_match(y))
                    }
                    _ => false,
                };
                if !ok {
                    return false;
                }
            }
        }
        i += 1;
    }
}
