//! Reading a whole sled store, for `stopgate store copy` only (not part of
//! the Store traits): every tree in key order, decoded.

use super::{decode, read_u64, utf8, Live, SledStore};
use crate::domain::{Event, UnixMillis};
use crate::store::{LinkRecord, MarketingSend, PossibleOptOut, Result, StoreError, Suppression};

/// `a·b·c` (0-separated) back into its parts.
fn parts(key: &[u8], n: usize) -> Result<Vec<&str>> {
    let p: Vec<&[u8]> = key.splitn(n, |b| *b == 0).collect();
    if p.len() != n {
        return Err(StoreError::Corrupt("a key with too few parts".into()));
    }
    p.into_iter().map(utf8).collect()
}

/// One number's own row.
pub(crate) struct StateRow {
    pub tenant: String,
    pub number: String,
    pub state: Suppression,
}

/// A number that only a bulk import holds.
pub(crate) struct BulkRow {
    pub tenant: String,
    pub number: String,
    pub at: UnixMillis,
}

/// The last marketing send of (number, short code, tenant).
pub(crate) struct SendRow {
    pub number: String,
    pub shortcode: String,
    pub tenant: String,
    pub send: MarketingSend,
}

/// One insights counter.
pub(crate) struct CounterRow {
    pub tenant: String,
    /// `""` for no campaign.
    pub campaign: String,
    pub counter: String,
    pub n: u64,
}

impl SledStore {
    /// The open database, for the copy's read-all iterators.
    pub(crate) fn export(&self) -> Result<std::sync::Arc<Live>> {
        self.live()
    }
}

impl Live {
    pub(crate) fn export_states(&self) -> impl Iterator<Item = Result<StateRow>> + '_ {
        self.suppressions.iter().map(|kv| {
            let (k, v) = kv?;
            let p = parts(&k, 2)?;
            Ok(StateRow {
                tenant: p[0].to_string(),
                number: p[1].to_string(),
                state: decode(&v)?,
            })
        })
    }

    /// Every event, grouped by (tenant, number), each number's oldest first.
    pub(crate) fn export_events(&self) -> impl Iterator<Item = Result<Event>> + '_ {
        self.events.iter().map(|kv| decode(&kv?.1))
    }

    /// When a bulk import suppressed `number` for `tenant`, if one did.
    pub(crate) fn export_imported_at(
        &self,
        tenant: &str,
        number: &str,
    ) -> Result<Option<UnixMillis>> {
        let tenant = crate::domain::TenantId::parse(tenant).map_err(StoreError::Corrupt)?;
        Ok(self.bulk.lookup(&tenant, number)?.map(|i| i.at))
    }

    /// The bulk-imported numbers that have no row of their own, tenant by
    /// tenant in number order, a page at a time.
    pub(crate) fn export_bulk_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<BulkRow>> {
        let id = crate::domain::TenantId::parse(tenant).map_err(StoreError::Corrupt)?;
        let rows = self.bulk.page(&id, after, limit, |n| {
            Ok(!self
                .suppressions
                .contains_key(super::key(&[tenant.as_bytes(), n.as_bytes()]))?)
        })?;
        let mut infos: Vec<(u64, UnixMillis)> = Vec::new();
        let mut out = Vec::with_capacity(rows.len());
        for (number, import) in rows {
            let at = match infos.iter().find(|(i, _)| *i == import) {
                Some((_, at)) => *at,
                None => {
                    let at = self.bulk.import_info(import)?.at;
                    infos.push((import, at));
                    at
                }
            };
            out.push(BulkRow {
                tenant: tenant.to_string(),
                number,
                at,
            });
        }
        Ok(out)
    }

    /// Tenants that have bulk-imported numbers.
    pub(crate) fn export_bulk_tenants(&self) -> Result<Vec<String>> {
        self.bulk.tenants()
    }

    /// How many numbers the bulk chunks hold (with or without a row).
    pub(crate) fn export_bulk_len(&self) -> Result<u64> {
        let mut total = 0;
        for tenant in self.bulk.tenants()? {
            let id = crate::domain::TenantId::parse(&tenant).map_err(StoreError::Corrupt)?;
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .bulk
                    .page(&id, after.as_deref(), 100_000, |_| Ok(true))?;
                total += page.len() as u64;
                match page.last() {
                    Some((n, _)) if page.len() == 100_000 => after = Some(n.clone()),
                    _ => break,
                }
            }
        }
        Ok(total)
    }

    pub(crate) fn export_links(&self) -> impl Iterator<Item = Result<(String, LinkRecord)>> + '_ {
        self.links.iter().map(|kv| {
            let (k, v) = kv?;
            Ok((utf8(&k)?.to_string(), decode(&v)?))
        })
    }

    pub(crate) fn export_sends(&self) -> impl Iterator<Item = Result<SendRow>> + '_ {
        self.sends.iter().map(|kv| {
            let (k, v) = kv?;
            let p = parts(&k, 3)?;
            Ok(SendRow {
                number: p[0].to_string(),
                shortcode: p[1].to_string(),
                tenant: p[2].to_string(),
                send: super::attribution::decode_send(&v)?,
            })
        })
    }

    pub(crate) fn export_possible_optouts(
        &self,
    ) -> impl Iterator<Item = Result<(u64, PossibleOptOut)>> + '_ {
        self.possible_optouts.iter().map(|kv| {
            let (k, v) = kv?;
            let id = k
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("possible opt-out id".into()))?;
            Ok((id, decode(&v)?))
        })
    }

    pub(crate) fn export_counters(&self) -> impl Iterator<Item = Result<CounterRow>> + '_ {
        self.insights.iter().map(|kv| {
            let (k, v) = kv?;
            let p = parts(&k, 3)?;
            Ok(CounterRow {
                tenant: p[0].to_string(),
                campaign: p[1].to_string(),
                counter: p[2].to_string(),
                n: read_u64(&v),
            })
        })
    }

    /// Every consent record: (tenant, number, list, state).
    pub(crate) fn export_consents(&self) -> impl Iterator<Item = Result<ConsentRow>> + '_ {
        self.consents.iter().flat_map(|kv| {
            let rows: Result<Vec<ConsentRow>> = (|| {
                let (k, v) = kv?;
                let p = parts(&k, 2)?;
                let records: super::consent::Records = decode(&v)?;
                Ok(records
                    .into_iter()
                    .map(|(list, state)| ConsentRow {
                        tenant: p[0].to_string(),
                        number: p[1].to_string(),
                        list,
                        state,
                    })
                    .collect())
            })();
            match rows {
                Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        })
    }

    /// Every consent event, each number's oldest first.
    pub(crate) fn export_consent_events(
        &self,
    ) -> impl Iterator<Item = Result<crate::domain::ConsentEvent>> + '_ {
        self.consent_events.iter().map(|kv| decode(&kv?.1))
    }

    /// Every erased opt-out: (tenant, hash, what stays).
    pub(crate) fn export_erased(&self) -> impl Iterator<Item = Result<ErasedRow>> + '_ {
        self.erased.iter().map(|kv| {
            let (k, v) = kv?;
            let (tenant, hash) = tenant_and_hash(&k)?;
            let e: super::subjects::ErasedOptOut = decode(&v)?;
            Ok(ErasedRow {
                tenant,
                hash,
                since: e.since,
                source: e.source,
                erased: e.erased,
            })
        })
    }

    /// Every erasure's audit record, each number's oldest first.
    pub(crate) fn export_erasures(
        &self,
    ) -> impl Iterator<Item = Result<(String, [u8; 32], crate::store::Erasure)>> + '_ {
        self.erasures.iter().map(|kv| {
            let (k, v) = kv?;
            let (tenant, hash) = tenant_and_hash(&k)?;
            Ok((tenant, hash, decode(&v)?))
        })
    }

    /// The key erased opt-outs are hashed with: the copy takes it along.
    pub(crate) fn export_subject_key(&self) -> [u8; 32] {
        self.subject_key.raw()
    }

    /// Entries per tree, for progress and verification.
    pub(crate) fn export_lens(&self) -> ExportLens {
        ExportLens {
            states: self.suppressions.len() as u64,
            events: self.events.len() as u64,
            links: self.links.len() as u64,
            sends: self.sends.len() as u64,
            possible_optouts: self.possible_optouts.len() as u64,
            counters: self.insights.len() as u64,
            consent_events: self.consent_events.len() as u64,
            erased: self.erased.len() as u64,
            erasures: self.erasures.len() as u64,
        }
    }
}

/// `tenant·hash…`: the tenant, then 32 bytes of hash.
fn tenant_and_hash(k: &[u8]) -> Result<(String, [u8; 32])> {
    let end = k
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| StoreError::Corrupt("a key without a tenant".into()))?;
    let hash = k
        .get(end + 1..end + 33)
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| StoreError::Corrupt("a subject hash".into()))?;
    Ok((utf8(&k[..end])?.to_string(), hash))
}

/// One consent record.
pub(crate) struct ConsentRow {
    pub tenant: String,
    pub number: String,
    pub list: String,
    pub state: crate::domain::ConsentState,
}

/// One erased opt-out.
pub(crate) struct ErasedRow {
    pub tenant: String,
    pub hash: [u8; 32],
    pub since: UnixMillis,
    pub source: crate::domain::Source,
    pub erased: UnixMillis,
}

pub(crate) struct ExportLens {
    pub states: u64,
    pub events: u64,
    pub links: u64,
    pub sends: u64,
    pub possible_optouts: u64,
    pub counters: u64,
    pub consent_events: u64,
    pub erased: u64,
    pub erasures: u64,
}
