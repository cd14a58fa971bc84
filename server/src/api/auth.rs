//! Secret-key authentication.

use axum::{
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::Next,
    response::Response,
};

use crate::{
    domain::{MerchantId, Mode, SecretKey},
    http::error::ApiError,
    startup::AppState,
};

/// The authenticated caller, put in request extensions for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub merchant_id: MerchantId,
    pub mode: Mode,
}

/// Resolves `Authorization: Bearer sk_…` to a merchant and mode, or answers 401; then
/// the idempotency check ([`super::idempotency::idempotency`]).
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| SecretKey::parse(token.trim()))
        .ok_or(ApiError::InvalidApiKey)?;
    let (merchant_id, mode) = state
        .store
        .caller_by_secret_hash(&key.hash())
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    tracing::Span::current().record("merchant", merchant_id.as_str());
    req.extensions_mut().insert(Caller { merchant_id, mode });
    // Idempotency runs here rather than as a layer of its own: each layer costs every
    // API call a boxed future and a copy of the service below it.
    Ok(super::idempotency::idempotency(State(state), req, next).await)
}
