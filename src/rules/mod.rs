//! Country rules: which opt-out method a country expects, the footer texts,
//! the keyword lists and the reply texts, and when marketing may be sent
//! (`[send_window]`, see `windows`). One TOML file per country in
//! `country-rules/`, plus `default.toml` for every other country. A country
//! file may hold only a send window (`country` and `[send_window]`): the
//! country then keeps the default rules for everything else.
//!
//! The shipped files are compiled in, so the binary works from any
//! directory; a rules directory given in the config overrides them file by
//! file (and may add countries). Parsing and validation are pure: the only
//! I/O is [`RuleSet::load`] reading that directory.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;

pub mod holidays;
pub mod windows;

use windows::SendWindowFile;
pub use windows::{SendWindow, Verdict, WindowError};

use crate::domain::segments::is_gsm7;
use crate::domain::text::normalize;
use crate::domain::Country;

/// The files shipped with stopgate, compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    (
        "default.toml",
        include_str!("../../country-rules/default.toml"),
    ),
    ("AO.toml", include_str!("../../country-rules/AO.toml")),
    ("AR.toml", include_str!("../../country-rules/AR.toml")),
    ("AT.toml", include_str!("../../country-rules/AT.toml")),
    ("AX.toml", include_str!("../../country-rules/AX.toml")),
    ("BA.toml", include_str!("../../country-rules/BA.toml")),
    ("BE.toml", include_str!("../../country-rules/BE.toml")),
    ("BO.toml", include_str!("../../country-rules/BO.toml")),
    ("BR.toml", include_str!("../../country-rules/BR.toml")),
    ("CH.toml", include_str!("../../country-rules/CH.toml")),
    ("CL.toml", include_str!("../../country-rules/CL.toml")),
    ("CO.toml", include_str!("../../country-rules/CO.toml")),
    ("CR.toml", include_str!("../../country-rules/CR.toml")),
    ("CU.toml", include_str!("../../country-rules/CU.toml")),
    ("CV.toml", include_str!("../../country-rules/CV.toml")),
    ("CY.toml", include_str!("../../country-rules/CY.toml")),
    ("CZ.toml", include_str!("../../country-rules/CZ.toml")),
    ("DE.toml", include_str!("../../country-rules/DE.toml")),
    ("DK.toml", include_str!("../../country-rules/DK.toml")),
    ("DO.toml", include_str!("../../country-rules/DO.toml")),
    ("EC.toml", include_str!("../../country-rules/EC.toml")),
    ("EE.toml", include_str!("../../country-rules/EE.toml")),
    ("ES.toml", include_str!("../../country-rules/ES.toml")),
    ("FI.toml", include_str!("../../country-rules/FI.toml")),
    ("FR.toml", include_str!("../../country-rules/FR.toml")),
    ("GB.toml", include_str!("../../country-rules/GB.toml")),
    ("GQ.toml", include_str!("../../country-rules/GQ.toml")),
    ("GR.toml", include_str!("../../country-rules/GR.toml")),
    ("GT.toml", include_str!("../../country-rules/GT.toml")),
    ("GW.toml", include_str!("../../country-rules/GW.toml")),
    ("HN.toml", include_str!("../../country-rules/HN.toml")),
    ("HR.toml", include_str!("../../country-rules/HR.toml")),
    ("HU.toml", include_str!("../../country-rules/HU.toml")),
    ("ID.toml", include_str!("../../country-rules/ID.toml")),
    ("IT.toml", include_str!("../../country-rules/IT.toml")),
    ("LI.toml", include_str!("../../country-rules/LI.toml")),
    ("LT.toml", include_str!("../../country-rules/LT.toml")),
    ("LU.toml", include_str!("../../country-rules/LU.toml")),
    ("LV.toml", include_str!("../../country-rules/LV.toml")),
    ("MC.toml", include_str!("../../country-rules/MC.toml")),
    ("MD.toml", include_str!("../../country-rules/MD.toml")),
    ("MX.toml", include_str!("../../country-rules/MX.toml")),
    ("MZ.toml", include_str!("../../country-rules/MZ.toml")),
    ("NI.toml", include_str!("../../country-rules/NI.toml")),
    ("NL.toml", include_str!("../../country-rules/NL.toml")),
    ("PA.toml", include_str!("../../country-rules/PA.toml")),
    ("PE.toml", include_str!("../../country-rules/PE.toml")),
    ("PL.toml", include_str!("../../country-rules/PL.toml")),
    ("PR.toml", include_str!("../../country-rules/PR.toml")),
    ("PT.toml", include_str!("../../country-rules/PT.toml")),
    ("PY.toml", include_str!("../../country-rules/PY.toml")),
    ("RO.toml", include_str!("../../country-rules/RO.toml")),
    ("SE.toml", include_str!("../../country-rules/SE.toml")),
    ("SI.toml", include_str!("../../country-rules/SI.toml")),
    ("SK.toml", include_str!("../../country-rules/SK.toml")),
    ("SM.toml", include_str!("../../country-rules/SM.toml")),
    ("SR.toml", include_str!("../../country-rules/SR.toml")),
    ("ST.toml", include_str!("../../country-rules/ST.toml")),
    ("SV.toml", include_str!("../../country-rules/SV.toml")),
    ("TL.toml", include_str!("../../country-rules/TL.toml")),
    ("TR.toml", include_str!("../../country-rules/TR.toml")),
    ("US.toml", include_str!("../../country-rules/US.toml")),
    ("UY.toml", include_str!("../../country-rules/UY.toml")),
    ("VA.toml", include_str!("../../country-rules/VA.toml")),
    ("VE.toml", include_str!("../../country-rules/VE.toml")),
    ("ZA.toml", include_str!("../../country-rules/ZA.toml")),
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

/// A country file. `languages` to `replies` are all there (a full file) or
/// all absent (a file that only sets a send window).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    country: String,
    languages: Option<Vec<String>>,
    method: Option<Method>,
    footer: Option<FooterFile>,
    keywords: Option<KeywordsFile>,
    replies: Option<Replies>,
    send_window: Option<SendWindowFile>,
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
    #[serde(default)]
    yes: Vec<String>,
}

/// Reply texts, sent from the short code. `{tenants}` and `{shortcode}` are filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub stop: String,
    pub stopall: String,
    pub start: String,
    pub help: String,
    /// Double opt-in texts (`{tenant}`, `{shortcode}`, `{url}`): a country
    /// without them takes the default rules' (see [`ConsentTexts`]).
    #[serde(default)]
    consent_request: Option<String>,
    #[serde(default)]
    consent_request_link: Option<String>,
    #[serde(default)]
    consent_confirmed: Option<String>,
}

/// The double opt-in texts of a country. `{tenant}` is the tenant's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentTexts {
    /// The request by SMS from a short code: reply yes to `{shortcode}`.
    pub request: String,
    /// The request with a confirmation link: `{url}`.
    pub request_link: String,
    /// The thanks for a yes, from the short code.
    pub confirmed: String,
}

impl ConsentTexts {
    /// Fills `{tenant}`, `{shortcode}` and `{url}`.
    pub fn render(
        template: &str,
        tenant: &str,
        shortcode: Option<&str>,
        url: Option<&str>,
    ) -> String {
        template
            .replace("{tenant}", tenant)
            .replace("{shortcode}", shortcode.unwrap_or(""))
            .replace("{url}", url.unwrap_or(""))
    }
}

/// Normalized keyword lists for one country: its own file's plus the defaults.
#[derive(Debug, Clone, Default)]
pub struct KeywordSet {
    pub stop: BTreeSet<String>,
    pub stopall: BTreeSet<String>,
    pub start: BTreeSet<String>,
    pub help: BTreeSet<String>,
    pub filler: BTreeSet<String>,
    /// Answers to a double opt-in request (YES, OUI, JA, ...).
    pub yes: BTreeSet<String>,
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
            yes: norm(&k.yes),
        }
    }

    fn merge(&mut self, other: &KeywordSet) {
        self.stop.extend(other.stop.iter().cloned());
        self.stopall.extend(other.stopall.iter().cloned());
        self.start.extend(other.start.iter().cloned());
        self.help.extend(other.help.iter().cloned());
        self.filler.extend(other.filler.iter().cloned());
        self.yes.extend(other.yes.iter().cloned());
    }

    /// A yes keyword that is also a stop, start or help keyword would make
    /// a reply mean two things.
    fn ambiguous_yes(&self) -> Option<&String> {
        self.yes.iter().find(|y| {
            self.stop.contains(*y)
                || self.stopall.contains(*y)
                || self.start.contains(*y)
                || self.help.contains(*y)
        })
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
    pub consent: ConsentTexts,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    default: CountryRules,
    countries: HashMap<Country, CountryRules>,
    /// Marketing send windows by country (none: send any time).
    windows: HashMap<Country, SendWindow>,
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
        let mut windows = HashMap::new();
        for (name, text) in &sources {
            let err = |message: String| RulesError {
                file: name.clone(),
                message,
            };
            let file: RulesFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
            let (country, rules, window) = validate(&file).map_err(err)?;
            let expected_name = match country {
                Some(c) => format!("{c}.toml"),
                None => "default.toml".to_string(),
            };
            if *name != expected_name {
                return Err(err(format!(
                    "country = {:?} must be in a file named {expected_name}",
                    file.country
                )));
            }
            parsed.extend(rules);
            if let (Some(c), Some(w)) = (country, window) {
                windows.insert(c, w);
            }
        }
        let default_pos = parsed
            .iter()
            .position(|r| r.country.is_none())
            .ok_or_else(|| RulesError {
                file: "default.toml".into(),
                message: "missing: the default rules are required".into(),
            })?;
        let mut default = parsed.remove(default_pos);
        let missing = |what: &str| RulesError {
            file: "default.toml".into(),
            message: format!(
                "replies.{what}: missing (the default rules need the double opt-in texts)"
            ),
        };
        default.consent = ConsentTexts {
            request: default
                .replies
                .consent_request
                .clone()
                .ok_or_else(|| missing("consent_request"))?,
            request_link: default
                .replies
                .consent_request_link
                .clone()
                .ok_or_else(|| missing("consent_request_link"))?,
            confirmed: default
                .replies
                .consent_confirmed
                .clone()
                .ok_or_else(|| missing("consent_confirmed"))?,
        };
        if default.keywords.yes.is_empty() {
            return Err(RulesError {
                file: "default.toml".into(),
                message: "keywords.yes: the default rules need yes keywords".into(),
            });
        }
        let mut countries = HashMap::new();
        for mut r in parsed {
            r.keywords.merge(&default.keywords);
            let c = r.country.expect("non-default rules have a country");
            if let Some(y) = r.keywords.ambiguous_yes() {
                return Err(RulesError {
                    file: format!("{c}.toml"),
                    message: format!("keywords.yes: {y:?} is also a stop, start or help keyword"),
                });
            }
            let or = |own: &Option<String>, default: &String| {
                own.clone().unwrap_or_else(|| default.clone())
            };
            r.consent = ConsentTexts {
                request: or(&r.replies.consent_request, &default.consent.request),
                request_link: or(
                    &r.replies.consent_request_link,
                    &default.consent.request_link,
                ),
                confirmed: or(&r.replies.consent_confirmed, &default.consent.confirmed),
            };
            countries.insert(c, r);
        }
        if let Some(y) = default.keywords.ambiguous_yes() {
            return Err(RulesError {
                file: "default.toml".into(),
                message: format!("keywords.yes: {y:?} is also a stop, start or help keyword"),
            });
        }
        Ok(RuleSet {
            default,
            countries,
            windows,
        })
    }

    /// The marketing send window of a country, if its file has one.
    pub fn send_window(&self, country: Country) -> Option<&SendWindow> {
        self.windows.get(&country)
    }

    /// Countries with a send window, sorted.
    pub fn window_countries(&self) -> Vec<Country> {
        let mut v: Vec<Country> = self.windows.keys().copied().collect();
        v.sort();
        v
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

/// A file's country (`None`: the default), its rules (`None`: a file that
/// only sets a send window) and its send window.
type Validated = (Option<Country>, Option<CountryRules>, Option<SendWindow>);

fn validate(file: &RulesFile) -> Result<Validated, String> {
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
    let window = match (&file.send_window, country) {
        (None, _) => None,
        (Some(_), None) => {
            return Err("send_window: a send window belongs to a country file, \
                        not to the default rules"
                .into())
        }
        (Some(w), Some(c)) => Some(SendWindow::from_file(c, w)?),
    };
    let (languages, method, footer, keywords, replies) = match (
        &file.languages,
        file.method,
        &file.footer,
        &file.keywords,
        &file.replies,
    ) {
        (Some(l), Some(m), Some(f), Some(k), Some(r)) => (l, m, f, k, r),
        (None, None, None, None, None) if country.is_some() => return Ok((country, None, window)),
        _ => {
            let missing = [
                ("languages", file.languages.is_none()),
                ("method", file.method.is_none()),
                ("footer", file.footer.is_none()),
                ("keywords", file.keywords.is_none()),
                ("replies", file.replies.is_none()),
            ]
            .into_iter()
            .find_map(|(key, absent)| absent.then_some(key))
            .unwrap_or("languages");
            return Err(format!(
                "{missing}: missing (a country file has all of languages, method, footer, \
                 keywords and replies, or none of them and only a [send_window])"
            ));
        }
    };
    if languages.is_empty() {
        return Err("languages: at least one language is required".into());
    }
    check_footer("footer.link", &footer.link, "{url}")?;
    if let Some(sc) = &footer.shortcode {
        check_footer("footer.shortcode", sc, "{shortcode}")?;
    } else if method == Method::Shortcode {
        return Err("footer.shortcode is required when method = \"shortcode\"".into());
    }
    let keywords = KeywordSet::from_file(keywords);
    if country.is_none()
        && (keywords.stop.is_empty() || keywords.start.is_empty() || keywords.help.is_empty())
    {
        return Err("keywords: the default rules need stop, start and help keywords".into());
    }
    let rules = CountryRules {
        country,
        languages: languages.clone(),
        method,
        shortcode_footer: footer.shortcode.clone(),
        link_footer: footer.link.clone(),
        keywords,
        replies: replies.clone(),
        // Filled in (with the default's where the file has none) by `from_sources`.
        consent: ConsentTexts {
            request: String::new(),
            request_link: String::new(),
            confirmed: String::new(),
        },
    };
    for (what, text, needs) in [
        ("consent_request", &replies.consent_request, "{shortcode}"),
        (
            "consent_request_link",
            &replies.consent_request_link,
            "{url}",
        ),
    ] {
        if text.as_deref().is_some_and(|t| !t.contains(needs)) {
            return Err(format!("replies.{what}: must contain {needs}"));
        }
    }
    Ok((country, Some(rules), window))
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
        assert_eq!(rules.for_country(c("US")).country, None);
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
    fn yes_keywords_are_the_countrys_and_the_defaults() {
        let rules = RuleSet::builtin();
        let fr = &rules.for_country(c("FR")).keywords.yes;
        assert!(fr.contains("OUI") && fr.contains("YES"));
        assert!(rules.for_country(c("DE")).keywords.yes.contains("JA"));
        assert!(rules.for_country(c("ES")).keywords.yes.contains("SI"));
        assert!(rules.for_country(c("BE")).keywords.yes.contains("JA"));
        assert!(!rules.default_rules().keywords.yes.contains("OUI"));
        assert!(rules.for_country(c("FR")).consent.request.contains("OUI"));
        // A country file without the texts (US) takes the default's.
        assert_eq!(
            rules.for_country(c("US")).consent,
            rules.default_rules().consent
        );
        for cc in rules.countries() {
            let r = rules.for_country(cc);
            assert!(r.consent.request.contains("{shortcode}"), "{cc}");
            assert!(r.consent.request_link.contains("{url}"), "{cc}");
        }
    }

    #[test]
    fn a_yes_that_is_also_a_stop_is_refused() {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        sources.retain(|(n, _)| n != "FR.toml");
        let fr = BUILTIN.iter().find(|(n, _)| *n == "FR.toml").unwrap().1;
        sources.push((
            "FR.toml".into(),
            fr.replace("yes = [\"OUI\"]", "yes = [\"OUI\", \"ARRET\"]"),
        ));
        let err = RuleSet::from_sources(sources).unwrap_err();
        assert_eq!(err.file, "FR.toml");
        assert!(err.message.contains("ARRET"), "{}", err.message);
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
        let ad = r#"
country = "AD"
languages = ["ca"]
method = "link"
[footer]
link = "Baixa: {url}"
[keywords]
stop = ["BAIXA"]
[replies]
stop = "x"
stopall = "x"
start = "x"
help = "x"
"#;
        std::fs::write(dir.path().join("AD.toml"), ad).unwrap();
        let rules = RuleSet::load(Some(dir.path())).unwrap();
        let r = rules.for_country(c("AD"));
        assert_eq!(r.link_footer, "Baixa: {url}");
        assert!(r.keywords.stop.contains("BAIXA") && r.keywords.stop.contains("STOP"));
    }

    #[test]
    fn a_directory_can_replace_a_builtin_country() {
        let dir = tempfile::tempdir().unwrap();
        let es = BUILTIN.iter().find(|(n, _)| *n == "ES.toml").unwrap().1;
        let mine = es.replace("link = \"Baja: {url}\"", "link = \"Darse de baja: {url}\"");
        assert_ne!(mine, es);
        std::fs::write(dir.path().join("ES.toml"), mine).unwrap();
        let rules = RuleSet::load(Some(dir.path())).unwrap();
        assert_eq!(
            rules.for_country(c("ES")).link_footer,
            "Darse de baja: {url}"
        );
        assert_eq!(
            RuleSet::builtin().for_country(c("ES")).link_footer,
            "Baja: {url}"
        );
    }

    /// DESIGN.md §3: footers are GSM-7 only, so that they never turn a
    /// message into UCS-2. `validate` refuses others; this says it of every
    /// file we ship, whatever `validate` becomes.
    #[test]
    fn every_shipped_footer_is_gsm7_and_carries_its_placeholder() {
        let rules = RuleSet::builtin();
        let all = rules
            .countries()
            .into_iter()
            .map(|cc| rules.for_country(cc).clone())
            .chain([rules.default_rules().clone()]);
        let mut n = 0;
        for r in all {
            let who = r.country.map_or("default".to_string(), |c| c.to_string());
            assert!(r.link_footer.contains("{url}"), "{who}");
            assert!(
                is_gsm7(&r.link_footer.replace("{url}", "")),
                "{who}: {}",
                r.link_footer
            );
            if let Some(sc) = &r.shortcode_footer {
                assert!(sc.contains("{shortcode}"), "{who}");
                assert!(is_gsm7(&sc.replace("{shortcode}", "")), "{who}: {sc}");
            }
            n += 1;
        }
        // Every full file (those with a [footer]; the others only set a
        // send window).
        let full = BUILTIN
            .iter()
            .filter(|(_, t)| t.contains("\n[footer]"))
            .count();
        assert_eq!(n, full);
        assert!(full >= BUILTIN.len() - 2);
    }

    #[test]
    fn link_countries_have_their_language_in_the_footer() {
        let rules = RuleSet::builtin();
        for (cc, footer, lang) in [
            ("ES", "Baja: {url}", "es"),
            ("MX", "Baja: {url}", "es"),
            ("BR", "Cancelar SMS: {url}", "pt"),
            ("PL", "Rezygnacja: {url}", "pl"),
            ("RO", "Dezabonare: {url}", "ro"),
            ("SE", "Avregistrera: {url}", "sv"),
            ("DK", "Afmeld: {url}", "da"),
            ("FI", "Peruuta tilaus: {url}", "fi"),
            ("CZ", "Odhlaseni: {url}", "cs"),
            ("SK", "Odhlasenie: {url}", "sk"),
            ("HU", "Leiratkozas: {url}", "hu"),
            ("GR", "ΔIAΓPAΦH: {url}", "el"),
            ("HR", "Odjava: {url}", "hr"),
            ("SI", "Odjava: {url}", "sl"),
            ("EE", "Loobu: {url}", "et"),
            ("LV", "Atteikties: {url}", "lv"),
            ("LT", "Atsisakyti: {url}", "lt"),
            ("ID", "Berhenti langganan: {url}", "id"),
            ("TR", "Abonelik iptali: {url}", "tr"),
            ("AT", "Abmelden: {url}", "de"),
            ("CH", "Abmelden/Desinscription/Disiscriviti: {url}", "de"),
        ] {
            let r = rules.for_country(c(cc));
            assert_eq!(r.country, Some(c(cc)), "{cc} has a file");
            assert_eq!(r.method, Method::Link, "{cc}");
            assert_eq!(r.link_footer, footer, "{cc}");
            assert_eq!(r.languages[0], lang, "{cc}");
        }
        // Scripts GSM-7 cannot write keep the English default footer.
        for cc in ["RU", "BG", "SA", "EG", "CN", "TW", "JP", "KR", "IN"] {
            assert_eq!(rules.for_country(c(cc)).country, None, "{cc}");
        }
        assert_eq!(rules.default_rules().link_footer, "Opt out: {url}");
    }

    #[test]
    fn new_keywords_are_few_and_local() {
        let rules = RuleSet::builtin();
        assert!(rules.for_country(c("ES")).keywords.stop.contains("BAJA"));
        assert!(rules.for_country(c("AR")).keywords.stop.contains("BAJA"));
        assert!(rules.for_country(c("BR")).keywords.stop.contains("SAIR"));
        assert!(!rules.for_country(c("PT")).keywords.stop.contains("SAIR"));
        assert!(rules.for_country(c("SE")).keywords.stop.contains("STOPP"));
        // Another country's words stay there: BAJA is no opt-out in the US.
        assert!(!rules.for_country(c("US")).keywords.stop.contains("BAJA"));
        assert!(!rules.default_rules().keywords.stop.contains("BAJA"));
    }
}
