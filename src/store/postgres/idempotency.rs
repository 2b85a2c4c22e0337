//! Idempotency records in PostgreSQL: `requests`, one row per (tenant,
//! reference): pending or done, when, the request's fingerprint, the answer.
//!
//! `begin_request` is one insert-if-absent that also takes over a stale
//! pending record of the same request, under the row's lock, so only one
//! of concurrent attempts (on any node) is ever `Fresh`.

use async_trait::async_trait;

use super::{corrupt, retrying, PgStore};
use crate::domain::{now_millis, TenantId, UnixMillis};
use crate::store::idempotency::STALE_ATTEMPT_MS;
use crate::store::{Attempt, IdempotencyStore, Result};

/// Rounds of "not taken, yet gone when read" (a concurrent abandon or
/// purge) before the attempt is reported in progress.
const ROUNDS: usize = 8;

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn begin_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Attempt> {
        let pool = self.pool();
        let fingerprint = &fingerprint[..];
        retrying(|| async move {
            let client = pool.get().await?;
            let (take, read) = futures::try_join!(
                client.prepare_cached(
                    "INSERT INTO requests AS r (tenant, reference, done, at, fingerprint)
                     VALUES ($1, $2, false, $3, $4)
                     ON CONFLICT (tenant, reference) DO UPDATE SET at = EXCLUDED.at
                     WHERE NOT r.done AND r.at < $5 AND r.fingerprint = EXCLUDED.fingerprint
                     RETURNING true"
                ),
                client.prepare_cached(
                    "SELECT done, at, fingerprint, response FROM requests
                     WHERE tenant = $1 AND reference = $2"
                ),
            )?;
            for _ in 0..ROUNDS {
                let now = now_millis();
                let stale = now - STALE_ATTEMPT_MS;
                let taken = client
                    .query_opt(
                        &take,
                        &[&tenant.as_str(), &reference, &now, &fingerprint, &stale],
                    )
                    .await?;
                if taken.is_some() {
                    return Ok(Attempt::Fresh);
                }
                let Some(row) = client
                    .query_opt(&read, &[&tenant.as_str(), &reference])
                    .await?
                else {
                    continue; // abandoned meanwhile: try to take it again
                };
                let done: bool = row.try_get(0)?;
                let at: i64 = row.try_get(1)?;
                let stored: &[u8] = row.try_get(2)?;
                if stored.len() != 32 {
                    return Err(corrupt("a request fingerprint", stored.len()));
                }
                if stored != fingerprint {
                    return Ok(Attempt::Mismatch);
                }
                if done {
                    let response: Option<Vec<u8>> = row.try_get(3)?;
                    return Ok(Attempt::Done(response.unwrap_or_default()));
                }
                if now_millis() - at < STALE_ATTEMPT_MS {
                    return Ok(Attempt::InProgress);
                }
                // Stale and the same request: another round takes it over.
            }
            Ok(Attempt::InProgress)
        })
        .await
    }

    async fn finish_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
        response: &[u8],
    ) -> Result<()> {
        let pool = self.pool();
        let fingerprint = &fingerprint[..];
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO requests (tenant, reference, done, at, fingerprint, response)
                     VALUES ($1, $2, true, $3, $4, $5)
                     ON CONFLICT (tenant, reference) DO UPDATE
                     SET done = true, at = EXCLUDED.at, fingerprint = EXCLUDED.fingerprint,
                         response = EXCLUDED.response",
                )
                .await?;
            client
                .execute(
                    &stmt,
                    &[
                        &tenant.as_str(),
                        &reference,
                        &now_millis(),
                        &fingerprint,
                        &response,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn abandon_request(&self, tenant: &TenantId, reference: &str) -> Result<()> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("DELETE FROM requests WHERE tenant = $1 AND reference = $2")
                .await?;
            client
                .execute(&stmt, &[&tenant.as_str(), &reference])
                .await?;
            Ok(())
        })
        .await
    }

    async fn purge_requests(&self, before: UnixMillis) -> Result<usize> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            // The condition is checked again on each row under its lock: a
            // retry that refreshed a record meanwhile keeps it.
            let stmt = client
                .prepare_cached("DELETE FROM requests WHERE at < $1")
                .await?;
            Ok(client.execute(&stmt, &[&before]).await? as usize)
        })
        .await
    }
}
