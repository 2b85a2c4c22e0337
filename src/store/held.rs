//! Held messages: marketing outside its send window, and messages with a
//! later `send_at`, kept until a releaser sends them (DESIGN.md §3 "Send
//! windows"). A held message carries what its release needs: the final
//! body (footer and link included) and its record as held (`scheduled`).
//! The body is kept only while the message is held: the release deletes
//! the row, so the body of a transactional message held by `send_at`
//! (otherwise never stored) is gone once it has left. OTPs are never held.
//!
//! Releasing is claim, begin, finish:
//! - [`HeldStore::claim_held`] leases due messages to one releaser (with
//!   several nodes on one database, each message is out with one node);
//! - [`HeldStore::begin_held`] marks them as about to be sent, durably,
//!   before the provider is asked: a message a crash interrupts after this
//!   may have gone out, so it is never sent again (its record says
//!   `failed`, `release_interrupted`), while one interrupted before it is
//!   simply released again once its lease ends;
//! - [`HeldStore::finish_held`] writes the outcome on its record, with the
//!   campaign's counters and the notifications, and forgets the message.
//!
//! Every step names the claim it acts under (its `lease_until`): a releaser
//! whose lease ran out and was taken over changes nothing.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::messages::Notify;
use super::{MessageRecord, Result, StatusChange};
use crate::domain::{MessageId, ShortCode, TenantId, UnixMillis};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldMessage {
    /// Its record as held (status `scheduled`). The release moves the
    /// stored record on; one purged meanwhile is written again from this.
    pub record: MessageRecord,
    /// The final body, footer included. Dropped with the row at release.
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service: Option<String>,
    /// The short code of its footer: noted for the attribution of STOP
    /// replies when it goes out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortcode: Option<ShortCode>,
    /// Its entry in the tenant's frequency-cap ledger, when it has a cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_key: Option<u64>,
    /// Not released before this.
    pub due: UnixMillis,
    /// Claimed by a releaser until then (0: not claimed). Also the claim's
    /// token: the steps after the claim name it.
    #[serde(default)]
    pub lease_until: UnixMillis,
    /// A releaser was about to hand it to the provider.
    #[serde(default)]
    pub begun: bool,
}

impl HeldMessage {
    pub fn id(&self) -> &MessageId {
        &self.record.id
    }

    pub fn tenant(&self) -> &TenantId {
        &self.record.tenant
    }
}

/// A claimed message, named by its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: MessageId,
    pub lease_until: UnixMillis,
}

impl From<&HeldMessage> for Claimed {
    fn from(h: &HeldMessage) -> Claimed {
        Claimed {
            id: h.record.id.clone(),
            lease_until: h.lease_until,
        }
    }
}

/// The outcome of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub claim: Claimed,
    /// `sent`, `failed`, `blocked` or `rejected`, with its error code.
    pub change: StatusChange,
    /// Who took it, when it was forwarded.
    pub provider: Option<String>,
    pub provider_id: Option<String>,
}

/// What a cancel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// It was held: its record now says `canceled`.
    Canceled {
        record: MessageRecord,
        held: Box<HeldMessage>,
    },
    /// The tenant has this message, but it is not held any more (sent,
    /// being sent, or never held).
    NotScheduled(MessageRecord),
    NotFound,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldStats {
    pub held: u64,
    /// The earliest `due` among them.
    pub next_due: Option<UnixMillis>,
}

#[async_trait]
pub trait HeldStore: Send + Sync {
    /// Keeps messages until their `due`, with their records (status
    /// `scheduled`) and the notifications of that status, in one write.
    /// Durable with the next `durable()`, which the caller awaits before
    /// it answers `scheduled`.
    async fn hold(
        &self,
        held: &[HeldMessage],
        notifications: &[crate::domain::Notification],
    ) -> Result<()>;

    /// Leases up to `limit` messages due at `now` and not leased, earliest
    /// due first, until `now + lease_ms`. Begun ones whose releaser died
    /// come back too (with `begun` set) so that they can be finished.
    async fn claim_held(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<HeldMessage>>;

    /// Marks claimed messages as about to be sent; `true` for each still
    /// held under that claim (a canceled one, or one whose lease was
    /// taken over, is `false` and must not be sent). Durable with the next
    /// `durable()`, which the caller awaits before sending.
    async fn begin_held(&self, claims: &[Claimed]) -> Result<Vec<bool>>;

    /// Hands claimed messages back, due again at the instant given
    /// (unsent: not begun any more).
    async fn postpone_held(&self, claims: &[(Claimed, UnixMillis)]) -> Result<()>;

    /// Writes each outcome on its record, atomically with the campaign's
    /// counters (`sent` and `segments`, or `blocked`) and the
    /// notifications `notify` gives for the updated record, and forgets
    /// the message. A record no longer `scheduled` (its outcome was
    /// written before a crash) is left as it is. `None` for a claim that
    /// is not this caller's any more.
    async fn finish_held(
        &self,
        releases: &[Release],
        notify: Notify<'_>,
    ) -> Result<Vec<Option<MessageRecord>>>;

    /// Cancels one of `tenant`'s held messages at `at`, unless a releaser
    /// has begun sending it.
    async fn cancel_held(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        at: UnixMillis,
        notify: Notify<'_>,
    ) -> Result<Cancel>;

    async fn held_stats(&self) -> Result<HeldStats>;
}
