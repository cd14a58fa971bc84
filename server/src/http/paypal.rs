//! Paying with PayPal, around PayPal's own pages (plain links and forms: no JavaScript
//! anywhere):
//! - `POST /pay/{id}/paypal` (form: `form_token`, `quotes`): 303 to PayPal's approval
//!   page, or back to the checkout page.
//! - `GET /pay/{id}/paypal/return/{attempt}/{token}`: back from PayPal, approved: the
//!   order is captured and settled now; 303 to the checkout page, which shows how it
//!   ended. (PayPal adds `?token={order}&PayerID=…`; they are not needed: the path's
//!   token is the attempt's own capability, and PayPal is asked.)
//! - `GET /pay/{id}/paypal/cancel/{attempt}/{token}`: cancelled on PayPal's page.

use axum::{
    Form, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use std::net::SocketAddr;

use super::{
    card::{back, back_in, error_code, form_refused},
    pay::PayForm,
};
use crate::{
    connectors::RailId,
    domain::SessionId,
    payments::{CallbackError, PayError, PaypalNext},
    startup::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pay/{id}/paypal", post(pay_paypal))
        .route("/pay/{id}/paypal/return/{attempt}/{token}", get(approved))
        .route("/pay/{id}/paypal/cancel/{attempt}/{token}", get(cancelled))
}

async fn pay_paypal(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(form): Form<PayForm>,
) -> Response {
    let Some(sid) = SessionId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(refused) = form_refused(&state, peer, &uri, &headers, &sid, &form) {
        return refused;
    }
    let lang = form.lang.as_deref();
    super::locale::remember(&state, &sid, &uri, &headers, lang);
    match state
        .payments
        .start_paypal(&sid, form.quote_for(RailId::Paypal))
        .await
    {
        Ok(PaypalNext::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(PaypalNext::Page) => back_in(&sid, None, lang),
        Err(PayError::SessionNotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => back_in(&sid, error_code(&e), lang),
    }
}

async fn approved(
    state: State<AppState>,
    Path((id, attempt, token)): Path<(String, String, String)>,
) -> Response {
    returned(state, &id, &attempt, &token, false).await
}

async fn cancelled(
    state: State<AppState>,
    Path((id, attempt, token)): Path<(String, String, String)>,
) -> Response {
    returned(state, &id, &attempt, &token, true).await
}

/// Back from PayPal: settle, then the page.
async fn returned(
    State(state): State<AppState>,
    id: &str,
    attempt: &str,
    token: &str,
    cancelled: bool,
) -> Response {
    let Some(sid) = SessionId::parse(id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match state
        .payments
        .paypal_returned(attempt, token, cancelled)
        .await
    {
        Ok(session) if session == sid => back(&sid, None),
        Ok(_) | Err(CallbackError::Forbidden) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "settling a PayPal return failed");
            back(&sid, Some("unavailable"))
        }
    }
}
