//! The merchant API under `/v1`: JSON, `Authorization: Bearer sk_…`, `Idempotency-Key` on
//! every POST.

mod auth;
mod idempotency;
mod sessions;

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
