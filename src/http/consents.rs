//! `/v1/consents`: a tenant's consent records with their proof and history,
//! double opt-in requests, CSV import and export, and the consent insights;
//! strictly scoped to the tenant of the API key.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::csv_upload::{csv_body, import_error, ImportJson};
use super::error::{ApiError, ErrorBody};
use super::extract::{page_limit, parse_json, read_body, AuthTenant, PathNumber, QueryParams};
use crate::app::AppState;
use crate::consent::{
    clean_text, export_csv, import_csv, record_durably, ImportError, RequestError, RequestSpec,
    Requests, MAX_PROOF,
};
use crate::domain::{
    now_millis, rfc3339, ConsentAction, ConsentEvent, ConsentList, ConsentState, ConsentStatus,
    PhoneNumber, RequestVia, Sender, Source, Tenant, UnixMillis,
};
use crate::store::{Store, StoreError};

const MAX_PAGE: usize = 1000;
/// Insights count the consents lapsing within this many days.
pub const EXPIRING_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
enum ConsentError {
    #[error("proof: a non-empty proof of consent is required (a form id, the wording shown, an IP address, ...)")]
    ProofRequired,
    #[error("{0}")]
    InvalidField(String),
    #[error("after: {0}")]
    InvalidCursor(crate::domain::PhoneError),
    #[error("the number opted out of this sender: consent cannot be recorded over an opt-out (lift it first with DELETE /v1/suppressions/{{number}} and its proof)")]
    OptedOut,
    #[error(transparent)]
    Request(RequestError),
    #[error(transparent)]
    Import(ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> ApiError {
        let msg = e.to_string();
        match e {
            ConsentError::ProofRequired => ApiError::unprocessable("proof_required", msg),
            ConsentError::InvalidField(_) => ApiError::unprocessable("invalid_field", msg),
            ConsentError::InvalidCursor(_) => ApiError::unprocessable("invalid_number", msg),
            ConsentError::OptedOut | ConsentError::Request(RequestError::OptedOut) => {
                ApiError::new(StatusCode::CONFLICT, "recipient_opted_out", msg)
            }
            ConsentError::Request(RequestError::StillOpen(_)) => {
                ApiError::new(StatusCode::CONFLICT, "request_pending", msg)
            }
            ConsentError::Request(RequestError::SenderRequired) => {
                ApiError::unprocessable("sender_required", msg)
            }
            ConsentError::Request(RequestError::Store(e)) | ConsentError::Store(e) => {
                ApiError::internal(e)
            }
            ConsentError::Import(e) => import_error(e, msg),
        }
    }
}

fn invalid(what: impl Into<String>) -> ConsentError {
    ConsentError::InvalidField(what.into())
}

fn list_param(list: Option<&str>) -> Result<ConsentList, ConsentError> {
    match list.filter(|l| !l.is_empty()) {
        None => Ok(ConsentList::marketing()),
        Some(l) => ConsentList::parse(l).map_err(|e| invalid(format!("list: {e}"))),
    }
}

fn text(s: Option<&str>, what: &str, max: usize) -> Result<Option<String>, ConsentError> {
    clean_text(s, max).map_err(|_| {
        invalid(format!(
            "{what}: at most {max} characters, no control characters"
        ))
    })
}

/// The last double opt-in request of a record.
#[derive(Serialize, ToSchema)]
pub struct RequestJson {
    at: String,
    expires: String,
    /// `sms` (a yes to the short code) or `link` (the confirmation page).
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    shortcode: Option<String>,
    /// Whether it can still be answered.
    open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered: Option<String>,
}

/// One list's consent.
#[derive(Serialize, ToSchema)]
pub struct ConsentJson {
    #[schema(example = "marketing")]
    list: String,
    /// `pending` (asked, not answered), `given` or `withdrawn`.
    #[schema(example = "given")]
    status: &'static str,
    /// Given and not lapsed: what a consent-only tenant's marketing needs
    /// (besides no opt-out).
    valid: bool,
    /// When the status began.
    since: String,
    /// `api`, `sms`, `link` or `import`: of the event that set the status.
    source: &'static str,
    /// When consent was last given or renewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    given_at: Option<String>,
    /// When it lapses unless renewed (`consent_ttl_days` after `given_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<RequestJson>,
}

pub(crate) fn consent_json(
    list: &ConsentList,
    s: &ConsentState,
    tenant: &Tenant,
    now: UnixMillis,
) -> ConsentJson {
    let ttl = tenant.consent_ttl_ms();
    ConsentJson {
        list: list.as_str().to_string(),
        status: s.status.as_str(),
        valid: s.valid_at(now, ttl),
        since: rfc3339(s.since),
        source: s.source.as_str(),
        given_at: s
            .given_at
            .filter(|_| s.status == ConsentStatus::Given)
            .map(rfc3339),
        expires: s.expires(ttl).map(rfc3339),
        proof: s.proof.clone(),
        recorded_by: s.recorded_by.clone(),
        request: s.request.as_ref().map(|r| RequestJson {
            at: rfc3339(r.at),
            expires: rfc3339(r.expires),
            method: match r.via {
                RequestVia::Sms { .. } => "sms",
                RequestVia::Link { .. } => "link",
            },
            // The link's code is a capability: only the recipient gets it.
            shortcode: match &r.via {
                RequestVia::Sms { shortcode } => Some(shortcode.to_string()),
                RequestVia::Link { .. } => None,
            },
            open: r.open_at(now),
            answered: r.answered.map(rfc3339),
        }),
    }
}

/// One event of a consent's history.
#[derive(Serialize, ToSchema)]
pub struct ConsentEventJson {
    at: String,
    list: String,
    /// `requested`, `given` or `withdrawn`.
    action: &'static str,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_by: Option<String>,
}

impl From<ConsentEvent> for ConsentEventJson {
    fn from(e: ConsentEvent) -> Self {
        ConsentEventJson {
            at: rfc3339(e.at),
            list: e.list.as_str().to_string(),
            action: e.action.as_str(),
            source: e.source.as_str(),
            proof: e.proof,
            recorded_by: e.recorded_by,
        }
    }
}

/// A number's consents for this tenant, with their full history.
#[derive(Serialize, ToSchema)]
pub struct ConsentsJson {
    #[schema(example = "+33612345678")]
    number: String,
    country: String,
    /// One per list the number has a record for.
    consents: Vec<ConsentJson>,
    /// `true` when this request changed a record (PUT/DELETE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
    /// Oldest first, every list.
    history: Vec<ConsentEventJson>,
}

pub(crate) async fn consents_json(
    store: &dyn Store,
    tenant: &Tenant,
    number: &PhoneNumber,
    changed: Option<bool>,
) -> Result<ConsentsJson, StoreError> {
    let now = now_millis();
    let consents = store
        .consents(&tenant.id, number)
        .await?
        .iter()
        .map(|(l, s)| consent_json(l, s, tenant, now))
        .collect();
    let history = store
        .consent_events(&tenant.id, number)
        .await?
        .into_iter()
        .map(ConsentEventJson::from)
        .collect();
    Ok(ConsentsJson {
        number: number.as_str().to_string(),
        country: number.country().to_string(),
        consents,
        changed,
        history,
    })
}

/// Consents (every list) and their history.
#[utoipa::path(get, path = "/v1/consents/{number}", tag = "consents",
    params(("number" = String, Path, description = "Any spelling of an international number")),
    responses((status = 200, body = ConsentsJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_consent(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
) -> Result<Json<ConsentsJson>, ApiError> {
    Ok(Json(
        consents_json(state.store.as_ref(), &tenant, &number, None)
            .await
            .map_err(ConsentError::from)?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    /// What shows the consent was given: the form or page, its wording, the
    /// time, the IP address, a signed document's reference. Required.
    #[schema(
        example = "signup form /promo v3, checkbox 'SMS offers', 2026-03-02T10:14Z, IP 203.0.113.7"
    )]
    proof: String,
    /// The list it covers (default `marketing`).
    #[serde(default)]
    list: Option<String>,
    /// Who recorded it (an agent, a system).
    #[serde(default)]
    recorded_by: Option<String>,
    /// When it was given, if earlier than now (RFC 3339): a consent
    /// collected offline. The ttl runs from it.
    #[serde(default)]
    given_at: Option<String>,
}

fn past_time(raw: &str, what: &str) -> Result<UnixMillis, ConsentError> {
    let ms = crate::domain::parse_rfc3339(raw)
        .ok_or_else(|| invalid(format!("{what}: not an RFC 3339 time")))?;
    // A little clock skew between the caller and us is fine.
    if !(0..=now_millis() + 300_000).contains(&ms) {
        return Err(invalid(format!("{what}: must not be in the future")));
    }
    Ok(ms)
}

/// Records consent given (source `api`) with its proof; given again, it is
/// renewed. Refused (409) for an opted-out number: the opt-out wins.
#[utoipa::path(put, path = "/v1/consents/{number}", tag = "consents",
    params(("number" = String, Path)),
    request_body(content = PutBody, content_type = "application/json"),
    responses((status = 200, body = ConsentsJson), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_consent(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
    req: Request,
) -> Result<Json<ConsentsJson>, ApiError> {
    let bytes = read_body(req, &state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConsentError::ProofRequired.into());
    }
    let body: PutBody = parse_json(&bytes)?;
    let proof = text(Some(&body.proof), "proof", MAX_PROOF)?.ok_or(ConsentError::ProofRequired)?;
    let list = list_param(body.list.as_deref())?;
    let at = match body.given_at.as_deref() {
        Some(t) => past_time(t, "given_at")?,
        None => now_millis(),
    };
    let store = state.store.as_ref();
    if store
        .suppressed(&tenant.id, std::slice::from_ref(&number))
        .await
        .map_err(ConsentError::from)?[0]
    {
        return Err(ConsentError::OptedOut.into());
    }
    let mut e = ConsentEvent::new(
        tenant.id.clone(),
        &number,
        list,
        ConsentAction::Given,
        Source::Api,
        at,
    );
    e.proof = Some(proof);
    e.recorded_by = text(body.recorded_by.as_deref(), "recorded_by", 200)?;
    record_and_answer(store, &tenant, e).await
}

/// Records one API consent change durably; answers with the number's
/// consents and whether it changed anything.
async fn record_and_answer(
    store: &dyn Store,
    tenant: &Tenant,
    e: ConsentEvent,
) -> Result<Json<ConsentsJson>, ApiError> {
    let (number, action) = (e.number.clone(), e.action);
    let changed = record_durably(store, vec![e])
        .await
        .map_err(ConsentError::from)?
        .into_iter()
        .any(|o| o == Ok(true));
    if action == ConsentAction::Withdrawn {
        tracing::info!(tenant = %tenant.id, number = %number, changed, "consent withdrawn through the API");
    } else {
        tracing::info!(tenant = %tenant.id, number = %number, changed, "consent recorded through the API");
    }
    Ok(Json(
        consents_json(store, tenant, &number, Some(changed))
            .await
            .map_err(ConsentError::from)?,
    ))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// The list withdrawn (default `marketing`).
    #[serde(default)]
    list: Option<String>,
    /// How the withdrawal came (a call, an e-mail).
    #[serde(default)]
    proof: Option<String>,
    #[serde(default)]
    recorded_by: Option<String>,
}

/// Withdraws a consent (source `api`). Idempotent.
#[utoipa::path(delete, path = "/v1/consents/{number}", tag = "consents",
    params(("number" = String, Path)),
    request_body(content = DeleteBody, description = "Optional", content_type = "application/json"),
    responses((status = 200, body = ConsentsJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_consent(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
    req: Request,
) -> Result<Json<ConsentsJson>, ApiError> {
    let bytes = read_body(req, &state).await?;
    let body: DeleteBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeleteBody::default()
    } else {
        parse_json(&bytes)?
    };
    let mut e = ConsentEvent::new(
        tenant.id.clone(),
        &number,
        list_param(body.list.as_deref())?,
        ConsentAction::Withdrawn,
        Source::Api,
        now_millis(),
    );
    e.proof = text(body.proof.as_deref(), "proof", MAX_PROOF)?;
    e.recorded_by = text(body.recorded_by.as_deref(), "recorded_by", 200)?;
    record_and_answer(state.store.as_ref(), &tenant, e).await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// The list asked for (default `marketing`).
    #[serde(default)]
    list: Option<String>,
    /// The sender of a request by link (countries without a short code
    /// here); a short code sends the others.
    #[serde(default)]
    #[schema(example = "ACME")]
    from: Option<String>,
    /// What the tenant knows of the request (the form it came from).
    #[serde(default)]
    proof: Option<String>,
    #[serde(default)]
    recorded_by: Option<String>,
}

/// A request on its way.
#[derive(Serialize, ToSchema)]
pub struct RequestedJson {
    number: String,
    list: String,
    /// `sms` (reply yes to the short code) or `link` (the confirmation page).
    method: &'static str,
    /// The sender of the confirmation SMS (the short code, or `from`).
    from: String,
    /// The confirmation SMS as it goes out (transactional).
    body: String,
    /// Until when it can be answered (`[consent] request_ttl_hours`).
    expires: String,
}

/// Double opt-in: sends the number a transactional confirmation in its
/// language, from the country's short code (answered by a yes keyword) or
/// with a confirmation link; the answer records consent with itself as
/// proof. Refused for an opted-out number, and while a request is open.
#[utoipa::path(post, path = "/v1/consents/{number}/request", tag = "consents",
    params(("number" = String, Path)),
    request_body(content = RequestBody, description = "Optional", content_type = "application/json"),
    responses((status = 202, body = RequestedJson), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request_consent(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
    req: Request,
) -> Result<Response, ApiError> {
    let bytes = read_body(req, &state).await?;
    let body: RequestBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        RequestBody::default()
    } else {
        parse_json(&bytes)?
    };
    let list = list_param(body.list.as_deref())?;
    let from = body
        .from
        .as_deref()
        .map(Sender::parse)
        .transpose()
        .map_err(|e| invalid(format!("from: {e}")))?;
    let spec = RequestSpec {
        list: list.clone(),
        from,
        proof: text(body.proof.as_deref(), "proof", MAX_PROOF)?,
        recorded_by: text(body.recorded_by.as_deref(), "recorded_by", 200)?,
    };
    let settings = &state.settings;
    let requests = Requests {
        store: state.store.as_ref(),
        rules: &settings.rules,
        shortcodes: &settings.shortcodes,
        public_base_url: &settings.public_base_url,
        ttl_ms: i64::from(settings.config.consent.request_ttl_hours) * 3_600_000,
        outbox: &state.outbox,
    };
    let sent = requests
        .request(&tenant, &number, spec)
        .await
        .map_err(ConsentError::Request)?;
    tracing::info!(tenant = %tenant.id, number = %number, list = %list, "consent requested");
    let json = RequestedJson {
        number: number.as_str().to_string(),
        list: list.as_str().to_string(),
        method: match sent.via {
            RequestVia::Sms { .. } => "sms",
            RequestVia::Link { .. } => "link",
        },
        from: sent.from,
        body: sent.body,
        expires: rfc3339(sent.expires),
    };
    Ok((StatusCode::ACCEPTED, Json(json)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The list (default `marketing`).
    list: Option<String>,
    /// Cursor: the last number of the previous page (its `next`).
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ListItem {
    number: String,
    #[serde(flatten)]
    consent: ConsentJson,
}

#[derive(Serialize, ToSchema)]
pub struct ListJson {
    items: Vec<ListItem>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// One list's records (every status), in E.164 order, cursor-paginated.
#[utoipa::path(get, path = "/v1/consents", tag = "consents", params(ListParams),
    responses((status = 200, body = ListJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_consents(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListJson>, ApiError> {
    let limit = page_limit(params.limit, MAX_PAGE)?;
    let list = list_param(params.list.as_deref())?;
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(PhoneNumber::parse(a).map_err(ConsentError::InvalidCursor)?),
        None => None,
    };
    let page = state
        .store
        .consent_page(&tenant.id, &list, after.as_ref(), limit)
        .await
        .map_err(ConsentError::from)?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|(n, _)| n.as_str().to_string()))
        .flatten();
    let now = now_millis();
    let items = page
        .iter()
        .map(|(n, s)| ListItem {
            number: n.as_str().to_string(),
            consent: consent_json(&list, s, &tenant, now),
        })
        .collect();
    Ok(Json(ListJson { items, next }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOnly {
    /// The list (default `marketing`); a row's own `list` column wins.
    list: Option<String>,
}

/// Imports consents from a CSV: a header row, a `number` column, `proof`
/// (required for a consent), optional `list`, `status` (`given` or
/// `withdrawn`), `given_at` (RFC 3339, when it was collected) and
/// `recorded_by`. An export reads back as is. Streams.
#[utoipa::path(post, path = "/v1/consents/import", tag = "consents", params(ListOnly),
    request_body(content = String, content_type = "text/csv", example = "number,proof,given_at\n+33612345678,paper form 8812,2026-02-01T09:00:00Z\n"),
    responses((status = 200, body = ImportJson), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<ListOnly>,
    req: Request,
) -> Result<Json<ImportJson>, ApiError> {
    let reader = csv_body(req)?;
    let list = list_param(params.list.as_deref())?;
    let report = import_csv(state.store.as_ref(), &tenant.id, &list, reader)
        .await
        .map_err(ConsentError::Import)?;
    tracing::info!(tenant = %tenant.id, rows = report.rows, imported = report.imported, failed = report.failed, "consent import");
    Ok(Json(report.into()))
}

/// Streams one list's records as CSV
/// (`number,country,list,status,since,given_at,expires,source,proof,recorded_by`),
/// which `POST /v1/consents/import` reads back. Free text is neutralized for
/// spreadsheets (a leading `'` before `=`, `+`, `-`, `@`).
#[utoipa::path(get, path = "/v1/consents/export", tag = "consents", params(ListOnly),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    QueryParams(params): QueryParams<ListOnly>,
) -> Result<Response, ApiError> {
    let list = list_param(params.list.as_deref())?;
    let name = format!(
        "attachment; filename=\"consents-{}-{}.csv\"",
        tenant.id, list
    );
    let stream = export_csv(state.store.clone(), tenant, list).map_err(|e| {
        tracing::error!(error = %e, "export failed mid-stream");
        std::io::Error::other(e)
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct ListCountsJson {
    list: String,
    /// Given and not lapsed.
    given: u64,
    /// Of those, lapsing within `horizon_days` unless renewed.
    expiring: u64,
    /// Given once, lapsed without a renewal.
    lapsed: u64,
    /// Asked, not answered.
    pending: u64,
    withdrawn: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentInsightsJson {
    /// The tenant's `consent_ttl_days`.
    ttl_days: u32,
    horizon_days: i64,
    lists: Vec<ListCountsJson>,
}

/// Per list: valid consents, how many lapse in the next 30 days, lapsed,
/// pending and withdrawn.
#[utoipa::path(get, path = "/v1/insights/consents", tag = "insights",
    responses((status = 200, body = ConsentInsightsJson), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn insights(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
) -> Result<Json<ConsentInsightsJson>, ApiError> {
    let valid_after = now_millis() - tenant.consent_ttl_ms();
    let counts = state
        .store
        .consent_counts(
            &tenant.id,
            valid_after,
            valid_after + EXPIRING_DAYS * 86_400_000,
        )
        .await
        .map_err(ConsentError::from)?;
    Ok(Json(ConsentInsightsJson {
        ttl_days: tenant.consent_ttl_days,
        horizon_days: EXPIRING_DAYS,
        lists: counts
            .into_iter()
            .map(|(list, c)| ListCountsJson {
                list: list.as_str().to_string(),
                given: c.given,
                expiring: c.expiring,
                lapsed: c.lapsed,
                pending: c.pending,
                withdrawn: c.withdrawn,
            })
            .collect(),
    }))
}
