//! The sandbox Daraja: the same paths, JSON and error codes as Safaricom's, with
//! credentials and passwords checked; its scripted numbers, prompt and callback body.

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
use std::{net::SocketAddr, time::Duration};

use crate::{
    connectors::{
        RailId,
        mpesa::{daraja_timestamp, password, wire::ErrorResponse},
    },
    domain::{
        ids::random_base62,
        money::{Currency, format_amount},
    },
    sandbox::{
        Answer, NewRequest, OutgoingCallback, SandboxOperator, SandboxRequest, behaviour::Behaviour,
    },
    startup::AppState,
    time::{civil, now_ms},
};

/// Safaricom's Daraja (M-PESA Express), Kenya.
pub struct Daraja;

/// Unanswered prompts time out like Daraja's: 1037 after a minute.
pub const UNANSWERED_TIMEOUT_MS: i64 = 60_000;

const TIMEOUT: (&str, &str) = ("1037", "DS timeout user cannot be reached");

const NORMAL: Behaviour = Behaviour::waiting(TIMEOUT, UNANSWERED_TIMEOUT_MS);

/// The scripted test numbers and what they do, for the README and the handset page.
pub const SCRIPTED: [(&str, &str); 13] = [
    ("254700000001", "insufficient funds: ResultCode 1 after 2 s"),
    ("254700002001", "wrong PIN: ResultCode 2001 after 2 s"),
    (
        "254700001032",
        "cancelled on the phone: ResultCode 1032 after 2 s",
    ),
    ("254700001037", "no answer: ResultCode 1037 after 12 s"),
    (
        "254700001025",
        "push cannot be sent: ResultCode 1025 after 1 s",
    ),
    ("254700001001", "subscriber busy: ResultCode 1001 after 1 s"),
    (
        "254700000404",
        "callback never delivered (answer on the handset; the query knows)",
    ),
    ("254700000202", "callback delivered twice"),
    ("254700000010", "callback delayed 10 s"),
    (
        "254700000102",
        "query says \"still processing\" for 30 s after the answer",
    ),
    (
        "254700000111",
        "pays (answer on the handset); its reversal is refused: ResultCode 1, the paybill's balance is short",
    ),
    (
        "254700000405",
        "pays (answer on the handset); its reversal's result is never delivered",
    ),
    (
        "254700000406",
        "pays (answer on the handset), but the callback is lost and the query says \"still processing\" for an hour: the page cannot notice; rescue it with the SMS's receipt code (Transaction Status knows)",
    ),
];

/// How long a reversal takes before its result is posted.
pub const REVERSAL_MS: i64 = 1_500;

impl SandboxOperator for Daraja {
    fn rail(&self) -> RailId {
        RailId::Mpesa
    }

    fn router(&self) -> Router<AppState> {
        router()
    }

    fn network(&self) -> &'static str {
        "Safaricom"
    }

    fn wallet(&self) -> &'static str {
        "M-PESA"
    }

    fn pin_digits(&self) -> usize {
        4
    }

    fn script(&self, phone: &str) -> Behaviour {
        match phone {
            "254700000001" => NORMAL.decided(
                "1",
                "The balance is insufficient for the transaction.",
                2_000,
            ),
            "254700002001" => {
                NORMAL.decided("2001", "The initiator information is invalid.", 2_000)
            }
            "254700001032" => NORMAL.decided("1032", "Request cancelled by user", 2_000),
            "254700001037" => NORMAL.decided(TIMEOUT.0, TIMEOUT.1, 12_000),
            "254700001025" => NORMAL.decided(
                "1025",
                "An error occurred while sending a push request",
                1_000,
            ),
            "254700001001" => NORMAL.decided(
                "1001",
                "Unable to lock subscriber, a transaction is already in process for the current subscriber",
                1_000,
            ),
            "254700000404" => NORMAL.callback_lost(),
            "254700000202" => NORMAL.callback_twice(1_000),
            "254700000010" => NORMAL.callback_late(10_000),
            "254700000102" => NORMAL.query_lags(30_000),
            "254700000406" => NORMAL.callback_lost().query_lags(3_600_000),
            _ => NORMAL,
        }
    }

    fn scripted(&self) -> &'static [(&'static str, &'static str)] {
        &SCRIPTED
    }

    /// M-PESA's receipts: ten capitals and digits, a digit fourth (`QKJ4ABC123`).
    fn receipt(&self) -> String {
        let r = random_base62(10).to_uppercase();
        let digit = char::from(b'0' + (r.as_bytes()[0] % 10));
        format!("{}{digit}{}", &r[..3], &r[4..])
    }

    fn answer(&self, answer: Answer) -> (&'static str, &'static str) {
        match answer {
            Answer::Approved => ("0", "The service request is processed successfully."),
            Answer::Declined => ("1032", "Request cancelled by user"),
            Answer::TimedOut => TIMEOUT,
        }
    }

    fn prompt(&self, req: &SandboxRequest) -> String {
        format!(
            "Do you want to pay {} to {} account no. {}? Enter M-PESA PIN",
            format_amount(req.amount, req.currency),
            req.payee,
            req.reference
        )
    }

    fn callback(&self, req: &SandboxRequest) -> Option<OutgoingCallback> {
        Some(OutgoingCallback {
            method: reqwest::Method::POST,
            body: if req.refund_of.is_some() {
                reversal_result(req)
            } else {
                callback_body(req)
            },
        })
    }

    fn refund_refusal(&self, payer: &str) -> Option<(&'static str, &'static str)> {
        (payer == "254700000111")
            .then_some(("1", "The balance is insufficient for the transaction."))
    }

    fn refund_result_lost(&self, payer: &str) -> bool {
        payer == "254700000405"
    }
}

/// The result Daraja posts to a reversal's `ResultURL`.
pub fn reversal_result(r: &SandboxRequest) -> Value {
    let code: Value = r
        .result_code
        .as_deref()
        .and_then(|c| c.parse::<i64>().ok())
        .map(Value::from)
        .unwrap_or_else(|| json!(r.result_code));
    let mut result = json!({
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": r.result_desc,
        "OriginatorConversationID": r.wire_str("originator_conversation_id"),
        "ConversationID": r.id,
        "TransactionID": r.receipt.clone().unwrap_or_else(|| random_base62(10).to_uppercase()),
        "ReferenceData": { "ReferenceItem": {
            "Key": "QueueTimeoutURL",
            "Value": "https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit",
        }},
    });
    if r.receipt.is_some() {
        let completed: i64 = daraja_timestamp(r.decided_at.unwrap_or(r.created_at))
            .parse()
            .unwrap_or(0);
        result["ResultParameters"] = json!({ "ResultParameter": [
            { "Key": "DebitAccountBalance", "Value": "Utility Account|KES|0.00|0.00|0.00|0.00" },
            { "Key": "Amount", "Value": r.whole_amount() },
            { "Key": "TransCompletedTime", "Value": completed },
            { "Key": "OriginalTransactionID", "Value": r.reference },
            { "Key": "Charge", "Value": 0 },
            { "Key": "CreditPartyPublicName", "Value": format!("{} - Sandbox Payer", crate::domain::phone::mask(&r.phone)) },
            { "Key": "DebitPartyName", "Value": format!("{} - {}", r.wire_str("short_code"), r.payee) },
        ]});
    }
    json!({ "Result": result })
}

/// The callback body Daraja would POST for a decided push.
pub fn callback_body(p: &SandboxRequest) -> Value {
    let code: Value = p
        .result_code
        .as_deref()
        .and_then(|c| c.parse::<i64>().ok())
        .map(Value::from)
        .unwrap_or_else(|| json!(p.result_code));
    let mut cb = json!({
        "MerchantRequestID": p.wire_str("merchant_request_id"),
        "CheckoutRequestID": p.id,
        "ResultCode": code,
        "ResultDesc": p.result_desc,
    });
    if p.result_code.as_deref() == Some("0") {
        let date: i64 = daraja_timestamp(p.decided_at.unwrap_or(p.created_at))
            .parse()
            .unwrap_or(0);
        let phone: i64 = p.phone.parse().unwrap_or(0);
        cb["CallbackMetadata"] = json!({ "Item": [
            { "Name": "Amount", "Value": p.whole_amount() as f64 },
            { "Name": "MpesaReceiptNumber", "Value": p.receipt },
            { "Name": "Balance" },
            { "Name": "TransactionDate", "Value": date },
            { "Name": "PhoneNumber", "Value": phone },
        ]});
    }
    json!({ "Body": { "stkCallback": cb } })
}

fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/v1/generate", get(token))
        .route("/mpesa/stkpush/v1/processrequest", post(process_request))
        .route("/mpesa/stkpushquery/v1/query", post(query))
        .route("/mpesa/reversal/v1/request", post(reversal))
        .route(
            "/mpesa/transactionstatus/v1/query",
            post(transaction_status),
        )
        .route("/mpesa/c2b/v1/registerurl", post(register_url))
        .route("/mpesa/c2b/v2/registerurl", post(register_url))
}

/// Words Daraja refuses in C2B URLs (its documented rule).
const FORBIDDEN_IN_URLS: [&str; 8] = [
    "mpesa",
    "m-pesa",
    "safaricom",
    "exec",
    "exe",
    "cmd",
    "sql",
    "query",
];

/// `POST /mpesa/c2b/v1/registerurl`: where payments to the shortcode from the M-PESA
/// menu are announced (validation before, confirmation after). Only this server's own
/// callback routes are taken (the sandbox never calls anything else), and none with a
/// word Daraja refuses.
async fn register_url(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some(sandbox) = state.sandbox.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(denied) = check_bearer(&state, &headers) {
        return denied;
    }
    let Some(Json(body)) = body else {
        return invalid("Request Body");
    };
    if text_or_number(&body, "ShortCode").as_deref() != Some(sandbox.rails.mpesa.shortcode.as_str())
    {
        return invalid("ShortCode");
    }
    let Some(response_type) =
        text(&body, "ResponseType").filter(|t| matches!(*t, "Completed" | "Cancelled"))
    else {
        return invalid("ResponseType");
    };
    let url = |field: &str| {
        text(&body, field).filter(|u| {
            let lower = u.to_ascii_lowercase();
            sandbox.callback_allowed(u) && !FORBIDDEN_IN_URLS.iter().any(|w| lower.contains(w))
        })
    };
    let Some(confirmation) = url("ConfirmationURL") else {
        return invalid("ConfirmationURL");
    };
    let Some(validation) = url("ValidationURL") else {
        return invalid("ValidationURL");
    };
    if let Ok(mut urls) = sandbox.paybill_urls.lock() {
        urls.insert(
            sandbox.rails.mpesa.shortcode.clone(),
            crate::sandbox::paybill::Registered {
                confirmation: confirmation.to_owned(),
                validation: validation.to_owned(),
                complete_unanswered: response_type == "Completed",
            },
        );
    }
    let (_, conversation) = conversation_ids();
    Json(json!({
        "OriginatorCoversationID": conversation,
        "ResponseCode": "0",
        "ResponseDescription": "Success",
    }))
    .into_response()
}

/// How long a Transaction Status answer takes before it is posted.
pub const STATUS_MS: i64 = 1_000;

/// `POST /mpesa/transactionstatus/v1/query`: taken at once; the answer goes to
/// `ResultURL` a moment later: the payment's details for a receipt this sandbox issued
/// (to this shortcode), else `R000002`. (Daraja's code for an unknown receipt is not
/// in our sources: any code but `0` reads as "no such payment".)
async fn transaction_status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (sandbox, body) =
        match initiator_call(&state, peer, &headers, body, "TransactionStatusQuery") {
            Ok(checked) => checked,
            Err(refused) => return *refused,
        };
    let mpesa = &sandbox.rails.mpesa;
    if text_or_number(&body, "PartyA").as_deref() != Some(mpesa.shortcode.as_str()) {
        return invalid("PartyA");
    }
    let kind = text_or_number(&body, "IdentifierType");
    if !matches!(kind.as_deref(), Some("4" | "1" | "2")) {
        return invalid("IdentifierType");
    }
    let allowed = |field: &str| text(&body, field).filter(|u| sandbox.callback_allowed(u));
    let (Some(result_url), Some(_)) = (allowed("ResultURL"), allowed("QueueTimeOutURL")) else {
        return invalid("ResultURL");
    };
    if !text(&body, "Remarks").is_some_and(|r| (2..=100).contains(&r.chars().count())) {
        return invalid("Remarks");
    }
    let Some(receipt) = text(&body, "TransactionID").filter(|r| r.len() <= 20) else {
        return invalid("TransactionID");
    };
    let paid = match state
        .store
        .sandbox_paid_by_receipt(RailId::Mpesa, receipt)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "sandbox daraja: status lookup failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "Internal Server Error",
            );
        }
    };
    let (originator, conversation) = conversation_ids();
    let result = status_result(
        paid.as_ref(),
        receipt,
        &mpesa.shortcode,
        &originator,
        &conversation,
    );
    let (http, url, delay) = (
        sandbox.http.clone(),
        result_url.to_owned(),
        sandbox.scaled_ms(STATUS_MS),
    );
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(delay.max(0) as u64)).await;
        if let Err(e) = http.post(&url).json(&result).send().await {
            // Without the URL: it carries the check's token.
            tracing::info!(error = %e.without_url(), "sandbox daraja: status result not delivered");
        }
    });
    Json(json!({
        "OriginatorConversationID": originator,
        "ConversationID": conversation,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
    .into_response()
}

/// The result Daraja posts to a Transaction Status query's `ResultURL`.
pub fn status_result(
    paid: Option<&SandboxRequest>,
    receipt: &str,
    shortcode: &str,
    originator: &str,
    conversation: &str,
) -> Value {
    let Some(p) = paid.filter(|p| p.result_code.as_deref() == Some("0")) else {
        return json!({ "Result": {
            "ResultType": 0,
            "ResultCode": "R000002",
            "ResultDesc": "The transaction could not be found.",
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "TransactionID": receipt,
        }});
    };
    let when: i64 = daraja_timestamp(p.decided_at.unwrap_or(p.created_at))
        .parse()
        .unwrap_or(0);
    // Daraja masks the payer's number in these results.
    let payer = format!(
        "{}*****{}",
        p.phone.get(..4).unwrap_or(""),
        p.phone.get(p.phone.len().saturating_sub(3)..).unwrap_or("")
    );
    json!({ "Result": {
        "ResultType": 0,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": originator,
        "ConversationID": conversation,
        "TransactionID": receipt,
        "ResultParameters": { "ResultParameter": [
            { "Key": "DebitPartyName", "Value": format!("{payer} - Sandbox Payer") },
            { "Key": "CreditPartyName", "Value": format!("{shortcode} - {}", p.payee) },
            { "Key": "OriginatorConversationID", "Value": originator },
            { "Key": "InitiatedTime", "Value": when },
            { "Key": "DebitAccountType", "Value": "MMF Account For Customer" },
            { "Key": "DebitPartyCharges", "Value": "" },
            { "Key": "TransactionReason", "Value": "" },
            { "Key": "ReasonType", "Value": if p.id.starts_with("c2b_") { "Pay Bill" } else { "Pay Bill Online" } },
            { "Key": "TransactionStatus", "Value": "Completed" },
            { "Key": "FinalisedTime", "Value": when },
            { "Key": "Amount", "Value": p.whole_amount() },
            { "Key": "ConversationID", "Value": conversation },
            { "Key": "ReceiptNo", "Value": receipt },
        ]},
        "ReferenceData": { "ReferenceItem": { "Key": "Occasion" } },
    }})
}

/// `POST /mpesa/reversal/v1/request`: taken at once ("Accept the service request
/// successfully."); the result goes to `ResultURL` a moment later, with the payer's
/// number's callback behaviour. The whole payment only, once.
async fn reversal(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (sandbox, body) = match initiator_call(&state, peer, &headers, body, "TransactionReversal")
    {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    let mpesa = &sandbox.rails.mpesa;
    if text_or_number(&body, "ReceiverParty").as_deref() != Some(mpesa.shortcode.as_str()) {
        return invalid("ReceiverParty");
    }
    let kind = text_or_number(&body, "RecieverIdentifierType");
    if !matches!(kind.as_deref(), Some("11" | "4")) {
        return invalid("RecieverIdentifierType");
    }
    let allowed = |field: &str| text(&body, field).filter(|u| sandbox.callback_allowed(u));
    let (Some(result_url), Some(_)) = (allowed("ResultURL"), allowed("QueueTimeOutURL")) else {
        return invalid("ResultURL");
    };
    if !text(&body, "Remarks").is_some_and(|r| (2..=100).contains(&r.chars().count())) {
        return invalid("Remarks");
    }
    let Some(receipt) = text(&body, "TransactionID") else {
        return invalid("TransactionID");
    };
    let original = match state
        .store
        .sandbox_paid_by_receipt(RailId::Mpesa, receipt)
        .await
    {
        Ok(Some(o)) => o,
        Ok(None) => return invalid("TransactionID"),
        Err(e) => {
            tracing::error!(error = %e, "sandbox daraja: reversal lookup failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "Internal Server Error",
            );
        }
    };
    if whole(&body, "Amount") != Some(original.whole_amount()) {
        return invalid("Amount");
    }
    let (originator, conversation) = conversation_ids();
    let mut wire = serde_json::Map::new();
    wire.insert("originator_conversation_id".into(), json!(originator));
    wire.insert("short_code".into(), json!(mpesa.shortcode));
    let taken = sandbox
        .take_refund(
            &state.store,
            crate::sandbox::refunds::RefundAsk {
                original: &original,
                id: conversation.clone(),
                amount: original.amount,
                callback_url: Some(result_url.to_owned()),
                wire,
                after_ms: REVERSAL_MS,
                already: Some((
                    crate::connectors::mpesa::wire::ALREADY_REVERSED,
                    "The transaction has already been reversed.",
                )),
            },
        )
        .await;
    match taken {
        Ok(crate::sandbox::refunds::RefundTaken::Taken(_)) => Json(json!({
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        }))
        .into_response(),
        Ok(_) => invalid("TransactionID"),
        Err(e) => {
            tracing::error!(error = %e, "sandbox daraja: storing a reversal failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "Internal Server Error",
            )
        }
    }
}

/// The checks every initiator call (a reversal, a Transaction Status query) passes:
/// the bearer token, the pushes' quota (each is a row or a callback), a body, the
/// initiator, its credential and `command`. The sandbox and the body, or Daraja's
/// refusal.
fn initiator_call<'a>(
    state: &'a AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Option<Json<Value>>,
    command: &str,
) -> Result<(&'a crate::sandbox::Sandbox, Value), Box<Response>> {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    };
    if let Some(denied) = check_bearer(state, headers) {
        return Err(Box::new(denied));
    }
    let client = crate::limits::client_ip(peer.ip(), headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return Err(Box::new(error(
            StatusCode::TOO_MANY_REQUESTS,
            "500.003.02",
            "Spike arrest violation",
        )));
    }
    let Some(Json(body)) = body else {
        return Err(Box::new(invalid("Request Body")));
    };
    let mpesa = &sandbox.rails.mpesa;
    if text(&body, "Initiator") != Some(mpesa.initiator.as_str()) || mpesa.initiator.is_empty() {
        return Err(Box::new(invalid("Initiator")));
    }
    if text(&body, "SecurityCredential") != Some(mpesa.security_credential.expose_secret()) {
        return Err(Box::new(invalid("SecurityCredential")));
    }
    if text(&body, "CommandID") != Some(command) {
        return Err(Box::new(invalid("CommandID")));
    }
    Ok((sandbox, body))
}

/// A field Daraja takes as text or as a number (`"174379"` or `174379`), as text.
fn text_or_number(body: &Value, field: &str) -> Option<String> {
    text(body, field)
        .map(str::to_owned)
        .or_else(|| whole(body, field).map(|n| n.to_string()))
}

/// An asynchronous request's ids: `OriginatorConversationID`, `ConversationID`
/// (`AG_20261203_…`).
fn conversation_ids() -> (String, String) {
    let c = civil(now_ms(), crate::time::EAT_OFFSET_SECS);
    let conversation = format!(
        "AG_{:04}{:02}{:02}_{}",
        c.year,
        c.month,
        c.day,
        random_base62(20).to_lowercase()
    );
    (request_id(), conversation)
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
        sandbox.rails.mpesa.consumer_key,
        sandbox.rails.mpesa.consumer_secret.expose_secret()
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
    let token = sandbox.issue_token(RailId::Mpesa, 28, Duration::from_secs(3599));
    Json(json!({ "access_token": token, "expires_in": "3599" })).into_response()
}

/// `None` when the bearer token is valid; otherwise Daraja's 404.001.03.
fn check_bearer(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let sandbox = state.sandbox.as_ref()?;
    let valid = sandbox.bearer_valid(RailId::Mpesa, headers);
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

pub(crate) fn is_safaricom_msisdn(s: &str) -> bool {
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
    if shortcode != sandbox.rails.mpesa.shortcode {
        return Some(invalid("BusinessShortCode"));
    }
    let Some(timestamp) =
        text(body, "Timestamp").filter(|t| t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Some(invalid("Timestamp"));
    };
    let expected = password(
        &shortcode,
        sandbox.rails.mpesa.passkey.expose_secret(),
        timestamp,
    );
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
        && !sandbox.push_allowed(client, now_ms())
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
        Ok(n) if n < crate::sandbox::PENDING_PER_PHONE => {}
        // Too many prompts waiting on one phone: what Daraja says of a subscriber it
        // cannot lock (one shopper's, so it never opens the push circuit).
        Ok(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "Unable to lock subscriber, a transaction is already in process for the current subscriber",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox daraja: counting pushes failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.003.1001",
                "Internal Server Error",
            );
        }
    }
    let Some(sandbox) = state.sandbox.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = now_ms();
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
    let merchant_request_id = request_id();
    let mut wire = serde_json::Map::new();
    wire.insert("merchant_request_id".into(), json!(merchant_request_id));
    wire.insert("short_code".into(), json!(sandbox.rails.mpesa.shortcode));
    let push = NewRequest {
        operator: RailId::Mpesa,
        id: checkout_request_id.clone(),
        phone,
        amount: amount * 100,
        currency: Currency::Kes,
        payee: description.to_owned(),
        reference: account_reference.to_owned(),
        callback_url: Some(callback_url.to_owned()),
        wire,
        refund_of: None,
    };
    if let Err(e) = sandbox.take(&state.store, push).await {
        tracing::error!(error = %e, "sandbox daraja: storing push failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500.003.1001",
            "Internal Server Error",
        );
    }
    Json(json!({
        "MerchantRequestID": merchant_request_id,
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
    let push = match state.store.sandbox_request(RailId::Mpesa, id).await {
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
        "MerchantRequestID": push.wire_str("merchant_request_id"),
        "CheckoutRequestID": push.id,
        "ResultCode": push.result_code.unwrap_or_default(),
        "ResultDesc": push.result_desc.unwrap_or_default(),
    }))
    .into_response()
}
