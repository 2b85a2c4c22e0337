//! `POST /dlr/twilio`: Twilio's status callbacks for the messages stopgate
//! forwarded through a Twilio upstream (which sets `StatusCallback` to this
//! URL). Checked with `X-Twilio-Signature` under the upstream account's
//! auth token, over `{public_base_url}/dlr/twilio` and the sorted form
//! parameters, as Twilio signs them.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::config::UpstreamKind;
use crate::domain::MessageStatus;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::twilio::signature;
use crate::reports::Report;

pub const PATH: &str = "/dlr/twilio";
const MAX_BODY: usize = 64 * 1024;

/// Our status for Twilio's `MessageStatus`; `None` for the steps before a
/// delivery verdict (`queued`, `sending`, ...), which change nothing.
pub fn status(twilio: &str) -> Option<MessageStatus> {
    Some(match twilio {
        "sent" => MessageStatus::Sent,
        // `read` is a later step of delivered (WhatsApp, RCS).
        "delivered" | "read" => MessageStatus::Delivered,
        "undelivered" => MessageStatus::Undelivered,
        "failed" => MessageStatus::Failed,
        _ => return None,
    })
}

/// The token that signs the callbacks: the upstream account's when the
/// upstream is Twilio, else `inbound.twilio_auth_token`.
fn auth_token(state: &AppState) -> Option<&str> {
    let cfg = &state.settings.config;
    if cfg.upstream.kind == UpstreamKind::Twilio && !cfg.upstream.auth_token.expose().is_empty() {
        return Some(cfg.upstream.auth_token.expose());
    }
    Some(cfg.inbound.twilio_auth_token.expose()).filter(|t| !t.is_empty())
}

/// Twilio's status callback (`MessageSid`, `MessageStatus`, `ErrorCode`, ...).
#[utoipa::path(post, path = "/dlr/twilio", tag = "public",
    params(("X-Twilio-Signature" = String, Header,
        description = "base64 HMAC-SHA1 of {public_base_url}/dlr/twilio + sorted form params, keyed by the Twilio auth token")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback parameters: MessageSid, MessageStatus, ErrorCode, ..."),
    responses(
        (status = 204, description = "applied (or for a message we do not know)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn callback(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let Some(token) = auth_token(&state) else {
        return Err(ApiError::unauthorized(
            "no Twilio auth token configured (upstream.auth_token or inbound.twilio_auth_token)",
        ));
    };
    let presented = req
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ApiError::unauthorized("missing X-Twilio-Signature"))?;
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            crate::http::extract::body_error(
                &e,
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "callback body too large",
                ),
            )
        })?;
    let params: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    let url = format!("{}{PATH}", state.settings.public_base_url);
    if !signature::validate(token, &url, &params, &presented) {
        metrics::counter!("stopgate_inbound_refused_total", "reason" => "twilio_signature")
            .increment(1);
        return Err(ApiError::unauthorized("X-Twilio-Signature does not match"));
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (Some(sid), Some(twilio_status)) = (field("MessageSid"), field("MessageStatus")) else {
        return Err(ApiError::bad_request(
            "invalid_field",
            "MessageSid and MessageStatus are required",
        ));
    };
    if let Some(status) = status(twilio_status) {
        super::apply(
            &state,
            Report {
                provider: "twilio",
                provider_id: sid.chars().take(64).collect(),
                status,
                error: field("ErrorCode").map(|c| c.chars().take(16).collect()),
            },
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_statuses_map_to_ours() {
        assert_eq!(status("delivered"), Some(MessageStatus::Delivered));
        assert_eq!(status("undelivered"), Some(MessageStatus::Undelivered));
        assert_eq!(status("failed"), Some(MessageStatus::Failed));
        assert_eq!(status("sent"), Some(MessageStatus::Sent));
        for early in ["queued", "accepted", "sending", "scheduled", "canceled", ""] {
            assert_eq!(status(early), None, "{early}");
        }
    }
}
