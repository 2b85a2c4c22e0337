//! Delivery reports in, on the public listener: the native `POST /v1/dlr`
//! (signed like `/v1/inbound`) and one provider-shaped webhook per provider
//! (`/dlr/twilio`, `/dlr/vonage`, `/dlr/cm`), each authenticated the way its
//! provider does it. All end in [`crate::reports::Reports::report`].
//!
//! Every report is answered 2xx once it is applied, including a report for
//! a message we do not know (counted in `stopgate_delivery_reports_total`),
//! so that providers stop retrying; a report we cannot read is a 400 and one
//! we cannot authenticate a 401. Reports are idempotent: a duplicate changes
//! nothing.

pub mod cm;
pub mod twilio;
pub mod vonage;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::parse_json;
use super::replay;
use super::webhook::{read_signed, refused};
use crate::app::AppState;
use crate::domain::MessageStatus;
use crate::reports::{Outcome, Report};
use crate::store::{Once, ReportAnswer};

/// A native delivery report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DlrBody {
    /// The provider's id of the message (what it answered when it took it).
    #[schema(example = "prov-8812")]
    provider_id: String,
    /// `sent`, `delivered`, `undelivered` or `failed`.
    #[schema(example = "delivered")]
    status: String,
    /// The provider's error code, if any.
    #[serde(default)]
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DlrAnswer {
    /// `changed`, `kept` (a more final status stays), `duplicate` or `unknown`.
    result: &'static str,
}

/// Applies a report and says what it did.
pub(crate) async fn apply(state: &AppState, report: Report) -> Result<Outcome, ApiError> {
    Ok(state.reports.report(report).await?)
}

/// A provider's delivery report in stopgate's own format (the generic
/// `http` upstream's providers, relays). Signed like `/v1/inbound`.
#[utoipa::path(post, path = "/v1/dlr", tag = "public",
    params(("X-Stopgate-Signature" = String, Header,
        description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" under inbound.secret>")),
    request_body = DlrBody,
    responses(
        (status = 200, body = DlrAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn native(State(state): State<AppState>, req: Request) -> Response {
    handle_native(state, req).await.unwrap_or_else(refused)
}

async fn handle_native(state: AppState, req: Request) -> Result<Response, ApiError> {
    let signed = read_signed(&state, req).await?;
    let dlr: DlrBody = parse_json(&signed.body)?;
    let status = match dlr.status.as_str() {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "undelivered" => MessageStatus::Undelivered,
        "failed" => MessageStatus::Failed,
        other => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("status: {other:?} is not one of sent, delivered, undelivered, failed"),
            ))
        }
    };
    if dlr.provider_id.is_empty() || dlr.provider_id.len() > 256 {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "provider_id: 1 to 256 characters",
        ));
    }
    let error = dlr
        .error
        .filter(|e| !e.is_empty())
        .map(|e| e.chars().take(64).collect());
    let report = Report {
        // The generic format is the configured upstream's.
        provider: state.outbound.provider.name(),
        provider_id: dlr.provider_id,
        status,
        error,
    };
    // The replay record is kept in the report's own transaction.
    let answer: ReportAnswer = Arc::new(|applied| {
        serde_json::to_vec(&DlrAnswer {
            result: Outcome::name(applied),
        })
        .expect("the answer serializes")
    });
    let replay = replay::record(&signed.replay_key, &signed.body);
    let answer = match state.reports.report_once(report, &replay, answer).await? {
        Once::Done { answer, .. } => answer,
        Once::Seen(seen) => replay::answered(seen)?,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}
