//! Which opt-out footer a marketing message gets, and appending it. Pure.

use crate::domain::{ShortCode, Tenant};
use crate::rules::{CountryRules, Method};

/// The opt-out a message will carry, before any link is minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FooterPlan {
    /// "STOP to {shortcode}".
    ShortCode {
        shortcode: ShortCode,
        template: String,
    },
    /// A link unique to (tenant, recipient, campaign); `{url}` in the template.
    Link { template: String },
}

/// Chooses the footer for one recipient. `shortcode` is the short code that
/// serves this tenant in the recipient's country (dedicated or shared), if
/// any; a short-code country without one falls back to the link.
pub fn plan(rules: &CountryRules, tenant: &Tenant, shortcode: Option<&ShortCode>) -> FooterPlan {
    let link = || FooterPlan::Link {
        template: tenant
            .link_footer
            .clone()
            .unwrap_or_else(|| rules.link_footer.clone()),
    };
    match (rules.method, shortcode, &rules.shortcode_footer) {
        (Method::Shortcode, Some(code), Some(template)) => FooterPlan::ShortCode {
            shortcode: code.clone(),
            template: tenant.footer.clone().unwrap_or_else(|| template.clone()),
        },
        _ => link(),
    }
}

/// Fills `{shortcode}`, `{url}` and `{tenant}` into a template.
pub fn render(
    template: &str,
    shortcode: Option<&str>,
    url: Option<&str>,
    tenant_name: &str,
) -> String {
    let mut out = template.replace("{tenant}", tenant_name);
    if let Some(code) = shortcode {
        out = out.replace("{shortcode}", code);
    }
    if let Some(url) = url {
        out = out.replace("{url}", url);
    }
    out
}

/// Appends the footer after a newline, unless the body already carries it
/// (compared ignoring case and spacing, so a retry or an application that
/// already wrote "Stop au 36111" does not get it twice).
pub fn append(body: &str, footer: &str) -> String {
    if contains_loosely(body, footer) {
        body.to_string()
    } else {
        format!("{}\n{footer}", body.trim_end())
    }
}

fn contains_loosely(haystack: &str, needle: &str) -> bool {
    let squash = |s: &str| -> String {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    squash(haystack).contains(&squash(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::segments::{analyze, Encoding};
    use crate::domain::{ApiKeyHash, Country, TenantId};
    use crate::rules::RuleSet;
    use proptest::prelude::*;

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId::parse("acme").unwrap(),
            name: "ACME Shop".into(),
            api_key: ApiKeyHash::of_key("k"),
            keyword: None,
            footer: None,
            link_footer: None,
            shortcodes: Default::default(),
            send_windows: Default::default(),
            schedule: Default::default(),
            webhook: None,
            marketing_requires: Default::default(),
            consent_ttl_days: Tenant::CONSENT_TTL_DAYS,
        }
    }

    fn rules(c: &str) -> CountryRules {
        RuleSet::builtin()
            .for_country(Country::parse(c).unwrap())
            .clone()
    }

    #[test]
    fn shortcode_countries_use_the_shortcode_in_their_language() {
        let code = ShortCode::parse("36111").unwrap();
        let p = plan(&rules("FR"), &tenant(), Some(&code));
        let FooterPlan::ShortCode {
            template,
            shortcode,
        } = p
        else {
            panic!("{p:?}")
        };
        assert_eq!(
            render(&template, Some(shortcode.as_str()), None, "ACME"),
            "STOP au 36111"
        );
    }

    #[test]
    fn shortcode_country_without_a_code_falls_back_to_the_link() {
        let p = plan(&rules("DE"), &tenant(), None);
        assert_eq!(
            p,
            FooterPlan::Link {
                template: "Abmelden: {url}".into()
            }
        );
    }

    #[test]
    fn link_countries_ignore_shortcodes() {
        let code = ShortCode::parse("36111").unwrap();
        assert!(matches!(
            plan(&rules("US"), &tenant(), Some(&code)),
            FooterPlan::Link { .. }
        ));
    }

    #[test]
    fn tenant_overrides_win() {
        let mut t = tenant();
        t.footer = Some("{tenant}: STOP {shortcode}".into());
        t.link_footer = Some("Unsubscribe {url}".into());
        let code = ShortCode::parse("36111").unwrap();
        let FooterPlan::ShortCode { template, .. } = plan(&rules("FR"), &t, Some(&code)) else {
            panic!()
        };
        assert_eq!(
            render(&template, Some("36111"), None, &t.name),
            "ACME Shop: STOP 36111"
        );
        assert_eq!(
            plan(&rules("US"), &t, None),
            FooterPlan::Link {
                template: "Unsubscribe {url}".into()
            }
        );
    }

    #[test]
    fn append_adds_a_newline_and_never_twice() {
        let once = append("Sale today! ", "STOP au 36111");
        assert_eq!(once, "Sale today!\nSTOP au 36111");
        assert_eq!(append(&once, "STOP au 36111"), once);
        assert_eq!(
            append("Sale. stop  AU 36111", "STOP au 36111"),
            "Sale. stop  AU 36111"
        );
    }

    #[test]
    fn every_builtin_footer_is_gsm7() {
        let set = RuleSet::builtin();
        for c in set
            .countries()
            .into_iter()
            .map(|c| set.for_country(c).clone())
            .chain([set.default_rules().clone()])
        {
            let url = "https://stp.example/aB3dE5gH";
            let link = render(&c.link_footer, None, Some(url), "ACME");
            assert_eq!(analyze(&link).encoding, Encoding::Gsm7, "{link}");
            if let Some(sc) = &c.shortcode_footer {
                let s = render(sc, Some("36111"), None, "ACME");
                assert_eq!(analyze(&s).encoding, Encoding::Gsm7, "{s}");
            }
        }
    }

    proptest! {
        /// Appending is idempotent and always keeps the original text.
        #[test]
        fn append_is_idempotent(body in "\\PC{0,200}", code in "[0-9]{5}") {
            let footer = format!("STOP au {code}");
            let once = append(&body, &footer);
            prop_assert_eq!(append(&once, &footer), once.clone());
            prop_assert!(once.starts_with(body.trim_end()));
            prop_assert!(contains_loosely(&once, &footer));
        }

        /// A GSM-7 body stays GSM-7 after the footer.
        #[test]
        fn footer_never_forces_ucs2(body in "[a-zA-Z0-9 .,!?]{0,300}", country in prop::sample::select(vec!["FR", "GB", "BE", "NL", "DE", "US"])) {
            let r = rules(country);
            let code = ShortCode::parse("60777").unwrap();
            let footer = match plan(&r, &tenant(), Some(&code)) {
                FooterPlan::ShortCode { template, shortcode } => render(&template, Some(shortcode.as_str()), None, "ACME"),
                FooterPlan::Link { template } => render(&template, None, Some("http://127.0.0.1:8081/Ab12Cd34"), "ACME"),
            };
            prop_assert_eq!(analyze(&append(&body, &footer)).encoding, Encoding::Gsm7);
        }
    }
}
