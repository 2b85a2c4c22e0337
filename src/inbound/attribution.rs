//! Which tenants a reply to a short code is meant for. Pure: the caller
//! looks up the store and passes what it found.
//!
//! **Who is on a short code.** Tenant T is on code X when X is T's short
//! code for some country: T's dedicated code there, or the shared code of
//! that country when T has no dedicated one. That is exactly the code T's
//! marketing footers name (see `outbound::footer::plan`), so "everyone on
//! the code" is everyone whose messages could have told the recipient to
//! text that code. A code with one tenant on it is *dedicated*.
//!
//! **STOP** (DESIGN.md §3), in order: a tenant keyword in the text; the only
//! tenant on a dedicated code; the tenants that sent marketing to this
//! number through this code within the window; else every tenant on the
//! code. `STOPALL`: every tenant on the code.
//!
//! **START** re-subscribes, so it leans the other way: `START <KEYWORD>`
//! names its tenant; on a dedicated code, its tenant; on a shared code, the
//! tenants whose opt-out came from an SMS (START undoes STOP), else every
//! tenant on the code (a START from the phone itself is the strongest
//! consent there is, and nothing narrower is known).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::{Country, ShortCode, Source, Tenant, TenantId};

use super::keywords::Scope;

/// Which rule picked the tenants; logged with every inbound reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The text named a tenant keyword (`STOP ACME`).
    Keyword,
    /// Only one tenant is on the short code.
    Dedicated,
    /// The tenants that sent marketing here within the window.
    RecentMarketing,
    /// For START: the tenants the number opted out of by SMS.
    SmsOptOuts,
    /// Nothing narrower is known: every tenant on the code.
    AllOnCode,
    /// `STOPALL`.
    StopAll,
    /// For a yes: the tenants with an open request to the number through
    /// the short code.
    OpenRequest,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Keyword => "keyword",
            Rule::Dedicated => "dedicated",
            Rule::RecentMarketing => "recent_marketing",
            Rule::SmsOptOuts => "sms_optouts",
            Rule::AllOnCode => "all_on_code",
            Rule::OpenRequest => "open_request",
            Rule::StopAll => "stopall",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attribution {
    pub tenants: Vec<Arc<Tenant>>,
    pub rule: Rule,
}

impl Attribution {
    /// Nobody: a reply that changes nothing.
    pub fn none() -> Attribution {
        Attribution {
            tenants: Vec::new(),
            rule: Rule::AllOnCode,
        }
    }

    pub fn ids(&self) -> Vec<TenantId> {
        self.tenants.iter().map(|t| t.id.clone()).collect()
    }
}

/// The tenants on short code `code`, in config order.
pub fn tenants_on_code(
    code: &ShortCode,
    tenants: &[Arc<Tenant>],
    shared: &BTreeMap<Country, ShortCode>,
) -> Vec<Arc<Tenant>> {
    tenants
        .iter()
        .filter(|t| {
            t.shortcodes.values().any(|c| c == code)
                || shared
                    .iter()
                    .any(|(country, c)| c == code && !t.shortcodes.contains_key(country))
        })
        .cloned()
        .collect()
}

fn with_keyword(on_code: &[Arc<Tenant>], keyword: &str) -> Vec<Arc<Tenant>> {
    on_code
        .iter()
        .filter(|t| t.keyword.as_deref() == Some(keyword))
        .cloned()
        .collect()
}

/// Whether the caller needs the recent marketing senders for this STOP
/// (saves a store scan when a narrower rule applies anyway).
pub fn stop_needs_senders(scope: &Scope, on_code: &[Arc<Tenant>]) -> bool {
    matches!(scope, Scope::Attributed) && on_code.len() > 1
}

/// The tenants a STOP opts out of. `recent_senders`: tenants that sent
/// marketing to the number through the code within the window.
pub fn attribute_stop(
    scope: &Scope,
    on_code: &[Arc<Tenant>],
    recent_senders: &[TenantId],
) -> Attribution {
    let all = || Attribution {
        tenants: on_code.to_vec(),
        rule: Rule::AllOnCode,
    };
    match scope {
        Scope::All => Attribution {
            tenants: on_code.to_vec(),
            rule: Rule::StopAll,
        },
        Scope::Tenant(k) => {
            let named = with_keyword(on_code, k);
            if named.is_empty() {
                // The keyword engine only matches keywords of tenants on the
                // code, so this is a caller bug; failing wide is the safe side.
                all()
            } else {
                Attribution {
                    tenants: named,
                    rule: Rule::Keyword,
                }
            }
        }
        Scope::Attributed if on_code.len() == 1 => Attribution {
            tenants: on_code.to_vec(),
            rule: Rule::Dedicated,
        },
        Scope::Attributed => {
            let recent: Vec<Arc<Tenant>> = on_code
                .iter()
                .filter(|t| recent_senders.contains(&t.id))
                .cloned()
                .collect();
            if recent.is_empty() {
                all()
            } else {
                Attribution {
                    tenants: recent,
                    rule: Rule::RecentMarketing,
                }
            }
        }
    }
}

/// The tenants a START re-subscribes. `opted_out_by`: for tenants on the code
/// that currently suppress the number, the source of that opt-out.
pub fn attribute_start(
    keyword: Option<&str>,
    on_code: &[Arc<Tenant>],
    opted_out_by: &[(TenantId, Source)],
) -> Attribution {
    if let Some(k) = keyword {
        let named = with_keyword(on_code, k);
        if !named.is_empty() {
            return Attribution {
                tenants: named,
                rule: Rule::Keyword,
            };
        }
    }
    if on_code.len() == 1 {
        return Attribution {
            tenants: on_code.to_vec(),
            rule: Rule::Dedicated,
        };
    }
    let by_sms: Vec<Arc<Tenant>> = on_code
        .iter()
        .filter(|t| {
            opted_out_by
                .iter()
                .any(|(id, src)| *id == t.id && *src == Source::Sms)
        })
        .cloned()
        .collect();
    if by_sms.is_empty() {
        Attribution {
            tenants: on_code.to_vec(),
            rule: Rule::AllOnCode,
        }
    } else {
        Attribution {
            tenants: by_sms,
            rule: Rule::SmsOptOuts,
        }
    }
}

/// The tenants a HELP is answered for: the named one, else all on the code.
pub fn attribute_help(keyword: Option<&str>, on_code: &[Arc<Tenant>]) -> Attribution {
    match keyword.map(|k| with_keyword(on_code, k)) {
        Some(named) if !named.is_empty() => Attribution {
            tenants: named,
            rule: Rule::Keyword,
        },
        _ => Attribution {
            tenants: on_code.to_vec(),
            rule: if on_code.len() == 1 {
                Rule::Dedicated
            } else {
                Rule::AllOnCode
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ApiKeyHash;

    fn tenant(id: &str, keyword: &str, dedicated: &[(&str, &str)]) -> Arc<Tenant> {
        Arc::new(Tenant {
            id: TenantId::parse(id).unwrap(),
            name: id.to_uppercase(),
            api_key: ApiKeyHash::of_key(id),
            keyword: Some(keyword.into()),
            footer: None,
            link_footer: None,
            shortcodes: dedicated
                .iter()
                .map(|(c, s)| (Country::parse(c).unwrap(), ShortCode::parse(s).unwrap()))
                .collect(),
            send_windows: Default::default(),
            schedule: Default::default(),
            webhook: None,
            marketing_requires: Default::default(),
            consent_ttl_days: Tenant::CONSENT_TTL_DAYS,
        })
    }

    fn code(s: &str) -> ShortCode {
        ShortCode::parse(s).unwrap()
    }

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    /// acme: dedicated BE 3669 and FR 36222; beta and gamma: shared only.
    fn setup() -> (Vec<Arc<Tenant>>, BTreeMap<Country, ShortCode>) {
        let tenants = vec![
            tenant("acme", "ACME", &[("BE", "3669"), ("FR", "36222")]),
            tenant("beta", "BETA", &[]),
            tenant("gamma", "GAMMA", &[]),
        ];
        let shared = BTreeMap::from([
            (Country::parse("FR").unwrap(), code("36111")),
            (Country::parse("GB").unwrap(), code("60777")),
        ]);
        (tenants, shared)
    }

    fn ids(a: &Attribution) -> Vec<&str> {
        a.tenants.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn who_is_on_a_code() {
        let (tenants, shared) = setup();
        let on = |c: &str| -> Vec<String> {
            tenants_on_code(&code(c), &tenants, &shared)
                .iter()
                .map(|t| t.id.to_string())
                .collect()
        };
        // acme has its own FR code, so the shared FR code is not acme's.
        assert_eq!(on("36111"), ["beta", "gamma"]);
        assert_eq!(on("60777"), ["acme", "beta", "gamma"]);
        assert_eq!(on("36222"), ["acme"]);
        assert_eq!(on("3669"), ["acme"]);
        assert!(on("99999").is_empty());
    }

    #[test]
    fn stop_attribution_follows_the_design_order() {
        let (tenants, shared) = setup();
        let gb = tenants_on_code(&code("60777"), &tenants, &shared);
        let be = tenants_on_code(&code("3669"), &tenants, &shared);

        let a = attribute_stop(&Scope::Tenant("BETA".into()), &gb, &[id("acme")]);
        assert_eq!((ids(&a), a.rule), (vec!["beta"], Rule::Keyword));

        let a = attribute_stop(&Scope::Attributed, &be, &[]);
        assert_eq!((ids(&a), a.rule), (vec!["acme"], Rule::Dedicated));

        let a = attribute_stop(&Scope::Attributed, &gb, &[id("gamma"), id("acme")]);
        assert_eq!(
            (ids(&a), a.rule),
            (vec!["acme", "gamma"], Rule::RecentMarketing)
        );

        // A sender that is not on this code (config changed) does not count.
        let a = attribute_stop(&Scope::Attributed, &gb, &[id("zeta")]);
        assert_eq!(
            (ids(&a), a.rule),
            (vec!["acme", "beta", "gamma"], Rule::AllOnCode)
        );

        let a = attribute_stop(&Scope::All, &gb, &[id("acme")]);
        assert_eq!(
            (ids(&a), a.rule),
            (vec!["acme", "beta", "gamma"], Rule::StopAll)
        );
        assert!(stop_needs_senders(&Scope::Attributed, &gb));
        assert!(!stop_needs_senders(&Scope::Attributed, &be));
        assert!(!stop_needs_senders(&Scope::All, &gb));
    }

    #[test]
    fn start_undoes_sms_optouts_on_a_shared_code() {
        let (tenants, shared) = setup();
        let gb = tenants_on_code(&code("60777"), &tenants, &shared);
        let by = [(id("acme"), Source::Sms), (id("beta"), Source::Link)];

        let a = attribute_start(None, &gb, &by);
        assert_eq!((ids(&a), a.rule), (vec!["acme"], Rule::SmsOptOuts));

        let a = attribute_start(Some("BETA"), &gb, &by);
        assert_eq!((ids(&a), a.rule), (vec!["beta"], Rule::Keyword));

        let a = attribute_start(None, &gb, &[(id("beta"), Source::Import)]);
        assert_eq!(a.rule, Rule::AllOnCode);
        assert_eq!(ids(&a).len(), 3);

        let be = tenants_on_code(&code("3669"), &tenants, &shared);
        let a = attribute_start(None, &be, &[(id("acme"), Source::Link)]);
        assert_eq!((ids(&a), a.rule), (vec!["acme"], Rule::Dedicated));
    }

    #[test]
    fn help_names_the_tenant_asked_about_or_all() {
        let (tenants, shared) = setup();
        let gb = tenants_on_code(&code("60777"), &tenants, &shared);
        assert_eq!(ids(&attribute_help(Some("GAMMA"), &gb)), ["gamma"]);
        assert_eq!(ids(&attribute_help(None, &gb)).len(), 3);
    }
}
