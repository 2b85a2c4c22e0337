//! Pure domain types. Nothing here does I/O; every type that crosses a trust
//! boundary has a `parse` that is the only way to build it.

pub mod category;
pub mod consent;
pub mod event;
pub mod frequency;
pub mod message;
pub mod notification;
pub mod phone;
pub mod segments;
pub mod tenant;
pub mod text;
pub mod timezones;
mod validity;

pub use category::Category;
pub use consent::{
    ConsentAction, ConsentEvent, ConsentList, ConsentRequest, ConsentState, ConsentStatus,
    RequestVia,
};
pub use event::{Action, Event, Source};
pub use message::{Campaign, LinkCode, MessageId, MessageStatus, Sender, ShortCode};
pub use notification::{
    Callback, MessageEvent, Notification, SmppReceipt, SmppReceipts, Webhook, WebhookEvent,
    WebhookSecret,
};
pub use phone::{Country, PhoneError, PhoneNumber};
pub use tenant::{
    ApiKeyHash, FrequencyCap, MarketingRequires, QuietHours, SchedulePolicy, SendWindows, Tenant,
    TenantId,
};
pub use timezones::timezones;

/// Milliseconds since the Unix epoch; the one clock type stored and compared.
pub type UnixMillis = i64;

pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, as every API answer shows times.
pub fn rfc3339(at: UnixMillis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An RFC 3339 time with its offset (`2026-01-02T03:04:05Z`,
/// `...+01:00`), as an API or a CSV file gives one.
pub fn parse_rfc3339(s: &str) -> Option<UnixMillis> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_parses_back() {
        assert_eq!(
            super::parse_rfc3339("2026-11-23T17:30:00.123Z"),
            Some(1_795_455_000_123)
        );
        assert_eq!(
            super::parse_rfc3339("2026-11-23T18:30:00+01:00"),
            Some(1_795_455_000_000)
        );
        assert_eq!(super::parse_rfc3339("2026-11-23 17:30"), None);
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn rfc3339_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::rfc3339(1_795_455_000_123),
            "2026-11-23T17:30:00.123Z"
        );
    }
}
