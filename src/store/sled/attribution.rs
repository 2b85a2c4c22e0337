//! Marketing sends in sled: `sends`, e164·shortcode·tenant → the last send's
//! time (i64 big-endian), then its campaign (UTF-8, absent for none).

use async_trait::async_trait;

use super::{key, prefix, utf8, SledStore};
use crate::domain::{Campaign, PhoneNumber, ShortCode, TenantId, UnixMillis};
use crate::store::{AttributionStore, MarketingSend, Result, StoreError};

/// Values written before the campaign was kept are the 8 time bytes alone.
pub(super) fn decode_send(v: &[u8]) -> Result<MarketingSend> {
    if v.len() < 8 {
        return Err(StoreError::Corrupt("send time".into()));
    }
    let (at, campaign) = v.split_at(8);
    let campaign = utf8(campaign)?;
    Ok(MarketingSend {
        at: i64::from_be_bytes(at.try_into().expect("8 bytes")),
        campaign: if campaign.is_empty() {
            None
        } else {
            Some(Campaign::parse(campaign).map_err(|e| StoreError::Corrupt(e.into()))?)
        },
    })
}

fn send_key(number: &PhoneNumber, shortcode: &ShortCode, tenant: &TenantId) -> Vec<u8> {
    key(&[
        number.as_str().as_bytes(),
        shortcode.as_str().as_bytes(),
        tenant.as_str().as_bytes(),
    ])
}

#[async_trait]
impl AttributionStore for SledStore {
    async fn note_marketing_sends(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        at: UnixMillis,
        sends: &[(PhoneNumber, ShortCode)],
    ) -> Result<()> {
        self.with(|s| {
            let mut value = at.to_be_bytes().to_vec();
            value.extend_from_slice(campaign.map_or("", |c| c.as_str()).as_bytes());
            // Plain inserts, not a batch: each key stands alone (the latest
            // send wins), and a batch would take sled's process-wide write
            // lock once per marketing request (see put_messages).
            for (number, shortcode) in sends {
                s.sends
                    .insert(send_key(number, shortcode, tenant), value.as_slice())?;
            }
            Ok(())
        })
    }

    async fn last_marketing_send(
        &self,
        number: &PhoneNumber,
        shortcode: &ShortCode,
        tenant: &TenantId,
    ) -> Result<Option<MarketingSend>> {
        self.with(|s| {
            s.sends
                .get(send_key(number, shortcode, tenant))?
                .map(|v| decode_send(&v))
                .transpose()
        })
    }

    async fn marketing_sends(
        &self,
        number: &PhoneNumber,
        shortcode: &ShortCode,
    ) -> Result<Vec<(TenantId, MarketingSend)>> {
        self.with(|s| {
            let prefix = prefix(&[number.as_str().as_bytes(), shortcode.as_str().as_bytes()]);
            let mut out = Vec::new();
            for kv in s.sends.scan_prefix(&prefix) {
                let (k, v) = kv?;
                let tenant = utf8(&k[prefix.len()..])?;
                let tenant = TenantId::parse(tenant).map_err(StoreError::Corrupt)?;
                out.push((tenant, decode_send(&v)?));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::tests::open;

    #[tokio::test]
    async fn values_from_before_campaigns_were_kept_still_read() {
        let (_d, s) = open();
        let n = PhoneNumber::parse("+33612345678").unwrap();
        let code = ShortCode::parse("36111").unwrap();
        let beta = TenantId::parse("beta").unwrap();
        s.live()
            .unwrap()
            .sends
            .insert(send_key(&n, &code, &beta), &3_000i64.to_be_bytes())
            .unwrap();
        let old = s
            .last_marketing_send(&n, &code, &beta)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((old.at, old.campaign.clone()), (3_000, None));
        assert_eq!(s.marketing_sends(&n, &code).await.unwrap(), [(beta, old)]);
    }
}
