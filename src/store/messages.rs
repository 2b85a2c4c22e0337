//! Message records: one per recipient of every send, with its status
//! history, found by our id, listed per tenant, and moved on by delivery
//! reports (found by the provider's id). Records expire after
//! `[messages] retention_days`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::segments::Encoding;
pub use crate::domain::Callback;
use crate::domain::{
    Campaign, Category, Country, MessageEvent, MessageId, MessageStatus, Notification, TenantId,
    UnixMillis,
};

/// One status a message reached, when, and why (for failures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: MessageStatus,
    pub at: UnixMillis,
    /// Our error code (`recipient_opted_out`, `upstream_rejected`, ...) or
    /// the provider's delivery error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub tenant: TenantId,
    /// E.164 when the number parsed, else the input as given (at most 40
    /// characters).
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Country>,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    pub sender: String,
    pub encoding: Encoding,
    pub segments: usize,
    /// The upstream that took (or refused) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The final body, kept only for marketing with `[messages] keep_body`.
    /// OTP and transactional bodies are never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// A held message: when it was planned to go (send window, `send_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_after: Option<UnixMillis>,
    /// Oldest first; never empty.
    pub history: Vec<StatusChange>,
}

impl MessageRecord {
    /// The most final status reached (see [`MessageStatus::rank`]).
    pub fn status(&self) -> MessageStatus {
        self.current().status
    }

    /// The change that set the current status.
    pub fn current(&self) -> &StatusChange {
        let mut best = &self.history[0];
        for c in &self.history[1..] {
            if c.status.rank() > best.status.rank() {
                best = c;
            }
        }
        best
    }

    pub fn created(&self) -> UnixMillis {
        self.history[0].at
    }

    /// The current status as an event for the application.
    pub fn event(&self) -> MessageEvent {
        let c = self.current();
        MessageEvent {
            tenant: self.tenant.clone(),
            id: self.id.clone(),
            to: self.to.clone(),
            from: self.sender.clone(),
            category: self.category,
            campaign: self.campaign.clone(),
            status: c.status,
            error: c.error.clone(),
            at: c.at,
        }
    }

    /// Applies a delivery report: whether it changed the current status.
    /// A report already in the history (a duplicate) changes nothing; one
    /// less final than the current status is kept in the history only.
    pub fn apply(&mut self, change: StatusChange) -> Applied {
        if self
            .history
            .iter()
            .any(|c| c.status == change.status && c.error == change.error)
        {
            return Applied::Duplicate;
        }
        let before = self.status();
        self.history.push(change);
        if self.status() == before {
            Applied::Kept
        } else {
            Applied::Changed
        }
    }
}

/// What a delivery report did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The current status moved on.
    Changed,
    /// Added to the history; the current status stays (it is more final).
    Kept,
    /// Seen before: nothing changed.
    Duplicate,
}

/// Which records a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub campaign: Option<Campaign>,
    /// The recipient, as stored (E.164).
    pub to: Option<String>,
}

impl MessageFilter {
    pub fn matches(&self, r: &MessageRecord) -> bool {
        self.status.is_none_or(|s| r.status() == s)
            && self
                .campaign
                .as_ref()
                .is_none_or(|c| r.campaign.as_ref() == Some(c))
            && self.to.as_ref().is_none_or(|t| &r.to == t)
    }
}

/// The notifications of a record's new status.
pub type Notify<'a> = &'a (dyn Fn(&MessageRecord) -> Vec<Notification> + Send + Sync);

/// The same, owned: a delivery report may be written by another task (the
/// PostgreSQL store gathers concurrent reports into one transaction).
pub type SharedNotify = std::sync::Arc<dyn Fn(&MessageRecord) -> Vec<Notification> + Send + Sync>;

/// The answer a delivery report's webhook gives for what the report did
/// (`None`: no record has its id), kept as its replay record's answer.
pub type ReportAnswer = std::sync::Arc<dyn Fn(Option<Applied>) -> Vec<u8> + Send + Sync>;

/// A delivery report that found its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub record: MessageRecord,
    pub applied: Applied,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Writes a request's records in one batch, with the notifications of
    /// their first status. Not made durable by itself: the next `durable()`
    /// (or the backend's own flush) covers them.
    async fn put_messages(
        &self,
        records: &[MessageRecord],
        notifications: &[Notification],
    ) -> Result<()>;

    /// One of `tenant`'s records.
    async fn message(&self, tenant: &TenantId, id: &MessageId) -> Result<Option<MessageRecord>>;

    /// `tenant`'s records, newest first, those older than `before` (the
    /// last id of the previous page), at most `limit`, matching `filter`.
    async fn messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        before: Option<&MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>>;

    /// Applies a delivery report to the message `provider` knows as
    /// `provider_id`, atomically: when it changes the current status, the
    /// campaign's delivery counters and the notifications `notify` gives for
    /// the updated record are written in the same transaction. `None` if no
    /// record has that id.
    async fn report(
        &self,
        provider: &str,
        provider_id: &str,
        change: StatusChange,
        notify: SharedNotify,
    ) -> Result<Option<Reported>>;

    /// Removes records created before `before`; returns how many. Works in
    /// bounded steps so that requests are never stalled behind it.
    async fn purge_messages(&self, before: UnixMillis, step: usize) -> Result<usize>;
}
