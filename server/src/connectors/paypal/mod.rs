//! PayPal, through the Orders v2 REST API: Malipo creates an order (intent `CAPTURE`),
//! sends the shopper's browser to PayPal's approval page (a plain 303, so it works
//! without JavaScript), and takes the money by capturing the order once the buyer
//! approved it — when the shopper comes back, or when PayPal says so in a webhook
//! (`CHECKOUT.ORDER.APPROVED`: a shopper who never came back is still paid), or when the
//! poller finds it approved; always for an attempt still open and claimed for it (the
//! engine decides: `Payments::paypal_query`). Every call that moves money carries a
//! `PayPal-Request-Id` made from the order, so asking twice is taking once.
//!
//! `config.rs` holds `[rails.paypal]`, `wire.rs` PayPal's JSON, `webhook.rs` the local
//! verification of its signed events.

pub mod config;
pub mod webhook;
pub mod wire;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{
    BadCallback, BoxFuture, CallbackReport, Capabilities, Connector, ConnectorError, FailureCode,
    InitiateRequest, Initiated, Queried, QueryRequest, RailId, RailOutcome,
    card::wire::decimal,
    shared::{TokenCache, bad_response, http_client, unreachable, unreadable_token},
};
use crate::domain::{Money, phone::Country};
pub use config::PaypalConfig;
use wire::{CaptureStatus, OrderState};

const RAIL: RailId = RailId::Paypal;

/// How long a buyer has on PayPal's pages: an order still not approved after this is
/// given up (nothing was taken, and nothing can be: Malipo captures only open
/// attempts). PayPal itself keeps an approval about three hours.
pub const APPROVAL_WINDOW_MS: i64 = 3 * 3600 * 1000;
/// What [`Paypal::order`] reads a 404 as.
const NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
/// Tokens last about nine hours; a new one is fetched five minutes before.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Refusals of a capture that leave nothing taken and are final for this order: the
/// buyer's funding was refused (`INSTRUMENT_DECLINED`: PayPal would have the buyer
/// choose another; Malipo offers a new PayPal payment instead).
const DECLINES: [&str; 7] = [
    "INSTRUMENT_DECLINED",
    "PAYER_CANNOT_PAY",
    "TRANSACTION_REFUSED",
    "PAYER_ACCOUNT_RESTRICTED",
    "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
    "COMPLIANCE_VIOLATION",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
];

/// A PayPal REST app.
pub struct Paypal {
    base_url: String,
    client_id: String,
    client_secret: SecretString,
    webhook_id: String,
    capabilities: Capabilities,
    http: reqwest::Client,
    token: TokenCache,
    certs: webhook::CertCache,
    cert_origins: Vec<url::Origin>,
}

/// An order to create.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// Malipo's id for it (the attempt): `custom_id`, `invoice_id` (unique per PayPal
    /// account, as PayPal requires), and the `PayPal-Request-Id`.
    pub attempt_id: &'a str,
    pub amount: Money,
    /// The merchant's booking reference (in the description the buyer sees).
    pub reference: &'a str,
    pub description: &'a str,
    /// The merchant's name, on PayPal's page.
    pub brand_name: &'a str,
    pub return_url: &'a str,
    pub cancel_url: &'a str,
}

/// A created order: its id and where the buyer approves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedOrder {
    pub id: String,
    pub approve_url: String,
}

/// A refund's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunded {
    pub id: String,
    /// `COMPLETED`, `PENDING`, `CANCELLED`, `FAILED`.
    pub status: String,
}

impl Paypal {
    /// The app at `base_url` with `[rails.paypal]`'s settings.
    pub fn new(base_url: String, config: &PaypalConfig) -> Result<Paypal, reqwest::Error> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Ok(Paypal {
            cert_origins: webhook::cert_origins(&base_url),
            capabilities: Capabilities {
                // PayPal has no country of numbers; the field is only read for phones.
                markets: config
                    .currencies()
                    .into_iter()
                    .map(|c| (c, Country::Kenya))
                    .collect(),
                whole_units: false,
                per_payment: Vec::new(),
            },
            http: http_client(Duration::from_secs(30))?,
            base_url,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            webhook_id: config.webhook_id.clone(),
            token: TokenCache::default(),
            certs: webhook::CertCache::default(),
        })
    }

    /// The API's origin.
    pub fn origin(&self) -> String {
        origin_of(&self.base_url)
    }

    /// The origin of PayPal's buyer pages, where the shopper approves: `www.paypal.com`
    /// beside `api-m.paypal.com` (and the sandbox's likewise); any other API (the
    /// sandbox PayPal) serves them itself. The page's CSP lets the pay form go there,
    /// and Malipo sends shoppers to no other approval link.
    pub fn approve_origin(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.base_url) else {
            return self.base_url.clone();
        };
        if let Some(rest) = url
            .host_str()
            .and_then(|h| h.strip_prefix("api-m."))
            .map(str::to_owned)
        {
            let _ = url.set_host(Some(&format!("www.{rest}")));
        }
        url.origin().ascii_serialization()
    }

    async fn access_token(&self) -> Result<String, ConnectorError> {
        self.token
            .get(TOKEN_MARGIN, || async {
                let res = self
                    .http
                    .post(format!("{}/v1/oauth2/token", self.base_url))
                    .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .map_err(unreachable(RAIL))?;
                let status = res.status().as_u16();
                let body = res.bytes().await.map_err(unreachable(RAIL))?;
                if status == 401 {
                    return Err(ConnectorError::Rejected {
                        rail: RAIL,
                        code: "invalid_client".into(),
                        message: "PayPal refused the client id and secret".into(),
                    });
                }
                let v: Value =
                    serde_json::from_slice(&body).map_err(|_| unreadable_token(RAIL, status))?;
                match (v["access_token"].as_str(), v["expires_in"].as_u64()) {
                    (Some(token), Some(secs)) if status == 200 && !token.is_empty() => {
                        Ok((token.to_owned(), Duration::from_secs(secs)))
                    }
                    _ => Err(unreadable_token(RAIL, status)),
                }
            })
            .await
    }

    /// One call with the app's token (fetched again once if PayPal says it expired):
    /// the answer's JSON for a 2xx; `Rejected` with PayPal's issue for a 4xx (nothing
    /// was done); `BadResponse` for a 5xx or an unreadable answer (whether it acted is
    /// not known).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        request_id: Option<&str>,
    ) -> Result<Value, ConnectorError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .bearer_auth(&token)
                .header("accept", "application/json")
                .header("prefer", "return=representation");
            if let Some(id) = request_id {
                req = req.header("paypal-request-id", id);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let (status, bytes) = super::shared::exchange(RAIL, req).await?;
            if status == 401 && !retried {
                self.token.forget().await;
                retried = true;
                continue;
            }
            // Not found, whatever its body says (`INVALID_RESOURCE_ID`, …).
            if status == 404 {
                return Err(ConnectorError::Rejected {
                    rail: RAIL,
                    code: NOT_FOUND.into(),
                    message: "HTTP 404".into(),
                });
            }
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) => return Err(bad_response(RAIL, status, &bytes)),
            };
            return match status {
                200..=299 => Ok(value),
                400..=499 => Err(ConnectorError::Rejected {
                    rail: RAIL,
                    code: wire::issue(&value).chars().take(64).collect(),
                    message: value["message"].as_str().map_or_else(
                        || format!("HTTP {status}"),
                        |m| m.chars().take(200).collect(),
                    ),
                }),
                _ => Err(bad_response(RAIL, status, &bytes)),
            };
        }
    }

    /// Creates the order (the same attempt always gets the same order back: its id is
    /// the `PayPal-Request-Id`) and returns where the buyer approves it — only ever a
    /// link on PayPal's buyer origin.
    pub async fn create_order(&self, order: &NewOrder<'_>) -> Result<CreatedOrder, ConnectorError> {
        let body = json!({
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": "default",
                "custom_id": order.attempt_id,
                "invoice_id": order.attempt_id,
                "description": format!("{} ({})", order.description, order.reference)
                    .chars()
                    .take(127)
                    .collect::<String>(),
                "amount": {
                    "currency_code": order.amount.currency().code(),
                    "value": decimal(order.amount),
                },
            }],
            "payment_source": {"paypal": {"experience_context": {
                "brand_name": order.brand_name.chars().take(127).collect::<String>(),
                "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING",
                "return_url": order.return_url,
                "cancel_url": order.cancel_url,
            }}},
        });
        let v = self
            .call(
                reqwest::Method::POST,
                "/v2/checkout/orders",
                Some(&body),
                Some(order.attempt_id),
            )
            .await?;
        let id = v["id"]
            .as_str()
            .filter(|id| valid_id(id))
            .ok_or_else(|| bad_response(RAIL, 201, b"no order id"))?;
        // Only ever a link on PayPal's buyer origin, as parsed (never the raw text).
        let approve = wire::approve_link(&v)
            .and_then(|href| url::Url::parse(href).ok())
            .filter(|u| u.origin().ascii_serialization() == self.approve_origin())
            .ok_or_else(|| bad_response(RAIL, 201, b"no approval link on PayPal's origin"))?;
        Ok(CreatedOrder {
            id: id.to_owned(),
            approve_url: approve.to_string(),
        })
    }

    /// The order as PayPal has it; `None` if PayPal does not know it.
    pub async fn order(&self, id: &str) -> Result<Option<Value>, ConnectorError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match self
            .call(
                reqwest::Method::GET,
                &format!("/v2/checkout/orders/{id}"),
                None,
                None,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(ConnectorError::Rejected { code, .. }) if code == NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Captures an approved order: the same request id every time, so PayPal takes the
    /// money once however often it is asked.
    pub async fn capture(&self, id: &str) -> Result<Value, ConnectorError> {
        self.call(
            reqwest::Method::POST,
            &format!("/v2/checkout/orders/{id}/capture"),
            Some(&json!({})),
            Some(&format!("capture-{id}")),
        )
        .await
    }

    /// Refunds `amount` (all of it: `None`) of capture `capture_id`. `request_id` is the
    /// refund's own idempotency key.
    pub async fn refund(
        &self,
        capture_id: &str,
        amount: Option<Money>,
        request_id: &str,
    ) -> Result<Refunded, ConnectorError> {
        let body = amount.map_or_else(
            || json!({}),
            |a| json!({"amount": {"value": decimal(a), "currency_code": a.currency().code()}}),
        );
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/v2/payments/captures/{capture_id}/refund"),
                Some(&body),
                Some(request_id),
            )
            .await?;
        Ok(Refunded {
            id: v["id"].as_str().unwrap_or_default().to_owned(),
            status: v["status"].as_str().unwrap_or("UNKNOWN").to_owned(),
        })
    }

    /// Where order `id` stands (`None`: PayPal does not know it). Never takes money.
    pub async fn order_state(&self, id: &str) -> Result<Option<OrderState>, ConnectorError> {
        Ok(self.order(id).await?.map(|v| wire::order_state(&v)))
    }

    /// Captures approved order `id`: where it stands after. Call it only for an attempt
    /// still open, claimed for the capture (see `Payments::paypal_query`). A refusal
    /// that leaves nothing taken reads as [`OrderState::Refused`].
    pub async fn capture_order(&self, id: &str) -> Result<OrderState, ConnectorError> {
        match self.capture(id).await {
            Ok(v) => Ok(wire::order_state(&v)),
            Err(ConnectorError::Rejected { code, .. }) if DECLINES.contains(&code.as_str()) => {
                tracing::info!(%code, "PayPal declined the capture");
                Ok(OrderState::Refused(code))
            }
            // Captured meanwhile (another path asked), or refused for a reason we do not
            // know: the order says what happened.
            Err(ConnectorError::Rejected { code, .. }) => {
                tracing::warn!(%code, "PayPal refused the capture; reading the order");
                Ok(self
                    .order_state(id)
                    .await?
                    .unwrap_or(OrderState::Unknown(code)))
            }
            Err(e) => Err(e),
        }
    }

    /// What `state` means for an attempt of `asked` that began at `started_at`: paid
    /// only on a completed capture of exactly the amount asked. An approved order not
    /// yet captured is pending (taking it is the engine's decision).
    pub fn verdict(
        state: Option<OrderState>,
        asked: Money,
        started_at: i64,
        now_ms: i64,
    ) -> Queried {
        let unapproved = || {
            if now_ms - started_at > APPROVAL_WINDOW_MS {
                RailOutcome::Expired {
                    code: FailureCode::Expired,
                }
                .into()
            } else {
                RailOutcome::Pending.into()
            }
        };
        let Some(state) = state else {
            tracing::warn!("PayPal does not know the order");
            return unapproved();
        };
        match state {
            OrderState::Captured(capture) => match capture.status {
                CaptureStatus::Completed if capture.amount == Some(asked) => Queried {
                    outcome: RailOutcome::Succeeded,
                    receipt: Some(capture.id),
                },
                CaptureStatus::Completed => RailOutcome::Unknown {
                    raw: format!("captured {:?} of {asked}", capture.amount),
                }
                .into(),
                CaptureStatus::Pending => {
                    tracing::info!(reason = ?capture.reason, "PayPal capture pending");
                    RailOutcome::Pending.into()
                }
                CaptureStatus::Declined => RailOutcome::Failed {
                    code: FailureCode::PaymentDeclined,
                }
                .into(),
                CaptureStatus::Other(raw) => RailOutcome::Unknown {
                    raw: format!("capture {raw}"),
                }
                .into(),
            },
            OrderState::Refused(_) => RailOutcome::Failed {
                code: FailureCode::PaymentDeclined,
            }
            .into(),
            OrderState::Approved => RailOutcome::Pending.into(),
            OrderState::AwaitingBuyer => unapproved(),
            OrderState::Voided => RailOutcome::Expired {
                code: FailureCode::Expired,
            }
            .into(),
            OrderState::Unknown(raw) => RailOutcome::Unknown { raw }.into(),
        }
    }

    /// Whether order `id` may still be approved by its buyer (not approved, captured or
    /// voided): a shopper who went back to choose another way to pay has left it.
    pub async fn awaiting_buyer(&self, id: &str) -> Result<bool, ConnectorError> {
        Ok(self
            .order(id)
            .await?
            .is_some_and(|o| wire::order_state(&o) == OrderState::AwaitingBuyer))
    }

    /// A webhook event, verified against PayPal's signature: the event's JSON.
    pub async fn verify_event(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Value, webhook::Unverified> {
        let t = webhook::Transmission::from_headers(headers)?;
        let url = webhook::allowed_cert_url(t.cert_url, &self.cert_origins)
            .ok_or(webhook::Unverified::CertUrl)?;
        let cert = self.certs.get(&self.http, &url).await?;
        let text = webhook::signed_text(t.id, t.time, &self.webhook_id, body);
        cert.verify(text.as_bytes(), &t.signature, crate::time::now_ms() / 1000)?;
        serde_json::from_slice(body).map_err(|_| webhook::Unverified::Headers)
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// A PayPal id as it appears in paths: short and alphanumeric.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Connector for Paypal {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn portal_request_id(&self, body: &[u8]) -> Option<String> {
        let event: serde_json::Value = serde_json::from_slice(body).ok()?;
        wire::event_order_id(&event).map(str::to_owned)
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn paypal(&self) -> Option<&Paypal> {
        Some(self)
    }

    fn refunds(&self) -> bool {
        true
    }

    /// Refunds the payment's capture (its receipt), `PayPal-Request-Id` the refund id.
    fn refund<'a>(
        &'a self,
        req: super::RefundRequest<'a>,
    ) -> BoxFuture<'a, Result<super::RefundAnswer, ConnectorError>> {
        Box::pin(async move {
            let capture = req.receipt.ok_or_else(|| ConnectorError::Rejected {
                rail: RAIL,
                code: "no_capture".into(),
                message: "the payment has no capture".into(),
            })?;
            // Always the amount: Malipo's record, not whatever the capture has left.
            let refunded = self
                .refund(capture, Some(req.amount), req.refund_id)
                .await?;
            let id = Some(refunded.id).filter(|id| !id.is_empty());
            Ok(match refunded.status.as_str() {
                "COMPLETED" => super::RefundAnswer::Done {
                    operator_refund_id: id,
                },
                "CANCELLED" | "FAILED" => super::RefundAnswer::Refused {
                    code: refunded.status,
                },
                _ => super::RefundAnswer::Accepted {
                    operator_refund_id: id,
                },
            })
        })
    }

    /// PayPal is not pushed: see `Payments::start_paypal`.
    fn initiate<'a>(
        &'a self,
        _req: InitiateRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected {
                rail: RAIL,
                code: "not_a_push".into(),
                message: "PayPal is paid on PayPal's pages".into(),
            })
        })
    }

    /// How the order stands. Never captures: the engine does, for an attempt still
    /// open that it claimed (`Payments::paypal_query`), so no money is taken for an
    /// attempt closed meanwhile.
    fn query<'a>(
        &'a self,
        req: QueryRequest<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>> {
        Box::pin(async move {
            let state = self.order_state(req.operator_request_id).await?;
            Ok(Paypal::verdict(state, req.amount, req.started_at, now_ms))
        })
    }

    /// PayPal's events come to the portal URL (`/callbacks/paypal`): see
    /// [`Connector::portal_callback`].
    fn parse_callback(&self, _body: &[u8]) -> Result<CallbackReport, BadCallback> {
        Err(BadCallback)
    }

    /// A webhook event, once its signature is verified: the order it is about, which the
    /// engine then asks PayPal about (and captures, if approved). An event is a cue,
    /// never a verdict.
    fn portal_callback<'a>(
        &'a self,
        _key: Option<&'a str>,
        headers: &'a axum::http::HeaderMap,
        body: &'a [u8],
    ) -> BoxFuture<'a, Option<Result<String, BadCallback>>> {
        Box::pin(async move {
            let event = match self.verify_event(headers, body).await {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "PayPal webhook not verified");
                    return Some(Err(BadCallback));
                }
            };
            tracing::info!(
                event_type = event["event_type"].as_str().unwrap_or("?"),
                "PayPal webhook verified"
            );
            Some(
                wire::event_order_id(&event)
                    .map(str::to_owned)
                    .ok_or(BadCallback),
            )
        })
    }

    fn success_marker(&self) -> Option<&'static str> {
        // Events are never applied, only a cue to ask: nothing to re-drive.
        None
    }

    fn answers_within_ms(&self) -> i64 {
        APPROVAL_WINDOW_MS
    }

    fn callback_ack(&self, accepted: bool, _body: &[u8]) -> (u16, String) {
        (if accepted { 200 } else { 400 }, String::new())
    }
}
