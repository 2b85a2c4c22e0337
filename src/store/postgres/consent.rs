//! Consents in PostgreSQL: `consents` (one row per tenant, number and
//! list, its state in columns) and `consent_events` (the history, ids from
//! `consent_event_ids` in the order events were applied).
//!
//! A batch of events reads its rows `FOR UPDATE` in one statement, applies
//! the events in order with `domain::consent::apply`, and writes the rows
//! that changed with their events and notifications, in one transaction. A
//! record that did not exist yet is inserted only if still absent: when a
//! concurrent writer created it first, the transaction is rolled back and
//! run again on what that writer wrote.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use futures::future::join_all;
use tokio_postgres::Row;

use super::suppressions::{parse_number, parse_source};
use super::{corrupt, retrying, PgResult, PgStore};
use crate::domain::consent::{apply, GateFacts};
use crate::domain::{
    ConsentAction, ConsentEvent, ConsentList, ConsentRequest, ConsentState, ConsentStatus,
    LinkCode, Notification, PhoneNumber, RequestVia, TenantId, UnixMillis,
};
use crate::store::{ConsentCounts, ConsentOutcome, ConsentStore, Result, StoreError};

/// The columns of a state, in this order, wherever one is read.
pub(crate) const STATE: &str = "status, since, source, given_at, request_at, request_expires, \
     request_via, request_answered, proof, recorded_by, updated";

/// How many times a batch is run again when concurrent writers keep
/// creating its records first.
const RACES: usize = 5;

/// Opt-outs withdraw every list's consent of their numbers, one statement
/// for a batch (arrays: `$1` tenants, `$2` numbers, `$3` times, `$4`
/// sources, `$5` proofs; one entry per tenant and number): the same
/// transition as `apply` for a withdrawal.
pub(crate) const WITHDRAW_ALL: &str = "
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
        AS u(tenant, number, at, source, proof)
), w AS (
    UPDATE consents c SET status = 'withdrawn', since = u.at, source = u.source,
        given_at = NULL, request_at = NULL, request_expires = NULL, request_via = NULL,
        request_code = NULL, request_answered = NULL, proof = u.proof, recorded_by = NULL,
        updated = u.at
    FROM u
    WHERE c.tenant = u.tenant AND c.number = u.number AND c.status <> 'withdrawn'
    RETURNING c.tenant, c.number, c.list, u.at, u.source, u.proof
)
INSERT INTO consent_events (id, tenant, number, list, at, action, source, proof)
SELECT nextval('consent_event_ids'), tenant, number, list, at, 'withdrawn', source, proof
FROM w";

/// A state from the [`STATE`] columns starting at `from`.
pub(crate) fn state(row: &Row, from: usize) -> PgResult<ConsentState> {
    let status: &str = row.try_get(from)?;
    let request_at: Option<i64> = row.try_get(from + 4)?;
    let expires: Option<i64> = row.try_get(from + 5)?;
    let via: Option<&str> = row.try_get(from + 6)?;
    let request = match (request_at, expires, via) {
        (Some(at), Some(expires), Some(via)) => Some(ConsentRequest {
            at,
            expires,
            via: serde_json::from_str(via).map_err(|e| corrupt("a request's channel", e))?,
            answered: row.try_get(from + 7)?,
        }),
        _ => None,
    };
    Ok(ConsentState {
        status: ConsentStatus::parse(status).ok_or_else(|| corrupt("a consent status", status))?,
        since: row.try_get(from + 1)?,
        source: parse_source(row.try_get(from + 2)?)?,
        given_at: row.try_get(from + 3)?,
        request,
        proof: row.try_get(from + 8)?,
        recorded_by: row.try_get(from + 9)?,
        updated: row.try_get(from + 10)?,
    })
}

fn via_json(via: &RequestVia) -> String {
    serde_json::to_string(via).expect("a channel serializes")
}

fn code_of(s: &ConsentState) -> Option<&str> {
    match s.request.as_ref().map(|r| &r.via) {
        Some(RequestVia::Link { code }) => Some(code.as_str()),
        _ => None,
    }
}

fn list_of(s: &str) -> PgResult<ConsentList> {
    ConsentList::parse(s).map_err(|e| corrupt("a stored list", e))
}

type Key = (String, String, String);

fn key_of(e: &ConsentEvent) -> Key {
    (
        e.tenant.as_str().to_string(),
        e.number.as_str().to_string(),
        e.list.as_str().to_string(),
    )
}

const UPSERT_COLUMNS: &str = "tenant, number, list, status, since, source, given_at, \
     request_at, request_expires, request_via, request_code, request_answered, proof, recorded_by, \
     updated";

/// One run of a batch: `None` if a record it meant to create appeared meanwhile.
async fn run(
    store: &PgStore,
    changes: &[(ConsentEvent, Vec<Notification>)],
) -> PgResult<Option<Vec<ConsentOutcome>>> {
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    let mut keys: Vec<Key> = changes.iter().map(|(e, _)| key_of(e)).collect();
    keys.sort();
    keys.dedup();
    let columns = (
        keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(),
        keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        keys.iter().map(|k| k.2.as_str()).collect::<Vec<_>>(),
    );
    // Rows are locked in key order, as every writer does.
    let read = tx
        .prepare_cached(&format!(
            "SELECT c.tenant, c.number, c.list, {} FROM consents c
             JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(t, n, l)
               ON c.tenant = k.t AND c.number = k.n AND c.list = k.l
             ORDER BY c.tenant, c.number, c.list
             FOR UPDATE OF c",
            STATE
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await?;
    let rows = tx
        .query(&read, &[&columns.0, &columns.1, &columns.2])
        .await?;
    let mut current: BTreeMap<Key, Option<ConsentState>> =
        keys.iter().map(|k| (k.clone(), None)).collect();
    for r in &rows {
        let k: Key = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        current.insert(k, Some(state(r, 3)?));
    }
    let existed: BTreeMap<Key, bool> = current
        .iter()
        .map(|(k, v)| (k.clone(), v.is_some()))
        .collect();
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut applied: Vec<&ConsentEvent> = Vec::new();
    let mut notes: Vec<&Notification> = Vec::new();
    for (e, n) in changes {
        let slot = current.get_mut(&key_of(e)).expect("every key was read");
        match apply(slot.as_ref(), e) {
            Ok(Some(new)) => {
                *slot = Some(new);
                applied.push(e);
                notes.extend(n.iter());
                outcomes.push(Ok(true));
            }
            Ok(None) => outcomes.push(Ok(false)),
            Err(refusal) => outcomes.push(Err(refusal)),
        }
    }
    let touched: BTreeSet<Key> = applied.iter().map(|e| key_of(e)).collect();
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO consents ({UPSERT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (tenant, number, list) DO NOTHING"
        ))
        .await?;
    let update = tx
        .prepare_cached(
            "UPDATE consents SET status = $4, since = $5, source = $6, given_at = $7,
                request_at = $8, request_expires = $9, request_via = $10, request_code = $11,
                request_answered = $12, proof = $13, recorded_by = $14, updated = $15
             WHERE tenant = $1 AND number = $2 AND list = $3",
        )
        .await?;
    for k in &touched {
        let s = current[k]
            .as_ref()
            .expect("an applied event leaves a state");
        let via = s.request.as_ref().map(|r| via_json(&r.via));
        let answered = s.request.as_ref().and_then(|r| r.answered);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 15] = [
            &k.0,
            &k.1,
            &k.2,
            &s.status.as_str(),
            &s.since,
            &s.source.as_str(),
            &s.given_at,
            &s.request.as_ref().map(|r| r.at),
            &s.request.as_ref().map(|r| r.expires),
            &via,
            &code_of(s),
            &answered,
            &s.proof,
            &s.recorded_by,
            &s.updated,
        ];
        if existed[k] {
            tx.execute(&update, &params).await?;
        } else if tx.execute(&insert, &params).await? == 0 {
            // Created by a concurrent writer since the read: run again on it.
            tx.rollback().await?;
            return Ok(None);
        }
    }
    let events = tx
        .prepare_cached(
            "INSERT INTO consent_events
                (id, tenant, number, list, at, action, source, proof, recorded_by, expires, via)
             VALUES (nextval('consent_event_ids'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    // Pipelined, executed in order: the ids follow the order of events.
    let appends = applied.iter().map(|e| {
        let via = e.via.as_ref().map(via_json);
        let tx = &tx;
        let events = &events;
        async move {
            tx.execute(
                events,
                &[
                    &e.tenant.as_str(),
                    &e.number.as_str(),
                    &e.list.as_str(),
                    &e.at,
                    &e.action.as_str(),
                    &e.source.as_str(),
                    &e.proof,
                    &e.recorded_by,
                    &e.expires,
                    &via,
                ],
            )
            .await
        }
    });
    for r in join_all(appends).await {
        r?;
    }
    super::outbox::insert(&tx, &notes, crate::domain::now_millis()).await?;
    tx.commit().await?;
    Ok(Some(outcomes))
}

#[async_trait]
impl ConsentStore for PgStore {
    async fn consents(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<(ConsentList, ConsentState)>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT list, {STATE} FROM consents WHERE tenant = $1 AND number = $2 ORDER BY list"
                ))
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &number.as_str()])
                .await?;
            rows.iter()
                .map(|r| Ok((list_of(r.try_get(0)?)?, state(r, 1)?)))
                .collect()
        })
        .await
    }

    async fn consent_events(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Vec<ConsentEvent>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT list, at, action, source, proof, recorded_by, expires, via
                     FROM consent_events WHERE tenant = $1 AND number = $2 ORDER BY id",
                )
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &number.as_str()])
                .await?;
            rows.iter()
                .map(|r| {
                    let action: &str = r.try_get(2)?;
                    let via: Option<&str> = r.try_get(7)?;
                    Ok(ConsentEvent {
                        at: r.try_get(1)?,
                        tenant: tenant.clone(),
                        number: number.clone(),
                        list: list_of(r.try_get(0)?)?,
                        action: ConsentAction::parse(action)
                            .ok_or_else(|| corrupt("a consent action", action))?,
                        source: parse_source(r.try_get(3)?)?,
                        proof: r.try_get(4)?,
                        recorded_by: r.try_get(5)?,
                        expires: r.try_get(6)?,
                        via: via
                            .map(serde_json::from_str)
                            .transpose()
                            .map_err(|e| corrupt("a request's channel", e))?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn record_consents(
        &self,
        changes: &[(ConsentEvent, Vec<Notification>)],
    ) -> Result<Vec<ConsentOutcome>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        for _ in 0..RACES {
            if let Some(outcomes) = retrying(|| run(self, changes)).await? {
                return Ok(outcomes);
            }
        }
        Err(StoreError::Unavailable(
            "consent records kept being created by concurrent writers; try again".into(),
        ))
    }

    async fn consent_gates(
        &self,
        tenant: &TenantId,
        list: &ConsentList,
        numbers: &[PhoneNumber],
    ) -> Result<Vec<GateFacts>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool();
        let wanted: Vec<&str> = numbers.iter().map(PhoneNumber::as_str).collect();
        let found: BTreeMap<String, GateFacts> = retrying(|| async {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT k.n, c.status IS NOT NULL, {}, s.updated
                     FROM unnest($3::text[]) AS k(n)
                     LEFT JOIN consents c ON c.tenant = $1 AND c.list = $2 AND c.number = k.n
                     LEFT JOIN suppressions s ON s.tenant = $1 AND s.number = k.n",
                    STATE
                        .split(", ")
                        .map(|c| format!("c.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &list.as_str(), &wanted])
                .await?;
            let mut out = BTreeMap::new();
            for r in &rows {
                let has: bool = r.try_get(1)?;
                out.insert(
                    r.try_get::<_, String>(0)?,
                    GateFacts {
                        consent: if has { Some(state(r, 2)?) } else { None },
                        suppression_changed: r.try_get(13)?,
                    },
                );
            }
            Ok(out)
        })
        .await?;
        Ok(numbers
            .iter()
            .map(|n| found.get(n.as_str()).cloned().unwrap_or_default())
            .collect())
    }

    async fn consent_page(
        &self,
        tenant: &TenantId,
        list: &ConsentList,
        after: Option<&PhoneNumber>,
        limit: usize,
    ) -> Result<Vec<(PhoneNumber, ConsentState)>> {
        let pool = self.pool();
        let after = after.map_or("", |a| a.as_str());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT number, {STATE} FROM consents
                     WHERE tenant = $1 AND list = $2 AND number > $3
                     ORDER BY number LIMIT $4"
                ))
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &list.as_str(), &after, &limit])
                .await?;
            rows.iter()
                .map(|r| Ok((parse_number(r.try_get(0)?)?, state(r, 1)?)))
                .collect()
        })
        .await
    }

    async fn consent_by_code(
        &self,
        code: &LinkCode,
    ) -> Result<Option<(TenantId, PhoneNumber, ConsentList, ConsentState)>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT tenant, number, list, {STATE} FROM consents WHERE request_code = $1"
                ))
                .await?;
            let Some(r) = client.query_opt(&stmt, &[&code.as_str()]).await? else {
                return Ok(None);
            };
            let tenant: &str = r.try_get(0)?;
            Ok(Some((
                TenantId::parse(tenant).map_err(|e| corrupt("a stored tenant", e))?,
                parse_number(r.try_get(1)?)?,
                list_of(r.try_get(2)?)?,
                state(&r, 3)?,
            )))
        })
        .await
    }

    async fn consent_counts(
        &self,
        tenant: &TenantId,
        valid_after: UnixMillis,
        lapsing_until: UnixMillis,
    ) -> Result<Vec<(ConsentList, ConsentCounts)>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT list,
                        count(*) FILTER (WHERE status = 'given' AND given_at > $2),
                        count(*) FILTER (WHERE status = 'given' AND given_at > $2 AND given_at <= $3),
                        count(*) FILTER (WHERE status = 'given' AND given_at <= $2),
                        count(*) FILTER (WHERE status = 'pending'),
                        count(*) FILTER (WHERE status = 'withdrawn')
                     FROM consents WHERE tenant = $1 GROUP BY list ORDER BY list",
                )
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &valid_after, &lapsing_until])
                .await?;
            let n = |r: &Row, i: usize| -> PgResult<u64> {
                Ok(u64::try_from(r.try_get::<_, i64>(i)?).unwrap_or(0))
            };
            rows.iter()
                .map(|r| {
                    Ok((
                        list_of(r.try_get(0)?)?,
                        ConsentCounts {
                            given: n(r, 1)?,
                            expiring: n(r, 2)?,
                            lapsed: n(r, 3)?,
                            pending: n(r, 4)?,
                            withdrawn: n(r, 5)?,
                        },
                    ))
                })
                .collect()
        })
        .await
    }
}
