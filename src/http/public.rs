//! The public listener: recipients' link pages and providers' webhooks.
//! Nothing from the API listener is mounted here.

use axum::{Json, Router};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error;
use crate::app::AppState;

/// Every public route, registered through utoipa (see `api::routes`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(|req, next| {
            super::observe("public", req, next)
        }))
        .with_state(state)
}

/// Liveness of the public listener.
#[utoipa::path(get, path = "/healthz", tag = "public", operation_id = "public_healthz",
    responses((status = 200, description = "alive")))]
async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}
