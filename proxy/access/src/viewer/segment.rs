//! A path segment of literals and captures (`{compression}-{id}_{frame}`),
//! matched by splitting on its literals: no regular expression on the
//! request path (the one mixed route of Orthanc's table was ~1% of a
//! viewer request's CPU through a regex, matched twice).
//!
//! Semantics: those of the anchored pattern where each capture is one or
//! more characters other than `/`, shortest first (`^lit([^/]+?)lit…$`):
//! the first way to split the segment, trying each capture shortest first
//! from the left, wins. A test checks that against the regex itself.

/// One piece of a mixed segment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Capture,
}

/// The most captures one segment may have.
pub(crate) const MAX_CAPTURES: usize = 8;

/// A parsed mixed segment: its pieces and its capture names, in order.
#[derive(Clone, Debug)]
pub(crate) struct MixedSegment {
    pieces: Vec<Piece>,
    pub(crate) names: Vec<String>,
}

impl MixedSegment {
    /// Parses `part` (a segment with at least one `{name}` and at least one
    /// literal). `add_name` validates each capture name (the table's rules:
    /// syntax, used once per route).
    pub(crate) fn parse(
        part: &str,
        add_name: &mut impl FnMut(&str) -> Result<(), String>,
    ) -> Result<MixedSegment, String> {
        let mut pieces = Vec::new();
        let mut names = Vec::new();
        let mut s = part;
        while !s.is_empty() {
            if let Some(after) = s.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or(format!("segment {part:?}: unbalanced braces"))?;
                let name = &after[..end];
                if pieces.last() == Some(&Piece::Capture) {
                    return Err(format!(
                        "segment {part:?}: two captures need a literal between them"
                    ));
                }
                add_name(name)?;
                pieces.push(Piece::Capture);
                names.push(name.to_string());
                s = &after[end + 1..];
            } else {
                let end = s.find('{').unwrap_or(s.len());
                let lit = &s[..end];
                if lit.contains('}') {
                    return Err(format!("segment {part:?}: unbalanced braces"));
                }
                pieces.push(Piece::Lit(lit.to_string()));
                s = &s[end..];
            }
        }
        if names.len() > MAX_CAPTURES {
            return Err(format!(
                "segment {part:?}: at most {MAX_CAPTURES} captures in one segment"
            ));
        }
        Ok(MixedSegment { pieces, names })
    }

    /// Whether `segment` matches.
    pub(crate) fn is_match(&self, segment: &str) -> bool {
        self.capture_each(segment).is_some()
    }

    /// The captured values, in the order of `names`, when `segment` matches.
    #[cfg(test)]
    pub(crate) fn captures<'a>(&self, segment: &'a str) -> Option<Vec<&'a str>> {
        Some(self.capture_each(segment)?.map(|(_, v)| v).collect())
    }

    /// Each capture's name and value, in order, when `segment` matches.
    pub(crate) fn capture_each<'s, 'a>(
        &'s self,
        segment: &'a str,
    ) -> Option<impl Iterator<Item = (&'s str, &'a str)>> {
        // Neither a capture nor a literal holds a '/': nor does a match.
        if segment.contains('/') {
            return None;
        }
        let mut spans = [(0, 0); MAX_CAPTURES];
        split(&self.pieces, segment, 0, &mut spans, 0).then(move || {
            self.names
                .iter()
                .zip(spans)
                .map(move |(n, (a, b))| (n.as_str(), &segment[a..b]))
        })
    }
}

/// Where `lit` first starts in `hay`. Most literals of a route table are
/// one ASCII byte ('-', '_', '.'): found by a byte scan, without building
/// the substring searcher `str::find` builds for a `&str` pattern.
fn find_literal(hay: &str, lit: &str) -> Option<usize> {
    match lit.as_bytes() {
        [b] => hay.bytes().position(|c| c == *b),
        _ => hay.find(lit),
    }
}

/// Matches `pieces` against `s[at..]`, recording capture `k` onwards as
/// byte spans of `s`; shortest captures first, backtracking.
fn split(pieces: &[Piece], s: &str, at: usize, spans: &mut [(usize, usize)], k: usize) -> bool {
    let rest = &s[at..];
    match pieces.split_first() {
        None => rest.is_empty(),
        Some((Piece::Lit(l), more)) => {
            rest.starts_with(l.as_str()) && split(more, s, at + l.len(), spans, k)
        }
        Some((Piece::Capture, more)) => {
            // One or more characters (none is '/': the caller checked).
            let Some(first) = rest.chars().next() else {
                return false;
            };
            match more.first() {
                // The last piece: the capture is the rest of the segment.
                None => {
                    spans[k] = (at, s.len());
                    true
                }
                // A literal follows: the capture can end only where the
                // literal starts, tried in order (overlapping starts too).
                Some(Piece::Lit(l)) => {
                    let mut from = first.len_utf8();
                    while let Some(i) = find_literal(&rest[from..], l) {
                        let end = from + i;
                        spans[k] = (at, at + end);
                        if split(more, s, at + end, spans, k + 1) {
                            return true;
                        }
                        from = end + rest[end..].chars().next().map_or(1, char::len_utf8);
                    }
                    false
                }
                // Never built: parse puts a literal between two captures.
                Some(Piece::Capture) => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> MixedSegment {
        MixedSegment::parse(t, &mut |_| Ok(())).unwrap()
    }

    /// The regular expression the table used before: the reference.
    fn reference(t: &str) -> regex::Regex {
        let mut re = String::from("^");
        let mut s = t;
        while !s.is_empty() {
            if let Some(after) = s.strip_prefix('{') {
                let end = after.find('}').unwrap();
                re.push_str("([^/]+?)");
                s = &after[end + 1..];
            } else {
                let end = s.find('{').unwrap_or(s.len());
                re.push_str(&regex::escape(&s[..end]));
                s = &s[end..];
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    #[test]
    fn orthanc_frame_segment() {
        let m = parse("{compression}-{id}_{frame}");
        assert_eq!(
            m.captures("jpeg95-0a1b2c3d-4e5f_0"),
            Some(vec!["jpeg95", "0a1b2c3d-4e5f", "0"])
        );
        assert!(!m.is_match("jpeg95-abc"));
        assert!(!m.is_match("-abc_0"));
        assert!(!m.is_match("jpeg95-abc_"));
        assert!(!m.is_match("jpeg95-a/b_0"));
    }

    /// Same answers and same captures as the regex, over templates and
    /// segments chosen to make a wrong split visible (repeated separators,
    /// literals that recur, multi-byte characters).
    #[test]
    fn agrees_with_the_regular_expression() {
        let templates = [
            "{a}-{b}_{c}",
            "{a}-{b}",
            "x{a}",
            "{a}.x",
            "{a}-{b}.x",
            "pre-{a}-post",
            "{a}--{b}",
            "{a}_{b}_{c}.dcm",
            "é{a}é",
        ];
        let alphabet = ["a", "-", "_", ".", "x", "é", "/", "--", ".x"];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &inputs {
                for c in alphabet {
                    next.push(format!("{s}{c}"));
                }
            }
            inputs.extend(next);
            inputs.sort();
            inputs.dedup();
        }
        let mut matched = 0;
        for t in templates {
            let (ours, re) = (parse(t), reference(t));
            for input in &inputs {
                let expected = re.captures(input).map(|c| {
                    c.iter()
                        .skip(1)
                        .map(|m| m.unwrap().as_str())
                        .collect::<Vec<_>>()
                });
                assert_eq!(ours.captures(input), expected, "{t:?} on {input:?}");
                assert_eq!(
                    ours.is_match(input),
                    expected.is_some(),
                    "{t:?} on {input:?}"
                );
                matched += usize::from(expected.is_some());
            }
        }
        // The comparison covered matches, not only refusals.
        assert!(matched > 1000, "only {matched} matches compared");
    }

    #[test]
    fn refuses_malformed_templates() {
        let bad = |t: &str| MixedSegment::parse(t, &mut |_| Ok(())).unwrap_err();
        assert!(bad("{a}{b}").contains("literal between"));
        assert!(bad("{a-b").contains("unbalanced"));
        assert!(bad("a}-{b}").contains("unbalanced"));
        assert!(bad("{a}.{b}.{c}.{d}.{e}.{f}.{g}.{h}.{i}").contains("at most"));
    }
}
