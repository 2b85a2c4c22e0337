//! Links in PostgreSQL: `links`, the code as primary key and one code per
//! (tenant, number, campaign) by a unique constraint (`''` is no campaign).
//!
//! A mint is an insert-if-absent against both keys: if the code is taken,
//! the caller draws another; if the key is taken (a concurrent mint on this
//! node or another), the winner's code is returned. Mints of concurrent
//! requests (a campaign) share one transaction through the batching writer.

use async_trait::async_trait;
use futures::future::join_all;

use super::batch::BatchWork;
use super::suppressions::{parse_campaign, parse_number};
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{now_millis, Campaign, LinkCode, PhoneNumber, TenantId};
use crate::store::links::Mint;
use crate::store::{LinkRecord, LinkStore, Result, StoreError};

/// Draws before a run of collisions is taken for a broken code generator.
const MAX_DRAWS: usize = 32;

pub(crate) struct MintReq {
    tenant: TenantId,
    number: PhoneNumber,
    /// `""` for none.
    campaign: String,
    code: LinkCode,
}

pub(crate) enum Minted {
    /// The code was inserted.
    New,
    /// The key already had this code.
    Existing(LinkCode),
    /// The code belongs to another key: draw again.
    Collision,
}

fn code_of(s: &str) -> PgResult<LinkCode> {
    LinkCode::parse(s).ok_or_else(|| corrupt("a stored link code", s))
}

pub(crate) struct MintWork {
    pub pool: deadpool_postgres::Pool,
}

#[async_trait]
impl BatchWork for MintWork {
    type Req = MintReq;
    type Ans = Minted;
    const NAME: &'static str = "links";

    fn weight(_: &MintReq) -> usize {
        1
    }

    async fn run(&self, reqs: &[&MintReq]) -> PgResult<Vec<Minted>> {
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |r: &MintReq| (r.tenant.as_str().to_owned(), r.number.as_str().to_owned());
            key(reqs[a]).cmp(&key(reqs[b]))
        });
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (insert, lookup) = futures::try_join!(
            tx.prepare_cached(
                "INSERT INTO links (code, tenant, number, campaign, created)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING code"
            ),
            tx.prepare_cached(
                "SELECT code FROM links WHERE tenant = $1 AND number = $2 AND campaign = $3"
            ),
        )?;
        let created = now_millis();
        // Every insert, then a look-up of the key for each: two round trips.
        let (txr, insert, lookup) = (&tx, &insert, &lookup);
        let inserts = order.iter().map(|&i| {
            let r = reqs[i];
            async move {
                txr.query_opt(
                    insert,
                    &[
                        &r.code.as_str(),
                        &r.tenant.as_str(),
                        &r.number.as_str(),
                        &r.campaign,
                        &created,
                    ],
                )
                .await
            }
        });
        let inserted = join_all(inserts).await;
        let mut answers: Vec<Option<Minted>> = (0..reqs.len()).map(|_| None).collect();
        let mut missed = Vec::new();
        for (&i, row) in order.iter().zip(inserted) {
            match row? {
                Some(_) => answers[i] = Some(Minted::New),
                None => missed.push(i),
            }
        }
        let lookups = missed.iter().map(|&i| {
            let r = reqs[i];
            async move {
                txr.query_opt(
                    lookup,
                    &[&r.tenant.as_str(), &r.number.as_str(), &r.campaign],
                )
                .await
            }
        });
        for (&i, row) in missed.iter().zip(join_all(lookups).await) {
            answers[i] = Some(match row? {
                Some(r) => Minted::Existing(code_of(r.try_get(0)?)?),
                None => Minted::Collision,
            });
        }
        tx.commit().await?;
        Ok(answers
            .into_iter()
            .map(|a| a.expect("every request answered"))
            .collect())
    }
}

#[async_trait]
impl LinkStore for PgStore {
    async fn link_for(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        campaign: Option<&Campaign>,
        mint: Mint<'_>,
    ) -> Result<(LinkCode, bool)> {
        let campaign = campaign.map_or("", |c| c.as_str());
        // No read first: for a key that has a code, the insert changes
        // nothing and the batch's look-up returns it, in the same round trip.
        for _ in 0..MAX_DRAWS {
            let code = mint();
            let req = MintReq {
                tenant: tenant.clone(),
                number: number.clone(),
                campaign: campaign.to_string(),
                code: code.clone(),
            };
            match self.links.submit(req).await? {
                Minted::New => return Ok((code, true)),
                Minted::Existing(winner) => return Ok((winner, false)),
                Minted::Collision => continue,
            }
        }
        Err(StoreError::Unavailable(format!(
            "{MAX_DRAWS} link codes drawn in a row were all taken"
        )))
    }

    async fn link(&self, code: &LinkCode) -> Result<Option<LinkRecord>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT tenant, number, campaign, created FROM links WHERE code = $1",
                )
                .await?;
            let Some(r) = client.query_opt(&stmt, &[&code.as_str()]).await? else {
                return Ok(None);
            };
            Ok(Some(LinkRecord {
                tenant: TenantId::parse(r.try_get(0)?)
                    .map_err(|e| corrupt("a stored tenant", e))?,
                number: parse_number(r.try_get(1)?)?,
                campaign: parse_campaign(r.try_get(2)?)?,
                created: r.try_get(3)?,
            }))
        })
        .await
    }
}
