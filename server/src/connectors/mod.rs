//! Connectors to payment rails. One folder per rail; `wire.rs` holds the operator's own
//! types and the mapping from its result codes to [`RailOutcome`].
//!
//! The engine (`payments`) knows rails only through [`Connector`]: what a rail takes
//! ([`Capabilities`]), how to send a push, ask how it ended, and read the operator's
//! callback. Units are the connector's business (Daraja counts whole shillings; the
//! engine only ever sees [`Money`]), and so is every operator-specific word.

pub mod airtel;
pub mod card;
pub mod mpesa;
pub mod mtn;
pub mod paypal;
pub mod registry;
pub mod shared;
pub mod tigo;
pub mod vodacom;

pub use app::rail::RailId;
pub use registry::Registry;

use std::{future::Future, pin::Pin};

use crate::domain::{
    AttemptId, Money,
    money::Currency,
    phone::{Country, Msisdn},
};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Connector>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a rail takes: the page and the engine check a session against it.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Each currency it can charge, with the country whose numbers it serves for it
    /// (for reading local forms like `0712…`).
    pub markets: Vec<(Currency, Country)>,
    /// Whether amounts must be whole units of the currency (Daraja: whole shillings).
    pub whole_units: bool,
    /// The most one payment may be, per currency (minor units): the wallet's
    /// per-transaction limit. A price above it is paid in parts.
    pub per_payment: Vec<(Currency, i64)>,
}

impl Capabilities {
    /// Whether `amount` can be charged on this rail as it is, in one payment.
    pub fn accepts(&self, amount: Money) -> bool {
        self.takes(amount)
            && self
                .most(amount.currency())
                .is_none_or(|most| amount.minor() <= most)
    }

    /// Whether `amount` can be charged on this rail in parts: its currency and units,
    /// whatever its size.
    pub fn takes(&self, amount: Money) -> bool {
        let currency = amount.currency();
        let unit = 10i64.pow(currency.exponent());
        self.country(currency).is_some() && (!self.whole_units || amount.minor() % unit == 0)
    }

    /// The most one payment in `currency` may be, when the rail has a limit.
    pub fn most(&self, currency: Currency) -> Option<i64> {
        self.per_payment
            .iter()
            .find(|(c, _)| *c == currency)
            .map(|(_, most)| *most)
    }

    /// Whose numbers pay in `currency` on this rail, if it takes that currency.
    pub fn country(&self, currency: Currency) -> Option<Country> {
        self.markets
            .iter()
            .find(|(c, _)| *c == currency)
            .map(|(_, country)| *country)
    }
}

/// One push to send.
#[derive(Debug, Clone)]
pub struct InitiateRequest<'a> {
    pub attempt_id: &'a AttemptId,
    pub amount: Money,
    pub payer: &'a Msisdn,
    /// The merchant's booking reference.
    pub reference: &'a str,
    /// What the prompt shows as the payee (the merchant's name).
    pub description: &'a str,
    /// Where the operator reports the outcome: `/callbacks/{rail}/{attempt}/{token}`.
    pub callback_url: &'a str,
}

/// An attempt to ask the operator about.
#[derive(Debug, Clone)]
pub struct QueryRequest<'a> {
    /// The operator's id for the push.
    pub operator_request_id: &'a str,
    /// What was asked for (Airtel's enquiry names the country and currency).
    pub amount: Money,
    /// When the attempt began (unix ms): a card order nobody paid is given up once the
    /// processor's session is over.
    pub started_at: i64,
}

/// What the operator's status query said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queried {
    pub outcome: RailOutcome,
    /// For a success, the operator's receipt, when its query gives one.
    pub receipt: Option<String>,
}

impl From<RailOutcome> for Queried {
    fn from(outcome: RailOutcome) -> Queried {
        Queried {
            outcome,
            receipt: None,
        }
    }
}

/// The operator took the push.
pub struct Initiated {
    /// The operator's id for it, to ask about it with (Daraja's CheckoutRequestID).
    pub operator_request_id: String,
    /// For an operator whose push call itself answers with the outcome, once the shopper
    /// has answered the prompt (Vodacom's synchronous C2B single stage): that call, still
    /// running. The engine runs it off the request path and takes its answer as it would
    /// a status query's; if it is lost (a restart), the status query finds the outcome.
    pub answer: Option<BoxFuture<'static, Result<Queried, ConnectorError>>>,
}

/// One refund to make, of a payment that succeeded.
#[derive(Debug, Clone)]
pub struct RefundRequest<'a> {
    /// Malipo's id for it (`re_…`): the operator's idempotency key, where it takes one,
    /// so a refund sent again is the same refund.
    pub refund_id: &'a str,
    /// The payment's operator id (the card order, the PayPal order, …).
    pub operator_request_id: Option<&'a str>,
    /// The payment's receipt (PayPal's capture id, M-PESA's receipt number, …).
    pub receipt: Option<&'a str>,
    pub amount: Money,
    /// What the payment paid (Daraja's reversal names it).
    pub paid: Money,
    /// Whether it returns all the payment paid.
    pub whole: bool,
    /// The payer's number, international digits (MTN's refund names the payee).
    pub payer: Option<&'a str>,
    /// Where an operator that answers later reports the refund's result:
    /// `/callbacks/{rail}/{refund}/{token}` (Daraja's `ResultURL`, MTN's
    /// `X-Callback-Url`). The same for every send of one refund.
    pub callback_url: &'a str,
}

/// An operator's report on a refund, read from its result callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReport {
    pub answer: RefundAnswer,
    /// The operator's code and words, for the record.
    pub detail: String,
}

/// What the operator said to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAnswer {
    /// Returned to the payer; the operator's id for the refund.
    Done { operator_refund_id: Option<String> },
    /// Taken; the operator confirms later.
    Accepted { operator_refund_id: Option<String> },
    /// Refused: nothing was returned (the operator's code).
    Refused { code: String },
}

/// What the operator says was paid, as far as its callback says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaidFacts {
    pub amount: Option<Money>,
    /// International digits, as stored on the attempt.
    pub payer: Option<String>,
    pub receipt: Option<String>,
}

/// An operator's callback, read.
#[derive(Debug, Clone)]
pub struct CallbackReport {
    /// The operator's id for the push it reports on; `None` when its callback names
    /// none (MTN): the attempt's own callback URL and token tie it.
    pub operator_request_id: Option<String>,
    pub outcome: RailOutcome,
    /// For a success: what was paid, to be matched against the attempt.
    pub paid: PaidFacts,
    /// The operator's code and words, for the record (`1032 Request cancelled by user`).
    pub detail: String,
}

/// What went wrong talking to an operator.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// It could not be reached or did not answer in time: the outcome is unknown.
    #[error("{rail} unreachable: {source}")]
    Unreachable {
        rail: RailId,
        #[source]
        source: reqwest::Error,
    },
    /// It refused the request (Daraja's `400.002.02` invalid phone, …): nothing was sent
    /// to the phone.
    #[error("{rail} refused the request: {code} {message}")]
    Rejected {
        rail: RailId,
        code: String,
        message: String,
    },
    /// It answered something we cannot read.
    #[error("unexpected answer from {rail} (HTTP {status}): {body}")]
    BadResponse {
        rail: RailId,
        status: u16,
        body: String,
    },
}

/// A callback body that cannot be read as the operator's.
#[derive(Debug, thiserror::Error)]
#[error("unreadable callback body")]
pub struct BadCallback;

/// What the engine needs from a rail. Everything operator-specific lives behind it.
/// What the operator says of a payment looked up by its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// The lookup is over (not a queue time-out notice).
    pub answered: bool,
    /// The payment went through (`Completed`).
    pub completed: bool,
    pub receipt: Option<String>,
    /// What was paid.
    pub amount: Option<Money>,
    /// Who was paid: the shortcode or account, as the operator names it.
    pub payee: Option<String>,
    /// Who paid: digits, possibly masked by the operator (`2547•••••678`, `2547******678`).
    pub payer: Option<String>,
    /// When it was paid (unix ms): a receipt is believed only for a payment made while
    /// the attempt's prompt could be answered.
    pub paid_at: Option<i64>,
    /// The operator's code and words, for the record.
    pub detail: String,
}

/// A payment a shopper made from their wallet's own menu to the business number, as
/// the operator reported it (a validation asks before; a confirmation tells after).
#[derive(Debug, Clone, PartialEq)]
pub struct PaybillPayment {
    /// The operator's transaction id (M-PESA's `TransID`): its receipt.
    pub receipt: String,
    pub amount: Money,
    /// The business number paid.
    pub business: String,
    /// The account number the shopper typed: a session's pay code, if typed right.
    pub account: String,
    /// Who paid: digits, possibly masked by the operator.
    pub payer: Option<String>,
    /// Made from the wallet's menu (Daraja's `Pay Bill`). Daraja also reports payments
    /// made by prompt to the same URLs (`CustomerPayBillOnline`): those are settled by
    /// their own callbacks, never here.
    pub from_menu: bool,
}

/// Our answer to a validation: take the payment, or refuse it (nothing is taken from
/// the shopper, who is told on the phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaybillVerdict {
    Accept,
    /// No open session has this account number.
    UnknownAccount,
    /// More than is left to pay.
    WrongAmount,
}

pub trait Connector: Send + Sync + 'static {
    fn rail(&self) -> RailId;

    fn capabilities(&self) -> &Capabilities;

    /// The operator's id for an attempt's push when we choose it ourselves (MTN's
    /// `X-Reference-Id`, Airtel's `transaction.id`): known before sending, so a push
    /// whose answer is lost can still be asked about. `None` (the default): the operator
    /// gives it.
    fn chosen_request_id(&self, _req: &InitiateRequest<'_>) -> Option<String> {
        None
    }

    /// Sends the push. `Ok`: the operator took it, and the prompt is on its way.
    fn initiate<'a>(
        &'a self,
        req: InitiateRequest<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>>;

    /// The card processor behind a card rail (paid on the processor's own frames and
    /// pages, not by a push). `None` (the default): a mobile-money rail.
    fn card_processor(&self) -> Option<&card::Mpgs> {
        None
    }

    /// The PayPal app behind the PayPal rail (approved on PayPal's own pages, then
    /// captured). `None` (the default): another rail.
    fn paypal(&self) -> Option<&paypal::Paypal> {
        None
    }

    /// Whether Malipo can refund this rail's payments ([`Connector::refund`]).
    fn refunds(&self) -> bool {
        false
    }

    /// Whether a refund may return part of a payment (Airtel's and Daraja's return all
    /// of it, once).
    fn partial_refunds(&self) -> bool {
        true
    }

    /// The operator's result callback for a refund (at [`RefundRequest::callback_url`],
    /// already tied to the refund by the URL's token). The default: the rail sends none.
    fn parse_refund_callback(&self, _body: &[u8]) -> Result<RefundReport, BadCallback> {
        Err(BadCallback)
    }

    /// Refunds (part of) a payment. Errors that leave the answer unknown
    /// (`Unreachable`, `BadResponse`) keep the refund pending: it is sent again with
    /// the same id. The default: the rail cannot refund.
    fn refund<'a>(
        &'a self,
        _req: RefundRequest<'a>,
    ) -> BoxFuture<'a, Result<RefundAnswer, ConnectorError>> {
        let rail = self.rail();
        Box::pin(async move {
            Err(ConnectorError::Rejected {
                rail,
                code: "refund_not_supported".into(),
                message: "this rail has no refund".into(),
            })
        })
    }

    /// Where the push stands now (`Pending` while the shopper has not answered). For a
    /// rail whose payments the buyer approves and the merchant then takes (PayPal's
    /// capture), asking also takes an approved payment: the approval is the buyer's
    /// word, and taking is idempotent at the operator.
    fn query<'a>(
        &'a self,
        req: QueryRequest<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>>;

    /// Whether a payment can be looked up by its receipt (M-PESA's Transaction Status):
    /// a shopper's "I paid, here is the code" can then be checked with the operator.
    fn looks_up_receipts(&self) -> bool {
        false
    }

    /// Asks the operator about the payment with `receipt`; the answer comes to
    /// `result_url` ([`Connector::parse_lookup_result`]).
    fn lookup_receipt<'a>(
        &'a self,
        _receipt: &'a str,
        _result_url: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected {
                rail: self.rail(),
                code: "lookup_not_supported".into(),
                message: "this rail cannot look a payment up by its receipt".into(),
            })
        })
    }

    /// Who a payment looked up must have been paid to (Daraja: our shortcode).
    fn lookup_payee(&self) -> Option<&str> {
        None
    }

    /// The operator's answer to [`Connector::lookup_receipt`].
    fn parse_lookup_result(&self, _body: &[u8]) -> Result<LookupResult, BadCallback> {
        Err(BadCallback)
    }

    /// The business number shoppers pay from their wallet's own menu (M-PESA's Paybill),
    /// once the operator sends those payments to us ([`Connector::register_paybill`]
    /// succeeded). `None` (the default): the rail has no such flow here.
    fn paybill(&self) -> Option<&str> {
        None
    }

    /// The business number this connector would offer for menu payments, registered or
    /// not (`None`: not offered).
    fn paybill_business(&self) -> Option<&str> {
        None
    }

    /// Tells the operator where to send payments made to the business number: the
    /// validation (before) and confirmation (after) URLs. Marks [`Connector::paybill`]
    /// ready on success.
    fn register_paybill<'a>(
        &'a self,
        _confirmation_url: &'a str,
        _validation_url: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected {
                rail: self.rail(),
                code: "paybill_not_supported".into(),
                message: "this rail has no menu payments".into(),
            })
        })
    }

    /// A validation or confirmation body of a payment made to the business number.
    fn parse_paybill(&self, _body: &[u8]) -> Result<PaybillPayment, BadCallback> {
        Err(BadCallback)
    }

    /// The body answering a validation (`Some`: our verdict) or a confirmation (`None`).
    fn paybill_answer(&self, _verdict: Option<PaybillVerdict>) -> String {
        String::new()
    }

    /// The operator's callback body (already tied to an attempt by the URL's token).
    fn parse_callback(&self, body: &[u8]) -> Result<CallbackReport, BadCallback>;

    /// A text every success callback body of this operator contains (Daraja's
    /// `MpesaReceiptNumber`): narrows the search for stored callbacks to apply again.
    /// `None`: its callbacks are never applied, so there is nothing to re-drive.
    fn success_marker(&self) -> Option<&'static str>;

    /// For an operator that posts every callback to one URL configured on its portal
    /// (`/callbacks/{rail}` or `/callbacks/{rail}/{key}`: Airtel, Tigo, PayPal): the
    /// operator's id for the push it reports on, once the body (with the URL's `key`, or
    /// the request's signature headers, where the rail uses them) is found authentic by
    /// the connector. Where the operator can be asked, such a callback only makes the
    /// engine ask at once. `None` (the default): the rail has no such URL.
    fn portal_callback<'a>(
        &'a self,
        _key: Option<&'a str>,
        _headers: &'a axum::http::HeaderMap,
        _body: &'a [u8],
    ) -> BoxFuture<'a, Option<Result<String, BadCallback>>> {
        Box::pin(std::future::ready(None))
    }

    /// The operator's id for the push a portal callback names, read without checking
    /// it: to find the attempt, and so whose credentials (a merchant's own app) must
    /// then find the body authentic. `None` (the default): no portal callbacks.
    fn portal_request_id(&self, _body: &[u8]) -> Option<String> {
        None
    }

    /// Our failure code for a push the operator refused with `code`, where the code
    /// says more than "refused" (Airtel's `DP00800001005` Msisdn Not Found: the number
    /// has no wallet there, so the page suggests another). `None`: `push_rejected`.
    /// [`FailureCode::OperatorError`] and [`FailureCode::OperatorBusy`] say the
    /// operator is failing or throttling everyone, not refusing this push: they count
    /// toward the push circuit ([`crate::breaker`]) as no answer would.
    fn rejection_failure(&self, _code: &str) -> Option<FailureCode> {
        None
    }

    /// Whether the operator can be asked how a push ended. Without a status query
    /// (Tigo), its callback is the only word: one that comes to its portal URL is
    /// applied (when the connector found it authentic) instead of cueing a query.
    fn has_status_query(&self) -> bool {
        true
    }

    /// How long, at most, from the start of an attempt until the rail can still answer
    /// on its own, in ms: a push call that answers with the outcome
    /// ([`Initiated::answer`]; its time-out, and any wait before it is sent), or a card
    /// payment the shopper may still finish on the processor's pages. The engine gives
    /// no such attempt up as unknown before then. `0` (the default): the rail's prompt
    /// time decides.
    fn answers_within_ms(&self) -> i64 {
        0
    }

    /// What the operator expects back (status and body) for the callback `body`: taken
    /// (or already known), or not readable.
    fn callback_ack(&self, accepted: bool, body: &[u8]) -> (u16, String);
}

/// What a rail said about an attempt, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailOutcome {
    /// The money is in (still to be confirmed against amount and phone by the engine).
    Succeeded,
    /// Refused; `code` is our stable failure code.
    Failed { code: FailureCode },
    /// The shopper cancelled on the handset.
    Cancelled,
    /// Nobody answered in time.
    Expired { code: FailureCode },
    /// Not decided yet: keep polling.
    Pending,
    /// A code we do not know: kept pending (and polled), logged for a human.
    Unknown { raw: String },
}

/// Why an attempt did not succeed, as the page and the merchant read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    InsufficientFunds,
    WrongPin,
    CancelledByUser,
    NoResponse,
    PushNotDelivered,
    SubscriberBusy,
    OperatorBusy,
    OperatorError,
    Expired,
    /// The number has no wallet with this operator ("not a customer of ours"): another
    /// rail may take it.
    NotRegistered,
    /// Over the wallet's own limit (per transaction or per day).
    WalletLimit,
    /// The card's issuer declined it (or its security code did not match).
    CardDeclined,
    /// The card has expired.
    ExpiredCard,
    /// 3-D Secure failed: the shopper did not pass the issuer's check (or cancelled it).
    AuthenticationFailed,
    /// The wallet (PayPal) declined the way the buyer chose to pay: nothing was taken.
    PaymentDeclined,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::InsufficientFunds => "insufficient_funds",
            FailureCode::WrongPin => "wrong_pin",
            FailureCode::CancelledByUser => "cancelled_by_user",
            FailureCode::NoResponse => "no_response",
            FailureCode::PushNotDelivered => "push_not_delivered",
            FailureCode::SubscriberBusy => "subscriber_busy",
            FailureCode::OperatorBusy => "operator_busy",
            FailureCode::OperatorError => "operator_error",
            FailureCode::Expired => "expired",
            FailureCode::NotRegistered => "not_registered",
            FailureCode::WalletLimit => "wallet_limit",
            FailureCode::CardDeclined => "card_declined",
            FailureCode::ExpiredCard => "expired_card",
            FailureCode::AuthenticationFailed => "authentication_failed",
            FailureCode::PaymentDeclined => "payment_declined",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_take_their_currencies_in_whole_units() {
        let caps = Capabilities {
            markets: vec![(Currency::Kes, Country::Kenya)],
            whole_units: true,
            per_payment: Vec::new(),
        };
        let kes = |minor| Money::new(minor, Currency::Kes).unwrap();
        assert!(caps.accepts(kes(150_000)));
        assert!(
            !caps.accepts(kes(150_050)),
            "KES 1,500.50 is not whole shillings"
        );
        assert!(!caps.accepts(Money::new(150_000, Currency::Tzs).unwrap()));
        assert_eq!(caps.country(Currency::Kes), Some(Country::Kenya));
        assert_eq!(caps.country(Currency::Tzs), None);
        let cents = Capabilities {
            whole_units: false,
            per_payment: Vec::new(),
            ..caps
        };
        assert!(cents.accepts(kes(150_050)));
    }
}
