//! Opt-out links: code → (tenant, number, campaign), minted insert-if-absent.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::{Campaign, LinkCode, PhoneNumber, TenantId, UnixMillis};

/// A minted opt-out link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub tenant: TenantId,
    pub number: PhoneNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    pub created: UnixMillis,
}

/// Draws a new random code; called again on a collision.
pub type Mint<'a> = &'a (dyn Fn() -> LinkCode + Send + Sync);

#[async_trait]
pub trait LinkStore: Send + Sync {
    /// The code for (tenant, number, campaign): the existing one, or one
    /// drawn from `mint` and inserted only if absent. `true` if new.
    async fn link_for(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        campaign: Option<&Campaign>,
        mint: Mint<'_>,
    ) -> Result<(LinkCode, bool)>;

    async fn link(&self, code: &LinkCode) -> Result<Option<LinkRecord>>;
}
