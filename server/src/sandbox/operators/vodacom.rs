//! The sandbox Vodacom M-Pesa Tanzania (M-Pesa OpenAPI, RAILS.md §3): `getSession`,
//! `c2bPayment/singleStage` and `queryTransactionStatus` under
//! `/openapi/ipg/v2/vodacomTZN/`, with its own RSA key pair. Bearers are opened with its
//! private key (PKCS#1 v1.5): the API key for a session, the session id for the rest; a
//! new session is refused until it is live (30 s, scaled like every sandbox delay); an
//! `Origin` header is required. The single stage holds the HTTP call open until the
//! handset answers (or the prompt times out), as Vodacom's does, and answers in its INS
//! codes with their HTTP statuses. There is no callback.

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, pkcs8::DecodePrivateKey};
use secrecy::ExposeSecret;
use serde_json::{Map, json};
use std::{collections::HashMap, net::SocketAddr, sync::OnceLock, time::Duration};

use crate::{
    connectors::{
        RailId,
        shared::same,
        vodacom::wire::{C2bRequest, Ins, TransactionStatus},
    },
    domain::{
        ids::random_base62,
        money::{Currency, format_amount},
    },
    sandbox::{
        Answer, NewRequest, OutgoingCallback, PENDING_PER_PHONE, Sandbox, SandboxOperator,
        SandboxRequest, behaviour::Behaviour, header,
    },
    startup::AppState,
    time::now_ms,
};

/// Vodacom M-Pesa Tanzania.
pub struct Vodacom;

const RAIL: RailId = RailId::Vodacom;

/// The sandbox operator's private key: **public test data**, published so anyone can
/// see how the sandbox opens a bearer (its public half is `SANDBOX_PUBLIC_KEY` in
/// `connectors/vodacom/config.rs`). Base64 of the PKCS#8 DER.
const PRIVATE_KEY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC+HfLL98kkmg0eTPdmV1XbBSFhLeioKMVSzE+kbhT3z7SEU/e/HARzxKePN6tBDskDvzpvM+n2wTLIY8EE9pz1TiEzO0W1SB+xdufGflDBDK86swbxD5gmGdxGD2bX71fRyEvl4mu9flVewbEjwgw2e3f6DwXg78x5ut0wOtZB2OKS1wpBUHNOtTXYZ9lD8Bi9Cxe5l0x9Hqemz+9Ivh4OWveU+FsFEEdr4ZbuaAfnGT2ku3o6M+CJ4LqtaNWm4Xx7vBIjNF+jOLmfwyTrjTjkcPf228VQIAc/AO1QHa9m1W8d6KKF2yPtm0W+jfV0sartPwWJ8QtafZaDHyKjeRdvAgMBAAECggEAQBpV/vst+abtzG00L/A7tS0+K4ewvl585iWYpv8tF7+ThNjRHMGkKKrCurIRDs8e7SIB4HP3K+nJpzKnZvaGRtoQrLcMEotekFZg4Rc/QFB4Fwk9SnOxIAuxL3hK+30qtcPc/4bAQDUEMP6LLVzlBEvOUOTW3RjN76+XnAcCrlGOVzN8qPTd9bB0qwt/OeOxEJkn97o/aoFJ2SinfbtR0MT//aEE04ipDCSWlzTYRn9hDwTIkjinR167S+RMKNJ+KhlHygkjU27sIfg4Tl+7+j8/Y68RFTaFCvih8yfzh/UiP/No0y8TUurxQGnqnpg0IM/iRmc9+CJOA/jD6+qCbQKBgQD63MyHfN34U/dY0N+d08dKHyPr7GwTDRfwL62Z3YljKjzowwpdcAGBHnQQ8k7khs/NEnsnrNUKsYiHaQIK3qt2DYq2mKtAilBOvEMrQT4vobgRc7lzDfFVfUTciGiOBL70pII2eEj0HA+Ng6tHkM0+GlP62/bj8m0Rbm37myUNpQKBgQDCAq2PXGbckLL7HZ90/msqqAyGt1uIQNx6uEzBm1gL4wBop5Mfu/pNjdbGwNGCGlWws4xmd4HFHDoSTPM/kbyLdFJpM7fkTW/xsvLjwcSXUnmscXA+sCzZcP2kuqQKUwCQHTLn9aM1/NX+u3otGu3RZiniNzCg0CuOu9Zh1gPsgwKBgDMGSguc2EE0QvEruvANLVHkN5g7BFhzp1TRPcw4BUPISY9GbItIxuWOXik8P9O3n/ikM6yEOOjt50kzkJjJZbKjWn19XAfKmj8Jh9f6cz2Y9SmHkkbWpSmwSxtYG3wXdwenllyh5qTQOFGeYG40A6sIC+DQcM04d/q9rV0p10WJAoGAMUxW59/V72QBZtffJe5kMuGi1TSQWK4KmFBuiJ+9nr+e4fj65IxyjPRmx/hFBGdGsPDe00a4vepvQyk0gkm4/EKhkkPnDWcz89nB6GfbWYxGiLAGkpdXviT8/rfCaTEwKm6Q+eor/9LwWZsv73gxSA1KxUW64JIlD07hqdilBJsCgYEAxXQMkHDOQLWF14sBKgmeOlXQ5zckBVf+Jfyad+S1x79y+UvAW8gQ1eO4qG2VDusCZRit4g8kieWTJRNNgaBY7eNwvV3JHIwbC0BPVw5zKW5C0S3QXC2WAa26z4qQfu8/v/h2xfLZc4m2wBJTZ3D6OpgrOokRm9mY8JV1J6E79Yw=";

pub const UNANSWERED_TIMEOUT_MS: i64 = 60_000;
/// How long a new session takes to go live, before scaling.
pub const SESSION_LIVE_AFTER: Duration = Duration::from_secs(30);

const TIMEOUT: (&str, &str) = ("INS-9", "Request timeout");
const NORMAL: Behaviour = Behaviour::waiting(TIMEOUT, UNANSWERED_TIMEOUT_MS);

/// Scripted numbers: `0754 00` then four digits (Tanzania, a Vodacom range).
const SCRIPTED_PREFIX: &str = "25575400";

pub const SCRIPTED: [(&str, &str); 8] = [
    ("255754000113", "INS-2006 insufficient balance, after 2 s"),
    (
        "255754000102",
        "INS-6 transaction failed (a wrong PIN reads this way), after 2 s",
    ),
    (
        "255754000105",
        "the payment is refused at once: INS-2051 MSISDN invalid (not registered)",
    ),
    (
        "255754000116",
        "INS-16, temporarily overloaded (HTTP 503), at once: ambiguous, so the status query is asked; it knows nothing, and the attempt ends unknown",
    ),
    (
        "255754000140",
        "the call's answer is lost (the gateway answers 504); the status query knows",
    ),
    (
        "255754000150",
        "the answer is lost and the status query says Pending for 20 s more",
    ),
    ("255754000110", "the call answers 10 s after the handset"),
    (
        "255754000130",
        "pays (answer on the handset); its reversal is refused: INS-2006 insufficient balance",
    ),
];

fn scenario(phone: &str) -> Option<&str> {
    phone
        .strip_prefix(SCRIPTED_PREFIX)
        .filter(|rest| rest.len() == 4)
}

/// The bearer `sealed` (base64 of a PKCS#1 v1.5 block under the sandbox's public key),
/// opened; `None` if it is not one.
pub fn open_bearer(sealed: &str) -> Option<String> {
    // One RSA block, base64'd: 344 characters at 2048 bits, 684 at 4096. Anything
    // longer costs no private-key work.
    if sealed.len() > 700 {
        return None;
    }
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let der = base64::engine::general_purpose::STANDARD
            .decode(PRIVATE_KEY)
            .expect("the sandbox key is base64");
        RsaPrivateKey::from_pkcs8_der(&der).expect("the sandbox key is a PKCS#8 RSA key")
    });
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed.trim())
        .ok()?;
    let open = key.decrypt(Pkcs1v15Encrypt, &raw).ok()?;
    String::from_utf8(open).ok()
}

impl SandboxOperator for Vodacom {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn router(&self) -> Router<AppState> {
        Router::new()
            .route(
                "/openapi/ipg/v2/vodacomTZN/{operation}/",
                get(session_or_query),
            )
            .route(
                "/openapi/ipg/v2/vodacomTZN/c2bPayment/singleStage/",
                post(single_stage),
            )
            .route(
                "/openapi/ipg/v2/vodacomTZN/reversal/",
                axum::routing::put(reversal),
            )
    }

    fn network(&self) -> &'static str {
        "Vodacom"
    }

    fn wallet(&self) -> &'static str {
        "M-Pesa"
    }

    fn pin_digits(&self) -> usize {
        4
    }

    fn script(&self, phone: &str) -> Behaviour {
        match scenario(phone) {
            Some("0113") => NORMAL.decided("INS-2006", "Insufficient balance", 2_000),
            Some("0102") => NORMAL.decided("INS-6", "Transaction Failed", 2_000),
            Some("0140") => NORMAL.callback_lost(),
            Some("0150") => NORMAL.callback_lost().query_lags(20_000),
            Some("0110") => NORMAL.callback_late(10_000),
            _ => NORMAL,
        }
    }

    fn scripted(&self) -> &'static [(&'static str, &'static str)] {
        &SCRIPTED
    }

    fn answer(&self, answer: Answer) -> (&'static str, &'static str) {
        match answer {
            Answer::Approved => ("INS-0", "Request processed successfully"),
            Answer::Declined => ("INS-5", "Transaction cancelled by customer"),
            Answer::TimedOut => TIMEOUT,
        }
    }

    fn receipt(&self) -> String {
        // A transaction id, like Vodacom's.
        random_base62(10).to_uppercase()
    }

    fn prompt(&self, req: &SandboxRequest) -> String {
        format!(
            "Unalipa {} kwa {} (kumb. {}). Weka namba ya siri ya M-Pesa kuthibitisha.",
            format_amount(req.amount, req.currency),
            req.payee,
            req.reference
        )
    }

    fn refund_refusal(&self, payer: &str) -> Option<(&'static str, &'static str)> {
        (scenario(payer) == Some("0130")).then_some(("INS-2006", "Insufficient balance"))
    }

    fn callback(&self, _req: &SandboxRequest) -> Option<OutgoingCallback> {
        // The single stage's answer is the call's own: no callback.
        None
    }
}

/// An OpenAPI answer: `code` with its HTTP status and words, and `more` fields.
fn answer(ins: Ins, more: serde_json::Value) -> Response {
    let mut body = json!({
        "output_ResponseCode": ins.code(),
        "output_ResponseDesc": ins.words(),
    });
    if let (Some(body), serde_json::Value::Object(more)) = (body.as_object_mut(), more) {
        body.extend(more);
    }
    (
        StatusCode::from_u16(ins.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        Json(body),
    )
        .into_response()
}

/// The bearer, opened, when the request also carries the `Origin` header the OpenAPI
/// requires. The private-key work runs off the async workers.
async fn bearer(headers: &HeaderMap) -> Result<String, Box<Response>> {
    if header(headers, "origin").is_none_or(str::is_empty) {
        return Err(Box::new(answer(Ins::ParametersMissing, json!({}))));
    }
    let refused = || Box::new(answer(Ins::InvalidApiKey, json!({})));
    let sealed = header(headers, "authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(refused)?
        .to_owned();
    tokio::task::spawn_blocking(move || open_bearer(&sealed))
        .await
        .ok()
        .flatten()
        .ok_or_else(refused)
}

/// The session in the bearer, if it is live.
async fn session(sandbox: &Sandbox, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let id = bearer(headers).await?;
    if sandbox.token_valid(RAIL, &id) {
        Ok(())
    } else {
        // Not (yet, or any longer) a live session.
        Err(Box::new(answer(Ins::InvalidApiKey, json!({}))))
    }
}

/// `GET getSession/` and `GET queryTransactionStatus/`.
async fn session_or_query(
    State(state): State<AppState>,
    Path(operation): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match operation.as_str() {
        "getSession" => {
            let key = match bearer(&headers).await {
                Ok(key) => key,
                Err(refused) => return *refused,
            };
            if !same(&key, sandbox.rails.vodacom.api_key.expose_secret()) {
                return answer(Ins::InvalidApiKey, json!({}));
            }
            let id = sandbox.issue_token_live_after(
                RAIL,
                32,
                SESSION_LIVE_AFTER,
                Duration::from_secs(3600),
            );
            answer(Ins::Ok, json!({ "output_SessionID": id }))
        }
        "queryTransactionStatus" => {
            if let Err(refused) = session(sandbox, &headers).await {
                return *refused;
            }
            query(&state, &params).await
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn query(state: &AppState, params: &HashMap<String, String>) -> Response {
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    let reference = param("input_QueryReference");
    let query_id = param("input_ThirdPartyConversationID");
    if reference.is_empty() || query_id.is_empty() || param("input_Country").is_empty() {
        return answer(Ins::ParametersMissing, json!({}));
    }
    if param("input_ServiceProviderCode")
        != state
            .sandbox
            .as_deref()
            .map_or("", |s| s.rails.vodacom.service_provider_code.as_str())
    {
        return answer(Ins::InvalidShortcode, json!({}));
    }
    let req = match state.store.sandbox_request(RAIL, reference).await {
        Ok(Some(req)) => req,
        // Not (yet) known to the query.
        Ok(None) => return answer(Ins::UnknownStatus, json!({})),
        Err(e) => {
            tracing::error!(error = %e, "sandbox vodacom: query failed");
            return answer(Ins::InternalError, json!({}));
        }
    };
    let hidden = req.query_hidden_until.is_some_and(|t| now_ms() < t);
    let status = match req
        .result_code
        .as_deref()
        .filter(|_| req.decided && !hidden)
    {
        None => TransactionStatus::Pending,
        Some(code) => match Ins::parse(code) {
            Some(Ins::Ok) => TransactionStatus::Completed,
            Some(Ins::CancelledByCustomer) => TransactionStatus::Cancelled,
            Some(Ins::RequestTimeout) => TransactionStatus::Expired,
            _ => TransactionStatus::Failed,
        },
    };
    answer(
        Ins::Ok,
        json!({
            "output_ResponseTransactionStatus": status.as_str(),
            "output_ConversationID": req.wire_str("conversation_id"),
            "output_ThirdPartyConversationID": query_id,
            "output_OriginalTransactionID": req.receipt.clone().filter(|_| status == TransactionStatus::Completed).unwrap_or_default(),
        }),
    )
}

/// `PUT reversal/`: returns (part of) a paid payment, at once. The same
/// `input_ThirdPartyConversationID` again is a duplicate (INS-10); more than is left is
/// an invalid amount (INS-13).
async fn reversal(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(refused) = session(sandbox, &headers).await {
        return *refused;
    }
    // Reversals count against the pushes' quota: each one is a row.
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return answer(Ins::Overloaded, json!({}));
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return answer(Ins::ParametersMissing, json!({}));
    };
    let field = |k: &str| body[k].as_str().unwrap_or_default();
    let tpc = field("input_ThirdPartyConversationID");
    if field("input_Country").is_empty()
        || field("input_TransactionID").is_empty()
        || tpc.is_empty()
        || tpc.len() > 40
    {
        return answer(Ins::ParametersMissing, json!({}));
    }
    if field("input_ServiceProviderCode") != sandbox.rails.vodacom.service_provider_code {
        return answer(Ins::InvalidShortcode, json!({}));
    }
    let failed = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "sandbox vodacom: reversal failed");
        answer(Ins::InternalError, json!({}))
    };
    match state.store.sandbox_request(RAIL, tpc).await {
        Ok(Some(_)) => return answer(Ins::DuplicateTransaction, json!({})),
        Ok(None) => {}
        Err(e) => return failed(e),
    }
    let original = match state
        .store
        .sandbox_paid_by_receipt(RAIL, field("input_TransactionID"))
        .await
    {
        Ok(Some(o)) => o,
        Ok(None) => return answer(Ins::InvalidTransactionId, json!({})),
        Err(e) => return failed(e),
    };
    // Whole shillings; none given: all that is left.
    let amount = match body.get("input_ReversalAmount") {
        None => Some(original.amount),
        Some(v) => v
            .as_str()
            .and_then(|a| a.parse::<i64>().ok())
            .and_then(|a| a.checked_mul(10i64.pow(original.currency.exponent()))),
    };
    let Some(amount) = amount else {
        return answer(Ins::InvalidAmount, json!({}));
    };
    let taken = sandbox
        .take_refund(
            &state.store,
            crate::sandbox::refunds::RefundAsk {
                original: &original,
                id: tpc.to_owned(),
                amount,
                callback_url: None,
                wire: Map::new(),
                after_ms: 0,
                already: None,
            },
        )
        .await;
    use crate::sandbox::refunds::RefundTaken;
    match taken {
        Ok(RefundTaken::Taken(r)) if crate::sandbox::refunds::made(&r) => answer(
            Ins::Ok,
            json!({
                "output_TransactionID": r.receipt,
                "output_ConversationID": random_base62(32).to_lowercase(),
                "output_ThirdPartyConversationID": tpc,
            }),
        ),
        Ok(RefundTaken::Taken(r)) => answer(
            r.result_code
                .as_deref()
                .and_then(Ins::parse)
                .unwrap_or(Ins::TransactionFailed),
            json!({ "output_ThirdPartyConversationID": tpc }),
        ),
        Ok(RefundTaken::Duplicate(_)) => answer(Ins::DuplicateTransaction, json!({})),
        Ok(RefundTaken::AlreadyRefunded | RefundTaken::Exceeds { .. }) => {
            answer(Ins::InvalidAmount, json!({}))
        }
        Ok(RefundTaken::NotPaid) => answer(Ins::InvalidTransactionId, json!({})),
        Err(e) => failed(e),
    }
}

/// `POST c2bPayment/singleStage/`: takes the payment, then answers only once it is
/// decided.
async fn single_stage(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(sandbox) = state.sandbox.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(refused) = session(sandbox, &headers).await {
        return *refused;
    }
    let Ok(req) = serde_json::from_slice::<C2bRequest>(&body) else {
        return answer(Ins::ParametersMissing, json!({}));
    };
    let conversation_id = random_base62(32);
    let echo = |ins: Ins| {
        answer(
            ins,
            json!({
                "output_TransactionID": "",
                "output_ConversationID": conversation_id,
                "output_ThirdPartyConversationID": req.third_party_conversation_id,
            }),
        )
    };
    let id = &req.third_party_conversation_id;
    let reference = &req.transaction_reference;
    let allowed = |s: &str, max: usize| {
        (1..=max).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_' || b == b'+')
    };
    if !allowed(id, 40) {
        return echo(Ins::InvalidThirdPartyReference);
    }
    if !allowed(reference, 20) {
        return echo(Ins::InvalidTransactionReference);
    }
    if req.service_provider_code != sandbox.rails.vodacom.service_provider_code {
        return echo(Ins::InvalidShortcode);
    }
    if req.country != "TZN" || req.currency != "TZS" || !allowed(&req.purchased_items_desc, 256) {
        return echo(Ins::ValidationFailed);
    }
    let phone = req.customer_msisdn.clone();
    if phone.len() != 12 || !phone.starts_with("255") || !phone.bytes().all(|b| b.is_ascii_digit())
    {
        return echo(Ins::MsisdnInvalid);
    }
    let Some(amount) = req
        .amount
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|a| a.fract() == 0.0 && (100.0..=5_000_000.0).contains(a))
    else {
        return echo(Ins::InvalidAmount);
    };
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if !sandbox.push_allowed(client, now_ms()) {
        return echo(Ins::Overloaded);
    }
    match scenario(&phone) {
        Some("0105") => return echo(Ins::MsisdnInvalid),
        Some("0116") => return echo(Ins::Overloaded),
        _ => {}
    }
    match state.store.sandbox_pending_count(&phone).await {
        Ok(n) if n < PENDING_PER_PHONE => {}
        Ok(_) => return echo(Ins::Overloaded),
        Err(e) => {
            tracing::error!(error = %e, "sandbox vodacom: counting requests failed");
            return echo(Ins::InternalError);
        }
    }
    let mut wire = Map::new();
    wire.insert("conversation_id".into(), json!(conversation_id));
    let stored = NewRequest {
        operator: RAIL,
        id: id.clone(),
        phone: phone.clone(),
        amount: amount as i64 * 100,
        currency: Currency::Tzs,
        payee: req.purchased_items_desc.clone(),
        reference: reference.clone(),
        callback_url: None,
        wire,
        refund_of: None,
    };
    match sandbox.take(&state.store, stored).await {
        Ok(true) => {}
        // The same ThirdPartyConversationID again.
        Ok(false) => return echo(Ins::DuplicateTransaction),
        Err(e) => {
            tracing::error!(error = %e, "sandbox vodacom: storing the payment failed");
            return echo(Ins::InternalError);
        }
    }
    let decided = match wait_for_decision(&state, sandbox, id).await {
        Some(decided) => decided,
        None if sandbox.closing() => return gateway_timeout(),
        None => return echo(Ins::RequestTimeout),
    };
    let b = sandbox.behaviour(RAIL, &phone);
    if b.callbacks == 0 {
        // The gateway gives up on the call; only the status query knows.
        return gateway_timeout();
    }
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(b.callback_delay_ms).unwrap_or(0),
    ))
    .await;
    let ins = decided
        .result_code
        .as_deref()
        .and_then(Ins::parse)
        .unwrap_or(Ins::TransactionFailed);
    // In the words decided (the script's or the handset's).
    let desc = decided
        .result_desc
        .clone()
        .unwrap_or_else(|| ins.words().to_owned());
    let receipt = decided.receipt.clone().filter(|_| ins == Ins::Ok);
    answer(
        ins,
        json!({
            "output_ResponseDesc": desc,
            "output_TransactionID": receipt.unwrap_or_default(),
            "output_ConversationID": conversation_id,
            "output_ThirdPartyConversationID": id,
        }),
    )
}

/// What Vodacom's gateway answers when it gives up on a call: no OpenAPI body.
fn gateway_timeout() -> Response {
    (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout").into_response()
}

/// Waits for the handset (or the time-out, or the script) to decide payment `id`.
async fn wait_for_decision(
    state: &AppState,
    sandbox: &Sandbox,
    id: &str,
) -> Option<SandboxRequest> {
    // The worker decides an unanswered prompt at its time-out; a little longer here.
    let deadline = now_ms() + sandbox.scaled_ms(UNANSWERED_TIMEOUT_MS) + 5_000;
    while now_ms() < deadline && !sandbox.closing() {
        // Listening before looking, so a decision in between is not missed.
        let next = sandbox.next_decision();
        tokio::pin!(next);
        next.as_mut().enable();
        match state.store.sandbox_request(RAIL, id).await {
            Ok(Some(req)) if req.decided => return Some(req),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => tracing::warn!(error = %e, "sandbox vodacom: reading the payment failed"),
        }
        // Woken by a decision (any), or a slow look now and then all the same.
        tokio::select! {
            () = &mut next => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_number_has_its_behaviour() {
        for (phone, _) in SCRIPTED {
            if phone.ends_with("0105") || phone.ends_with("0116") || phone.ends_with("0130") {
                continue;
            }
            assert_ne!(Vodacom.script(phone), NORMAL, "{phone}");
        }
        assert_eq!(Vodacom.script("255754123456"), NORMAL);
    }

    #[test]
    fn a_bearer_that_is_not_ours_does_not_open() {
        assert_eq!(open_bearer("bm90IGEgYmVhcmVy"), None);
        assert_eq!(open_bearer("%%%"), None);
    }
}
