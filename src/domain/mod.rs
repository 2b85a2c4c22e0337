//! Pure domain types. Nothing here does I/O; every type that crosses a trust
//! boundary has a `parse` that is the only way to build it.

pub mod category;
pub mod event;
pub mod message;
pub mod phone;
pub mod tenant;

pub use category::Category;
pub use event::{Action, Event, Source};
pub use message::{Campaign, MessageId, Sender, ShortCode};
pub use phone::{Country, PhoneError, PhoneNumber};
pub use tenant::{ApiKeyHash, Tenant, TenantId};

/// Milliseconds since the Unix epoch; the one clock type stored and compared.
pub type UnixMillis = i64;

pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
