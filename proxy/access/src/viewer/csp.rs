//! The `Content-Security-Policy` of a viewer's HTML pages (`[csp]` of a
//! route table).
//!
//! The viewer pages run on the portal's origin: a script that a viewer lets
//! through (a DICOM tag rendered as HTML, say) would run with the
//! professional's session. Each route table says what its viewer needs, as
//! CSP directives; espace-ps adds a fresh nonce per response to
//! `script-src`/`style-src` (and their `-elem` variants) for what it
//! injects, and sends the policy on every HTML page of the viewer.
//!
//! Validation refuses what an administrator may write by mistake and what
//! would undo the policy: unknown directives, unquoted keywords (`self` is a
//! host name), `'unsafe-inline'` for scripts (inline event handlers are what
//! an injected `<img onerror=…>` needs) or styles (ignored next to a nonce),
//! a nonce of one's own, any-host script sources, and a missing
//! `object-src 'none'`, `base-uri` or `frame-ancestors`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use toml::Spanned;

/// The placeholder-free directives of a validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csp {
    directives: Vec<(String, Vec<String>)>,
    report_only: bool,
}

/// Directives espace-ps adds its nonce to.
const NONCE_DIRECTIVES: &[&str] = &[
    "script-src",
    "script-src-elem",
    "style-src",
    "style-src-elem",
];

/// Directives whose value is a source list.
const SOURCE_LIST: &[&str] = &[
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "img-src",
    "font-src",
    "connect-src",
    "media-src",
    "object-src",
    "frame-src",
    "child-src",
    "worker-src",
    "manifest-src",
    "base-uri",
    "form-action",
    "frame-ancestors",
];

/// Other directives: value tokens only checked for syntax.
const OTHER: &[&str] = &[
    "upgrade-insecure-requests",
    "sandbox",
    "report-uri",
    "report-to",
    "trusted-types",
    "require-trusted-types-for",
];

/// Directives every table must write.
const REQUIRED: &[(&str, &str)] = &[
    ("default-src", "the fallback of every fetch directive"),
    ("script-src", "espace-ps adds its nonce there"),
    (
        "style-src",
        "espace-ps adds its nonce there for the styles it injects",
    ),
    (
        "object-src",
        "write object-src = [\"'none'\"]: plugins run outside the policy",
    ),
    (
        "base-uri",
        "an injected <base> would redirect the viewer's relative scripts",
    ),
    ("frame-ancestors", "who may frame the viewer (clickjacking)"),
];

const KEYWORDS: &[&str] = &[
    "'self'",
    "'none'",
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'wasm-unsafe-eval'",
    "'strict-dynamic'",
    "'unsafe-hashes'",
    "'report-sample'",
    "'inline-speculation-rules'",
];

fn scheme_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:$").expect("regex"))
}

fn host_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)?(\*|(\*\.)?[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*|\[[0-9a-fA-F:.]+\])(:([0-9]+|\*))?(/[!$&'()*+,\-./0-9:=@A-Z_a-z~%]*)?$",
        )
        .expect("regex")
    })
}

fn hash_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^'sha(256|384|512)-[A-Za-z0-9+/\-_]+={0,2}'$").expect("regex"))
}

/// One problem found in `[csp]`: the byte offset it is at and what is wrong.
pub(crate) type CspProblem = (usize, String);

/// A `[csp]` as written: directive name → its values.
pub(crate) type CspDef = BTreeMap<String, Spanned<Vec<Spanned<String>>>>;

impl Csp {
    /// The policy of a table without `[csp]`: the strictest one that lets a
    /// same-origin viewer without inline code work. Deny by default: a
    /// viewer that needs more says so in its table.
    pub fn strict_default() -> Csp {
        let d = |n: &str, v: &[&str]| (n.to_owned(), v.iter().map(|s| s.to_string()).collect());
        Csp {
            directives: vec![
                d("default-src", &["'self'"]),
                d("script-src", &["'self'"]),
                d("style-src", &["'self'"]),
                d("img-src", &["'self'", "data:"]),
                d("object-src", &["'none'"]),
                d("base-uri", &["'none'"]),
                d("form-action", &["'self'"]),
                d("frame-ancestors", &["'self'"]),
            ],
            report_only: false,
        }
    }

    /// Validate a `[csp]` table; `table_at` is where `[csp]` is written
    /// (for problems about a missing directive).
    pub(crate) fn validate(
        def: &CspDef,
        table_at: usize,
        report_only: bool,
    ) -> Result<Csp, Vec<CspProblem>> {
        let mut problems: Vec<CspProblem> = Vec::new();
        let mut directives = Vec::new();
        for (name, values) in def {
            let at = values.span().start;
            let mut problem =
                |off: usize, m: String| problems.push((off, format!("csp {name}: {m}")));
            let lower = name.to_ascii_lowercase();
            let is_source_list = SOURCE_LIST.contains(&lower.as_str());
            if !is_source_list && !OTHER.contains(&lower.as_str()) {
                let hint = if name.contains('_') {
                    format!(" (did you mean {:?}?)", name.replace('_', "-"))
                } else {
                    String::new()
                };
                problem(at, format!("unknown CSP directive{hint}"));
                continue;
            }
            if lower != *name {
                problem(at, format!("write the directive in lower case: {lower:?}"));
                continue;
            }
            let vals = values.get_ref();
            match name.as_str() {
                "upgrade-insecure-requests" if !vals.is_empty() => {
                    problem(at, "takes no value: write []".into())
                }
                "upgrade-insecure-requests" | "sandbox" => {}
                _ if vals.is_empty() => problem(
                    at,
                    "list at least one source (\"'none'\" to allow nothing)".into(),
                ),
                _ => {}
            }
            let mut seen_none = false;
            for v in vals {
                let off = v.span().start;
                let s = v.get_ref().as_str();
                if s.is_empty()
                    || !s.bytes().all(|b| b.is_ascii_graphic())
                    || s.contains([';', ','])
                {
                    problem(
                        off,
                        format!(
                            "{s:?}: one source per string, printable ASCII without spaces, ';' or ','"
                        ),
                    );
                    continue;
                }
                if !is_source_list {
                    continue;
                }
                if let Some(m) = source_problem(name, s) {
                    problem(off, format!("{s:?}: {m}"));
                }
                seen_none |= s == "'none'";
            }
            if seen_none && vals.len() > 1 {
                problem(at, "'none' must be the only source".into());
            }
            directives.push((
                name.clone(),
                vals.iter().map(|v| v.get_ref().clone()).collect(),
            ));
        }
        for (name, why) in REQUIRED {
            if !def.contains_key(*name) {
                problems.push((table_at, format!("csp: {name} is required ({why})")));
            }
        }
        if let Some(v) = def.get("object-src") {
            if v.get_ref().len() != 1 || v.get_ref()[0].get_ref() != "'none'" {
                problems.push((
                    v.span().start,
                    "csp object-src: must be [\"'none'\"] (plugins run outside the policy)".into(),
                ));
            }
        }
        if problems.is_empty() {
            Ok(Csp {
                directives,
                report_only,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether the policy is only reported (`csp_report_only`), not enforced.
    pub fn report_only(&self) -> bool {
        self.report_only
    }

    /// The header to send the policy in.
    pub fn header_name(&self) -> &'static str {
        if self.report_only {
            "content-security-policy-report-only"
        } else {
            "content-security-policy"
        }
    }

    /// The directives, as validated.
    pub fn directives(&self) -> &[(String, Vec<String>)] {
        &self.directives
    }

    /// The header value with `'nonce-{nonce}'` added where espace-ps's
    /// injected elements need it. `nonce` must be base64 (it is ours).
    pub fn header_value(&self, nonce: &str) -> String {
        let mut out = String::new();
        for (name, vals) in &self.directives {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            let nonce_here = NONCE_DIRECTIVES.contains(&name.as_str());
            // 'none' next to a nonce: only the nonce (browsers would ignore
            // 'none' anyway, with a console warning).
            for v in vals.iter().filter(|v| !(nonce_here && *v == "'none'")) {
                out.push(' ');
                out.push_str(v);
            }
            if nonce_here {
                out.push_str(" 'nonce-");
                out.push_str(nonce);
                out.push('\'');
            }
        }
        out
    }

    /// In report-only mode, what is still enforced: `frame-ancestors`
    /// (browsers ignore it in a report-only policy). None otherwise.
    pub fn enforced_in_report_only(&self) -> Option<String> {
        if !self.report_only {
            return None;
        }
        self.directives
            .iter()
            .find(|(n, _)| n == "frame-ancestors")
            .map(|(n, v)| format!("{n} {}", v.join(" ")))
    }
}

/// What is wrong with source `s` in directive `name`, if anything.
fn source_problem(name: &str, s: &str) -> Option<String> {
    let script = name.starts_with("script-src");
    if s.starts_with('\'') {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("'nonce-") {
            return Some(
                "espace-ps adds a fresh nonce to every page; a nonce written here would be the same on every page, which is no nonce"
                    .into(),
            );
        }
        if hash_re().is_match(s) {
            return None;
        }
        if !KEYWORDS.contains(&lower.as_str()) {
            return Some(format!("unknown keyword (known: {})", KEYWORDS.join(", ")));
        }
        if lower != s {
            return Some(format!("write the keyword in lower case: {lower}"));
        }
        if s == "'unsafe-inline'" && script {
            return Some(
                "refused: inline scripts and event handlers (onerror=, onclick=) are what a script hidden in a DICOM tag needs; \
                 allow the viewer's own handlers by hash with 'unsafe-hashes' and 'sha256-…' in script-src-attr"
                    .into(),
            );
        }
        if s == "'strict-dynamic'" {
            return Some(
                "refused: next to espace-ps's nonce it makes browsers ignore 'self' and hosts, and the viewer's own \
                 <script src> tags carry no nonce: its scripts would not load"
                    .into(),
            );
        }
        if s == "'unsafe-inline'" && (name == "style-src" || name == "style-src-elem") {
            return Some(
                "refused: browsers ignore it next to espace-ps's nonce; if the viewer writes style=\"…\" attributes, \
                 put 'unsafe-inline' in style-src-attr"
                    .into(),
            );
        }
        return None;
    }
    let bare = s.to_ascii_lowercase();
    if KEYWORDS.iter().any(|k| k.trim_matches('\'') == bare) {
        return Some(format!(
            "a keyword must be quoted: write \"'{bare}'\" (unquoted, it is a host name)"
        ));
    }
    let is_scheme = scheme_re().is_match(s);
    if !is_scheme && !host_re().is_match(s) {
        return Some("not a CSP source (keyword, 'sha256-…', scheme: or host)".into());
    }
    let any_host = s == "*" || (is_scheme && matches!(bare.as_str(), "http:" | "https:"));
    if script && (any_host || bare == "data:") {
        return Some("refused for scripts: it lets a page load a script from anywhere".into());
    }
    if (name == "frame-ancestors" || name == "base-uri") && (any_host || is_scheme) {
        return Some("refused: name the origins ('self' or hosts)".into());
    }
    if name == "base-uri" {
        return Some("only 'self' or 'none'".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> (String, CspDef) {
        #[derive(serde::Deserialize)]
        struct F {
            csp: CspDef,
        }
        let f: F = toml::from_str(text).expect("toml");
        (text.to_owned(), f.csp)
    }

    const OK: &str = "[csp]\n\
        default-src = [\"'self'\"]\n\
        script-src = [\"'self'\", \"'wasm-unsafe-eval'\"]\n\
        script-src-attr = [\"'unsafe-hashes'\", \"'sha256-AAAA+/Bb='\"]\n\
        style-src = [\"'self'\"]\n\
        style-src-attr = [\"'unsafe-inline'\"]\n\
        img-src = [\"'self'\", \"data:\", \"blob:\"]\n\
        worker-src = [\"'self'\", \"blob:\"]\n\
        connect-src = [\"'self'\", \"https://pacs.example.org:8443/dicom-web/\"]\n\
        object-src = [\"'none'\"]\n\
        base-uri = [\"'self'\"]\n\
        frame-ancestors = [\"'self'\"]\n\
        upgrade-insecure-requests = []\n";

    #[test]
    fn a_good_policy_gets_the_nonce_where_scripts_and_styles_are() {
        let (_, d) = def(OK);
        let csp = Csp::validate(&d, 0, false).expect("valid");
        let h = csp.header_value("n0nce");
        assert!(
            h.contains("script-src 'self' 'wasm-unsafe-eval' 'nonce-n0nce'"),
            "{h}"
        );
        assert!(h.contains("style-src 'self' 'nonce-n0nce'"), "{h}");
        assert!(
            h.contains("style-src-attr 'unsafe-inline';"),
            "no nonce on attributes: {h}"
        );
        assert!(h.contains("object-src 'none'"), "{h}");
        assert!(h.contains("; upgrade-insecure-requests"), "{h}");
        assert_eq!(csp.header_name(), "content-security-policy");
        assert_eq!(csp.enforced_in_report_only(), None);
        let ro = Csp::validate(&d, 0, true).expect("valid");
        assert_eq!(ro.header_name(), "content-security-policy-report-only");
        assert_eq!(
            ro.enforced_in_report_only().as_deref(),
            Some("frame-ancestors 'self'")
        );
    }

    #[track_caller]
    fn refused(replace: (&str, &str), needle: &str) {
        let text = OK.replacen(replace.0, replace.1, 1);
        assert_ne!(text, OK, "replacement {replace:?} did nothing");
        let (_, d) = def(&text);
        let ps = Csp::validate(&d, 0, false).expect_err(needle);
        assert!(
            ps.iter().any(|(_, m)| m.contains(needle)),
            "{needle:?} not in {ps:?}"
        );
    }

    #[test]
    fn what_an_administrator_may_get_wrong_is_refused() {
        refused(
            (
                "script-src = [\"'self'\"",
                "script-src = [\"'self'\", \"'unsafe-inline'\"",
            ),
            "csp script-src: \"'unsafe-inline'\": refused",
        );
        refused(
            (
                "script-src-attr = [\"'unsafe-hashes'\"",
                "script-src-attr = [\"'unsafe-inline'\"",
            ),
            "csp script-src-attr: \"'unsafe-inline'\": refused",
        );
        refused(
            (
                "style-src = [\"'self'\"",
                "style-src = [\"'self'\", \"'unsafe-inline'\"",
            ),
            "style-src-attr",
        );
        refused(
            ("default-src = [\"'self'\"]", "default-src = [\"self\"]"),
            "must be quoted",
        );
        refused(("\"'wasm-unsafe-eval'\"", "\"'nonce-abc'\""), "no nonce");
        refused(
            ("\"'wasm-unsafe-eval'\"", "\"https:\""),
            "refused for scripts",
        );
        refused(("\"'wasm-unsafe-eval'\"", "\"*\""), "refused for scripts");
        refused(
            ("\"'wasm-unsafe-eval'\"", "\"data:\""),
            "refused for scripts",
        );
        refused(
            ("\"'wasm-unsafe-eval'\"", "\"'unsafe-evil'\""),
            "unknown keyword",
        );
        refused(
            ("\"'wasm-unsafe-eval'\"", "\"'strict-dynamic'\""),
            "scripts would not load",
        );
        refused(
            ("object-src = [\"'none'\"]\n", ""),
            "object-src is required",
        );
        refused(
            ("object-src = [\"'none'\"]", "object-src = [\"'self'\"]"),
            "must be [\"'none'\"]",
        );
        refused(("base-uri = [\"'self'\"]\n", ""), "base-uri is required");
        refused(
            ("base-uri = [\"'self'\"]", "base-uri = [\"https:\"]"),
            "csp base-uri",
        );
        refused(
            ("frame-ancestors = [\"'self'\"]\n", ""),
            "frame-ancestors is required",
        );
        refused(
            (
                "frame-ancestors = [\"'self'\"]",
                "frame-ancestors = [\"*\"]",
            ),
            "name the origins",
        );
        refused(("img-src", "img_src"), "did you mean \"img-src\"");
        refused(
            ("img-src = [\"'self'\", ", "img-src = [\"'none'\", "),
            "'none' must be the only source",
        );
        refused(
            ("\"blob:\"]\nworker", "\"blob: 'self'\"]\nworker"),
            "one source per string",
        );
        refused(
            (
                "upgrade-insecure-requests = []",
                "upgrade-insecure-requests = [\"x\"]",
            ),
            "takes no value",
        );
        refused(
            ("worker-src = [\"'self'\", \"blob:\"]", "worker-src = []"),
            "at least one source",
        );
    }

    #[test]
    fn the_strict_default_is_valid_and_has_the_required_directives() {
        let csp = Csp::strict_default();
        let h = csp.header_value("x");
        for (name, _) in REQUIRED {
            assert!(h.contains(name), "{name} in {h}");
        }
        assert!(h.contains("script-src 'self' 'nonce-x'"), "{h}");
    }
}
