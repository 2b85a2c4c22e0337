//! Opt-out links: a code is unique per (tenant, recipient, campaign) and
//! inserted only if absent (see [`crate::store::LinkStore::link_for`]), so a
//! retry of the same campaign reuses it and two recipients never share one.

use crate::domain::{Campaign, LinkCode, PhoneNumber, Tenant};
use crate::store::{self, Store};

/// The link for a recipient: the existing one for this campaign or a new one.
/// Returns the URL and whether it was minted now (and so must be made
/// durable before the message is forwarded).
pub async fn link_for(
    store: &dyn Store,
    base_url: &str,
    tenant: &Tenant,
    number: &PhoneNumber,
    campaign: Option<&Campaign>,
) -> store::Result<(String, bool)> {
    let (code, minted) = store
        .link_for(&tenant.id, number, campaign, &LinkCode::generate)
        .await?;
    Ok((url(base_url, &code), minted))
}

/// `{public_base_url}/{code}`.
pub fn url(base_url: &str, code: &LinkCode) -> String {
    format!("{}/{code}", base_url.trim_end_matches('/'))
}
