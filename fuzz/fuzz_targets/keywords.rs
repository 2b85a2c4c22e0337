//! The keyword engine on arbitrary text: normalization never panics, is
//! idempotent and yields single-spaced words; classification never panics
//! for any country's keyword lists.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stopgate::domain::Country;
use stopgate::inbound::keywords::{classify, normalize};
use stopgate::rules::RuleSet;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(RuleSet::builtin)
}

fuzz_target!(|text: &str| {
    let once = normalize(text);
    assert_eq!(normalize(&once), once, "normalize is idempotent");
    assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));

    let tenants: BTreeSet<String> = ["ACME", "BETA SHOP"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in ["FR", "GB", "DE", "NL", "BE", "IT", "US"] {
        let country = Country::parse(c).expect("a known country");
        let _ = classify(text, &rules().for_country(country).keywords, &tenants);
    }
});
