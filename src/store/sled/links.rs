//! Links in sled: `links` (code → record) and `link_index`
//! (tenant·number·campaign → code).

use async_trait::async_trait;

use super::{decode, encode, key, utf8, SledStore};
use crate::domain::{now_millis, Campaign, LinkCode, PhoneNumber, TenantId};
use crate::store::links::Mint;
use crate::store::{LinkRecord, LinkStore, Result, StoreError};

fn stored_code(bytes: &[u8]) -> Result<LinkCode> {
    LinkCode::parse(utf8(bytes)?).ok_or_else(|| StoreError::Corrupt("link code".into()))
}

#[async_trait]
impl LinkStore for SledStore {
    async fn link_for(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        campaign: Option<&Campaign>,
        mint: Mint<'_>,
    ) -> Result<(LinkCode, bool)> {
        self.with(|s| {
            let index_key = key(&[
                tenant.as_str().as_bytes(),
                number.as_str().as_bytes(),
                campaign.map_or("", |c| c.as_str()).as_bytes(),
            ]);
            if let Some(code) = s.link_index.get(&index_key)? {
                return Ok((stored_code(&code)?, false));
            }
            let record = encode(&LinkRecord {
                tenant: tenant.clone(),
                number: number.clone(),
                campaign: campaign.cloned(),
                created: now_millis(),
            });
            // Insert-if-absent on the code: a collision (or a concurrent minter
            // of the same code) just draws again.
            let code = loop {
                let code = mint();
                if s.links
                    .compare_and_swap(
                        code.as_str().as_bytes(),
                        None as Option<&[u8]>,
                        Some(record.as_slice()),
                    )?
                    .is_ok()
                {
                    break code;
                }
            };
            // Two concurrent sends to the same recipient and campaign: the first
            // index entry wins and the loser's code is withdrawn before anyone saw it.
            match s.link_index.compare_and_swap(
                &index_key,
                None as Option<&[u8]>,
                Some(code.as_str().as_bytes()),
            )? {
                Ok(()) => Ok((code, true)),
                Err(conflict) => {
                    s.links.remove(code.as_str().as_bytes())?;
                    let winner = conflict
                        .current
                        .expect("a failed insert-if-absent saw a value");
                    Ok((stored_code(&winner)?, false))
                }
            }
        })
    }

    async fn link(&self, code: &LinkCode) -> Result<Option<LinkRecord>> {
        self.with(|s| {
            s.links
                .get(code.as_str().as_bytes())?
                .map(|v| decode(&v))
                .transpose()
        })
    }
}
