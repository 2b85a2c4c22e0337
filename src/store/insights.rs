//! Per-campaign counters, kept as events happen (never by scanning).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::Result;
use crate::domain::{Campaign, TenantId};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounters {
    /// `None` for messages sent without a campaign.
    pub campaign: Option<Campaign>,
    /// Marketing messages accepted by the provider.
    pub sent: u64,
    /// Billed parts of those messages.
    pub segments: u64,
    /// Of those, reported delivered / undelivered (or failed) by the provider.
    pub delivered: u64,
    pub undelivered: u64,
    /// Marketing not forwarded because the recipient opted out: at the
    /// send, or at the release of a held message (an opt-out during the hold).
    pub blocked: u64,
    /// Opt-outs by source (`sms`, `link`, `api`). Imports are not counted:
    /// a list moved in from elsewhere says nothing about a campaign.
    pub optouts: BTreeMap<String, u64>,
    /// Reasons picked on the link page.
    pub reasons: BTreeMap<String, u64>,
}

#[async_trait]
pub trait InsightStore: Send + Sync {
    /// Adds `messages` marketing messages sent, of `segments` parts in all,
    /// to a campaign's counters. (Delivery counters move with delivery
    /// reports, in their transaction: see `MessageStore::report`.)
    async fn count_marketing_sent(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        messages: u64,
        segments: u64,
    ) -> Result<()>;

    /// Adds `messages` marketing messages blocked (recipient opted out).
    async fn count_marketing_blocked(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        messages: u64,
    ) -> Result<()>;

    /// Every campaign's counters for a tenant, the no-campaign row first,
    /// then by campaign name.
    async fn campaign_counters(&self, tenant: &TenantId) -> Result<Vec<CampaignCounters>>;
}
