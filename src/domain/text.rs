//! Text normalization shared by keyword matching, config checks and the
//! rules files: what "the same word" means for a reply. Pure.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Normalizes text for keyword matching. Idempotent.
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_uppercase)
        // Upper-casing can produce new decomposable characters (`ǰ` -> `J̌`).
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}
