//! `POST /inbound/twilio`: Twilio's incoming-message webhook, on the public
//! listener. Same STOP/START/HELP engine as `/v1/inbound`; the confirmation
//! goes back in the TwiML answer, so Twilio sends it from the short code.
//!
//! Twilio signs `{the URL it called}{sorted form params}`; behind a TLS proxy
//! we cannot see that URL, so it is rebuilt as
//! `{server.public_base_url}/inbound/twilio` — exactly the URL the operator
//! sets in Twilio's console.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{signature, twiml};
use crate::app::AppState;
use crate::config::UpstreamKind;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::replay;
use crate::inbound::{MoError, ReplyVia};

pub const PATH: &str = "/inbound/twilio";
/// Twilio's webhook bodies are small; this bounds the HMAC input.
const MAX_BODY: usize = 64 * 1024;

/// The token Twilio signs with: `inbound.twilio_auth_token`, else the
/// upstream's when the upstream is Twilio.
fn auth_token(state: &AppState) -> Option<&str> {
    let cfg = &state.settings.config;
    let own = cfg.inbound.twilio_auth_token.expose();
    if !own.is_empty() {
        return Some(own);
    }
    (cfg.upstream.kind == UpstreamKind::Twilio && !cfg.upstream.auth_token.expose().is_empty())
        .then(|| cfg.upstream.auth_token.expose())
}

/// A recipient's reply relayed by Twilio (form fields `From`, `To`, `Body`,
/// ...), checked with `X-Twilio-Signature`. Answers TwiML.
#[utoipa::path(post, path = "/inbound/twilio", tag = "public",
    params(("X-Twilio-Signature" = String, Header,
        description = "base64 HMAC-SHA1 of {public_base_url}/inbound/twilio + sorted form params, keyed by the Twilio auth token")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's incoming-message parameters: From, To, Body, MessageSid, ..."),
    responses(
        (status = 200, content_type = "text/xml", body = String, description = "TwiML: the confirmation as <Message>, or an empty <Response/>"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn inbound_twilio(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(token) = auth_token(&state) else {
        return Err(ApiError::unauthorized(
            "no Twilio auth token configured (inbound.twilio_auth_token)",
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
                    "webhook body too large",
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
    };
    let (Some(from), Some(to)) = (field("From"), field("To")) else {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "From and To are required",
        ));
    };
    let text = field("Body").unwrap_or("");
    let act = || async {
        let outcome = state
            .inbound
            .handle_mo(from, to, text, ReplyVia::Caller)
            .await
            .map_err(|e| match e {
                MoError::InvalidNumber(_) => {
                    ApiError::unprocessable("invalid_number", e.to_string())
                }
                MoError::UnknownShortCode(_) => {
                    ApiError::unprocessable("unknown_shortcode", e.to_string())
                }
                MoError::Store(e) => ApiError::internal(e),
            })?;
        Ok(twiml::message_response(outcome.reply.as_deref()).into_bytes())
    };
    // Twilio signs no time: a message delivered again under its MessageSid
    // (Twilio's retry, or a replay) gets the first TwiML back, nothing more.
    let answer = match field("MessageSid").filter(|sid| !sid.is_empty()) {
        Some(sid) => {
            replay::once(
                state.store.as_ref(),
                &replay::id_key("twilio", sid),
                &bytes,
                act,
            )
            .await?
        }
        None => act().await?,
    };
    Ok(([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], answer).into_response())
}
