//! The sandbox MTN MoMo: the Collection API's paths, headers, JSON and error codes as
//! MTN's (RAILS.md §1), with the subscription key, API user and key checked; MTN's
//! magic test numbers and its habits (411 without `Content-Length`, 409 on a reused
//! `X-Reference-Id`, `202` with no body, a status GET that is always 200, `reason` as a
//! bare string or an object, a callback only with `X-Callback-Url`, sometimes twice).

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Duration};

use crate::{
    connectors::{
        RailId,
        mtn::{
            config::environment,
            wire::{Party, Reason, RequestToPay, RequestToPayResult},
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

/// MTN MoMo Collection.
pub struct Mtn;

const RAIL: RailId = RailId::MtnMomo;

/// MTN: "approve a transaction within the given time frame (5 minutes)".
pub const APPROVAL_WINDOW_MS: i64 = 300_000;

const TIMEOUT: (&str, &str) = ("EXPIRED", "The request to pay expired.");
const NORMAL: Behaviour = Behaviour::waiting(TIMEOUT, APPROVAL_WINDOW_MS);

/// MTN's own magic numbers start with this; Malipo's Ugandan and Rwandan ones with the
/// other two. The last three digits choose the scenario.
const MAGIC_PREFIXES: [&str; 3] = ["46733123", "256770123", "250780123"];

/// The scripted numbers' last three digits and what they do (for the README and the
/// handset page; the numbers are `46733123…`, `256770123…` and `250780123…`).
pub const SCRIPTED: [(&str, &str); 22] = [
    (
        "46733123450",
        "FAILED, reason INTERNAL_PROCESSING_ERROR (as a string) after 2 s",
    ),
    ("46733123451", "FAILED, reason APPROVAL_REJECTED after 2 s"),
    ("46733123452", "FAILED, reason EXPIRED after 2 s"),
    (
        "46733123453",
        "PENDING; FAILED/EXPIRED by callback after 3 min while the status GET says PENDING 2 min longer",
    ),
    (
        "46733123454",
        "stuck CREATED for an hour, then EXPIRED, no callback",
    ),
    (
        "46733123455",
        "FAILED, PAYER_NOT_FOUND (as {code, message}) after 1 s",
    ),
    (
        "46733123456",
        "FAILED, PAYEE_NOT_ALLOWED_TO_RECEIVE after 1 s",
    ),
    ("46733123457", "FAILED, NOT_ALLOWED after 1 s"),
    (
        "46733123458",
        "FAILED, NOT_ALLOWED_TARGET_ENVIRONMENT after 1 s",
    ),
    ("46733123459", "FAILED, INVALID_CALLBACK_URL_HOST after 1 s"),
    ("46733123460", "FAILED, INVALID_CURRENCY after 1 s"),
    ("46733123461", "FAILED, INTERNAL_PROCESSING_ERROR after 1 s"),
    ("46733123462", "FAILED, SERVICE_UNAVAILABLE after 1 s"),
    (
        "46733123463",
        "FAILED, COULD_NOT_PERFORM_TRANSACTION after 1 s",
    ),
    (
        "46733123464",
        "FAILED, TRANSFERTYPE_UNKNOWN (a code Malipo does not know) after 1 s",
    ),
    ("46733123465", "FAILED, NOT_ENOUGH_FUNDS after 2 s"),
    ("46733123466", "FAILED, PAYER_LIMIT_REACHED after 2 s"),
    (
        "46733123470",
        "callback never sent (answer on the handset; the status GET knows)",
    ),
    ("46733123471", "callback sent twice, 3 min apart"),
    ("46733123472", "callback 10 s late"),
    (
        "46733123473",
        "status GET says PENDING for 30 s after the answer",
    ),
    (
        "46733123480",
        "pays (answer on the handset); its refund fails: NOT_ENOUGH_FUNDS on the Disbursement account",
    ),
];

/// How long MTN takes to decide a refund.
pub const REFUND_MS: i64 = 1_000;

/// The scenario's three digits, for a scripted number.
fn scenario(phone: &str) -> Option<&str> {
    if phone == "56733123453" {
        return Some("success");
    }
    MAGIC_PREFIXES
        .iter()
        .find_map(|p| phone.strip_prefix(p))
        .filter(|rest| rest.len() == 3)
}

/// Whether the number's failure reason comes as `{code, message}` (MTN's schema)
/// rather than the bare string MTN's sandbox was seen to send.
fn reason_as_object(phone: &str) -> bool {
    scenario(phone).is_some_and(|s| s >= "455" && s != "success")
}

fn reason_message(code: &str) -> &'static str {
    match code {
        "PAYER_NOT_FOUND" => "Payer not found",
        "PAYEE_NOT_ALLOWED_TO_RECEIVE" => "The payee is not allowed to receive funds",
        "NOT_ALLOWED" => "Authorization failed. Insufficient permissions.",
        "NOT_ALLOWED_TARGET_ENVIRONMENT" => "Access to target environment is forbidden.",
        "INVALID_CALLBACK_URL_HOST" => "Callback URL does not match the configured value",
        "INVALID_CURRENCY" => "Currency not supported.",
        "SERVICE_UNAVAILABLE" => "Service temporarily unavailable, try again later.",
        "NOT_ENOUGH_FUNDS" => "The payer does not have enough funds.",
        "PAYER_LIMIT_REACHED" => "The payer's limit has been breached.",
        _ => "Internal processing error",
    }
}

impl SandboxOperator for Mtn {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn router(&self) -> Router<AppState> {
        Router::new()
            .route(
                "/collection/token/",
                post(async |State(state): State<AppState>, headers: HeaderMap| {
                    token(&state, &headers, Product::Collection).await
                }),
            )
            .route("/collection/v1_0/requesttopay", post(request_to_pay))
            .route("/collection/v1_0/requesttopay/{reference_id}", get(status))
            .route(
                "/disbursement/token/",
                post(async |State(state): State<AppState>, headers: HeaderMap| {
                    token(&state, &headers, Product::Disbursement).await
                }),
            )
            .route("/disbursement/v1_0/refund", post(refund))
            .route(
                "/disbursement/v1_0/refund/{reference_id}",
                get(refund_status),
            )
    }

    fn network(&self) -> &'static str {
        "MTN"
    }

    fn wallet(&self) -> &'static str {
        "MoMo"
    }

    fn pin_digits(&self) -> usize {
        // MTN Uganda's Mobile Money PIN has five digits.
        5
    }

    fn script(&self, phone: &str) -> Behaviour {
        let failed = |code, after| NORMAL.decided(code, reason_message(code), after);
        match scenario(phone) {
            Some("success") => NORMAL.decided("SUCCESSFUL", "Approved", 2_000),
            Some("450") => failed("INTERNAL_PROCESSING_ERROR", 2_000),
            Some("451") => failed("APPROVAL_REJECTED", 2_000),
            Some("452") => failed("EXPIRED", 2_000),
            Some("453") => NORMAL
                .decided(TIMEOUT.0, TIMEOUT.1, 180_000)
                .query_lags(120_000),
            Some("454") => NORMAL
                .decided(TIMEOUT.0, TIMEOUT.1, 3_600_000)
                .callback_lost(),
            Some("455") => failed("PAYER_NOT_FOUND", 1_000),
            Some("456") => failed("PAYEE_NOT_ALLOWED_TO_RECEIVE", 1_000),
            Some("457") => failed("NOT_ALLOWED", 1_000),
            Some("458") => failed("NOT_ALLOWED_TARGET_ENVIRONMENT", 1_000),
            Some("459") => failed("INVALID_CALLBACK_URL_HOST", 1_000),
            Some("460") => failed("INVALID_CURRENCY", 1_000),
            Some("461") => failed("INTERNAL_PROCESSING_ERROR", 1_000),
            Some("462") => failed("SERVICE_UNAVAILABLE", 1_000),
            Some("463") => failed("COULD_NOT_PERFORM_TRANSACTION", 1_000),
            Some("464") => failed("TRANSFERTYPE_UNKNOWN", 1_000),
            Some("465") => failed("NOT_ENOUGH_FUNDS", 2_000),
            Some("466") => failed("PAYER_LIMIT_REACHED", 2_000),
            Some("470") => NORMAL.callback_lost(),
            Some("471") => NORMAL.callback_twice(180_000),
            Some("472") => NORMAL.callback_late(10_000),
            Some("473") => NORMAL.query_lags(30_000),
            _ => NORMAL,
        }
    }

    fn scripted(&self) -> &'static [(&'static str, &'static str)] {
        &SCRIPTED
    }

    fn answer(&self, answer: Answer) -> (&'static str, &'static str) {
        match answer {
            Answer::Approved => ("SUCCESSFUL", "Approved"),
            Answer::Declined => ("APPROVAL_REJECTED", "The approval was rejected"),
            Answer::TimedOut => TIMEOUT,
        }
    }

    fn receipt(&self) -> String {
        // MTN's financialTransactionId: a short number.
        random_base62(10)
            .bytes()
            .enumerate()
            .map(|(i, b)| (if i == 0 { b % 9 + b'1' } else { b % 10 + b'0' }) as char)
            .collect()
    }

    fn prompt(&self, req: &SandboxRequest) -> String {
        format!(
            "Y'ello. {} wants {} from your MoMo account for {}. Enter your PIN to approve.",
            req.payee,
            format_amount(req.amount, req.currency),
            req.reference
        )
    }

    fn refund_refusal(&self, payer: &str) -> Option<(&'static str, &'static str)> {
        (scenario(payer) == Some("480"))
            .then_some(("NOT_ENOUGH_FUNDS", "The payer does not have enough funds."))
    }

    fn callback(&self, req: &SandboxRequest) -> Option<OutgoingCallback> {
        if req.refund_of.is_some() {
            return Some(OutgoingCallback {
                method: reqwest::Method::POST,
                body: refund_result(req),
            });
        }
        // MTN sends the same body as the status GET, final verdict included (even while
        // its GET still says PENDING), by POST.
        Some(OutgoingCallback {
            method: reqwest::Method::POST,
            body: json!(result(req, true)),
        })
    }
}

/// The status GET's body (`final_view`: as the callback tells it, ignoring the lag).
fn result(req: &SandboxRequest, final_view: bool) -> RequestToPayResult {
    let hidden = !final_view && req.query_hidden_until.is_some_and(|t| now_ms() < t);
    let code = req
        .result_code
        .as_deref()
        .filter(|_| req.decided && !hidden);
    let status = match code {
        None if req.wire.get("stuck").is_some() => "CREATED",
        None => "PENDING",
        Some("SUCCESSFUL") => "SUCCESSFUL",
        Some(_) => "FAILED",
    };
    let reason = code.filter(|c| *c != "SUCCESSFUL").map(|c| {
        if reason_as_object(&req.phone) {
            Reason::Detailed {
                code: c.to_owned(),
                message: Some(reason_message(c).to_owned()),
            }
        } else {
            Reason::Code(c.to_owned())
        }
    });
    RequestToPayResult {
        financial_transaction_id: req.receipt.clone().filter(|_| status == "SUCCESSFUL"),
        external_id: Some(req.wire_str("external_id").to_owned()),
        amount: Some(req.whole_amount().to_string()),
        currency: Some(req.currency.code().to_owned()),
        payer: Some(Party {
            party_id_type: "MSISDN".into(),
            party_id: req.phone.clone(),
        }),
        payer_message: Some(req.payee.clone()),
        payee_note: Some(req.reference.clone()),
        status: status.to_owned(),
        reason,
    }
}

/// A refund's status GET body (and its callback's).
fn refund_result(req: &SandboxRequest) -> Value {
    let code = req.result_code.as_deref().filter(|_| req.decided);
    let status = match code {
        None => "PENDING",
        Some("SUCCESSFUL") => "SUCCESSFUL",
        Some(_) => "FAILED",
    };
    let mut body = json!({
        "amount": req.whole_amount().to_string(),
        "currency": req.currency.code(),
        "externalId": req.wire_str("external_id"),
        "payee": { "partyIdType": "MSISDN", "partyId": req.phone },
        "status": status,
    });
    if status == "SUCCESSFUL" {
        body["financialTransactionId"] = json!(req.receipt);
    }
    if let Some(c) = code.filter(|c| *c != "SUCCESSFUL") {
        body["reason"] = json!(c);
    }
    body
}

/// MTN's error body with its HTTP status.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

/// Azure API Management's answer to a missing or wrong subscription key.
fn bad_subscription_key() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "statusCode": 401,
            "message": "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
        })),
    )
        .into_response()
}

/// One of MTN's products, each with its own subscription key and API user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Collection,
    Disbursement,
}

impl Product {
    /// Its subscription key, API user and API key as this sandbox accepts them;
    /// `None`: not offered (no Disbursement user configured). The Disbursement user's
    /// key is the Collection one's unless set apart.
    fn credentials(self, mtn: &crate::config::MtnConfig) -> Option<(&str, &str, &str)> {
        match self {
            Product::Collection => Some((
                mtn.subscription_key.expose_secret(),
                mtn.api_user.as_str(),
                mtn.api_key.expose_secret(),
            )),
            Product::Disbursement => (!mtn.disbursement_api_user.is_empty()).then(|| {
                let key = match mtn.disbursement_api_key.expose_secret() {
                    "" => mtn.api_key.expose_secret(),
                    own => own,
                };
                (
                    mtn.disbursement_subscription_key.expose_secret(),
                    mtn.disbursement_api_user.as_str(),
                    key,
                )
            }),
        }
    }
}

/// The sandbox is on and the product's subscription key is right: the sandbox, and
/// the product's API user and key.
fn subscribed<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    product: Product,
) -> Result<(&'a crate::sandbox::Sandbox, (&'a str, &'a str)), Box<Response>> {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    };
    match product.credentials(&sandbox.rails.mtn_momo) {
        Some((key, user, api_key)) if header(headers, "ocp-apim-subscription-key") == Some(key) => {
            Ok((sandbox, (user, api_key)))
        }
        _ => Err(Box::new(bad_subscription_key())),
    }
}

/// …and the bearer token is one this operator issued, and the environment is known.
fn authorised<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    product: Product,
) -> Result<(&'a crate::sandbox::Sandbox, crate::domain::money::Currency), Box<Response>> {
    let (sandbox, _) = subscribed(state, headers, product)?;
    if !sandbox.bearer_valid(RAIL, headers) {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Access token is missing, invalid or expired",
        )));
    }
    match header(headers, "x-target-environment").and_then(environment) {
        Some((currency, _)) => Ok((sandbox, currency)),
        None => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "NOT_ALLOWED_TARGET_ENVIRONMENT",
            "Access to target environment is forbidden.",
        ))),
    }
}

/// MTN's gateway refuses a POST without `Content-Length` (a chunked body included)
/// with 411 and an HTML page.
fn length_required(headers: &HeaderMap) -> Option<Response> {
    (headers.get(header::CONTENT_LENGTH).is_none()).then(|| {
        (
            StatusCode::LENGTH_REQUIRED,
            Html("<h2>Length Required</h2><hr><p>HTTP Error 411. The request must be chunked or have a content length.</p>"),
        )
            .into_response()
    })
}

/// `POST /{product}/token/`: the product's API user's token, by Basic auth.
async fn token(state: &AppState, headers: &HeaderMap, product: Product) -> Response {
    if let Some(refused) = length_required(headers) {
        return refused;
    }
    let (sandbox, (user, key)) = match subscribed(state, headers, product) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let expected = format!("{user}:{key}");
    let presented = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| B64.decode(b.trim()).ok());
    if presented.as_deref() != Some(expected.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "login_failed" })),
        )
            .into_response();
    }
    let token = sandbox.issue_token(RAIL, 48, Duration::from_secs(3600));
    Json(json!({ "access_token": token, "token_type": "access_token", "expires_in": 3600 }))
        .into_response()
}

/// What a POST that makes a resource (a request to pay, a refund) is checked for first,
/// in MTN's order, once authorised: the client's quota, a UUIDv4 `X-Reference-Id`, an
/// `X-Callback-Url` on the registered host (none: no callback at all), and a body of
/// MTN's schema. The reference id (lower case), the callback URL and the body.
fn posted<T: serde::de::DeserializeOwned>(
    state: &AppState,
    sandbox: &crate::sandbox::Sandbox,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Option<Json<Value>>,
) -> Result<(String, Option<String>, T), Box<Response>> {
    let client = crate::limits::client_ip(peer.ip(), headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return Err(Box::new(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "statusCode": 429, "message": "Rate limit is exceeded." })),
            )
                .into_response(),
        ));
    }
    let bad = |message: &str| Box::new(error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message));
    let Some(reference_id) = header(headers, "x-reference-id").filter(|r| is_uuid_v4(r)) else {
        return Err(bad("X-Reference-Id must be a UUID version 4"));
    };
    let callback_url = match header(headers, "x-callback-url") {
        // Without X-Callback-Url MTN sends no callback at all.
        None => None,
        Some(url) if sandbox.callback_allowed(url) => Some(url.to_owned()),
        // Only the API user's registered host (this instance's own callback routes).
        Some(_) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "INVALID_CALLBACK_URL_HOST",
                "Callback URL does not match the configured value",
            )));
        }
    };
    let Some(Json(body)) = body else {
        return Err(bad("The request body is not valid JSON"));
    };
    let Ok(parsed) = serde_json::from_value::<T>(body) else {
        return Err(bad("The request body does not match the schema"));
    };
    Ok((reference_id.to_ascii_lowercase(), callback_url, parsed))
}

/// `POST /disbursement/v1_0/refund`: 202 with no body; decided a moment later (the
/// status GET says, and the callback when `X-Callback-Url` was given).
async fn refund(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (sandbox, currency) = match authorised(&state, &headers, Product::Disbursement) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let (reference_id, callback_url, req) =
        match posted::<crate::connectors::mtn::wire::Refund>(&state, sandbox, peer, &headers, body)
        {
            Ok(p) => p,
            Err(refused) => return *refused,
        };
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message);
    let failed = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "sandbox mtn: refund failed");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_PROCESSING_ERROR",
            "An internal error occurred while processing.",
        )
    };
    let original = match state
        .store
        .sandbox_request(RAIL, &req.reference_id_to_refund.to_ascii_lowercase())
        .await
    {
        Ok(Some(o)) if o.refund_of.is_none() => o,
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                "Requested resource was not found.",
            );
        }
        Err(e) => return failed(e),
    };
    if currency.code() != req.currency || original.currency != currency {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INVALID_CURRENCY",
            "Currency not supported.",
        );
    }
    let Some(amount) = req
        .amount
        .parse::<i64>()
        .ok()
        .and_then(|u| u.checked_mul(10i64.pow(currency.exponent())))
    else {
        return bad("amount must be a positive whole number, as a string");
    };
    let mut wire = serde_json::Map::new();
    wire.insert("external_id".into(), json!(req.external_id));
    let taken = sandbox
        .take_refund(
            &state.store,
            crate::sandbox::refunds::RefundAsk {
                original: &original,
                id: reference_id,
                amount,
                callback_url,
                wire,
                after_ms: REFUND_MS,
                already: None,
            },
        )
        .await;
    use crate::sandbox::refunds::RefundTaken;
    match taken {
        Ok(RefundTaken::Taken(_)) => {
            (StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response()
        }
        Ok(RefundTaken::Duplicate(_)) => error(
            StatusCode::CONFLICT,
            "RESOURCE_ALREADY_EXIST",
            "Duplicated reference id. Creation of resource failed.",
        ),
        Ok(RefundTaken::NotPaid) => error(
            StatusCode::CONFLICT,
            "NOT_ALLOWED",
            "The transaction to refund was not successful.",
        ),
        Ok(RefundTaken::AlreadyRefunded | RefundTaken::Exceeds { .. }) => error(
            StatusCode::CONFLICT,
            "NOT_ALLOWED",
            "The refund is more than is left of the transaction.",
        ),
        Err(e) => failed(e),
    }
}

/// `GET /disbursement/v1_0/refund/{referenceId}`.
async fn refund_status(
    State(state): State<AppState>,
    Path(reference_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorised(&state, &headers, Product::Disbursement) {
        return *refused;
    }
    match state
        .store
        .sandbox_request(RAIL, &reference_id.to_ascii_lowercase())
        .await
    {
        Ok(Some(req)) if req.refund_of.is_some() => Json(refund_result(&req)).into_response(),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "Requested resource was not found.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "sandbox mtn: refund status failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_PROCESSING_ERROR",
                "An internal error occurred while processing.",
            )
        }
    }
}

/// A UUID in its canonical form, version 4, RFC 4122 variant.
fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
        && b[14] == b'4'
        && matches!(b[19].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b')
}

async fn request_to_pay(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (sandbox, currency) = match authorised(&state, &headers, Product::Collection) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let (reference_id, callback_url, req) =
        match posted::<RequestToPay>(&state, sandbox, peer, &headers, body) {
            Ok(p) => p,
            Err(refused) => return *refused,
        };
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message);
    if currency.code() != req.currency {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INVALID_CURRENCY",
            "Currency not supported.",
        );
    };
    let Some(units) = req
        .amount
        .parse::<i64>()
        .ok()
        .filter(|a| (1..=100_000_000).contains(a))
    else {
        return bad("amount must be a positive whole number, as a string");
    };
    let phone = req.payer.party_id.clone();
    if req.payer.party_id_type != "MSISDN"
        || !(8..=15).contains(&phone.len())
        || !phone.bytes().all(|b| b.is_ascii_digit())
    {
        return bad("payer.partyId must be an MSISDN with its country code, digits only");
    }
    if req.external_id.chars().count() > 100
        || req.payer_message.chars().count() > 160
        || req.payee_note.chars().count() > 160
    {
        return bad("externalId, payerMessage or payeeNote is too long");
    }
    match state.store.sandbox_pending_count(&phone).await {
        Ok(n) if n < PENDING_PER_PHONE => {}
        Ok(_) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "statusCode": 429, "message": "Rate limit is exceeded." })),
            )
                .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox mtn: counting requests failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_PROCESSING_ERROR",
                "An internal error occurred while processing.",
            );
        }
    }
    let mut wire = serde_json::Map::new();
    wire.insert("external_id".into(), json!(req.external_id));
    if scenario(&phone) == Some("454") {
        wire.insert("stuck".into(), json!(true));
    }
    let stored = NewRequest {
        operator: RAIL,
        id: reference_id,
        phone,
        amount: units * 10i64.pow(currency.exponent()),
        currency,
        payee: req.payer_message.clone(),
        reference: req.payee_note.clone(),
        callback_url,
        wire,
        refund_of: None,
    };
    match sandbox.take(&state.store, stored).await {
        Ok(true) => (StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response(),
        Ok(false) => error(
            StatusCode::CONFLICT,
            "RESOURCE_ALREADY_EXIST",
            "Duplicated reference id. Creation of resource failed.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "sandbox mtn: storing the request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_PROCESSING_ERROR",
                "An internal error occurred while processing.",
            )
        }
    }
}

async fn status(
    State(state): State<AppState>,
    Path(reference_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorised(&state, &headers, Product::Collection) {
        return *refused;
    }
    match state
        .store
        .sandbox_request(RAIL, &reference_id.to_ascii_lowercase())
        .await
    {
        Ok(Some(req)) if req.refund_of.is_none() => Json(result(&req, false)).into_response(),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "Requested resource was not found.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "sandbox mtn: status failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_PROCESSING_ERROR",
                "An internal error occurred while processing.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_ids_must_be_uuid_v4() {
        assert!(is_uuid_v4("7c1f4b2e-9d3a-4e8f-b6a1-2f5c8d9e0a13"));
        assert!(!is_uuid_v4("7c1f4b2e-9d3a-1e8f-b6a1-2f5c8d9e0a13"), "v1");
        assert!(
            !is_uuid_v4("7c1f4b2e-9d3a-4e8f-76a1-2f5c8d9e0a13"),
            "variant"
        );
        assert!(!is_uuid_v4("7c1f4b2e9d3a4e8fb6a12f5c8d9e0a13"));
    }

    #[test]
    fn every_documented_number_has_its_behaviour() {
        for (phone, _) in SCRIPTED {
            if phone.ends_with("480") {
                // Its refund is refused; the payment is an ordinary one.
                continue;
            }
            assert_ne!(Mtn.script(phone), NORMAL, "{phone}");
            let ugandan = format!("256770123{}", &phone[8..]);
            assert_eq!(Mtn.script(phone), Mtn.script(&ugandan), "{ugandan}");
        }
        assert_eq!(Mtn.script("256772123456"), NORMAL);
        assert_eq!(Mtn.script("2567701234500"), NORMAL, "only three digits");
        assert_eq!(Mtn.script("56733123453").auto.unwrap().0, "SUCCESSFUL");
    }
}
