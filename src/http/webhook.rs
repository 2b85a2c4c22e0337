//! `POST /v1/inbound`: the native MO webhook.
//!
//! The signature is checked over the raw body before anything in it is
//! read, so an unsigned request learns nothing and changes nothing. Then
//! `{"from", "to", "text"}` (other fields are ignored: a relay may add its
//! own ids) goes to [`inbound::Inbound::handle_mo`]; the answer is
//! `{"action": "opted_out|opted_in|help|none", "tenants": [..]}`, sent only
//! once every change is on disk.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{parse_json, require_content_type};
use crate::app::AppState;
use crate::inbound::{self, signature, MoError};

/// An MO message is at most a few hundred bytes; this leaves room for any
/// envelope and keeps the HMAC over a bounded input.
const MAX_BODY: usize = 64 * 1024;

/// An MO message (other fields are ignored).
#[derive(Deserialize, ToSchema)]
pub struct MoBody {
    /// The sender, E.164 (`+33612345678`; `33612345678` is accepted too).
    #[schema(example = "+33612345678")]
    from: String,
    /// The short code it was sent to.
    #[schema(example = "36111")]
    to: String,
    /// What the recipient wrote.
    #[schema(example = "STOP")]
    text: String,
}

/// What the reply did.
#[derive(Serialize, ToSchema)]
pub struct MoAnswer {
    /// `opted_out`, `opted_in`, `help` or `none`.
    action: &'static str,
    /// The tenant ids concerned.
    tenants: Vec<String>,
}

/// A recipient's reply (MO), relayed by the provider. Answered once every
/// change is on disk. See docs/inbound.md.
#[utoipa::path(post, path = "/v1/inbound", tag = "public",
    params(("X-Stopgate-Signature" = String, Header,
        description = "sha256=<hex HMAC-SHA256 of the raw body under inbound.secret>")),
    request_body = MoBody,
    responses(
        (status = 200, body = MoAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn inbound(State(state): State<AppState>, req: Request) -> Response {
    match handle(state, req).await {
        Ok(r) => r,
        Err(e) => {
            let unauthorized = e.status == StatusCode::UNAUTHORIZED;
            let mut resp = e.into_response();
            if unauthorized {
                // Not a Bearer scheme: say which header is expected.
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("HMAC-SHA256 header=\"X-Stopgate-Signature\""),
                );
            }
            resp
        }
    }
}

async fn handle(state: AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        super::extract::body_error(
            &e,
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {MAX_BODY} bytes"),
            ),
        )
    })?;
    let secret = state.settings.config.inbound.secret.expose().as_bytes();
    let sig = parts
        .headers
        .get(signature::HEADER)
        .map(HeaderValue::as_bytes);
    if let Err(e) = signature::verify(secret, &bytes, sig) {
        tracing::warn!(reason = %e, "inbound webhook refused: signature");
        metrics::counter!("stopgate_inbound_refused_total", "reason" => "signature").increment(1);
        return Err(ApiError::unauthorized(e.to_string()));
    }
    require_content_type(&parts.headers, "application/json")?;
    let mo: MoBody = parse_json(&bytes)?;
    let outcome = state
        .inbound
        .handle_mo(&mo.from, &mo.to, &mo.text, inbound::ReplyVia::Upstream)
        .await
        .map_err(|e| match e {
            MoError::InvalidNumber(_) => ApiError::unprocessable("invalid_number", e.to_string()),
            MoError::UnknownShortCode(_) => {
                ApiError::unprocessable("unknown_shortcode", e.to_string())
            }
            MoError::Store(e) => ApiError::internal(e),
        })?;
    Ok(Json(MoAnswer {
        action: outcome.action.as_str(),
        tenants: outcome.tenants.iter().map(|t| t.to_string()).collect(),
    })
    .into_response())
}
