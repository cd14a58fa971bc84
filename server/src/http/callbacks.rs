//! Operator callbacks: `POST /callbacks/mpesa/{attempt}/{token}`.
//!
//! Daraja's callbacks are not signed; the unguessable per-attempt token in the URL is
//! the primary control (Safaricom's source-IP allow-list can be added in front as a
//! secondary one). Daraja gets `{"ResultCode":0}` for everything it may resend; a wrong
//! token is a 404, as if nothing were there.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;

use crate::{payments::CallbackError, startup::AppState};

/// The largest callback body read: Daraja's are about 1 KiB.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callbacks/mpesa/{attempt}/{token}", post(mpesa))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CALLBACK_BODY))
}

async fn mpesa(
    State(state): State<AppState>,
    Path((attempt, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match state.payments.mpesa_callback(&attempt, &token, &body).await {
        Ok(()) => Json(json!({ "ResultCode": 0, "ResultDesc": "Accepted" })).into_response(),
        Err(CallbackError::Forbidden) => StatusCode::NOT_FOUND.into_response(),
        Err(CallbackError::BadBody) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "ResultCode": 1, "ResultDesc": "Unreadable callback" })),
        )
            .into_response(),
        Err(CallbackError::Store(e)) => {
            tracing::error!(error = %e, "callback not applied; a kept body is re-driven, and the poller settles pending attempts");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
