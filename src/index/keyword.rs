//! Keywords: normalization, a tokenizer for clinical free text, and field-qualified
//! keywords for structured codes.
//!
//! Every keyword is normalized before it enters a trapdoor, by providers and requesters
//! alike, so `Metformin`, ` metformin ` and `METFORMIN` find the same records.
//!
//! * Free text: [`tokenize`] splits on anything that is not a letter or digit, lowercases,
//!   drops 1-character tokens and the [`STOP_WORDS`], and removes duplicates.
//! * Structured data: [`field`] builds `field:value` keywords such as
//!   `code:snomed/44054006` or `type:condition`. The tokenizer never yields a `:`, so a
//!   field keyword can never collide with a word of free text.

use crate::error::{Error, Result};

/// Longest normalized keyword, in bytes.
pub const MAX_KEYWORD_LEN: usize = 255;

/// English function words that carry no clinical meaning, dropped by [`tokenize`].
/// Negations (`no`, `not`, `without`) are kept: in a note they matter.
pub const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "had", "has",
    "have", "he", "her", "his", "in", "is", "it", "its", "of", "on", "or", "she", "that", "the",
    "their", "then", "there", "these", "they", "this", "to", "was", "were", "which", "will",
    "with",
];

/// Unicode lowercase, trimmed, inner whitespace runs collapsed to one space.
///
/// ```
/// assert_eq!(medvault::keyword::normalize("  Type 2\tDIABETES "), "type 2 diabetes");
/// ```
pub fn normalize(keyword: &str) -> String {
    let mut out = String::with_capacity(keyword.len());
    for word in keyword.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        if word.is_ascii() {
            // The common case, a byte at a time: for ASCII, Unicode lowercase is ASCII
            // lowercase.
            out.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            out.extend(word.chars().flat_map(char::to_lowercase));
        }
    }
    out
}

/// Normalizes and checks a keyword for indexing or searching: 1 to 255 bytes after
/// normalization.
pub fn checked(keyword: &str) -> Result<String> {
    let normalized = normalize(keyword);
    if normalized.is_empty() || normalized.len() > MAX_KEYWORD_LEN {
        return Err(Error::InvalidArgument(
            "a keyword is 1 to 255 bytes after normalization",
        ));
    }
    Ok(normalized)
}

/// The keywords of a free-text note, in order of first appearance.
///
/// ```
/// let words = medvault::keyword::tokenize("Metformin 500 mg; continue metformin. BP 128/82.");
/// assert_eq!(words, ["metformin", "500", "mg", "continue", "bp", "128", "82"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for token in text.split(|c: char| !c.is_alphanumeric()) {
        let token: String = token.chars().flat_map(char::to_lowercase).collect();
        if token.chars().count() < 2
            || token.len() > MAX_KEYWORD_LEN
            || STOP_WORDS.contains(&token.as_str())
        {
            continue;
        }
        if seen.insert(token.clone()) {
            out.push(token);
        }
    }
    out
}

/// A field-qualified keyword `field:value`, both parts normalized. The field is 1 to 32
/// ASCII letters, digits or `_`.
///
/// ```
/// assert_eq!(medvault::keyword::field("code", "SNOMED/44054006")?, "code:snomed/44054006");
/// # Ok::<(), medvault::Error>(())
/// ```
pub fn field(name: &str, value: &str) -> Result<String> {
    if name.is_empty()
        || name.len() > 32
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::InvalidArgument(
            "a keyword field name is 1 to 32 ASCII letters, digits or '_'",
        ));
    }
    let value = normalize(value);
    if value.is_empty() {
        return Err(Error::InvalidArgument("a field keyword needs a value"));
    }
    checked(&format!("{}:{value}", name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize("ÉCHOGRAPHIE"), "échographie");
        assert_eq!(normalize("a\u{00a0}\n b"), "a b"); // non-breaking space is whitespace
        assert_eq!(normalize("   "), "");
        assert!(checked("  ").is_err());
        assert!(checked(&"x".repeat(256)).is_err());
        assert_eq!(checked(" HbA1c ").unwrap(), "hba1c");
    }

    #[test]
    fn the_ascii_path_lowercases_as_unicode_does() {
        for byte in 0u8..=127 {
            let c = char::from(byte);
            let word = format!("x{c}y");
            let unicode: String = word.trim().chars().flat_map(char::to_lowercase).collect();
            if !c.is_whitespace() {
                assert_eq!(normalize(&word), unicode, "byte {byte:#04x}");
            }
        }
        assert_eq!(normalize("MIXED Été\tCASE"), "mixed été case");
    }

    #[test]
    fn tokenizer_drops_short_stop_and_duplicate_tokens() {
        let t = tokenize(
            "The patient is on Metformin, and the metformin dose is 1 g. No hypoglycaemia.",
        );
        assert_eq!(t, ["patient", "metformin", "dose", "no", "hypoglycaemia"]);
        assert!(tokenize("a b c . , ;").is_empty());
        assert_eq!(tokenize("Œdème pulmonaire"), ["œdème", "pulmonaire"]);
    }

    #[test]
    fn field_keywords() {
        assert_eq!(field("TYPE", " Condition ").unwrap(), "type:condition");
        assert!(field("", "x").is_err());
        assert!(field("a:b", "x").is_err());
        assert!(field("code", "  ").is_err());
        // Free text can never produce a field keyword.
        assert!(tokenize("code:snomed/1").iter().all(|t| !t.contains(':')));
    }
}
