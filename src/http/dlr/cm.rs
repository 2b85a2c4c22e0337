//! `POST /dlr/cm?token=...`: CM.com's status reports, in the JSON format
//! chosen in CM's Channels app: `{"messages": {"msg": {"reference", "to",
//! "received", "status": {"code", "errorCode", "errorDescription"}}}}`
//! (`msg` may also be a list). `reference` is our message id, which the
//! `cm` upstream sends; CM's status codes: 0 accepted, 1 rejected, 2
//! delivered, 3 failed.
//!
//! CM signs nothing, so the URL carries a secret: `[inbound] cm_status_token`,
//! compared in constant time. Without it every report is refused.

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::domain::MessageStatus;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{parse_json, require_content_type};
use crate::reports::Report;

const MAX_BODY: usize = 256 * 1024;

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
struct Reports {
    messages: Messages,
}

#[derive(Deserialize)]
struct Messages {
    msg: OneOrMany,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Msg),
    Many(Vec<Msg>),
}

#[derive(Deserialize)]
struct Msg {
    reference: Option<String>,
    status: MsgStatus,
}

#[derive(Deserialize)]
struct MsgStatus {
    /// CM writes it as a string or a number, depending on the template.
    code: serde_json::Value,
    #[serde(rename = "errorCode", default)]
    error_code: Option<serde_json::Value>,
}

/// Our status for CM's code; `None` for 0 (accepted by the operator).
pub fn status(code: &str) -> Option<MessageStatus> {
    match code {
        "2" => Some(MessageStatus::Delivered),
        "1" | "3" => Some(MessageStatus::Undelivered),
        _ => None,
    }
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// CM's status reports.
#[utoipa::path(post, path = "/dlr/cm", tag = "public",
    params(("token" = String, Query, description = "inbound.cm_status_token")),
    request_body(content = String, content_type = "application/json",
        description = "CM's JSON status report"),
    responses(
        (status = 204, description = "applied (or for messages we do not know)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn reports(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    use subtle::ConstantTimeEq;
    let expected = state.settings.config.inbound.cm_status_token.expose();
    let presented = q.token.unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        metrics::counter!("stopgate_inbound_refused_total", "reason" => "cm_token").increment(1);
        return Err(ApiError::unauthorized(
            "the status report URL's token does not match inbound.cm_status_token",
        ));
    }
    require_content_type(req.headers(), "application/json")?;
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            crate::http::extract::body_error(
                &e,
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "report too large",
                ),
            )
        })?;
    let body: Reports = parse_json(&bytes)?;
    let msgs = match body.messages.msg {
        OneOrMany::One(m) => vec![m],
        OneOrMany::Many(v) => v,
    };
    for m in msgs.into_iter().take(1000) {
        let (Some(reference), Some(code)) = (m.reference, text(&m.status.code)) else {
            continue;
        };
        if let Some(status) = status(&code) {
            super::apply(
                &state,
                Report {
                    provider: "cm",
                    provider_id: reference.chars().take(64).collect(),
                    status,
                    error: m
                        .status
                        .error_code
                        .as_ref()
                        .and_then(text)
                        .map(|e| e.chars().take(16).collect()),
                },
            )
            .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cm_codes_map_to_ours() {
        assert_eq!(status("2"), Some(MessageStatus::Delivered));
        assert_eq!(status("1"), Some(MessageStatus::Undelivered));
        assert_eq!(status("3"), Some(MessageStatus::Undelivered));
        assert_eq!(status("0"), None);
        assert_eq!(status("x"), None);
    }

    #[test]
    fn one_report_or_many() {
        let one: Reports = serde_json::from_str(
            r#"{"messages":{"msg":{"received":"2026-12-01T10:00:00","to":"0033612345678","reference":"msg_1","status":{"code":"2","errorCode":"","errorDescription":""},"operator":"20801"}}}"#,
        )
        .unwrap();
        assert!(matches!(one.messages.msg, OneOrMany::One(_)));
        let many: Reports = serde_json::from_str(
            r#"{"messages":{"msg":[{"reference":"a","status":{"code":3,"errorCode":5}},{"reference":"b","status":{"code":"2"}}]}}"#,
        )
        .unwrap();
        let OneOrMany::Many(v) = many.messages.msg else {
            panic!()
        };
        assert_eq!(text(&v[0].status.code).as_deref(), Some("3"));
        assert_eq!(
            v[0].status.error_code.as_ref().and_then(text).as_deref(),
            Some("5")
        );
    }
}
