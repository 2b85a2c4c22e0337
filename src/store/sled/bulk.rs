//! Bulk-imported suppressions: sorted, packed chunks instead of one row per number.
//!
//! A per-number row (state, event, counters) costs sled ~1 KiB and a
//! transaction; a 10M-line import took 13 minutes that way. Numbers imported
//! from a CSV without a reason carry no information beyond "suppressed by
//! import N", so they are kept as packed 16-byte entries (number, import id)
//! in sorted chunks of up to [`CHUNK`] entries.
//!
//! Rules that keep this correct next to the per-number rows (`sled.rs`):
//! - A number with a per-number row is never added to a chunk; the importer
//!   records it as a normal event instead. So the import is older than every
//!   per-number event of a number it holds, and the per-number row, when one
//!   appears later (a re-subscribe), is authoritative.
//! - Chunks only grow, except by an erasure ([`Bulk::remove`], one number
//!   at a time, under the same lock as merges).
//! - A chunk's key is its first number; it answers for [key, next chunk's key).
//!   A merge writes the chunk's new pieces from the last to the first, each
//!   an atomic insert, and overwrites the old key last; after a crash at any
//!   point every entry is still answered for by exactly one chunk view.
//!
//! Keys (`·` is a 0 byte): `bulk` tenant·packed number (u64 BE) → entries;
//! `imports` import id (u64 BE) → time (i64 BE) then the tenant.

use std::ops::Bound;
use std::sync::{Arc, Mutex};

use super::{Result, StoreError};
use crate::domain::{TenantId, UnixMillis};

/// Entries per chunk: 16 KiB values.
pub(super) const CHUNK: usize = 1024;
const ENTRY: usize = 16;

/// An E.164 number packed into a u64 whose integer order is the string
/// order of the numbers: one nibble per digit (digit + 1), left-aligned,
/// zero-padded, so "+12" < "+123" < "+13" holds for the integers too.
pub fn pack(e164: &str) -> Option<u64> {
    let digits = e164.strip_prefix('+')?.as_bytes();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut v = 0u64;
    for (i, d) in digits.iter().enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        v |= u64::from(d - b'0' + 1) << (56 - 4 * i);
    }
    Some(v)
}

pub fn unpack(v: u64) -> String {
    let mut s = String::with_capacity(16);
    s.push('+');
    for i in 0..15 {
        let nibble = (v >> (56 - 4 * i)) & 0xf;
        if nibble == 0 {
            break;
        }
        s.push(char::from(b'0' + nibble as u8 - 1));
    }
    s
}

/// Merges sorted, distinct `new` numbers into sorted `old` entries.
/// Returns the merged entries and how many of `new` were not already there.
fn merge(old: &[(u64, u64)], new: &[u64], import: u64) -> (Vec<(u64, u64)>, u64) {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut i, mut j, mut added) = (0, 0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o.0 == *n => {
                out.push(*o);
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if o.0 < *n => {
                out.push(*o);
                i += 1;
            }
            (Some(o), None) => {
                out.push(*o);
                i += 1;
            }
            (_, Some(n)) => {
                out.push((*n, import));
                added += 1;
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    (out, added)
}

fn encode(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.len() * ENTRY);
    for (n, id) in entries {
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
    }
    v
}

fn entry(bytes: &[u8], i: usize) -> (u64, u64) {
    let e = &bytes[i * ENTRY..(i + 1) * ENTRY];
    (
        u64::from_be_bytes(e[..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(e[8..].try_into().expect("8 bytes")),
    )
}

fn check(bytes: &[u8]) -> Result<usize> {
    if bytes.len() % ENTRY != 0 {
        return Err(StoreError::Corrupt("bulk chunk length".into()));
    }
    Ok(bytes.len() / ENTRY)
}

/// One import: when, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    pub id: u64,
    pub at: UnixMillis,
}

#[derive(Clone)]
pub(super) struct Bulk {
    chunks: sled::Tree,
    imports: sled::Tree,
    /// Merges read, then rewrite chunks: one at a time.
    merging: Arc<Mutex<()>>,
    /// [`CHUNK`]; smaller in tests, so that a few numbers split chunks.
    chunk: usize,
}

impl Bulk {
    pub fn open(db: &sled::Db, chunk: usize) -> Result<Bulk> {
        Ok(Bulk {
            chunks: db.open_tree("bulk")?,
            imports: db.open_tree("imports")?,
            merging: Arc::new(Mutex::new(())),
            chunk: chunk.max(1),
        })
    }

    fn prefix(tenant: &TenantId) -> Vec<u8> {
        let mut p = tenant.as_str().as_bytes().to_vec();
        p.push(0);
        p
    }

    fn chunk_key(prefix: &[u8], n: u64) -> Vec<u8> {
        let mut k = prefix.to_vec();
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    fn first_of(prefix: &[u8], key: &[u8]) -> Result<u64> {
        key.get(prefix.len()..)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt("bulk chunk key".into()))
    }

    /// The chunk answering for `n`: the last one whose key is ≤ n.
    fn chunk_at(&self, prefix: &[u8], n: u64) -> Result<Option<(sled::IVec, sled::IVec)>> {
        let k = Self::chunk_key(prefix, n);
        Ok(self
            .chunks
            .range(prefix.to_vec()..=k)
            .next_back()
            .transpose()?)
    }

    /// The tenant's chunk after `after` (exclusive), or its first chunk.
    fn next_chunk(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
    ) -> Result<Option<(sled::IVec, sled::IVec)>> {
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included(prefix),
        };
        Ok(self
            .chunks
            .range::<&[u8], _>((start, Bound::Unbounded))
            .next()
            .transpose()?
            .filter(|(k, _)| k.starts_with(prefix)))
    }

    /// The key (first number) of the chunk after `key`, if any.
    fn next_first(&self, prefix: &[u8], key: &[u8]) -> Result<Option<u64>> {
        self.next_chunk(prefix, Some(key))?
            .map(|(k, _)| Self::first_of(prefix, &k))
            .transpose()
    }

    /// Starts an import: its record is written before any entry names it.
    pub fn begin(&self, db: &sled::Db, tenant: &TenantId, at: UnixMillis) -> Result<u64> {
        let id = db.generate_id()?;
        let mut v = at.to_be_bytes().to_vec();
        v.extend_from_slice(tenant.as_str().as_bytes());
        self.imports.insert(id.to_be_bytes(), v)?;
        Ok(id)
    }

    pub fn import_info(&self, id: u64) -> Result<ImportInfo> {
        let v = self
            .imports
            .get(id.to_be_bytes())?
            .ok_or_else(|| StoreError::Corrupt(format!("import {id} has no record")))?;
        let at = v
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt("import record".into()))?;
        Ok(ImportInfo { id, at })
    }

    /// The import that suppressed `number` for `tenant`, if one did.
    pub fn lookup(&self, tenant: &TenantId, number: &str) -> Result<Option<ImportInfo>> {
        let Some(n) = pack(number) else {
            return Ok(None);
        };
        let prefix = Self::prefix(tenant);
        let Some((_, chunk)) = self.chunk_at(&prefix, n)? else {
            return Ok(None);
        };
        let len = check(&chunk)?;
        // Entries past the next chunk's key belong to it; a number found
        // here is also there (see the module doc), so no need to look.
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (m, id) = entry(&chunk, mid);
            match m.cmp(&n) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.import_info(id).map(Some),
            }
        }
        Ok(None)
    }

    /// Adds sorted, distinct numbers under `import`. Returns how many were new.
    pub fn merge(&self, tenant: &TenantId, numbers: &[u64], import: u64) -> Result<u64> {
        self.merge_cut(tenant, numbers, import, usize::MAX)
            .map(|(added, _)| added)
    }

    /// [`Bulk::merge`] that stops after `writes` chunk writes, as a crash
    /// would (tests); `true` if it finished.
    fn merge_cut(
        &self,
        tenant: &TenantId,
        numbers: &[u64],
        import: u64,
        mut writes: usize,
    ) -> Result<(u64, bool)> {
        debug_assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        let _one_at_a_time = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        let prefix = Self::prefix(tenant);
        let mut added = 0;
        let mut i = 0;
        while i < numbers.len() {
            let (key, old, upper) = match self.chunk_at(&prefix, numbers[i])? {
                Some((key, chunk)) => {
                    let upper = self.next_first(&prefix, &key)?;
                    let len = check(&chunk)?;
                    let old: Vec<(u64, u64)> = (0..len)
                        .map(|e| entry(&chunk, e))
                        .take_while(|(n, _)| upper.is_none_or(|u| *n < u))
                        .collect();
                    (Some(key), old, upper)
                }
                // Below every chunk: new chunks up to the first one.
                None => {
                    let first = self
                        .next_chunk(&prefix, None)?
                        .map(|(k, _)| Self::first_of(&prefix, &k))
                        .transpose()?;
                    (None, Vec::new(), first)
                }
            };
            let end = i + numbers[i..].partition_point(|n| upper.is_none_or(|u| *n < u));
            let (merged, new) = merge(&old, &numbers[i..end], import);
            added += new;
            if new > 0 {
                // Last piece first, the old key (overwritten) last.
                for piece in merged.chunks(self.chunk).rev() {
                    let k = Self::chunk_key(&prefix, piece[0].0);
                    debug_assert!(key.as_ref().is_none_or(|old| k.as_slice() >= old.as_ref()));
                    if writes == 0 {
                        return Ok((added, false));
                    }
                    writes -= 1;
                    self.chunks.insert(k, encode(piece))?;
                }
            }
            i = end;
        }
        Ok((added, true))
    }

    /// Removes `number` from the tenant's chunks (an erasure); whether it
    /// was there. One step at a time, each an atomic write that leaves
    /// every other entry answered for by exactly one chunk:
    /// - not the chunk's first entry: the chunk is rewritten without it;
    /// - its first, which is also the chunk's key: the chunk before is
    ///   trimmed of stale entries past its range first (a merge cut short
    ///   leaves some, and that range is about to widen), then the rest is
    ///   written under its next entry's key, then the old key removed.
    ///
    /// A copy of the number in a stale tail further back stays unreachable
    /// (never looked up, listed or exported) until that chunk's next merge,
    /// which drops stale tails.
    pub fn remove(&self, tenant: &TenantId, number: &str) -> Result<bool> {
        let Some(n) = pack(number) else {
            return Ok(false);
        };
        let _one_at_a_time = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        let prefix = Self::prefix(tenant);
        let Some((key, chunk)) = self.chunk_at(&prefix, n)? else {
            return Ok(false);
        };
        let upper = self.next_first(&prefix, &key)?;
        let mut rest: Vec<(u64, u64)> = (0..check(&chunk)?)
            .map(|e| entry(&chunk, e))
            .take_while(|(m, _)| upper.is_none_or(|u| *m < u))
            .collect();
        let Some(pos) = rest.iter().position(|(m, _)| *m == n) else {
            return Ok(false);
        };
        rest.remove(pos);
        let first = Self::first_of(&prefix, &key)?;
        if first != n {
            self.chunks.insert(key, encode(&rest))?;
            return Ok(true);
        }
        let before = self
            .chunks
            .range(prefix.clone()..key.to_vec())
            .next_back()
            .transpose()?;
        if let Some((before_key, before_chunk)) = before {
            let len = check(&before_chunk)?;
            let live: Vec<(u64, u64)> = (0..len)
                .map(|e| entry(&before_chunk, e))
                .take_while(|(m, _)| *m < first)
                .collect();
            if live.len() < len {
                self.chunks.insert(before_key, encode(&live))?;
            }
        }
        if let Some((next, _)) = rest.first() {
            self.chunks
                .insert(Self::chunk_key(&prefix, *next), encode(&rest))?;
        }
        self.chunks.remove(key)?;
        Ok(true)
    }

    /// Tenants with chunks, in order (`store copy`).
    pub fn tenants(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut start: Vec<u8> = Vec::new();
        // One key per tenant: after each, jump past that tenant's prefix.
        while let Some(kv) = self.chunks.range(start.clone()..).next() {
            let (k, _) = kv?;
            let end = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| StoreError::Corrupt("bulk chunk key".into()))?;
            let tenant =
                std::str::from_utf8(&k[..end]).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push(tenant.to_string());
            start = k[..end].to_vec();
            start.push(1);
        }
        Ok(out)
    }

    /// Up to `limit` numbers of `tenant` after the cursor `after` (string
    /// order, as the per-number rows), with their import ids, skipping
    /// those `keep` refuses.
    pub fn page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&str) -> Result<bool>,
    ) -> Result<Vec<(String, u64)>> {
        let prefix = Self::prefix(tenant);
        // Start at the chunk answering for the cursor (or the first chunk).
        let mut chunk = match after.and_then(pack) {
            Some(n) => self.chunk_at(&prefix, n)?,
            None => None,
        };
        if chunk.is_none() {
            chunk = self.next_chunk(&prefix, None)?;
        }
        let mut out = Vec::new();
        while let Some((key, value)) = chunk {
            // One read gives the next chunk and, by its key, this one's end.
            let next = self.next_chunk(&prefix, Some(&key))?;
            let upper = next
                .as_ref()
                .map(|(k, _)| Self::first_of(&prefix, k))
                .transpose()?;
            for e in 0..check(&value)? {
                let (n, id) = entry(&value, e);
                if upper.is_some_and(|u| n >= u) {
                    break;
                }
                let number = unpack(n);
                if after.is_some_and(|a| number.as_str() <= a) || !keep(&number)? {
                    continue;
                }
                out.push((number, id));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            chunk = next;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packing_keeps_the_string_order() {
        let mut numbers = [
            "+1999",
            "+10000",
            "+12",
            "+123",
            "+13",
            "+33612345678",
            "+1",
        ];
        let mut packed: Vec<u64> = numbers.iter().map(|n| pack(n).unwrap()).collect();
        numbers.sort_unstable();
        packed.sort_unstable();
        let back: Vec<String> = packed.into_iter().map(unpack).collect();
        assert_eq!(back, numbers);
        assert_eq!(pack("33612345678"), None, "no +");
        assert_eq!(pack("+1234567890123456"), None, "16 digits");
        assert_eq!(pack("+12a"), None);
    }

    #[test]
    fn merge_counts_only_new_numbers() {
        let (merged, added) = merge(&[(2, 7), (5, 7)], &[1, 2, 6], 9);
        assert_eq!(merged, [(1, 9), (2, 7), (5, 7), (6, 9)]);
        assert_eq!(added, 2);
    }

    fn listed(bulk: &Bulk, tenant: &TenantId) -> Vec<String> {
        bulk.page(tenant, None, usize::MAX, |_| Ok(true))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// A merge cut short after any number of chunk writes (a crash) loses
    /// nothing that was there before, lists every number once, and a rerun
    /// of the import completes it.
    fn survives_every_cut(old: &BTreeSet<u16>, new: &BTreeSet<u16>) {
        let number = |i: &u16| format!("+1212555{i:04}");
        let pack_all = |s: &BTreeSet<u16>| {
            s.iter()
                .map(|i| pack(&number(i)).unwrap())
                .collect::<Vec<_>>()
        };
        let tenant = TenantId::parse("acme").unwrap();
        let all: BTreeSet<String> = old.iter().chain(new).map(number).collect();
        for cut in 0.. {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let bulk = Bulk::open(&db, 3).unwrap();
            let first = bulk.begin(&db, &tenant, 1).unwrap();
            bulk.merge(&tenant, &pack_all(old), first).unwrap();
            let second = bulk.begin(&db, &tenant, 2).unwrap();
            let (_, finished) = bulk
                .merge_cut(&tenant, &pack_all(new), second, cut)
                .unwrap();

            for n in old {
                assert!(
                    bulk.lookup(&tenant, &number(n)).unwrap().is_some(),
                    "cut {cut}: lost {n}"
                );
            }
            let seen = listed(&bulk, &tenant);
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "cut {cut}: {seen:?}");
            assert!(seen.iter().all(|n| all.contains(n)), "cut {cut}: {seen:?}");
            assert!(
                old.iter().map(number).all(|n| seen.contains(&n)),
                "cut {cut}"
            );

            // The import is retried (or rerun) to the end.
            let third = bulk.begin(&db, &tenant, 3).unwrap();
            bulk.merge(&tenant, &pack_all(new), third).unwrap();
            assert_eq!(
                listed(&bulk, &tenant),
                all.iter().cloned().collect::<Vec<_>>(),
                "cut {cut}"
            );
            for n in &all {
                assert!(bulk.lookup(&tenant, n).unwrap().is_some(), "cut {cut}: {n}");
            }
            if finished {
                break;
            }
        }
    }

    #[test]
    fn a_merge_cut_short_between_two_chunk_writes_loses_nothing() {
        let old: BTreeSet<u16> = [1, 5, 9, 13, 17].into();
        let new: BTreeSet<u16> = [0, 2, 3, 4, 6, 7, 8, 20, 21].into();
        survives_every_cut(&old, &new);
    }

    proptest! {
        #[test]
        fn merges_cut_anywhere_lose_nothing(
            old in prop::collection::btree_set(0u16..60, 0..20),
            new in prop::collection::btree_set(0u16..60, 1..20),
        ) {
            survives_every_cut(&old, &new);
        }

        /// Erasures remove exactly their numbers, also from chunks a cut
        /// merge left with stale tails, and later merges bring none back.
        #[test]
        fn removals_take_out_exactly_their_numbers(
            old in prop::collection::btree_set(0u16..60, 0..20),
            new in prop::collection::btree_set(0u16..60, 1..20),
            cut in 0usize..8,
            gone in prop::collection::btree_set(0u16..60, 0..15),
        ) {
            let number = |i: &u16| format!("+1212555{i:04}");
            let packed = |s: &BTreeSet<u16>| s.iter().map(|i| pack(&number(i)).unwrap()).collect::<Vec<_>>();
            let tenant = TenantId::parse("acme").unwrap();
            let db = sled::Config::new().temporary(true).open().unwrap();
            let bulk = Bulk::open(&db, 3).unwrap();
            let first = bulk.begin(&db, &tenant, 1).unwrap();
            bulk.merge(&tenant, &packed(&old), first).unwrap();
            let second = bulk.begin(&db, &tenant, 2).unwrap();
            bulk.merge_cut(&tenant, &packed(&new), second, cut).unwrap();
            let present: BTreeSet<u16> = (0..60)
                .filter(|i| bulk.lookup(&tenant, &number(i)).unwrap().is_some())
                .collect();
            for g in &gone {
                prop_assert_eq!(bulk.remove(&tenant, &number(g)).unwrap(), present.contains(g));
            }
            let later: BTreeSet<u16> = (60..70).collect();
            let third = bulk.begin(&db, &tenant, 3).unwrap();
            bulk.merge(&tenant, &packed(&later), third).unwrap();
            let kept: Vec<String> = present.difference(&gone).chain(&later).map(number).collect();
            prop_assert_eq!(listed(&bulk, &tenant), kept.clone());
            for g in &gone {
                prop_assert!(bulk.lookup(&tenant, &number(g)).unwrap().is_none(), "{} is back", g);
            }
            for k in &kept {
                prop_assert!(bulk.lookup(&tenant, k).unwrap().is_some(), "{} is lost", k);
            }
        }

        #[test]
        fn pack_round_trips_and_orders(a in "\\+[0-9]{1,15}", b in "\\+[0-9]{1,15}") {
            let (pa, pb) = (pack(&a).unwrap(), pack(&b).unwrap());
            prop_assert_eq!(unpack(pa), a.clone());
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
        }
    }
}
