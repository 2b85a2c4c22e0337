//! Possible opt-outs: replies that mention a stop keyword but are not an
//! opt-out by the rules (`please don't stop the deals`), kept for a human.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::{PhoneNumber, ShortCode, TenantId, UnixMillis};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PossibleOptOut {
    pub at: UnixMillis,
    /// The sender.
    pub number: PhoneNumber,
    /// The short code it was sent to.
    pub shortcode: ShortCode,
    /// The tenants on that short code: whoever reviews it decides for which.
    pub tenants: Vec<TenantId>,
    pub text: String,
}

#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Keeps a possible opt-out for review; returns its id (increasing).
    async fn note_possible_optout(&self, record: &PossibleOptOut) -> Result<u64>;

    /// One possible opt-out by id.
    async fn possible_optout(&self, id: u64) -> Result<Option<PossibleOptOut>>;

    /// Possible opt-outs in id order, those after `after` (exclusive), at most `limit`.
    async fn possible_optouts(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, PossibleOptOut)>>;
}
