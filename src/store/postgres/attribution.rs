//! Marketing sends in PostgreSQL: `sends`, the last send per (number, short
//! code, tenant), overwritten by the next one.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::batch::BatchWork;
use super::suppressions::parse_campaign;
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{Campaign, PhoneNumber, ShortCode, TenantId, UnixMillis};
use crate::store::{AttributionStore, MarketingSend, Result};

/// A request's marketing sends through short codes, for the batching writer.
pub(crate) struct SendsReq {
    tenant: String,
    campaign: Option<String>,
    at: UnixMillis,
    sends: Vec<(String, String)>,
}

/// The batching writer of marketing sends: every queued request's sends in
/// one upsert. A row appears once per statement (a number sent to twice,
/// in one request or two, keeps the last queued), in key order.
pub(crate) struct SendsWork {
    pub pool: deadpool_postgres::Pool,
}

const NOTE_SENDS: &str = "
INSERT INTO sends (number, shortcode, tenant, at, campaign)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
ON CONFLICT (number, shortcode, tenant)
DO UPDATE SET at = EXCLUDED.at, campaign = EXCLUDED.campaign";

#[async_trait]
impl BatchWork for SendsWork {
    type Req = SendsReq;
    type Ans = ();
    const NAME: &'static str = "sends";

    fn weight(req: &Self::Req) -> usize {
        req.sends.len().max(1)
    }

    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<()>> {
        let mut rows: BTreeMap<(&str, &str, &str), (UnixMillis, Option<&str>)> = BTreeMap::new();
        for r in reqs {
            for (number, code) in &r.sends {
                rows.insert(
                    (number.as_str(), code.as_str(), r.tenant.as_str()),
                    (r.at, r.campaign.as_deref()),
                );
            }
        }
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((number, code, tenant), (at, campaign)) in rows {
            columns.0.push(number);
            columns.1.push(code);
            columns.2.push(tenant);
            columns.3.push(at);
            columns.4.push(campaign);
        }
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(NOTE_SENDS).await?;
        let c = &columns;
        client
            .execute(&stmt, &[&c.0, &c.1, &c.2, &c.3, &c.4])
            .await?;
        Ok(vec![(); reqs.len()])
    }
}

#[async_trait]
impl AttributionStore for PgStore {
    /// Through the `sends` batching writer: concurrent requests share one
    /// commit (one statement per request was a commit per request).
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
        self.sends
            .submit(SendsReq {
                tenant: tenant.to_string(),
                campaign: campaign.map(|c| c.as_str().to_string()),
                at,
                sends: sends
                    .iter()
                    .map(|(n, s)| (n.as_str().to_string(), s.as_str().to_string()))
                    .collect(),
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
