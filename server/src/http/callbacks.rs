//! Operator callbacks: `POST /callbacks/{rail}/{attempt}/{token}`.
//!
//! Daraja's callbacks are not signed; the unguessable per-attempt token in the URL is
//! the primary control (Safaricom's source-IP allow-list can be added in front as a
//! secondary one). The operator gets the answer its connector says it expects
//! (Daraja: `{"ResultCode":0}`) for everything it may resend; a wrong token, or a rail
//! we do not speak, is a 404, as if nothing were there.

use crate::{connectors::RailId, payments::CallbackError, startup::AppState};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};

/// The largest callback body read: Daraja's are about 1 KiB.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callbacks/{rail}/{attempt}/{token}", post(callback))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CALLBACK_BODY))
}

async fn callback(
    State(state): State<AppState>,
    Path((rail, attempt, token)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(rail) = RailId::parse(&rail) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ack = |accepted: bool| {
        let (status, body) = state.payments.callback_ack(rail, accepted);
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    match state.payments.callback(rail, &attempt, &token, &body).await {
        Ok(()) => ack(true),
        Err(CallbackError::Forbidden) => StatusCode::NOT_FOUND.into_response(),
        Err(CallbackError::BadBody) => ack(false),
        Err(CallbackError::Store(e)) => {
            tracing::error!(error = %e, "callback not applied; a kept body is re-driven, and the poller settles pending attempts");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
