//! Marketing sends in PostgreSQL: `sends`, the last send per (number, short
//! code, tenant), overwritten by the next one.

use async_trait::async_trait;

use super::suppressions::parse_campaign;
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{Campaign, PhoneNumber, ShortCode, TenantId, UnixMillis};
use crate::store::{AttributionStore, MarketingSend, Result};

#[async_trait]
impl AttributionStore for PgStore {
    async fn note_marketing_sends(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        at: UnixMillis,
        sends: &[(PhoneNumber, ShortCode)],
    ) -> Result<()> {
        if sends.is_empty() {
            return Ok(());
        }
        // One upsert may not touch a row twice (a number listed twice in a
        // request), and sorted keys lock in the same order everywhere.
        let mut keys: Vec<(&str, &str)> = sends
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let (numbers, codes): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
        let campaign = campaign.map(|c| c.as_str());
        let pool = self.pool();
        let (numbers, codes) = (&numbers, &codes);
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO sends (number, shortcode, tenant, at, campaign)
                     SELECT n, s, $3, $4, $5 FROM unnest($1::text[], $2::text[]) AS u(n, s)
                     ON CONFLICT (number, shortcode, tenant)
                     DO UPDATE SET at = EXCLUDED.at, campaign = EXCLUDED.campaign",
                )
                .await?;
            client
                .execute(&stmt, &[numbers, codes, &tenant.as_str(), &at, &campaign])
                .await?;
            Ok(())
        })
        .await
    }

    async fn last_marketing_send(
        &self,
        number: &PhoneNumber,
        shortcode: &ShortCode,
        tenant: &TenantId,
    ) -> Result<Option<MarketingSend>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT at, campaign FROM sends
                     WHERE number = $1 AND shortcode = $2 AND tenant = $3",
                )
                .await?;
            let row = client
                .query_opt(
                    &stmt,
                    &[&number.as_str(), &shortcode.as_str(), &tenant.as_str()],
                )
                .await?;
            row.map(|r| -> PgResult<MarketingSend> {
                Ok(MarketingSend {
                    at: r.try_get(0)?,
                    campaign: parse_campaign(r.try_get(1)?)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn marketing_sends(
        &self,
        number: &PhoneNumber,
        shortcode: &ShortCode,
    ) -> Result<Vec<(TenantId, MarketingSend)>> {
        let pool = self.pool();
        let mut sends = retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT tenant, at, campaign FROM sends WHERE number = $1 AND shortcode = $2",
                )
                .await?;
            let rows = client
                .query(&stmt, &[&number.as_str(), &shortcode.as_str()])
                .await?;
            rows.iter()
                .map(|r| -> PgResult<(TenantId, MarketingSend)> {
                    let tenant = TenantId::parse(r.try_get(0)?)
                        .map_err(|e| corrupt("a stored tenant", e))?;
                    let send = MarketingSend {
                        at: r.try_get(1)?,
                        campaign: parse_campaign(r.try_get(2)?)?,
                    };
                    Ok((tenant, send))
                })
                .collect::<PgResult<Vec<_>>>()
        })
        .await?;
        // Byte order, as the embedded store lists them (the database's
        // collation may order ids otherwise).
        sends.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(sends)
    }
}
