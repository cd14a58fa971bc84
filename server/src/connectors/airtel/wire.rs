//! Airtel Money Open API JSON, field for field (RAILS.md §2), and the mapping from its
//! statuses and response codes to [`RailOutcome`].
//!
//! Lenient where Airtel is: `expires_in` is a string ("180"); the `DP…` response codes
//! differ between copies of the documentation, so the outcome keys on the enquiry's
//! `data.transaction.status` (TS/TF/TA/TIP/TE) and uses the code only to say why a
//! failure failed.

use serde::{Deserialize, Deserializer, Serialize};

use crate::connectors::{FailureCode, RailOutcome};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub client_id: String,
    pub client_secret: String,
    pub grant_type: String,
}

/// `POST /auth/oauth2/token` → this. `expires_in` is a string ("180").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub expires_in: u64,
    #[serde(default)]
    pub token_type: Option<String>,
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("not a whole number")),
        serde_json::Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expected a number")),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscriber {
    pub country: String,
    pub currency: String,
    /// The national number, **without** the country code.
    pub msisdn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentTransaction {
    /// Whole units, a number.
    pub amount: i64,
    pub country: String,
    pub currency: String,
    /// Ours, unique: the enquiry asks by it.
    pub id: String,
}

/// `POST /merchant/v1/payments/` (headers `X-Country`, `X-Currency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub reference: String,
    pub subscriber: Subscriber,
    pub transaction: PaymentTransaction,
}

/// The `status` block of every answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<String>,
    #[serde(default)]
    pub success: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionState {
    pub id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub airtel_money_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Data {
    pub transaction: TransactionState,
}

/// The answer to a payment request and to an enquiry
/// (`GET /standard/v1/payments/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    pub status: Status,
}

impl Answer {
    /// Our state for an enquiry's answer.
    pub fn outcome(&self) -> RailOutcome {
        let code = self.status.response_code.as_deref().unwrap_or("");
        match &self.data {
            Some(d) => outcome(&d.transaction.status, code),
            // "Transaction Not Found" and the like: not a verdict on the payment.
            None => RailOutcome::Pending,
        }
    }
}

/// `POST /standard/v1/payments/refund`: returns a payment whole (Airtel's refund has no
/// amount), named by Airtel's id for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub transaction: RefundTransaction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundTransaction {
    pub airtel_money_id: String,
}

/// The refund's answer: `data.transaction.status` `SUCCESS` when the money went back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RefundData>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundData {
    pub transaction: RefundState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub airtel_money_id: Option<String>,
    pub status: String,
}

/// The callback Airtel POSTs to the app's one configured URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    pub transaction: CallbackTransaction,
    /// Base64 HMAC-SHA256 of the payload with the app's private key, when callback
    /// authentication is switched on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackTransaction {
    pub id: String,
    #[serde(default)]
    pub message: String,
    pub status_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub airtel_money_id: Option<String>,
}

/// The `DP008…` collection response codes (RAILS.md §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    Ambiguous,
    Success,
    IncorrectPin,
    LimitExceeded,
    InvalidAmount,
    /// "Transaction ID is invalid": also the user who never entered the PIN.
    NoPinEntered,
    InProcess,
    NotEnoughBalance,
    Refused,
    RefusedByUser,
    NotPermittedToPayee,
    TimedOut,
    NotFound,
    Forbidden,
    Expired,
    Unrecognised(String),
}

impl ResponseCode {
    pub fn parse(raw: &str) -> ResponseCode {
        match raw.trim() {
            "DP00800001000" => ResponseCode::Ambiguous,
            "DP00800001001" => ResponseCode::Success,
            "DP00800001002" => ResponseCode::IncorrectPin,
            "DP00800001003" => ResponseCode::LimitExceeded,
            "DP00800001004" => ResponseCode::InvalidAmount,
            "DP00800001005" => ResponseCode::NoPinEntered,
            "DP00800001006" => ResponseCode::InProcess,
            "DP00800001007" => ResponseCode::NotEnoughBalance,
            "DP00800001008" => ResponseCode::Refused,
            "DP00800001009" => ResponseCode::RefusedByUser,
            "DP00800001010" => ResponseCode::NotPermittedToPayee,
            "DP00800001024" => ResponseCode::TimedOut,
            "DP00800001025" => ResponseCode::NotFound,
            "DP00800001026" => ResponseCode::Forbidden,
            "DP00800001029" => ResponseCode::Expired,
            other => ResponseCode::Unrecognised(other.to_owned()),
        }
    }

    /// Why a failed (`TF`) transaction failed. Exhaustive: a new variant will not
    /// compile until mapped.
    pub fn failure(&self) -> RailOutcome {
        let failed = |code| RailOutcome::Failed { code };
        let no_answer = RailOutcome::Expired {
            code: FailureCode::NoResponse,
        };
        match self {
            ResponseCode::IncorrectPin => failed(FailureCode::WrongPin),
            ResponseCode::LimitExceeded => failed(FailureCode::WalletLimit),
            ResponseCode::NotEnoughBalance => failed(FailureCode::InsufficientFunds),
            ResponseCode::Refused | ResponseCode::RefusedByUser => RailOutcome::Cancelled,
            ResponseCode::NoPinEntered | ResponseCode::TimedOut | ResponseCode::Expired => {
                no_answer
            }
            ResponseCode::InvalidAmount
            | ResponseCode::NotPermittedToPayee
            | ResponseCode::Forbidden => failed(FailureCode::OperatorError),
            // A TF with a code that says "not final" or "paid": contradictory; ask again
            // and let a human see it if it never settles.
            ResponseCode::Ambiguous
            | ResponseCode::Success
            | ResponseCode::InProcess
            | ResponseCode::NotFound => RailOutcome::Unknown {
                raw: format!("TF with {self:?}"),
            },
            ResponseCode::Unrecognised(raw) => failed_unknown(raw),
        }
    }
}

/// A failure whose reason we do not know: still a failure (Airtel said TF), worded
/// neutrally.
fn failed_unknown(_raw: &str) -> RailOutcome {
    RailOutcome::Failed {
        code: FailureCode::OperatorError,
    }
}

/// Our state for a transaction status and its response code.
pub fn outcome(status: &str, response_code: &str) -> RailOutcome {
    match status.trim() {
        "TS" => RailOutcome::Succeeded,
        "TF" => ResponseCode::parse(response_code).failure(),
        "TE" => RailOutcome::Expired {
            code: FailureCode::NoResponse,
        },
        // Ambiguous, in progress: keep enquiring. (The payment request's own
        // "SUCCESS" only means the push went out.)
        "TA" | "TIP" | "SUCCESS" => RailOutcome::Pending,
        other => RailOutcome::Unknown {
            raw: format!("status {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_airtels_documented_answers() {
        let token: TokenResponse = serde_json::from_str(
            r#"{"access_token":"abc","expires_in":"180","token_type":"bearer"}"#,
        )
        .unwrap();
        assert_eq!(token.expires_in, 180);
        // The push went out: pending, not paid.
        let pushed: Answer = serde_json::from_str(
            r#"{"data":{"transaction":{"id":"random-unique-id","status":"SUCCESS"}},
               "status":{"code":"200","message":"SUCCESS","result_code":"ESB000010","response_code":"DP00800001006","success":true}}"#,
        )
        .unwrap();
        assert_eq!(pushed.outcome(), RailOutcome::Pending);
        let paid: Answer = serde_json::from_str(
            r#"{"data":{"transaction":{"airtel_money_id":"C36*******67","id":"83****88","message":"success","status":"TS"}},
               "status":{"code":"200","message":"SUCCESS","result_code":"ESB000010","response_code":"DP00800001001","success":true}}"#,
        )
        .unwrap();
        assert_eq!(paid.outcome(), RailOutcome::Succeeded);
        let cb: Callback = serde_json::from_str(
            r#"{"transaction":{"id":"BBZMiscxy","message":"Paid UGX 5,000 to TECHNOLOGIES LIMITED Charge UGX 140, Trans ID MP210603.1234.L06941.","status_code":"TS","airtel_money_id":"MP210603.1234.L06941"},
               "hash":"zITVAAGYSlzl1WkUQJn81kbpT5drH3koffT8jCkcJJA="}"#,
        )
        .unwrap();
        assert_eq!(cb.transaction.status_code, "TS");
        assert!(cb.hash.is_some());
    }

    #[test]
    fn statuses_and_failure_codes_map() {
        assert_eq!(outcome("TIP", ""), RailOutcome::Pending);
        assert_eq!(outcome("TA", "DP00800001000"), RailOutcome::Pending);
        assert_eq!(
            outcome("TE", ""),
            RailOutcome::Expired {
                code: FailureCode::NoResponse
            }
        );
        let cases = [
            ("DP00800001002", "wrong_pin"),
            ("DP00800001003", "wallet_limit"),
            ("DP00800001007", "insufficient_funds"),
            ("DP00800001010", "operator_error"),
            ("DP00800009999", "operator_error"),
        ];
        for (code, ours) in cases {
            match outcome("TF", code) {
                RailOutcome::Failed { code: c } => assert_eq!(c.as_str(), ours, "{code}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        assert_eq!(outcome("TF", "DP00800001008"), RailOutcome::Cancelled);
        assert!(matches!(
            outcome("TF", "DP00800001001"),
            RailOutcome::Unknown { .. }
        ));
        assert!(matches!(outcome("XX", ""), RailOutcome::Unknown { .. }));
    }
}
