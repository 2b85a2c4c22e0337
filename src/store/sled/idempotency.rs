//! Idempotency records in sled: `requests`, tenant·reference → state byte,
//! time (i64 big-endian), fingerprint (32 bytes), response.

use async_trait::async_trait;

use super::{key, SledStore};
use crate::domain::{now_millis, TenantId, UnixMillis};
use crate::store::idempotency::{MARK, STALE_ATTEMPT_MS};
use crate::store::{Attempt, IdempotencyStore, Result, StoreError};

const REQ_PENDING: u8 = 0;
const REQ_DONE: u8 = 1;

fn request_value(state: u8, fingerprint: &[u8; 32], response: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(41 + response.len());
    v.push(state);
    v.extend_from_slice(&now_millis().to_be_bytes());
    v.extend_from_slice(fingerprint);
    v.extend_from_slice(response);
    v
}

fn request_key(tenant: &TenantId, reference: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), reference.as_bytes()])
}

#[async_trait]
impl IdempotencyStore for SledStore {
    async fn begin_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Attempt> {
        self.with(|s| {
            let k = request_key(tenant, reference);
            let pending = request_value(REQ_PENDING, fingerprint, &[]);
            loop {
                let current = s.requests.get(&k)?;
                if let Some(v) = &current {
                    if v.len() < 41 {
                        return Err(StoreError::Corrupt("request record".into()));
                    }
                    let at = i64::from_be_bytes(v[1..9].try_into().expect("8 bytes"));
                    if &v[9..41] != fingerprint {
                        return Ok(Attempt::Mismatch);
                    }
                    if v[0] == REQ_DONE {
                        return Ok(Attempt::Done(v[41..].to_vec()));
                    }
                    if now_millis() - at < STALE_ATTEMPT_MS {
                        return Ok(Attempt::InProgress);
                    }
                }
                if s.requests
                    .compare_and_swap(&k, current, Some(pending.as_slice()))?
                    .is_ok()
                {
                    return Ok(Attempt::Fresh);
                }
            }
        })
    }

    /// One insert-if-absent of a done record. A stale pending record is
    /// not taken over: it counts as a mark (only a crash between a begin
    /// and its finish leaves one).
    async fn mark_once(&self, tenant: &TenantId, reference: &str) -> Result<bool> {
        self.with(|s| {
            let done = request_value(REQ_DONE, &MARK, &[]);
            let k = request_key(tenant, reference);
            Ok(s.requests
                .compare_and_swap(k, None as Option<&[u8]>, Some(done))?
                .is_ok())
        })
    }

    async fn finish_request(
        &self,
        tenant: &TenantId,
        reference: &str,
        fingerprint: &[u8; 32],
        response: &[u8],
    ) -> Result<()> {
        self.with(|s| {
            s.requests.insert(
                request_key(tenant, reference),
                request_value(REQ_DONE, fingerprint, response),
            )?;
            Ok(())
        })
    }

    async fn abandon_request(&self, tenant: &TenantId, reference: &str) -> Result<()> {
        self.with(|s| {
            s.requests.remove(request_key(tenant, reference))?;
            Ok(())
        })
    }

    async fn purge_requests(&self, before: UnixMillis) -> Result<usize> {
        self.with(|s| {
            let mut purged = 0;
            for kv in s.requests.iter() {
                let (k, v) = kv?;
                let at = v
                    .get(1..9)
                    .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
                    .unwrap_or(0);
                if at < before {
                    // Only if unchanged since we looked: a retry may have just refreshed it.
                    if s.requests
                        .compare_and_swap(&k, Some(v), None as Option<&[u8]>)?
                        .is_ok()
                    {
                        purged += 1;
                    }
                }
            }
            Ok(purged)
        })
    }
}
