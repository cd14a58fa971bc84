//! Daraja's JSON, field for field (see ../shared/OPERATORS.md), and the mapping from its
//! result codes to [`RailOutcome`].
//!
//! Parsing is lenient where Daraja is inconsistent: `ResultCode` is usually a number
//! but has been seen as a string, `expires_in` is a string, `Balance` often has no
//! `Value`, and query responses carry codes as strings.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::connectors::{FailureCode, RailOutcome};

/// `GET /oauth/v1/generate?grant_type=client_credentials` → this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds, sent as a string ("3599").
    #[serde(deserialize_with = "lenient_u64")]
    pub expires_in: u64,
}

/// `CustomerPayBillOnline` (paybill) or `CustomerBuyGoodsOnline` (till).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionType {
    CustomerPayBillOnline,
    CustomerBuyGoodsOnline,
}

/// `POST /mpesa/stkpush/v1/processrequest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkPushRequest {
    #[serde(rename = "BusinessShortCode")]
    pub business_short_code: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "TransactionType")]
    pub transaction_type: TransactionType,
    /// Whole shillings only.
    #[serde(rename = "Amount", deserialize_with = "lenient_u64")]
    pub amount: u64,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "PartyB")]
    pub party_b: String,
    #[serde(rename = "PhoneNumber")]
    pub phone_number: String,
    #[serde(rename = "CallBackURL")]
    pub call_back_url: String,
    /// ≤ 12 characters, shown on the prompt.
    #[serde(rename = "AccountReference")]
    pub account_reference: String,
    /// 1–13 characters.
    #[serde(rename = "TransactionDesc")]
    pub transaction_desc: String,
}

/// The synchronous answer to a push: accepted when `ResponseCode` is "0".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkPushResponse {
    #[serde(rename = "MerchantRequestID")]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResponseCode", deserialize_with = "lenient_string")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription")]
    pub response_description: String,
    #[serde(rename = "CustomerMessage", default)]
    pub customer_message: String,
}

/// Daraja's request-error body (`400.002.02`, `404.001.03`, `500.001.1001`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    #[serde(rename = "requestId", default)]
    pub request_id: String,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
}

impl ErrorResponse {
    /// "The transaction is being processed": the shopper has not answered yet.
    pub const STILL_PROCESSING: &'static str = "500.001.1001";
    pub const INVALID_TOKEN: &'static str = "404.001.03";
    pub const INVALID_FIELD: &'static str = "400.002.02";
}

/// `POST /mpesa/stkpushquery/v1/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkQueryRequest {
    #[serde(rename = "BusinessShortCode")]
    pub business_short_code: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
}

/// A decided query: `ResultCode` says how the push ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkQueryResponse {
    #[serde(rename = "ResponseCode", deserialize_with = "lenient_string")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription", default)]
    pub response_description: String,
    #[serde(rename = "MerchantRequestID", default)]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResultCode", deserialize_with = "lenient_string")]
    pub result_code: String,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
}

/// What Daraja POSTs to the CallBackURL (unsigned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackEnvelope {
    #[serde(rename = "Body")]
    pub body: CallbackBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackBody {
    #[serde(rename = "stkCallback")]
    pub stk_callback: StkCallback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkCallback {
    #[serde(rename = "MerchantRequestID")]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResultCode", deserialize_with = "lenient_string")]
    pub result_code: String,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
    /// Present on success only.
    #[serde(
        rename = "CallbackMetadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_metadata: Option<CallbackMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackMetadata {
    #[serde(rename = "Item")]
    pub item: Vec<MetadataItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataItem {
    #[serde(rename = "Name")]
    pub name: String,
    /// Often absent (`Balance`).
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The facts a successful callback reports, to check against the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidDetails {
    /// Whole shillings.
    pub amount: Option<u64>,
    pub receipt: Option<String>,
    pub phone: Option<String>,
    /// `YYYYMMDDHHmmss`, Nairobi time.
    pub transaction_date: Option<String>,
}

impl StkCallback {
    /// Amount, receipt, phone and date from `CallbackMetadata`, whichever are there.
    pub fn paid_details(&self) -> PaidDetails {
        let find = |name: &str| {
            self.callback_metadata
                .as_ref()
                .and_then(|m| m.item.iter().find(|i| i.name == name))
                .and_then(|i| i.value.clone())
        };
        let as_text = |v: Value| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        PaidDetails {
            // 1.0, 1, "1": all whole shillings.
            amount: find("Amount").and_then(|v| match v {
                Value::Number(n) => n.as_u64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                }),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }),
            receipt: find("MpesaReceiptNumber").and_then(as_text),
            phone: find("PhoneNumber").and_then(as_text),
            transaction_date: find("TransactionDate").and_then(as_text),
        }
    }
}

/// Daraja's result codes, each named; anything else is kept as [`ResultCode::Unrecognised`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultCode {
    /// 0
    Success,
    /// 1: insufficient balance.
    InsufficientBalance,
    /// 17: internal failure at M-PESA.
    InternalFailure,
    /// 26: system busy; back off.
    SystemBusy,
    /// 1001: the subscriber is busy with another transaction.
    SubscriberBusy,
    /// 1019: the transaction expired.
    TransactionExpired,
    /// 1025 and 9999: the push could not be sent to the handset.
    PushNotSent,
    /// 1031 and 1032: cancelled by the user.
    CancelledByUser,
    /// 1037: "DS timeout user cannot be reached" (no answer, phone off, old SIM).
    NoResponse,
    /// 2001: wrong PIN.
    WrongPin,
    /// A code not listed above, as sent.
    Unrecognised(String),
}

impl ResultCode {
    pub fn parse(raw: &str) -> ResultCode {
        match raw.trim() {
            "0" => ResultCode::Success,
            "1" => ResultCode::InsufficientBalance,
            "17" => ResultCode::InternalFailure,
            "26" => ResultCode::SystemBusy,
            "1001" => ResultCode::SubscriberBusy,
            "1019" => ResultCode::TransactionExpired,
            "1025" | "9999" => ResultCode::PushNotSent,
            "1031" | "1032" => ResultCode::CancelledByUser,
            "1037" => ResultCode::NoResponse,
            "2001" => ResultCode::WrongPin,
            other => ResultCode::Unrecognised(other.to_owned()),
        }
    }

    /// The code as Daraja writes it.
    pub fn as_code(&self) -> &str {
        match self {
            ResultCode::Success => "0",
            ResultCode::InsufficientBalance => "1",
            ResultCode::InternalFailure => "17",
            ResultCode::SystemBusy => "26",
            ResultCode::SubscriberBusy => "1001",
            ResultCode::TransactionExpired => "1019",
            ResultCode::PushNotSent => "1025",
            ResultCode::CancelledByUser => "1032",
            ResultCode::NoResponse => "1037",
            ResultCode::WrongPin => "2001",
            ResultCode::Unrecognised(raw) => raw,
        }
    }

    /// Our state for this code. Exhaustive: a new variant will not compile until mapped.
    pub fn outcome(&self) -> RailOutcome {
        match self {
            ResultCode::Success => RailOutcome::Succeeded,
            ResultCode::InsufficientBalance => RailOutcome::Failed {
                code: FailureCode::InsufficientFunds,
            },
            ResultCode::InternalFailure => RailOutcome::Failed {
                code: FailureCode::OperatorError,
            },
            ResultCode::SystemBusy => RailOutcome::Failed {
                code: FailureCode::OperatorBusy,
            },
            ResultCode::SubscriberBusy => RailOutcome::Failed {
                code: FailureCode::SubscriberBusy,
            },
            ResultCode::TransactionExpired => RailOutcome::Expired {
                code: FailureCode::Expired,
            },
            ResultCode::PushNotSent => RailOutcome::Failed {
                code: FailureCode::PushNotDelivered,
            },
            ResultCode::CancelledByUser => RailOutcome::Cancelled,
            ResultCode::NoResponse => RailOutcome::Expired {
                code: FailureCode::NoResponse,
            },
            ResultCode::WrongPin => RailOutcome::Failed {
                code: FailureCode::WrongPin,
            },
            ResultCode::Unrecognised(raw) => RailOutcome::Unknown { raw: raw.clone() },
        }
    }
}

/// Reads a query's answer, whether decided (a [`StkQueryResponse`]) or not yet
/// ([`ErrorResponse`] `500.001.1001`).
/// `POST /mpesa/reversal/v1/request`: returns a payment to its payer (all of it:
/// `Amount` is what the payment paid). Daraja spells `RecieverIdentifierType` so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReversalRequest {
    #[serde(rename = "Initiator")]
    pub initiator: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    /// Always `TransactionReversal`.
    #[serde(rename = "CommandID")]
    pub command_id: String,
    /// The payment's M-PESA receipt.
    #[serde(rename = "TransactionID")]
    pub transaction_id: String,
    /// Whole shillings.
    #[serde(rename = "Amount", deserialize_with = "lenient_u64")]
    pub amount: u64,
    /// The shortcode that received the payment.
    #[serde(rename = "ReceiverParty")]
    pub receiver_party: String,
    /// `11` for a paybill or till (an organisation).
    #[serde(rename = "RecieverIdentifierType")]
    pub reciever_identifier_type: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_time_out_url: String,
    /// 2–100 characters.
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "Occasion", default)]
    pub occasion: String,
}

/// Daraja's synchronous answer to an asynchronous request (a reversal): taken when
/// `ResponseCode` is "0"; the result comes to `ResultURL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncResponse {
    #[serde(rename = "OriginatorConversationID", default)]
    pub originator_conversation_id: String,
    #[serde(rename = "ConversationID", default)]
    pub conversation_id: String,
    #[serde(rename = "ResponseCode", deserialize_with = "lenient_string")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription", default)]
    pub response_description: String,
}

/// `POST /mpesa/transactionstatus/v1/query`: what M-PESA knows of a transaction by its
/// receipt (asynchronous: the answer comes to `ResultURL`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionStatusRequest {
    #[serde(rename = "Initiator")]
    pub initiator: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    /// Always `TransactionStatusQuery`.
    #[serde(rename = "CommandID")]
    pub command_id: String,
    /// The M-PESA receipt asked about.
    #[serde(rename = "TransactionID")]
    pub transaction_id: String,
    /// The shortcode asking (ours: the one paid).
    #[serde(rename = "PartyA")]
    pub party_a: String,
    /// `4` for an organisation's shortcode.
    #[serde(rename = "IdentifierType")]
    pub identifier_type: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_time_out_url: String,
    /// 2–100 characters.
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "Occasion", default)]
    pub occasion: String,
}

/// `POST /mpesa/c2b/v1/registerurl`: where M-PESA sends payments made to the shortcode
/// from the M-PESA menu (Lipa na M-PESA → Pay Bill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterUrlRequest {
    #[serde(rename = "ShortCode")]
    pub short_code: String,
    /// What M-PESA does when the validation URL does not answer in time: `Completed`
    /// (take the payment) or `Cancelled`.
    #[serde(rename = "ResponseType")]
    pub response_type: String,
    #[serde(rename = "ConfirmationURL")]
    pub confirmation_url: String,
    #[serde(rename = "ValidationURL")]
    pub validation_url: String,
}

/// Register URL's answer (`OriginatorCoversationID` is Daraja's own spelling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterUrlResponse {
    #[serde(rename = "OriginatorCoversationID", default)]
    pub originator_conversation_id: String,
    #[serde(rename = "ResponseCode")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription", default)]
    pub response_description: String,
}

/// A C2B validation or confirmation: a payment to the shortcode from the M-PESA menu.
/// Amounts and numbers come as strings; `MSISDN` is masked (or hashed) by Safaricom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2bPayment {
    /// `Pay Bill` (or `CustomerPayBillOnline`).
    #[serde(rename = "TransactionType", default)]
    pub transaction_type: String,
    #[serde(rename = "TransID")]
    pub trans_id: String,
    /// `yyyyMMddHHmmss`, Nairobi time.
    #[serde(rename = "TransTime", default)]
    pub trans_time: String,
    #[serde(rename = "TransAmount", deserialize_with = "text_or_number")]
    pub trans_amount: String,
    #[serde(rename = "BusinessShortCode", deserialize_with = "text_or_number")]
    pub business_short_code: String,
    /// The account number the shopper typed.
    #[serde(rename = "BillRefNumber", default)]
    pub bill_ref_number: String,
    #[serde(rename = "InvoiceNumber", default)]
    pub invoice_number: String,
    #[serde(rename = "OrgAccountBalance", default)]
    pub org_account_balance: String,
    #[serde(rename = "ThirdPartyTransID", default)]
    pub third_party_trans_id: String,
    #[serde(rename = "MSISDN", default, deserialize_with = "text_or_number")]
    pub msisdn: String,
    #[serde(rename = "FirstName", default)]
    pub first_name: String,
    #[serde(rename = "MiddleName", default)]
    pub middle_name: String,
    #[serde(rename = "LastName", default)]
    pub last_name: String,
}

/// A JSON string or number, as text.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// The answer to a validation: `0` takes the payment; `C2B00012` (invalid account
/// number), `C2B00013` (invalid amount) refuse it. A confirmation's answer is `0` too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2bAnswer {
    #[serde(rename = "ResultCode")]
    pub result_code: String,
    #[serde(rename = "ResultDesc")]
    pub result_desc: String,
}

/// A Transaction Status result's parameters, as Daraja names them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusParameters {
    /// `Completed` for a payment that went through.
    pub transaction_status: Option<String>,
    pub receipt: Option<String>,
    /// Whole shillings.
    pub amount: Option<u64>,
    /// `174379 - Company Name`: who was paid.
    pub credit_party: Option<String>,
    /// `254712345678 - Jane Doe` (the number may come masked): who paid.
    pub debit_party: Option<String>,
    /// When the payment was made: `YYYYMMDDHHmmss`, Nairobi time.
    pub initiated: Option<String>,
}

/// The parameters of a result (`Result.ResultParameters.ResultParameter[]`, `Key`/`Value`
/// pairs, a lone one possibly not in an array).
pub fn status_parameters(body: &[u8]) -> Option<(AsyncResult, StatusParameters)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let result: AsyncResult = serde_json::from_value(v.get("Result")?.clone()).ok()?;
    let list = &v["Result"]["ResultParameters"]["ResultParameter"];
    let items: Vec<&Value> = match list {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![list],
        _ => Vec::new(),
    };
    let text = |key: &str| -> Option<String> {
        items
            .iter()
            .find(|i| i["Key"] == key)
            .and_then(|i| match &i["Value"] {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    // 1500, 1500.0, "1500.00": whole shillings; a fraction is not a shilling amount.
    let amount = text("Amount").and_then(|a| {
        let (whole, fraction) = a.split_once('.').unwrap_or((&a, ""));
        fraction
            .bytes()
            .all(|b| b == b'0')
            .then(|| whole.parse::<u64>().ok())
            .flatten()
    });
    Some((
        result,
        StatusParameters {
            transaction_status: text("TransactionStatus"),
            receipt: text("ReceiptNo"),
            amount,
            credit_party: text("CreditPartyName"),
            debit_party: text("DebitPartyName"),
            initiated: text("InitiatedTime").or_else(|| text("FinalisedTime")),
        },
    ))
}

/// The result of an asynchronous request, posted to its `ResultURL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEnvelope {
    #[serde(rename = "Result")]
    pub result: AsyncResult,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncResult {
    #[serde(rename = "ResultType", default)]
    pub result_type: Value,
    /// `0`, or a code such as `R000001` (already reversed): a number or a string.
    #[serde(rename = "ResultCode", deserialize_with = "lenient_string")]
    pub result_code: String,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
    #[serde(rename = "OriginatorConversationID", default)]
    pub originator_conversation_id: String,
    #[serde(rename = "ConversationID", default)]
    pub conversation_id: String,
    /// The reversal's own receipt.
    #[serde(rename = "TransactionID", default)]
    pub transaction_id: String,
}

/// The transaction was reversed already (by an earlier send of this reversal whose
/// result was lost, or by hand on the M-PESA portal): the money went back once.
pub const ALREADY_REVERSED: &str = "R000001";

pub fn query_outcome(body: &[u8]) -> Result<RailOutcome, serde_json::Error> {
    if let Ok(err) = serde_json::from_slice::<ErrorResponse>(body) {
        return Ok(if err.error_code == ErrorResponse::STILL_PROCESSING {
            RailOutcome::Pending
        } else {
            RailOutcome::Unknown {
                raw: err.error_code,
            }
        });
    }
    let res: StkQueryResponse = serde_json::from_slice(body)?;
    Ok(ResultCode::parse(&res.result_code).outcome())
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a code, got {other}"
        ))),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("expected a whole number")),
        Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!(
            "expected a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/mpesa/",
                $name
            ))
        };
    }

    fn callback(json: &str) -> StkCallback {
        serde_json::from_str::<CallbackEnvelope>(json)
            .expect("fixture parses")
            .body
            .stk_callback
    }

    #[test]
    fn success_callback_yields_receipt_amount_and_phone() {
        let cb = callback(fixture!("callback_success.json"));
        assert_eq!(cb.checkout_request_id, "ws_CO_191220191020363925");
        assert_eq!(
            ResultCode::parse(&cb.result_code).outcome(),
            RailOutcome::Succeeded
        );
        assert_eq!(
            cb.paid_details(),
            PaidDetails {
                amount: Some(1),
                receipt: Some("NLJ7RT61SV".into()),
                phone: Some("254708374149".into()),
                transaction_date: Some("20191219102115".into()),
            }
        );
    }

    #[test]
    fn every_failure_code_maps_to_its_state() {
        let cases = [
            (
                "insufficient_funds",
                fixture!("callback_insufficient_funds.json"),
                RailOutcome::Failed {
                    code: FailureCode::InsufficientFunds,
                },
            ),
            (
                "cancelled",
                fixture!("callback_cancelled.json"),
                RailOutcome::Cancelled,
            ),
            (
                "wrong_pin",
                fixture!("callback_wrong_pin.json"),
                RailOutcome::Failed {
                    code: FailureCode::WrongPin,
                },
            ),
            (
                "no_response",
                fixture!("callback_no_response.json"),
                RailOutcome::Expired {
                    code: FailureCode::NoResponse,
                },
            ),
            (
                "push_not_sent",
                fixture!("callback_push_not_sent.json"),
                RailOutcome::Failed {
                    code: FailureCode::PushNotDelivered,
                },
            ),
            (
                "subscriber_busy",
                fixture!("callback_subscriber_busy.json"),
                RailOutcome::Failed {
                    code: FailureCode::SubscriberBusy,
                },
            ),
            (
                "string_code",
                fixture!("callback_string_code.json"),
                RailOutcome::Unknown {
                    raw: "SFC_IC0003".into(),
                },
            ),
        ];
        for (file, json, want) in cases {
            let cb = callback(json);
            assert_eq!(ResultCode::parse(&cb.result_code).outcome(), want, "{file}");
            assert!(
                cb.callback_metadata.is_none(),
                "{file}: no metadata on failure"
            );
            assert_eq!(cb.paid_details().receipt, None);
        }
    }

    #[test]
    fn all_named_codes_round_trip() {
        for code in [
            "0", "1", "17", "26", "1001", "1019", "1025", "1032", "1037", "2001",
        ] {
            let parsed = ResultCode::parse(code);
            assert!(!matches!(parsed, ResultCode::Unrecognised(_)), "{code}");
            assert_eq!(parsed.as_code(), code);
        }
        assert_eq!(ResultCode::parse("9999"), ResultCode::PushNotSent);
        assert_eq!(ResultCode::parse("1031"), ResultCode::CancelledByUser);
        assert_eq!(ResultCode::parse(" 2001 "), ResultCode::WrongPin);
    }

    #[test]
    fn balance_without_value_and_float_amounts_parse() {
        let cb = callback(fixture!("callback_success.json"));
        let balance = cb
            .callback_metadata
            .as_ref()
            .unwrap()
            .item
            .iter()
            .find(|i| i.name == "Balance")
            .unwrap();
        assert_eq!(balance.value, None);
        let odd = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m","CheckoutRequestID":"c","ResultCode":"0","ResultDesc":"ok",
            "CallbackMetadata":{"Item":[{"Name":"Amount","Value":"1500"},{"Name":"MpesaReceiptNumber","Value":"QKJ4ABC123"}]}}}}"#;
        assert_eq!(callback(odd).paid_details().amount, Some(1500));
        let frac = odd.replace("\"1500\"", "1500.5");
        assert_eq!(
            callback(&frac).paid_details().amount,
            None,
            "fractions are not whole shillings"
        );
    }

    #[test]
    fn token_and_push_responses_parse() {
        let t: TokenResponse = serde_json::from_str(fixture!("token.json")).unwrap();
        assert_eq!(t.expires_in, 3599);
        let p: StkPushResponse = serde_json::from_str(fixture!("stkpush_accepted.json")).unwrap();
        assert_eq!(
            (p.response_code.as_str(), p.checkout_request_id.as_str()),
            ("0", "ws_CO_191220191020363925")
        );
        let e: ErrorResponse = serde_json::from_str(fixture!("error_invalid_phone.json")).unwrap();
        assert_eq!(e.error_code, ErrorResponse::INVALID_FIELD);
    }

    #[test]
    fn push_request_serialises_with_darajas_field_names() {
        let req = StkPushRequest {
            business_short_code: "174379".into(),
            password: "pw".into(),
            timestamp: "20191219102115".into(),
            transaction_type: TransactionType::CustomerPayBillOnline,
            amount: 1500,
            party_a: "254708374149".into(),
            party_b: "174379".into(),
            phone_number: "254708374149".into(),
            call_back_url: "https://malipo.example/callbacks/mpesa/tok".into(),
            account_reference: "MARA-0042".into(),
            transaction_desc: "Safari".into(),
        };
        let v = serde_json::to_value(&req).unwrap();
        for key in [
            "BusinessShortCode",
            "Password",
            "Timestamp",
            "TransactionType",
            "Amount",
            "PartyA",
            "PartyB",
            "PhoneNumber",
            "CallBackURL",
            "AccountReference",
            "TransactionDesc",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        assert_eq!(v["TransactionType"], "CustomerPayBillOnline");
        assert_eq!(v["Amount"], 1500);
        assert_eq!(serde_json::from_value::<StkPushRequest>(v).unwrap(), req);
    }

    #[test]
    fn query_answers_map_pending_and_final() {
        assert_eq!(
            query_outcome(fixture!("query_processing.json").as_bytes()).unwrap(),
            RailOutcome::Pending
        );
        assert_eq!(
            query_outcome(fixture!("query_cancelled.json").as_bytes()).unwrap(),
            RailOutcome::Cancelled
        );
        assert_eq!(
            query_outcome(fixture!("query_success.json").as_bytes()).unwrap(),
            RailOutcome::Succeeded
        );
        assert!(query_outcome(b"<html>bad gateway</html>").is_err());
    }
}
