//! Name normalization shared by the search-token relation and the query.
//!
//! A token is a run of `[A-Z0-9]` after upper-casing and removing accents
//! (É→E, Ç→C, Œ→OE, Æ→AE, ß→SS…); every other character (space, hyphen,
//! apostrophe, dot…) separates tokens. This is what PostgreSQL computes with
//! `regexp_split_to_table(upper(unaccent(name)), '[^A-Z0-9]+')`, so a
//! hospital can build `rec_patient_tokens` with a materialized view (see
//! `docs/records.md`) and get the same tokens as the demo generator.

/// The words of a name (or of a typed query), normalized: upper case, no
/// accents, split on anything that is not a letter or digit.
///
/// `search_tokens("Martin-Dupré")` is `["MARTIN", "DUPRE"]`,
/// `search_tokens("N'Diaye")` is `["N", "DIAYE"]`.
pub fn search_tokens(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in name.chars() {
        match fold(ch) {
            Fold::Ascii(c) => cur.push(c),
            Fold::Str(s) => cur.push_str(s),
            Fold::Drop => {}
            Fold::Separator => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The tokens stored for one patient in `rec_patient_tokens`: the words of
/// the family name and of the given name, plus, for a name of several
/// words, the words joined (`LEGALL` for "Le Gall", `NDIAYE` for "N'Diaye",
/// `JEANBAPTISTE` for "Jean-Baptiste") so that a doctor who types the name
/// without its separator finds it too. Deduplicated, in first-seen order.
pub fn patient_tokens(family_name: &str, given_name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in [family_name, given_name] {
        let words = search_tokens(name);
        let joined = (words.len() > 1).then(|| words.concat());
        for t in words.into_iter().chain(joined) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

enum Fold {
    Ascii(char),
    Str(&'static str),
    /// Combining diacritical marks (decomposed input): removed.
    Drop,
    Separator,
}

fn fold(ch: char) -> Fold {
    if ch.is_ascii_alphanumeric() {
        return Fold::Ascii(ch.to_ascii_uppercase());
    }
    if ch.is_ascii() {
        return Fold::Separator;
    }
    let s = match ch {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
        'æ' | 'Æ' => "AE",
        'ç' | 'Ç' => "C",
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => "E",
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'ñ' | 'Ñ' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
        'œ' | 'Œ' => "OE",
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
        'ý' | 'ÿ' | 'Ý' | 'Ÿ' => "Y",
        'ß' => "SS",
        '\u{0300}'..='\u{036f}' => return Fold::Drop,
        _ => return Fold::Separator,
    };
    Fold::Str(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_separators() {
        assert_eq!(search_tokens("Martin-Dupré"), ["MARTIN", "DUPRE"]);
        assert_eq!(search_tokens("  LE GALL "), ["LE", "GALL"]);
        assert_eq!(search_tokens("N'Diaye"), ["N", "DIAYE"]);
        assert_eq!(search_tokens("N’Diaye"), ["N", "DIAYE"]);
        assert_eq!(search_tokens("Françoise"), ["FRANCOISE"]);
        assert_eq!(search_tokens("LEFÈVRE"), ["LEFEVRE"]);
        assert_eq!(search_tokens("Œillet Lætitia"), ["OEILLET", "LAETITIA"]);
        assert_eq!(search_tokens("Hélène"), ["HELENE"]);
        // decomposed é (e + U+0301)
        assert_eq!(search_tokens("He\u{301}le\u{300}ne"), ["HELENE"]);
        assert_eq!(search_tokens("Jean--Baptiste"), ["JEAN", "BAPTISTE"]);
        assert!(search_tokens(" - ' ").is_empty());
        assert_eq!(search_tokens("sca%_fra"), ["SCA", "FRA"]);
    }

    #[test]
    fn patient_tokens_add_joined_forms() {
        assert_eq!(
            patient_tokens("LE GALL", "Jean-Baptiste"),
            ["LE", "GALL", "LEGALL", "JEAN", "BAPTISTE", "JEANBAPTISTE"]
        );
        assert_eq!(
            patient_tokens("SCANAP", "Françoise"),
            ["SCANAP", "FRANCOISE"]
        );
        assert_eq!(patient_tokens("MARTIN", "Martin"), ["MARTIN"]);
    }
}
