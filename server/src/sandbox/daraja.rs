//! The sandbox Daraja: the same paths, JSON and error codes as Safaricom's, with
//! credentials and passwords checked.

use axum::{
    Json, Router,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode, header::AUTHORIZATION},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::behaviour;
use crate::{
    connectors::mpesa::{password, wire::ErrorResponse},
    domain::ids::random_base62,
    startup::AppState,
    store::SandboxPush,
    time::{civil, now_ms},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/v1/generate", get(token))
        .route("/mpesa/stkpush/v1/processrequest", post(process_request))
        .route("/mpesa/stkpushquery/v1/query", post(query))
}

/// Daraja's error body with its HTTP status.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "requestId": request_id(), "errorCode": code, "errorMessage": message });
    (status, Json(body)).into_response()
}

fn invalid(field: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        ErrorResponse::INVALID_FIELD,
        &format!("Bad Request - Invalid {field}"),
    )
}

fn request_id() -> String {
    let d = random_base62(12)
        .bytes()
        .map(|b| (b % 10 + b'0') as char)
        .collect::<String>();
    format!("{}-{}-1", &d[..5], &d[5..])
}

#[derive(Deserialize)]
struct TokenQuery {
    grant_type: Option<String>,
}

async fn token(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(sandbox) = state.sandbox.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if q.grant_type.as_deref() != Some("client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "400.008.02",
            "Invalid grant type passed",
        );
    }
    let expected = format!(
        "{}:{}",
        sandbox.mpesa.consumer_key,
        sandbox.mpesa.consumer_secret.expose_secret()
    );
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| B64.decode(b.trim()).ok());
    if presented.as_deref() != Some(expected.as_bytes()) {
        return error(
            StatusCode::BAD_REQUEST,
            "400.008.01",
            "Invalid Authentication passed",
        );
    }
    let token = random_base62(28);
    let lifetime = Duration::from_secs(3599);
    if let Ok(mut tokens) = sandbox.tokens.lock() {
        let now = Instant::now();
        tokens.retain(|_, until| *until > now);
        tokens.insert(token.clone(), now + lifetime);
    }
    Json(json!({ "access_token": token, "expires_in": "3599" })).into_response()
}

/// `None` when the bearer token is valid; otherwise Daraja's 404.001.03.
fn check_bearer(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let sandbox = state.sandbox.as_ref()?;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = token.is_some_and(|t| {
        sandbox
            .tokens
            .lock()
            .map(|tokens| tokens.get(t).is_some_and(|until| *until > Instant::now()))
            .unwrap_or(false)
    });
    (!valid).then(|| {
        error(
            StatusCode::NOT_FOUND,
            ErrorResponse::INVALID_TOKEN,
            "Invalid Access Token",
        )
    })
}

fn text<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

/// Whole number from a JSON number or a numeric string, as Daraja accepts both.
fn whole(body: &Value, field: &str) -> Option<i64> {
    match body.get(field)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_safaricom_msisdn(s: &str) -> bool {
    s.len() == 12
        && (s.starts_with("2547") || s.starts_with("2541"))
        && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `BusinessShortCode`, `Timestamp` and `Password`.
fn check_credentials(state: &AppState, body: &Value) -> Option<Response> {
    let sandbox = state.sandbox.as_ref()?;
    let Some(shortcode) = text(body, "BusinessShortCode")
        .map(str::to_owned)
        .or_else(|| whole(body, "BusinessShortCode").map(|n| n.to_string()))
    else {
        return Some(invalid("BusinessShortCode"));
    };
    if shortcode != sandbox.mpesa.shortcode {
        return Some(invalid("BusinessShortCode"));
    }
    let Some(timestamp) =
        text(body, "Timestamp").filter(|t| t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Some(invalid("Timestamp"));
    };
    let expected = password(&shortcode, sandbox.mpesa.passkey.expose_secret(), timestamp);
    if text(body, "Password") != Some(expected.as_str()) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Password",
        ));
    }
    None
}

/// What every Daraja API call checks first, in Daraja's order: the sandbox is on, the
/// bearer token is valid, there is a JSON body, and its shortcode, timestamp and password
/// are right.
fn authorised(
    state: &AppState,
    headers: &HeaderMap,
    body: Option<Json<Value>>,
) -> Result<Value, Box<Response>> {
    if state.sandbox.is_none() {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    }
    if let Some(denied) = check_bearer(state, headers) {
        return Err(Box::new(denied));
    }
    let Some(Json(body)) = body else {
        return Err(Box::new(invalid("Request Body")));
    };
    match check_credentials(state, &body) {
        Some(bad) => Err(Box::new(bad)),
        None => Ok(body),
    }
}

async fn process_request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let body = match authorised(&state, &headers, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    // Counted after authentication: strangers' junk must not use up the quota.
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if let Some(sandbox) = state.sandbox.as_ref()
        && sandbox.pushes.check(client, now_ms()).is_err()
    {
        // Daraja's own answer to a client over its quota.
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "500.003.02",
            "Spike arrest violation",
        );
    }
    match text(&body, "TransactionType") {
        Some("CustomerPayBillOnline" | "CustomerBuyGoodsOnline") => {}
        _ => return invalid("TransactionType"),
    }
    let Some(amount) = whole(&body, "Amount").filter(|a| (1..=250_000).contains(a)) else {
        return invalid("Amount");
    };
    let phone = match body.get("PhoneNumber") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if !is_safaricom_msisdn(&phone) {
        return invalid("PhoneNumber");
    }
    let party_a = body.get("PartyA").map(|v| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    });
    if !party_a.as_deref().is_some_and(is_safaricom_msisdn) {
        return invalid("PartyA");
    }
    if text(&body, "PartyB")
        .map(str::to_owned)
        .or_else(|| whole(&body, "PartyB").map(|n| n.to_string()))
        .is_none()
    {
        return invalid("PartyB");
    }
    // Only this instance's own callback routes: the sandbox must not be a way to make
    // Malipo POST to anything else.
    let Some(callback_url) = text(&body, "CallBackURL").filter(|u| {
        state
            .sandbox
            .as_ref()
            .is_some_and(|s| s.callback_allowed(u))
    }) else {
        return invalid("CallBackURL");
    };
    let Some(account_reference) =
        text(&body, "AccountReference").filter(|r| !r.is_empty() && r.chars().count() <= 12)
    else {
        return invalid("AccountReference");
    };
    let Some(description) =
        text(&body, "TransactionDesc").filter(|d| (1..=13).contains(&d.chars().count()))
    else {
        return invalid("TransactionDesc");
    };

    match state.store.sandbox_pending_count(&phone).await {
        Ok(n) if n < super::PENDING_PER_PHONE => {}
        Ok(_) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "500.003.02",
                "Spike arrest violation",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox daraja: counting pushes failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "Internal Server Error",
            );
        }
    }
    let now = now_ms();
    let b = match state.sandbox.as_ref() {
        Some(sandbox) => sandbox.behaviour(&phone),
        None => behaviour::for_phone(&phone),
    };
    let c = civil(now, crate::time::EAT_OFFSET_SECS);
    let checkout_request_id = format!(
        "ws_CO_{:02}{:02}{:04}{:02}{:02}{:02}{}",
        c.day,
        c.month,
        c.year,
        c.hour,
        c.minute,
        c.second,
        random_base62(10)
            .bytes()
            .map(|x| (x % 10 + b'0') as char)
            .collect::<String>()
    );
    let push = SandboxPush {
        checkout_request_id: checkout_request_id.clone(),
        merchant_request_id: request_id(),
        short_code: state
            .sandbox
            .as_ref()
            .map(|s| s.mpesa.shortcode.clone())
            .unwrap_or_default(),
        amount,
        phone,
        account_reference: account_reference.to_owned(),
        transaction_desc: description.to_owned(),
        callback_url: callback_url.to_owned(),
        decided: false,
        result_code: None,
        result_desc: None,
        receipt: None,
        auto_result_code: b.auto.map(|(code, _, _)| code.to_owned()),
        auto_at: behaviour::auto_at(&b),
        callbacks_due: b.callbacks,
        callbacks_sent: 0,
        callback_at: None,
        query_hidden_until: None,
        created_at: now,
        decided_at: None,
    };
    if let Err(e) = state.store.insert_sandbox_push(&push).await {
        tracing::error!(error = %e, "sandbox daraja: storing push failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500.001.1001",
            "Internal Server Error",
        );
    }
    Json(json!({
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResponseCode": "0",
        "ResponseDescription": "Success. Request accepted for processing",
        "CustomerMessage": "Success. Request accepted for processing",
    }))
    .into_response()
}

async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let body = match authorised(&state, &headers, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let Some(id) = text(&body, "CheckoutRequestID") else {
        return invalid("CheckoutRequestID");
    };
    let push = match state.store.sandbox_push(id).await {
        Ok(Some(p)) => p,
        Ok(None) => return invalid("CheckoutRequestID"),
        Err(e) => {
            tracing::error!(error = %e, "sandbox daraja: query failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "Internal Server Error",
            );
        }
    };
    let hidden = push.query_hidden_until.is_some_and(|t| now_ms() < t);
    if !push.decided || hidden {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorResponse::STILL_PROCESSING,
            "The transaction is being processed",
        );
    }
    Json(json!({
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": push.checkout_request_id,
        "ResultCode": push.result_code.unwrap_or_default(),
        "ResultDesc": push.result_desc.unwrap_or_default(),
    }))
    .into_response()
}
