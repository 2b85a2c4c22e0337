//! Idempotency records: a `reference` makes a send request safe to retry.

use std::future::Future;

use async_trait::async_trait;

use super::{Result, StoreError};
use crate::domain::{TenantId, UnixMillis};

/// The fingerprint of a record kept by [`IdempotencyStore::mark_once`].
pub const MARK: [u8; 32] = [0u8; 32];

/// A request still marked in progress after this long was abandoned by a
/// crash; a retry may take it over.
pub const STALE_ATTEMPT_MS: i64 = 60_000;

/// A webhook's replay record (see `http::replay`): its key, in scope
/// [`TenantId::webhooks`], and the fingerprint of the content it was
/// first sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub key: String,
    pub fingerprint: [u8; 32],
}

/// Work done under a [`Replay`] record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// Done now: its result, and the answer kept for a replay.
    Done { value: T, answer: Vec<u8> },
    /// Not done: the record was in progress, done (with its first answer)
    /// or held by other content. Never [`Attempt::Fresh`].
    Seen(Attempt),
}

impl<T> Once<T> {
    /// The value of work done without a replay record, which is never
    /// [`Once::Seen`].
    pub fn done(self) -> Result<T> {
        match self {
            Once::Done { value, .. } => Ok(value),
            Once::Seen(_) => Err(StoreError::Corrupt(
                "work without a replay record was not done".into(),
            )),
        }
    }
}

/// Runs `work` under a webhook's replay record, one write after the
/// other: the record is begun, and unless it was seen before (then
/// nothing is done: [`Once::Seen`]) `work` runs and the answer it gives is
/// kept. A failed `work` leaves no record: the sender's retry does it.
/// (A backend keeps the record in the work's own transaction where it can:
/// `Store::report_once`, `Store::record_once`.)
pub async fn once<S, T, E, F, Fut>(
    store: &S,
    replay: &Replay,
    work: F,
) -> std::result::Result<Once<T>, E>
where
    S: IdempotencyStore + ?Sized,
    E: From<StoreError>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<(T, Vec<u8>), E>>,
{
    let scope = TenantId::webhooks();
    let (key, fingerprint) = (replay.key.as_str(), &replay.fingerprint);
    match store.begin_request(&scope, key, fingerprint).await? {
        Attempt::Fresh => {}
        seen => return Ok(Once::Seen(seen)),
    }
    match work().await {
        Ok((value, answer)) => {
            if let Err(e) = store
                .finish_request(&scope, key, fingerprint, &answer)
                .await
            {
                // The work is done; a replay within the stale window gets 503.
                tracing::error!(error = %e, "could not keep a webhook's answer");
            }
            Ok(Once::Done { value, answer })
        }
        Err(e) => {
            if let Err(e) = store.abandon_request(&scope, key).await {
                tracing::warn!(error = %e, "could not release a webhook's replay record");
            }
            Err(e)
        }
    }
}

/// What a request's idempotency `reference` says about a new attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// First time: go ahead (the reference is now held).
    Fresh,
    /// Another attempt with this reference is running.
    InProgress,
    /// Already answered: here is the stored response.
    Done(Vec<u8>),
    /// The reference was used for a different request.
    Mismatch,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Starts an idempotent request; `fingerprint` identifies its content.
    async fn begin_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Attempt>;

    /// Stores the response of a request begun with [`IdempotencyStore::begin_request`].
    async fn finish_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
        response: &[u8],
    ) -> Result<()>;

    /// Marks `reference` answered (with an empty answer) unless a record
    /// already holds it; whether it did. For a note kept once per record
    /// lifetime, such as the cap on repeated confirmations. The default is
    /// a begin and a finish; a backend may do it in one write.
    async fn mark_once(&self, tenant: &TenantId, reference: &str) -> Result<bool> {
        match self.begin_request(tenant, reference, &MARK).await? {
            Attempt::Fresh => {
                self.finish_request(tenant, reference, &MARK, b"").await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Releases a reference whose request failed before doing anything, so a retry may run.
    async fn abandon_request(&self, tenant: &TenantId, reference: &str) -> Result<()>;

    /// Forgets idempotency records older than `before`; returns how many.
    async fn purge_requests(&self, before: UnixMillis) -> Result<usize>;
}
