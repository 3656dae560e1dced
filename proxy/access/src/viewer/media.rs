//! Media types as they appear in `Accept`, in the `accept` query parameter
//! and in WADO-URI's `contentType`: `type/subtype; name=value; ...`, in
//! comma-separated lists, with quoted parameter values.

use std::fmt;

/// One parsed media type (or media range).
///
/// `essence` is `type/subtype` in lower case; parameter names are lower
/// case, values are unquoted and kept as sent except `type`, which is a media
/// type itself and is lower-cased. `q` is kept like any parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

// === impl MediaType ===

impl MediaType {
    /// The value of a parameter, by lower-case name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parse one media type (no list).
    pub fn parse(text: &str) -> Option<MediaType> {
        let parts = split_outside_quotes(text, ';')?;
        let mut parts = parts.into_iter();
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let essence = if essence == "*" {
            "*/*".to_string()
        } else {
            essence
        };
        let (ty, sub) = essence.split_once('/')?;
        if !is_token(ty) || !is_token(sub) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (name, value) = p.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            if !is_token(&name) {
                return None;
            }
            let value = unquote(value.trim())?;
            let value = if name == "type" {
                value.to_ascii_lowercase()
            } else {
                value
            };
            params.push((name, value));
        }
        Some(MediaType { essence, params })
    }

    /// Parse a comma-separated list; empty elements are skipped. `None` if
    /// any element is malformed.
    pub fn parse_list(text: &str) -> Option<Vec<MediaType>> {
        let mut out = Vec::new();
        for item in split_outside_quotes(text, ',')? {
            if item.trim().is_empty() {
                continue;
            }
            out.push(MediaType::parse(&item)?);
        }
        Some(out)
    }

    /// Whether this media type (from a request) matches `pattern` (from a
    /// route table): same essence, and every parameter of the pattern has
    /// the same value here (case-insensitive) or is absent here. Absent
    /// counts as a match so that `multipart/related` without `type` (whose
    /// meaning depends on the server) is treated like the strictest
    /// reading.
    pub fn matches(&self, pattern: &MediaType) -> bool {
        self.essence == pattern.essence
            && pattern.params.iter().all(|(name, want)| {
                self.param(name)
                    .is_none_or(|have| have.eq_ignore_ascii_case(want))
            })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.essence)?;
        for (n, v) in &self.params {
            if is_token(v) {
                write!(f, "; {n}={v}")?;
            } else {
                write!(
                    f,
                    "; {n}=\"{}\"",
                    v.replace('\\', "\\\\").replace('"', "\\\"")
                )?;
            }
        }
        Ok(())
    }
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A token, or a quoted string with backslash escapes.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        // Unquoted: a token, leniently extended to `/` and other visible
        // ASCII (clients send `type=application/dicom` unquoted).
        let ok = !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b';' | b',' | b'\\'));
        return ok.then(|| v.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    loop {
        match chars.next()? {
            '\\' => out.push(chars.next()?),
            '"' => break,
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    chars.next().is_none().then_some(out)
}

/// Split on `sep` outside double quotes; `None` on an unterminated quote.
fn split_outside_quotes(text: &str, sep: char) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            return None;
        }
        if quoted {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
        } else if c == '"' {
            quoted = true;
            cur.push(c);
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}
