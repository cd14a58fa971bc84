//! The sandbox handset: one simulated phone per number, showing the prompts of every
//! operator that pushed to it, each in that operator's words, and taking the shopper's
//! answer (a JSON API for tests and a page for people). A PIN is typed here because
//! this *is* the simulated phone; Malipo's own pages never ask for one.

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

use super::{Answer, SandboxRequest, operator, worker};
use crate::{
    connectors::RailId, domain::money::format_amount, http::error::ApiError, startup::AppState,
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

fn prompt_json(p: &SandboxRequest) -> Value {
    let op = operator(p.operator);
    json!({
        "id": p.id,
        "operator": p.operator,
        "network": op.network(),
        "wallet": op.wallet(),
        "merchant": p.payee,
        "amount": p.whole_amount(),
        "currency": p.currency.code(),
        "amount_label": format_amount(p.amount, p.currency),
        "account_reference": p.reference,
        "text": op.prompt(p),
        "pin_digits": op.pin_digits(),
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
async fn pending_prompt(
    state: &AppState,
    msisdn: &str,
    id: &str,
) -> Result<SandboxRequest, ApiError> {
    if state.sandbox.is_none() {
        return Err(ApiError::NotFound);
    }
    match state.store.sandbox_request_on_phone(msisdn, id).await? {
        Some(p) if !p.decided => Ok(p),
        Some(_) => Err(not_pending()),
        None => Err(ApiError::NotFound),
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
    let op = operator(push.operator);
    if pin.len() != op.pin_digits() || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::Invalid {
            code: "invalid_pin",
            message: pin_rule(push.operator),
            param: Some("pin".into()),
        });
    }
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(ApiError::NotFound);
    };
    worker::answer(&state.store, &push, Answer::Approved, sandbox)
        .await?
        .ok_or_else(not_pending)
}

async fn do_decline(state: &AppState, msisdn: &str, id: &str) -> Result<(), ApiError> {
    let push = pending_prompt(state, msisdn, id).await?;
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(ApiError::NotFound);
    };
    worker::answer(&state.store, &push, Answer::Declined, sandbox)
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
    Ok(Json(json!({ "receipt": receipt })))
}

async fn decline(
    State(state): State<AppState>,
    Path((msisdn, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    do_decline(&state, &msisdn, &id).await?;
    Ok(Json(json!({ "declined": true })))
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
        Err(e) => format!("/sandbox/phone/{msisdn}?error={}&prompt={id}", e.code()),
    };
    Redirect::to(&to).into_response()
}

/// What a PIN must be on this operator's phone.
fn pin_rule(rail: RailId) -> String {
    let op = operator(rail);
    format!("The {} PIN is {} digits.", op.wallet(), op.pin_digits())
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
    if let Some(sms) = q.get("sms") {
        body.push_str(&format!(
            r#"<p class="sms" data-sms="paybill">{}</p>"#,
            esc(sms)
        ));
    }
    if q.contains_key("cancelled") {
        body.push_str(r#"<p class="sms" data-sms="cancelled">Request cancelled.</p>"#);
    }
    if let Some(code) = q.get("error") {
        let text = match code.as_str() {
            "invalid_pin" => {
                let rail = match q.get("prompt") {
                    Some(id) => state
                        .store
                        .sandbox_request_on_phone(&msisdn, id)
                        .await?
                        .map(|p| p.operator),
                    None => None,
                };
                rail.map_or_else(|| "Wrong PIN format.".to_owned(), pin_rule)
            }
            _ => "That prompt is no longer waiting.".to_owned(),
        };
        body.push_str(&format!(
            r#"<p class="sms error" data-sms="error">{}</p>"#,
            esc(&text)
        ));
    }
    for p in &pending {
        let id = esc(&p.id);
        let op = operator(p.operator);
        let digits = op.pin_digits();
        body.push_str(&format!(
            r#"<form class="prompt" method="post" action="/sandbox/phone/{phone}/prompts/{id}/accept" data-prompt="{id}" data-operator="{rail}">
<p class="prompt-from">{network} · {wallet}</p>
<p class="prompt-text">{text}</p>
<label>PIN <input name="pin" type="password" inputmode="numeric" pattern="[0-9]{{{digits}}}" maxlength="{digits}" autocomplete="off" required></label>
<button type="submit">OK</button>
<button type="submit" formaction="/sandbox/phone/{phone}/prompts/{id}/decline" formnovalidate>Cancel</button></form>"#,
            rail = p.operator,
            network = esc(op.network()),
            wallet = esc(op.wallet()),
            text = esc(&op.prompt(p)),
        ));
    }
    let refresh = if pending.is_empty() {
        body.push_str(r#"<p class="idle">No prompts. Waiting for a payment request…</p>"#);
        r#"<meta http-equiv="refresh" content="2">"#
    } else {
        ""
    };
    let scripted: String = RailId::MOBILE_MONEY
        .into_iter()
        .map(operator)
        .flat_map(|op| op.scripted().iter().map(move |s| (op, s)))
        .map(|(op, (n, what))| {
            format!(
                r#"<li><a href="/sandbox/phone/{n}">{n}</a> ({}): {}</li>"#,
                esc(op.wallet()),
                esc(what)
            )
        })
        .collect();
    let html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>Sandbox phone {phone}</title><style>{CSS}</style></head><body>
<main class="phone"><p class="bar">{phone}</p>{body}<p><a href="/sandbox/phone/{phone}/paybill" data-menu="lipa">M-PESA › Lipa na M-PESA › Pay Bill</a></p></main>
<details><summary>Scripted test numbers</summary><ul>{scripted}</ul></details>
<p class="note">Malipo sandbox: a simulated handset. Malipo's own pages never ask for a PIN.</p>
</body></html>"#
    );
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

const CSS: &str = "body{margin:0;font:16px/1.4 system-ui,sans-serif;background:#222;color:#eee}\
.phone{max-width:22rem;margin:1rem auto;background:#111;border-radius:18px;padding:1rem;min-height:18rem}\
.bar{font-size:.8rem;color:#9c9;margin:0 0 1rem}.prompt-from{font-size:.8rem;font-weight:600;margin:0}\
.prompt{background:#f4f4f4;color:#111;border-radius:8px;padding:.75rem;margin:0 0 1rem}\
.prompt input{display:block;width:100%;box-sizing:border-box;font-size:1.2rem;padding:.4rem;margin:.4rem 0}\
.prompt button{min-width:45%;min-height:44px;margin:.2rem 2% 0 0;font-size:1rem}\
.sms{background:#2d4;color:#041;border-radius:8px;padding:.6rem}.sms.error{background:#d84;color:#200}\
details,.note{max-width:22rem;margin:0 auto;font-size:.85rem;color:#bbb}a{color:#9cf}";
