//! Mixx by Yas (Tigo Pesa) push bill-pay JSON, field for field (RAILS.md §4), and the
//! mapping from its answers to [`RailOutcome`].
//!
//! Only third-party clients document it. The push is acknowledged synchronously
//! (`BILLER-18-0000-S`); the outcome comes only by callback, which carries a boolean
//! and words, no code; `Amount` has been seen as a string and as a number.

use serde::{Deserialize, Deserializer, Serialize};

use crate::connectors::{FailureCode, RailOutcome};

/// `POST <token path>` (a form: `username`, `password`, `grant_type=password`) → this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    pub expires_in: u64,
}

/// `POST <push path>`, with `Username`/`Password` headers beside the bearer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    #[serde(rename = "CustomerMSISDN")]
    pub customer_msisdn: String,
    #[serde(rename = "BillerMSISDN")]
    pub biller_msisdn: String,
    /// Whole shillings.
    #[serde(rename = "Amount")]
    pub amount: i64,
    #[serde(rename = "Remarks")]
    pub remarks: String,
    /// Starts with the biller code; unique.
    #[serde(rename = "ReferenceID")]
    pub reference_id: String,
}

/// The push's synchronous answer, and the answer the merchant owes a callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(rename = "ResponseCode")]
    pub response_code: String,
    #[serde(rename = "ResponseStatus")]
    pub response_status: bool,
    #[serde(rename = "ResponseDescription", default)]
    pub response_description: String,
    #[serde(rename = "ReferenceID", default)]
    pub reference_id: String,
}

/// The push was taken (the prompt is on its way).
pub const PUSH_ACCEPTED: &str = "BILLER-18-0000-S";
/// The merchant took the callback.
pub const CALLBACK_TAKEN: &str = "BILLER-30-0000-S";
/// The merchant could not take the callback.
pub const CALLBACK_REFUSED: &str = "BILLER-30-3030-E";

/// Tigo's callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    #[serde(rename = "Status")]
    pub status: bool,
    #[serde(rename = "Description", default)]
    pub description: String,
    #[serde(rename = "MFSTransactionID", default)]
    pub mfs_transaction_id: Option<String>,
    #[serde(rename = "ReferenceID")]
    pub reference_id: String,
    #[serde(rename = "Amount", deserialize_with = "lenient_amount", default)]
    pub amount: Option<i64>,
}

fn lenient_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        serde_json::Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)),
        _ => None,
    })
}

/// Why a failed callback failed: Tigo sends words, not codes, so the words Tigo's
/// clients have recorded are matched; anything else is a failure worded neutrally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureWords {
    InsufficientFunds,
    Cancelled,
    WrongPin,
    TimedOut,
    Other,
}

impl FailureWords {
    pub fn read(description: &str) -> FailureWords {
        let d = description.to_ascii_lowercase();
        if d.contains("insufficient") {
            FailureWords::InsufficientFunds
        } else if d.contains("cancel") || d.contains("declin") || d.contains("reject") {
            FailureWords::Cancelled
        } else if d.contains("pin") {
            FailureWords::WrongPin
        } else if d.contains("timeout") || d.contains("timed out") || d.contains("expired") {
            FailureWords::TimedOut
        } else {
            FailureWords::Other
        }
    }

    pub fn outcome(&self) -> RailOutcome {
        match self {
            FailureWords::InsufficientFunds => RailOutcome::Failed {
                code: FailureCode::InsufficientFunds,
            },
            FailureWords::Cancelled => RailOutcome::Cancelled,
            FailureWords::WrongPin => RailOutcome::Failed {
                code: FailureCode::WrongPin,
            },
            FailureWords::TimedOut => RailOutcome::Expired {
                code: FailureCode::NoResponse,
            },
            FailureWords::Other => RailOutcome::Failed {
                code: FailureCode::OperatorError,
            },
        }
    }
}

impl Callback {
    pub fn outcome(&self) -> RailOutcome {
        if self.status {
            RailOutcome::Succeeded
        } else {
            FailureWords::read(&self.description).outcome()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callbacks_with_string_or_number_amounts() {
        let s: Callback = serde_json::from_str(
            r#"{"Status":true,"Description":"Success","MFSTransactionID":"7A12BC3D","ReferenceID":"MLP123","Amount":"13000"}"#,
        )
        .unwrap();
        assert_eq!(
            (s.amount, s.outcome()),
            (Some(13_000), RailOutcome::Succeeded)
        );
        let n: Callback = serde_json::from_str(
            r#"{"Status":false,"Description":"Insufficient balance","ReferenceID":"MLP124","Amount":13000.0}"#,
        )
        .unwrap();
        assert_eq!(n.amount, Some(13_000));
        assert_eq!(
            n.outcome(),
            RailOutcome::Failed {
                code: FailureCode::InsufficientFunds
            }
        );
        let declined: Callback = serde_json::from_str(
            r#"{"Status":false,"Description":"Transaction declined by customer","ReferenceID":"MLP125"}"#,
        )
        .unwrap();
        assert_eq!(declined.outcome(), RailOutcome::Cancelled);
        assert_eq!(
            FailureWords::read("Something else").outcome(),
            RailOutcome::Failed {
                code: FailureCode::OperatorError
            }
        );
    }

    #[test]
    fn the_push_and_its_answer_are_tigos_pascal_case() {
        let body = serde_json::to_value(PushRequest {
            customer_msisdn: "255713123456".into(),
            biller_msisdn: "255650000000".into(),
            amount: 13_000,
            remarks: "Safari deposit".into(),
            reference_id: "MLPabc".into(),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"CustomerMSISDN":"255713123456","BillerMSISDN":"255650000000",
                "Amount":13000,"Remarks":"Safari deposit","ReferenceID":"MLPabc"})
        );
        let ok: Response = serde_json::from_str(
            r#"{"ResponseCode":"BILLER-18-0000-S","ResponseStatus":true,"ResponseDescription":"Success","ReferenceID":"MLPabc","Message":"ok"}"#,
        )
        .unwrap();
        assert_eq!(ok.response_code, PUSH_ACCEPTED);
    }
}
