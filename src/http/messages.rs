//! `/v1/messages/{id}` and `/v1/messages`: a tenant's message records and
//! their status history, strictly scoped to the tenant of the API key;
//! `DELETE /v1/messages/{id}` cancels a held (`scheduled`) one.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{page_limit, AuthTenant, PathParam, QueryParams};
use crate::app::AppState;
use crate::domain::{rfc3339, Campaign, MessageId, MessageStatus};
use crate::store::{Cancel, MessageFilter, MessageRecord, StoreError};

const MAX_PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
enum MessagesError {
    #[error("no such message")]
    NotFound,
    #[error("the message is {0}, not scheduled: only a held message can be canceled")]
    NotScheduled(MessageStatus),
    #[error("status: {0:?} is not one of scheduled, sent, delivered, undelivered, failed, blocked, rejected, canceled")]
    BadStatus(String),
    #[error("campaign: {0}")]
    BadCampaign(&'static str),
    #[error("after: must be the id of a message from a previous page")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MessagesError> for ApiError {
    fn from(e: MessagesError) -> ApiError {
        let msg = e.to_string();
        match e {
            MessagesError::NotFound => ApiError::not_found(msg),
            MessagesError::NotScheduled(_) => {
                ApiError::new(axum::http::StatusCode::CONFLICT, "not_scheduled", msg)
            }
            MessagesError::BadStatus(_)
            | MessagesError::BadCampaign(_)
            | MessagesError::BadCursor => ApiError::unprocessable("invalid_field", msg),
            MessagesError::Store(e) => ApiError::internal(e),
        }
    }
}

/// One status the message reached.
#[derive(Serialize, ToSchema)]
pub struct StatusJson {
    #[schema(value_type = String, example = "delivered")]
    status: MessageStatus,
    /// RFC 3339, UTC.
    at: String,
    /// Our error code, or the provider's delivery error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A message record.
#[derive(Serialize, ToSchema)]
pub struct MessageJson {
    id: String,
    /// E.164 when the number parsed.
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[schema(example = "marketing")]
    category: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<String>,
    from: String,
    /// `gsm7` or `ucs2`.
    encoding: String,
    segments: usize,
    /// The current (most final) status.
    #[schema(value_type = String, example = "delivered")]
    status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created: String,
    updated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<String>,
    /// Only for marketing, and only with `[messages] keep_body = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    /// A held message: when it was planned to go (RFC 3339, UTC). A
    /// release may come later (the provider's rate limit, a window that
    /// closed again), never earlier.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_after: Option<String>,
    /// Every status reached, oldest first.
    history: Vec<StatusJson>,
}

impl From<MessageRecord> for MessageJson {
    fn from(r: MessageRecord) -> MessageJson {
        let current = r.current().clone();
        let updated = r.history.iter().map(|c| c.at).max().unwrap_or(current.at);
        MessageJson {
            id: r.id.as_str().to_string(),
            created: rfc3339(r.created()),
            updated: rfc3339(updated),
            status: current.status,
            error: current.error,
            to: r.to,
            country: r.country.map(|c| c.to_string()),
            category: r.category.as_str().to_string(),
            campaign: r.campaign.map(String::from),
            from: r.sender,
            encoding: r.encoding.as_str().to_string(),
            segments: r.segments,
            provider: r.provider,
            provider_id: r.provider_id,
            body: r.body,
            deliver_after: r.deliver_after.map(rfc3339),
            history: r
                .history
                .into_iter()
                .map(|c| StatusJson {
                    status: c.status,
                    at: rfc3339(c.at),
                    error: c.error,
                })
                .collect(),
        }
    }
}

/// A message's record: its current status and every status it reached.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The `id` of a send result (`msg_...`), or its Twilio SID (`SM...`)")),
    responses((status = 200, body = MessageJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_message(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathParam(id): PathParam,
) -> Result<Json<MessageJson>, ApiError> {
    let id = MessageId::parse(&id)
        .or_else(|| MessageId::from_sid(&id))
        .ok_or(MessagesError::NotFound)?;
    let record = state
        .store
        .message(&tenant.id, &id)
        .await
        .map_err(MessagesError::from)?
        .ok_or(MessagesError::NotFound)?;
    Ok(Json(record.into()))
}

/// Cancels a held message (`scheduled`: outside its send window, or
/// waiting for its `send_at`): it will not be sent, and its record says
/// `canceled`. `409` once it is no longer held (released, being released,
/// canceled) or was never held.
#[utoipa::path(delete, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The `id` of a send result (`msg_...`), or its Twilio SID (`SM...`)")),
    responses((status = 200, body = MessageJson, description = "Canceled: the record"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_message(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathParam(id): PathParam,
) -> Result<Json<MessageJson>, ApiError> {
    let id = MessageId::parse(&id)
        .or_else(|| MessageId::from_sid(&id))
        .ok_or(MessagesError::NotFound)?;
    match state
        .scheduler
        .cancel(&tenant, &id)
        .await
        .map_err(MessagesError::from)?
    {
        Cancel::Canceled { record, .. } => {
            tracing::info!(tenant = %tenant.id, id = %id, "held message canceled");
            Ok(Json(record.into()))
        }
        Cancel::NotScheduled(r) => Err(MessagesError::NotScheduled(r.status()).into()),
        Cancel::NotFound => Err(MessagesError::NotFound.into()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only messages whose current status is this one.
    status: Option<String>,
    /// Only messages of this campaign.
    campaign: Option<String>,
    /// Cursor: the `next` of the previous page (newest first).
    after: Option<String>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageListJson {
    items: Vec<MessageJson>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The tenant's messages, newest first. The cursor is a message id, so
/// messages sent meanwhile never shift a page.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(ListParams),
    responses((status = 200, body = MessageListJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<MessageListJson>, ApiError> {
    let limit = page_limit(params.limit, MAX_PAGE)?;
    let filter = MessageFilter {
        status: match params.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => {
                Some(MessageStatus::parse(s).ok_or_else(|| MessagesError::BadStatus(s.into()))?)
            }
            None => None,
        },
        campaign: params
            .campaign
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(Campaign::parse)
            .transpose()
            .map_err(MessagesError::BadCampaign)?,
        to: None,
    };
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(MessageId::parse(a).ok_or(MessagesError::BadCursor)?),
        None => None,
    };
    let page = state
        .store
        .messages(&tenant.id, &filter, after.as_ref(), limit)
        .await
        .map_err(MessagesError::from)?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|r| r.id.as_str().to_string()))
        .flatten();
    Ok(Json(MessageListJson {
        items: page.into_iter().map(MessageJson::from).collect(),
        next,
    }))
}
