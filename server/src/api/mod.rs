//! The merchant API under `/v1`: JSON, `Authorization: Bearer sk_…`, `Idempotency-Key` on
//! every POST.

mod account;
mod auth;
mod body;
mod events;
mod idempotency;
mod sessions;
mod webhook_endpoints;

pub use auth::Caller;
pub use idempotency::request_hash;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{any, get, post},
};

use crate::{http::error::ApiError, startup::AppState};

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/checkout/sessions", post(sessions::create))
        .route("/v1/checkout/sessions/{id}", get(sessions::retrieve))
        .route("/v1/checkout/sessions/{id}/expire", post(sessions::expire))
        .route(
            "/v1/webhook_endpoints",
            post(webhook_endpoints::create).get(webhook_endpoints::list),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            get(webhook_endpoints::retrieve).delete(webhook_endpoints::delete),
        )
        .route(
            "/v1/webhook_endpoints/{id}/rotate_secret",
            post(webhook_endpoints::rotate_secret),
        )
        .route("/v1/account", get(account::retrieve).post(account::update))
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::retrieve))
        .route("/v1/events/{id}/deliveries", get(events::deliveries))
        .route("/v1/events/{id}/redeliver", post(events::redeliver))
        // Layers run bottom-up: authenticate, then idempotency (which needs the caller).
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(DefaultBodyLimit::max(MAX_BODY))
        // Unknown API paths get a JSON 404, not the shopper's HTML one (added after the
        // layers, so no key is needed to learn a route does not exist).
        .route("/v1/{*rest}", any(|| async { ApiError::NotFound }))
}
