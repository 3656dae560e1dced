//! Canonicalization of viewer requests: one meaning per accepted request.
//!
//! The rules (the numbers are those of `docs/policies.md`, "Viewer route
//! tables", and of the pitfalls in the design's `viewer-routes.md`):
//!
//! - the target is in origin form (`/path?query`), without fragment; the
//!   path is at most [`MAX_PATH_BYTES`], the query at most
//!   [`MAX_QUERY_BYTES`] (raw, encoded bytes);
//! - characters outside RFC 3986 must be percent-encoded (in the query,
//!   printable ASCII except space and `#` is tolerated raw);
//! - percent-encoding is decoded exactly once; after decoding a path segment
//!   may not be `.` or `..`, hold `/`, `\`, `;`, a control character, a `%`
//!   followed by two hex digits (double encoding) or invalid UTF-8 (so
//!   overlong forms like `%c0%af` are refused); there is no empty segment
//!   (double slash) and no trailing slash except for `/` itself;
//! - query pairs are split on `&`, `+` is a space, then percent-decoded once;
//!   control characters and double encoding are refused; the keys that
//!   decide resources or classes ([`BUILTIN_SECURITY_KEYS`], plus the keys a
//!   route table declares) are matched case-insensitively, DICOM tags (`0020000D`,
//!   `0020,000d`, `(0020,000D)`) are mapped to their keyword through the
//!   standard dictionary, and a second occurrence of such a key is refused;
//! - the method is an upper-case token; `HEAD` is matched as `GET`; a method
//!   override header ([`METHOD_OVERRIDE_HEADERS`]) with another method is
//!   refused (the proxy strips them in any case), and so is a method
//!   override query parameter ([`METHOD_OVERRIDE_QUERY_KEYS`], `_method`);
//! - the `Accept` header and the `accept` (and `type`) query parameters are
//!   parsed as media type lists; a malformed one is refused.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, TagRange};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

use super::media::MediaType;

/// Longest accepted raw path, in bytes.
pub const MAX_PATH_BYTES: usize = 2048;
/// Longest accepted raw query, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Headers that ask a server to treat a request as another method.
pub const METHOD_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether canonicalization reads a header (name in any case): the method
/// overrides and `Accept`. The others do not change the canonical request,
/// so a caller may pass only these.
pub fn reads_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("accept")
        || METHOD_OVERRIDE_HEADERS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
}

/// Query keys that ask a server to treat a request as another method:
/// Orthanc's HTTP server takes `GET …?_method=DELETE` as a `DELETE` (when
/// no override header is sent). Refused whatever their value.
pub const METHOD_OVERRIDE_QUERY_KEYS: &[&str] = &["_method"];

/// Query keys that route tables read to find a resource or decide a class,
/// in their canonical spelling. Matched case-insensitively; DICOM tags of
/// the DICOM attributes among them map to them too.
pub const BUILTIN_SECURITY_KEYS: &[&str] = &[
    // DICOM attributes (QIDO-RS filters)
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "PatientID",
    // WADO-URI
    "requestType",
    "studyUID",
    "seriesUID",
    "objectUID",
    "contentType",
    "transferSyntax",
    // content negotiation in the query (DICOMweb)
    "accept",
    "type",
    "transfer-syntax",
    // Orthanc: GET /tools/create-archive?resources=...
    "resources",
];

/// Why a request was refused before any routing. Messages hold no request
/// data (no ids, no values): they may be shown and logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the method is not an upper-case HTTP token")]
    BadMethod,
    #[error("a method override header ({header}) asks for another method")]
    MethodOverride { header: &'static str },
    #[error("a method override query parameter ({key}) asks for another method")]
    MethodOverrideParameter { key: &'static str },
    #[error("the request target is not in origin form (/path?query)")]
    NotOriginForm,
    #[error("the request target has a fragment")]
    Fragment,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    PathTooLong,
    #[error("the query is longer than {MAX_QUERY_BYTES} bytes")]
    QueryTooLong,
    #[error("a character must be percent-encoded")]
    RawCharacter,
    #[error("malformed percent-encoding")]
    BadPercentEncoding,
    #[error("double percent-encoding (%25 followed by hex digits)")]
    DoubleEncoding,
    #[error("dot segment in the path")]
    DotSegment,
    #[error("encoded slash (%2F) in a path segment")]
    EncodedSlash,
    #[error("backslash in the path")]
    Backslash,
    #[error("empty path segment (double slash)")]
    EmptySegment,
    #[error("trailing slash")]
    TrailingSlash,
    #[error("control character")]
    ControlCharacter,
    #[error("invalid UTF-8 after percent-decoding")]
    InvalidUtf8,
    #[error("path parameter (';') in the path")]
    PathParameter,
    #[error("malformed query parameter name")]
    BadQueryKey,
    #[error("duplicate query parameter {key} (after mapping aliases)")]
    DuplicateParameter { key: String },
    #[error("malformed media type in {place}")]
    BadMediaType { place: &'static str },
}

/// One query parameter after decoding and key normalization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryParam {
    /// Canonical key: the canonical spelling of a security-relevant key, the
    /// keyword of a DICOM tag, or the key as sent.
    pub key: String,
    pub value: String,
    /// Whether the key is security-relevant (route tables may read it; it
    /// appears at most once).
    pub security: bool,
    /// `?key` without `=`: re-serialized the same way.
    pub bare: bool,
}

/// A request in canonical form. Two requests with the same canonical form
/// mean the same thing to espace-ps, and [`target`](Self::target) is what is
/// forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalRequest {
    method: String,
    segments: Vec<String>,
    query: Vec<QueryParam>,
    accept: Vec<MediaType>,
    accept_param: Vec<MediaType>,
    /// [`target`](Self::target), built once (a function of the fields above).
    target: String,
}

// === impl CanonicalRequest ===

impl CanonicalRequest {
    /// The method as received (validated); `HEAD` stays `HEAD`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The method routes are matched with: `HEAD` is `GET`.
    pub fn route_method(&self) -> &str {
        if self.method == "HEAD" {
            "GET"
        } else {
            &self.method
        }
    }

    /// Decoded path segments (`/` has none).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Decoded query parameters, in order.
    pub fn query(&self) -> &[QueryParam] {
        &self.query
    }

    /// The value of a query parameter by canonical key (the first one for a
    /// key that is not security-relevant; security-relevant keys are unique).
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// Media types of the `Accept` header(s).
    pub fn accept_header(&self) -> &[MediaType] {
        &self.accept
    }

    /// Media types of the `accept` and `type` query parameters.
    pub fn accept_param(&self) -> &[MediaType] {
        &self.accept_param
    }

    /// Every media type the client asked for, header and query.
    pub fn negotiated(&self) -> impl Iterator<Item = &MediaType> {
        self.accept.iter().chain(self.accept_param.iter())
    }

    /// The canonical origin-form target: segments and query re-encoded
    /// minimally and always the same way. `canonicalize` of it gives back
    /// this request.
    pub fn target(&self) -> String {
        self.target.clone()
    }

    /// [`target`](Self::target) without a copy.
    pub fn target_str(&self) -> &str {
        &self.target
    }

    /// [`target`](Self::target), taken rather than copied.
    pub fn into_target(self) -> String {
        self.target
    }

    /// Builds the target from the segments and the query, and tells the
    /// length of its path (the query, if any, follows a `?` there).
    /// `verbatim_path`: the raw path, when it is its own encoding (no
    /// escape and no `;`, so every byte of its segments is safe): copied
    /// rather than encoded again (debug builds check it is the same).
    fn build_target(&self, verbatim_path: Option<&str>) -> (String, usize) {
        let mut out = String::with_capacity(64);
        match verbatim_path {
            Some(path) => {
                out.push_str(path);
                debug_assert_eq!(
                    path,
                    {
                        let mut encoded = String::new();
                        self.push_path(&mut encoded);
                        encoded
                    },
                    "a verbatim path is its own encoding"
                );
            }
            None => self.push_path(&mut out),
        }
        let path_len = out.len();
        for (i, p) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            encode_into(&mut out, &p.key, is_query_safe);
            if !p.bare {
                out.push('=');
                encode_into(&mut out, &p.value, is_query_safe);
            }
        }
        (out, path_len)
    }

    /// The path, each segment percent-encoded.
    fn push_path(&self, out: &mut String) {
        if self.segments.is_empty() {
            out.push('/');
        }
        for s in &self.segments {
            out.push('/');
            encode_into(out, s, is_path_safe);
        }
    }

    /// The decoded path, for display (`/a/b`).
    pub fn path(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_string();
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.push_str(s);
        }
        out
    }
}

/// Canonicalize with the built-in security-relevant keys only.
pub fn canonicalize(
    method: &str,
    raw_target: &str,
    headers: &[(String, String)],
) -> Result<CanonicalRequest, Rejection> {
    canonicalize_with(method, raw_target, headers, &[])
}

/// Canonicalize; `extra_keys` are security-relevant keys besides
/// [`BUILTIN_SECURITY_KEYS`] (a route table's `security_query_keys`).
pub fn canonicalize_with(
    method: &str,
    raw_target: &str,
    headers: &[(String, String)],
    extra_keys: &[String],
) -> Result<CanonicalRequest, Rejection> {
    // --- method
    if method.is_empty()
        || method.len() > 32
        || !method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return Err(Rejection::BadMethod);
    }
    for (name, value) in headers {
        if let Some(h) = METHOD_OVERRIDE_HEADERS
            .iter()
            .find(|h| name.eq_ignore_ascii_case(h))
        {
            if value.trim() != method {
                return Err(Rejection::MethodOverride { header: h });
            }
        }
    }

    // --- target form
    if !raw_target.starts_with('/') {
        return Err(Rejection::NotOriginForm);
    }
    if raw_target.contains('#') {
        return Err(Rejection::Fragment);
    }
    let (raw_path, raw_query) = match raw_target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw_target, None),
    };
    if raw_path.len() > MAX_PATH_BYTES {
        return Err(Rejection::PathTooLong);
    }
    if raw_query.is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return Err(Rejection::QueryTooLong);
    }

    // --- path
    // One pass checks every byte, counts the segments and notes whether
    // any segment can hold an escape or a `;` (most paths hold neither).
    let (mut slashes, mut escaped, mut semicolon) = (0, false, false);
    for b in raw_path.bytes() {
        match b {
            b'/' => slashes += 1,
            b'%' => escaped = true,
            b';' => semicolon = true,
            b'\\' => return Err(Rejection::Backslash),
            0..=0x1f | 0x7f => return Err(Rejection::ControlCharacter),
            b if is_raw_path_char(b) => {}
            _ => return Err(Rejection::RawCharacter),
        }
    }
    let mut segments = Vec::with_capacity(slashes);
    if raw_path != "/" {
        // Split on '/' by a byte scan (segments are short: `str::split`
        // sets up a searcher for each).
        let mut rest = Some(&raw_path[1..]);
        while let Some(part) = rest {
            let raw = match part.bytes().position(|b| b == b'/') {
                Some(i) => {
                    rest = Some(&part[i + 1..]);
                    &part[..i]
                }
                None => {
                    rest = None;
                    part
                }
            };
            if raw.is_empty() {
                return Err(if rest.is_none() {
                    Rejection::TrailingSlash
                } else {
                    Rejection::EmptySegment
                });
            }
            // Nothing to decode (the usual case): the bytes checked above
            // are printable ASCII without `/` or `\`, so only the dot
            // segments and `;` remain to refuse, as decode_segment does.
            if !(escaped && raw.contains('%')) {
                if raw == "." || raw == ".." {
                    return Err(Rejection::DotSegment);
                }
                if semicolon && raw.contains(';') {
                    return Err(Rejection::PathParameter);
                }
                segments.push(raw.to_owned());
                continue;
            }
            segments.push(decode_segment(raw)?);
        }
    }

    // --- query
    let mut query: Vec<QueryParam> = Vec::new();
    if let Some(raw_query) = raw_query {
        for b in raw_query.bytes() {
            match b {
                0..=0x1f | 0x7f => return Err(Rejection::ControlCharacter),
                b' ' | 0x80..=0xff => return Err(Rejection::RawCharacter),
                _ => {}
            }
        }
        for raw_pair in raw_query.split('&') {
            if raw_pair.is_empty() {
                continue;
            }
            let (raw_key, raw_value, bare) = match raw_pair.split_once('=') {
                Some((k, v)) => (k, v, false),
                None => (raw_pair, "", true),
            };
            let key = decode_query_part(raw_key)?;
            let value = decode_query_part(raw_value)?;
            if key.is_empty() || key.trim() != key {
                return Err(Rejection::BadQueryKey);
            }
            if let Some(k) = METHOD_OVERRIDE_QUERY_KEYS
                .iter()
                .find(|k| key.eq_ignore_ascii_case(k))
            {
                return Err(Rejection::MethodOverrideParameter { key: k });
            }
            let (key, security) = canonical_key(&key, extra_keys);
            if security && query.iter().any(|p| p.key == key) {
                return Err(Rejection::DuplicateParameter { key });
            }
            query.push(QueryParam {
                key,
                value,
                security,
                bare,
            });
        }
    }

    // --- negotiation
    let mut accept = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("accept") {
            accept.extend(
                MediaType::parse_list(value).ok_or(Rejection::BadMediaType { place: "Accept" })?,
            );
        }
    }
    let mut accept_param = Vec::new();
    for p in &query {
        if p.key == "accept" || p.key == "type" {
            accept_param.extend(MediaType::parse_list(&p.value).ok_or(
                Rejection::BadMediaType {
                    place: "the accept query parameter",
                },
            )?);
        }
    }

    let mut req = CanonicalRequest {
        method: method.to_string(),
        segments,
        query,
        accept,
        accept_param,
        target: String::new(),
    };
    let (target, path_len) = req.build_target((!escaped && !semicolon).then_some(raw_path));
    req.target = target;
    // The limits hold for what is forwarded too: re-encoding may lengthen
    // the target (a raw `;` becomes `%3B`), and the canonical target must be
    // accepted again (found by fuzzing).
    if path_len > MAX_PATH_BYTES {
        return Err(Rejection::PathTooLong);
    }
    // After the path: nothing, or `?` and the query.
    if req.target.len().saturating_sub(path_len + 1) > MAX_QUERY_BYTES {
        return Err(Rejection::QueryTooLong);
    }
    Ok(req)
}

// === decoding ===

/// A table of the bytes that are ASCII letters or digits or among `extra`:
/// one lookup per byte of every request target, rather than a scan of the
/// list.
const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

static RAW_PATH: [bool; 256] = byte_class(b"-._~!$&'()*+,;=:@/%");
static PATH_SAFE: [bool; 256] = byte_class(b"-._~!$&'()*+,=:@");
static QUERY_SAFE: [bool; 256] = byte_class(b"-._~!$'()*,:@/?");

/// RFC 3986 pchar plus `/` and `%` (checked when decoding).
fn is_raw_path_char(b: u8) -> bool {
    RAW_PATH[usize::from(b)]
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decode `%XX` escapes once; malformed escapes are refused.
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<Vec<u8>, Rejection> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(Rejection::BadPercentEncoding);
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Checks common to path segments and query parts, on decoded text.
fn check_decoded(bytes: Vec<u8>) -> Result<String, Rejection> {
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(Rejection::ControlCharacter);
    }
    let text = String::from_utf8(bytes).map_err(|_| Rejection::InvalidUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(Rejection::ControlCharacter);
    }
    let b = text.as_bytes();
    if b.windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
    {
        return Err(Rejection::DoubleEncoding);
    }
    Ok(text)
}

fn decode_segment(raw: &str) -> Result<String, Rejection> {
    let bytes = percent_decode(raw, false)?;
    if bytes.contains(&b'/') {
        return Err(Rejection::EncodedSlash);
    }
    if bytes.contains(&b'\\') {
        return Err(Rejection::Backslash);
    }
    let text = check_decoded(bytes)?;
    if text == "." || text == ".." {
        return Err(Rejection::DotSegment);
    }
    if text.contains(';') {
        return Err(Rejection::PathParameter);
    }
    Ok(text)
}

/// Called on a raw query already checked to be printable ASCII (no control
/// character, no space, nothing above 0x7f).
fn decode_query_part(raw: &str) -> Result<String, Rejection> {
    // Nothing to decode: printable ASCII without `%` passes check_decoded.
    if !raw.contains(['%', '+']) {
        return Ok(raw.to_owned());
    }
    check_decoded(percent_decode(raw, true)?)
}

// === keys ===

/// The canonical key and whether it is security-relevant.
fn canonical_key(key: &str, extra: &[String]) -> (String, bool) {
    let known = BUILTIN_SECURITY_KEYS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str));
    let mut known = known;
    if let Some(k) = known.find(|k| k.eq_ignore_ascii_case(key)) {
        return (k.to_string(), true);
    }
    if let Some(tag) = parse_tag(key) {
        let dict = StandardDataDictionary;
        let keyword = dict.by_tag(tag).and_then(|e| match e.tag_range() {
            TagRange::Single(t) if t == tag => Some(e.alias().to_string()),
            _ => None,
        });
        return match keyword {
            Some(kw) => {
                let security = is_security_key(&kw, extra);
                (kw, security)
            }
            None => (format!("{:04X}{:04X}", tag.0, tag.1), false),
        };
    }
    (key.to_string(), false)
}

fn is_security_key(key: &str, extra: &[String]) -> bool {
    BUILTIN_SECURITY_KEYS.contains(&key) || extra.iter().any(|k| k == key)
}

/// `GGGGEEEE`, `GGGG,EEEE`, `(GGGG,EEEE)` or `GGGG-EEEE`, hex in any case.
fn parse_tag(key: &str) -> Option<Tag> {
    let inner = key
        .strip_prefix('(')
        .and_then(|k| k.strip_suffix(')'))
        .unwrap_or(key);
    // Byte slicing below: only ASCII can be a tag (found by fuzzing: a
    // multi-byte character at byte 4 made the slice panic).
    if !inner.is_ascii() {
        return None;
    }
    let (g, e) = match inner.len() {
        8 => (&inner[..4], &inner[4..]),
        9 if matches!(inner.as_bytes()[4], b',' | b'-') => (&inner[..4], &inner[5..]),
        _ => return None,
    };
    let all_hex = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !all_hex(g) || !all_hex(e) {
        return None;
    }
    Some(Tag(
        u16::from_str_radix(g, 16).ok()?,
        u16::from_str_radix(e, 16).ok()?,
    ))
}

/// The keyword of a DICOM tag, or of a keyword in any case among the
/// built-in security keys; used by route-table validation.
pub(crate) fn canonical_query_key(key: &str, extra: &[String]) -> (String, bool) {
    canonical_key(key, extra)
}

// === encoding ===

fn is_path_safe(b: u8) -> bool {
    PATH_SAFE[usize::from(b)]
}

fn is_query_safe(b: u8) -> bool {
    QUERY_SAFE[usize::from(b)]
}

/// Appends `text`, every byte that is not safe percent-encoded (a character
/// beyond ASCII is never safe: each of its UTF-8 bytes is encoded). Runs of
/// safe bytes are copied whole.
fn encode_into(out: &mut String, text: &str, safe: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut run = 0;
    for (i, b) in text.bytes().enumerate() {
        if safe(b) {
            continue;
        }
        // A run of safe bytes is ASCII, so its ends are character
        // boundaries (an empty run may not start on one: not sliced).
        if run < i {
            out.push_str(&text[run..i]);
        }
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        run = i + 1;
    }
    if run < text.len() {
        out.push_str(&text[run..]);
    }
}

#[cfg(test)]
mod byte_tests {
    use super::*;

    /// The tables say what the lists they were built from say, for every byte.
    #[test]
    fn byte_tables_agree_with_their_lists() {
        for b in 0..=255u8 {
            let listed = |list: &[u8]| b.is_ascii_alphanumeric() || list.contains(&b);
            assert_eq!(is_raw_path_char(b), listed(b"-._~!$&'()*+,;=:@/%"), "{b}");
            assert_eq!(is_path_safe(b), listed(b"-._~!$&'()*+,=:@"), "{b}");
            assert_eq!(is_query_safe(b), listed(b"-._~!$'()*,:@/?"), "{b}");
        }
    }

    /// Runs copied whole encode as a character at a time did, characters
    /// beyond ASCII (each UTF-8 byte encoded) and an unsafe byte at either
    /// end included.
    #[test]
    fn encoding_by_runs_is_encoding_by_characters() {
        fn by_characters(text: &str, safe: fn(u8) -> bool) -> String {
            let mut out = String::new();
            for c in text.chars() {
                if c.is_ascii() && safe(c as u8) {
                    out.push(c);
                } else {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
            out
        }
        for text in [
            "",
            "plain",
            "1.2.250.1",
            " leading",
            "trailing ",
            "é",
            "aé",
            "éa",
            "Élise Martin-Dupré",
            "a;b&c=d+e/f?g#h",
            "日本語x",
            "x\u{1F600}",
            "%41",
        ] {
            for safe in [is_path_safe as fn(u8) -> bool, is_query_safe] {
                let mut out = String::new();
                encode_into(&mut out, text, safe);
                assert_eq!(out, by_characters(text, safe), "{text:?}");
            }
        }
    }
}
