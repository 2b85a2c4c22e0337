//! What a recipient's reply means. Pure: no I/O, no async.
//!
//! Text is normalized first (Unicode NFKD, diacritics dropped, upper case,
//! punctuation to space, whitespace collapsed), then read as words:
//!
//! - a stop keyword (multi-word ones too), optionally followed by a tenant
//!   keyword (`STOP ACME`), then by at most [`MAX_FILLERS`] filler phrases
//!   (`Stop please`, `STOP. Thank you`, `Stop it`): an opt-out;
//! - one word that is an adjacent transposition of a stop keyword of four or
//!   more letters (`TSOP`): an opt-out;
//! - a start, help or yes keyword, alone or followed by a tenant keyword:
//!   exactly that, nothing looser, because a false re-subscribe (or a false
//!   consent) is worse than none;
//! - any other text that contains a stop keyword (`Cancel my order`, `don't
//!   stop`): a *possible* opt-out, kept for a human to review.

use std::collections::BTreeSet;

pub use crate::domain::text::normalize;
use crate::rules::KeywordSet;

/// How many filler phrases may follow a stop keyword.
pub const MAX_FILLERS: usize = 3;

/// Who a STOP is aimed at, before attribution resolves it to tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// No tenant named: attribution decides.
    Attributed,
    /// `STOP <KEYWORD>`: the tenant with that (normalized) keyword only.
    Tenant(String),
    /// `STOPALL`: every tenant on the short code.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    OptOut(Scope),
    /// START/UNSTOP; `Some(keyword)` for `START <KEYWORD>`.
    OptIn(Option<String>),
    /// HELP/INFO; `Some(keyword)` for `HELP <KEYWORD>`.
    Help(Option<String>),
    /// A yes keyword (YES, OUI, JA, ...), the answer to a double opt-in
    /// request; `Some(keyword)` for `YES <KEYWORD>`.
    Yes(Option<String>),
    /// Mentions a stop keyword but is not an opt-out by the rules.
    PossibleOptOut,
    None,
}

/// Classifies a reply. `tenant_keywords` are the normalized keywords of the
/// tenants that could be meant (those on the short code).
pub fn classify(text: &str, keywords: &KeywordSet, tenant_keywords: &BTreeSet<String>) -> Intent {
    let norm = normalize(text);
    if norm.is_empty() {
        return Intent::None;
    }
    let words: Vec<&str> = norm.split(' ').collect();

    if let Some(target) = exact_with_tenant(&words, &keywords.start, tenant_keywords) {
        return Intent::OptIn(target);
    }
    if let Some(target) = exact_with_tenant(&words, &keywords.help, tenant_keywords) {
        return Intent::Help(target);
    }
    if let Some(target) = exact_with_tenant(&words, &keywords.yes, tenant_keywords) {
        return Intent::Yes(target);
    }

    let stops: Vec<&String> = keywords
        .stop
        .iter()
        .chain(keywords.stopall.iter())
        .collect();
    if let Some(scope) = stop_then_fillers(&words, &stops, keywords, tenant_keywords) {
        return Intent::OptOut(scope);
    }
    if words.len() == 1 {
        let w = words[0];
        if let Some(k) = stops
            .iter()
            .find(|k| k.chars().count() >= 4 && !k.contains(' ') && is_adjacent_transposition(w, k))
        {
            let scope = if keywords.stopall.contains(*k) {
                Scope::All
            } else {
                Scope::Attributed
            };
            return Intent::OptOut(scope);
        }
    }
    if stops.iter().any(|k| contains_phrase(&words, k)) {
        return Intent::PossibleOptOut;
    }
    Intent::None
}

/// `KEYWORD` or `KEYWORD <TENANT>`, exactly.
fn exact_with_tenant(
    words: &[&str],
    set: &BTreeSet<String>,
    tenant_keywords: &BTreeSet<String>,
) -> Option<Option<String>> {
    for k in set {
        if let Some(rest) = strip_phrase(words, k) {
            if rest.is_empty() {
                return Some(None);
            }
            let rest = rest.join(" ");
            if tenant_keywords.contains(&rest) {
                return Some(Some(rest));
            }
        }
    }
    None
}

/// A stop keyword, an optional tenant keyword, then only fillers. Tries every
/// stop keyword that prefixes the text, longest first, because a multi-word
/// keyword may swallow a word a shorter reading needs (`STOP TOUT DE SUITE`).
fn stop_then_fillers(
    words: &[&str],
    stops: &[&String],
    keywords: &KeywordSet,
    tenant_keywords: &BTreeSet<String>,
) -> Option<Scope> {
    let mut candidates: Vec<(&String, &[&str])> = stops
        .iter()
        .filter_map(|k| strip_phrase(words, k).map(|rest| (*k, rest)))
        .collect();
    candidates.sort_by_key(|(_, rest)| rest.len());
    for (k, rest) in candidates {
        let base = if keywords.stopall.contains(k) {
            Scope::All
        } else {
            Scope::Attributed
        };
        if only_fillers(rest, keywords, MAX_FILLERS) {
            return Some(base);
        }
        for t in tenant_keywords {
            if let Some(after) = strip_phrase(rest, t) {
                if only_fillers(after, keywords, MAX_FILLERS) {
                    return Some(Scope::Tenant(t.clone()));
                }
            }
        }
    }
    None
}

/// Whether `words` splits into at most `budget` filler phrases. A repeated
/// stop keyword counts as a filler (`STOP STOP`).
fn only_fillers(words: &[&str], keywords: &KeywordSet, budget: usize) -> bool {
    if words.is_empty() {
        return true;
    }
    if budget == 0 {
        return false;
    }
    keywords
        .filler
        .iter()
        .chain(keywords.stop.iter())
        .filter_map(|f| strip_phrase(words, f))
        .any(|rest| only_fillers(rest, keywords, budget - 1))
}

/// If `words` starts with the words of `phrase`, the words after it.
fn strip_phrase<'a, 'w>(words: &'a [&'w str], phrase: &str) -> Option<&'a [&'w str]> {
    let mut rest = words;
    for p in phrase.split(' ') {
        match rest.split_first() {
            Some((w, tail)) if *w == p => rest = tail,
            _ => return None,
        }
    }
    Some(rest)
}

fn contains_phrase(words: &[&str], phrase: &str) -> bool {
    (0..words.len()).any(|i| strip_phrase(&words[i..], phrase).is_some())
}

/// `TSOP` for `STOP`: same letters, one adjacent pair swapped.
fn is_adjacent_transposition(word: &str, keyword: &str) -> bool {
    let a: Vec<char> = word.chars().collect();
    let b: Vec<char> = keyword.chars().collect();
    if a.len() != b.len() || a == b {
        return false;
    }
    let diffs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    diffs.len() == 2
        && diffs[1] == diffs[0] + 1
        && a[diffs[0]] == b[diffs[1]]
        && a[diffs[1]] == b[diffs[0]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Country;
    use crate::rules::RuleSet;
    use proptest::prelude::*;

    fn kw(country: &str) -> KeywordSet {
        RuleSet::builtin()
            .for_country(Country::parse(country).unwrap())
            .keywords
            .clone()
    }

    fn tenants() -> BTreeSet<String> {
        ["ACME", "BETA SHOP"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize("  Stop! "), "STOP");
        assert_eq!(normalize("stop."), "STOP");
        assert_eq!(normalize("ARRÊT"), "ARRET");
        assert_eq!(normalize("s'il vous plaît"), "S IL VOUS PLAIT");
        assert_eq!(normalize("STOP\n\tSMS"), "STOP SMS");
        assert_eq!(normalize("Kündigen"), "KUNDIGEN");
        assert_eq!(normalize("straße"), "STRASSE");
        assert_eq!(normalize("ＳＴＯＰ"), "STOP");
        assert_eq!(normalize("🙂"), "");
    }

    #[test]
    fn table() {
        use Intent::{Help, OptIn, OptOut, PossibleOptOut};
        let t = tenants();
        let cases: &[(&str, &str, Intent)] = &[
            ("FR", "STOP", OptOut(Scope::Attributed)),
            ("FR", " stop. ", OptOut(Scope::Attributed)),
            ("FR", "Arrêt", OptOut(Scope::Attributed)),
            ("FR", "stop sms", OptOut(Scope::Attributed)),
            ("FR", "Stop s'il vous plaît", OptOut(Scope::Attributed)),
            ("FR", "STOP TOUT DE SUITE", OptOut(Scope::Attributed)),
            ("FR", "stop tout", OptOut(Scope::All)),
            ("GB", "Stop please", OptOut(Scope::Attributed)),
            ("GB", "STOP. Thank you", OptOut(Scope::Attributed)),
            ("GB", "Stop it", OptOut(Scope::Attributed)),
            ("GB", "stop acme", OptOut(Scope::Tenant("ACME".into()))),
            (
                "GB",
                "STOP Beta-Shop please",
                OptOut(Scope::Tenant("BETA SHOP".into())),
            ),
            ("GB", "STOPALL", OptOut(Scope::All)),
            ("GB", "stop all", OptOut(Scope::All)),
            ("GB", "TSOP", OptOut(Scope::Attributed)),
            ("GB", "sotp", OptOut(Scope::Attributed)),
            ("GB", "opt-out", OptOut(Scope::Attributed)),
            ("GB", "STOP STOP", OptOut(Scope::Attributed)),
            ("DE", "Stopp bitte", OptOut(Scope::Attributed)),
            ("DE", "abmelden, danke!", OptOut(Scope::Attributed)),
            ("NL", "Afmelden aub", OptOut(Scope::Attributed)),
            ("BE", "uitschrijven", OptOut(Scope::Attributed)),
            ("BE", "désinscription merci", OptOut(Scope::Attributed)),
            ("GB", "START", OptIn(None)),
            ("GB", "unstop", OptIn(None)),
            ("GB", "start acme", OptIn(Some("ACME".into()))),
            ("GB", "HELP", Help(None)),
            ("FR", "aide", Help(None)),
            ("GB", "Cancel my order", PossibleOptOut),
            ("GB", "please don't stop sending me deals", PossibleOptOut),
            ("GB", "STOP please thank you now now", PossibleOptOut),
            ("GB", "STOP FOO", PossibleOptOut),
            ("GB", "Hello", Intent::None),
            ("GB", "START please", Intent::None),
            ("GB", "STO", Intent::None),
            ("GB", "POTS", Intent::None),
            ("GB", "", Intent::None),
            ("US", "ARRET", Intent::None),
            ("FR", "Oui", Intent::Yes(None)),
            ("FR", " OUI ! ", Intent::Yes(None)),
            ("FR", "yes", Intent::Yes(None)),
            ("FR", "oui acme", Intent::Yes(Some("ACME".into()))),
            ("FR", "oui merci", Intent::None),
            ("FR", "STOP OUI", OptOut(Scope::Attributed)),
            ("DE", "ja", Intent::Yes(None)),
            ("ES", "Sí", Intent::Yes(None)),
            ("US", "OUI", Intent::None),
        ];
        for (country, text, expected) in cases {
            assert_eq!(
                &classify(text, &kw(country), &t),
                expected,
                "{country} {text:?}"
            );
        }
    }

    #[test]
    fn transpositions_need_four_letters_and_one_word() {
        assert!(is_adjacent_transposition("TSOP", "STOP"));
        assert!(is_adjacent_transposition("STPO", "STOP"));
        assert!(!is_adjacent_transposition("POTS", "STOP"));
        assert!(!is_adjacent_transposition("STOP", "STOP"));
        let t = tenants();
        assert_eq!(classify("NED", &kw("GB"), &t), Intent::None);
        assert_eq!(classify("TSOP please", &kw("GB"), &t), Intent::None);
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(s in "\\PC{0,60}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));
        }

        #[test]
        fn normalize_is_idempotent_on_any_chars(s in any::<String>()) {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn classify_never_panics(s in any::<String>()) {
            let _ = classify(&s, &kw("FR"), &tenants());
        }

        /// The verdict depends on the normalized text only.
        #[test]
        fn classify_sees_only_the_normalized_text(
            s in "(?i)(stop|arr[eê]t|start|help|aide|please|merci|acme|tsop|cancel|my order|[ .!,'-]){0,6}",
            country in prop::sample::select(vec!["FR", "GB", "DE", "NL", "BE", "IT", "US"]),
        ) {
            let k = kw(country);
            prop_assert_eq!(classify(&s, &k, &tenants()), classify(&normalize(&s), &k, &tenants()));
        }

        /// Case, punctuation and spacing around a bare keyword never change the verdict.
        #[test]
        fn decoration_does_not_change_stop(pre in "[ .!?,\\n]{0,3}", post in "[ .!?,\\n]{0,3}", lower in any::<bool>()) {
            let word = if lower { "stop" } else { "STOP" };
            let text = format!("{pre}{word}{post}");
            prop_assert_eq!(classify(&text, &kw("GB"), &tenants()), Intent::OptOut(Scope::Attributed));
        }
    }
}
