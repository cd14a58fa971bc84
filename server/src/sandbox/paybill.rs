//! The sandbox handset's "Lipa na M-PESA → Pay Bill" menu: a shopper pays a business
//! number from the phone, without a prompt. As M-PESA does: the business's validation
//! URL is asked first (if it does not answer in time, the registered `ResponseType`
//! decides), the money moves, and the confirmation URL is told — with the scripted
//! numbers' callback behaviours (never delivered, twice, late).

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::header,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

use super::{esc, operator, operators::daraja::is_safaricom_msisdn};
use crate::{
    connectors::{RailId, mpesa::daraja_timestamp},
    http::error::ApiError,
    startup::AppState,
    time::now_ms,
};

/// A shortcode's registered C2B URLs.
#[derive(Debug, Clone)]
pub struct Registered {
    pub confirmation: String,
    pub validation: String,
    /// `ResponseType: Completed`: a validation that does not answer lets the payment go.
    pub complete_unanswered: bool,
}

/// How long M-PESA waits for the validation URL.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(8);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sandbox/phones/{msisdn}/paybill", post(pay_json))
        .route("/sandbox/phone/{msisdn}/paybill", get(menu).post(pay_form))
}

#[derive(Deserialize)]
pub struct PayBill {
    #[serde(default)]
    business: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    pin: String,
}

/// Pays `p.business` from `msisdn`; the receipt, or why not (code, M-PESA's words).
async fn pay(
    state: &AppState,
    msisdn: &str,
    p: &PayBill,
) -> Result<String, (&'static str, String)> {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(("not_found", "No sandbox here.".into()));
    };
    if !is_safaricom_msisdn(msisdn) {
        return Err(("invalid_phone", "Not a Safaricom number.".into()));
    }
    if p.pin.len() != 4 || !p.pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(("invalid_pin", "The M-PESA PIN is 4 digits.".into()));
    }
    let business = p.business.trim();
    if business != sandbox.rails.mpesa.shortcode {
        return Err((
            "invalid_business",
            "Failed. The business number is not valid.".into(),
        ));
    }
    let account = p.account.trim();
    if account.is_empty() || account.len() > 20 {
        return Err(("invalid_account", "Enter the account number.".into()));
    }
    let Some(amount) = p
        .amount
        .trim()
        .replace(',', "")
        .parse::<i64>()
        .ok()
        .filter(|a| (1..=250_000).contains(a))
    else {
        return Err((
            "invalid_amount",
            "Failed. Enter an amount from Ksh1 to Ksh250,000.".into(),
        ));
    };
    if msisdn == "254700000001" {
        return Err((
            "insufficient_funds",
            "Failed. You do not have enough money in your M-PESA account.".into(),
        ));
    }
    let receipt = operator(RailId::Mpesa).receipt();
    let masked = format!("{}*****{}", &msisdn[..4], &msisdn[9..]);
    let body = json!({
        "TransactionType": "Pay Bill",
        "TransID": receipt,
        "TransTime": daraja_timestamp(now_ms()),
        "TransAmount": format!("{amount}.00"),
        "BusinessShortCode": business,
        "BillRefNumber": account,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": masked,
        "FirstName": "Sandbox",
        "MiddleName": "",
        "LastName": "Shopper",
    });
    let registered = sandbox
        .paybill_urls
        .lock()
        .ok()
        .and_then(|urls| urls.get(business).cloned());
    // No URLs registered: M-PESA takes the money and tells nobody.
    let Some(urls) = registered else {
        ledger(state, sandbox, msisdn, amount, business, account, &receipt).await?;
        return Ok(receipt);
    };
    let asked = sandbox
        .http()
        .post(&urls.validation)
        .timeout(VALIDATION_TIMEOUT)
        .json(&body)
        .send()
        .await;
    let verdict = match asked {
        Ok(res) => res
            .json::<Value>()
            .await
            .ok()
            .map(|v| match &v["ResultCode"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            }),
        Err(_) => None,
    };
    match verdict.as_deref() {
        Some("0") => {}
        None if urls.complete_unanswered => {}
        Some("C2B00013") => {
            return Err((
                "rejected",
                format!("Failed. Ksh{amount} is not the amount for account {account}."),
            ));
        }
        _ => {
            return Err((
                "rejected",
                format!("Failed. {account} is not a valid account for {business}."),
            ));
        }
    }
    // The money moved: in the ledger, where Transaction Status finds it.
    ledger(state, sandbox, msisdn, amount, business, account, &receipt).await?;
    // The confirmation, as the payer's number scripts it.
    let (deliveries, delay_ms) = match msisdn {
        "254700000404" => (0, 0),
        "254700000202" => (2, 0),
        "254700000010" => (1, sandbox.scaled_ms(10_000)),
        _ => (1, 0),
    };
    if deliveries > 0 && sandbox.callback_allowed(&urls.confirmation) {
        let http = sandbox.http().clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::try_from(delay_ms).unwrap_or(0))).await;
            for _ in 0..deliveries {
                if let Err(e) = http.post(&urls.confirmation).json(&body).send().await {
                    tracing::warn!(error = %e, "sandbox C2B confirmation not delivered");
                }
            }
        });
    }
    Ok(receipt)
}

/// A menu payment the operator took, in the sandbox's ledger: decided and paid, with
/// its receipt, so that Transaction Status (and reversals) find it like any other. Not
/// written: the payer is told to try again (nothing was taken).
async fn ledger(
    state: &AppState,
    sandbox: &super::Sandbox,
    msisdn: &str,
    amount: i64,
    business: &str,
    account: &str,
    receipt: &str,
) -> Result<(), (&'static str, String)> {
    let now = now_ms();
    let mut paid = super::SandboxRequest::pending(
        super::NewRequest {
            operator: RailId::Mpesa,
            id: format!("c2b_{receipt}"),
            phone: msisdn.to_owned(),
            amount: amount * 100,
            currency: crate::domain::money::Currency::Kes,
            payee: business.to_owned(),
            reference: account.to_owned(),
            callback_url: None,
            wire: serde_json::Map::new(),
            refund_of: None,
        },
        &sandbox.behaviour(RailId::Mpesa, "c2b"),
        now,
    );
    // Nothing scripted: the money moved when the payer confirmed with their PIN.
    paid.auto_result_code = None;
    paid.auto_at = None;
    paid.callbacks_due = 0;
    paid.decided = true;
    paid.decided_at = Some(now);
    paid.result_code = Some("0".into());
    paid.result_desc = Some("The service request is processed successfully.".into());
    paid.receipt = Some(receipt.to_owned());
    match state.store.insert_sandbox_request(&paid).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "sandbox Pay Bill: the ledger could not be written");
            Err(("unavailable", "Failed. Try again later.".into()))
        }
    }
}

async fn pay_json(
    State(state): State<AppState>,
    Path(msisdn): Path<String>,
    Json(p): Json<PayBill>,
) -> Result<Json<Value>, ApiError> {
    if state.sandbox.is_none() {
        return Err(ApiError::NotFound);
    }
    match pay(&state, &msisdn, &p).await {
        Ok(receipt) => Ok(Json(json!({ "receipt": receipt }))),
        Err((code, message)) => Err(ApiError::Invalid {
            code,
            message,
            param: None,
        }),
    }
}

async fn pay_form(
    State(state): State<AppState>,
    Path(msisdn): Path<String>,
    Form(p): Form<PayBill>,
) -> Response {
    if msisdn.is_empty() || msisdn.len() > 15 || !msisdn.bytes().all(|b| b.is_ascii_digit()) {
        return ApiError::NotFound.into_response();
    }
    let text = match pay(&state, &msisdn, &p).await {
        Ok(receipt) => format!(
            "{receipt} Confirmed. Ksh{}.00 sent to {} for account {}.",
            p.amount.trim(),
            p.business.trim(),
            p.account.trim()
        ),
        Err((_, words)) => words,
    };
    let to = format!(
        "/sandbox/phone/{msisdn}?sms={}",
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
    );
    Redirect::to(&to).into_response()
}

/// The menu's Pay Bill screen: business number, account number, amount, PIN.
async fn menu(State(state): State<AppState>, Path(msisdn): Path<String>) -> Response {
    if state.sandbox.is_none() {
        return ApiError::NotFound.into_response();
    }
    let phone = esc(&msisdn);
    let html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox phone {phone}: Pay Bill</title></head><body>
<main><p>{phone} · M-PESA › Lipa na M-PESA › Pay Bill</p>
<form method="post" action="/sandbox/phone/{phone}/paybill" data-menu="paybill">
<p><label>Business no. <input name="business" inputmode="numeric" required></label></p>
<p><label>Account no. <input name="account" required></label></p>
<p><label>Amount <input name="amount" inputmode="numeric" required></label></p>
<p><label>PIN <input name="pin" type="password" inputmode="numeric" maxlength="4" autocomplete="off" required></label></p>
<p><button type="submit">Send</button></p></form>
<p><a href="/sandbox/phone/{phone}">Back</a></p></main></body></html>"#
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}
