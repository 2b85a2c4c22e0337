//! Frequency-cap ledgers in sled: `frequency`, tenant·e164 → JSON
//! [`SendLedger`]. Each recipient's ledger changes by compare-and-swap, so
//! concurrent requests of this process for one recipient never both take
//! its last slot.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{decode, encode, key, SledStore};
use crate::domain::frequency::SendLedger;
use crate::domain::{FrequencyCap, TenantId, UnixMillis};
use crate::store::{CapEntry, FrequencyStore, Result};

/// Changes one ledger with `f` until no concurrent writer came in between.
fn update<T>(tree: &sled::Tree, k: &[u8], mut f: impl FnMut(&mut SendLedger) -> T) -> Result<T> {
    loop {
        let old = tree.get(k)?;
        let mut ledger: SendLedger = match &old {
            Some(v) => decode(v)?,
            None => SendLedger::default(),
        };
        let out = f(&mut ledger);
        let new = (!ledger.entries.is_empty()).then(|| encode(&ledger));
        if tree.compare_and_swap(k, old, new)?.is_ok() {
            return Ok(out);
        }
    }
}

#[async_trait]
impl FrequencyStore for SledStore {
    async fn cap_reserve(
        &self,
        tenant: &TenantId,
        cap: FrequencyCap,
        now: UnixMillis,
        entries: &[CapEntry],
    ) -> Result<Vec<bool>> {
        self.with(|s| {
            // One read-modify-write per recipient, its entries in order.
            let mut by_number: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, e) in entries.iter().enumerate() {
                by_number.entry(&e.number).or_default().push(i);
            }
            let mut out = vec![false; entries.len()];
            for (number, idx) in by_number {
                let k = key(&[tenant.as_str().as_bytes(), number.as_bytes()]);
                let verdicts = update(&s.frequency, &k, |ledger| {
                    idx.iter()
                        .map(|&i| ledger.reserve(entries[i].key, entries[i].at, cap, now))
                        .collect::<Vec<_>>()
                })?;
                for (i, ok) in idx.into_iter().zip(verdicts) {
                    out[i] = ok;
                }
            }
            Ok(out)
        })
    }

    async fn cap_forget(&self, tenant: &TenantId, entries: &[(String, u64)]) -> Result<()> {
        self.with(|s| {
            for (number, k) in entries {
                let tree_key = key(&[tenant.as_str().as_bytes(), number.as_bytes()]);
                if s.frequency.contains_key(&tree_key)? {
                    update(&s.frequency, &tree_key, |l| l.forget(*k))?;
                }
            }
            Ok(())
        })
    }

    async fn cap_purge(&self, before: UnixMillis, step: usize) -> Result<usize> {
        self.with(|s| {
            let mut purged = 0;
            for kv in s.frequency.iter() {
                if purged >= step {
                    break;
                }
                let (k, v) = kv?;
                let ledger: SendLedger = decode(&v)?;
                if ledger.newest().is_none_or(|t| t < before) {
                    // Only if nobody wrote it since it was read.
                    if s.frequency
                        .compare_and_swap(&k, Some(v), None::<&[u8]>)?
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
