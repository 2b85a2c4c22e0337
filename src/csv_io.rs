//! CSV in and out, shared by the suppression list (`suppressions`) and the
//! consent records (`consent`): an import's report and errors, reading the
//! header, and a paged export whose free-text cells are safe to open in a
//! spreadsheet. What a row means stays with each of them.

use std::future::Future;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncRead;

use crate::domain::PhoneNumber;
use crate::store::StoreError;

/// Header names accepted for the number column, lower case.
pub const NUMBER_COLUMNS: &[&str] = &["number", "phone", "phone_number", "msisdn", "mobile", "to"];
/// Bad rows reported in full; beyond this only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read (not counting the header).
    pub rows: u64,
    /// Good rows that changed something: a number newly suppressed; a
    /// consent given, renewed or withdrawn.
    pub imported: u64,
    /// Good rows that changed nothing (already suppressed, repeated in the
    /// file, a withdrawal of nothing).
    pub unchanged: u64,
    /// Bad rows, all of them counted...
    pub failed: u64,
    /// ...and the first [`MAX_REPORTED_ERRORS`] reported.
    pub errors: Vec<RowError>,
}

impl ImportReport {
    /// Counts a bad row, and reports it while there is room.
    pub fn fail(&mut self, line: u64, message: String) {
        self.failed += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(RowError { line, message });
        }
    }

    /// The line of a row or of a read error: csv's position, else the next
    /// line after the rows counted so far.
    pub fn line_of(&self, position: Option<&csv_async::Position>) -> u64 {
        position.map_or(self.rows + 1, |p| p.line())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the CSV has no header row with a number column (one of: {})", NUMBER_COLUMNS.join(", "))]
    NoNumberColumn,
    #[error("the CSV could not be read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A CSV being imported, its header read.
pub struct Import<R> {
    pub reader: csv_async::AsyncReader<R>,
    headers: csv_async::StringRecord,
    /// Where the numbers are.
    pub number: usize,
}

impl<R: AsyncRead + Unpin + Send> Import<R> {
    /// Reads the header row (cells trimmed, rows of any length); a file
    /// without a number column is refused before any row is read.
    pub async fn open(reader: R) -> Result<Import<R>, ImportError> {
        let mut reader = csv_async::AsyncReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv_async::Trim::All)
            .create_reader(reader);
        let headers = reader
            .headers()
            .await
            .map_err(|e| ImportError::Unreadable(e.to_string()))?
            .clone();
        let mut import = Import {
            reader,
            headers,
            number: 0,
        };
        import.number = import
            .column(NUMBER_COLUMNS)
            .ok_or(ImportError::NoNumberColumn)?;
        Ok(import)
    }

    /// The first column with one of these names, in any case (a byte order
    /// mark before the first one is ignored).
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        self.headers.iter().position(|h| {
            names.contains(
                &h.trim_start_matches('\u{feff}')
                    .to_ascii_lowercase()
                    .as_str(),
            )
        })
    }
}

/// A free-text cell (reason, campaign, proof) as an export writes it, safe to
/// open in a spreadsheet (OWASP "CSV injection"):
/// - every control character (NUL, ESC, tab, line breaks, DEL, C1) is
///   replaced by a space: never written, and words stay apart;
/// - a cell a spreadsheet would read as a formula gets a leading `'`: one
///   starting with `=`, `+`, `-`, `@`, tab or CR, or with one of the first
///   four after leading spaces (some spreadsheets trim them first).
///
/// Only free text: the number column is E.164 (`+33...`) and must stay
/// re-importable, so it is never touched. Re-importing an export keeps the
/// `'` in the text (it is then not added twice).
pub fn export_text_cell(text: &str) -> std::borrow::Cow<'_, str> {
    const FORMULA: [char; 4] = ['=', '+', '-', '@'];
    // Leading control characters count as the spaces they become.
    let formula = text.starts_with(['\t', '\r'])
        || text
            .trim_start_matches(|c: char| c == ' ' || c.is_control())
            .starts_with(FORMULA);
    if !formula && !text.contains(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 1);
    if formula {
        out.push('\'');
    }
    out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
    std::borrow::Cow::Owned(out)
}

/// Streams `header`, then the store's pages of `(number, state)` as CSV rows,
/// `page` at a time: `fetch(after)` reads the page after a number (`None`:
/// the first), `row` writes one. Nothing more than a page is held.
pub fn paged_export<V, F, Fut, W>(
    header: &'static str,
    page: usize,
    fetch: F,
    row: W,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send
where
    V: Send + 'static,
    F: Fn(Option<PhoneNumber>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<(PhoneNumber, V)>, StoreError>> + Send + 'static,
    W: Fn(&mut csv::Writer<Vec<u8>>, &PhoneNumber, &V) -> csv::Result<()> + Send + Sync + 'static,
{
    let fetch = std::sync::Arc::new(fetch);
    let row = std::sync::Arc::new(row);
    let pages = futures::stream::unfold(Some(None::<PhoneNumber>), move |cursor| {
        let fetch = fetch.clone();
        let row = row.clone();
        async move {
            let after = cursor?;
            let rows = match fetch(after).await {
                Ok(p) => p,
                Err(e) => return Some((Err(e), None)),
            };
            let next = (rows.len() == page)
                .then(|| rows.last().map(|(n, _)| n.clone()))
                .flatten();
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            for (number, state) in &rows {
                if let Err(e) = row(&mut w, number, state) {
                    return Some((Err(StoreError::Unavailable(e.to_string())), None));
                }
            }
            let bytes = w
                .into_inner()
                .map_err(|e| StoreError::Unavailable(e.to_string()));
            Some((bytes.map(Bytes::from), next.map(Some)))
        }
    });
    futures::stream::once(async move { Ok(Bytes::from_static(header.as_bytes())) }).chain(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_cells_are_neither_formulas_nor_control_characters() {
        for (raw, written) in [
            (
                r#"=HYPERLINK("http://evil")"#,
                r#"'=HYPERLINK("http://evil")"#,
            ),
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("@SUM(1)", "'@SUM(1)"),
            ("+1+1", "'+1+1"),
            ("-2", "'-2"),
            ("\t=1+1", "' =1+1"),
            ("\rx", "' x"),
            ("  =1", "'  =1"),
            ("\0=1", "' =1"),
            ("a\0b\u{1b}[31mc", "a b [31mc"),
            ("line\nbreak\u{7f}\u{85}", "line break  "),
            ("asked by phone", "asked by phone"),
            ("don't send - ever", "don't send - ever"),
            ("'=already quoted", "'=already quoted"),
            ("", ""),
        ] {
            assert_eq!(export_text_cell(raw), written, "{raw:?}");
        }
    }
}
