//! Twilio's "fetch a Message" and "list Messages" on the API listener, from
//! stopgate's message records, so a Twilio SDK's `messages(sid).fetch()`,
//! `messages.list()` and `messages.stream()` work unchanged. Same HTTP Basic
//! auth as the create endpoint; Twilio's resource, statuses and paging.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::front::{authorize, TwilioError, API_VERSION};
use crate::app::AppState;
use crate::config::TwilioAccount;
use crate::domain::{MessageId, MessageStatus, UnixMillis};
use crate::store::{MessageFilter, MessageRecord};

const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 50;

/// Twilio's status for ours. Never-forwarded messages are Twilio's `failed`
/// with the error code that says why.
pub(crate) fn twilio_status(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Scheduled => "scheduled",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Undelivered => "undelivered",
        MessageStatus::Canceled => "canceled",
        MessageStatus::Failed | MessageStatus::Blocked | MessageStatus::Rejected => "failed",
    }
}

/// Twilio's numeric error code: Twilio's own for our refusals, the
/// provider's when it is numeric (a Twilio upstream's 30003 passes through).
pub(crate) fn twilio_error_code(error: Option<&str>) -> Option<u32> {
    let e = error?;
    match e {
        "recipient_opted_out" => Some(21610),
        "invalid_number" | "duplicate_recipient" => Some(21211),
        other => other.parse().ok(),
    }
}

fn rfc2822(at: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp(at / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// The Message resource of a record.
pub(super) fn resource(account_sid: &str, r: &MessageRecord) -> Value {
    let sid = r.id.sid();
    let base = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}");
    let current = r.current();
    let sent_at = r
        .history
        .iter()
        .find(|c| c.status == MessageStatus::Sent)
        .map(|c| rfc2822(c.at));
    let updated = r.history.iter().map(|c| c.at).max().unwrap_or(current.at);
    json!({
        "account_sid": account_sid,
        "api_version": API_VERSION,
        // Kept only for marketing with [messages] keep_body; never for OTPs.
        "body": r.body.clone().unwrap_or_default(),
        "date_created": rfc2822(r.created()),
        "date_sent": sent_at,
        "date_updated": rfc2822(updated),
        "direction": "outbound-api",
        "error_code": twilio_error_code(current.error.as_deref()),
        "error_message": null,
        "from": r.sender,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": r.segments.to_string(),
        "price": null,
        "price_unit": null,
        "sid": sid,
        "status": twilio_status(current.status),
        "subresource_uris": {"media": format!("{base}/Media.json")},
        "to": r.to,
        "uri": format!("{base}.json"),
    })
}

fn not_found() -> TwilioError {
    TwilioError::new(
        StatusCode::NOT_FOUND,
        20404,
        "The requested resource was not found",
    )
}

fn store_error(e: crate::store::StoreError) -> TwilioError {
    tracing::error!(error = %e, "storage failed on the Twilio-compatible front");
    TwilioError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        20503,
        "stopgate cannot serve this request right now; retry later",
    )
}

/// Twilio's "fetch a Message": `{MessageSid}.json`.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{account_sid}/Messages/{message}", tag = "twilio",
    params(("account_sid" = String, Path), ("message" = String, Path, description = "`SM...json`: the Message SID and `.json`")),
    responses(
        (status = 200, content_type = "application/json", body = Object, description = "Twilio's Message resource"),
        (status = 401, content_type = "application/json", body = Object, description = "Twilio error 20003"),
        (status = 404, content_type = "application/json", body = Object, description = "Twilio error 20404")),
    security(("basic" = [])))]
pub async fn fetch_message(
    State(state): State<AppState>,
    Path((account_sid, message)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let account = authorize(&state, &account_sid, &headers)?;
        let id = message
            .strip_suffix(".json")
            .and_then(MessageId::from_sid)
            .ok_or_else(not_found)?;
        let record = state
            .store
            .message(&account.tenant.id, &id)
            .await
            .map_err(store_error)?
            .ok_or_else(not_found)?;
        Ok::<_, TwilioError>(Json(resource(&account.account_sid, &record)).into_response())
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// Twilio's list parameters that stopgate reads.
#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "PageSize")]
    page_size: Option<String>,
    #[serde(rename = "Page")]
    page: Option<String>,
    /// Our cursor: the id of the last message of the previous page.
    #[serde(rename = "PageToken")]
    page_token: Option<String>,
    #[serde(rename = "To")]
    to: Option<String>,
}

fn page_uri(
    account: &TwilioAccount,
    size: usize,
    page: usize,
    token: Option<&str>,
    to: Option<&str>,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(to) = to {
        q.append_pair("To", to);
    }
    q.append_pair("PageSize", &size.to_string());
    q.append_pair("Page", &page.to_string());
    if let Some(t) = token {
        q.append_pair("PageToken", t);
    }
    format!(
        "/{API_VERSION}/Accounts/{}/Messages.json?{}",
        account.account_sid,
        q.finish()
    )
}

/// Twilio's "list Messages": newest first, Twilio's paging fields; the SDK
/// follows `next_page_uri`.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{account_sid}/Messages.json", tag = "twilio",
    params(("account_sid" = String, Path),
        ("PageSize" = Option<u32>, Query), ("Page" = Option<u32>, Query), ("PageToken" = Option<String>, Query),
        ("To" = Option<String>, Query)),
    responses(
        (status = 200, content_type = "application/json", body = Object, description = "Twilio's Message list page"),
        (status = 400, content_type = "application/json", body = Object, description = "Twilio error 20001"),
        (status = 401, content_type = "application/json", body = Object, description = "Twilio error 20003")),
    security(("basic" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let account = authorize(&state, &account_sid, &headers)?;
        let Ok(Query(q)) = query else {
            return Err(TwilioError::bad_request(20001, "Invalid query parameters"));
        };
        let bad = |name: &str| TwilioError::bad_request(20001, format!("Invalid {name}"));
        let size = match q.page_size.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| bad("PageSize"))?,
        };
        let page = match q.page.as_deref() {
            None | Some("") => 0,
            Some(p) => p.parse::<usize>().map_err(|_| bad("Page"))?,
        };
        let before = match q.page_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(MessageId::parse(t).ok_or_else(|| bad("PageToken"))?),
            None => None,
        };
        let to = match q.to.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(t) => Some(
                crate::domain::PhoneNumber::parse(t)
                    .map(|n| n.as_str().to_string())
                    .map_err(|_| TwilioError::bad_request(21211, "Invalid 'To' Phone Number"))?,
            ),
            None => None,
        };
        let filter = MessageFilter {
            to: to.clone(),
            ..MessageFilter::default()
        };
        let records = state
            .store
            .messages(&account.tenant.id, &filter, before.as_ref(), size)
            .await
            .map_err(store_error)?;
        let next = (records.len() == size)
            .then(|| records.last().map(|r| r.id.as_str().to_string()))
            .flatten();
        let start = page * size;
        let messages: Vec<Value> = records
            .iter()
            .map(|r| resource(&account.account_sid, r))
            .collect();
        let body = json!({
            "end": (start + messages.len()).saturating_sub(1),
            "first_page_uri": page_uri(account, size, 0, None, to.as_deref()),
            "next_page_uri": next.as_deref().map(|t| page_uri(account, size, page + 1, Some(t), to.as_deref())),
            "page": page,
            "page_size": size,
            "previous_page_uri": null,
            "start": start,
            "uri": page_uri(account, size, page, q.page_token.as_deref(), to.as_deref()),
            "messages": messages,
        });
        Ok(Json(body).into_response())
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}
