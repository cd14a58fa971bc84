//! The sandbox Airtel Money: the Open API's token, collection and enquiry paths, headers
//! and JSON as Airtel's (RAILS.md §2), with the client credentials checked; callbacks to
//! the app's one configured URL (`{public_url}/callbacks/airtel`), signed with a `hash`
//! (Base64 HMAC-SHA256 of the `transaction` object with the app's callback key).
//! Airtel publishes no test numbers; ours are documented in the README.

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use secrecy::ExposeSecret;
use serde_json::json;
use std::{net::SocketAddr, time::Duration};

use crate::{
    connectors::{
        RailId,
        airtel::{
            callback_hash,
            config::market,
            wire::{PaymentRequest, TokenRequest},
        },
    },
    domain::{ids::random_base62, money::format_amount},
    sandbox::{
        Answer, NewRequest, OutgoingCallback, PENDING_PER_PHONE, SandboxOperator, SandboxRequest,
        behaviour::Behaviour, header,
    },
    startup::AppState,
    time::now_ms,
};

/// Airtel Money's Open API.
pub struct Airtel;

const RAIL: RailId = RailId::Airtel;

/// An unanswered USSD prompt expires after a minute.
pub const UNANSWERED_TIMEOUT_MS: i64 = 60_000;

const TIMEOUT: (&str, &str) = ("TE", "Transaction Expired");
const NORMAL: Behaviour = Behaviour::waiting(TIMEOUT, UNANSWERED_TIMEOUT_MS);

/// Scripted numbers: one of these, then four digits choosing the scenario
/// (Kenya 0733 00…, Uganda 0750 00…, Tanzania 0780 00…, Rwanda 0730 00…, Zambia
/// 0970 00…).
const SCRIPTED_PREFIXES: [&str; 5] = ["25473300", "25675000", "25578000", "25073000", "26097000"];

/// The scenarios (last four digits after a scripted prefix), for the README and the
/// handset page.
pub const SCRIPTED: [(&str, &str); 11] = [
    ("254733000102", "TF, DP00800001002 incorrect PIN, after 2 s"),
    (
        "254733000107",
        "TF, DP00800001007 not enough balance, after 2 s",
    ),
    (
        "254733000103",
        "TF, DP00800001003 over the wallet's limit, after 2 s",
    ),
    ("254733000108", "TF, DP00800001008 refused, after 2 s"),
    (
        "254733000124",
        "TF, DP00800001024 timed out (no answer), after 12 s",
    ),
    (
        "254733000105",
        "the payment request itself is refused: 400, DP00800001005 Msisdn Not Found",
    ),
    (
        "254733000140",
        "callback never sent (answer on the handset; the enquiry knows)",
    ),
    ("254733000120", "callback sent twice"),
    (
        "254733000150",
        "callback sent with a wrong hash (Malipo refuses it; the enquiry settles)",
    ),
    (
        "254733000110",
        "enquiry says TA (ambiguous) for 30 s after the answer",
    ),
    (
        "254733000130",
        "pays (answer on the handset); its refund is refused: the merchant wallet is short",
    ),
];

fn scenario(phone: &str) -> Option<&str> {
    SCRIPTED_PREFIXES
        .iter()
        .find_map(|p| phone.strip_prefix(p))
        .filter(|rest| rest.len() == 4)
}

fn failed(code: &'static str) -> &'static str {
    match code {
        "TF:DP00800001002" => "Incorrect Pin",
        "TF:DP00800001003" => "Exceeds withdrawal amount limit(s)",
        "TF:DP00800001007" => "Not enough balance",
        "TF:DP00800001008" => "Refused",
        "TF:DP00800001024" => "Transaction Timed Out",
        _ => "Failed",
    }
}

impl SandboxOperator for Airtel {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn router(&self) -> Router<AppState> {
        Router::new()
            .route("/auth/oauth2/token", post(token))
            .route("/merchant/v1/payments/", post(payment))
            .route("/standard/v1/payments/{id}", get(enquiry))
            .route("/standard/v1/payments/refund", post(refund))
    }

    fn network(&self) -> &'static str {
        "Airtel"
    }

    fn wallet(&self) -> &'static str {
        "Airtel Money"
    }

    fn pin_digits(&self) -> usize {
        4
    }

    fn script(&self, phone: &str) -> Behaviour {
        let tf = |code| NORMAL.decided(code, failed(code), 2_000);
        match scenario(phone) {
            Some("0102") => tf("TF:DP00800001002"),
            Some("0107") => tf("TF:DP00800001007"),
            Some("0103") => tf("TF:DP00800001003"),
            Some("0108") => tf("TF:DP00800001008"),
            Some("0124") => NORMAL.decided("TF:DP00800001024", "Transaction Timed Out", 12_000),
            Some("0140") => NORMAL.callback_lost(),
            Some("0120") => NORMAL.callback_twice(1_000),
            Some("0110") => NORMAL.query_lags(30_000),
            _ => NORMAL,
        }
    }

    fn scripted(&self) -> &'static [(&'static str, &'static str)] {
        &SCRIPTED
    }

    fn answer(&self, answer: Answer) -> (&'static str, &'static str) {
        match answer {
            Answer::Approved => ("TS", "Transaction Successful"),
            Answer::Declined => ("TF:DP00800001008", "Refused"),
            Answer::TimedOut => TIMEOUT,
        }
    }

    fn receipt(&self) -> String {
        // Airtel Money ids look like `MP210603.1234.L06941`.
        let r = random_base62(9).to_uppercase();
        format!("MP{}.{}.{}", &r[..4], &r[4..6], &r[6..])
    }

    fn prompt(&self, req: &SandboxRequest) -> String {
        format!(
            "Pay {} to {} for {}. Enter your Airtel Money PIN to confirm.",
            format_amount(req.amount, req.currency),
            req.payee,
            req.reference
        )
    }

    fn refund_refusal(&self, payer: &str) -> Option<(&'static str, &'static str)> {
        (scenario(payer) == Some("0130"))
            .then_some(("TF:refund", "Insufficient funds in merchant account"))
    }

    fn callback(&self, req: &SandboxRequest) -> Option<OutgoingCallback> {
        // Airtel answers a refund at once, and posts nothing about it.
        if req.refund_of.is_some() {
            return None;
        }
        let (status, _) = status_of(req, true);
        let mut transaction = json!({
            "id": req.id,
            "message": req.result_desc.clone().unwrap_or_default(),
            "status_code": status,
        });
        if status == "TS" {
            transaction["airtel_money_id"] = json!(req.receipt);
        }
        // Signed as Airtel does when callback authentication is on: the `transaction`
        // object, exactly as it goes out (compact, the same key order).
        let key = req.wire_str("callback_key");
        let hash = if scenario(&req.phone) == Some("0150") {
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned()
        } else {
            callback_hash(key, transaction.to_string().as_bytes())
        };
        Some(OutgoingCallback {
            method: reqwest::Method::POST,
            body: json!({ "transaction": transaction, "hash": hash }),
        })
    }
}

/// The transaction's status (TS/TF/TE/TIP/TA) and its `DP…` response code.
fn status_of(req: &SandboxRequest, final_view: bool) -> (&'static str, &'static str) {
    let hidden = !final_view && req.query_hidden_until.is_some_and(|t| now_ms() < t);
    match req.result_code.as_deref().filter(|_| req.decided) {
        _ if hidden => ("TA", "DP00800001000"),
        None => ("TIP", "DP00800001006"),
        Some("TS") => ("TS", "DP00800001001"),
        Some("TE") => ("TE", "DP00800001029"),
        Some(code) => (
            "TF",
            match code.strip_prefix("TF:") {
                Some("DP00800001002") => "DP00800001002",
                Some("DP00800001003") => "DP00800001003",
                Some("DP00800001007") => "DP00800001007",
                Some("DP00800001024") => "DP00800001024",
                _ => "DP00800001008",
            },
        ),
    }
}

/// Airtel's answer shape: `{status: {…}}` with an HTTP status.
fn status_error(
    http: StatusCode,
    result_code: &str,
    response_code: &str,
    message: &str,
) -> Response {
    (
        http,
        Json(json!({ "status": {
            "code": http.as_u16().to_string(),
            "message": message,
            "result_code": result_code,
            "response_code": response_code,
            "success": false,
        }})),
    )
        .into_response()
}

async fn token(State(state): State<AppState>, body: Option<Json<TokenRequest>>) -> Response {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let airtel = &sandbox.rails.airtel;
    let ok = body.is_some_and(|Json(b)| {
        b.grant_type == "client_credentials"
            && b.client_id == airtel.client_id
            && b.client_secret == airtel.client_secret.expose_secret()
    });
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client", "error_description": "Invalid client authentication" })),
        )
            .into_response();
    }
    let token = sandbox.issue_token(RAIL, 32, Duration::from_secs(180));
    Json(json!({ "access_token": token, "expires_in": "180", "token_type": "bearer" }))
        .into_response()
}

/// The sandbox is on, the bearer token is Airtel's, and `X-Country`/`X-Currency` name a
/// market: its currency, country and Airtel code.
/// A market: currency, country, Airtel's country code.
type Market = (
    crate::domain::money::Currency,
    crate::domain::phone::Country,
    &'static str,
);

fn authorised<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
) -> Result<(&'a crate::sandbox::Sandbox, Market), Box<Response>> {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    };
    if !sandbox.bearer_valid(RAIL, headers) {
        return Err(Box::new(status_error(
            StatusCode::UNAUTHORIZED,
            "ESB000008",
            "",
            "Invalid or expired access token",
        )));
    }
    match header(headers, "x-country").and_then(market) {
        Some(m) if header(headers, "x-currency") == Some(m.0.code()) => Ok((sandbox, m)),
        _ => Err(Box::new(status_error(
            StatusCode::BAD_REQUEST,
            "ESB000035",
            "",
            "Invalid country or currency",
        ))),
    }
}

async fn payment(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<PaymentRequest>>,
) -> Response {
    let (sandbox, (currency, country, code)) = match authorised(&state, &headers) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return status_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ESB000001",
            "",
            "Too many requests",
        );
    }
    let invalid = |message: &str| status_error(StatusCode::BAD_REQUEST, "ESB000008", "", message);
    let Some(Json(req)) = body else {
        return invalid("Invalid request body");
    };
    let tx = &req.transaction;
    if tx.country != code || tx.currency != currency.code() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "ESB000035",
            "",
            "Invalid country or currency",
        );
    }
    if !(1..=10_000_000).contains(&tx.amount) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "ESB000008",
            "DP00800001004",
            "Invalid Amount",
        );
    }
    if tx.id.is_empty() || tx.id.len() > 64 || req.reference.chars().count() > 64 {
        return invalid("Invalid transaction id or reference");
    }
    // "Do not send country code in msisdn": nine digits, the national number.
    let msisdn = &req.subscriber.msisdn;
    if msisdn.len() != 9 || !msisdn.bytes().all(|b| b.is_ascii_digit()) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "ESB000036",
            "",
            "Invalid MSISDN length",
        );
    }
    let phone = format!("{}{msisdn}", country.calling_code());
    if scenario(&phone) == Some("0105") {
        return status_error(
            StatusCode::BAD_REQUEST,
            "ESB000008",
            "DP00800001005",
            "Msisdn Not Found",
        );
    }
    match state.store.sandbox_pending_count(&phone).await {
        Ok(n) if n < PENDING_PER_PHONE => {}
        Ok(_) => {
            return status_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ESB000001",
                "",
                "Too many requests",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox airtel: counting requests failed");
            return status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ESB000001",
                "",
                "Something Went Wrong",
            );
        }
    }
    let mut wire = serde_json::Map::new();
    wire.insert(
        "callback_key".into(),
        json!(sandbox.rails.airtel.callback_key.expose_secret()),
    );
    let stored = NewRequest {
        operator: RAIL,
        id: tx.id.clone(),
        phone,
        amount: tx.amount * 10i64.pow(currency.exponent()),
        currency,
        // The app's name on Airtel's portal; Malipo's reference is what it sends.
        payee: "Malipo".into(),
        reference: req.reference.clone(),
        // The one callback URL configured for the app on Airtel's portal.
        callback_url: Some(format!("{}airtel", sandbox.callback_prefix)),
        wire,
        refund_of: None,
    };
    match sandbox.take(&state.store, stored).await {
        Ok(true) => Json(json!({
            "data": { "transaction": { "id": tx.id, "status": "SUCCESS" } },
            "status": { "code": "200", "message": "SUCCESS", "result_code": "ESB000010",
                        "response_code": "DP00800001006", "success": true },
        }))
        .into_response(),
        Ok(false) => status_error(
            StatusCode::BAD_REQUEST,
            "ESB000041",
            "",
            "External Transaction ID already exists",
        ),
        Err(e) => {
            tracing::error!(error = %e, "sandbox airtel: storing the request failed");
            status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ESB000001",
                "",
                "Something Went Wrong",
            )
        }
    }
}

/// `POST /standard/v1/payments/refund` `{transaction: {airtel_money_id}}`: the whole
/// payment back to its payer, answered at once; a payment refunded already is refused.
async fn refund(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<serde_json::Value>>,
) -> Response {
    let (sandbox, (currency, _, _)) = match authorised(&state, &headers) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    // Refunds count against the pushes' quota: each one is a row.
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return status_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ESB000001",
            "",
            "Too many requests",
        );
    }
    let not_found = || {
        status_error(
            StatusCode::NOT_FOUND,
            "ESB000045",
            "DP00800001025",
            "Transaction Not Found",
        )
    };
    let Some(id) = body
        .as_ref()
        .and_then(|Json(b)| b["transaction"]["airtel_money_id"].as_str())
        .filter(|id| !id.is_empty())
    else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "ESB000033",
            "",
            "Invalid request: transaction.airtel_money_id is required",
        );
    };
    let original = match state.store.sandbox_paid_by_receipt(RAIL, id).await {
        Ok(Some(o)) if o.currency == currency => o,
        Ok(_) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "sandbox airtel: refund lookup failed");
            return status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ESB000001",
                "",
                "Something Went Wrong",
            );
        }
    };
    let taken = sandbox
        .take_refund(
            &state.store,
            crate::sandbox::refunds::RefundAsk {
                original: &original,
                id: format!("RF{}", random_base62(14).to_uppercase()),
                amount: original.amount,
                callback_url: None,
                wire: serde_json::Map::new(),
                after_ms: 0,
                already: None,
            },
        )
        .await;
    match taken {
        Ok(crate::sandbox::refunds::RefundTaken::Taken(r)) => {
            let made = crate::sandbox::refunds::made(&r);
            Json(json!({
                "data": { "transaction": {
                    "airtel_money_id": r.receipt,
                    "status": if made { "SUCCESS" } else { "FAILED" },
                }},
                "status": {
                    "code": "200",
                    "message": if made { "SUCCESS".to_owned() } else { r.result_desc.clone().unwrap_or_default() },
                    "result_code": if made { "ESB000010" } else { "ESB000001" },
                    "success": made,
                },
            }))
            .into_response()
        }
        Ok(crate::sandbox::refunds::RefundTaken::AlreadyRefunded) => status_error(
            StatusCode::BAD_REQUEST,
            "ESB000036",
            "",
            "Transaction already refunded",
        ),
        Ok(_) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "sandbox airtel: storing a refund failed");
            status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ESB000001",
                "",
                "Something Went Wrong",
            )
        }
    }
}

async fn enquiry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorised(&state, &headers) {
        return *refused;
    }
    let req = match state.store.sandbox_request(RAIL, &id).await {
        Ok(Some(req)) => req,
        Ok(None) => {
            return status_error(
                StatusCode::NOT_FOUND,
                "ESB000045",
                "DP00800001025",
                "Transaction Not Found",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox airtel: enquiry failed");
            return status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ESB000001",
                "",
                "Something Went Wrong",
            );
        }
    };
    let (status, response_code) = status_of(&req, false);
    let mut transaction = json!({
        "id": req.id,
        "message": req.result_desc.clone().filter(|_| status != "TIP" && status != "TA").unwrap_or_else(|| "In process".into()),
        "status": status,
    });
    if status == "TS" {
        transaction["airtel_money_id"] = json!(req.receipt);
    }
    Json(json!({
        "data": { "transaction": transaction },
        "status": { "code": "200", "message": "SUCCESS", "result_code": "ESB000010",
                    "response_code": response_code, "success": true },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_number_has_its_behaviour() {
        for (phone, _) in SCRIPTED {
            if phone.ends_with("0105") || phone.ends_with("0150") || phone.ends_with("0130") {
                // Refused at the request / a callback's hash / its refund: the payment's
                // behaviour is normal.
                continue;
            }
            assert_ne!(Airtel.script(phone), NORMAL, "{phone}");
            let ugandan = format!("25675000{}", &phone[8..]);
            assert_eq!(Airtel.script(phone), Airtel.script(&ugandan));
        }
        assert_eq!(Airtel.script("254733123456"), NORMAL);
    }
}
