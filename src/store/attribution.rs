//! Who sent marketing to whom through which short code: what attributes a
//! later STOP on a shared short code to tenants, and credits it to a campaign.

use async_trait::async_trait;

use super::Result;
use crate::domain::{Campaign, PhoneNumber, ShortCode, TenantId, UnixMillis};

/// The last marketing send from one tenant to one number through one short code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingSend {
    pub at: UnixMillis,
    /// The campaign of that send, so a STOP can be credited to it.
    pub campaign: Option<Campaign>,
}

#[async_trait]
pub trait AttributionStore: Send + Sync {
    /// Remembers that `tenant` sent marketing in `campaign` at `at` to each
    /// (number, short code) of `sends`: one write for a whole request.
    async fn note_marketing_sends(
        &self,
        tenant: &TenantId,
        campaign: Option<&Campaign>,
        at: UnixMillis,
        sends: &[(PhoneNumber, ShortCode)],
    ) -> Result<()>;

    /// The last marketing send noted for (number, short code, tenant).
    async fn last_marketing_send(
        &self,
        number: &PhoneNumber,
        shortcode: &ShortCode,
        tenant: &TenantId,
    ) -> Result<Option<MarketingSend>>;

    /// Every tenant's last marketing send to `number` through `shortcode`,
    /// in tenant order (bytes): what a STOP on the code is attributed and
    /// credited by, in one read.
    async fn marketing_sends(
        &self,
        number: &PhoneNumber,
        shortcode: &ShortCode,
    ) -> Result<Vec<(TenantId, MarketingSend)>>;
}
