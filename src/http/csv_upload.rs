//! CSV imports over HTTP (`POST /v1/suppressions/import`,
//! `POST /v1/consents/import`): the body as a stream, the report as JSON,
//! and an import's errors as API errors. What the rows mean is the core's.

use axum::extract::Request;
use futures::TryStreamExt;
use serde::Serialize;
use tokio::io::AsyncRead;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::require_content_type;
use crate::csv_io::{ImportError, ImportReport};

/// The body of a `text/csv` upload as a reader: `415` for another media
/// type. A list of millions of rows may take longer than the body deadline
/// to upload, so the deadline applies between chunks instead.
pub fn csv_body(req: Request) -> Result<impl AsyncRead + Unpin + Send, ApiError> {
    require_content_type(req.headers(), "text/csv")?;
    if let Some(pace) = req.extensions().get::<crate::http::serve::BodyPace>() {
        pace.streaming();
    }
    let stream = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    Ok(tokio_util::io::StreamReader::new(stream))
}

/// An import's failure as the API answers it; `msg` is the route error's text.
pub fn import_error(e: ImportError, msg: String) -> ApiError {
    match e {
        ImportError::Store(e) => ApiError::internal(e),
        ImportError::NoNumberColumn => ApiError::unprocessable("invalid_csv", msg),
        ImportError::Unreadable(_) => ApiError::bad_request("invalid_csv", msg),
    }
}

#[derive(Serialize, ToSchema)]
pub struct RowErrorJson {
    line: u64,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ImportJson {
    /// Data rows read (not counting the header).
    rows: u64,
    /// Rows that changed something: a number newly suppressed; a consent
    /// given, renewed or withdrawn.
    imported: u64,
    /// Good rows that changed nothing: already suppressed, repeated in the
    /// file, a withdrawal of nothing.
    unchanged: u64,
    failed: u64,
    /// The first 100 bad rows, by line number (the header is line 1).
    errors: Vec<RowErrorJson>,
}

impl From<ImportReport> for ImportJson {
    fn from(r: ImportReport) -> ImportJson {
        ImportJson {
            rows: r.rows,
            imported: r.imported,
            unchanged: r.unchanged,
            failed: r.failed,
            errors: r
                .errors
                .into_iter()
                .map(|e| RowErrorJson {
                    line: e.line,
                    message: e.message,
                })
                .collect(),
        }
    }
}
