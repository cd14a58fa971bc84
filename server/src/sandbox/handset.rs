//! The sandbox handset's JSON API: what a phone shows, and the shopper's answer.
//! (A PIN is typed here because this *is* the simulated phone; Malipo's own pages
//! never ask for one.)

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::worker;
use crate::{
    domain::money::{Currency, format_amount},
    http::error::ApiError,
    startup::AppState,
    store::SandboxPush,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sandbox/phones/{msisdn}/prompts", get(prompts))
        .route("/sandbox/phones/{msisdn}/prompts/{id}/accept", post(accept))
        .route(
            "/sandbox/phones/{msisdn}/prompts/{id}/decline",
            post(decline),
        )
}

fn prompt_json(p: &SandboxPush) -> Value {
    json!({
        "id": p.checkout_request_id,
        "merchant": p.transaction_desc,
        "amount": p.amount,
        "amount_label": format_amount(p.amount * 100, Currency::Kes),
        "account_reference": p.account_reference,
        "business_short_code": p.short_code,
        "text": format!(
            "Do you want to pay {} to {} account no. {}? Enter M-PESA PIN",
            format_amount(p.amount * 100, Currency::Kes),
            p.transaction_desc,
            p.account_reference
        ),
        "created_at": p.created_at / 1000,
    })
}

async fn prompts(
    State(state): State<AppState>,
    Path(msisdn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.sandbox.is_none() {
        return Err(ApiError::NotFound);
    }
    let pending = state.store.sandbox_pending_for_phone(&msisdn).await?;
    Ok(Json(
        json!({ "phone": msisdn, "prompts": pending.iter().map(prompt_json).collect::<Vec<_>>() }),
    ))
}

/// A pending prompt on this phone, or 404 / 409.
async fn pending_prompt(state: &AppState, msisdn: &str, id: &str) -> Result<SandboxPush, ApiError> {
    if state.sandbox.is_none() {
        return Err(ApiError::NotFound);
    }
    match state.store.sandbox_push(id).await? {
        Some(p) if p.phone == msisdn && !p.decided => Ok(p),
        Some(p) if p.phone == msisdn => Err(ApiError::Invalid {
            code: "prompt_not_pending",
            message: "This prompt has already been answered or timed out.".into(),
            param: None,
        }),
        _ => Err(ApiError::NotFound),
    }
}

#[derive(Deserialize)]
pub struct Pin {
    pin: Option<String>,
}

async fn accept(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
    body: Option<Json<Pin>>,
) -> Result<Json<Value>, ApiError> {
    let push = pending_prompt(&state, &msisdn, &id).await?;
    let pin = body.and_then(|Json(b)| b.pin).unwrap_or_default();
    if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "invalid_pin",
            "pin",
            "The M-PESA PIN is 4 digits.",
        ));
    }
    match worker::decide(
        &state.store,
        &push,
        "0",
        "The service request is processed successfully.",
    )
    .await?
    {
        Some(receipt) => Ok(Json(json!({ "result_code": "0", "receipt": receipt }))),
        None => Err(ApiError::Invalid {
            code: "prompt_not_pending",
            message: "This prompt has already been answered or timed out.".into(),
            param: None,
        }),
    }
}

async fn decline(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let push = pending_prompt(&state, &msisdn, &id).await?;
    match worker::decide(&state.store, &push, "1032", "Request cancelled by user").await? {
        Some(_) => Ok(Json(json!({ "result_code": "1032" }))),
        None => Err(ApiError::Invalid {
            code: "prompt_not_pending",
            message: "This prompt has already been answered or timed out.".into(),
            param: None,
        }),
    }
}
