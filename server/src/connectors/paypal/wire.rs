//! PayPal's Orders v2 JSON, read into what Malipo decides on. A payment is decided on
//! the **capture** (`purchase_units[].payments.captures[].status`), never on the order's
//! status: "a completed order can indicate a payment was authorized, captured, or
//! declined".

use serde_json::Value;

use crate::{connectors::card::wire::money, domain::Money};

/// Where an order stands, for Malipo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderState {
    /// Created; the buyer has not approved it (yet): `CREATED`, `SAVED`,
    /// `PAYER_ACTION_REQUIRED`.
    AwaitingBuyer,
    /// The buyer approved it; nothing is taken until it is captured.
    Approved,
    /// A capture exists: its state decides.
    Captured(Capture),
    /// Voided (by the merchant, or by PayPal when an approval was never captured:
    /// `CHECKOUT.PAYMENT-APPROVAL.REVERSED`): nothing was taken.
    Voided,
    /// The capture was refused outright (`INSTRUMENT_DECLINED`, …): nothing was taken.
    Refused(String),
    /// A status we do not know: kept open, for a human.
    Unknown(String),
}

/// The order's capture (the last one: an order with intent CAPTURE has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub id: String,
    pub status: CaptureStatus,
    pub amount: Option<Money>,
    /// Why it is pending (`PENDING_REVIEW`, `RECEIVING_PREFERENCE_MANDATES_MANUAL_ACTION`,
    /// …) or declined.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureStatus {
    /// The money is in (refunded since or not: it was taken).
    Completed,
    /// Taken but held (a review, a currency the account must accept by hand): not yet
    /// paid; PayPal says when it completes or is denied.
    Pending,
    /// Refused: nothing was taken.
    Declined,
    Other(String),
}

/// Reads an order object (`GET /v2/checkout/orders/{id}`, or a capture's answer).
pub fn order_state(order: &Value) -> OrderState {
    if let Some(capture) = last_capture(order) {
        return OrderState::Captured(capture);
    }
    match order["status"].as_str().unwrap_or_default() {
        "CREATED" | "SAVED" | "PAYER_ACTION_REQUIRED" => OrderState::AwaitingBuyer,
        "APPROVED" => OrderState::Approved,
        "VOIDED" => OrderState::Voided,
        // Completed without a capture in it: not something to call paid.
        other => OrderState::Unknown(format!("order {other}")),
    }
}

fn last_capture(order: &Value) -> Option<Capture> {
    let capture = order["purchase_units"]
        .as_array()?
        .iter()
        .filter_map(|unit| unit["payments"]["captures"].as_array())
        .flatten()
        .next_back()?;
    Some(read_capture(capture))
}

/// Reads a capture object (in an order, or a `PAYMENT.CAPTURE.*` event's resource).
pub fn read_capture(capture: &Value) -> Capture {
    let status = match capture["status"].as_str().unwrap_or_default() {
        "COMPLETED" | "PARTIALLY_REFUNDED" | "REFUNDED" => CaptureStatus::Completed,
        "PENDING" => CaptureStatus::Pending,
        "DECLINED" | "FAILED" => CaptureStatus::Declined,
        other => CaptureStatus::Other(other.to_owned()),
    };
    Capture {
        id: capture["id"].as_str().unwrap_or_default().to_owned(),
        status,
        amount: money(
            &capture["amount"]["value"],
            &capture["amount"]["currency_code"],
        ),
        reason: capture["status_details"]["reason"]
            .as_str()
            .map(|r| r.chars().take(80).collect()),
    }
}

/// The buyer's approval link: `payer-action` (with `payment_source.paypal`), or the
/// older `approve`.
pub fn approve_link(order: &Value) -> Option<&str> {
    order["links"]
        .as_array()?
        .iter()
        .find(|l| matches!(l["rel"].as_str(), Some("payer-action" | "approve")))?["href"]
        .as_str()
}

/// The first issue of an error answer (`INSTRUMENT_DECLINED`, `ORDER_ALREADY_CAPTURED`),
/// else its name.
pub fn issue(error: &Value) -> &str {
    error["details"][0]["issue"]
        .as_str()
        .or_else(|| error["name"].as_str())
        .unwrap_or("HTTP")
}

/// The order a webhook event is about: the order itself (`checkout-order` events), or
/// the order a capture belongs to.
pub fn event_order_id(event: &Value) -> Option<&str> {
    let resource = &event["resource"];
    match event["resource_type"].as_str() {
        Some("checkout-order") => resource["id"].as_str(),
        Some("capture") => resource["supplementary_data"]["related_ids"]["order_id"].as_str(),
        _ => None,
    }
    .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(status: &str, captures: Value) -> Value {
        json!({"id": "5O190127TN364715T", "status": status,
            "purchase_units": [{"payments": {"captures": captures}}]})
    }

    #[test]
    fn a_payment_is_decided_on_its_capture_not_the_order() {
        let done = order(
            "COMPLETED",
            json!([{"id": "3C679366HH908993F", "status": "COMPLETED",
                "amount": {"currency_code": "USD", "value": "11.63"}}]),
        );
        let OrderState::Captured(c) = order_state(&done) else {
            panic!()
        };
        assert_eq!(c.status, CaptureStatus::Completed);
        assert_eq!(c.id, "3C679366HH908993F");
        assert_eq!(c.amount.unwrap().minor(), 1163);
        // A completed order whose capture was declined is not paid.
        let declined = order(
            "COMPLETED",
            json!([{"id": "X", "status": "DECLINED",
                "amount": {"currency_code": "USD", "value": "11.63"}}]),
        );
        assert!(matches!(
            order_state(&declined),
            OrderState::Captured(Capture {
                status: CaptureStatus::Declined,
                ..
            })
        ));
        let pending = order(
            "COMPLETED",
            json!([{"id": "X", "status": "PENDING", "status_details": {"reason": "PENDING_REVIEW"},
                "amount": {"currency_code": "USD", "value": "11.63"}}]),
        );
        let OrderState::Captured(c) = order_state(&pending) else {
            panic!()
        };
        assert_eq!(
            (c.status, c.reason.as_deref()),
            (CaptureStatus::Pending, Some("PENDING_REVIEW"))
        );
        assert_eq!(
            order_state(&order("COMPLETED", json!([]))),
            OrderState::Unknown("order COMPLETED".into())
        );
        assert_eq!(
            order_state(&order("APPROVED", json!(null))),
            OrderState::Approved
        );
        assert_eq!(
            order_state(&order("PAYER_ACTION_REQUIRED", json!(null))),
            OrderState::AwaitingBuyer
        );
        assert_eq!(
            order_state(&order("VOIDED", json!(null))),
            OrderState::Voided
        );
    }

    #[test]
    fn events_name_their_order() {
        let approved =
            json!({"resource_type": "checkout-order", "resource": {"id": "5O190127TN364715T"}});
        assert_eq!(event_order_id(&approved), Some("5O190127TN364715T"));
        let captured = json!({"resource_type": "capture", "resource": {"id": "C1",
            "supplementary_data": {"related_ids": {"order_id": "5O190127TN364715T"}}}});
        assert_eq!(event_order_id(&captured), Some("5O190127TN364715T"));
        let odd = json!({"resource_type": "checkout-order", "resource": {"id": "../x"}});
        assert_eq!(event_order_id(&odd), None);
        assert_eq!(
            issue(
                &json!({"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "INSTRUMENT_DECLINED"}]})
            ),
            "INSTRUMENT_DECLINED"
        );
    }
}
