//! Moving suppression lists in and out: CSV import and export, shared by the
//! HTTP API and the `stopgate suppressions` CLI.
//!
//! Both stream: an import reads rows as they arrive and writes them in
//! batches (one transaction and one group-commit flush per batch), and an
//! export pages through the store, so neither holds a whole file in memory.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncRead;

use crate::csv_io::{export_text_cell, paged_export, Import};
pub use crate::csv_io::{ImportError, ImportReport, RowError};
use crate::domain::{Action, Event, PhoneNumber, Source, TenantId};
use crate::store::{Store, StoreError};

/// Rows with a state of their own written per transaction.
const BATCH: usize = 2_000;
/// Rows read, then parsed together on the blocking pool.
const PARSE_BATCH: usize = 50_000;
/// Numbers per page of an export.
const PAGE: usize = 5_000;

/// One data row as read, before parsing.
struct Row {
    line: u64,
    number: String,
    reason: Option<String>,
}

/// What parsing a batch of rows left for the async side.
#[derive(Default)]
struct Parsed {
    failed: Vec<(u64, String)>,
    /// Rows recorded one by one: they carry a reason, or the number has a
    /// state of its own that says "subscribed".
    individual: Vec<(PhoneNumber, Option<String>)>,
    /// Plain rows, for the bulk import.
    plain: Vec<PhoneNumber>,
}

/// Imports a CSV with a header row: a number column (any spelling of the
/// number) and an optional `reason`. Good rows are kept even when others are
/// bad; everything imported is durable when this returns.
///
/// Rows without a reason go to the store's bulk import (sorted, packed);
/// rows with one, and numbers that already have a state of their own, are
/// recorded as one event each. Parsing (libphonenumber) is the costly part,
/// so batches of rows are parsed on the blocking pool, on every core, while
/// the next batch is read.
pub async fn import_csv<R>(
    store: &dyn Store,
    tenant: &TenantId,
    reader: R,
) -> Result<ImportReport, ImportError>
where
    R: AsyncRead + Unpin + Send,
{
    let mut csv = Import::open(reader).await?;
    let (number_col, reason_col) = (csv.number, csv.column(&["reason"]));

    let mut report = ImportReport::default();
    let mut bulk = store.bulk_import(tenant).await?;
    // A batch is parsed on the blocking pool while the next one is read.
    let mut in_flight = tokio::task::spawn_blocking(Parsed::default);
    let mut records = csv.reader.records();
    let mut done = false;
    while !done {
        let mut rows = Vec::with_capacity(PARSE_BATCH);
        while rows.len() < PARSE_BATCH {
            let Some(record) = records.next().await else {
                done = true;
                break;
            };
            report.rows += 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    report.fail(report.line_of(e.position()), format!("unreadable row: {e}"));
                    continue;
                }
            };
            rows.push(Row {
                line: report.line_of(record.position()),
                number: record.get(number_col).unwrap_or("").to_string(),
                reason: reason_col
                    .and_then(|c| record.get(c))
                    .filter(|r| !r.is_empty())
                    .map(|r| r.chars().take(200).collect()),
            });
        }
        let mut parsed = joined(in_flight.await)?;
        bulk.add(std::mem::take(&mut parsed.plain)).await?;
        apply(store, tenant, parsed, &mut report).await?;
        in_flight = tokio::task::spawn_blocking(move || parse_rows(rows));
    }
    let mut parsed = joined(in_flight.await)?;
    bulk.add(std::mem::take(&mut parsed.plain)).await?;
    apply(store, tenant, parsed, &mut report).await?;
    let counts = bulk.finish().await?;
    report.imported += counts.imported;
    report.unchanged += counts.unchanged;
    let parsed = Parsed {
        individual: counts.individual.into_iter().map(|n| (n, None)).collect(),
        ..Parsed::default()
    };
    apply(store, tenant, parsed, &mut report).await?;
    store.durable().await?;
    Ok(report)
}

fn joined(r: Result<Parsed, tokio::task::JoinError>) -> Result<Parsed, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("import task: {e}")))
}

/// Parses a batch on every core.
fn parse_rows(rows: Vec<Row>) -> Parsed {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = rows.len().div_ceil(threads).max(1);
    let numbers: Vec<Result<PhoneNumber, String>> = std::thread::scope(|s| {
        let parts: Vec<_> = rows
            .chunks(per_thread)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| PhoneNumber::parse(&r.number).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("parsing never panics"))
            .collect()
    });
    let mut parsed = Parsed::default();
    for (row, number) in rows.into_iter().zip(numbers) {
        match number {
            Err(message) => parsed.failed.push((row.line, message)),
            Ok(number) if row.reason.is_some() => parsed.individual.push((number, row.reason)),
            Ok(number) => parsed.plain.push(number),
        }
    }
    parsed
}

/// Reports the bad rows and records the individual ones, a batch per transaction.
async fn apply(
    store: &dyn Store,
    tenant: &TenantId,
    parsed: Parsed,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    debug_assert!(parsed.plain.is_empty(), "plain rows go to the bulk import");
    for (line, message) in parsed.failed {
        report.fail(line, message);
    }
    for chunk in parsed.individual.chunks(BATCH) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|(number, reason)| {
                let mut e = Event::new(tenant.clone(), number, Action::OptOut, Source::Import);
                e.reason = reason.clone();
                e
            })
            .collect();
        let changed = store.record_many(&events).await? as u64;
        store.durable().await?;
        report.imported += changed;
        report.unchanged += events.len() as u64 - changed;
    }
    Ok(())
}

/// The CSV header of an export; `import_csv` reads it back.
pub const EXPORT_HEADER: &str = "number,country,source,updated,reason,campaign\n";

/// Streams every suppressed number of a tenant as CSV, page by page.
pub fn export_csv(
    store: Arc<dyn Store>,
    tenant: TenantId,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send {
    paged_export(
        EXPORT_HEADER,
        PAGE,
        move |after| {
            let (store, tenant) = (store.clone(), tenant.clone());
            async move { store.suppressed_page(&tenant, after.as_ref(), PAGE).await }
        },
        |w, number, s| {
            w.write_record([
                number.as_str(),
                number.country().as_str(),
                s.source.as_str(),
                &crate::domain::rfc3339(s.updated),
                &export_text_cell(s.reason.as_deref().unwrap_or("")),
                &export_text_cell(s.campaign.as_ref().map_or("", |c| c.as_str())),
            ])
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, SuppressionStore};

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[tokio::test]
    async fn import_keeps_good_rows_and_reports_bad_ones_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 16).unwrap();
        let csv = "Phone,reason\n+33612345678,asked\n06 12 34 56 78,\n0033 6 98 76 54 32,\n+33612345678,again\nnot a number,\n";
        let report = import_csv(&store, &t(), csv.as_bytes()).await.unwrap();
        assert_eq!(
            (
                report.rows,
                report.imported,
                report.unchanged,
                report.failed
            ),
            (5, 2, 1, 2)
        );
        let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 6]);
        let n = |s: &str| PhoneNumber::parse(s).unwrap();
        let state = store.suppression(&t(), &n("+33698765432")).await.unwrap();
        assert!(state.unwrap().suppressed);
        let state = store
            .suppression(&t(), &n("+33612345678"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.reason.as_deref(), Some("asked"));
    }

    #[tokio::test]
    async fn a_csv_without_a_number_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 16).unwrap();
        let err = import_csv(&store, &t(), "name,email\nx,y\n".as_bytes())
            .await
            .unwrap_err();
        assert!(matches!(err, ImportError::NoNumberColumn));
    }

    #[tokio::test]
    async fn export_reimports_to_the_same_set() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 16).unwrap());
        let numbers: Vec<String> = (0..10_000).map(|i| format!("+1212555{i:04}")).collect();
        let csv = format!("number\n{}\n", numbers.join("\n"));
        import_csv(store.as_ref(), &t(), csv.as_bytes())
            .await
            .unwrap();
        let chunks: Vec<Bytes> = export_csv(store.clone(), t())
            .map(|c| c.unwrap())
            .collect()
            .await;
        let exported: Vec<u8> = chunks.concat();
        assert!(exported.starts_with(EXPORT_HEADER.as_bytes()));

        let dir2 = tempfile::tempdir().unwrap();
        let other = SledStore::open(&dir2.path().join("db"), 16).unwrap();
        let report = import_csv(&other, &t(), exported.as_slice()).await.unwrap();
        assert_eq!(
            (report.rows, report.imported, report.failed),
            (10_000, 10_000, 0)
        );
        let a = store.suppressed_page(&t(), None, 20_000).await.unwrap();
        let b = other.suppressed_page(&t(), None, 20_000).await.unwrap();
        assert_eq!(
            a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            b.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
    }
}
