//! Data subjects in PostgreSQL: `erased` (tenant, hash → the opt-out kept),
//! `erasures` (the audit, ids from `erasure_ids`), the hash key in
//! `store_secrets`. An erasure is one transaction that locks the number's
//! suppression row (so a concurrent STOP waits for it, then finds the
//! erased opt-out) and deletes every row of the number for the tenant.

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::suppressions::{parse_campaign, parse_source};
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::{LinkCode, PhoneNumber, ShortCode, Source, TenantId, UnixMillis};
use crate::store::subjects::{new_subject_key, KeptOptOut, Removed, SubjectLink, SubjectSend};
use crate::store::{Erasure, Result, StoreError, SubjectData, SubjectStore, Suppression};

/// The store's hash key: read, or drawn and written once (the first node
/// to write it wins; every node then reads the same). Only read when it is
/// there, so a node can start while the database refuses writes.
pub(crate) async fn subject_key(pool: &Pool) -> Result<[u8; 32]> {
    let key: Vec<u8> = async {
        let client = pool.get().await?;
        let read = "SELECT value FROM store_secrets WHERE name = 'subject_key'";
        if let Some(r) = client.query_opt(read, &[]).await? {
            return Ok::<_, super::Failure>(r.try_get(0)?);
        }
        let fresh = new_subject_key();
        client
            .execute(
                "INSERT INTO store_secrets (name, value) VALUES ('subject_key', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[&&fresh[..]],
            )
            .await?;
        Ok(client.query_one(read, &[]).await?.try_get(0)?)
    }
    .await?;
    key.try_into()
        .map_err(|_| StoreError::Corrupt("the subject key is not 32 bytes".into()))
}

/// The erased opt-out of a number, as its suppression state.
pub(crate) async fn erased_state(
    client: &deadpool_postgres::Object,
    tenant: &TenantId,
    hash: &[u8; 32],
) -> PgResult<Option<Suppression>> {
    let stmt = client
        .prepare_cached("SELECT since, source, erased FROM erased WHERE tenant = $1 AND hash = $2")
        .await?;
    let Some(r) = client
        .query_opt(&stmt, &[&tenant.as_str(), &&hash[..]])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Suppression {
        suppressed: true,
        updated: r.try_get(0)?,
        source: parse_source(r.try_get(1)?)?,
        reason: None,
        campaign: None,
        erased: Some(r.try_get(2)?),
    }))
}

async fn erase(
    store: &PgStore,
    tenant: &TenantId,
    number: &PhoneNumber,
    reference: Option<&str>,
    at: UnixMillis,
) -> PgResult<Erasure> {
    let hash = store.subject_key.hash(tenant, number);
    let hash = &hash[..];
    let (t, n) = (tenant.as_str(), number.as_str());
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT suppressed, updated, source FROM suppressions
             WHERE tenant = $1 AND number = $2 FOR UPDATE",
            &[&t, &n],
        )
        .await?;
    let before = tx
        .query_opt(
            "SELECT since, source, erased FROM erased WHERE tenant = $1 AND hash = $2 FOR UPDATE",
            &[&t, &hash],
        )
        .await?;
    let row: Option<(bool, i64, Source)> = row
        .map(|r| -> PgResult<_> {
            Ok((r.try_get(0)?, r.try_get(1)?, parse_source(r.try_get(2)?)?))
        })
        .transpose()?;
    let before: Option<(i64, Source, i64)> = before
        .map(|r| -> PgResult<_> {
            Ok((r.try_get(0)?, parse_source(r.try_get(1)?)?, r.try_get(2)?))
        })
        .transpose()?;
    let kept = match row {
        Some((false, _, _)) => None,
        _ => before
            .map(|(since, source, _)| KeptOptOut { since, source })
            .or(row.map(|(_, since, source)| KeptOptOut { since, source })),
    };
    let key: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&t, &n];
    let mut removed = Removed {
        suppression_events: tx
            .execute("DELETE FROM events WHERE tenant = $1 AND number = $2", &key)
            .await?,
        ..Removed::default()
    };
    removed.suppression = tx
        .execute(
            "DELETE FROM suppressions WHERE tenant = $1 AND number = $2",
            &key,
        )
        .await?;
    removed.consent_events = tx
        .execute(
            "DELETE FROM consent_events WHERE tenant = $1 AND number = $2",
            &key,
        )
        .await?;
    removed.consents = tx
        .execute(
            "DELETE FROM consents WHERE tenant = $1 AND number = $2",
            &key,
        )
        .await?;
    removed.links = tx
        .execute("DELETE FROM links WHERE tenant = $1 AND number = $2", &key)
        .await?;
    removed.sends = tx
        .execute("DELETE FROM sends WHERE tenant = $1 AND number = $2", &key)
        .await?;
    tx.execute(
        "DELETE FROM message_providers WHERE id IN
            (SELECT id FROM messages WHERE tenant = $1 AND recipient = $2)",
        &key,
    )
    .await?;
    removed.messages = tx
        .execute(
            "DELETE FROM messages WHERE tenant = $1 AND recipient = $2",
            &key,
        )
        .await?;
    removed.possible_optouts = tx
        .execute(
            "UPDATE possible_optouts SET tenants = array_remove(tenants, $1)
             WHERE number = $2 AND $1 = ANY(tenants)",
            &key,
        )
        .await?;
    tx.execute(
        "DELETE FROM possible_optouts WHERE number = $1 AND tenants = '{}'",
        &[&n],
    )
    .await?;
    match &kept {
        Some(k) => {
            let erased = before.map_or(at, |(_, _, e)| e);
            tx.execute(
                "INSERT INTO erased (tenant, hash, since, source, erased) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant, hash) DO NOTHING",
                &[&t, &hash, &k.since, &k.source.as_str(), &erased],
            )
            .await?;
        }
        None => {
            tx.execute(
                "DELETE FROM erased WHERE tenant = $1 AND hash = $2",
                &[&t, &hash],
            )
            .await?;
        }
    }
    let erasure = Erasure {
        at,
        kept_optout: kept,
        removed,
        reference: reference.map(str::to_string),
    };
    let record = serde_json::to_string(&erasure).expect("an erasure serializes");
    tx.execute(
        "INSERT INTO erasures (tenant, hash, id, erasure)
         VALUES ($1, $2, nextval('erasure_ids'), $3)",
        &[&t, &hash, &record],
    )
    .await?;
    tx.commit().await?;
    Ok(erasure)
}

#[async_trait]
impl SubjectStore for PgStore {
    async fn subject_data(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<SubjectData> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let key: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                [&tenant.as_str(), &number.as_str()];
            let links = client
                .query(
                    "SELECT code, campaign, created FROM links
                     WHERE tenant = $1 AND number = $2 ORDER BY created, code",
                    &key,
                )
                .await?;
            let sends = client
                .query(
                    "SELECT shortcode, at, campaign FROM sends
                     WHERE tenant = $1 AND number = $2 ORDER BY shortcode",
                    &key,
                )
                .await?;
            let reviews = client
                .query(
                    "SELECT id, at, number, shortcode, tenants, raw_text FROM possible_optouts
                     WHERE $1 = ANY(tenants) AND number = $2 ORDER BY id",
                    &key,
                )
                .await?;
            let mut data = SubjectData::default();
            for r in &links {
                let code: &str = r.try_get(0)?;
                data.links.push(SubjectLink {
                    code: LinkCode::parse(code).ok_or_else(|| corrupt("a link code", code))?,
                    campaign: parse_campaign(r.try_get(1)?)?,
                    created: r.try_get(2)?,
                });
            }
            for r in &sends {
                data.sends.push(SubjectSend {
                    shortcode: ShortCode::parse(r.try_get(0)?)
                        .map_err(|e| corrupt("a stored short code", e))?,
                    at: r.try_get(1)?,
                    campaign: parse_campaign(r.try_get(2)?)?,
                });
            }
            for r in &reviews {
                let id: i64 = r.try_get(0)?;
                data.possible_optouts.push((
                    u64::try_from(id).map_err(|e| corrupt("a possible opt-out id", e))?,
                    super::review::record(r, 1)?,
                ));
            }
            Ok(data)
        })
        .await
    }

    async fn erase_subject(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        reference: Option<&str>,
        at: UnixMillis,
    ) -> Result<Erasure> {
        retrying(|| erase(self, tenant, number, reference, at)).await
    }

    async fn erasures(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<Erasure>> {
        let pool = self.pool();
        let hash = self.subject_key.hash(tenant, number);
        let hash = &hash;
        retrying(|| async move {
            let client = pool.get().await?;
            let rows = client
                .query(
                    "SELECT erasure FROM erasures WHERE tenant = $1 AND hash = $2 ORDER BY id",
                    &[&tenant.as_str(), &&hash[..]],
                )
                .await?;
            rows.iter()
                .map(|r| serde_json::from_str(r.try_get(0)?).map_err(|e| corrupt("an erasure", e)))
                .collect()
        })
        .await
    }
}
