//! HTTP: the two listeners' routers. Only this module knows our wire JSON.

pub mod api;
pub mod consents;
pub mod csv_upload;
pub mod dlr;
pub mod error;
pub mod extract;
pub mod insights;
pub mod messages;
pub mod notify;
pub mod openapi;
pub mod pages;
pub mod public;
pub mod ratelimit;
pub mod replay;
pub mod review;
pub mod serve;
pub mod subjects;
pub mod suppressions;
pub mod twilio;
pub mod webhook;
pub mod webhooks;

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Logs and counts every request by its route *template*
/// (`/v1/suppressions/{number}`), never the raw path, which may hold a
/// phone number.
pub async fn observe(listener: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("stopgate_http_requests_total", "listener" => listener, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("stopgate_http_request_seconds", "listener" => listener)
        .record(elapsed.as_secs_f64());
    tracing::debug!(listener, %method, route, status, ms = elapsed.as_millis() as u64, "request");
    response
}
