//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: Twilio's "create
//! a Message" on the API listener, so an application using a Twilio SDK
//! switches to stopgate by changing the base URL.
//!
//! HTTP Basic auth with a tenant's `[tenants.twilio]` account SID and auth
//! token; form-encoded `To`, `From` and/or `MessagingServiceSid`, `Body`
//! (other Twilio parameters are accepted and ignored). One recipient through
//! the same pipeline as `/v1/messages`; the answer is Twilio's Message
//! resource (201) or Twilio's error JSON, with Twilio's error codes, so code
//! that handles Twilio's errors works unchanged.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::config::{is_sid, TwilioAccount, UpstreamKind};
use crate::domain::{ApiKeyHash, Category, MessageId, MessageStatus, Sender};
use crate::outbound::{ErrorCode, RecipientResult, SendRequest};
use crate::store::Callback;

pub const MESSAGES_PATH: &str = "/2010-04-01/Accounts/{account_sid}/Messages.json";
pub(super) const API_VERSION: &str = "2010-04-01";
/// Header that sets the category; without it, the tenant's defaults apply.
const CATEGORY_HEADER: &str = "x-stopgate-category";

/// Twilio's error answer: `{"code", "message", "more_info", "status"}`.
#[derive(Debug)]
pub(super) struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
    retry_after: Option<u64>,
}

impl TwilioError {
    pub(super) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn bad_request(code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(super) fn unauthorized(why: &str) -> TwilioError {
        TwilioError::new(
            StatusCode::UNAUTHORIZED,
            20003,
            format!("Authenticate: {why}"),
        )
    }
}

/// Codes of our own (not Twilio's) start at 90000; they have no Twilio page.
fn more_info(code: u32) -> Value {
    if code >= 90_000 {
        Value::Null
    } else {
        format!("https://www.twilio.com/docs/errors/{code}").into()
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": more_info(self.code),
            "status": self.status.as_u16(),
        });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        resp
    }
}

/// `SM` + 32 hex digits, derived from our message id, so one maps to the other.
pub fn message_sid(id: &MessageId) -> String {
    id.sid()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = crate::http::extract::credentials(value, "Basic")?;
    let decoded = String::from_utf8(BASE64_STANDARD.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Like API keys: the token's hash is compared with every account's in
/// constant time, without stopping at a match.
fn authenticate<'a>(
    accounts: &'a [TwilioAccount],
    sid: &str,
    token: &str,
) -> Option<&'a TwilioAccount> {
    let presented = ApiKeyHash::of_key(token);
    let mut found = None;
    for a in accounts {
        if a.auth_token.matches(&presented) & (a.account_sid == sid) {
            found = Some(a);
        }
    }
    found
}

/// The form fields we use; everything else Twilio accepts is ignored.
#[derive(Default)]
struct Form {
    to: Option<String>,
    from: Option<String>,
    body: Option<String>,
    messaging_service: Option<String>,
    status_callback: Option<String>,
    media: bool,
}

fn parse_form(bytes: &[u8]) -> Form {
    let mut f = Form::default();
    for (k, v) in form_urlencoded::parse(bytes) {
        let slot = match k.as_ref() {
            "To" => &mut f.to,
            "From" => &mut f.from,
            "Body" => &mut f.body,
            "MessagingServiceSid" => &mut f.messaging_service,
            "StatusCallback" => &mut f.status_callback,
            "MediaUrl" => {
                f.media = true;
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    f
}

/// Twilio's "create a Message", for applications using a Twilio SDK: form
/// body, HTTP Basic auth with the tenant's Twilio account SID and auth token.
/// Answers Twilio's Message resource, or Twilio's error JSON and codes
/// (21610 for an opted-out recipient).
#[utoipa::path(post, path = "/2010-04-01/Accounts/{account_sid}/Messages.json", tag = "twilio",
    params(("account_sid" = String, Path, description = "The tenant's Twilio account SID (AC...)")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's parameters: To, From and/or MessagingServiceSid, Body, StatusCallback, ..."),
    responses(
        (status = 201, content_type = "application/json", body = Object, description = "Twilio's Message resource"),
        (status = 400, content_type = "application/json", body = Object, description = "Twilio error JSON, e.g. code 21610 or 21211"),
        (status = 401, content_type = "application/json", body = Object, description = "Twilio error 20003"),
        (status = 429, content_type = "application/json", body = Object, description = "Twilio error 20429")),
    security(("basic" = [])))]
pub async fn create_message(
    State(state): State<AppState>,
    account_sid: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Response {
    let Ok(Path(account_sid)) = account_sid else {
        return TwilioError::new(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        )
        .into_response();
    };
    match create(state, account_sid, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The tenant's Twilio account: HTTP Basic with its account SID and auth
/// token, matching the SID in the path, within the tenant's request budget.
pub(super) fn authorize<'a>(
    state: &'a AppState,
    path_sid: &str,
    headers: &HeaderMap,
) -> Result<&'a TwilioAccount, TwilioError> {
    let (user, token) = basic_credentials(headers).ok_or_else(|| {
        TwilioError::unauthorized("HTTP Basic auth with the account SID and auth token is required")
    })?;
    let account = authenticate(&state.settings.twilio_accounts, &user, &token)
        .ok_or_else(|| TwilioError::unauthorized("unknown account SID or wrong auth token"))?;
    if path_sid != account.account_sid {
        return Err(TwilioError::unauthorized(
            "the account SID in the URL is not the one authenticated",
        ));
    }
    // The same per-tenant request budget as the native API.
    crate::http::extract::check_rate(state, &account.tenant).map_err(|e| TwilioError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: 20429,
        message: "Too Many Requests".into(),
        retry_after: e.retry_after,
    })?;
    Ok(account)
}

async fn create(state: AppState, path_sid: String, req: Request) -> Result<Response, TwilioError> {
    let account = authorize(&state, &path_sid, req.headers())?;
    let category_header = req
        .headers()
        .get(CATEGORY_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim().to_string());

    let limits = &state.settings.config.limits;
    let bytes = axum::body::to_bytes(req.into_body(), limits.max_request_bytes)
        .await
        .map_err(|e| {
            if crate::http::serve::is_body_timeout(&e) {
                // 20000 + the status, like Twilio's own 20404 and 20429.
                TwilioError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    20_408,
                    "the request body did not arrive in time",
                )
            } else {
                TwilioError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    90_003,
                    format!(
                        "request body is larger than {} bytes",
                        limits.max_request_bytes
                    ),
                )
            }
        })?;
    let form = parse_form(&bytes);

    let to = form
        .to
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| TwilioError::bad_request(21604, "A 'To' phone number is required."))?;
    if form.media {
        return Err(TwilioError::bad_request(
            90_002,
            "MediaUrl: stopgate forwards SMS only, not MMS",
        ));
    }
    let body = form.body.unwrap_or_default();
    if body.trim().is_empty() {
        return Err(TwilioError::bad_request(21602, "Message body is required."));
    }
    if body.chars().count() > limits.max_body_chars {
        return Err(TwilioError::bad_request(
            21617,
            format!(
                "The concatenated message body exceeds the {} character limit.",
                limits.max_body_chars
            ),
        ));
    }
    let service = form.messaging_service.filter(|s| !s.is_empty());
    if let Some(s) = &service {
        if !is_sid(s, "MG") {
            return Err(TwilioError::bad_request(
                21701,
                format!("The Messaging Service Sid {s} is invalid."),
            ));
        }
    }
    let from_raw = form.from.filter(|f| !f.trim().is_empty());
    let from = match (&from_raw, &service) {
        (Some(f), _) => Sender::parse(f).map_err(|why| {
            TwilioError::bad_request(
                21212,
                format!("The 'From' number {f} is not a valid phone number, shortcode, or alphanumeric sender ID: {why}."),
            )
        })?,
        (None, Some(s)) => account.senders.get(s).cloned().ok_or_else(|| {
            TwilioError::bad_request(
                21603,
                format!("A 'From' parameter is required: stopgate has no sender for Messaging Service {s} (set tenants.twilio.senders)."),
            )
        })?,
        (None, None) => {
            return Err(TwilioError::bad_request(
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
            ))
        }
    };
    let category = match category_header {
        Some(h) => Category::parse(&h).ok_or_else(|| {
            TwilioError::bad_request(
                90_001,
                format!("X-Stopgate-Category: {h:?} is not one of marketing, transactional, otp"),
            )
        })?,
        None => default_category(account, from_raw.as_deref(), service.as_deref()),
    };

    let callback = match form.status_callback.filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(Callback::Twilio {
            url: crate::http::api::callback_url(u.trim()).map_err(|why| {
                TwilioError::bad_request(21609, format!("Invalid StatusCallback: {why}"))
            })?,
        }),
        None => None,
    };
    let request = SendRequest {
        tenant: account.tenant.clone(),
        to: vec![to],
        from,
        body,
        category,
        campaign: None,
        messaging_service: service,
        callback,
        // Twilio's own scheduling (ScheduleType, SendAt) is not supported.
        send_at: None,
        list: crate::domain::ConsentList::marketing(),
    };
    let mut results = state.outbound.send(&request).await;
    let result = results.pop().expect("one recipient gives one result");
    tracing::info!(
        tenant = %account.tenant.id,
        category = %category,
        status = result.status.as_str(),
        "twilio-compatible send handled"
    );
    let upstream_is_twilio = state.settings.config.upstream.kind == UpstreamKind::Twilio;
    match result.status {
        // Held for its send window: Twilio's resource says "scheduled".
        MessageStatus::Sent | MessageStatus::Scheduled => {
            Ok(created(account, &request, result, category))
        }
        _ => Err(refusal(result, upstream_is_twilio)),
    }
}

/// A `From` entry wins over a Messaging Service entry; no entry is marketing.
fn default_category(
    account: &TwilioAccount,
    from: Option<&str>,
    service: Option<&str>,
) -> Category {
    from.and_then(|f| account.categories.get(f.trim()))
        .or_else(|| service.and_then(|s| account.categories.get(s)))
        .copied()
        .unwrap_or(Category::Marketing)
}

/// Twilio's answer for a result that was not sent.
fn refusal(r: RecipientResult, upstream_is_twilio: bool) -> TwilioError {
    let failure = r.error.expect("an unsent result carries its error");
    match (r.status, failure.code) {
        (MessageStatus::Blocked, _) => {
            TwilioError::bad_request(21610, "Attempt to send to unsubscribed recipient")
        }
        (_, ErrorCode::InvalidNumber | ErrorCode::DuplicateRecipient) => TwilioError::bad_request(
            21211,
            format!("Invalid 'To' Phone Number: {} ({})", r.to, failure.message),
        ),
        (_, ErrorCode::UpstreamRejected) => {
            // Behind a Twilio upstream, Twilio's own code passes through unchanged.
            let code = failure
                .provider_code
                .as_deref()
                .and_then(|c| c.parse::<u32>().ok())
                .filter(|_| upstream_is_twilio)
                .unwrap_or(90_004);
            TwilioError::bad_request(code, failure.message)
        }
        (_, ErrorCode::UpstreamRateLimited) => TwilioError {
            retry_after: failure.retry_after.or(Some(1)),
            ..TwilioError::new(
                StatusCode::TOO_MANY_REQUESTS,
                20429,
                "Too Many Requests: the SMS provider asked stopgate to slow down",
            )
        },
        (_, ErrorCode::UpstreamUnavailable) => TwilioError {
            retry_after: failure.retry_after,
            ..TwilioError::new(StatusCode::SERVICE_UNAVAILABLE, 20503, failure.message)
        },
        (_, ErrorCode::StoreUnavailable) => {
            tracing::error!("storage failed on the Twilio-compatible front");
            TwilioError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                20503,
                "stopgate cannot serve this request right now; retry later",
            )
        }
        (_, ErrorCode::UpstreamTimeout) => {
            TwilioError::new(StatusCode::GATEWAY_TIMEOUT, 20503, failure.message)
        }
        (_, ErrorCode::OutsideSendWindow) => TwilioError::bad_request(90_005, failure.message),
        (_, ErrorCode::FrequencyCapped) => TwilioError::bad_request(90_006, failure.message),
        (
            _,
            ErrorCode::UpstreamError
            | ErrorCode::RecipientOptedOut
            | ErrorCode::ReleaseInterrupted
            | ErrorCode::NoConsent,
        ) => TwilioError::new(StatusCode::BAD_GATEWAY, 20500, failure.message),
    }
}

/// `201` with Twilio's Message resource.
fn created(
    account: &TwilioAccount,
    req: &SendRequest,
    r: RecipientResult,
    category: Category,
) -> Response {
    let id = r.id;
    let sid = message_sid(&id);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let base = format!(
        "/{API_VERSION}/Accounts/{}/Messages/{sid}",
        account.account_sid
    );
    let resource = json!({
        "account_sid": account.account_sid,
        "api_version": API_VERSION,
        "body": r.body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": req.from.as_str(),
        "messaging_service_sid": req.messaging_service,
        "num_media": "0",
        "num_segments": r.segments.to_string(),
        "price": null,
        "price_unit": null,
        "sid": sid,
        // Twilio says "accepted" when a Messaging Service picks the sender.
        "status": match (r.status, req.messaging_service.is_some()) {
            (MessageStatus::Scheduled, _) => "scheduled",
            (_, true) => "accepted",
            _ => "queued",
        },
        "subresource_uris": {"media": format!("{base}/Media.json")},
        "to": r.to,
        "uri": format!("{base}.json"),
    });
    let mut resp = (StatusCode::CREATED, Json(resource)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        h.insert("x-stopgate-message-id", v);
    }
    h.insert(
        "x-stopgate-category",
        HeaderValue::from_static(category.as_str()),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sids_look_like_twilios() {
        let sid = message_sid(&MessageId::generate());
        assert_eq!(sid.len(), 34);
        assert!(is_sid(&sid, "SM"), "{sid}");
        let id = MessageId::generate();
        assert_eq!(message_sid(&id), message_sid(&id));
    }

    #[test]
    fn basic_auth_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", BASE64_STANDARD.encode("AC1:tok:en")))
                .unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("AC1".to_string(), "tok:en".to_string()))
        );
        // The scheme in any case (RFC 9110), as some HTTP clients send it.
        for scheme in ["basic", "BASIC", "bAsIc"] {
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("{scheme} {}", BASE64_STANDARD.encode("AC1:t")))
                    .unwrap(),
            );
            assert_eq!(
                basic_credentials(&h),
                Some(("AC1".to_string(), "t".to_string())),
                "{scheme}"
            );
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn the_first_value_of_a_field_wins_and_unknown_fields_are_ignored() {
        let f = parse_form(b"To=%2B33612345678&Body=a+b&Body=c&StatusCallback=https%3A%2F%2Fx&ProvideFeedback=true");
        assert_eq!(f.to.as_deref(), Some("+33612345678"));
        assert_eq!(f.body.as_deref(), Some("a b"));
        assert!(f.from.is_none() && !f.media);
    }
}
