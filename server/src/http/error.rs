//! The one error type of the JSON API: `{"error": {"code", "message", "param"?}}`, with a
//! stable snake_case `code` per variant. Internals are logged, never sent.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `not_found`: no such route or object (for this caller).
    #[error("not found")]
    NotFound,
    /// 503 `database_unavailable`: the database did not answer; safe to retry.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] StoreError),
    /// 500 `internal_error`: a bug; details are in the server log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> &'static str {
        match self {
            ApiError::NotFound => "No such resource.",
            ApiError::DatabaseUnavailable(_) => {
                "The database is not answering right now. Retry with the same Idempotency-Key."
            }
            ApiError::Internal(_) => "Something went wrong on our side. It has been logged.",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(_) => ApiError::DatabaseUnavailable(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::DatabaseUnavailable(e) => tracing::error!(error = %e, "database unavailable"),
            ApiError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            ApiError::NotFound => {}
        }
        let body = json!({ "error": { "code": self.code(), "message": self.message() } });
        (self.status(), Json(body)).into_response()
    }
}
