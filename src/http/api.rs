//! The API listener: applications and operators. Never public.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{self, ApiError, ErrorBody};
use super::extract::{AuthTenant, JsonBody};
use super::{consents, insights, review, suppressions};
use crate::app::AppState;
use crate::domain::{rfc3339, MessageStatus, UnixMillis};
use crate::domain::{Campaign, Category, ConsentList, Sender};
use crate::outbound::{ErrorCode, OptOut, RecipientResult, SendRequest};
use crate::store::{Attempt, Callback, StoreError};

/// Every API route, registered through utoipa so the OpenAPI document and
/// the router are one list and cannot drift apart. Add routes here only.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(send_messages, super::messages::list_messages))
        .routes(routes!(
            super::messages::get_message,
            super::messages::cancel_message
        ))
        .routes(routes!(suppressions::list_suppressions))
        .routes(routes!(
            suppressions::get_suppression,
            suppressions::put_suppression,
            suppressions::delete_suppression
        ))
        .routes(routes!(suppressions::import))
        .routes(routes!(suppressions::export))
        .routes(routes!(consents::list_consents))
        .routes(routes!(
            consents::get_consent,
            consents::put_consent,
            consents::delete_consent
        ))
        .routes(routes!(consents::request_consent))
        .routes(routes!(consents::import))
        .routes(routes!(consents::export))
        .routes(routes!(consents::insights))
        .routes(routes!(
            super::subjects::get_subject,
            super::subjects::erase_subject
        ))
        .routes(routes!(review::list))
        .routes(routes!(review::confirm))
        .routes(routes!(insights::campaigns))
        .routes(routes!(super::webhooks::failed))
        .routes(routes!(
            super::twilio::front::create_message,
            super::twilio::lookup::list_messages
        ))
        .routes(routes!(super::twilio::lookup::fetch_message))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(|req, next| {
            super::observe("api", req, next)
        }))
        .with_state(state)
}

/// Liveness. Served on both listeners (the public one for load balancers).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store takes writes (a write that must reach the disk).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .store
        .ready()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()))?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// Prometheus metrics (text exposition format). Unauthenticated, like every
/// scrape target: the API listener is private.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics() -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::telemetry::render_metrics(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    (
        [("content-type", "application/json")],
        super::openapi::document_json(),
    )
        .into_response()
}

/// `POST /v1/messages` body. Unknown fields are refused, so a typo such as
/// `"categroy": "otp"` fails loudly instead of sending an OTP as marketing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// One number or an array of up to 1000 (international format).
    #[schema(value_type = Vec<String>, example = json!(["+33612345678"]))]
    to: Value,
    /// Alphanumeric sender id (up to 11 characters) or a number.
    from: String,
    body: String,
    /// `marketing` (default), `transactional` or `otp`.
    #[serde(default)]
    #[schema(example = "marketing")]
    category: Option<String>,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    /// Where this request's `message.status` events go (JSON, signed with
    /// the tenant's webhook secret), besides the tenant's own webhook.
    #[serde(default)]
    callback_url: Option<String>,
    /// RFC 3339: hold the message until then (at most 30 days ahead, and
    /// within `[messages] retention_days`). Marketing then also waits for
    /// its send window. Not for OTPs (422): an OTP is sent now or never.
    #[serde(default)]
    #[schema(example = "2026-03-16T09:30:00+01:00")]
    send_at: Option<String>,
    /// The consent list a consent-only tenant's marketing is checked
    /// against (default `marketing`).
    #[serde(default)]
    #[schema(example = "marketing")]
    list: Option<String>,
}

/// Why a send request was refused as a whole.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("to: must be a phone number string or an array of them")]
    RecipientsType,
    #[error("to: at least one recipient is required")]
    NoRecipients,
    #[error("to: {got} recipients; at most {max} per request")]
    TooManyRecipients { got: usize, max: usize },
    #[error("body: must not be empty")]
    EmptyBody,
    #[error("body: {got} characters; at most {max}")]
    BodyTooLong { got: usize, max: usize },
    #[error("category: {0:?} is not one of marketing, transactional, otp")]
    UnknownCategory(String),
    #[error("from: {0}")]
    InvalidSender(&'static str),
    #[error("campaign: {0}")]
    InvalidCampaign(&'static str),
    #[error("reference: must be 1 to 128 printable characters")]
    InvalidReference,
    #[error("callback_url: {0}")]
    InvalidCallback(&'static str),
    #[error("send_at: {0:?} is not an RFC 3339 time like 2026-03-16T09:30:00+01:00")]
    InvalidSendAt(String),
    #[error("send_at: at most {days} days ahead")]
    SendAtTooFar { days: i64 },
    #[error("send_at: an OTP is sent now or never; it cannot be scheduled")]
    OtpSendAt,
    #[error("list: {0}")]
    InvalidList(&'static str),
    #[error("reference: a request with this reference is still being processed")]
    InProgress,
    #[error("reference: already used for a different request")]
    ReferenceReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> ApiError {
        let msg = e.to_string();
        match e {
            SendError::RecipientsType => ApiError::bad_request("invalid_field", msg),
            SendError::NoRecipients => ApiError::unprocessable("no_recipients", msg),
            SendError::TooManyRecipients { .. } => {
                ApiError::unprocessable("too_many_recipients", msg)
            }
            SendError::EmptyBody => ApiError::unprocessable("empty_body", msg),
            SendError::BodyTooLong { .. } => ApiError::unprocessable("body_too_long", msg),
            SendError::UnknownCategory(_) => ApiError::unprocessable("invalid_category", msg),
            SendError::InvalidSender(_) => ApiError::unprocessable("invalid_sender", msg),
            SendError::InvalidCampaign(_) => ApiError::unprocessable("invalid_campaign", msg),
            SendError::InvalidReference => ApiError::unprocessable("invalid_reference", msg),
            SendError::InvalidCallback(_) => ApiError::unprocessable("invalid_callback_url", msg),
            SendError::InvalidSendAt(_) | SendError::SendAtTooFar { .. } => {
                ApiError::unprocessable("invalid_send_at", msg)
            }
            SendError::OtpSendAt => ApiError::unprocessable("send_at_not_allowed", msg),
            SendError::InvalidList(_) => ApiError::unprocessable("invalid_list", msg),
            SendError::InProgress => {
                ApiError::new(StatusCode::CONFLICT, "request_in_progress", msg)
            }
            SendError::ReferenceReused => ApiError::unprocessable("reference_reused", msg),
            SendError::Store(e) => ApiError::internal(e),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SendResponse {
    results: Vec<ResultJson>,
    summary: Summary,
}

#[derive(Serialize, Default, ToSchema)]
pub struct Summary {
    sent: usize,
    blocked: usize,
    rejected: usize,
    failed: usize,
    /// Held for later (send windows, `send_at`); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    scheduled: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One recipient's outcome.
#[derive(Serialize, ToSchema)]
pub struct ResultJson {
    /// E.164 when the number parsed.
    to: String,
    /// `sent`, `scheduled`, `blocked`, `rejected` or `failed`.
    #[schema(value_type = String)]
    status: &'static str,
    /// The message record's id (`GET /v1/messages/{id}`), sent or not.
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    body: String,
    /// `gsm7` or `ucs2`.
    #[schema(value_type = String)]
    encoding: &'static str,
    segments: usize,
    /// `{"method": "shortcode", "shortcode"}` or `{"method": "url", "url"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    optout: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<String>,
    /// `{"code", "message"}`; codes in docs/api.md. An
    /// `outside_send_window` refusal has `next_open` (RFC 3339) when the
    /// window opens again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    error: Option<Value>,
    /// `scheduled`: when it will be released (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_after: Option<String>,
}

impl From<RecipientResult> for ResultJson {
    fn from(r: RecipientResult) -> ResultJson {
        let (deliver_after, next_open) = match (r.status, r.deliver_after) {
            (MessageStatus::Scheduled, Some(at)) => (Some(rfc3339(at)), None),
            (_, Some(at)) => (None, Some(rfc3339(at))),
            _ => (None, None),
        };
        ResultJson {
            deliver_after,
            to: r.to,
            status: r.status.as_str(),
            id: r.id.as_str().to_string(),
            country: r.country.map(|c| c.as_str().to_string()),
            body: r.body,
            encoding: r.encoding.as_str(),
            segments: r.segments,
            optout: r.optout.map(|o| match o {
                OptOut::ShortCode(code) => {
                    serde_json::json!({"method": "shortcode", "shortcode": code.as_str()})
                }
                OptOut::Url(url) => serde_json::json!({"method": "url", "url": url}),
            }),
            provider_id: r.provider_id,
            error: r.error.map(|f| {
                let mut e = serde_json::json!({"code": f.code.as_str(), "message": f.message});
                if let Some(c) = f.provider_code {
                    e["provider_code"] = c.into();
                }
                if let Some(s) = f.retry_after {
                    e["retry_after"] = s.into();
                }
                if let Some(at) = &next_open {
                    e["next_open"] = at.clone().into();
                }
                e
            }),
        }
    }
}

/// The limits a send request is checked against.
struct Limits {
    max_recipients: usize,
    max_chars: usize,
    /// Now, and how far ahead `send_at` may be.
    now: UnixMillis,
    send_at_days: i64,
}

fn validate(
    body: SendBody,
    tenant: std::sync::Arc<crate::domain::Tenant>,
    limits: &Limits,
) -> Result<(SendRequest, Option<String>), SendError> {
    let (max_recipients, max_chars) = (limits.max_recipients, limits.max_chars);
    let to: Vec<String> = match body.to {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(SendError::RecipientsType),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(SendError::RecipientsType),
    };
    if to.is_empty() {
        return Err(SendError::NoRecipients);
    }
    if to.len() > max_recipients {
        return Err(SendError::TooManyRecipients {
            got: to.len(),
            max: max_recipients,
        });
    }
    if body.body.trim().is_empty() {
        return Err(SendError::EmptyBody);
    }
    let chars = body.body.chars().count();
    if chars > max_chars {
        return Err(SendError::BodyTooLong {
            got: chars,
            max: max_chars,
        });
    }
    let category = match body.category.as_deref() {
        None => Category::Marketing,
        Some(c) => Category::parse(c).ok_or_else(|| SendError::UnknownCategory(c.to_string()))?,
    };
    let from = Sender::parse(&body.from).map_err(SendError::InvalidSender)?;
    let campaign = body
        .campaign
        .as_deref()
        .map(Campaign::parse)
        .transpose()
        .map_err(SendError::InvalidCampaign)?;
    if let Some(r) = &body.reference {
        if r.is_empty() || r.len() > 128 || r.chars().any(char::is_control) {
            return Err(SendError::InvalidReference);
        }
    }
    let callback = body
        .callback_url
        .as_deref()
        .map(|u| callback_url(u).map(|url| Callback::Native { url }))
        .transpose()
        .map_err(SendError::InvalidCallback)?;
    let send_at = match body.send_at.as_deref() {
        None => None,
        Some(raw) => {
            let at = raw
                .parse::<jiff::Timestamp>()
                .map_err(|_| SendError::InvalidSendAt(raw.chars().take(64).collect()))?
                .as_millisecond();
            if category == Category::Otp {
                return Err(SendError::OtpSendAt);
            }
            if at > limits.now + limits.send_at_days * 86_400_000 {
                return Err(SendError::SendAtTooFar {
                    days: limits.send_at_days,
                });
            }
            Some(at)
        }
    };
    let list = body
        .list
        .as_deref()
        .map(ConsentList::parse)
        .transpose()
        .map_err(SendError::InvalidList)?
        .unwrap_or_default();
    let req = SendRequest {
        tenant,
        to,
        from,
        body: body.body,
        category,
        campaign,
        messaging_service: None,
        callback,
        send_at,
        list,
    };
    Ok((req, body.reference))
}

/// A status callback URL: absolute http(s), at most 2048 bytes. Shared with
/// the Twilio front's `StatusCallback`.
pub fn callback_url(raw: &str) -> Result<String, &'static str> {
    if raw.len() > 2048 {
        return Err("at most 2048 bytes");
    }
    let url = reqwest::Url::parse(raw).map_err(|_| "must be an absolute URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host");
    }
    Ok(raw.to_string())
}

/// What identifies a request for idempotency: everything that shapes what is sent.
fn fingerprint(req: &SendRequest) -> [u8; 32] {
    let mut canonical = serde_json::json!([
        req.to,
        req.from.as_str(),
        req.body,
        req.category.as_str(),
        req.campaign.as_ref().map(|c| c.as_str()),
        req.send_at,
    ]);
    // Only when named, so that the fingerprints of requests made before
    // lists existed stay what they were.
    if req.list != ConsentList::marketing() {
        if let Value::Array(parts) = &mut canonical {
            parts.push(req.list.as_str().into());
        }
    }
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

/// How far ahead `send_at` may be (and never past the records' retention).
const SEND_AT_MAX_DAYS: u32 = 30;

/// Sends one message to up to 1000 recipients. Marketing gets the opt-out
/// footer of each recipient's country and is blocked for opted-out numbers;
/// outside its send window it is held (`scheduled`) or refused, per the
/// tenant's `quiet_hours`. `send_at` holds marketing and transactional
/// messages until then.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = SendBody,
    responses(
        (status = 200, body = SendResponse, description = "Per-recipient results"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
async fn send_messages(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<Response, ApiError> {
    let config = &state.settings.config;
    let limits = Limits {
        max_recipients: config.limits.max_recipients,
        max_chars: config.limits.max_body_chars,
        now: state.outbound.clock.now(),
        send_at_days: i64::from(config.messages.retention_days.min(SEND_AT_MAX_DAYS)),
    };
    let (req, reference) = validate(body, tenant.clone(), &limits)?;

    // A reference makes the request idempotent: (reference, content fingerprint).
    let idempotency = reference.map(|r| (r, fingerprint(&req)));
    if let Some((reference, fp)) = &idempotency {
        match state
            .store
            .begin_request(&tenant.id, reference, fp)
            .await
            .map_err(SendError::from)?
        {
            Attempt::Fresh => {}
            Attempt::Done(stored) => {
                tracing::info!(tenant = %tenant.id, "replayed an idempotent request");
                let mut resp = (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    stored,
                )
                    .into_response();
                resp.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(resp);
            }
            Attempt::InProgress => return Err(SendError::InProgress.into()),
            Attempt::Mismatch => return Err(SendError::ReferenceReused.into()),
        }
    }

    let results = state.outbound.send(&req).await;
    // Nothing went out because the store failed: the reference is freed
    // instead of answered, so that a retry does the work.
    let mut idempotency = idempotency;
    let store_failed = |r: &RecipientResult| {
        r.error
            .as_ref()
            .is_some_and(|e| e.code == ErrorCode::StoreUnavailable)
    };
    let went =
        |r: &RecipientResult| matches!(r.status, MessageStatus::Sent | MessageStatus::Scheduled);
    if results.iter().any(store_failed) && !results.iter().any(went) {
        if let Some((reference, _)) = idempotency.take() {
            if let Err(e) = state.store.abandon_request(&tenant.id, &reference).await {
                tracing::warn!(error = %e, "could not release an idempotency reference");
            }
        }
    }
    let mut summary = Summary::default();
    for r in &results {
        *match r.status {
            MessageStatus::Sent => &mut summary.sent,
            MessageStatus::Blocked => &mut summary.blocked,
            MessageStatus::Rejected => &mut summary.rejected,
            MessageStatus::Failed => &mut summary.failed,
            MessageStatus::Scheduled => &mut summary.scheduled,
            s @ (MessageStatus::Delivered
            | MessageStatus::Undelivered
            | MessageStatus::Canceled) => {
                unreachable!("a send answers before any delivery report: {s}")
            }
        } += 1;
    }
    tracing::info!(
        tenant = %tenant.id,
        category = %req.category,
        sent = summary.sent,
        blocked = summary.blocked,
        rejected = summary.rejected,
        failed = summary.failed,
        scheduled = summary.scheduled,
        "send request handled"
    );
    let response = SendResponse {
        results: results.into_iter().map(ResultJson::from).collect(),
        summary,
    };
    let bytes = serde_json::to_vec(&response).expect("response serializes");
    if let Some((reference, fp)) = &idempotency {
        if let Err(e) = state
            .store
            .finish_request(&tenant.id, reference, fp, &bytes)
            .await
        {
            tracing::error!(error = %e, "could not store an idempotent response");
        }
    }
    Ok((
        StatusCode::OK,
        [("content-type", "application/json")],
        bytes,
    )
        .into_response())
}
