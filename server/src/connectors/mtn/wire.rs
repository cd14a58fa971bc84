//! MTN MoMo's Collection API JSON, field for field (see ../shared/RAILS.md §1), and the
//! mapping from its statuses and reasons to [`RailOutcome`].
//!
//! Parsing is lenient where MTN is inconsistent: `reason` arrives as a bare string in
//! the sandbox but is an object `{code, message}` in the published schema (both are
//! read); `CREATED` is a status the documentation does not list; `amount` is a string.

use serde::{Deserialize, Serialize};

use crate::connectors::{FailureCode, RailOutcome};

/// `POST /collection/token/` → this. `expires_in` is a number (Daraja's is a string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    pub expires_in: u64,
}

/// Who pays: an MSISDN in international form without `+`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub party_id_type: String,
    pub party_id: String,
}

/// `POST /collection/v1_0/requesttopay`; MTN answers `202 Accepted` with no body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestToPay {
    /// Whole units, as a string.
    pub amount: String,
    pub currency: String,
    /// Ours, for reconciliation (MTN does not require it to be unique).
    pub external_id: String,
    pub payer: Party,
    /// Shown to the payer.
    pub payer_message: String,
    /// On the merchant's statement.
    pub payee_note: String,
}

/// `reason`: a bare code, or `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reason {
    Code(String),
    Detailed {
        code: String,
        #[serde(default)]
        message: Option<String>,
    },
}

impl Reason {
    pub fn code(&self) -> &str {
        match self {
            Reason::Code(code) | Reason::Detailed { code, .. } => code,
        }
    }
}

/// `GET /collection/v1_0/requesttopay/{referenceId}` (always 200, failures included),
/// and the callback's body (the same shape, without the reference id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestToPayResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_transaction_id: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub payer: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee_note: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl RequestToPayResult {
    /// Our state for its status and reason.
    pub fn outcome(&self) -> RailOutcome {
        match self.status.as_str() {
            "SUCCESSFUL" => RailOutcome::Succeeded,
            // Not answered yet; CREATED: seen in MTN's sandbox, still to be sent.
            "PENDING" | "CREATED" | "ONGOING" => RailOutcome::Pending,
            "FAILED" | "REJECTED" | "EXPIRED" | "TIMEOUT" => {
                let code = self
                    .reason
                    .as_ref()
                    .map_or(self.status.as_str(), Reason::code);
                ReasonCode::parse(code).outcome()
            }
            other => RailOutcome::Unknown {
                raw: format!("status {other}"),
            },
        }
    }

    /// The operator's words, for the record: `FAILED APPROVAL_REJECTED`.
    pub fn detail(&self) -> String {
        match &self.reason {
            Some(Reason::Detailed {
                code,
                message: Some(m),
            }) => format!("{} {code} {m}", self.status),
            Some(r) => format!("{} {}", self.status, r.code()),
            None => self.status.clone(),
        }
    }
}

/// `POST /disbursement/v1_0/refund` (MTN's refunds are a Disbursement operation):
/// `referenceIdToRefund` is the request to pay's `X-Reference-Id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    /// Whole units, as text.
    pub amount: String,
    pub currency: String,
    pub external_id: String,
    pub payer_message: String,
    pub payee_note: String,
    pub reference_id_to_refund: String,
}

/// `GET /disbursement/v1_0/refund/{referenceId}`, and the refund's callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_transaction_id: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub payee: Option<Party>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl RefundResult {
    /// The refund's state: made, refused (with MTN's reason), or not yet.
    pub fn answer(&self) -> crate::connectors::RefundAnswer {
        use crate::connectors::RefundAnswer;
        match self.status.as_str() {
            "SUCCESSFUL" => RefundAnswer::Done {
                operator_refund_id: self.financial_transaction_id.clone(),
            },
            "FAILED" | "REJECTED" => RefundAnswer::Refused {
                code: self
                    .reason
                    .as_ref()
                    .map_or(self.status.as_str(), Reason::code)
                    .to_owned(),
            },
            _ => RefundAnswer::Accepted {
                operator_refund_id: None,
            },
        }
    }
}

/// An error body: `{"code": "RESOURCE_ALREADY_EXIST", "message": "…"}` (map on the code,
/// never on the message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// Every reason code seen in MTN's material (RAILS.md §1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonCode {
    PayeeNotFound,
    PayerNotFound,
    NotAllowed,
    NotAllowedTargetEnvironment,
    InvalidCallbackUrlHost,
    InvalidCurrency,
    ServiceUnavailable,
    InternalProcessingError,
    NotEnoughFunds,
    PayerLimitReached,
    PayeeNotAllowedToReceive,
    PaymentNotApproved,
    ResourceNotFound,
    ApprovalRejected,
    Expired,
    TransactionCanceled,
    ResourceAlreadyExist,
    CouldNotPerformTransaction,
    /// The sandbox's FAILED without a reason, or `EXPIRED`/`TIMEOUT` as a status.
    Timeout,
    Unrecognised(String),
}

impl ReasonCode {
    pub fn parse(raw: &str) -> ReasonCode {
        match raw.trim() {
            "PAYEE_NOT_FOUND" => ReasonCode::PayeeNotFound,
            "PAYER_NOT_FOUND" => ReasonCode::PayerNotFound,
            "NOT_ALLOWED" => ReasonCode::NotAllowed,
            "NOT_ALLOWED_TARGET_ENVIRONMENT" => ReasonCode::NotAllowedTargetEnvironment,
            "INVALID_CALLBACK_URL_HOST" => ReasonCode::InvalidCallbackUrlHost,
            "INVALID_CURRENCY" => ReasonCode::InvalidCurrency,
            "SERVICE_UNAVAILABLE" => ReasonCode::ServiceUnavailable,
            "INTERNAL_PROCESSING_ERROR" => ReasonCode::InternalProcessingError,
            "NOT_ENOUGH_FUNDS" => ReasonCode::NotEnoughFunds,
            "PAYER_LIMIT_REACHED" => ReasonCode::PayerLimitReached,
            "PAYEE_NOT_ALLOWED_TO_RECEIVE" => ReasonCode::PayeeNotAllowedToReceive,
            "PAYMENT_NOT_APPROVED" => ReasonCode::PaymentNotApproved,
            "RESOURCE_NOT_FOUND" => ReasonCode::ResourceNotFound,
            "APPROVAL_REJECTED" => ReasonCode::ApprovalRejected,
            "EXPIRED" => ReasonCode::Expired,
            "TRANSACTION_CANCELED" => ReasonCode::TransactionCanceled,
            "RESOURCE_ALREADY_EXIST" => ReasonCode::ResourceAlreadyExist,
            "COULD_NOT_PERFORM_TRANSACTION" => ReasonCode::CouldNotPerformTransaction,
            "FAILED" | "TIMEOUT" => ReasonCode::Timeout,
            other => ReasonCode::Unrecognised(other.to_owned()),
        }
    }

    /// Our state for a FAILED request to pay with this reason. Exhaustive: a new
    /// variant will not compile until mapped; an unknown code stays open (and polled).
    pub fn outcome(&self) -> RailOutcome {
        let failed = |code| RailOutcome::Failed { code };
        match self {
            ReasonCode::PayerNotFound => failed(FailureCode::NotRegistered),
            ReasonCode::NotEnoughFunds => failed(FailureCode::InsufficientFunds),
            ReasonCode::PayerLimitReached => failed(FailureCode::WalletLimit),
            ReasonCode::ApprovalRejected | ReasonCode::PaymentNotApproved => RailOutcome::Cancelled,
            ReasonCode::TransactionCanceled => failed(FailureCode::CancelledByUser),
            ReasonCode::Expired | ReasonCode::CouldNotPerformTransaction | ReasonCode::Timeout => {
                RailOutcome::Expired {
                    code: FailureCode::NoResponse,
                }
            }
            ReasonCode::ServiceUnavailable => failed(FailureCode::OperatorBusy),
            // MTN: "predominantly … insufficient customer funds", but also a wallet
            // platform that could not be reached; the words stay neutral.
            ReasonCode::InternalProcessingError => failed(FailureCode::OperatorError),
            // Our account's set-up, not the shopper's doing.
            ReasonCode::PayeeNotFound
            | ReasonCode::NotAllowed
            | ReasonCode::NotAllowedTargetEnvironment
            | ReasonCode::InvalidCallbackUrlHost
            | ReasonCode::InvalidCurrency
            | ReasonCode::PayeeNotAllowedToReceive => failed(FailureCode::OperatorError),
            // Not a verdict on the payment: ask again.
            ReasonCode::ResourceNotFound | ReasonCode::ResourceAlreadyExist => RailOutcome::Pending,
            ReasonCode::Unrecognised(raw) => RailOutcome::Unknown { raw: raw.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> RequestToPayResult {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn reads_mtns_documented_success() {
        // MTN-Group/MoMoAPIs_Javascript_sdk, requestToPayTransactionStatusReadme.md.
        let r = parse(
            r#"{"financialTransactionId":"1232581108","externalId":"6353636","amount":"5","currency":"EUR",
               "payer":{"partyIdType":"MSISDN","partyId":"0248888736"},"payerMessage":"Pay for product a",
               "payeeNote":"payer note","status":"SUCCESSFUL"}"#,
        );
        assert_eq!(r.outcome(), RailOutcome::Succeeded);
        assert_eq!(r.financial_transaction_id.as_deref(), Some("1232581108"));
        assert_eq!(r.payer.unwrap().party_id, "0248888736");
    }

    #[test]
    fn reason_is_read_as_a_string_or_an_object() {
        let bare = parse(
            r#"{"externalId":"order-123","amount":"100","currency":"EUR",
               "payer":{"partyIdType":"MSISDN","partyId":"46733123451"},
               "payeeNote":"x","status":"FAILED","reason":"APPROVAL_REJECTED"}"#,
        );
        assert_eq!(bare.outcome(), RailOutcome::Cancelled);
        assert_eq!(bare.detail(), "FAILED APPROVAL_REJECTED");
        let object = parse(
            r#"{"status":"FAILED","reason":{"code":"NOT_ENOUGH_FUNDS","message":"The payer does not have enough funds."}}"#,
        );
        assert_eq!(
            object.outcome(),
            RailOutcome::Failed {
                code: FailureCode::InsufficientFunds
            }
        );
        assert_eq!(
            object.detail(),
            "FAILED NOT_ENOUGH_FUNDS The payer does not have enough funds."
        );
    }

    #[test]
    fn pending_created_and_unknown_statuses_keep_it_open() {
        for status in ["PENDING", "CREATED"] {
            let r = parse(&format!(r#"{{"status":"{status}"}}"#));
            assert_eq!(r.outcome(), RailOutcome::Pending, "{status}");
        }
        assert!(matches!(
            parse(r#"{"status":"WEIRD"}"#).outcome(),
            RailOutcome::Unknown { .. }
        ));
        assert!(matches!(
            parse(r#"{"status":"FAILED","reason":"SOMETHING_NEW"}"#).outcome(),
            RailOutcome::Unknown { raw } if raw == "SOMETHING_NEW"
        ));
    }

    #[test]
    fn every_documented_reason_has_a_meaning() {
        let cases = [
            ("PAYER_NOT_FOUND", "not_registered"),
            ("NOT_ENOUGH_FUNDS", "insufficient_funds"),
            ("PAYER_LIMIT_REACHED", "wallet_limit"),
            ("SERVICE_UNAVAILABLE", "operator_busy"),
            ("INTERNAL_PROCESSING_ERROR", "operator_error"),
            ("INVALID_CURRENCY", "operator_error"),
            ("PAYEE_NOT_FOUND", "operator_error"),
            ("NOT_ALLOWED", "operator_error"),
            ("NOT_ALLOWED_TARGET_ENVIRONMENT", "operator_error"),
            ("INVALID_CALLBACK_URL_HOST", "operator_error"),
            ("PAYEE_NOT_ALLOWED_TO_RECEIVE", "operator_error"),
            ("TRANSACTION_CANCELED", "cancelled_by_user"),
        ];
        for (code, ours) in cases {
            match ReasonCode::parse(code).outcome() {
                RailOutcome::Failed { code: c } => assert_eq!(c.as_str(), ours, "{code}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        for code in ["EXPIRED", "COULD_NOT_PERFORM_TRANSACTION"] {
            assert_eq!(
                ReasonCode::parse(code).outcome(),
                RailOutcome::Expired {
                    code: FailureCode::NoResponse
                }
            );
        }
        for code in ["APPROVAL_REJECTED", "PAYMENT_NOT_APPROVED"] {
            assert_eq!(ReasonCode::parse(code).outcome(), RailOutcome::Cancelled);
        }
        for code in ["RESOURCE_NOT_FOUND", "RESOURCE_ALREADY_EXIST"] {
            assert_eq!(ReasonCode::parse(code).outcome(), RailOutcome::Pending);
        }
    }

    #[test]
    fn the_request_is_mtns_camel_case_with_a_string_amount() {
        let body = serde_json::to_value(RequestToPay {
            amount: "50000".into(),
            currency: "UGX".into(),
            external_id: "pa_1".into(),
            payer: Party {
                party_id_type: "MSISDN".into(),
                party_id: "256772123456".into(),
            },
            payer_message: "Lodge".into(),
            payee_note: "BK-1".into(),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"amount":"50000","currency":"UGX","externalId":"pa_1",
                "payer":{"partyIdType":"MSISDN","partyId":"256772123456"},
                "payerMessage":"Lodge","payeeNote":"BK-1"})
        );
    }
}
