//! The public listener: recipients' link pages and providers' webhooks.
//! Nothing from the API listener is mounted here.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::error;
use crate::app::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}
