//! The public listener: recipients' link pages and providers' webhooks.
//! Nothing from the API listener is mounted here.

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::ratelimit::ClientLimiter;
use super::{error, pages, webhook};
use crate::app::AppState;

pub fn router(state: AppState) -> Router {
    let limiter = ClientLimiter::new(&state.settings.config.ratelimit);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/inbound", post(webhook::inbound))
        .merge(pages::router(limiter))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}
