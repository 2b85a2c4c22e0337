//! `stopgate store copy`: moves an embedded (sled) store into an empty
//! PostgreSQL database, then checks that every kind of record arrived.
//!
//! What moves: suppressions with their whole history (each number's own row
//! and events, and the numbers only a bulk import holds, with that import's
//! time), links, marketing sends (attribution), possible opt-outs (with
//! their ids), insights counters, consents with their history, erased
//! opt-outs and the erasures' audit (with the key their hashes were made
//! with, which replaces the target's). Idempotency records are not moved:
//! they only matter for 24 hours, so retries of requests made just before
//! the move run again. Everything is written with `COPY` in one
//! transaction: the target has all of it or none.

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use indicatif::ProgressBar;
use std::collections::HashMap;

use super::postgres::{Failure, PgResult};
use super::{PgStore, Result, SledStore, StoreError};

/// Bytes buffered before a COPY message.
const FLUSH_AT: usize = 1 << 20;
/// Bulk-imported numbers read from sled per page.
const BULK_PAGE: usize = 100_000;

/// Source and target counts of one kind of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindCount {
    pub kind: &'static str,
    pub sled: u64,
    pub postgres: u64,
}

/// What the copy moved, kind by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub kinds: Vec<KindCount>,
}

impl CopyReport {
    pub fn matches(&self) -> bool {
        self.kinds.iter().all(|k| k.sled == k.postgres)
    }
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<26} {:>12} {:>12}", "kind", "sled", "postgres")?;
        for k in &self.kinds {
            writeln!(
                f,
                "{:<26} {:>12} {:>12}{}",
                k.kind,
                k.sled,
                k.postgres,
                if k.sled == k.postgres {
                    ""
                } else {
                    "  MISMATCH"
                }
            )?;
        }
        Ok(())
    }
}

/// One field of a COPY text row: `\N` for NULL, else escaped.
fn field(buf: &mut BytesMut, value: Option<&str>) {
    let Some(v) = value else {
        buf.put_slice(b"\\N");
        return;
    };
    for b in v.bytes() {
        match b {
            b'\\' => buf.put_slice(b"\\\\"),
            b'\t' => buf.put_slice(b"\\t"),
            b'\n' => buf.put_slice(b"\\n"),
            b'\r' => buf.put_slice(b"\\r"),
            other => buf.put_u8(other),
        }
    }
}

fn row(buf: &mut BytesMut, fields: &[Option<&str>]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b'\t');
        }
        field(buf, *f);
    }
    buf.put_u8(b'\n');
}

/// A text array literal, `{"a","b"}`.
fn array(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// Rows into one table with COPY, flushed a megabyte at a time.
struct Copy<'a, 'b> {
    tx: &'a tokio_postgres::Transaction<'b>,
    sql: &'static str,
    buf: BytesMut,
    sink: Option<std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>>,
    rows: u64,
}

impl<'a, 'b> Copy<'a, 'b> {
    fn new(tx: &'a tokio_postgres::Transaction<'b>, sql: &'static str) -> Copy<'a, 'b> {
        Copy {
            tx,
            sql,
            buf: BytesMut::with_capacity(FLUSH_AT * 2),
            sink: None,
            rows: 0,
        }
    }

    async fn push(&mut self, fields: &[Option<&str>]) -> PgResult<()> {
        row(&mut self.buf, fields);
        self.rows += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> PgResult<()> {
        if self.sink.is_none() {
            self.sink = Some(Box::pin(self.tx.copy_in(self.sql).await?));
        }
        let sink = self.sink.as_mut().expect("opened above");
        sink.send(self.buf.split().freeze()).await?;
        Ok(())
    }

    async fn finish(mut self) -> PgResult<u64> {
        if !self.buf.is_empty() || self.sink.is_none() {
            self.flush().await?;
        }
        let sink = self.sink.as_mut().expect("opened by flush");
        sink.as_mut().finish().await?;
        Ok(self.rows)
    }
}

fn src<T>(r: Result<T>) -> PgResult<T> {
    r.map_err(Failure::Store)
}

/// Copies everything `from` holds into `to`, which must hold no stopgate
/// data yet, and verifies the counts. `bar` moves one step per record.
pub async fn copy(from: &SledStore, to: &PgStore, bar: &ProgressBar) -> Result<CopyReport> {
    Ok(copy_inner(from, to, bar).await?)
}

async fn copy_inner(from: &SledStore, to: &PgStore, bar: &ProgressBar) -> PgResult<CopyReport> {
    let from = src(from.export())?;
    let from = from.as_ref();
    let lens = from.export_lens();
    let bulk = src(from.export_bulk_len())?;
    bar.set_length(
        lens.states
            + bulk
            + lens.events
            + lens.links
            + lens.sends
            + lens.possible_optouts
            + lens.counters
            + lens.consent_events
            + lens.erased
            + lens.erasures,
    );
    let mut client = to.pool().get().await?;
    let held: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM suppressions) OR EXISTS (SELECT 1 FROM events)
                 OR EXISTS (SELECT 1 FROM links) OR EXISTS (SELECT 1 FROM sends)
                 OR EXISTS (SELECT 1 FROM possible_optouts) OR EXISTS (SELECT 1 FROM insights)
                 OR EXISTS (SELECT 1 FROM consents) OR EXISTS (SELECT 1 FROM consent_events)
                 OR EXISTS (SELECT 1 FROM erased) OR EXISTS (SELECT 1 FROM erasures)",
            &[],
        )
        .await?
        .try_get(0)?;
    if held {
        return Err(Failure::Store(StoreError::Unavailable(
            "the target database already holds stopgate data: copy into an empty database (migrated, nothing written)".into(),
        )));
    }
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;

    // Events first: each number's are renumbered 1, 2, ... in order, and
    // its row's `seq` is how many it has.
    let mut seqs: HashMap<(String, String), i64> = HashMap::new();
    let mut events = Copy::new(
        &tx,
        "COPY events (tenant, number, seq, at, action, source, campaign, reason, raw_text) FROM STDIN",
    );
    for e in from.export_events() {
        let e = src(e)?;
        let seq = seqs
            .entry((e.tenant.as_str().to_string(), e.number.as_str().to_string()))
            .or_default();
        *seq += 1;
        let action = match e.action {
            crate::domain::Action::OptOut => "opt_out",
            crate::domain::Action::OptIn => "opt_in",
        };
        events
            .push(&[
                Some(e.tenant.as_str()),
                Some(e.number.as_str()),
                Some(&seq.to_string()),
                Some(&e.at.to_string()),
                Some(action),
                Some(e.source.as_str()),
                e.campaign.as_ref().map(|c| c.as_str()),
                e.reason.as_deref(),
                e.text.as_deref(),
            ])
            .await?;
        bar.inc(1);
    }
    let events_copied = events.finish().await?;

    let mut rows = Copy::new(
        &tx,
        "COPY suppressions (tenant, number, suppressed, updated, source, reason, campaign, imported_at, seq) FROM STDIN",
    );
    for s in from.export_states() {
        let s = src(s)?;
        // A number imported in bulk before it got a row of its own keeps
        // that import at the start of its history.
        let imported_at = src(from.export_imported_at(&s.tenant, &s.number))?;
        let seq = seqs
            .get(&(s.tenant.clone(), s.number.clone()))
            .copied()
            .unwrap_or(0);
        rows.push(&[
            Some(&s.tenant),
            Some(&s.number),
            Some(if s.state.suppressed { "t" } else { "f" }),
            Some(&s.state.updated.to_string()),
            Some(s.state.source.as_str()),
            s.state.reason.as_deref(),
            s.state.campaign.as_ref().map(|c| c.as_str()),
            imported_at.map(|a| a.to_string()).as_deref(),
            Some(&seq.to_string()),
        ])
        .await?;
        bar.inc(1);
    }
    let mut bulk_only = 0u64;
    for tenant in src(from.export_bulk_tenants())? {
        let mut after: Option<String> = None;
        loop {
            let page = src(from.export_bulk_page(&tenant, after.as_deref(), BULK_PAGE))?;
            for b in &page {
                let at = b.at.to_string();
                rows.push(&[
                    Some(&b.tenant),
                    Some(&b.number),
                    Some("t"),
                    Some(&at),
                    Some("import"),
                    None,
                    None,
                    Some(&at),
                    Some("0"),
                ])
                .await?;
            }
            bulk_only += page.len() as u64;
            // The chunks also hold numbers that have a row: counted above.
            bar.inc(page.len() as u64);
            match page.last() {
                Some(b) if page.len() == BULK_PAGE => after = Some(b.number.clone()),
                _ => break,
            }
        }
    }
    rows.finish().await?;
    // Numbers in the chunks that have a row of their own were not copied
    // from the chunks: the bar still counted the chunks' length.
    bar.set_position(bar.position().max(lens.events + lens.states + bulk));

    let mut links = Copy::new(
        &tx,
        "COPY links (code, tenant, number, campaign, created) FROM STDIN",
    );
    for l in from.export_links() {
        let (code, l) = src(l)?;
        links
            .push(&[
                Some(&code),
                Some(l.tenant.as_str()),
                Some(l.number.as_str()),
                Some(l.campaign.as_ref().map_or("", |c| c.as_str())),
                Some(&l.created.to_string()),
            ])
            .await?;
        bar.inc(1);
    }
    let links_copied = links.finish().await?;

    let mut sends = Copy::new(
        &tx,
        "COPY sends (number, shortcode, tenant, at, campaign) FROM STDIN",
    );
    for s in from.export_sends() {
        let s = src(s)?;
        sends
            .push(&[
                Some(&s.number),
                Some(&s.shortcode),
                Some(&s.tenant),
                Some(&s.send.at.to_string()),
                s.send.campaign.as_ref().map(|c| c.as_str()),
            ])
            .await?;
        bar.inc(1);
    }
    let sends_copied = sends.finish().await?;

    let mut reviews = Copy::new(
        &tx,
        "COPY possible_optouts (id, at, number, shortcode, tenants, raw_text) FROM STDIN",
    );
    let mut max_id = 0u64;
    for p in from.export_possible_optouts() {
        let (id, p) = src(p)?;
        max_id = max_id.max(id);
        let tenants: Vec<&str> = p.tenants.iter().map(|t| t.as_str()).collect();
        reviews
            .push(&[
                Some(&id.to_string()),
                Some(&p.at.to_string()),
                Some(p.number.as_str()),
                Some(p.shortcode.as_str()),
                Some(&array(&tenants)),
                Some(&p.text),
            ])
            .await?;
        bar.inc(1);
    }
    let reviews_copied = reviews.finish().await?;
    if max_id > 0 {
        // New ids continue after the copied ones.
        tx.execute(
            "SELECT setval('possible_optout_ids', $1)",
            &[&super::postgres::to_i64(max_id)],
        )
        .await?;
    }

    let mut counters = Copy::new(
        &tx,
        "COPY insights (tenant, campaign, counter, n) FROM STDIN",
    );
    for c in from.export_counters() {
        let c = src(c)?;
        counters
            .push(&[
                Some(&c.tenant),
                Some(&c.campaign),
                Some(&c.counter),
                Some(&c.n.to_string()),
            ])
            .await?;
        bar.inc(1);
    }
    let counters_copied = counters.finish().await?;
    let consents_copied = copy_consents(&tx, from, bar).await?;
    tx.commit().await?;
    tracing::debug!(
        events_copied,
        links_copied,
        sends_copied,
        reviews_copied,
        counters_copied,
        consents_copied,
        "copied"
    );

    // The verification reads the target back, independently of what the
    // COPY streams said they sent.
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let n: i64 = client.query_one(sql, &[]).await?.try_get(0)?;
            Ok::<u64, Failure>(n as u64)
        }
    };
    let kinds = vec![
        KindCount {
            kind: "suppressions (own rows)",
            sled: lens.states,
            postgres: count(
                "SELECT count(*) FROM suppressions WHERE seq > 0 OR imported_at IS NULL",
            )
            .await?,
        },
        KindCount {
            kind: "bulk-imported numbers",
            sled: bulk_only,
            postgres: count(
                "SELECT count(*) FROM suppressions WHERE seq = 0 AND imported_at IS NOT NULL",
            )
            .await?,
        },
        KindCount {
            kind: "events",
            sled: lens.events,
            postgres: count("SELECT count(*) FROM events").await?,
        },
        KindCount {
            kind: "links",
            sled: lens.links,
            postgres: count("SELECT count(*) FROM links").await?,
        },
        KindCount {
            kind: "marketing sends",
            sled: lens.sends,
            postgres: count("SELECT count(*) FROM sends").await?,
        },
        KindCount {
            kind: "possible opt-outs",
            sled: lens.possible_optouts,
            postgres: count("SELECT count(*) FROM possible_optouts").await?,
        },
        KindCount {
            kind: "insights counters",
            sled: lens.counters,
            postgres: count("SELECT count(*) FROM insights").await?,
        },
        KindCount {
            kind: "consents",
            sled: consents_copied,
            postgres: count("SELECT count(*) FROM consents").await?,
        },
        KindCount {
            kind: "consent events",
            sled: lens.consent_events,
            postgres: count("SELECT count(*) FROM consent_events").await?,
        },
        KindCount {
            kind: "erased opt-outs",
            sled: lens.erased,
            postgres: count("SELECT count(*) FROM erased").await?,
        },
        KindCount {
            kind: "erasures",
            sled: lens.erasures,
            postgres: count("SELECT count(*) FROM erasures").await?,
        },
    ];
    Ok(CopyReport { kinds })
}

/// Consents and their history, erased opt-outs and the erasures' audit,
/// and the key the erased opt-outs are hashed with (without it they would
/// no longer match their numbers). Returns the consent records copied.
async fn copy_consents(
    tx: &tokio_postgres::Transaction<'_>,
    from: &super::sled::Live,
    bar: &ProgressBar,
) -> PgResult<u64> {
    let key = from.export_subject_key();
    tx.execute(
        "INSERT INTO store_secrets (name, value) VALUES ('subject_key', $1)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[&&key[..]],
    )
    .await?;
    let bytea = |h: &[u8; 32]| format!("\\x{}", hex::encode(h));
    let time = |t: Option<i64>| t.map(|t| t.to_string());
    let mut consents = Copy::new(
        tx,
        "COPY consents (tenant, number, list, status, since, source, given_at, request_at,
            request_expires, request_via, request_code, request_answered, proof, recorded_by,
            updated) FROM STDIN",
    );
    for c in from.export_consents() {
        let c = src(c)?;
        let s = &c.state;
        let r = s.request.as_ref();
        let via = r.map(|r| serde_json::to_string(&r.via).expect("a channel serializes"));
        let code = match r.map(|r| &r.via) {
            Some(crate::domain::RequestVia::Link { code }) => Some(code.as_str()),
            _ => None,
        };
        consents
            .push(&[
                Some(&c.tenant),
                Some(&c.number),
                Some(&c.list),
                Some(s.status.as_str()),
                Some(&s.since.to_string()),
                Some(s.source.as_str()),
                time(s.given_at).as_deref(),
                time(r.map(|r| r.at)).as_deref(),
                time(r.map(|r| r.expires)).as_deref(),
                via.as_deref(),
                code,
                time(r.and_then(|r| r.answered)).as_deref(),
                s.proof.as_deref(),
                s.recorded_by.as_deref(),
                Some(&s.updated.to_string()),
            ])
            .await?;
    }
    let copied = consents.finish().await?;
    let mut events = Copy::new(
        tx,
        "COPY consent_events (id, tenant, number, list, at, action, source, proof, recorded_by,
            expires, via) FROM STDIN",
    );
    let mut id = 0i64;
    for e in from.export_consent_events() {
        let e = src(e)?;
        id += 1;
        let via = e
            .via
            .as_ref()
            .map(|v| serde_json::to_string(v).expect("a channel serializes"));
        events
            .push(&[
                Some(&id.to_string()),
                Some(e.tenant.as_str()),
                Some(e.number.as_str()),
                Some(e.list.as_str()),
                Some(&e.at.to_string()),
                Some(e.action.as_str()),
                Some(e.source.as_str()),
                e.proof.as_deref(),
                e.recorded_by.as_deref(),
                time(e.expires).as_deref(),
                via.as_deref(),
            ])
            .await?;
        bar.inc(1);
    }
    events.finish().await?;
    if id > 0 {
        tx.execute("SELECT setval('consent_event_ids', $1)", &[&id])
            .await?;
    }
    let mut erased = Copy::new(
        tx,
        "COPY erased (tenant, hash, since, source, erased) FROM STDIN",
    );
    for e in from.export_erased() {
        let e = src(e)?;
        erased
            .push(&[
                Some(&e.tenant),
                Some(&bytea(&e.hash)),
                Some(&e.since.to_string()),
                Some(e.source.as_str()),
                Some(&e.erased.to_string()),
            ])
            .await?;
        bar.inc(1);
    }
    erased.finish().await?;
    let mut erasures = Copy::new(tx, "COPY erasures (tenant, hash, id, erasure) FROM STDIN");
    let mut id = 0i64;
    for e in from.export_erasures() {
        let (tenant, hash, erasure) = src(e)?;
        id += 1;
        let record = serde_json::to_string(&erasure).expect("an erasure serializes");
        erasures
            .push(&[
                Some(&tenant),
                Some(&bytea(&hash)),
                Some(&id.to_string()),
                Some(&record),
            ])
            .await?;
        bar.inc(1);
    }
    erasures.finish().await?;
    if id > 0 {
        tx.execute("SELECT setval('erasure_ids', $1)", &[&id])
            .await?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_copy_reads_as_structure() {
        let mut buf = BytesMut::new();
        row(
            &mut buf,
            &[Some("a\tb"), None, Some("line\nbreak\\"), Some("cr\r")],
        );
        assert_eq!(&buf[..], b"a\\tb\t\\N\tline\\nbreak\\\\\tcr\\r\n");
        assert_eq!(array(&["acme", "b\"e"]), r#"{"acme","b\"e"}"#);
    }
}
