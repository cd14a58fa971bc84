//! The sandbox handset's JSON API: what a phone shows, and the shopper's answer.
//! (A PIN is typed here because this *is* the simulated phone; Malipo's own pages
//! never ask for one.)

use axum::{
    Form, Json, Router,
    extract::{Path, Query, State},
    http::header,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::{behaviour, worker};
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
        .route("/sandbox/phone/{msisdn}", get(phone_page))
        .route(
            "/sandbox/phone/{msisdn}/prompts/{id}/accept",
            post(accept_form),
        )
        .route(
            "/sandbox/phone/{msisdn}/prompts/{id}/decline",
            post(decline_form),
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

fn not_pending() -> ApiError {
    ApiError::Invalid {
        code: "prompt_not_pending",
        message: "This prompt has already been answered or timed out.".into(),
        param: None,
    }
}

/// Pays the prompt; returns the receipt. (The PIN is checked for shape only and never
/// stored: this is the simulated phone.)
async fn do_accept(
    state: &AppState,
    msisdn: &str,
    id: &str,
    pin: &str,
) -> Result<String, ApiError> {
    let push = pending_prompt(state, msisdn, id).await?;
    if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "invalid_pin",
            "pin",
            "The M-PESA PIN is 4 digits.",
        ));
    }
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(ApiError::NotFound);
    };
    worker::decide(
        &state.store,
        &push,
        "0",
        "The service request is processed successfully.",
        sandbox,
    )
    .await?
    .ok_or_else(not_pending)
}

async fn do_decline(state: &AppState, msisdn: &str, id: &str) -> Result<(), ApiError> {
    let push = pending_prompt(state, msisdn, id).await?;
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(ApiError::NotFound);
    };
    worker::decide(
        &state.store,
        &push,
        "1032",
        "Request cancelled by user",
        sandbox,
    )
    .await?
    .ok_or_else(not_pending)?;
    Ok(())
}

async fn accept(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
    body: Option<Json<Pin>>,
) -> Result<Json<Value>, ApiError> {
    let pin = body.and_then(|Json(b)| b.pin).unwrap_or_default();
    let receipt = do_accept(&state, &msisdn, &id, &pin).await?;
    Ok(Json(json!({ "result_code": "0", "receipt": receipt })))
}

async fn decline(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    do_decline(&state, &msisdn, &id).await?;
    Ok(Json(json!({ "result_code": "1032" })))
}

async fn accept_form(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
    Form(form): Form<Pin>,
) -> Response {
    let to = match do_accept(
        &state,
        &msisdn,
        &id,
        form.pin.as_deref().unwrap_or_default(),
    )
    .await
    {
        Ok(receipt) => format!("/sandbox/phone/{msisdn}?paid={receipt}"),
        Err(e) => format!("/sandbox/phone/{msisdn}?error={}", e.code()),
    };
    Redirect::to(&to).into_response()
}

async fn decline_form(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
) -> Response {
    let to = match do_decline(&state, &msisdn, &id).await {
        Ok(()) => format!("/sandbox/phone/{msisdn}?cancelled=1"),
        Err(e) => format!("/sandbox/phone/{msisdn}?error={}", e.code()),
    };
    Redirect::to(&to).into_response()
}

use super::esc;

/// The phone's screen. Refreshes itself every 2 s while idle, so a new prompt shows up
/// without a tap (and without JavaScript).
async fn phone_page(
    State(state): State<AppState>,
    Path(msisdn): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if state.sandbox.is_none() {
        return Err(ApiError::NotFound);
    }
    let pending = state.store.sandbox_pending_for_phone(&msisdn).await?;
    let phone = esc(&msisdn);
    let mut body = String::new();
    if let Some(receipt) = q.get("paid") {
        body.push_str(&format!(
            r#"<p class="sms" data-sms="paid">{} Confirmed. You have paid. Thank you.</p>"#,
            esc(receipt)
        ));
    }
    if q.contains_key("cancelled") {
        body.push_str(r#"<p class="sms" data-sms="cancelled">Request cancelled.</p>"#);
    }
    if let Some(code) = q.get("error") {
        let text = match code.as_str() {
            "invalid_pin" => "The M-PESA PIN is 4 digits.",
            _ => "That prompt is no longer waiting.",
        };
        body.push_str(&format!(
            r#"<p class="sms error" data-sms="error">{text}</p>"#
        ));
    }
    for p in &pending {
        let id = esc(&p.checkout_request_id);
        body.push_str(&format!(
            r#"<form class="prompt" method="post" action="/sandbox/phone/{phone}/prompts/{id}/accept" data-prompt="{id}">
<p class="prompt-text">Do you want to pay <b>{amount}</b> to <b>{merchant}</b> account no. <b>{reference}</b>?</p>
<label>Enter M-PESA PIN <input name="pin" type="password" inputmode="numeric" pattern="[0-9]{{4}}" maxlength="4" autocomplete="off" required></label>
<button type="submit">OK</button>
<button type="submit" formaction="/sandbox/phone/{phone}/prompts/{id}/decline" formnovalidate>Cancel</button></form>"#,
            amount = esc(&format_amount(p.amount * 100, Currency::Kes)),
            merchant = esc(&p.transaction_desc),
            reference = esc(&p.account_reference),
        ));
    }
    let refresh = if pending.is_empty() {
        body.push_str(r#"<p class="idle">No prompts. Waiting for an STK push…</p>"#);
        r#"<meta http-equiv="refresh" content="2">"#
    } else {
        ""
    };
    let scripted: String = behaviour::SCRIPTED
        .iter()
        .map(|(n, what)| {
            format!(
                r#"<li><a href="/sandbox/phone/{n}">{n}</a>: {}</li>"#,
                esc(what)
            )
        })
        .collect();
    let html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>Sandbox phone {phone}</title><style>{CSS}</style></head><body>
<main class="phone"><p class="bar">Safaricom · {phone}</p>{body}</main>
<details><summary>Scripted test numbers</summary><ul>{scripted}</ul></details>
<p class="note">Malipo sandbox: a simulated handset. Malipo's own pages never ask for a PIN.</p>
</body></html>"#
    );
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

const CSS: &str = "body{margin:0;font:16px/1.4 system-ui,sans-serif;background:#222;color:#eee}\
.phone{max-width:22rem;margin:1rem auto;background:#111;border-radius:18px;padding:1rem;min-height:18rem}\
.bar{font-size:.8rem;color:#9c9;margin:0 0 1rem}\
.prompt{background:#f4f4f4;color:#111;border-radius:8px;padding:.75rem;margin:0 0 1rem}\
.prompt input{display:block;width:100%;box-sizing:border-box;font-size:1.2rem;padding:.4rem;margin:.4rem 0}\
.prompt button{min-width:45%;min-height:44px;margin:.2rem 2% 0 0;font-size:1rem}\
.sms{background:#2d4;color:#041;border-radius:8px;padding:.6rem}.sms.error{background:#d84;color:#200}\
details,.note{max-width:22rem;margin:0 auto;font-size:.85rem;color:#bbb}a{color:#9cf}";
