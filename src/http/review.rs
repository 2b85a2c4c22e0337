//! `/v1/possible-optouts`: replies that mention a stop keyword but are not an
//! opt-out by the rules (`Cancel my order`, `please stop sending these`),
//! kept for a human to read, and the action that turns one into an opt-out.
//!
//! A tenant sees a reply only if it could be meant: the short code is
//! dedicated to it, or it sent marketing to that number through that code.
//! Other tenants on a shared code do not learn that the number wrote.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{AuthTenant, PathParam, QueryParams};
use super::suppressions::{record_durably, state_json, SuppressionJson};
use crate::app::AppState;
use crate::domain::{rfc3339, Action, Event, Source, Tenant};
use crate::store::{PossibleOptOut, Store, StoreError};

const MAX_PAGE: usize = 500;
/// Records read from the store per step while filtering for one tenant.
const SCAN_STEP: usize = 512;

async fn visible_to(
    store: &dyn Store,
    tenant: &Tenant,
    p: &PossibleOptOut,
) -> Result<bool, StoreError> {
    if !p.tenants.contains(&tenant.id) {
        return Ok(false);
    }
    if p.tenants.len() == 1 {
        return Ok(true);
    }
    Ok(store
        .last_marketing_send(&p.number, &p.shortcode, &tenant.id)
        .await?
        .is_some())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewParams {
    /// Cursor: the `id` of the last item of the previous page.
    after: Option<String>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct PossibleOptOutJson {
    id: String,
    at: String,
    number: String,
    country: String,
    shortcode: String,
    /// What the recipient wrote.
    text: String,
    /// Whether the number is currently suppressed for this tenant.
    suppressed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReviewListJson {
    items: Vec<PossibleOptOutJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn bad_cursor() -> ApiError {
    ApiError::unprocessable("invalid_field", "after: must be an id from a previous page")
}

/// Replies that mention a stop keyword without being an opt-out, oldest first.
#[utoipa::path(get, path = "/v1/possible-optouts", tag = "suppressions", params(ReviewParams),
    responses((status = 200, body = ReviewListJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<ReviewParams>,
) -> Result<Json<ReviewListJson>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("limit: must be 1 to {MAX_PAGE}"),
        ));
    }
    let mut cursor = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(a.parse::<u64>().map_err(|_| bad_cursor())?),
        None => None,
    };
    let store = state.store.as_ref();
    let mut items = Vec::new();
    'scan: loop {
        let batch = store.possible_optouts(cursor, SCAN_STEP).await?;
        let exhausted = batch.len() < SCAN_STEP;
        for (id, p) in batch {
            cursor = Some(id);
            if !visible_to(store, &tenant, &p).await? {
                continue;
            }
            let suppressed = store
                .suppression(&tenant.id, &p.number)
                .await?
                .is_some_and(|s| s.suppressed);
            items.push(PossibleOptOutJson {
                id: id.to_string(),
                at: rfc3339(p.at),
                country: p.number.country().to_string(),
                number: p.number.as_str().to_string(),
                shortcode: p.shortcode.to_string(),
                text: p.text,
                suppressed,
            });
            if items.len() == limit {
                break 'scan;
            }
        }
        if exhausted {
            break;
        }
    }
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.id.clone()))
        .flatten();
    Ok(Json(ReviewListJson { items, next }))
}

/// Turns a possible opt-out into an opt-out for this tenant (source `sms`,
/// the recipient's text kept, reason `confirmed_on_review`). Idempotent.
#[utoipa::path(post, path = "/v1/possible-optouts/{id}/confirm", tag = "suppressions",
    params(("id" = String, Path)),
    responses((status = 200, body = SuppressionJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathParam(id): PathParam,
) -> Result<Json<SuppressionJson>, ApiError> {
    let not_found = || ApiError::not_found("no such possible opt-out");
    let id: u64 = id.parse().map_err(|_| not_found())?;
    let store = state.store.as_ref();
    let p = store.possible_optout(id).await?.ok_or_else(not_found)?;
    if !visible_to(store, &tenant, &p).await? {
        return Err(not_found());
    }
    let number = p.number.clone();
    let mut event = Event::new(tenant.id.clone(), &number, Action::OptOut, Source::Sms);
    event.text = Some(p.text);
    event.reason = Some("confirmed_on_review".into());
    event.campaign = store
        .last_marketing_send(&p.number, &p.shortcode, &tenant.id)
        .await?
        .and_then(|s| s.campaign);
    let changed = record_durably(&state, &event).await?;
    tracing::info!(tenant = %tenant.id, number = %number, changed, "possible opt-out confirmed on review");
    Ok(Json(
        state_json(store, &tenant.id, &number, Some(changed)).await?,
    ))
}
