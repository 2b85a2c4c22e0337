//! Insights in sled: `insights`, tenant·campaign·counter → u64 big-endian.
//! Counters are `sent` and `segments`, `optout:<source>` and
//! `reason:<reason>` (written with the opt-out, in `suppressions.rs`), and
//! `delivered` and `undelivered` (written with the delivery report, in
//! `messages.rs`), `blocked` (at the send, or at a release in `held.rs`);
//! the empty campaign is "no campaign".

use async_trait::async_trait;

use super::{key, prefix, read_u64, utf8, SledStore};
use crate::domain::{Campaign, TenantId};
use crate::store::{CampaignCounters, InsightStore, Result, StoreError};

/// The key of one counter of one campaign.
pub(super) fn counter_key(
    tenant: &TenantId,
    campaign: Option<&Campaign>,
    counter: &str,
) -> Vec<u8> {
    key(&[
        tenant.as_str().as_bytes(),
        campaign.map_or("", |c| c.as_str()).as_bytes(),
        counter.as_bytes(),
    ])
}

impl super::Live {
    /// Adds `n` to one counter.
    pub(super) fn add_counter(&self, key: &[u8], n: u64) -> Result<()> {
        self.insights.fetch_and_update(key, |old| {
            let current = old.map(read_u64).unwrap_or(0);
            Some((current + n).to_be_bytes().to_vec())
        })?;
        Ok(())
    }
}

#[async_trait]
impl InsightStore for SledStore {
    async fn count_marketing_sent(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        messages: u64,
        segments: u64,
    ) -> Result<()> {
        self.with(|s| {
            for (counter, n) in [("sent", messages), ("segments", segments)] {
                s.insights
                    .fetch_and_update(counter_key(tenant, campaign, counter), |old| {
                        let current = old.map(read_u64).unwrap_or(0);
                        Some((current + n).to_be_bytes().to_vec())
                    })?;
            }
            Ok(())
        })
    }

    async fn count_marketing_blocked(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        messages: u64,
    ) -> Result<()> {
        self.with(|s| s.add_counter(&counter_key(tenant, campaign, "blocked"), messages))
    }

    async fn campaign_counters(&self, tenant: &TenantId) -> Result<Vec<CampaignCounters>> {
        self.with(|s| {
            let prefix = prefix(&[tenant.as_str().as_bytes()]);
            let mut by_campaign: Vec<CampaignCounters> = Vec::new();
            for kv in s.insights.scan_prefix(&prefix) {
                let (k, v) = kv?;
                let rest = &k[prefix.len()..];
                let split = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| StoreError::Corrupt("insights key".into()))?;
                let campaign = utf8(&rest[..split])?;
                let counter = utf8(&rest[split + 1..])?;
                let campaign = if campaign.is_empty() {
                    None
                } else {
                    Some(Campaign::parse(campaign).map_err(|e| StoreError::Corrupt(e.into()))?)
                };
                if by_campaign.last().is_none_or(|c| c.campaign != campaign) {
                    by_campaign.push(CampaignCounters {
                        campaign: campaign.clone(),
                        ..Default::default()
                    });
                }
                let entry = by_campaign.last_mut().expect("pushed above");
                let n = read_u64(&v);
                match counter {
                    "sent" => entry.sent = n,
                    "segments" => entry.segments = n,
                    "delivered" => entry.delivered = n,
                    "undelivered" => entry.undelivered = n,
                    "blocked" => entry.blocked = n,
                    _ => {}
                }
                if let Some(source) = counter.strip_prefix("optout:") {
                    entry.optouts.insert(source.to_string(), n);
                } else if let Some(reason) = counter.strip_prefix("reason:") {
                    entry.reasons.insert(reason.to_string(), n);
                }
            }
            Ok(by_campaign)
        })
    }
}
