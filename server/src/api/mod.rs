//! The merchant API under `/v1`: JSON, `Authorization: Bearer sk_…`, `Idempotency-Key` on
//! every POST. Routes are registered from their `#[utoipa::path]` annotations, which also
//! make the OpenAPI document at `/v1/openapi.json`.

pub mod account;
mod auth;
mod body;
pub(crate) mod events;
pub use events::REDELIVERIES_PER_MINUTE;
mod idempotency;
pub mod openapi;
mod refunds;
mod sessions;
mod webhook_endpoints;

pub use auth::Caller;
pub use idempotency::request_hash;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{any, get},
};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{http::error::ApiError, startup::AppState};

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// Every documented route, with its handler.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(sessions::create))
        .routes(routes!(sessions::retrieve))
        .routes(routes!(sessions::expire))
        .routes(routes!(webhook_endpoints::create, webhook_endpoints::list))
        .routes(routes!(
            webhook_endpoints::retrieve,
            webhook_endpoints::delete
        ))
        .routes(routes!(webhook_endpoints::rotate_secret))
        .routes(routes!(events::list))
        .routes(routes!(events::retrieve))
        .routes(routes!(events::deliveries))
        .routes(routes!(events::redeliver))
        .routes(routes!(account::retrieve, account::update))
        .routes(routes!(refunds::create, refunds::list))
        .routes(routes!(refunds::retrieve))
}

/// The public documents: no key needed (served by other routers; listed here so the
/// reference covers every `/v1` route).
fn public_paths() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crate::embed::checkout_js))
        .routes(routes!(openapi_json))
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "account", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi_document(""))
}

/// The OpenAPI 3.1 document, with `public_url` as its server and the webhooks Malipo
/// sends described under `webhooks` (utoipa has no builder for that 3.1 section).
pub fn openapi_document(public_url: &str) -> serde_json::Value {
    let (_, mut doc) = documented().merge(public_paths()).split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![utoipa::openapi::Server::new(public_url)]);
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    doc["webhooks"] = openapi::webhooks();
    openapi::constrain(&mut doc);
    doc
}

pub fn router(state: &AppState) -> Router<AppState> {
    let (routes, _) = documented().split_for_parts();
    let doc = Arc::new(openapi_document(&state.config.public_url));
    routes
        // The body limit, then the key check with the idempotency check inside it (which
        // needs the caller): one stack, one box per route (see `crate::http::router`).
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(DefaultBodyLimit::max(MAX_BODY))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    auth::authenticate,
                )),
        )
        // Public: the reference itself needs no key.
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        // Unknown API paths get a JSON 404, not the shopper's HTML one (added after the
        // layers, so no key is needed to learn a route does not exist).
        .route("/v1/{*rest}", any(|| async { ApiError::NotFound }))
}
