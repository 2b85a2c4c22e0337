//! The API listener: applications and operators. Never public.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{self, ApiError};
use super::extract::{AuthTenant, JsonBody};
use crate::app::AppState;
use crate::domain::{Campaign, Category, Sender};
use crate::outbound::{OptOut, RecipientResult, SendRequest, Status};
use crate::store::{Attempt, StoreError};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/messages", post(send_messages))
        .route(
            super::twilio::MESSAGES_PATH,
            post(super::twilio::create_message),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the store answers.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .store
        .link("00000000")
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()))?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// `POST /v1/messages` body. Unknown fields are refused, so a typo such as
/// `"categroy": "otp"` fails loudly instead of sending an OTP as marketing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// One number or an array; checked by hand for a clearer error.
    to: Value,
    from: String,
    body: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    reference: Option<String>,
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
            SendError::InProgress => {
                ApiError::new(StatusCode::CONFLICT, "request_in_progress", msg)
            }
            SendError::ReferenceReused => ApiError::unprocessable("reference_reused", msg),
            SendError::Store(e) => ApiError::internal(e),
        }
    }
}

#[derive(Serialize)]
struct SendResponse {
    results: Vec<ResultJson>,
    summary: Summary,
}

#[derive(Serialize, Default)]
struct Summary {
    sent: usize,
    blocked: usize,
    rejected: usize,
    failed: usize,
}

#[derive(Serialize)]
struct ResultJson {
    to: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    body: String,
    encoding: &'static str,
    segments: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    optout: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

impl From<RecipientResult> for ResultJson {
    fn from(r: RecipientResult) -> ResultJson {
        ResultJson {
            to: r.to,
            status: r.status.as_str(),
            id: r.id.map(|i| i.as_str().to_string()),
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
                e
            }),
        }
    }
}

fn validate(
    body: SendBody,
    tenant: std::sync::Arc<crate::domain::Tenant>,
    max_recipients: usize,
    max_chars: usize,
) -> Result<(SendRequest, Option<String>), SendError> {
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
    let req = SendRequest {
        tenant,
        to,
        from,
        body: body.body,
        category,
        campaign,
        messaging_service: None,
    };
    Ok((req, body.reference))
}

/// What identifies a request for idempotency: everything that shapes what is sent.
fn fingerprint(req: &SendRequest) -> [u8; 32] {
    let canonical = serde_json::json!([
        req.to,
        req.from.as_str(),
        req.body,
        req.category.as_str(),
        req.campaign.as_ref().map(|c| c.as_str()),
    ]);
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

async fn send_messages(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<Response, ApiError> {
    let limits = &state.settings.config.limits;
    let (req, reference) = validate(
        body,
        tenant.clone(),
        limits.max_recipients,
        limits.max_body_chars,
    )?;

    let fp = fingerprint(&req);
    if let Some(reference) = &reference {
        match state
            .store
            .begin_request(&tenant.id, reference, &fp)
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

    let results = match state.outbound.send(&req).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(reference) = &reference {
                let _ = state.store.abandon_request(&tenant.id, reference);
            }
            return Err(SendError::Store(e).into());
        }
    };
    let mut summary = Summary::default();
    for r in &results {
        *match r.status {
            Status::Sent => &mut summary.sent,
            Status::Blocked => &mut summary.blocked,
            Status::Rejected => &mut summary.rejected,
            Status::Failed => &mut summary.failed,
        } += 1;
    }
    tracing::info!(
        tenant = %tenant.id,
        category = %req.category,
        sent = summary.sent,
        blocked = summary.blocked,
        rejected = summary.rejected,
        failed = summary.failed,
        "send request handled"
    );
    let response = SendResponse {
        results: results.into_iter().map(ResultJson::from).collect(),
        summary,
    };
    let bytes = serde_json::to_vec(&response).expect("response serializes");
    if let Some(reference) = &reference {
        if let Err(e) = state
            .store
            .finish_request(&tenant.id, reference, &fp, &bytes)
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
