//! The objects merchants see: in API responses and inside webhook events. One typed
//! struct per object, so the API, the events and the OpenAPI document cannot disagree.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::{
    domain::{Mode, phone::mask},
    store::{AttemptRecord, AttemptStatus, PaymentStatus, SessionRecord, SessionStatus},
};

/// The kinds of event Malipo sends. Refund events will join when refunds do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The session is paid: the booking can be confirmed.
    CheckoutSessionCompleted,
    /// The session ran out of time (or the merchant expired it) unpaid.
    CheckoutSessionExpired,
    /// One payment attempt brought the money in.
    PaymentSucceeded,
    /// One payment attempt failed, was cancelled or timed out; the shopper may retry.
    PaymentFailed,
    /// A payment attempt brought money in for a session another attempt had already
    /// paid: the shopper paid twice and the merchant must refund this one.
    PaymentDuplicate,
    /// We could not learn a payment attempt's outcome, even by asking the operator for
    /// a while: the shopper may have paid. Left for reconciliation; a later
    /// `payment.succeeded` or `payment.failed` settles it.
    PaymentUnknown,
    /// A pay request was refused by an abuse limit (too many prompts to one number,
    /// too many tries on one session, too many requests from one address).
    PaymentRefused,
    /// A refund went through: the operator returned the money to the payer.
    RefundSucceeded,
    /// A refund was refused by the operator: nothing was returned.
    RefundFailed,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::CheckoutSessionCompleted,
        EventType::CheckoutSessionExpired,
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::PaymentDuplicate,
        EventType::PaymentUnknown,
        EventType::PaymentRefused,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CheckoutSessionCompleted => "checkout.session.completed",
            EventType::CheckoutSessionExpired => "checkout.session.expired",
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentDuplicate => "payment.duplicate",
            EventType::PaymentUnknown => "payment.unknown",
            EventType::PaymentRefused => "payment.refused",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::RefundFailed => "refund.failed",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The shopper, as the merchant gave them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Customer {
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// `checkout.session`: what the shopper is asked to pay, and whether they have.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CheckoutSessionObject {
    /// `cs_…`
    pub id: String,
    /// Always `checkout.session`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// The hosted payment page.
    pub url: String,
    /// `open`, `complete` or `expired`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// `unpaid` or `paid`.
    #[schema(value_type = String)]
    pub payment_status: &'static str,
    /// In minor units of `currency`.
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: &'static str,
    pub reference: String,
    pub description: String,
    pub success_url: String,
    pub cancel_url: String,
    pub customer: Option<Customer>,
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
    /// The rails it may be paid with, fixed when it was made (its own list narrowed to
    /// the account's); `null`: every rail that takes its currency and amount.
    #[schema(value_type = Option<Vec<crate::api::openapi::PaymentMethodType>>)]
    pub payment_method_types: Option<Vec<&'static str>>,
    /// The trip's services, as sent (empty when none).
    pub line_items: Vec<crate::domain::travel::LineItem>,
    /// Who travels, as sent.
    pub travelers: Option<crate::domain::travel::Travelers>,
    /// What its payments have brought so far, in `currency`'s minor units: the price
    /// once paid in one payment, less while paid in parts (each part is a `payment`
    /// with its own `payment.succeeded`), more when overpaid.
    pub amount_received: i64,
    /// The payment that paid it (with its rail, receipt and, when the rail charged
    /// another currency, the quote); `null` while unpaid.
    pub payment: Option<PaymentObject>,
}

impl CheckoutSessionObject {
    /// With the payment that paid it, if any.
    pub fn with_payment(mut self, paid_by: Option<&AttemptRecord>) -> Self {
        let mode = if self.livemode {
            Mode::Live
        } else {
            Mode::Test
        };
        let travel = crate::domain::travel::Travel {
            line_items: self.line_items.clone(),
            travelers: self.travelers.clone(),
        }
        .non_empty();
        let price = self.amount;
        self.payment = paid_by.map(|a| {
            PaymentObject::new(a, mode)
                .with_price(a, price)
                .with_travel(travel)
        });
        self
    }

    /// The session as merchants see it, `now` in unix ms. A session past its expiry
    /// reads as expired even before the sweeper has marked it.
    pub fn new(public_url: &str, s: &SessionRecord, now: i64) -> Self {
        let status = match s.status {
            SessionStatus::Open if s.expires_at <= now => "expired",
            other => other.as_str(),
        };
        CheckoutSessionObject {
            id: s.id.to_string(),
            object: "checkout.session",
            url: format!("{public_url}/pay/{}", s.id),
            status,
            payment_status: match s.payment_status {
                PaymentStatus::Paid => "paid",
                PaymentStatus::Unpaid => "unpaid",
            },
            amount: s.amount.minor(),
            currency: s.amount.currency().code(),
            reference: s.reference.clone(),
            description: s.description.clone(),
            success_url: s.success_url.clone(),
            cancel_url: s.cancel_url.clone(),
            customer: (s.customer_phone.is_some() || s.customer_email.is_some()).then(|| {
                Customer {
                    phone: s.customer_phone.clone(),
                    email: s.customer_email.clone(),
                }
            }),
            metadata: s.metadata.clone(),
            expires_at: s.expires_at / 1000,
            created: s.created_at / 1000,
            livemode: s.mode == Mode::Live,
            payment_method_types: s
                .payment_method_types
                .as_ref()
                .map(|list| list.iter().map(|r| r.as_str()).collect()),
            line_items: s
                .travel
                .as_ref()
                .map(|t| t.line_items.clone())
                .unwrap_or_default(),
            travelers: s.travel.as_ref().and_then(|t| t.travelers.clone()),
            amount_received: s.received_minor,
            payment: None,
        }
    }
}

/// `payment`: one attempt at paying a session on one rail.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PaymentObject {
    /// `pa_…`
    pub id: String,
    /// Always `payment`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// The `cs_…` it pays.
    pub checkout_session: String,
    /// `mpesa`, …
    pub rail: String,
    /// `pending`, `unknown` (the outcome could not be learned yet: the shopper may have
    /// paid), `succeeded`, `failed`, `cancelled` or `expired`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: &'static str,
    /// The payer's number, masked (`2547•••••678`).
    pub payer: Option<String>,
    /// The operator's receipt, e.g. M-PESA's `MpesaReceiptNumber`.
    pub receipt: Option<String>,
    /// Why it did not succeed: `insufficient_funds`, `cancelled_by_user`, …
    pub failure_code: Option<String>,
    /// The operator reported this success after Malipo had given up on the attempt.
    pub late: bool,
    /// This payment paid a session that another payment had already paid: refund it.
    pub duplicate: bool,
    /// This payment paid part of the session's price (paying in parts): the session is
    /// paid once `checkout.session.completed` comes (its `amount_received` says how far
    /// it is). Fulfil on that event, not on a part's `payment.succeeded`.
    pub part: bool,
    /// What this payment brought beyond the session's price (the session's currency,
    /// minor units): owed back to the payer. `null` when none.
    pub overpaid_amount: Option<i64>,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
    /// When the rail charged another currency than the session's price: the quote it
    /// charged at (`amount` and `currency` above are then the quote's converted amount).
    pub quote: Option<QuoteObject>,
    /// For a card payment that went through: the card's brand and last four digits
    /// (all Malipo ever learns of a card).
    pub card: Option<CardObject>,
    /// The session's trip, when it has one: what this payment paid for.
    pub line_items: Vec<crate::domain::travel::LineItem>,
    pub travelers: Option<crate::domain::travel::Travelers>,
}

/// `refund`: money of a payment returned to its payer, whole or in part, on the rail it
/// was paid with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RefundObject {
    /// `re_…`
    pub id: String,
    /// Always `refund`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// The `pa_…` it returns money of.
    pub payment: String,
    /// The `cs_…` that payment paid.
    pub checkout_session: String,
    /// In the payment's currency's minor units.
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: &'static str,
    /// `pending` (sent; the operator has not confirmed), `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub reason: Option<String>,
    /// The operator's id for the refund (PayPal's refund id, the card processor's
    /// transaction id, …).
    pub receipt: Option<String>,
    /// Why it failed.
    pub failure_code: Option<String>,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
}

impl RefundObject {
    pub fn new(r: &crate::store::RefundRecord, livemode: bool) -> RefundObject {
        RefundObject {
            id: r.id.to_string(),
            object: "refund",
            payment: r.attempt_id.to_string(),
            checkout_session: r.session_id.to_string(),
            amount: r.amount.minor(),
            currency: r.amount.currency().code(),
            status: r.status.as_str(),
            reason: r.reason.clone(),
            receipt: r.operator_refund_id.clone(),
            failure_code: r.failure_code.clone(),
            created: r.created_at / 1000,
            livemode,
        }
    }
}

/// A card, as far as Malipo knows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CardObject {
    /// `VISA`, `MASTERCARD`, `AMEX`, …
    pub brand: String,
    pub last4: String,
}

/// `quote`: a price converted into the currency a rail charges, shown to the shopper
/// before they paid.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QuoteObject {
    /// Always `quote`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// The session's price, in minor units of `currency`.
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: &'static str,
    /// What the rail charged, in minor units of `converted_currency`: rounded up, to
    /// the rail's own unit (whole shillings on M-PESA).
    pub converted_amount: i64,
    #[schema(value_type = String)]
    pub converted_currency: &'static str,
    /// One unit of the pair's first currency buys this much of its second, exactly as
    /// the source gave it: `"129.00"`.
    pub rate: String,
    /// `USD/KES`.
    pub rate_pair: String,
    /// `merchant` (the merchant's own rates), `provider` (the configured rates
    /// provider) or `sandbox` (test mode's fixed rates).
    #[schema(value_type = String)]
    pub rate_source: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds: the quote held until then.
    pub expires_at: i64,
}

impl QuoteObject {
    pub fn new(q: &crate::fx::Quote) -> Self {
        QuoteObject {
            object: "quote",
            amount: q.source.minor(),
            currency: q.source.currency().code(),
            converted_amount: q.target.minor(),
            converted_currency: q.target.currency().code(),
            rate: q.rate.value.to_string(),
            rate_pair: q.rate.pair(),
            rate_source: q.rate_source.as_str(),
            created: q.created_at / 1000,
            expires_at: q.expires_at / 1000,
        }
    }
}

impl PaymentObject {
    pub fn new(a: &AttemptRecord, mode: Mode) -> Self {
        PaymentObject {
            id: a.id.to_string(),
            object: "payment",
            checkout_session: a.session_id.to_string(),
            rail: a.rail.as_str().to_owned(),
            status: a.status.as_str(),
            amount: a.amount.minor(),
            currency: a.amount.currency().code(),
            payer: a.payer.as_deref().map(mask),
            receipt: a.operator_receipt.clone(),
            failure_code: a.failure_code.clone(),
            late: a.late_from.is_some(),
            duplicate: a.duplicate,
            overpaid_amount: a.overpaid_minor,
            part: false,
            created: a.created_at / 1000,
            livemode: mode == Mode::Live,
            quote: a.quote.as_ref().map(QuoteObject::new),
            card: a.rail_data.as_ref().and_then(|d| {
                Some(CardObject {
                    brand: d["card"]["brand"].as_str()?.to_owned(),
                    last4: d["card"]["last4"].as_str()?.to_owned(),
                })
            }),
            line_items: Vec::new(),
            travelers: None,
        }
    }

    /// Marked as a part when it counts for less than the session's price (`price`,
    /// minor units of the session's currency).
    pub fn with_price(mut self, a: &AttemptRecord, price: i64) -> Self {
        self.part = a.credit_minor.is_some_and(|c| c < price);
        self
    }

    /// With the session's trip (what the payment paid for).
    pub fn with_travel(mut self, travel: Option<crate::domain::travel::Travel>) -> Self {
        if let Some(t) = travel {
            self.line_items = t.line_items;
            self.travelers = t.travelers;
        }
        self
    }

    /// The event an attempt reaching `status` announces, if any.
    pub fn event_for(status: AttemptStatus) -> Option<EventType> {
        match status {
            // `payment.unknown` is sent when asking is over, not on every doubt.
            AttemptStatus::Pending | AttemptStatus::Unknown => None,
            AttemptStatus::Succeeded => Some(EventType::PaymentSucceeded),
            AttemptStatus::Failed | AttemptStatus::Cancelled | AttemptStatus::Expired => {
                Some(EventType::PaymentFailed)
            }
        }
    }
}

/// `payment_refusal`: a pay request an abuse limit refused (`payment.refused`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PaymentRefusalObject {
    /// Always `payment_refusal`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// The `cs_…` the shopper tried to pay.
    pub checkout_session: String,
    /// `phone_limit` (too many prompts to this number, across all shops),
    /// `session_limit` (too many tries on this session) or `ip_limit` (too many
    /// requests from one address).
    #[schema(value_type = String)]
    pub reason: &'static str,
    /// The number tried, masked (`2547•••••678`), when one was given.
    pub payer: Option<String>,
    /// Seconds until the shopper may try again; null when this session may not.
    pub retry_after: Option<i64>,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
}

/// `event`: the body of every webhook, and what `GET /v1/events/{id}` returns.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct EventObject {
    /// `evt_…`; a redelivered or duplicated event keeps its id.
    pub id: String,
    /// Always `event`.
    pub object: String,
    /// `checkout.session.completed`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
    /// Orders the events of one checkout session: 1, 2, 3, …
    pub sequence: i64,
    pub data: EventData,
}

/// The object the event is about, as it was when the event happened.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct EventData {
    /// A `checkout.session` (for `checkout.session.*`), a `payment` (for `payment.*`)
    /// or a `payment_refusal` (for `payment.refused`).
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
}

/// `list`: one page of objects, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct List<T> {
    /// Always `list`.
    #[schema(value_type = String)]
    pub object: &'static str,
    pub data: Vec<T>,
    /// Whether more objects follow; pass the last id as `starting_after` to get them.
    pub has_more: bool,
}

impl<T> List<T> {
    pub fn new(data: Vec<T>, has_more: bool) -> Self {
        List {
            object: "list",
            data,
            has_more,
        }
    }
}

/// `webhook_endpoint`: where a merchant receives events in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookEndpointObject {
    /// `we_…`
    pub id: String,
    /// Always `webhook_endpoint`.
    #[schema(value_type = String)]
    pub object: &'static str,
    pub url: String,
    pub description: String,
    /// Event types sent here, or `["*"]` for all.
    pub enabled_events: Vec<String>,
    pub livemode: bool,
    /// Unix seconds.
    pub created: i64,
    /// The signing secret `whsec_…`: only in the answers to create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Until when (unix seconds) the previous secret also signs, after a rotation.
    pub previous_secret_expires_at: Option<i64>,
}

impl WebhookEndpointObject {
    /// Without the secret.
    pub fn new(e: &crate::store::EndpointRecord, now: i64) -> Self {
        WebhookEndpointObject {
            id: e.id.to_string(),
            object: "webhook_endpoint",
            url: e.url.clone(),
            description: e.description.clone(),
            enabled_events: e.enabled_events.clone(),
            livemode: e.mode == Mode::Live,
            created: e.created_at / 1000,
            secret: None,
            previous_secret_expires_at: e
                .previous_expires_at
                .filter(|&t| t > now)
                .map(|t| t / 1000),
        }
    }

    /// With the secret, for the one answer that shows it.
    pub fn with_secret(e: &crate::store::EndpointRecord, now: i64) -> Self {
        use secrecy::ExposeSecret;
        WebhookEndpointObject {
            secret: Some(e.secret.expose_secret().to_owned()),
            ..WebhookEndpointObject::new(e, now)
        }
    }
}

/// One POST of an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryAttemptObject {
    /// Unix milliseconds.
    pub attempted_at: i64,
    /// The HTTP status, or null when no answer came (timeout, refused connection).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// Why it failed, as a class: `http_status` (see `status_code`), `timeout`,
    /// `connect_failed`, `redirect_refused` or `request_failed`; null on success.
    pub error: Option<String>,
}

/// `webhook_delivery`: one event owed to one endpoint, with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookDeliveryObject {
    /// `whd_…`
    pub id: String,
    /// Always `webhook_delivery`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// The `evt_…` delivered.
    pub event: String,
    /// The `we_…` it goes to.
    pub webhook_endpoint: String,
    pub url: String,
    /// `pending` (retrying), `succeeded` (a 2xx came back) or `failed` (gave up).
    #[schema(value_type = String)]
    pub status: &'static str,
    pub attempt_count: i64,
    /// Unix milliseconds of the next try, while pending.
    pub next_attempt_at: Option<i64>,
    pub attempts: Vec<DeliveryAttemptObject>,
}

impl WebhookDeliveryObject {
    pub fn new(d: &crate::store::DeliveryRecord) -> Self {
        WebhookDeliveryObject {
            id: d.id.to_string(),
            object: "webhook_delivery",
            event: d.event_id.to_string(),
            webhook_endpoint: d.endpoint_id.to_string(),
            url: d.url.clone(),
            status: d.status.as_str(),
            attempt_count: d.attempt_count,
            next_attempt_at: d.next_attempt_at,
            attempts: d
                .attempts
                .iter()
                .map(|a| DeliveryAttemptObject {
                    attempted_at: a.attempted_at,
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error.clone(),
                })
                .collect(),
        }
    }
}
