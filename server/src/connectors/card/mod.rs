//! Cards through a Mastercard Gateway (MPGS) processor — the API East African acquiring
//! banks hand their merchants — with the card typed only into the processor's own frames
//! (Hosted Session) or its own page (Hosted Checkout). Malipo holds an opaque session id
//! and never a card number.
//!
//! - [`Mpgs::create_session`]: a session for the page's `session.js` and frames.
//! - [`Mpgs::initiate_checkout`]: a Hosted Checkout session, for shoppers without
//!   JavaScript, and the page to send them to.
//! - [`Mpgs::initiate_authentication`], [`Mpgs::authenticate_payer`]: 3-D Secure, with
//!   the issuer's challenge to send the shopper to when there is one.
//! - [`Mpgs::pay`], [`Mpgs::authorize`], [`Mpgs::capture`], [`Mpgs::refund`],
//!   [`Mpgs::void`], [`Mpgs::order`].
//!
//! Every transaction has an id we choose (`PUT order/{order}/transaction/{id}`), so a
//! request whose answer is lost is sent again as the same transaction, and the order can
//! always be asked how it stands.

pub mod config;
pub mod wire;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::time::Duration;

use super::{
    BadCallback, BoxFuture, CallbackReport, Capabilities, Connector, ConnectorError,
    InitiateRequest, Initiated, Queried, QueryRequest, RailId, RailOutcome,
};
use crate::domain::{Money, phone::Country};

/// The API version spoken.
pub const API_VERSION: &str = "73";

/// How long a card payment may still be finished on the processor's pages after it
/// began (its session's life); then an order nobody paid is given up.
pub const CARD_WINDOW_MS: i64 = 60 * 60_000;

/// A card processor speaking MPGS's REST API.
#[derive(Clone)]
pub struct Mpgs {
    capabilities: Capabilities,
    http: reqwest::Client,
    /// `https://ap-gateway.mastercard.com` (or a bank's host; the sandbox's origin).
    base_url: String,
    merchant_id: String,
    api_password: SecretString,
}

/// A Hosted Checkout session: the page to send the shopper to, and the indicator the
/// return must carry on success.
#[derive(Debug, Clone)]
pub struct HostedCheckout {
    pub session_id: String,
    pub success_indicator: String,
    pub pay_url: String,
}

/// What 3-D Secure said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// `transaction.authenticationStatus`: `AUTHENTICATION_SUCCESSFUL`, `…_PENDING`, …
    pub status: String,
    /// The issuer's page the shopper must pass, when there is one.
    pub challenge: Option<Challenge>,
}

/// The issuer's challenge: POST `creq` to `acs_url` from the shopper's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub acs_url: String,
    pub creq: String,
}

impl Authentication {
    /// Whether a payment may go ahead on it.
    pub fn passed(&self) -> bool {
        authentication_passed(&self.status)
    }
}

/// Whether a payment may go ahead on an `authenticationStatus`: passed, attempted (the
/// issuer takes the liability), or the card takes no 3-D Secure.
pub fn authentication_passed(status: &str) -> bool {
    matches!(
        status,
        "AUTHENTICATION_SUCCESSFUL" | "AUTHENTICATION_ATTEMPTED" | "AUTHENTICATION_UNAVAILABLE"
    )
}

/// What a payment (or an order's latest payment) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charged {
    pub outcome: RailOutcome,
    /// `response.gatewayCode`, for the record.
    pub gateway_code: String,
    /// The acquirer's receipt (RRN), on success.
    pub receipt: Option<String>,
    /// The card: brand and last four digits, all Malipo ever shows.
    pub card: Option<CardSummary>,
}

/// A card as far as Malipo may know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSummary {
    /// `VISA`, `MASTERCARD`, …
    pub brand: String,
    pub last4: String,
}

impl CardSummary {
    /// `Visa ···· 4242`.
    pub fn label(&self) -> String {
        let brand = match self.brand.as_str() {
            "VISA" => "Visa",
            "MASTERCARD" => "Mastercard",
            "AMEX" => "American Express",
            "JCB" => "JCB",
            "DINERS_CLUB" => "Diners Club",
            "DISCOVER" => "Discover",
            "UNIONPAY" => "UnionPay",
            _ => "Card",
        };
        format!("{brand} ···· {}", self.last4)
    }

    fn from_answer(v: &Value) -> Option<CardSummary> {
        let card = &v["sourceOfFunds"]["provided"]["card"];
        let number = card["number"].as_str()?;
        let last4: String = number
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        (last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())).then(|| CardSummary {
            brand: card["brand"].as_str().unwrap_or("UNKNOWN").to_owned(),
            last4,
        })
    }
}

/// An order as the processor keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    /// `CAPTURED`, `AUTHORIZED`, `FAILED`, `REFUNDED`, `PARTIALLY_REFUNDED`,
    /// `CANCELLED`, `AUTHENTICATION_INITIATED`, …
    pub status: String,
    pub captured: Option<Money>,
    pub refunded: Option<Money>,
    /// The latest payment on it, if any.
    pub latest: Option<Charged>,
    /// Whether a payment or authorisation was ever sent on it (else nothing can have
    /// been charged).
    pub payments_tried: bool,
    /// Each authentication transaction's `authenticationStatus`, by transaction id.
    pub authentications: std::collections::BTreeMap<String, String>,
}

impl OrderState {
    /// The `authenticationStatus` of authentication transaction `txn`, if it has one.
    pub fn authentication(&self, txn: &str) -> Option<&str> {
        self.authentications.get(txn).map(String::as_str)
    }
}

impl Mpgs {
    /// The processor at `base_url` with `[rails.card]`'s settings.
    pub fn from_config(
        base_url: String,
        config: &config::CardConfig,
    ) -> Result<Mpgs, reqwest::Error> {
        let mut mpgs = Mpgs::new(
            base_url,
            config.merchant_id.clone(),
            config.api_password.clone(),
        )?;
        mpgs.capabilities.markets = config
            .currencies()
            .into_iter()
            // Cards have no country of numbers; the field is only read for phones.
            .map(|c| (c, Country::Kenya))
            .collect();
        Ok(mpgs)
    }

    pub fn new(
        base_url: String,
        merchant_id: String,
        api_password: SecretString,
    ) -> Result<Mpgs, reqwest::Error> {
        Ok(Mpgs {
            capabilities: Capabilities {
                markets: vec![(crate::domain::money::Currency::Kes, Country::Kenya)],
                whole_units: false,
                per_payment: Vec::new(),
            },
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            merchant_id,
            api_password,
        })
    }

    /// The browser script the page loads: `…/form/version/73/merchant/{id}/session.js`.
    pub fn session_js_url(&self) -> String {
        format!(
            "{}/form/version/{API_VERSION}/merchant/{}/session.js",
            self.base_url, self.merchant_id
        )
    }

    /// The processor's origin (`scheme://host[:port]`), for the page's CSP.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.base_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.base_url.clone())
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/rest/version/{API_VERSION}/merchant/{}/{path}",
            self.base_url, self.merchant_id
        )
    }

    /// One call: the answer's JSON when the processor took it; `Rejected` with its
    /// `error.cause` when it refused it; `Unreachable` when no answer came.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ConnectorError> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth(
                format!("merchant.{}", self.merchant_id),
                Some(self.api_password.expose_secret()),
            )
            .header("accept", "application/json");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.map_err(|e| ConnectorError::Unreachable {
            rail: RailId::Card,
            source: e.without_url(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ConnectorError::Unreachable {
                rail: RailId::Card,
                source: e.without_url(),
            })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|_| ConnectorError::BadResponse {
                rail: RailId::Card,
                status,
                body: text.chars().take(200).collect(),
            })?;
        // The processor busy or failing: whether it acted is not known (a payment may
        // have gone through), so never a refusal.
        let cause = value["error"]["cause"].as_str().unwrap_or_default();
        if status >= 500 || matches!(cause, "SERVER_BUSY" | "SERVER_FAILED") {
            return Err(ConnectorError::BadResponse {
                rail: RailId::Card,
                status,
                body: format!(
                    "{cause} {}",
                    value["error"]["explanation"].as_str().unwrap_or_default()
                )
                .chars()
                .take(200)
                .collect(),
            });
        }
        if value["result"] == "ERROR" || !(200..300).contains(&status) {
            return Err(ConnectorError::Rejected {
                rail: RailId::Card,
                code: value["error"]["cause"]
                    .as_str()
                    .unwrap_or("HTTP")
                    .to_owned(),
                message: value["error"]["explanation"].as_str().map_or_else(
                    || format!("HTTP {status}"),
                    |s| s.chars().take(200).collect(),
                ),
            });
        }
        Ok(value)
    }

    async fn transaction(
        &self,
        order: &str,
        txn: &str,
        body: Value,
    ) -> Result<Value, ConnectorError> {
        self.call(
            reqwest::Method::PUT,
            &format!("order/{order}/transaction/{txn}"),
            Some(body),
        )
        .await
    }

    /// A new session for the hosted fields.
    pub async fn create_session(&self) -> Result<String, ConnectorError> {
        let v = self
            .call(reqwest::Method::POST, "session", Some(json!({})))
            .await?;
        session_id(&v)
    }

    /// A Hosted Checkout session for `order` (a purchase of `amount`), returning to
    /// `return_url`.
    pub async fn initiate_checkout(
        &self,
        order: &str,
        amount: Money,
        description: &str,
        merchant_name: &str,
        return_url: &str,
    ) -> Result<HostedCheckout, ConnectorError> {
        let v = self
            .call(
                reqwest::Method::POST,
                "session",
                Some(json!({
                    "apiOperation": "INITIATE_CHECKOUT",
                    "interaction": {"operation": "PURCHASE", "returnUrl": return_url,
                        "merchant": {"name": merchant_name}},
                    "order": {"id": order, "amount": wire::decimal(amount),
                        "currency": amount.currency().code(), "description": description},
                })),
            )
            .await?;
        let session_id = session_id(&v)?;
        Ok(HostedCheckout {
            pay_url: format!("{}/checkout/pay/{session_id}", self.base_url),
            success_indicator: v["successIndicator"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            session_id,
        })
    }

    /// Starts 3-D Secure for the card in `session`.
    pub async fn initiate_authentication(
        &self,
        order: &str,
        txn: &str,
        session: &str,
        amount: Money,
    ) -> Result<Authentication, ConnectorError> {
        let v = self
            .transaction(
                order,
                txn,
                json!({"apiOperation": "INITIATE_AUTHENTICATION", "session": {"id": session},
                    "order": {"currency": amount.currency().code()},
                    "authentication": {"acceptVersions": "3DS2", "channel": "PAYER_BROWSER",
                        "purpose": "PAYMENT_TRANSACTION"}}),
            )
            .await?;
        Ok(authentication(&v))
    }

    /// Authenticates the payer; the issuer's page to send them to if it challenges.
    pub async fn authenticate_payer(
        &self,
        order: &str,
        txn: &str,
        session: &str,
        amount: Money,
        redirect_response_url: &str,
    ) -> Result<Authentication, ConnectorError> {
        let v = self
            .transaction(
                order,
                txn,
                json!({"apiOperation": "AUTHENTICATE_PAYER", "session": {"id": session},
                    "order": {"amount": wire::decimal(amount), "currency": amount.currency().code()},
                    "authentication": {"redirectResponseUrl": redirect_response_url},
                    "device": {"browser": "MOZILLA", "browserDetails": {"3DSecureChallengeWindowSize": "FULL_SCREEN"}}}),
            )
            .await?;
        Ok(authentication(&v))
    }

    /// Pays `amount` with the card in `session` (after the authentication `auth_txn`).
    pub async fn pay(
        &self,
        order: &str,
        txn: &str,
        session: &str,
        amount: Money,
        auth_txn: Option<&str>,
    ) -> Result<Charged, ConnectorError> {
        self.charge("PAY", order, txn, session, amount, auth_txn)
            .await
    }

    /// Authorises `amount` only (to [`Mpgs::capture`] later).
    pub async fn authorize(
        &self,
        order: &str,
        txn: &str,
        session: &str,
        amount: Money,
        auth_txn: Option<&str>,
    ) -> Result<Charged, ConnectorError> {
        self.charge("AUTHORIZE", order, txn, session, amount, auth_txn)
            .await
    }

    async fn charge(
        &self,
        op: &str,
        order: &str,
        txn: &str,
        session: &str,
        amount: Money,
        auth_txn: Option<&str>,
    ) -> Result<Charged, ConnectorError> {
        let mut body = json!({"apiOperation": op, "session": {"id": session},
            "order": {"amount": wire::decimal(amount), "currency": amount.currency().code()},
            "sourceOfFunds": {"type": "CARD"}, "transaction": {"source": "INTERNET"}});
        if let Some(auth) = auth_txn {
            body["authentication"] = json!({"transactionId": auth});
        }
        let v = self.transaction(order, txn, body).await?;
        Ok(charged(&v))
    }

    /// Captures `amount` of an authorisation.
    pub async fn capture(
        &self,
        order: &str,
        txn: &str,
        amount: Money,
    ) -> Result<Charged, ConnectorError> {
        self.money_op("CAPTURE", order, txn, amount).await
    }

    /// Refunds `amount` (all or part of what was captured).
    pub async fn refund(
        &self,
        order: &str,
        txn: &str,
        amount: Money,
    ) -> Result<Charged, ConnectorError> {
        self.money_op("REFUND", order, txn, amount).await
    }

    async fn money_op(
        &self,
        op: &str,
        order: &str,
        txn: &str,
        amount: Money,
    ) -> Result<Charged, ConnectorError> {
        let v = self
            .transaction(
                order,
                txn,
                json!({"apiOperation": op, "transaction": {"amount": wire::decimal(amount),
                    "currency": amount.currency().code()}}),
            )
            .await?;
        Ok(charged(&v))
    }

    /// Voids transaction `target` of the order (an authorisation, or a payment not yet
    /// settled).
    pub async fn void(
        &self,
        order: &str,
        txn: &str,
        target: &str,
    ) -> Result<Charged, ConnectorError> {
        let v = self
            .transaction(
                order,
                txn,
                json!({"apiOperation": "VOID", "transaction": {"targetTransactionId": target}}),
            )
            .await?;
        Ok(charged(&v))
    }

    /// How the order stands (the status query: never pays, only asks); `None`: the
    /// processor has no such order (nothing was ever charged on it).
    pub async fn order(&self, order: &str) -> Result<Option<OrderState>, ConnectorError> {
        let v = match self
            .call(reqwest::Method::GET, &format!("order/{order}"), None)
            .await
        {
            Ok(v) => v,
            Err(ConnectorError::Rejected { code, message, .. })
                if code == "NOT_FOUND"
                    || (code == "INVALID_REQUEST" && message.contains("no such order")) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // Money moves on a payment (an authorisation alone takes none).
        let latest = v["transaction"].as_array().and_then(|txns| {
            txns.iter()
                .rev()
                .find(|t| t["transaction"]["type"] == "PAYMENT")
                .map(charged)
        });
        let payments_tried = v["transaction"].as_array().is_some_and(|txns| {
            txns.iter().any(|t| {
                matches!(
                    t["transaction"]["type"].as_str(),
                    Some("PAYMENT" | "AUTHORIZATION")
                )
            })
        });
        let authentications = v["transaction"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["transaction"]["id"].as_str()?.to_owned(),
                    t["transaction"]["authenticationStatus"]
                        .as_str()?
                        .to_owned(),
                ))
            })
            .collect();
        Ok(Some(OrderState {
            payments_tried,
            authentications,
            status: v["status"].as_str().unwrap_or_default().to_owned(),
            captured: wire::money(&v["totalCapturedAmount"], &v["currency"]),
            refunded: wire::money(&v["totalRefundedAmount"], &v["currency"]),
            latest,
        }))
    }
}

impl Connector for Mpgs {
    fn rail(&self) -> RailId {
        RailId::Card
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn card_processor(&self) -> Option<&Mpgs> {
        Some(self)
    }

    fn refunds(&self) -> bool {
        true
    }

    /// `REFUND` on the payment's order, as transaction `re_…` (sent again, the same).
    fn refund<'a>(
        &'a self,
        req: super::RefundRequest<'a>,
    ) -> BoxFuture<'a, Result<super::RefundAnswer, ConnectorError>> {
        Box::pin(async move {
            let order = req
                .operator_request_id
                .ok_or_else(|| ConnectorError::Rejected {
                    rail: RailId::Card,
                    code: "no_order".into(),
                    message: "the payment has no order".into(),
                })?;
            let charged = self.refund(order, req.refund_id, req.amount).await?;
            Ok(match charged.outcome {
                RailOutcome::Succeeded => super::RefundAnswer::Done {
                    operator_refund_id: Some(req.refund_id.to_owned()),
                },
                RailOutcome::Pending | RailOutcome::Unknown { .. } => {
                    super::RefundAnswer::Accepted {
                        operator_refund_id: Some(req.refund_id.to_owned()),
                    }
                }
                _ => super::RefundAnswer::Refused {
                    code: charged.gateway_code,
                },
            })
        })
    }

    /// Cards are not pushed: see `Payments::start_card`.
    fn initiate<'a>(
        &'a self,
        _req: InitiateRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected {
                rail: RailId::Card,
                code: "not_a_push".into(),
                message: "cards are paid on the processor's pages".into(),
            })
        })
    }

    /// How the order stands: its latest payment's outcome. No payment yet: pending while
    /// the shopper may still pay on the processor's pages, then expired (nothing was
    /// charged). The query never pays.
    fn query<'a>(
        &'a self,
        req: QueryRequest<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>> {
        Box::pin(async move {
            // Unreadable: an error, so the poller asks again (never "no order").
            let order = self.order(req.operator_request_id).await?;
            let tried = order.as_ref().is_some_and(|o| o.payments_tried);
            let captured = order.as_ref().and_then(|o| o.captured);
            Ok(match order.and_then(|o| o.latest) {
                // Paid: only for the whole amount asked, in its currency.
                Some(charged) if charged.outcome == RailOutcome::Succeeded => {
                    if captured.is_some_and(|c| {
                        c.minor() >= req.amount.minor() && c.currency() == req.amount.currency()
                    }) {
                        Queried {
                            outcome: RailOutcome::Succeeded,
                            receipt: charged.receipt,
                        }
                    } else {
                        RailOutcome::Unknown {
                            raw: format!("APPROVED with {captured:?} captured of {}", req.amount),
                        }
                        .into()
                    }
                }
                Some(charged) if charged.outcome != RailOutcome::Pending => Queried {
                    outcome: charged.outcome,
                    receipt: None,
                },
                // No payment ever sent, and the processor's session is over: nothing
                // was charged, and nothing can be now.
                _ if !tried && now_ms - req.started_at > CARD_WINDOW_MS => RailOutcome::Expired {
                    code: super::FailureCode::Expired,
                }
                .into(),
                // A payment still processing is never given up: it stays open (and goes
                // to reconciliation if it never ends).
                _ => RailOutcome::Pending.into(),
            })
        })
    }

    /// The processor sends no callbacks Malipo reads: the shopper's return and the
    /// order's status decide.
    fn parse_callback(&self, _body: &[u8]) -> Result<CallbackReport, BadCallback> {
        Err(BadCallback)
    }

    fn success_marker(&self) -> Option<&'static str> {
        None
    }

    fn answers_within_ms(&self) -> i64 {
        CARD_WINDOW_MS
    }

    fn callback_ack(&self, accepted: bool, _body: &[u8]) -> (u16, String) {
        (if accepted { 200 } else { 400 }, String::new())
    }
}

fn session_id(v: &Value) -> Result<String, ConnectorError> {
    v["session"]["id"]
        .as_str()
        .filter(|id| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(str::to_owned)
        .ok_or_else(|| ConnectorError::BadResponse {
            rail: RailId::Card,
            status: 200,
            body: "no session.id".into(),
        })
}

fn authentication(v: &Value) -> Authentication {
    let html = &v["authentication"]["redirect"]["customizedHtml"]["3ds2"];
    Authentication {
        status: v["transaction"]["authenticationStatus"]
            .as_str()
            .unwrap_or("AUTHENTICATION_FAILED")
            .to_owned(),
        challenge: match (html["acsUrl"].as_str(), html["cReq"].as_str()) {
            (Some(acs_url), Some(creq)) if acs_url.starts_with("http") => Some(Challenge {
                acs_url: acs_url.to_owned(),
                creq: creq.to_owned(),
            }),
            _ => None,
        },
    }
}

fn charged(v: &Value) -> Charged {
    let gateway_code = v["response"]["gatewayCode"]
        .as_str()
        .unwrap_or("UNKNOWN")
        .to_owned();
    let outcome = wire::outcome(&gateway_code);
    Charged {
        receipt: (outcome == RailOutcome::Succeeded)
            .then(|| v["transaction"]["receipt"].as_str().map(str::to_owned))
            .flatten(),
        card: CardSummary::from_answer(v),
        outcome,
        gateway_code,
    }
}
