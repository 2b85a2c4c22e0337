//! `/v1/subjects/{number}`: a data subject's rights, for the tenant of the
//! API key. `GET` is the access request (GDPR Art. 15): everything this
//! tenant holds about the number, as one JSON document. `DELETE` is the
//! erasure (Art. 17): everything goes except what keeps an opt-out
//! honoured (see `store::subjects`), and the erasure itself is audited.

use axum::extract::{Request, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::consents::{consents_json, ConsentsJson};
use super::error::{ApiError, ErrorBody};
use super::extract::{parse_json, read_body, AuthTenant, PathNumber};
use super::messages::MessageJson;
use super::suppressions::{state_json, SuppressionJson};
use crate::app::AppState;
use crate::consent::clean_text;
use crate::domain::{now_millis, rfc3339};
use crate::store::subjects::Removed;
use crate::store::{Erasure, MessageFilter, StoreError};

/// Message records listed in one access document, at most.
const MAX_MESSAGES: usize = 10_000;
const MESSAGE_PAGE: usize = 500;

#[derive(Serialize, ToSchema)]
pub struct LinkJson {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<String>,
    created: String,
}

#[derive(Serialize, ToSchema)]
pub struct SendJson {
    /// The short code the last marketing message came from (a STOP there is
    /// attributed to this tenant).
    shortcode: String,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplyJson {
    at: String,
    shortcode: String,
    /// What the number sent (it mentions a stop keyword).
    text: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeptJson {
    /// When the number opted out.
    since: String,
    source: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ErasureJson {
    at: String,
    /// The opt-out kept (as a keyed hash of the number): absent if there
    /// was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_optout: Option<KeptJson>,
    /// Records removed, by kind.
    #[schema(value_type = Object)]
    removed: Removed,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

impl From<Erasure> for ErasureJson {
    fn from(e: Erasure) -> Self {
        ErasureJson {
            at: rfc3339(e.at),
            kept_optout: e.kept_optout.map(|k| KeptJson {
                since: rfc3339(k.since),
                source: k.source.as_str(),
            }),
            removed: e.removed,
            reference: e.reference,
        }
    }
}

/// Everything held about a number, for one tenant.
#[derive(Serialize, ToSchema)]
pub struct SubjectJson {
    number: String,
    country: String,
    tenant: String,
    generated_at: String,
    /// The opt-out state and its history. After an erasure, `erased` says
    /// when, and only the opt-out's time and source remain.
    suppression: SuppressionJson,
    /// Consents (every list) and their history.
    consent: ConsentsJson,
    /// Message records to the number (newest first; OTP and transactional
    /// bodies are never kept), within `[messages] retention_days`.
    messages: Vec<MessageJson>,
    /// More than 10000 records: the oldest are left out.
    messages_truncated: bool,
    /// Opt-out links minted for the number.
    links: Vec<LinkJson>,
    /// Marketing sends kept for attributing replies.
    marketing_sends: Vec<SendJson>,
    /// Replies from the number kept for review (they mention a stop keyword).
    replies_for_review: Vec<ReplyJson>,
    /// Erasures of the number (audit).
    erasures: Vec<ErasureJson>,
}

/// Access (GDPR Art. 15): what this tenant holds about the number.
#[utoipa::path(get, path = "/v1/subjects/{number}", tag = "subjects",
    params(("number" = String, Path, description = "Any spelling of an international number")),
    responses((status = 200, body = SubjectJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_subject(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
) -> Result<Json<SubjectJson>, ApiError> {
    let store = state.store.as_ref();
    let suppression = state_json(store, &tenant.id, &number, None).await?;
    let consent = consents_json(store, &tenant, &number, None).await?;
    let filter = MessageFilter {
        to: Some(number.as_str().to_string()),
        ..MessageFilter::default()
    };
    let mut messages = Vec::new();
    let mut before = None;
    let mut truncated = false;
    loop {
        let page = store
            .messages(&tenant.id, &filter, before.as_ref(), MESSAGE_PAGE)
            .await?;
        let last = page.len() < MESSAGE_PAGE;
        before = page.last().map(|r| r.id.clone());
        messages.extend(page);
        if messages.len() >= MAX_MESSAGES {
            truncated = !last || messages.len() > MAX_MESSAGES;
            messages.truncate(MAX_MESSAGES);
            break;
        }
        if last {
            break;
        }
    }
    let data = store.subject_data(&tenant.id, &number).await?;
    let base = &state.settings.public_base_url;
    let erasures = store.erasures(&tenant.id, &number).await?;
    tracing::info!(tenant = %tenant.id, number = %number, "subject access");
    Ok(Json(SubjectJson {
        number: number.as_str().to_string(),
        country: number.country().to_string(),
        tenant: tenant.id.to_string(),
        generated_at: rfc3339(now_millis()),
        suppression,
        consent,
        messages: messages.into_iter().map(MessageJson::from).collect(),
        messages_truncated: truncated,
        links: data
            .links
            .into_iter()
            .map(|l| LinkJson {
                url: format!("{base}/{}", l.code.as_str()),
                campaign: l.campaign.map(String::from),
                created: rfc3339(l.created),
            })
            .collect(),
        marketing_sends: data
            .sends
            .into_iter()
            .map(|s| SendJson {
                shortcode: s.shortcode.to_string(),
                at: rfc3339(s.at),
                campaign: s.campaign.map(String::from),
            })
            .collect(),
        replies_for_review: data
            .possible_optouts
            .into_iter()
            .map(|(_, p)| ReplyJson {
                at: rfc3339(p.at),
                shortcode: p.shortcode.to_string(),
                text: p.text,
            })
            .collect(),
        erasures: erasures.into_iter().map(ErasureJson::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    /// Your reference for the request (a ticket id), kept in the audit.
    /// Not the person's name or e-mail: it is kept.
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErasedJson {
    number: String,
    /// The audit record of this erasure.
    erasure: ErasureJson,
    /// What stays, in words.
    remains: String,
}

/// Erasure (GDPR Art. 17): removes what this tenant holds about the number
/// (opt-out history, consents, message records, links, reply attribution,
/// replies kept for review) except what keeps an opt-out honoured: a keyed
/// hash of the number with the opt-out's time and source. The number stays
/// blocked; the erasure is audited. Durable when answered. Idempotent.
#[utoipa::path(delete, path = "/v1/subjects/{number}", tag = "subjects",
    params(("number" = String, Path)),
    request_body(content = EraseBody, description = "Optional", content_type = "application/json"),
    responses((status = 200, body = ErasedJson), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase_subject(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    PathNumber(number): PathNumber,
    req: Request,
) -> Result<Json<ErasedJson>, ApiError> {
    let bytes = read_body(req, &state).await?;
    let body: EraseBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        EraseBody::default()
    } else {
        parse_json(&bytes)?
    };
    let reference = clean_text(body.reference.as_deref(), 200).map_err(|_| {
        ApiError::unprocessable(
            "invalid_field",
            "reference: at most 200 characters, no control characters",
        )
    })?;
    let store = state.store.as_ref();
    let erasure = async {
        let e = store
            .erase_subject(&tenant.id, &number, reference.as_deref(), now_millis())
            .await?;
        store.durable().await?;
        Ok::<_, StoreError>(e)
    }
    .await?;
    tracing::info!(
        tenant = %tenant.id,
        number = %number,
        optout_kept = erasure.kept_optout.is_some(),
        messages = erasure.removed.messages,
        "subject erased"
    );
    metrics::counter!("stopgate_subject_erasures_total").increment(1);
    let remains = match &erasure.kept_optout {
        Some(_) => "an opt-out, kept as a keyed hash of the number with its time and source, so that the number stays blocked; and this erasure's audit record".into(),
        None => "only this erasure's audit record, under a keyed hash of the number".into(),
    };
    Ok(Json(ErasedJson {
        number: number.as_str().to_string(),
        erasure: erasure.into(),
        remains,
    }))
}
