//! `POST /v1/inbound`: the native MO webhook.
//!
//! The signature (with its time: see [`signature`]) is checked over the raw
//! body before anything in it is read, so an unsigned request learns nothing
//! and changes nothing. A signature seen before, or an MO `id` seen before,
//! gets its first answer back and is not acted on again (see [`replay`]).
//! Then `{"from", "to", "text", "id"?}` (other fields are ignored: a relay may
//! add its own) goes to [`inbound::Inbound::handle_mo`]; the answer is
//! `{"action": "opted_out|opted_in|help|none", "tenants": [..]}`, sent only
//! once every change is on disk.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{parse_json, require_content_type};
use super::replay;
use crate::app::AppState;
use crate::domain::TenantId;
use crate::inbound::{self, signature, MoAction, MoError};
use crate::store::Once;

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
    /// The provider's id of this MO message, if it has one: a message
    /// delivered twice under one id is acted on once.
    #[serde(default)]
    #[schema(example = "mo-8812")]
    id: Option<String>,
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
        description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" under inbound.secret>")),
    request_body = MoBody,
    responses(
        (status = 200, body = MoAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn inbound(State(state): State<AppState>, req: Request) -> Response {
    handle(state, req).await.unwrap_or_else(refused)
}

/// A native webhook's body, read within its bound and checked against its
/// signature (time included). Shared by `/v1/inbound` and `/v1/dlr`.
pub(crate) struct Signed {
    pub body: bytes::Bytes,
    /// `sig:<hex MAC>`: the same request twice is a replay.
    pub replay_key: String,
}

pub(crate) async fn read_signed(state: &AppState, req: Request) -> Result<Signed, ApiError> {
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
    let inbound = &state.settings.config.inbound;
    let sig = parts
        .headers
        .get(signature::HEADER)
        .map(HeaderValue::as_bytes);
    let policy = signature::Policy {
        tolerance_secs: i64::from(inbound.signature_tolerance_secs),
        legacy: inbound.legacy_signature,
    };
    let now = crate::domain::now_millis() / 1000;
    let verified = signature::verify(inbound.secret.expose().as_bytes(), &bytes, sig, now, policy)
        .map_err(|e| {
            tracing::warn!(reason = %e, "native webhook refused: signature");
            metrics::counter!("stopgate_inbound_refused_total", "reason" => "signature")
                .increment(1);
            ApiError::unauthorized(e.to_string())
        })?;
    require_content_type(&parts.headers, "application/json")?;
    Ok(Signed {
        body: bytes,
        replay_key: format!("sig:{}", hex::encode(verified.mac)),
    })
}

/// `401` with the header that says which signature is expected.
pub(crate) fn refused(e: ApiError) -> Response {
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

async fn handle(state: AppState, req: Request) -> Result<Response, ApiError> {
    let signed = read_signed(&state, req).await?;
    let bytes = signed.body;
    let mo: MoBody = parse_json(&bytes)?;
    // The same MO id twice is the provider's retry (possibly signed anew),
    // and the same signature twice a replay. With an id, its record alone
    // decides: a replayed request carries the same id, so a second record
    // under its signature would only cost another store write per STOP.
    let replay = match mo.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => {
            let body = [
                mo.from.as_bytes(),
                b"\0",
                mo.to.as_bytes(),
                b"\0",
                mo.text.as_bytes(),
            ]
            .concat();
            replay::record(&replay::id_key("mo", id), &body)
        }
        None => replay::record(&signed.replay_key, &bytes),
    };
    let answer = |action: MoAction, tenants: &[TenantId]| {
        serde_json::to_vec(&MoAnswer {
            action: action.as_str(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        })
        .expect("the answer serializes")
    };
    let done = state
        .inbound
        .handle_mo_once(
            &mo.from,
            &mo.to,
            &mo.text,
            inbound::ReplyVia::Upstream,
            &replay,
            &answer,
        )
        .await
        .map_err(mo_refused)?;
    let answer = match done {
        Once::Done { answer, .. } => answer,
        Once::Seen(seen) => replay::answered(seen)?,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// Why a reply was not handled, as the webhook answers it.
fn mo_refused(e: MoError) -> ApiError {
    match e {
        MoError::InvalidNumber(_) => ApiError::unprocessable("invalid_number", e.to_string()),
        MoError::UnknownShortCode(_) => ApiError::unprocessable("unknown_shortcode", e.to_string()),
        MoError::Store(e) => ApiError::internal(e),
    }
}
