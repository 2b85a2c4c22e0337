//! Possible opt-outs in PostgreSQL: `possible_optouts`, ids from the
//! sequence `possible_optout_ids` (increasing; gaps are harmless).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::suppressions::parse_number;
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{ShortCode, TenantId};
use crate::store::{PossibleOptOut, Result, ReviewStore};

pub(crate) fn record(r: &Row, from: usize) -> PgResult<PossibleOptOut> {
    let tenants: Vec<String> = r.try_get(from + 3)?;
    Ok(PossibleOptOut {
        at: r.try_get(from)?,
        number: parse_number(r.try_get(from + 1)?)?,
        shortcode: ShortCode::parse(r.try_get(from + 2)?)
            .map_err(|e| corrupt("a stored short code", e))?,
        tenants: tenants
            .iter()
            .map(|t| TenantId::parse(t).map_err(|e| corrupt("a stored tenant", e)))
            .collect::<PgResult<_>>()?,
        text: r.try_get(from + 4)?,
    })
}

fn id_of(r: &Row) -> PgResult<u64> {
    let id: i64 = r.try_get(0)?;
    u64::try_from(id).map_err(|e| corrupt("a possible opt-out id", e))
}

#[async_trait]
impl ReviewStore for PgStore {
    async fn note_possible_optout(&self, record: &PossibleOptOut) -> Result<u64> {
        let pool = self.pool();
        let tenants: Vec<&str> = record.tenants.iter().map(TenantId::as_str).collect();
        let tenants = &tenants;
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO possible_optouts (id, at, number, shortcode, tenants, raw_text)
                     VALUES (nextval('possible_optout_ids'), $1, $2, $3, $4, $5) RETURNING id",
                )
                .await?;
            let row = client
                .query_one(
                    &stmt,
                    &[
                        &record.at,
                        &record.number.as_str(),
                        &record.shortcode.as_str(),
                        tenants,
                        &record.text,
                    ],
                )
                .await?;
            id_of(&row)
        })
        .await
    }

    async fn possible_optout(&self, id: u64) -> Result<Option<PossibleOptOut>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT at, number, shortcode, tenants, raw_text FROM possible_optouts
                     WHERE id = $1",
                )
                .await?;
            let row = client.query_opt(&stmt, &[&id]).await?;
            row.map(|r| record(&r, 0)).transpose()
        })
        .await
    }

    async fn possible_optouts(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, PossibleOptOut)>> {
        // Ids are bigint: a cursor beyond them has nothing after it.
        let Ok(after) = i64::try_from(after.unwrap_or(0)) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT id, at, number, shortcode, tenants, raw_text FROM possible_optouts
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .await?;
            let rows = client.query(&stmt, &[&after, &limit]).await?;
            rows.iter()
                .map(|r| Ok((id_of(r)?, record(r, 1)?)))
                .collect::<PgResult<Vec<_>>>()
        })
        .await
    }
}
