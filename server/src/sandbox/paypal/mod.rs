//! The sandbox PayPal: PayPal's REST API (OAuth client credentials, Orders v2 create /
//! show / capture, captures' refund), its buyer approval page, and webhook events signed
//! as PayPal signs them, with the certificate it serves — on its own origin (its own
//! loopback port), as PayPal's are.
//!
//! Buyers are scripted by the email they log in with ([`buyer`]): one approves and is
//! paid, one is declined at capture (`INSTRUMENT_DECLINED`), one's capture is held
//! (`PENDING`, completed or denied later), and one approves but never comes back (only
//! the `CHECKOUT.ORDER.APPROVED` webhook tells Malipo). The approval page's Cancel
//! sends the shopper back to the merchant's `cancel_url`.
//!
//! Timings (the webhook's delay, a held capture, PayPal's three-hour approval window)
//! follow `sandbox_delay_percent`, so tests never wait for real minutes.

mod pages;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use ring::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    connectors::{
        card::wire::{decimal, money},
        paypal::webhook::{self, CERT_PATH},
        shared::same,
    },
    domain::{Money, ids::random_base62, money::Currency},
};

/// The certificate the sandbox signs webhooks with (CN
/// `messageverificationcerts.sandbox.paypal.com`, as PayPal's sandbox one is), and its key.
/// Published test material: it proves only that an event came from a Malipo sandbox.
const CERT_PEM: &str = include_str!("sandbox-cert.pem");
const KEY_PEM: &str = include_str!("sandbox-key.pem");
/// The certificate's id in its URL.
pub const CERT_ID: &str = "CERT-malipo-sandbox-0001";
/// The password every test buyer logs in with.
pub const BUYER_PASSWORD: &str = "sandbox-buyer";
/// Orders remembered at once; a day at most.
const MAX_ORDERS: usize = 10_000;
const ORDER_TTL: Duration = Duration::from_secs(24 * 3600);
const TOKEN_SECS: u64 = 32_400;
/// Before the sandbox's scale: the webhook's delay, how long a held capture stays held,
/// and how long an approval waits for its capture before PayPal voids it.
const WEBHOOK_DELAY_MS: i64 = 1_500;
const HELD_CAPTURE_MS: i64 = 60_000;
const APPROVAL_HOLD_MS: i64 = 3 * 3600 * 1000;

/// How a scripted buyer behaves, by the email they log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buyer {
    /// Approves; the capture completes.
    Pays,
    /// Approves; the capture is refused (`422 INSTRUMENT_DECLINED`).
    Declined,
    /// Approves; the capture is held (`PENDING`, `PENDING_REVIEW`), then completes.
    Held,
    /// Approves; the capture is held, then denied (`PAYMENT.CAPTURE.DENIED`).
    Denied,
    /// Approves but never comes back: the browser stays on PayPal's page.
    Gone,
}

/// The scripted buyer for `email` (anyone else pays).
pub fn buyer(email: &str) -> Buyer {
    match email.trim().to_ascii_lowercase().as_str() {
        "declined@example.com" => Buyer::Declined,
        "pending@example.com" => Buyer::Held,
        "denied@example.com" => Buyer::Denied,
        "gone@example.com" => Buyer::Gone,
        _ => Buyer::Pays,
    }
}

/// Who the sandbox is and whom it serves.
#[derive(Clone)]
pub struct SandboxPaypalConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The webhook id its events are signed for.
    pub webhook_id: String,
    /// Its own origin, `http://127.0.0.1:PORT`.
    pub origin: String,
    /// Where its webhook events go (Malipo's `/callbacks/paypal`).
    pub webhook_url: String,
    /// `sandbox_delay_percent`.
    pub delay_percent: u32,
}

/// The sandbox PayPal. Cheap to clone.
#[derive(Clone)]
pub struct SandboxPaypal {
    config: Arc<SandboxPaypalConfig>,
    state: Arc<Mutex<PaypalState>>,
    /// Held through each call that may be sent again (`PayPal-Request-Id`), so two at
    /// once with the same id get one answer.
    serial: Arc<Mutex<()>>,
    key: Arc<RsaKeyPair>,
    http: reqwest::Client,
}

#[derive(Default)]
struct PaypalState {
    tokens: HashMap<String, Instant>,
    orders: HashMap<String, Order>,
    /// Answers by `PayPal-Request-Id` (per kind of call), replayed when it comes again.
    replies: HashMap<String, (StatusCode, Value)>,
}

struct Order {
    created: Instant,
    amount: Money,
    custom_id: String,
    invoice_id: String,
    description: String,
    brand_name: String,
    return_url: String,
    cancel_url: String,
    /// `PAYER_ACTION_REQUIRED`, `APPROVED`, `COMPLETED`, `VOIDED`.
    status: &'static str,
    buyer: Option<(Buyer, String)>,
    capture: Option<CaptureRec>,
}

struct CaptureRec {
    id: String,
    /// `COMPLETED`, `PENDING`, `DECLINED`, `PARTIALLY_REFUNDED`, `REFUNDED`.
    status: &'static str,
    reason: Option<&'static str>,
    refunded: i64,
}

/// An answer: status and PayPal JSON.
type Answer = (StatusCode, Value);

fn error(status: StatusCode, name: &str, issue: &str, message: &str) -> Answer {
    (
        status,
        json!({"name": name, "message": message, "debug_id": random_base62(13).to_ascii_lowercase(),
            "details": [{"issue": issue, "description": message}]}),
    )
}

fn unprocessable(issue: &str, message: &str) -> Answer {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "UNPROCESSABLE_ENTITY",
        issue,
        message,
    )
}

fn invalid(issue: &str, message: &str) -> Answer {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", issue, message)
}

fn not_found() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "INVALID_RESOURCE_ID",
        "Specified resource ID does not exist.",
    )
}

fn respond((status, body): Answer) -> Response {
    (status, Json(body)).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "invalid_token", "error_description": "Token signature verification failed"})),
    )
        .into_response()
}

/// A PayPal-looking id: 17 upper-case letters and digits.
fn paypal_id() -> String {
    random_base62(17).to_ascii_uppercase()
}

/// `2026-12-02T10:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    let c = crate::time::civil(ms, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("the sandbox PEM is base64")
}

impl Order {
    fn money_json(amount: Money) -> Value {
        json!({"currency_code": amount.currency().code(), "value": decimal(amount)})
    }

    fn capture_json(&self, id: &str) -> Option<Value> {
        let c = self.capture.as_ref()?;
        let mut capture = json!({
            "id": c.id,
            "status": c.status,
            "amount": Order::money_json(self.amount),
            "final_capture": true,
            "custom_id": self.custom_id,
            "invoice_id": self.invoice_id,
            "supplementary_data": {"related_ids": {"order_id": id}},
        });
        if let Some(reason) = c.reason {
            capture["status_details"] = json!({"reason": reason});
        }
        if c.status == "COMPLETED" || c.status.ends_with("REFUNDED") {
            let fee = (self.amount.minor() * 34 / 1000 + 30).min(self.amount.minor());
            let m = |minor| Money::new(minor, self.amount.currency()).map(Order::money_json);
            capture["seller_receivable_breakdown"] = json!({
                "gross_amount": Order::money_json(self.amount),
                "paypal_fee": m(fee).unwrap_or(Value::Null),
                "net_amount": m(self.amount.minor() - fee).unwrap_or(Value::Null),
            });
        }
        Some(capture)
    }

    fn json(&self, id: &str, origin: &str) -> Value {
        let mut unit = json!({
            "reference_id": "default",
            "custom_id": self.custom_id,
            "invoice_id": self.invoice_id,
            "description": self.description,
            "amount": Order::money_json(self.amount),
        });
        if let Some(capture) = self.capture_json(id) {
            unit["payments"] = json!({"captures": [capture]});
        }
        let mut order = json!({
            "id": id,
            "intent": "CAPTURE",
            "status": self.status,
            "purchase_units": [unit],
            "links": [
                {"href": format!("{origin}/v2/checkout/orders/{id}"), "rel": "self", "method": "GET"},
            ],
        });
        if let Some((_, email)) = &self.buyer {
            order["payer"] = json!({"email_address": email, "payer_id": payer_id(email)});
            order["payment_source"] =
                json!({"paypal": {"email_address": email, "account_status": "VERIFIED"}});
        }
        if self.status == "PAYER_ACTION_REQUIRED"
            && let Some(links) = order["links"].as_array_mut()
        {
            links.push(json!({"href": format!("{origin}/checkoutnow?token={id}"),
                "rel": "payer-action", "method": "GET"}));
        }
        order
    }
}

/// A stable payer id for a test buyer.
fn payer_id(email: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(email.as_bytes())[..7]).to_ascii_uppercase()
}

impl SandboxPaypal {
    pub fn new(config: SandboxPaypalConfig) -> Result<SandboxPaypal, reqwest::Error> {
        let key = RsaKeyPair::from_pkcs8(&pem_der(KEY_PEM)).expect("the sandbox key is PKCS#8 RSA");
        Ok(SandboxPaypal {
            config: Arc::new(config),
            state: Arc::default(),
            serial: Arc::default(),
            key: Arc::new(key),
            http: crate::connectors::shared::http_client(Duration::from_secs(10))?,
        })
    }

    /// The whole site: API, certificate, buyer pages.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v2/checkout/orders", post(create_order))
            .route("/v2/checkout/orders/{id}", get(show_order))
            .route("/v2/checkout/orders/{id}/capture", post(capture_order))
            .route("/v2/payments/captures/{id}/refund", post(refund_capture))
            .route(&format!("{CERT_PATH}{{id}}"), get(certificate))
            .merge(pages::router())
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024))
            .with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaypalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scaled(&self, ms: i64) -> Duration {
        let ms = ms.saturating_mul(i64::from(self.config.delay_percent)) / 100;
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// Whether the request carries a token this sandbox issued, still valid.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = crate::sandbox::header(headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.lock()
            .tokens
            .get(token.trim())
            .is_some_and(|until| Instant::now() < *until)
    }

    /// The answer already given to `key` (a `PayPal-Request-Id`), or `answer()`'s, kept.
    fn once(&self, key: Option<String>, answer: impl FnOnce(&Self) -> Answer) -> Response {
        let _serial = self.serial.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = &key
            && let Some(reply) = self.lock().replies.get(key).cloned()
        {
            return respond(reply);
        }
        let reply = answer(self);
        if let Some(key) = key {
            let mut state = self.lock();
            if state.replies.len() >= MAX_ORDERS * 2 {
                state.replies.clear();
            }
            state.replies.insert(key, reply.clone());
        }
        respond(reply)
    }

    /// Sends an event to the webhook URL, signed, after the sandbox's delay; tried again
    /// (three more times, backing off) while it is not taken.
    fn send_event(&self, event_type: &'static str, resource_type: &'static str, resource: Value) {
        let paypal = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(paypal.scaled(WEBHOOK_DELAY_MS)).await;
            let event = json!({
                "id": format!("WH-{}", paypal_id()),
                "event_version": "1.0",
                "create_time": rfc3339(crate::time::now_ms()),
                "resource_type": resource_type,
                "resource_version": "2.0",
                "event_type": event_type,
                "summary": event_type,
                "resource": resource,
            });
            let body = event.to_string();
            for attempt in 0..4u32 {
                if paypal.deliver(&body).await {
                    return;
                }
                tokio::time::sleep(paypal.scaled(1_000 * 5_i64.pow(attempt))).await;
            }
            tracing::warn!(event_type, "sandbox PayPal gave up delivering a webhook");
        });
    }

    /// One signed delivery: true when taken (2xx).
    async fn deliver(&self, body: &str) -> bool {
        let transmission_id = format!(
            "{}-{}",
            random_base62(8).to_ascii_lowercase(),
            random_base62(12).to_ascii_lowercase()
        );
        let time = rfc3339(crate::time::now_ms());
        let text = webhook::signed_text(
            &transmission_id,
            &time,
            &self.config.webhook_id,
            body.as_bytes(),
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        if self
            .key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                text.as_bytes(),
                &mut signature,
            )
            .is_err()
        {
            return false;
        }
        let sent = self
            .http
            .post(&self.config.webhook_url)
            .header("content-type", "application/json")
            .header(webhook::TRANSMISSION_ID, transmission_id)
            .header(webhook::TRANSMISSION_TIME, time)
            .header(
                webhook::TRANSMISSION_SIG,
                base64::engine::general_purpose::STANDARD.encode(signature),
            )
            .header(
                webhook::CERT_URL,
                format!("{}{CERT_PATH}{CERT_ID}", self.config.origin),
            )
            .header(webhook::AUTH_ALGO, "SHA256withRSA")
            .body(body.to_owned())
            .send()
            .await;
        sent.is_ok_and(|r| r.status().is_success())
    }

    /// The buyer approved (or cancelled) order `id` on the approval page: where their
    /// browser goes now (`None`: it stays, the buyer never comes back).
    fn decide(&self, id: &str, email: &str, approve: bool) -> Result<Option<String>, &'static str> {
        let (url, event) = {
            let mut state = self.lock();
            let order = state.orders.get_mut(id).ok_or("This order is not known.")?;
            if order.status != "PAYER_ACTION_REQUIRED" {
                return Err("This order can no longer be approved.");
            }
            if !approve {
                return Ok(Some(format!(
                    "{}?token={id}",
                    with_query(&order.cancel_url)
                )));
            }
            let who = buyer(email);
            order.status = "APPROVED";
            order.buyer = Some((who, email.trim().to_owned()));
            let back = (who != Buyer::Gone).then(|| {
                format!(
                    "{}token={id}&PayerID={}",
                    with_query(&order.return_url),
                    payer_id(email)
                )
            });
            (back, order.json(id, &self.config.origin))
        };
        self.send_event("CHECKOUT.ORDER.APPROVED", "checkout-order", event);
        // PayPal voids an approval nobody captured within its window.
        let paypal = self.clone();
        let order_id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(paypal.scaled(APPROVAL_HOLD_MS)).await;
            let voided = {
                let mut state = paypal.lock();
                match state.orders.get_mut(&order_id) {
                    Some(o) if o.status == "APPROVED" => {
                        o.status = "VOIDED";
                        Some(o.json(&order_id, &paypal.config.origin))
                    }
                    _ => None,
                }
            };
            if let Some(order) = voided {
                paypal.send_event(
                    "CHECKOUT.PAYMENT-APPROVAL.REVERSED",
                    "checkout-order",
                    order,
                );
            }
        });
        Ok(url)
    }

    /// What the approval page shows of order `id`: the merchant, the amount, and whether
    /// it still awaits the buyer.
    fn summary(&self, id: &str) -> Option<(String, String, Money, bool)> {
        let state = self.lock();
        let o = state.orders.get(id)?;
        Some((
            o.brand_name.clone(),
            o.description.clone(),
            o.amount,
            o.status == "PAYER_ACTION_REQUIRED",
        ))
    }
}

/// `url` ready for more query parameters (`?` or `&` at its end).
fn with_query(url: &str) -> String {
    if url.contains('?') {
        format!("{url}&")
    } else {
        format!("{url}?")
    }
}

async fn token(State(paypal): State<SandboxPaypal>, headers: HeaderMap, body: Bytes) -> Response {
    let basic = crate::sandbox::header(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|d| String::from_utf8(d).ok());
    let want = format!(
        "{}:{}",
        paypal.config.client_id,
        paypal.config.client_secret.expose_secret()
    );
    if !basic.is_some_and(|given| same(&given, &want)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Client Authentication failed"})),
        )
            .into_response();
    }
    if !String::from_utf8_lossy(&body).contains("grant_type=client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"})),
        )
            .into_response();
    }
    let token = format!("A21AA{}", random_base62(60));
    {
        let mut state = paypal.lock();
        let now = Instant::now();
        state.tokens.retain(|_, until| now < *until);
        if state.tokens.len() >= 1_000 {
            state.tokens.clear();
        }
        state
            .tokens
            .insert(token.clone(), now + Duration::from_secs(TOKEN_SECS));
    }
    Json(json!({
        "scope": "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund",
        "access_token": token,
        "token_type": "Bearer",
        "app_id": "APP-MALIPOSANDBOX",
        "expires_in": TOKEN_SECS,
        "nonce": format!("{}{}", rfc3339(crate::time::now_ms()), random_base62(20)),
    }))
    .into_response()
}

fn request_key(kind: &str, headers: &HeaderMap) -> Option<String> {
    crate::sandbox::header(headers, "paypal-request-id")
        .filter(|id| !id.is_empty() && id.len() <= 108)
        .map(|id| format!("{kind}:{id}"))
}

async fn create_order(
    State(paypal): State<SandboxPaypal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !paypal.authorized(&headers) {
        return unauthorized();
    }
    let key = request_key("create", &headers);
    paypal.once(key, |paypal| {
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            return invalid("INVALID_JSON", "The request JSON is not well formed.");
        };
        if v["intent"] != "CAPTURE" {
            return unprocessable(
                "INTENT_NOT_SUPPORTED",
                "The sandbox takes intent CAPTURE only.",
            );
        }
        let unit = &v["purchase_units"][0];
        let currency = &unit["amount"]["currency_code"];
        let Some(amount) = money(&unit["amount"]["value"], currency).filter(|m| m.minor() > 0)
        else {
            return invalid(
                "INVALID_PARAMETER_VALUE",
                "purchase_units[0].amount is not a valid amount.",
            );
        };
        if !matches!(
            amount.currency(),
            Currency::Usd | Currency::Eur | Currency::Gbp
        ) {
            return unprocessable(
                "CURRENCY_NOT_SUPPORTED",
                "Currency code is not currently supported.",
            );
        }
        let context = &v["payment_source"]["paypal"]["experience_context"];
        let url = |field: &str| {
            context[field]
                .as_str()
                .filter(|u| u.len() <= 2_000 && url::Url::parse(u).is_ok())
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .map(str::to_owned)
        };
        let (Some(return_url), Some(cancel_url)) = (url("return_url"), url("cancel_url")) else {
            return invalid(
                "MISSING_REQUIRED_PARAMETER",
                "return_url and cancel_url are required.",
            );
        };
        let text =
            |v: &Value, max: usize| v.as_str().unwrap_or_default().chars().take(max).collect();
        let id = paypal_id();
        let order = Order {
            created: Instant::now(),
            amount,
            custom_id: text(&unit["custom_id"], 127),
            invoice_id: text(&unit["invoice_id"], 127),
            description: text(&unit["description"], 127),
            brand_name: text(&context["brand_name"], 127),
            return_url,
            cancel_url,
            status: "PAYER_ACTION_REQUIRED",
            buyer: None,
            capture: None,
        };
        let answer = order.json(&id, &paypal.config.origin);
        let mut state = paypal.lock();
        state.orders.retain(|_, o| o.created.elapsed() < ORDER_TTL);
        if state.orders.len() >= MAX_ORDERS {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "SERVICE_UNAVAILABLE",
                "Too many open orders in the sandbox.",
            );
        }
        state.orders.insert(id, order);
        (StatusCode::CREATED, answer)
    })
}

async fn show_order(
    State(paypal): State<SandboxPaypal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !paypal.authorized(&headers) {
        return unauthorized();
    }
    let state = paypal.lock();
    match state.orders.get(&id) {
        Some(o) => Json(o.json(&id, &paypal.config.origin)).into_response(),
        None => respond(not_found()),
    }
}

async fn capture_order(
    State(paypal): State<SandboxPaypal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !paypal.authorized(&headers) {
        return unauthorized();
    }
    let key = request_key("capture", &headers);
    paypal.once(key, |paypal| {
        let (answer, event, held) = {
            let mut state = paypal.lock();
            let Some(order) = state.orders.get_mut(&id) else {
                return not_found();
            };
            match order.status {
                "APPROVED" => {}
                "COMPLETED" => {
                    return unprocessable(
                        "ORDER_ALREADY_CAPTURED",
                        "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
                    );
                }
                _ => {
                    return unprocessable(
                        "ORDER_NOT_APPROVED",
                        "Payer has not yet approved the Order for payment.",
                    );
                }
            }
            let who = order.buyer.as_ref().map_or(Buyer::Pays, |(b, _)| *b);
            if who == Buyer::Declined {
                return unprocessable(
                    "INSTRUMENT_DECLINED",
                    "The instrument presented was either declined by the processor or bank, or it can't be used for this payment.",
                );
            }
            let held = matches!(who, Buyer::Held | Buyer::Denied);
            order.status = "COMPLETED";
            order.capture = Some(CaptureRec {
                id: paypal_id(),
                status: if held { "PENDING" } else { "COMPLETED" },
                reason: held.then_some("PENDING_REVIEW"),
                refunded: 0,
            });
            let event = order.capture_json(&id).unwrap_or_default();
            (order.json(&id, &paypal.config.origin), event, held.then_some(who))
        };
        paypal.send_event(
            if held.is_some() {
                "PAYMENT.CAPTURE.PENDING"
            } else {
                "PAYMENT.CAPTURE.COMPLETED"
            },
            "capture",
            event,
        );
        if let Some(who) = held {
            paypal.release_later(id.clone(), who == Buyer::Held);
        }
        (StatusCode::CREATED, answer)
    })
}

impl SandboxPaypal {
    /// A held capture completes (or is denied) after a while, with its event.
    fn release_later(&self, id: String, completes: bool) {
        let paypal = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(paypal.scaled(HELD_CAPTURE_MS)).await;
            let event = {
                let mut state = paypal.lock();
                let Some(order) = state.orders.get_mut(&id) else {
                    return;
                };
                let Some(capture) = order.capture.as_mut().filter(|c| c.status == "PENDING") else {
                    return;
                };
                capture.status = if completes { "COMPLETED" } else { "DECLINED" };
                capture.reason = None;
                order.capture_json(&id).unwrap_or_default()
            };
            paypal.send_event(
                if completes {
                    "PAYMENT.CAPTURE.COMPLETED"
                } else {
                    "PAYMENT.CAPTURE.DENIED"
                },
                "capture",
                event,
            );
        });
    }
}

async fn refund_capture(
    State(paypal): State<SandboxPaypal>,
    Path(capture_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !paypal.authorized(&headers) {
        return unauthorized();
    }
    let key = request_key("refund", &headers);
    paypal.once(key, |paypal| {
        let v: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => return invalid("INVALID_JSON", "The request JSON is not well formed."),
            }
        };
        let mut state = paypal.lock();
        let Some(order) = state
            .orders
            .values_mut()
            .find(|o| o.capture.as_ref().is_some_and(|c| c.id == capture_id))
        else {
            return not_found();
        };
        let total = order.amount;
        let Some(capture) = order.capture.as_mut() else {
            return not_found();
        };
        if !matches!(capture.status, "COMPLETED" | "PARTIALLY_REFUNDED") {
            return unprocessable(
                "CAPTURE_FULLY_REFUNDED",
                "The capture has already been fully refunded or is not completed.",
            );
        }
        let left = total.minor() - capture.refunded;
        let amount = if v.get("amount").is_some() {
            match money(&v["amount"]["value"], &v["amount"]["currency_code"]) {
                Some(a) if a.currency() == total.currency() && a.minor() > 0 => a,
                _ => {
                    return invalid(
                        "INVALID_PARAMETER_VALUE",
                        "amount is not a valid amount in the capture's currency.",
                    );
                }
            }
        } else {
            match Money::new(left, total.currency()) {
                Ok(a) => a,
                Err(_) => return unprocessable("REFUND_FAILED", "Nothing left to refund."),
            }
        };
        if amount.minor() > left {
            return unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has not yet been refunded.",
            );
        }
        capture.refunded += amount.minor();
        capture.status = if capture.refunded == total.minor() {
            "REFUNDED"
        } else {
            "PARTIALLY_REFUNDED"
        };
        (
            StatusCode::CREATED,
            json!({"id": paypal_id(), "status": "COMPLETED", "amount": Order::money_json(amount),
                "links": [{"href": format!("{}/v2/payments/captures/{capture_id}", paypal.config.origin), "rel": "up", "method": "GET"}]}),
        )
    })
}

async fn certificate(Path(id): Path<String>) -> Response {
    if id != CERT_ID {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([(header::CONTENT_TYPE, "application/x-pem-file")], CERT_PEM).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_signature_verifies_with_the_certificate_it_serves() {
        let key = RsaKeyPair::from_pkcs8(&pem_der(KEY_PEM)).unwrap();
        let text = webhook::signed_text("t-1", "2026-12-02T10:00:00Z", "WH-1", b"{}");
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            text.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let cert = webhook::VerifyingCert::from_pem(CERT_PEM).unwrap();
        let now = crate::time::now_ms() / 1000;
        assert!(cert.verify(text.as_bytes(), &sig, now).is_ok());
        let other = webhook::signed_text("t-1", "2026-12-02T10:00:00Z", "WH-2", b"{}");
        assert!(
            cert.verify(other.as_bytes(), &sig, now).is_err(),
            "another webhook id"
        );
    }

    #[test]
    fn buyers_are_scripted_by_email() {
        assert_eq!(buyer("Declined@Example.com"), Buyer::Declined);
        assert_eq!(buyer("gone@example.com"), Buyer::Gone);
        assert_eq!(buyer("anyone@example.org"), Buyer::Pays);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
