//! `GET /v1/webhooks/failed`: the tenant's notifications the outbox gave up
//! on (its endpoint kept failing for `[webhooks] give_up_after_secs`), so
//! that an operator can see what the application missed.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{page_limit, AuthTenant, QueryParams};
use crate::app::AppState;
use crate::domain::{rfc3339, Action, Notification};

const MAX_PAGE: usize = 500;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FailedParams {
    /// Cursor: the `next` of the previous page.
    after: Option<u64>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<usize>,
}

/// One notification given up on.
#[derive(Serialize, ToSchema)]
pub struct FailedJson {
    /// The event id it was delivered under (`X-Stopgate-Delivery`).
    id: String,
    /// `message.status`, `optout`, `optin`, `smpp.receipt` or `reply`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Where it was to go.
    destination: &'static str,
    created: String,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// The message, for `message.status` and `smpp.receipt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// The number, for `optout` and `optin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FailedListJson {
    items: Vec<FailedJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<u64>,
}

/// Webhooks given up on, oldest first.
#[utoipa::path(get, path = "/v1/webhooks/failed", tag = "webhooks", params(FailedParams),
    responses((status = 200, body = FailedListJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn failed(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<FailedParams>,
) -> Result<Json<FailedListJson>, ApiError> {
    let limit = page_limit(params.limit, MAX_PAGE)?;
    let page = state
        .store
        .failed_items(&tenant.id, params.after, limit)
        .await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|i| i.id))
        .flatten();
    let items = page
        .into_iter()
        .map(|i| {
            let (kind, destination, message, number) = match &i.notification {
                Notification::MessageStatus(e) => {
                    ("message.status", "webhook", Some(e.id.to_string()), None)
                }
                Notification::MessageCallback { event, .. } => (
                    "message.status",
                    "callback",
                    Some(event.id.to_string()),
                    None,
                ),
                Notification::Subscription(e) => (
                    if e.action == Action::OptOut {
                        "optout"
                    } else {
                        "optin"
                    },
                    "webhook",
                    None,
                    Some(e.number.as_str().to_string()),
                ),
                Notification::SmppReceipt(r) => {
                    ("smpp.receipt", "smpp", Some(r.id.to_string()), None)
                }
                Notification::Reply { .. } => ("reply", "sms", None, None),
                Notification::ConsentRequest { to, .. } => (
                    "consent_request",
                    "sms",
                    None,
                    Some(to.as_str().to_string()),
                ),
            };
            FailedJson {
                id: format!("evt_{}", i.id),
                kind,
                destination,
                created: rfc3339(i.created),
                attempts: i.attempts,
                last_error: i.last_error,
                message,
                number,
            }
        })
        .collect();
    Ok(Json(FailedListJson { items, next }))
}
