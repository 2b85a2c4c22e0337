//! Suppressions in PostgreSQL: `suppressions` (one row per tenant and
//! number) and `events` (its history), with the opt-out counters of
//! `insights` updated in the same transaction.
//!
//! A state change is one statement that changes the row only if its state
//! differs (under the row's lock: a concurrent duplicate STOP, on this node
//! or another, waits for the first and then changes nothing) and appends
//! the event with the row's next `seq`. `record_notifying` goes through the
//! batching writer: concurrent callers share one transaction, in which the
//! notifications of the events that changed a state go to the outbox.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use futures::future::join_all;
use tokio_postgres::Row;

use super::batch::BatchWork;
use super::idempotency::{self, Kept};
use super::{corrupt, optout_counters, retrying, Failure, PgResult, PgStore};
use crate::domain::{Action, Campaign, Event, Notification, PhoneNumber, Source, TenantId};
use crate::store::subjects::SubjectKey;
use crate::store::{BulkImport, Once, Replay, Result, Suppression, SuppressionStore};

/// An opt-out: a new row, or a subscribed row that becomes suppressed. An
/// erased opt-out of the number (`$8`, its hash) is suppressed already:
/// no row is made again.
const OPT_OUT: &str = "
WITH changed AS (
    INSERT INTO suppressions AS s
        (tenant, number, suppressed, updated, source, reason, campaign, seq)
    SELECT $1, $2, true, $3, $4, $5, $6, 1
    WHERE NOT EXISTS (SELECT 1 FROM erased WHERE tenant = $1 AND hash = $8)
    ON CONFLICT (tenant, number) DO UPDATE
        SET suppressed = true, updated = EXCLUDED.updated, source = EXCLUDED.source,
            reason = EXCLUDED.reason, campaign = EXCLUDED.campaign, seq = s.seq + 1
        WHERE NOT s.suppressed
    RETURNING s.seq
)
INSERT INTO events (tenant, number, seq, at, action, source, campaign, reason, raw_text)
SELECT $1, $2, seq, $3, 'opt_out', $4, $6, $5, $7 FROM changed";

/// An opt-in: only a suppressed row changes (no row means never suppressed).
const OPT_IN: &str = "
WITH changed AS (
    UPDATE suppressions
        SET suppressed = false, updated = $3, source = $4, reason = $5, campaign = $6,
            seq = seq + 1
        WHERE tenant = $1 AND number = $2 AND suppressed
    RETURNING seq
)
INSERT INTO events (tenant, number, seq, at, action, source, campaign, reason, raw_text)
SELECT $1, $2, seq, $3, 'opt_in', $4, $6, $5, $7 FROM changed";

/// Before an opt-in: an erased opt-out of the number (`$3`, its hash)
/// becomes a suppressed row of its own again, which the opt-in then lifts
/// (with no history: it was erased).
const LIFT_ERASED: &str = "
WITH lifted AS (DELETE FROM erased WHERE tenant = $1 AND hash = $3 RETURNING since, source)
INSERT INTO suppressions (tenant, number, suppressed, updated, source, seq)
SELECT $1, $2, true, since, source, 0 FROM lifted
ON CONFLICT (tenant, number) DO NOTHING";

pub(crate) fn parse_source(s: &str) -> PgResult<Source> {
    Ok(match s {
        "sms" => Source::Sms,
        "link" => Source::Link,
        "api" => Source::Api,
        "import" => Source::Import,
        other => return Err(corrupt("a stored source", other)),
    })
}

fn parse_action(s: &str) -> PgResult<Action> {
    match s {
        "opt_out" => Ok(Action::OptOut),
        "opt_in" => Ok(Action::OptIn),
        other => Err(corrupt("a stored action", other)),
    }
}

pub(crate) fn parse_campaign(s: Option<String>) -> PgResult<Option<Campaign>> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(c) => Campaign::parse(c)
            .map(Some)
            .map_err(|e| corrupt("a stored campaign", e)),
    }
}

pub(crate) fn parse_number(s: &str) -> PgResult<PhoneNumber> {
    PhoneNumber::parse(s).map_err(|e| corrupt("a stored number", e))
}

/// A `suppressions` row read as (suppressed, updated, source, reason, campaign).
fn state(row: &Row, from: usize) -> PgResult<Suppression> {
    Ok(Suppression {
        suppressed: row.try_get(from)?,
        updated: row.try_get(from + 1)?,
        source: parse_source(row.try_get(from + 2)?)?,
        reason: row.try_get(from + 3)?,
        campaign: parse_campaign(row.try_get(from + 4)?)?,
        erased: None,
    })
}

/// One caller's events, each with the notifications written if it changes
/// a state, and for a STOP or START its confirmation; for a webhook's
/// reply, its replay record and the answer it keeps.
pub(crate) struct RecordReq {
    pub changes: Vec<(Event, Vec<Notification>)>,
    pub confirm: Option<Confirm>,
    pub replay: Option<(Replay, Vec<u8>)>,
}

/// A confirmation: its cap marked in the batch, its reply written if that
/// was the first mark or if an event of the caller changed a state.
pub(crate) struct Confirm {
    pub cap: String,
    pub reply: Option<Notification>,
}

/// The batching writer's work: every queued `record_many` in one transaction.
pub(crate) struct RecordWork {
    pub pool: deadpool_postgres::Pool,
    /// Hashes numbers for their erased opt-outs.
    pub key: SubjectKey,
}

/// Per event: whether it changed a state; whether the confirmation goes.
type Recorded = (Vec<bool>, bool);

#[async_trait]
impl BatchWork for RecordWork {
    type Req = RecordReq;
    /// [`Recorded`]; `Seen` for a reply whose replay record says it was
    /// handled (or is being handled) already.
    type Ans = Once<Recorded>;
    const NAME: &'static str = "events";

    fn weight(req: &Self::Req) -> usize {
        req.changes.len().max(1)
    }

    /// The replay records first, before any row of the events is locked:
    /// a reply seen before records nothing. Then the events of the rest.
    async fn run(&self, reqs: &[&Self::Req]) -> PgResult<Vec<Self::Ans>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut seen = idempotency::repeats(
            reqs.iter()
                .map(|r| r.replay.as_ref().map(|(replay, _)| replay.key.as_str())),
        );
        let records: Vec<Kept<'_>> = reqs
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| seen.is_none())
            .filter_map(|(r, _)| {
                let (replay, answer) = r.replay.as_ref()?;
                Some((replay.key.as_str(), &replay.fingerprint, answer.as_slice()))
            })
            .collect();
        let said = idempotency::keep_answers(&tx, &records).await?;
        if !said.is_empty() {
            // A replay, or the same reply on another node at that moment;
            // or a stale record of ours (a crash), taken over here.
            let mut stale: Vec<Kept<'_>> = Vec::new();
            for (r, seen) in reqs.iter().zip(seen.iter_mut()) {
                let Some((replay, answer)) = &r.replay else {
                    continue;
                };
                match said.get(&replay.key) {
                    Some(Some(attempt)) if seen.is_none() => *seen = Some(attempt.clone()),
                    Some(None) if seen.is_none() => {
                        stale.push((&replay.key, &replay.fingerprint, answer))
                    }
                    _ => {}
                }
            }
            if !stale.is_empty() {
                idempotency::overwrite_many(&tx, &stale).await?;
            }
        }
        let doing: Vec<&RecordReq> = reqs
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| seen.is_none())
            .map(|(r, _)| *r)
            .collect();
        let (recorded, changed) = self.apply(&tx, &doing).await?;
        tx.commit().await?;
        for e in changed {
            count_change(e);
        }
        let mut recorded = recorded.into_iter();
        reqs.iter()
            .zip(seen)
            .map(|(r, seen)| match seen {
                Some(attempt) => Ok(Once::Seen(attempt)),
                None => recorded
                    .next()
                    .map(|value| Once::Done {
                        value,
                        answer: r
                            .replay
                            .as_ref()
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default(),
                    })
                    .ok_or_else(|| corrupt("a batch's answers", "too few")),
            })
            .collect()
    }
}

impl RecordWork {
    /// The events of `reqs` in `tx`: per request what it recorded, and the
    /// events that changed a state (counted once committed).
    async fn apply<'a>(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        reqs: &[&'a RecordReq],
    ) -> PgResult<(Vec<Recorded>, Vec<&'a Event>)> {
        let changes: Vec<&(Event, Vec<Notification>)> =
            reqs.iter().flat_map(|r| r.changes.iter()).collect();
        let events: Vec<&Event> = changes.iter().map(|(e, _)| e).collect();
        // Rows are locked in key order, by every batch of every node, so two
        // batches never wait for each other in a cycle. The sort is stable:
        // events of one number keep their order.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (events[a], events[b]);
            (a.tenant.as_str(), a.number.as_str()).cmp(&(b.tenant.as_str(), b.number.as_str()))
        });
        let hashes: Vec<[u8; 32]> = events
            .iter()
            .map(|e| self.key.hash(&e.tenant, &e.number))
            .collect();
        let (opt_out, opt_in, lift) = futures::try_join!(
            tx.prepare_cached(OPT_OUT),
            tx.prepare_cached(OPT_IN),
            tx.prepare_cached(LIFT_ERASED)
        )?;
        // Erased opt-outs that an opt-in lifts become rows first: that
        // changes no state (suppressed either way), so it may go first.
        let lifts = order
            .iter()
            .filter(|&&i| events[i].action == Action::OptIn)
            .map(|&i| {
                let e = events[i];
                let (lift, hash) = (&lift, &hashes[i][..]);
                async move {
                    tx.execute(lift, &[&e.tenant.as_str(), &e.number.as_str(), &hash])
                        .await
                }
            });
        for r in join_all(lifts).await {
            r?;
        }
        // Sent at once, answered in order (one round trip for the batch).
        let runs = order.iter().map(|&i| {
            let e = events[i];
            let campaign = e.campaign.as_ref().map(|c| c.as_str());
            let hash = &hashes[i][..];
            let (opt_out, opt_in) = (&opt_out, &opt_in);
            async move {
                let base: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                    &e.tenant.as_str(),
                    &e.number.as_str(),
                    &e.at,
                    &e.source.as_str(),
                    &e.reason,
                    &campaign,
                    &e.text,
                ];
                match e.action {
                    Action::OptOut => {
                        let mut p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = base.to_vec();
                        p.push(&hash);
                        tx.execute(opt_out, &p).await
                    }
                    Action::OptIn => tx.execute(opt_in, &base).await,
                }
            }
        });
        let mut changed = vec![false; events.len()];
        for (&i, outcome) in order.iter().zip(join_all(runs).await) {
            changed[i] = outcome? == 1;
        }
        // An opt-out withdraws the number's consents, every list: one
        // statement for the batch, the first opt-out of each number (a
        // second, after a START in the same batch, finds them withdrawn).
        // Their rows are locked under the numbers' suppression rows, which
        // this transaction holds: no other order to keep.
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        let mut withdrawals = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &i in &order {
            let e = events[i];
            if !changed[i] || e.action != Action::OptOut {
                continue;
            }
            if seen.insert((e.tenant.as_str(), e.number.as_str())) {
                withdrawals.0.push(e.tenant.as_str());
                withdrawals.1.push(e.number.as_str());
                withdrawals.2.push(e.at);
                withdrawals.3.push(e.source.as_str());
                withdrawals
                    .4
                    .push(e.text.as_deref().or(e.reason.as_deref()));
            }
        }
        if !withdrawals.0.is_empty() {
            let withdraw = tx.prepare_cached(super::consent::WITHDRAW_ALL).await?;
            let w = &withdrawals;
            tx.execute(&withdraw, &[&w.0, &w.1, &w.2, &w.3, &w.4])
                .await?;
        }
        let mut counters: BTreeMap<(&str, String, String), i64> = BTreeMap::new();
        for (e, _) in events.iter().zip(&changed).filter(|(_, c)| **c) {
            for (campaign, counter) in optout_counters(e) {
                *counters
                    .entry((e.tenant.as_str(), campaign, counter))
                    .or_default() += 1;
            }
        }
        let counts = counters
            .iter()
            .map(|((t, campaign, counter), n)| ((*t, campaign.as_str(), counter.as_str()), *n));
        super::insights::add_counts(tx, counts).await?;
        // The confirmation caps, after every row lock above (in the same
        // order in every batch); the first caller of a cap in the batch
        // takes a new mark.
        let caps: Vec<&str> = reqs
            .iter()
            .filter_map(|r| r.confirm.as_ref().map(|c| c.cap.as_str()))
            .collect();
        let mut marked = idempotency::mark_many(tx, &caps).await?;
        // Each caller's answers, then its notifications in its order.
        let mut answers = Vec::with_capacity(reqs.len());
        let mut notes: Vec<&Notification> = Vec::new();
        let mut at = 0;
        for r in reqs {
            let mine = &changed[at..at + r.changes.len()];
            for ((_, n), _) in r.changes.iter().zip(mine).filter(|(_, c)| **c) {
                notes.extend(n);
            }
            let confirmed = r.confirm.as_ref().is_some_and(|c| {
                let confirmed = marked.remove(c.cap.as_str()) || mine.contains(&true);
                if let Some(reply) = c.reply.as_ref().filter(|_| confirmed) {
                    notes.push(reply);
                }
                confirmed
            });
            answers.push((mine.to_vec(), confirmed));
            at += r.changes.len();
        }
        super::outbox::insert(tx, &notes, crate::domain::now_millis()).await?;
        let changed = events
            .iter()
            .zip(&changed)
            .filter(|(_, c)| **c)
            .map(|(e, _)| *e)
            .collect();
        Ok((answers, changed))
    }
}

fn count_change(e: &Event) {
    let action = match e.action {
        Action::OptOut => "opt_out",
        Action::OptIn => "opt_in",
    };
    metrics::counter!("stopgate_suppression_changes_total", "action" => action, "source" => e.source.as_str())
        .increment(1);
}

#[async_trait]
impl SuppressionStore for PgStore {
    async fn suppression(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> Result<Option<Suppression>> {
        let pool = self.pool();
        let hash = self.subject_key.hash(tenant, number);
        let hash = &hash;
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT suppressed, updated, source, reason, campaign FROM suppressions
                     WHERE tenant = $1 AND number = $2",
                )
                .await?;
            let row = client
                .query_opt(&stmt, &[&tenant.as_str(), &number.as_str()])
                .await?;
            if let Some(r) = row {
                return state(&r, 0).map(Some);
            }
            super::subjects::erased_state(&client, tenant, hash).await
        })
        .await
    }

    async fn suppressed(&self, tenant: &TenantId, numbers: &[PhoneNumber]) -> Result<Vec<bool>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool();
        let wanted: Vec<&str> = numbers.iter().map(PhoneNumber::as_str).collect();
        let hashed: Vec<[u8; 32]> = numbers
            .iter()
            .map(|n| self.subject_key.hash(tenant, n))
            .collect();
        let hashes: Vec<&[u8]> = hashed.iter().map(|h| &h[..]).collect();
        let hashes = &hashes;
        let suppressed: HashSet<String> = retrying(|| async {
            let client = pool.get().await?;
            // A number's own row decides; without one, an erased opt-out
            // (found by the number's hash) holds it suppressed.
            let stmt = client
                .prepare_cached(
                    "SELECT w.n FROM unnest($2::text[], $3::bytea[]) AS w(n, h)
                     LEFT JOIN suppressions s ON s.tenant = $1 AND s.number = w.n
                     WHERE s.suppressed
                        OR (s.number IS NULL AND EXISTS
                            (SELECT 1 FROM erased e WHERE e.tenant = $1 AND e.hash = w.h))",
                )
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &wanted, &hashes])
                .await?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(Failure::from))
                .collect::<PgResult<HashSet<String>>>()
        })
        .await?;
        Ok(numbers
            .iter()
            .map(|n| suppressed.contains(n.as_str()))
            .collect())
    }

    async fn record_notifying(&self, changes: &[(Event, Vec<Notification>)]) -> Result<Vec<bool>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let recorded = self
            .events
            .submit(RecordReq {
                changes: changes.to_vec(),
                confirm: None,
                replay: None,
            })
            .await?;
        Ok(recorded.done()?.0)
    }

    async fn events(&self, tenant: &TenantId, number: &PhoneNumber) -> Result<Vec<Event>> {
        let pool = self.pool();
        retrying(|| async move {
            let client = pool.get().await?;
            let (imported, history) = futures::try_join!(
                client.prepare_cached(
                    "SELECT imported_at FROM suppressions WHERE tenant = $1 AND number = $2"
                ),
                client.prepare_cached(
                    "SELECT at, action, source, campaign, reason, raw_text FROM events
                     WHERE tenant = $1 AND number = $2 ORDER BY seq"
                ),
            )?;
            let key: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                [&tenant.as_str(), &number.as_str()];
            let (imported, rows) = futures::try_join!(
                client.query_opt(&imported, &key),
                client.query(&history, &key)
            )?;
            let mut out = Vec::with_capacity(rows.len() + 1);
            // A bulk import only writes numbers without a row, so it comes
            // before every event of the number.
            if let Some(at) = imported
                .map(|r| r.try_get::<_, Option<i64>>(0))
                .transpose()?
                .flatten()
            {
                let mut e = Event::new(tenant.clone(), number, Action::OptOut, Source::Import);
                e.at = at;
                out.push(e);
            }
            for r in &rows {
                out.push(Event {
                    at: r.try_get(0)?,
                    tenant: tenant.clone(),
                    number: number.clone(),
                    action: parse_action(r.try_get(1)?)?,
                    source: parse_source(r.try_get(2)?)?,
                    campaign: parse_campaign(r.try_get(3)?)?,
                    reason: r.try_get(4)?,
                    text: r.try_get(5)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn suppressed_page(
        &self,
        tenant: &TenantId,
        after: Option<&PhoneNumber>,
        limit: usize,
    ) -> Result<Vec<(PhoneNumber, Suppression)>> {
        let pool = self.pool();
        let after = after.map_or("", |a| a.as_str());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Keyset paging on the primary key: rows added or removed elsewhere
        // never shift a page.
        retrying(|| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT number, suppressed, updated, source, reason, campaign
                     FROM suppressions
                     WHERE tenant = $1 AND number > $2 AND suppressed
                     ORDER BY number LIMIT $3",
                )
                .await?;
            let rows = client
                .query(&stmt, &[&tenant.as_str(), &after, &limit])
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((parse_number(r.try_get(0)?)?, state(r, 1)?));
            }
            Ok(out)
        })
        .await
    }

    async fn bulk_import(&self, tenant: &TenantId) -> Result<Box<dyn BulkImport>> {
        Ok(Box::new(
            super::bulk::PgImport::begin(self.pool(), tenant.clone(), self.import_round).await?,
        ))
    }
}
