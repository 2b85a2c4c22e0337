use serde::{Deserialize, Serialize};

use super::{Campaign, PhoneNumber, TenantId, UnixMillis};

/// What happened to a number's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    OptOut,
    OptIn,
}

/// Where the change came from; part of the compliance record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Sms,
    Link,
    Api,
    Import,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sms => "sms",
            Source::Link => "link",
            Source::Api => "api",
            Source::Import => "import",
        }
    }
}

/// One append-only audit record: every change of a number's state is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: UnixMillis,
    pub tenant: TenantId,
    pub number: PhoneNumber,
    pub action: Action,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The raw text the recipient sent (for `sms`), or the proof given (for `api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Event {
    pub fn new(tenant: TenantId, number: &PhoneNumber, action: Action, source: Source) -> Event {
        Event {
            at: super::now_millis(),
            tenant,
            number: number.clone(),
            action,
            source,
            campaign: None,
            reason: None,
            text: None,
        }
    }
}
