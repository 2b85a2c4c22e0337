//! Insights in PostgreSQL: `insights`, (tenant, campaign, counter) → n, with
//! `''` for no campaign. Increments are `n = insights.n + EXCLUDED.n` under
//! the row's lock, so they are exact however many nodes add at once.
//! Opt-out counters are written with the opt-out, in `suppressions.rs`, and
//! delivery counters with the delivery report, in `messages.rs`.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::suppressions::parse_campaign;
use super::{corrupt, retrying, to_i64, PgStore};
use crate::domain::{Campaign, TenantId};
use crate::store::{CampaignCounters, InsightStore, Result};

#[async_trait]
impl InsightStore for PgStore {
    async fn count_marketing_sent(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        messages: u64,
        segments: u64,
    ) -> Result<()> {
        let pool = self.pool();
        let campaign = campaign.map_or("", |c| c.as_str());
        let (messages, segments) = (to_i64(messages), to_i64(segments));
        retrying(|| async move {
            let client = pool.get().await?;
            // Both rows in one statement, in key order ("segments" < "sent").
            let stmt = client
                .prepare_cached(
                    "INSERT INTO insights (tenant, campaign, counter, n)
                     VALUES ($1, $2, 'segments', $4), ($1, $2, 'sent', $3)
                     ON CONFLICT (tenant, campaign, counter) DO UPDATE SET n = insights.n + EXCLUDED.n",
                )
                .await?;
            client
                .execute(&stmt, &[&tenant.as_str(), &campaign, &messages, &segments])
                .await?;
            Ok(())
        })
        .await
    }

    async fn count_marketing_blocked(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        messages: u64,
    ) -> Result<()> {
        let pool = self.pool();
        let campaign = campaign.map_or("", |c| c.as_str());
        let messages = to_i64(messages);
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO insights (tenant, campaign, counter, n) VALUES ($1, $2, 'blocked', $3)
                     ON CONFLICT (tenant, campaign, counter) DO UPDATE SET n = insights.n + EXCLUDED.n",
                )
                .await?;
            client
                .execute(&stmt, &[&tenant.as_str(), &campaign, &messages])
                .await?;
            Ok(())
        })
        .await
    }

    async fn campaign_counters(&self, tenant: &TenantId) -> Result<Vec<CampaignCounters>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT campaign, counter, n FROM insights WHERE tenant = $1")
                .await?;
            let rows = client.query(&stmt, &[&tenant.as_str()]).await?;
            // By campaign bytes, "" (no campaign) first, as sled lists them.
            let mut by_campaign: BTreeMap<String, CampaignCounters> = BTreeMap::new();
            for r in &rows {
                let campaign: String = r.try_get(0)?;
                let counter: &str = r.try_get(1)?;
                let n: i64 = r.try_get(2)?;
                let n = u64::try_from(n).map_err(|e| corrupt("a counter", e))?;
                if !by_campaign.contains_key(&campaign) {
                    let counters = CampaignCounters {
                        campaign: parse_campaign(Some(campaign.clone()))?,
                        ..Default::default()
                    };
                    by_campaign.insert(campaign.clone(), counters);
                }
                let entry = by_campaign.get_mut(&campaign).expect("inserted above");
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
            Ok(by_campaign.into_values().collect())
        })
        .await
    }
}
