//! The public listener: recipients' link pages and providers' webhooks.
//! Nothing from the API listener is mounted here.

use std::sync::Arc;

use axum::{Json, Router};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ratelimit::ClientLimiter;
use super::{error, pages, webhook};
use crate::app::AppState;

/// Every public route, registered through utoipa (see `api::routes`).
pub fn routes() -> OpenApiRouter<AppState> {
    routes_with(None)
}

/// The routes; with a limiter, the link pages are rate limited by it.
fn routes_with(limiter: Option<Arc<ClientLimiter>>) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(webhook::inbound))
        .routes(routes!(super::twilio::inbound::inbound_twilio))
        .routes(routes!(super::dlr::native))
        .routes(routes!(super::dlr::twilio::callback))
        .routes(routes!(
            super::dlr::vonage::receipt,
            super::dlr::vonage::receipt_post
        ))
        .routes(routes!(super::dlr::cm::reports))
        .merge(pages::routes(limiter))
}

pub fn router(state: AppState) -> Router {
    let limiter = ClientLimiter::new(&state.settings.config.ratelimit);
    let (router, _) = routes_with(Some(limiter)).split_for_parts();
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
