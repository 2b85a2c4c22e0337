//! `/v1/insights/campaigns`: which campaigns cost subscribers and how well
//! they were delivered, read from counters kept as events happen.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::AuthTenant;
use crate::app::AppState;

#[derive(Serialize, ToSchema)]
pub struct CampaignJson {
    /// `null` for marketing sent without a campaign.
    campaign: Option<String>,
    /// Marketing messages the provider accepted.
    sent: u64,
    /// Their billed parts.
    segments: u64,
    /// Of those sent, how many the provider reported delivered, and
    /// undelivered or failed (the rest have no final report yet).
    delivered: u64,
    undelivered: u64,
    /// Marketing not forwarded because the recipient had opted out (at
    /// the send, or when a held message was released).
    blocked: u64,
    /// `delivered / sent`; `null` when nothing was sent.
    delivery_rate: Option<f64>,
    /// Opt-outs attributed to the campaign, by source (`sms`, `link`, `api`; imports are not counted).
    optouts: BTreeMap<String, u64>,
    optouts_total: u64,
    /// `optouts_total / sent`; `null` when nothing was sent.
    optout_rate: Option<f64>,
    /// Reasons recipients picked on the opt-out page.
    reasons: BTreeMap<String, u64>,
}

#[derive(Serialize, ToSchema)]
pub struct InsightsJson {
    campaigns: Vec<CampaignJson>,
}

/// Per campaign: marketing sent, opt-outs by source, opt-out rate, reasons.
#[utoipa::path(get, path = "/v1/insights/campaigns", tag = "insights",
    responses((status = 200, body = InsightsJson), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn campaigns(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
) -> Result<Json<InsightsJson>, ApiError> {
    let counters = state.store.campaign_counters(&tenant.id).await?;
    let campaigns = counters
        .into_iter()
        .map(|c| {
            let optouts_total = c.optouts.values().sum();
            CampaignJson {
                optout_rate: (c.sent > 0).then(|| optouts_total as f64 / c.sent as f64),
                delivery_rate: (c.sent > 0).then(|| c.delivered as f64 / c.sent as f64),
                segments: c.segments,
                delivered: c.delivered,
                undelivered: c.undelivered,
                blocked: c.blocked,
                campaign: c.campaign.map(String::from),
                sent: c.sent,
                optouts: c.optouts,
                optouts_total,
                reasons: c.reasons,
            }
        })
        .collect();
    Ok(Json(InsightsJson { campaigns }))
}
