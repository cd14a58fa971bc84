//! Operator callbacks: `POST /callbacks/{rail}/{attempt}/{token}` (and a refund's
//! result at `/callbacks/{rail}/{refund}/{token}`), and
//! `POST /callbacks/{rail}` for operators that post every callback to one URL set on
//! their portal (Airtel, PayPal's webhooks): those are checked by the operator's own
//! means (Airtel's `hash`, PayPal's signature), never believed, and only make the engine
//! ask the operator at once.
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
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};

/// The largest callback body read: Daraja's are about 1 KiB.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callbacks/paybill/{key}/{kind}", post(paybill))
        .route("/callbacks/{rail}/{attempt}/{token}", post(callback))
        .route("/callbacks/{rail}", post(portal_callback))
        .route("/callbacks/{rail}/{key}", post(keyed_portal_callback))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CALLBACK_BODY))
}

fn ack(state: &AppState, rail: RailId, accepted: bool, received: &[u8]) -> Response {
    let (status, body) = state.payments.callback_ack(rail, accepted, received);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn answer(
    state: &AppState,
    rail: RailId,
    received: &[u8],
    result: Result<(), CallbackError>,
) -> Response {
    match result {
        Ok(()) => ack(state, rail, true, received),
        Err(CallbackError::Forbidden) => StatusCode::NOT_FOUND.into_response(),
        Err(CallbackError::BadBody) => ack(state, rail, false, received),
        Err(CallbackError::Store(e)) => {
            tracing::error!(error = %e, "callback not applied; a kept body is re-driven, and the poller settles pending attempts");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn portal_callback(
    State(state): State<AppState>,
    Path(rail): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    portal(&state, &rail, None, &headers, &body).await
}

/// A portal URL with a secret last segment (Tigo: its callbacks are unsigned).
/// `POST /callbacks/paybill/{key}/validation|confirmation`: a payment made from the
/// wallet's menu to the business number (see `payments::paybill`). An unknown key is a
/// 404, like any unknown callback URL.
async fn paybill(
    State(state): State<AppState>,
    Path((key, kind)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let answered = match kind.as_str() {
        "validation" => state.payments.paybill_validation(&key, &body).await.map(Ok),
        "confirmation" => state.payments.paybill_confirmation(&key, &body).await,
        _ => None,
    };
    match answered {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Ok((status, body))) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Some(Err(e)) => {
            tracing::error!(error = %e, "a Paybill confirmation could not be kept");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn keyed_portal_callback(
    State(state): State<AppState>,
    Path((rail, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    portal(&state, &rail, Some(&key), &headers, &body).await
}

async fn portal(
    state: &AppState,
    rail: &str,
    key: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(rail) = RailId::parse(rail) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let arrived = std::time::Instant::now();
    let result = state
        .payments
        .portal_callback(rail, key, headers, body)
        .await;
    crate::metrics::callback_handled(rail, arrived);
    answer(state, rail, body, result)
}

async fn callback(
    State(state): State<AppState>,
    Path((rail, attempt, token)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(rail) = RailId::parse(&rail) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let arrived = std::time::Instant::now();
    // A refund's result (Daraja's reversal) comes to the refund's own URL.
    let result = if attempt.starts_with("re_") {
        state
            .payments
            .refund_callback(rail, &attempt, &token, &body)
            .await
    } else if attempt.starts_with("rs_") {
        // A receipt check's answer (Daraja's Transaction Status).
        state
            .payments
            .rescue_callback(rail, &attempt, &token, &body)
            .await
    } else if let Some(receipt) = attempt.strip_prefix("pb_") {
        // M-PESA's word on a Pay Bill payment before it settles (Transaction Status).
        state
            .payments
            .paybill_verified(rail, receipt, &token, &body)
            .await
    } else {
        state.payments.callback(rail, &attempt, &token, &body).await
    };
    crate::metrics::callback_handled(rail, arrived);
    answer(&state, rail, &body, result)
}
