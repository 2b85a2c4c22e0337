//! `/v1/suppressions`: a tenant's view of its opt-outs, strictly scoped to
//! the tenant of the API key.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::csv_upload::{csv_body, import_error, ImportJson};
use super::error::{ApiError, ErrorBody};
use super::extract::{page_limit, parse_json, read_body, AuthTenant, PathNumber, QueryParams};
use crate::app::AppState;
use crate::domain::{rfc3339, Action, Campaign, Event, PhoneNumber, Source, TenantId};
use crate::store::{Store, StoreError, Suppression};
use crate::suppressions::{export_csv, import_csv, ImportError};

const MAX_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
enum SuppressionError {
    #[error("after: {0}")]
    InvalidCursor(crate::domain::PhoneError),
    #[error("proof: a non-empty proof of consent is required to re-subscribe a number")]
    ProofRequired,
    #[error("{0}")]
    InvalidField(&'static str),
    #[error(transparent)]
    Import(ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SuppressionError> for ApiError {
    fn from(e: SuppressionError) -> ApiError {
        let msg = e.to_string();
        match e {
            SuppressionError::InvalidCursor(_) => ApiError::unprocessable("invalid_number", msg),
            SuppressionError::ProofRequired => ApiError::unprocessable("proof_required", msg),
            SuppressionError::InvalidField(_) => ApiError::unprocessable("invalid_field", msg),
            SuppressionError::Store(e) => ApiError::internal(e),
            SuppressionError::Import(e) => import_error(e, msg),
        }
    }
}

/// One audit event as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct EventJson {
    /// RFC 3339, UTC.
    at: String,
    /// `opt_out` or `opt_in`.
    #[schema(value_type = String, example = "opt_out")]
    action: Action,
    /// `sms`, `link`, `api` or `import`.
    #[schema(value_type = String, example = "sms")]
    source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The raw text the recipient sent, or the proof given to re-subscribe.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl From<Event> for EventJson {
    fn from(e: Event) -> Self {
        EventJson {
            at: rfc3339(e.at),
            action: e.action,
            source: e.source,
            campaign: e.campaign.map(String::from),
            reason: e.reason,
            text: e.text,
        }
    }
}

/// A number's state for this tenant, with its full history.
#[derive(Serialize, ToSchema)]
pub struct SuppressionJson {
    #[schema(example = "+33612345678")]
    number: String,
    #[schema(example = "FR")]
    country: String,
    suppressed: bool,
    /// When the state last changed (absent if it never did).
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<String>,
    /// When the number's data was erased (`DELETE /v1/subjects/{number}`):
    /// the opt-out stays, as a keyed hash with only its time and source.
    #[serde(skip_serializing_if = "Option::is_none")]
    erased: Option<String>,
    /// `true` when this request changed the state (PUT/DELETE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
    history: Vec<EventJson>,
}

pub(crate) async fn state_json(
    store: &dyn Store,
    tenant: &TenantId,
    number: &PhoneNumber,
    changed: Option<bool>,
) -> Result<SuppressionJson, StoreError> {
    let state = store.suppression(tenant, number).await?;
    let history = store
        .events(tenant, number)
        .await?
        .into_iter()
        .map(EventJson::from)
        .collect();
    Ok(SuppressionJson {
        number: number.as_str().to_string(),
        country: number.country().to_string(),
        suppressed: state.as_ref().is_some_and(|s| s.suppressed),
        updated: state.as_ref().map(|s| rfc3339(s.updated)),
        source: state.as_ref().map(|s| s.source),
        reason: state.as_ref().and_then(|s| s.reason.clone()),
        erased: state.as_ref().and_then(|s| s.erased).map(rfc3339),
        campaign: state.and_then(|s| s.campaign).map(String::from),
        changed,
        history,
    })
}

/// State and full history of a number.
#[utoipa::path(get, path = "/v1/suppressions/{number}", tag = "suppressions",
    params(("number" = String, Path, description = "Any spelling of an international number; URL-encode the `+` as %2B or leave it")),
    responses((status = 200, body = SuppressionJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_suppression(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
) -> Result<Json<SuppressionJson>, ApiError> {
    Ok(Json(
        state_json(state.store.as_ref(), &tenant.id, &number, None)
            .await
            .map_err(SuppressionError::from)?,
    ))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    /// Why the number is suppressed (free text, kept in the audit log).
    reason: Option<String>,
    campaign: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Evidence of renewed consent (e.g. "signed form 2026-11-02, ref 8812"). Required.
    proof: String,
}

/// Reads an optional JSON body: empty is the default, anything else must be JSON.
async fn optional_json<T: serde::de::DeserializeOwned + Default>(
    req: Request,
    state: &AppState,
) -> Result<T, ApiError> {
    let bytes = read_body(req, state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

fn clean_text(s: Option<String>, what: &'static str) -> Result<Option<String>, SuppressionError> {
    match s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 500 || s.chars().any(char::is_control) => {
            Err(SuppressionError::InvalidField(what))
        }
        other => Ok(other),
    }
}

const CAMPAIGN_ERROR: &str = "campaign: 1 to 64 bytes, no control characters";

/// Suppresses a number for this tenant (source `api`). Idempotent.
#[utoipa::path(put, path = "/v1/suppressions/{number}", tag = "suppressions",
    params(("number" = String, Path)),
    request_body(content = PutBody, description = "Optional", content_type = "application/json"),
    responses((status = 200, body = SuppressionJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_suppression(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
    req: Request,
) -> Result<Json<SuppressionJson>, ApiError> {
    let body: PutBody = optional_json(req, &state).await?;
    let mut event = Event::new(tenant.id.clone(), &number, Action::OptOut, Source::Api);
    event.reason = clean_text(
        body.reason,
        "reason: at most 500 characters, no control characters",
    )?;
    event.campaign = clean_text(body.campaign, CAMPAIGN_ERROR)?
        .map(|c| Campaign::parse(&c).map_err(|_| SuppressionError::InvalidField(CAMPAIGN_ERROR)))
        .transpose()?;
    let changed = record_durably(&state, &event)
        .await
        .map_err(SuppressionError::from)?;
    tracing::info!(tenant = %tenant.id, number = %number, changed, "suppressed through the API");
    Ok(Json(
        state_json(state.store.as_ref(), &tenant.id, &number, Some(changed))
            .await
            .map_err(SuppressionError::from)?,
    ))
}

/// Re-subscribes a number; needs a `proof` of consent, which is audited.
#[utoipa::path(delete, path = "/v1/suppressions/{number}", tag = "suppressions",
    params(("number" = String, Path)),
    request_body(content = DeleteBody, content_type = "application/json"),
    responses((status = 200, body = SuppressionJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_suppression(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
    req: Request,
) -> Result<Json<SuppressionJson>, ApiError> {
    let bytes = read_body(req, &state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SuppressionError::ProofRequired.into());
    }
    let body: DeleteBody = parse_json(&bytes)?;
    let proof = clean_text(
        Some(body.proof),
        "proof: at most 500 characters, no control characters",
    )?
    .ok_or(SuppressionError::ProofRequired)?;
    let mut event = Event::new(tenant.id.clone(), &number, Action::OptIn, Source::Api);
    event.text = Some(proof);
    let changed = record_durably(&state, &event)
        .await
        .map_err(SuppressionError::from)?;
    tracing::info!(tenant = %tenant.id, number = %number, changed, "re-subscribed through the API");
    Ok(Json(
        state_json(state.store.as_ref(), &tenant.id, &number, Some(changed))
            .await
            .map_err(SuppressionError::from)?,
    ))
}

/// Records and waits for the disk before the caller answers 2xx.
/// The tenant's webhook hears of a change (`optout`, `optin`), from the
/// outbox, written in the change's own transaction.
pub(crate) async fn record_durably(state: &AppState, event: &Event) -> Result<bool, StoreError> {
    let store = state.store.as_ref();
    let tenant = state.tenants.iter().find(|t| t.id == event.tenant);
    let notify = crate::outbox::for_subscription(tenant.map(|t| t.as_ref()), event);
    let wake = !notify.is_empty();
    let changed = store.record_notifying(&[(event.clone(), notify)]).await?[0];
    store.durable().await?;
    if changed && wake {
        state.outbox.wake();
    }
    Ok(changed)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Cursor: the last number of the previous page (its `next`).
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ListItem {
    number: String,
    updated: String,
    #[schema(value_type = String)]
    source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ListJson {
    items: Vec<ListItem>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Currently suppressed numbers, in E.164 order, cursor-paginated.
///
/// The cursor is a number, so concurrent opt-outs never shift pages: each
/// number suppressed for the whole walk is listed exactly once.
#[utoipa::path(get, path = "/v1/suppressions", tag = "suppressions", params(ListParams),
    responses((status = 200, body = ListJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_suppressions(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListJson>, ApiError> {
    let limit = page_limit(params.limit, MAX_PAGE)?;
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(PhoneNumber::parse(a).map_err(SuppressionError::InvalidCursor)?),
        None => None,
    };
    let page = state
        .store
        .suppressed_page(&tenant.id, after.as_ref(), limit)
        .await
        .map_err(SuppressionError::from)?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|(n, _)| n.as_str().to_string()))
        .flatten();
    let items = page
        .into_iter()
        .map(|(number, s): (PhoneNumber, Suppression)| ListItem {
            number: number.as_str().to_string(),
            updated: rfc3339(s.updated),
            source: s.source,
            reason: s.reason,
        })
        .collect();
    Ok(Json(ListJson { items, next }))
}

/// Imports a CSV (header row; a `number` column in any spelling, optional
/// `reason`). Streams: the file is never held in memory. Bad rows are
/// reported by line; good rows are kept.
#[utoipa::path(post, path = "/v1/suppressions/import", tag = "suppressions",
    request_body(content = String, content_type = "text/csv", example = "number,reason\n+33612345678,asked by phone\n"),
    responses((status = 200, body = ImportJson), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    req: Request,
) -> Result<Json<ImportJson>, ApiError> {
    let reader = csv_body(req)?;
    let report = import_csv(state.store.as_ref(), &tenant.id, reader)
        .await
        .map_err(SuppressionError::Import)?;
    tracing::info!(tenant = %tenant.id, rows = report.rows, imported = report.imported, failed = report.failed, "suppression import");
    Ok(Json(report.into()))
}

/// Streams every suppressed number as CSV (`number,country,source,updated,reason,campaign`),
/// which `POST /v1/suppressions/import` reads back.
#[utoipa::path(get, path = "/v1/suppressions/export", tag = "suppressions",
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(State(state): State<AppState>, AuthTenant(tenant): AuthTenant) -> Response {
    let stream = export_csv(state.store.clone(), tenant.id.clone()).map_err(|e| {
        tracing::error!(error = %e, "export failed mid-stream");
        std::io::Error::other(e)
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"suppressions-{}.csv\"", tenant.id),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
