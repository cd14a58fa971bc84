//! Vodacom M-Pesa Tanzania (the M-Pesa OpenAPI, `…/ipg/v2/vodacomTZN/…`) JSON, field for
//! field (RAILS.md §3), and the mapping from its `output_ResponseCode` (the INS-* table)
//! to [`RailOutcome`].
//!
//! Every field, numbers included, is a string. The C2B single stage answers only once
//! the shopper has answered the prompt (or the operator gave up), so its response code
//! is the payment's outcome; the status query says `Completed`, `Cancelled`, `Expired`,
//! `Failed`, `Pending` or `N/A`.

use serde::{Deserialize, Serialize};

use crate::connectors::{FailureCode, RailOutcome};

/// `GET …/getSession/` → this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionResponse {
    #[serde(rename = "output_ResponseCode")]
    pub response_code: String,
    #[serde(rename = "output_ResponseDesc", default)]
    pub response_desc: String,
    #[serde(rename = "output_SessionID", default)]
    pub session_id: String,
}

/// `POST …/c2bPayment/singleStage/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2bRequest {
    /// Whole shillings, as text (`"5000"`).
    #[serde(rename = "input_Amount")]
    pub amount: String,
    /// `TZN`.
    #[serde(rename = "input_Country")]
    pub country: String,
    /// `TZS`.
    #[serde(rename = "input_Currency")]
    pub currency: String,
    /// International digits, `2557…` (12 digits).
    #[serde(rename = "input_CustomerMSISDN")]
    pub customer_msisdn: String,
    /// The merchant's short code.
    #[serde(rename = "input_ServiceProviderCode")]
    pub service_provider_code: String,
    /// 1–20 letters, digits and spaces: the booking reference as the shopper's SMS shows it.
    #[serde(rename = "input_TransactionReference")]
    pub transaction_reference: String,
    /// Ours, unique, 1–40 characters: what the status query finds the payment by.
    #[serde(rename = "input_ThirdPartyConversationID")]
    pub third_party_conversation_id: String,
    #[serde(rename = "input_PurchasedItemsDesc")]
    pub purchased_items_desc: String,
}

/// The single stage's answer (after the shopper answered, or the operator gave up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2bResponse {
    #[serde(rename = "output_ResponseCode")]
    pub response_code: String,
    #[serde(rename = "output_ResponseDesc", default)]
    pub response_desc: String,
    #[serde(rename = "output_TransactionID", default)]
    pub transaction_id: String,
    #[serde(rename = "output_ConversationID", default)]
    pub conversation_id: String,
    #[serde(rename = "output_ThirdPartyConversationID", default)]
    pub third_party_conversation_id: String,
}

/// `PUT …/reversal/`: returns (part of) a payment, named by its transaction id. Its
/// answer has the single stage's fields ([`C2bResponse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReversalRequest {
    /// `TZN`.
    #[serde(rename = "input_Country")]
    pub country: String,
    /// The payment's `output_TransactionID`.
    #[serde(rename = "input_TransactionID")]
    pub transaction_id: String,
    #[serde(rename = "input_ServiceProviderCode")]
    pub service_provider_code: String,
    /// Ours (the refund's id): sent again, the reversal is refused as a duplicate, and
    /// the status query finds it by this.
    #[serde(rename = "input_ThirdPartyConversationID")]
    pub third_party_conversation_id: String,
    /// Whole shillings, as text.
    #[serde(rename = "input_ReversalAmount")]
    pub reversal_amount: String,
}

/// `GET …/queryTransactionStatus/?input_QueryReference=…&…` → this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    #[serde(rename = "output_ResponseCode")]
    pub response_code: String,
    #[serde(rename = "output_ResponseDesc", default)]
    pub response_desc: String,
    #[serde(rename = "output_ResponseTransactionStatus", default)]
    pub transaction_status: String,
    #[serde(rename = "output_ConversationID", default)]
    pub conversation_id: String,
    #[serde(rename = "output_ThirdPartyConversationID", default)]
    pub third_party_conversation_id: String,
    #[serde(rename = "output_OriginalTransactionID", default)]
    pub original_transaction_id: String,
}

/// Every `output_ResponseCode` the OpenAPI documents (RAILS.md §3.5), with its HTTP
/// status and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ins {
    Ok,
    InternalError,
    InvalidApiKey,
    UserNotActive,
    CancelledByCustomer,
    TransactionFailed,
    RequestTimeout,
    DuplicateTransaction,
    InvalidShortcode,
    InvalidReference,
    InvalidAmount,
    Overloaded,
    InvalidTransactionReference,
    InvalidTransactionId,
    InvalidThirdPartyReference,
    ParametersMissing,
    ValidationFailed,
    InvalidOperationType,
    UnknownStatus,
    InvalidInitiator,
    InvalidSecurityCredential,
    NotAuthorized,
    SessionCreationFailed,
    DirectDebitMissing,
    DirectDebitExists,
    CustomerProfileProblem,
    AccountNotActive,
    LinkingTransactionNotFound,
    InvalidMarket,
    InitiatorAuthentication,
    ReceiverInvalid,
    InsufficientBalance,
    MsisdnInvalid,
    LanguageCodeInvalid,
    NotYetIndexed,
}

/// (code, variant, HTTP status, words): one line per documented code.
const TABLE: [(&str, Ins, u16, &str); 35] = [
    ("INS-0", Ins::Ok, 200, "Request processed successfully"),
    ("INS-1", Ins::InternalError, 500, "Internal Error"),
    ("INS-2", Ins::InvalidApiKey, 401, "Invalid API Key"),
    ("INS-4", Ins::UserNotActive, 401, "User is not active"),
    (
        "INS-5",
        Ins::CancelledByCustomer,
        401,
        "Transaction cancelled by customer",
    ),
    ("INS-6", Ins::TransactionFailed, 401, "Transaction Failed"),
    ("INS-9", Ins::RequestTimeout, 408, "Request timeout"),
    (
        "INS-10",
        Ins::DuplicateTransaction,
        409,
        "Duplicate Transaction",
    ),
    (
        "INS-13",
        Ins::InvalidShortcode,
        400,
        "Invalid Shortcode Used",
    ),
    (
        "INS-14",
        Ins::InvalidReference,
        400,
        "Invalid Reference Used",
    ),
    ("INS-15", Ins::InvalidAmount, 400, "Invalid Amount Used"),
    (
        "INS-16",
        Ins::Overloaded,
        503,
        "Unable to handle the request due to a temporary overloading",
    ),
    (
        "INS-17",
        Ins::InvalidTransactionReference,
        400,
        "Invalid Transaction Reference. Length Should Be Between 1 and 20.",
    ),
    (
        "INS-18",
        Ins::InvalidTransactionId,
        400,
        "Invalid TransactionID Used",
    ),
    (
        "INS-19",
        Ins::InvalidThirdPartyReference,
        400,
        "Invalid ThirdPartyReference Used",
    ),
    (
        "INS-20",
        Ins::ParametersMissing,
        400,
        "Not All Parameters Provided. Please try again.",
    ),
    (
        "INS-21",
        Ins::ValidationFailed,
        400,
        "Parameter validations failed. Please try again.",
    ),
    (
        "INS-22",
        Ins::InvalidOperationType,
        400,
        "Invalid Operation Type",
    ),
    (
        "INS-23",
        Ins::UnknownStatus,
        400,
        "Unknown Status. Contact M-Pesa Support",
    ),
    (
        "INS-24",
        Ins::InvalidInitiator,
        400,
        "Invalid InitiatorIdentifier Used",
    ),
    (
        "INS-25",
        Ins::InvalidSecurityCredential,
        400,
        "Invalid SecurityCredential Used",
    ),
    ("INS-26", Ins::NotAuthorized, 401, "Not authorized"),
    (
        "INS-989",
        Ins::SessionCreationFailed,
        401,
        "Session creation failed",
    ),
    (
        "INS-993",
        Ins::DirectDebitMissing,
        400,
        "Direct Debit Missing",
    ),
    (
        "INS-994",
        Ins::DirectDebitExists,
        400,
        "Direct Debit Already Exists",
    ),
    (
        "INS-995",
        Ins::CustomerProfileProblem,
        400,
        "Customer's Profile Has Problems",
    ),
    (
        "INS-996",
        Ins::AccountNotActive,
        400,
        "Customer Account Status Not Active",
    ),
    (
        "INS-997",
        Ins::LinkingTransactionNotFound,
        400,
        "Linking Transaction Not Found",
    ),
    ("INS-998", Ins::InvalidMarket, 400, "Invalid Market"),
    (
        "INS-2001",
        Ins::InitiatorAuthentication,
        400,
        "Initiator authentication error.",
    ),
    ("INS-2002", Ins::ReceiverInvalid, 400, "Receiver invalid."),
    (
        "INS-2006",
        Ins::InsufficientBalance,
        422,
        "Insufficient balance",
    ),
    ("INS-2051", Ins::MsisdnInvalid, 400, "MSISDN invalid."),
    (
        "INS-2057",
        Ins::LanguageCodeInvalid,
        400,
        "Language code invalid.",
    ),
    // Seen before a new payment is indexed for the status query.
    ("INS-6140", Ins::NotYetIndexed, 400, "Transaction not found"),
];

impl Ins {
    /// The code a response carries; `None` for one not in the table.
    pub fn parse(code: &str) -> Option<Ins> {
        TABLE.iter().find(|(c, ..)| *c == code).map(|(_, i, ..)| *i)
    }

    fn row(self) -> &'static (&'static str, Ins, u16, &'static str) {
        TABLE
            .iter()
            .find(|(_, i, ..)| *i == self)
            .expect("every code has its line")
    }

    pub fn code(self) -> &'static str {
        self.row().0
    }

    /// The HTTP status the OpenAPI answers it with.
    pub fn http_status(self) -> u16 {
        self.row().2
    }

    pub fn words(self) -> &'static str {
        self.row().3
    }

    /// What the single stage's answer says about the payment. Every code is decided
    /// here (no catch-all): an ambiguous one (a time-out, an internal error, a
    /// duplicate, "unknown status") stays pending, and the status query settles it.
    pub fn payment_outcome(self) -> RailOutcome {
        let failed = |code| RailOutcome::Failed { code };
        match self {
            Ins::Ok => RailOutcome::Succeeded,
            Ins::CancelledByCustomer => RailOutcome::Cancelled,
            Ins::InsufficientBalance => failed(FailureCode::InsufficientFunds),
            // "Not a customer of ours": the page offers the other rails.
            Ins::MsisdnInvalid | Ins::LanguageCodeInvalid => failed(FailureCode::NotRegistered),
            Ins::AccountNotActive | Ins::CustomerProfileProblem => {
                failed(FailureCode::PushNotDelivered)
            }
            // The shopper answered and the operator refused (a wrong PIN reads this way).
            Ins::TransactionFailed => failed(FailureCode::OperatorError),
            // Our request or our account is wrong: nothing reached the phone.
            Ins::InvalidApiKey
            | Ins::UserNotActive
            | Ins::InvalidShortcode
            | Ins::InvalidReference
            | Ins::InvalidAmount
            | Ins::InvalidTransactionReference
            | Ins::InvalidTransactionId
            | Ins::InvalidThirdPartyReference
            | Ins::ParametersMissing
            | Ins::ValidationFailed
            | Ins::InvalidOperationType
            | Ins::InvalidInitiator
            | Ins::InvalidSecurityCredential
            | Ins::NotAuthorized
            | Ins::SessionCreationFailed
            | Ins::DirectDebitMissing
            | Ins::DirectDebitExists
            | Ins::LinkingTransactionNotFound
            | Ins::InvalidMarket
            | Ins::InitiatorAuthentication
            // The receiver is the merchant's short code, not the shopper.
            | Ins::ReceiverInvalid => failed(FailureCode::OperatorError),
            // Ambiguous: the prompt may have been sent, and answered. Ask. (A 503
            // "overloaded" too: the synchronous call may have failed after the prompt.)
            Ins::Overloaded
            | Ins::RequestTimeout
            | Ins::InternalError
            | Ins::DuplicateTransaction
            | Ins::UnknownStatus
            | Ins::NotYetIndexed => RailOutcome::Pending,
        }
    }
}

/// What a single stage's answer says: the payment's outcome by its code (an unknown
/// code stays pending, and is logged by the connector).
pub fn c2b_outcome(code: &str) -> RailOutcome {
    match Ins::parse(code) {
        Some(ins) => ins.payment_outcome(),
        None => RailOutcome::Unknown {
            raw: code.to_owned(),
        },
    }
}

/// The status query's `output_ResponseTransactionStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Completed,
    Cancelled,
    Expired,
    Failed,
    Pending,
    NotAvailable,
}

impl TransactionStatus {
    pub const ALL: [TransactionStatus; 6] = [
        TransactionStatus::Completed,
        TransactionStatus::Cancelled,
        TransactionStatus::Expired,
        TransactionStatus::Failed,
        TransactionStatus::Pending,
        TransactionStatus::NotAvailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransactionStatus::Completed => "Completed",
            TransactionStatus::Cancelled => "Cancelled",
            TransactionStatus::Expired => "Expired",
            TransactionStatus::Failed => "Failed",
            TransactionStatus::Pending => "Pending",
            TransactionStatus::NotAvailable => "N/A",
        }
    }

    pub fn parse(s: &str) -> Option<TransactionStatus> {
        TransactionStatus::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    pub fn outcome(self) -> RailOutcome {
        match self {
            TransactionStatus::Completed => RailOutcome::Succeeded,
            TransactionStatus::Cancelled => RailOutcome::Cancelled,
            TransactionStatus::Expired => RailOutcome::Expired {
                code: FailureCode::NoResponse,
            },
            TransactionStatus::Failed => RailOutcome::Failed {
                code: FailureCode::OperatorError,
            },
            TransactionStatus::Pending | TransactionStatus::NotAvailable => RailOutcome::Pending,
        }
    }
}

impl QueryResponse {
    /// The payment's state, when the query itself was answered (`None`: the query was
    /// refused, as a whole, with this code).
    pub fn outcome(&self) -> Option<RailOutcome> {
        match Ins::parse(&self.response_code) {
            Some(Ins::Ok) => Some(match TransactionStatus::parse(&self.transaction_status) {
                Some(status) => status.outcome(),
                None => RailOutcome::Unknown {
                    raw: self.transaction_status.clone(),
                },
            }),
            // Not indexed yet, or not known to the query yet: still pending.
            Some(Ins::UnknownStatus | Ins::NotYetIndexed) => Some(RailOutcome::Pending),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_line_and_round_trips() {
        for (code, ins, status, _) in TABLE {
            assert_eq!(Ins::parse(code), Some(ins), "{code}");
            assert_eq!(ins.code(), code);
            assert_eq!(ins.http_status(), status);
        }
        let mut codes: Vec<_> = TABLE.iter().map(|r| r.0).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len(), "no code twice");
        assert_eq!(Ins::parse("INS-7"), None);
    }

    #[test]
    fn the_single_stage_answer_is_the_outcome_and_ambiguity_is_asked_about() {
        assert_eq!(c2b_outcome("INS-0"), RailOutcome::Succeeded);
        assert_eq!(c2b_outcome("INS-5"), RailOutcome::Cancelled);
        assert_eq!(
            c2b_outcome("INS-2006"),
            RailOutcome::Failed {
                code: FailureCode::InsufficientFunds
            }
        );
        assert_eq!(
            c2b_outcome("INS-2051"),
            RailOutcome::Failed {
                code: FailureCode::NotRegistered
            }
        );
        for ambiguous in ["INS-1", "INS-9", "INS-10", "INS-16", "INS-23"] {
            assert_eq!(c2b_outcome(ambiguous), RailOutcome::Pending, "{ambiguous}");
        }
        assert_eq!(
            c2b_outcome("INS-4242"),
            RailOutcome::Unknown {
                raw: "INS-4242".into()
            }
        );
    }

    #[test]
    fn reads_the_query_answer() {
        let q: QueryResponse = serde_json::from_str(
            r#"{"output_ResponseCode":"INS-0","output_ResponseDesc":"Request processed successfully",
            "output_ResponseTransactionStatus":"Completed","output_ConversationID":"c1",
            "output_ThirdPartyConversationID":"q1","output_OriginalTransactionID":"8GH2K9L1"}"#,
        )
        .unwrap();
        assert_eq!(q.outcome(), Some(RailOutcome::Succeeded));
        assert_eq!(q.original_transaction_id, "8GH2K9L1");
        let na: QueryResponse = serde_json::from_str(
            r#"{"output_ResponseCode":"INS-0","output_ResponseTransactionStatus":"N/A"}"#,
        )
        .unwrap();
        assert_eq!(na.outcome(), Some(RailOutcome::Pending));
        let early: QueryResponse =
            serde_json::from_str(r#"{"output_ResponseCode":"INS-6140"}"#).unwrap();
        assert_eq!(early.outcome(), Some(RailOutcome::Pending));
        let refused: QueryResponse =
            serde_json::from_str(r#"{"output_ResponseCode":"INS-2"}"#).unwrap();
        assert_eq!(refused.outcome(), None);
    }

    #[test]
    fn the_request_is_the_openapis_input_fields() {
        let body = serde_json::to_value(C2bRequest {
            amount: "5000".into(),
            country: "TZN".into(),
            currency: "TZS".into(),
            customer_msisdn: "255754123456".into(),
            service_provider_code: "000000".into(),
            transaction_reference: "BK123".into(),
            third_party_conversation_id: "att123".into(),
            purchased_items_desc: "Serengeti Camp".into(),
        })
        .unwrap();
        assert_eq!(body["input_CustomerMSISDN"], "255754123456");
        assert_eq!(body["input_ThirdPartyConversationID"], "att123");
        assert_eq!(body.as_object().unwrap().len(), 8);
    }
}
