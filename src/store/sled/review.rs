//! Possible opt-outs in sled: `possible_optouts`, id (u64 big-endian) → JSON.

use async_trait::async_trait;

use super::{decode, encode, SledStore};
use crate::store::{PossibleOptOut, Result, ReviewStore, StoreError};

#[async_trait]
impl ReviewStore for SledStore {
    async fn note_possible_optout(&self, record: &PossibleOptOut) -> Result<u64> {
        self.with(|s| {
            let id = s.db.generate_id()?;
            s.possible_optouts
                .insert(id.to_be_bytes(), encode(record))?;
            Ok(id)
        })
    }

    async fn possible_optout(&self, id: u64) -> Result<Option<PossibleOptOut>> {
        self.with(|s| {
            s.possible_optouts
                .get(id.to_be_bytes())?
                .map(|v| decode(&v))
                .transpose()
        })
    }

    async fn possible_optouts(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, PossibleOptOut)>> {
        self.with(|s| {
            let start = match after {
                Some(a) => match a.checked_add(1) {
                    Some(s) => s,
                    None => return Ok(Vec::new()),
                },
                None => 0,
            };
            s.possible_optouts
                .range(start.to_be_bytes()..)
                .take(limit)
                .map(|kv| {
                    let (k, v) = kv?;
                    let id = u64::from_be_bytes(
                        k.as_ref()
                            .try_into()
                            .map_err(|_| StoreError::Corrupt("possible opt-out id".into()))?,
                    );
                    Ok((id, decode(&v)?))
                })
                .collect()
        })
    }
}
