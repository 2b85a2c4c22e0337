//! Country rules: which opt-out method a country expects, the footer texts,
//! the keyword lists and the reply texts. One TOML file per country in
//! `country-rules/`, plus `default.toml` for every other country.
//!
//! The shipped files are compiled in, so the binary works from any
//! directory; a rules directory given in the config overrides them file by
//! file (and may add countries). Parsing and validation are pure: the only
//! I/O is [`RuleSet::load`] reading that directory.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::domain::segments::is_gsm7;
use crate::domain::text::normalize;
use crate::domain::Country;

/// The files shipped with stopgate, compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    (
        "default.toml",
        include_str!("../../country-rules/default.toml"),
    ),
    ("BE.toml", include_str!("../../country-rules/BE.toml")),
    ("DE.toml", include_str!("../../country-rules/DE.toml")),
    ("FR.toml", include_str!("../../country-rules/FR.toml")),
    ("GB.toml", include_str!("../../country-rules/GB.toml")),
    ("IT.toml", include_str!("../../country-rules/IT.toml")),
    ("NL.toml", include_str!("../../country-rules/NL.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// "STOP to short code" in the country's language.
    Shortcode,
    /// A short link unique per (tenant, recipient, campaign).
    Link,
}

#[derive(Debug, thiserror::Error)]
#[error("country rules {file}: {message}")]
pub struct RulesError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    country: String,
    languages: Vec<String>,
    method: Method,
    footer: FooterFile,
    keywords: KeywordsFile,
    replies: Replies,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FooterFile {
    shortcode: Option<String>,
    link: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordsFile {
    #[serde(default)]
    stop: Vec<String>,
    #[serde(default)]
    stopall: Vec<String>,
    #[serde(default)]
    start: Vec<String>,
    #[serde(default)]
    help: Vec<String>,
    #[serde(default)]
    filler: Vec<String>,
}

/// Reply texts, sent from the short code. `{tenants}` and `{shortcode}` are filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub stop: String,
    pub stopall: String,
    pub start: String,
    pub help: String,
}

/// Normalized keyword lists for one country: its own file's plus the defaults.
#[derive(Debug, Clone, Default)]
pub struct KeywordSet {
    pub stop: BTreeSet<String>,
    pub stopall: BTreeSet<String>,
    pub start: BTreeSet<String>,
    pub help: BTreeSet<String>,
    pub filler: BTreeSet<String>,
}

impl KeywordSet {
    fn from_file(k: &KeywordsFile) -> KeywordSet {
        let norm = |v: &[String]| {
            v.iter()
                .map(|s| normalize(s))
                .filter(|s| !s.is_empty())
                .collect()
        };
        KeywordSet {
            stop: norm(&k.stop),
            stopall: norm(&k.stopall),
            start: norm(&k.start),
            help: norm(&k.help),
            filler: norm(&k.filler),
        }
    }

    fn merge(&mut self, other: &KeywordSet) {
        self.stop.extend(other.stop.iter().cloned());
        self.stopall.extend(other.stopall.iter().cloned());
        self.start.extend(other.start.iter().cloned());
        self.help.extend(other.help.iter().cloned());
        self.filler.extend(other.filler.iter().cloned());
    }
}

/// The rules of one country (or of the default).
#[derive(Debug, Clone)]
pub struct CountryRules {
    /// `None` for the default rules.
    pub country: Option<Country>,
    /// Languages for pages and replies, most preferred first (`fr`, `nl`).
    pub languages: Vec<String>,
    pub method: Method,
    pub shortcode_footer: Option<String>,
    pub link_footer: String,
    /// This country's keywords merged with the defaults.
    pub keywords: KeywordSet,
    pub replies: Replies,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    default: CountryRules,
    countries: HashMap<Country, CountryRules>,
}

impl RuleSet {
    /// The rules compiled into the binary.
    pub fn builtin() -> RuleSet {
        let sources = BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        RuleSet::from_sources(sources).expect("the built-in country rules are valid")
    }

    /// Built-in rules, with every `*.toml` in `dir` replacing the built-in
    /// file of the same name or adding a country.
    pub fn load(dir: Option<&Path>) -> Result<RuleSet, RulesError> {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        if let Some(dir) = dir {
            let err = |message: String| RulesError {
                file: dir.display().to_string(),
                message,
            };
            let entries =
                std::fs::read_dir(dir).map_err(|e| err(format!("cannot read directory: {e}")))?;
            for entry in entries {
                let path = entry.map_err(|e| err(e.to_string()))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let text = std::fs::read_to_string(&path).map_err(|e| RulesError {
                    file: path.display().to_string(),
                    message: e.to_string(),
                })?;
                sources.retain(|(n, _)| *n != name);
                sources.push((name, text));
            }
        }
        RuleSet::from_sources(sources)
    }

    /// Parses and validates a set of files (name, text). Pure.
    pub fn from_sources(sources: Vec<(String, String)>) -> Result<RuleSet, RulesError> {
        let mut parsed = Vec::new();
        for (name, text) in &sources {
            let err = |message: String| RulesError {
                file: name.clone(),
                message,
            };
            let file: RulesFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
            let rules = validate(&file).map_err(err)?;
            let expected_name = match rules.country {
                Some(c) => format!("{c}.toml"),
                None => "default.toml".to_string(),
            };
            if *name != expected_name {
                return Err(err(format!(
                    "country = {:?} must be in a file named {expected_name}",
                    file.country
                )));
            }
            parsed.push(rules);
        }
        let default_pos = parsed
            .iter()
            .position(|r| r.country.is_none())
            .ok_or_else(|| RulesError {
                file: "default.toml".into(),
                message: "missing: the default rules are required".into(),
            })?;
        let default = parsed.remove(default_pos);
        let countries = parsed
            .into_iter()
            .map(|mut r| {
                r.keywords.merge(&default.keywords);
                (r.country.expect("non-default rules have a country"), r)
            })
            .collect();
        Ok(RuleSet { default, countries })
    }

    /// The rules for a country: its own file, else the default.
    pub fn for_country(&self, country: Country) -> &CountryRules {
        self.countries.get(&country).unwrap_or(&self.default)
    }

    pub fn default_rules(&self) -> &CountryRules {
        &self.default
    }

    /// Countries that have a file of their own, sorted.
    pub fn countries(&self) -> Vec<Country> {
        let mut v: Vec<Country> = self.countries.keys().copied().collect();
        v.sort();
        v
    }
}

fn validate(file: &RulesFile) -> Result<CountryRules, String> {
    let country = if file.country == "default" {
        None
    } else {
        Some(Country::parse(&file.country).ok_or_else(|| {
            format!(
                "country = {:?} is not an ISO 3166 two-letter code or \"default\"",
                file.country
            )
        })?)
    };
    if file.languages.is_empty() {
        return Err("languages: at least one language is required".into());
    }
    check_footer("footer.link", &file.footer.link, "{url}")?;
    if let Some(sc) = &file.footer.shortcode {
        check_footer("footer.shortcode", sc, "{shortcode}")?;
    } else if file.method == Method::Shortcode {
        return Err("footer.shortcode is required when method = \"shortcode\"".into());
    }
    let keywords = KeywordSet::from_file(&file.keywords);
    if country.is_none()
        && (keywords.stop.is_empty() || keywords.start.is_empty() || keywords.help.is_empty())
    {
        return Err("keywords: the default rules need stop, start and help keywords".into());
    }
    Ok(CountryRules {
        country,
        languages: file.languages.clone(),
        method: file.method,
        shortcode_footer: file.footer.shortcode.clone(),
        link_footer: file.footer.link.clone(),
        keywords,
        replies: file.replies.clone(),
    })
}

/// A footer must carry its opt-out placeholder and stay GSM-7 so that it
/// never turns a cheap message into a UCS-2 one.
pub fn check_footer(what: &str, template: &str, placeholder: &str) -> Result<(), String> {
    if !template.contains(placeholder) {
        return Err(format!("{what}: {template:?} must contain {placeholder}"));
    }
    if !is_gsm7(&template.replace(placeholder, "")) {
        return Err(format!("{what}: {template:?} has characters outside GSM-7"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    #[test]
    fn builtin_rules_cover_the_five_shortcode_countries() {
        let rules = RuleSet::builtin();
        for cc in ["FR", "GB", "BE", "NL", "DE"] {
            let r = rules.for_country(c(cc));
            assert_eq!(r.method, Method::Shortcode, "{cc}");
            assert!(r
                .shortcode_footer
                .as_deref()
                .unwrap()
                .contains("{shortcode}"));
        }
        assert_eq!(rules.for_country(c("US")).method, Method::Link);
        assert_eq!(rules.for_country(c("ES")).country, None);
        assert_eq!(rules.for_country(c("BE")).languages, vec!["fr", "nl"]);
    }

    #[test]
    fn country_keywords_include_the_defaults() {
        let rules = RuleSet::builtin();
        let fr = &rules.for_country(c("FR")).keywords;
        assert!(fr.stop.contains("ARRET"));
        assert!(fr.stop.contains("UNSUBSCRIBE"));
        assert!(fr.filler.contains("S IL VOUS PLAIT"));
        assert!(fr.help.contains("AIDE") && fr.help.contains("HELP"));
        assert!(!rules.default_rules().keywords.stop.contains("ARRET"));
    }

    #[test]
    fn a_footer_outside_gsm7_is_refused() {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        sources.retain(|(n, _)| n != "FR.toml");
        let fr = BUILTIN.iter().find(|(n, _)| *n == "FR.toml").unwrap().1;
        let bad = fr.replace("STOP au {shortcode}", "ARRÊT au {shortcode}");
        sources.push(("FR.toml".into(), bad));
        let err = RuleSet::from_sources(sources).unwrap_err();
        assert_eq!(err.file, "FR.toml");
        assert!(err.message.contains("GSM-7"), "{}", err.message);
    }

    #[test]
    fn a_file_must_be_named_after_its_country() {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let fr = BUILTIN.iter().find(|(n, _)| *n == "FR.toml").unwrap().1;
        sources.push(("ES.toml".into(), fr.to_string()));
        let err = RuleSet::from_sources(sources).unwrap_err();
        assert!(err.message.contains("FR.toml"), "{}", err.message);
    }

    #[test]
    fn a_directory_can_add_a_country() {
        let dir = tempfile::tempdir().unwrap();
        let es = r#"
country = "ES"
languages = ["es"]
method = "link"
[footer]
link = "Baja: {url}"
[keywords]
stop = ["BAJA"]
[replies]
stop = "x"
stopall = "x"
start = "x"
help = "x"
"#;
        std::fs::write(dir.path().join("ES.toml"), es).unwrap();
        let rules = RuleSet::load(Some(dir.path())).unwrap();
        let r = rules.for_country(c("ES"));
        assert_eq!(r.link_footer, "Baja: {url}");
        assert!(r.keywords.stop.contains("BAJA") && r.keywords.stop.contains("STOP"));
    }
}
