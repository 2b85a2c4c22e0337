//! Webhooks acted on once: a request a provider sends again (its retry, or a
//! captured request replayed) gets its first answer back and changes nothing
//! more. Keyed by what identifies the request: the native signature's MAC,
//! a provider's message id. The records live in the store beside the
//! tenants' idempotency records (scope [`crate::domain::TenantId::webhooks`]), so every
//! node of a cluster sees them, and expire with them (24 h).

use std::future::Future;

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::store::{idempotency, Attempt, Once, Replay, Store};

/// Runs `work` unless `key` was seen: then its first answer is returned.
/// `body` identifies the content, so that a key reused for another content
/// (a provider id given twice) is refused instead of answered wrongly.
/// A failed `work` leaves no record: the sender's retry does the work.
pub async fn once<F, Fut>(
    store: &dyn Store,
    key: &str,
    body: &[u8],
    work: F,
) -> Result<Vec<u8>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<u8>, ApiError>>,
{
    let work = || async { Ok::<_, ApiError>(((), work().await?)) };
    match idempotency::once(store, &record(key, body), work).await? {
        Once::Done { answer, .. } => Ok(answer),
        Once::Seen(seen) => answered(seen),
    }
}

/// The replay record of the request keyed `key` with content `body`, for
/// work that keeps it in its own transaction (`Store::report_once`).
pub fn record(key: &str, body: &[u8]) -> Replay {
    Replay {
        key: key.to_string(),
        fingerprint: Sha256::digest(body).into(),
    }
}

/// What a request whose replay record was not fresh is answered: its first
/// answer, or why it is not acted on now.
pub fn answered(seen: Attempt) -> Result<Vec<u8>, ApiError> {
    match seen {
        Attempt::Done(answer) => {
            metrics::counter!("stopgate_webhook_replays_total").increment(1);
            tracing::info!("webhook seen before: its first answer is returned");
            Ok(answer)
        }
        Attempt::Mismatch => Err(ApiError::unprocessable(
            "id_reused",
            "this message id was already used for another message",
        )),
        // In progress (`Fresh` is never a replay's answer: it is treated
        // the same, and the sender retries).
        Attempt::InProgress | Attempt::Fresh => Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "in_progress",
                "the same request is being handled; retry",
            )
        }),
    }
}

/// A replay key for a provider's own id: short ids as they are, long ones hashed.
pub fn id_key(kind: &str, id: &str) -> String {
    if id.len() <= 96 {
        format!("{kind}:{id}")
    } else {
        format!("{kind}#{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}
