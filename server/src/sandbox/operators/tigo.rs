//! The sandbox Mixx by Yas (Tigo Pesa): the merchant's Get-Token and Push-Billpay
//! endpoints as Tigo's access gateway serves them (RAILS.md §4), with the username,
//! password and biller checked; callbacks to the merchant's one callback URL
//! (`{public_url}/callbacks/tigo`), unsigned, as Tigo sends them. There is no status
//! query, as at Tigo.

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Duration};

use crate::{
    connectors::{RailId, tigo::wire::PushRequest},
    domain::{
        ids::random_base62,
        money::{Currency, format_amount},
    },
    sandbox::{
        Answer, NewRequest, OutgoingCallback, PENDING_PER_PHONE, SandboxOperator, SandboxRequest,
        behaviour::Behaviour, header,
    },
    startup::AppState,
    time::now_ms,
};

/// Mixx by Yas push bill-pay.
pub struct Tigo;

const RAIL: RailId = RailId::Tigo;

pub const UNANSWERED_TIMEOUT_MS: i64 = 60_000;

const TIMEOUT: (&str, &str) = ("false:timeout", "Transaction timed out");
const NORMAL: Behaviour = Behaviour::waiting(TIMEOUT, UNANSWERED_TIMEOUT_MS);

/// Scripted numbers: `0713 00` then four digits (Tanzania, a Tigo range).
const SCRIPTED_PREFIX: &str = "25571300";

pub const SCRIPTED: [(&str, &str); 6] = [
    (
        "255713000113",
        "callback Status false, \"Insufficient balance\", after 2 s",
    ),
    (
        "255713000102",
        "callback Status false, \"Invalid PIN\", after 2 s",
    ),
    (
        "255713000105",
        "the push itself is refused: DebitMandate-10-2005-E, not registered",
    ),
    (
        "255713000140",
        "callback never sent: the attempt becomes unknown (Tigo has no status query)",
    ),
    ("255713000120", "callback sent twice"),
    ("255713000110", "callback 10 s late"),
];

fn scenario(phone: &str) -> Option<&str> {
    phone
        .strip_prefix(SCRIPTED_PREFIX)
        .filter(|rest| rest.len() == 4)
}

impl SandboxOperator for Tigo {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn router(&self) -> Router<AppState> {
        Router::new().route("/{endpoint}", post(endpoint))
    }

    fn network(&self) -> &'static str {
        "Yas"
    }

    fn wallet(&self) -> &'static str {
        "Mixx by Yas"
    }

    fn pin_digits(&self) -> usize {
        4
    }

    fn script(&self, phone: &str) -> Behaviour {
        match scenario(phone) {
            Some("0113") => NORMAL.decided("false:funds", "Insufficient balance", 2_000),
            Some("0102") => NORMAL.decided("false:pin", "Invalid PIN", 2_000),
            Some("0140") => NORMAL.callback_lost(),
            Some("0120") => NORMAL.callback_twice(1_000),
            Some("0110") => NORMAL.callback_late(10_000),
            _ => NORMAL,
        }
    }

    fn scripted(&self) -> &'static [(&'static str, &'static str)] {
        &SCRIPTED
    }

    fn answer(&self, answer: Answer) -> (&'static str, &'static str) {
        match answer {
            Answer::Approved => ("true", "Success"),
            Answer::Declined => ("false:declined", "Transaction declined by customer"),
            Answer::TimedOut => TIMEOUT,
        }
    }

    fn receipt(&self) -> String {
        // An MFS transaction id.
        random_base62(10).to_uppercase()
    }

    fn prompt(&self, req: &SandboxRequest) -> String {
        format!(
            "Lipa {} kwa {} ({}). Weka PIN yako ya Mixx by Yas kuthibitisha.",
            format_amount(req.amount, req.currency),
            req.payee,
            req.reference
        )
    }

    fn callback(&self, req: &SandboxRequest) -> Option<OutgoingCallback> {
        let paid = req.result_code.as_deref() == Some("true");
        let mut body = json!({
            "Status": paid,
            "Description": req.result_desc.clone().unwrap_or_default(),
            "ReferenceID": req.id,
            // Seen as a string from Tigo.
            "Amount": req.whole_amount().to_string(),
        });
        if paid {
            body["MFSTransactionID"] = json!(req.receipt);
        }
        Some(OutgoingCallback {
            method: reqwest::Method::POST,
            body,
        })
    }
}

/// The token request's form fields.
#[derive(Default)]
struct TokenForm {
    username: String,
    password: String,
    grant_type: String,
}

fn answer(
    status: StatusCode,
    code: &str,
    ok: bool,
    description: &str,
    reference: &str,
) -> Response {
    (
        status,
        Json(json!({
            "ResponseCode": code,
            "ResponseStatus": ok,
            "ResponseDescription": description,
            "ReferenceID": reference,
        })),
    )
        .into_response()
}

/// The merchant's two endpoints, at the paths Tigo gave it.
async fn endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tigo = &sandbox.rails.tigo;
    let path = format!("/{endpoint}");
    if path == tigo.token_path {
        let mut form = TokenForm::default();
        for (k, v) in url::form_urlencoded::parse(&body) {
            match k.as_ref() {
                "username" => form.username = v.into_owned(),
                "password" => form.password = v.into_owned(),
                "grant_type" => form.grant_type = v.into_owned(),
                _ => {}
            }
        }
        if form.grant_type != "password" {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
        if form.username != tigo.username || form.password != tigo.password.expose_secret() {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            )
                .into_response();
        }
        let token = sandbox.issue_token(RAIL, 32, Duration::from_secs(3600));
        return Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}))
            .into_response();
    }
    if path != tigo.push_path {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !sandbox.bearer_valid(RAIL, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    if header(&headers, "username") != Some(tigo.username.as_str())
        || header(&headers, "password") != Some(tigo.password.expose_secret())
    {
        return answer(
            StatusCode::OK,
            "DebitMandate-10-3000-E",
            false,
            "Invalid username or password",
            "",
        );
    }
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return answer(
            StatusCode::OK,
            "BILLER-18-3020-E",
            false,
            "Frequency limit exceeded",
            "",
        );
    }
    let Ok(req) = serde_json::from_slice::<PushRequest>(&body) else {
        return answer(
            StatusCode::OK,
            "DebitMandate-10-5000-E",
            false,
            "Invalid request",
            "",
        );
    };
    let reference = req.reference_id.clone();
    let refuse = |code: &str, why: &str| answer(StatusCode::OK, code, false, why, &reference);
    if req.biller_msisdn != tigo.biller_msisdn {
        return refuse("BILLER-18-3040-E", "Invalid biller MSISDN");
    }
    if !req.reference_id.starts_with(&tigo.biller_code) || req.reference_id.len() > 64 {
        return refuse("DebitMandate-10-2020-V", "Invalid reference id");
    }
    let phone = req.customer_msisdn.clone();
    if phone.len() != 12 || !phone.starts_with("255") || !phone.bytes().all(|b| b.is_ascii_digit())
    {
        return refuse("DebitMandate-10-2004-V", "Invalid MSISDN");
    }
    if !(100..=5_000_000).contains(&req.amount) {
        return refuse("BILLER-18-3019-E", "Amount is out of the allowed range");
    }
    if scenario(&phone) == Some("0105") {
        return refuse("DebitMandate-10-2005-E", "Customer is not registered");
    }
    match state.store.sandbox_pending_count(&phone).await {
        Ok(n) if n < PENDING_PER_PHONE => {}
        Ok(_) => return refuse("BILLER-18-3020-E", "Frequency limit exceeded"),
        Err(e) => {
            tracing::error!(error = %e, "sandbox tigo: counting requests failed");
            return refuse("DebitMandate-10-1000-E", "Internal error");
        }
    }
    let stored = NewRequest {
        operator: RAIL,
        id: req.reference_id.clone(),
        phone,
        amount: req.amount * 100,
        currency: Currency::Tzs,
        payee: req.remarks.clone(),
        reference: req.reference_id.clone(),
        // The merchant's callback URL at Tigo, with its secret key.
        callback_url: Some(format!(
            "{}tigo/{}",
            sandbox.callback_prefix,
            tigo.callback_key()
        )),
        wire: serde_json::Map::<String, Value>::new(),
        refund_of: None,
    };
    match sandbox.take(&state.store, stored).await {
        // A ReferenceID seen before: the same push, acknowledged again, not sent twice.
        Ok(_) => answer(
            StatusCode::OK,
            "BILLER-18-0000-S",
            true,
            "Success",
            &reference,
        ),
        Err(e) => {
            tracing::error!(error = %e, "sandbox tigo: storing the push failed");
            refuse("DebitMandate-10-1000-E", "Internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_number_has_its_behaviour() {
        for (phone, _) in SCRIPTED {
            if phone.ends_with("0105") {
                continue;
            }
            assert_ne!(Tigo.script(phone), NORMAL, "{phone}");
        }
        assert_eq!(Tigo.script("255713123456"), NORMAL);
    }
}
