//! Mastercard Gateway (MPGS) wire words: `response.gatewayCode`, mapped exhaustively,
//! and the amounts it writes as decimals.

use crate::{
    connectors::{FailureCode, RailOutcome},
    domain::{Money, money::Currency},
};

/// Every `response.gatewayCode` MPGS documents, in our terms. A code not listed here is
/// [`RailOutcome::Unknown`]: the order is asked again, never taken as failed.
pub fn outcome(gateway_code: &str) -> RailOutcome {
    use FailureCode::*;
    let failed = |code| RailOutcome::Failed { code };
    match gateway_code {
        "APPROVED" | "APPROVED_AUTO" | "APPROVED_PENDING_SETTLEMENT" => RailOutcome::Succeeded,
        "PENDING" | "SUBMITTED" | "AUTHENTICATION_IN_PROGRESS" | "DEFERRED_TRANSACTION_RECEIVED" => {
            RailOutcome::Pending
        }
        "INSUFFICIENT_FUNDS" | "NO_BALANCE" => failed(InsufficientFunds),
        "DECLINED"
        | "DECLINED_AVS"
        | "DECLINED_DO_NOT_CONTACT"
        | "DECLINED_INVALID_PIN"
        | "DECLINED_PAYMENT_PLAN"
        | "DECLINED_PIN_REQUIRED"
        | "BLOCKED"
        | "REFERRED"
        | "NOT_SUPPORTED"
        // A partial approval is never taken: the price is paid in full or not at all.
        | "PARTIALLY_APPROVED" => failed(CardDeclined),
        "INVALID_CSC" | "DECLINED_CSC" | "DECLINED_AVS_CSC" => failed(CardDeclined),
        "EXPIRED_CARD" => failed(ExpiredCard),
        "AUTHENTICATION_FAILED" | "NOT_ENROLLED_3D_SECURE" => failed(AuthenticationFailed),
        "TIMED_OUT" => failed(NoResponse),
        "ACQUIRER_SYSTEM_ERROR"
        | "SYSTEM_ERROR"
        | "UNSPECIFIED_FAILURE"
        | "LOCK_FAILURE"
        | "EXCEEDED_RETRY_LIMIT"
        | "DUPLICATE_BATCH" => failed(OperatorError),
        "CANCELLED" => RailOutcome::Cancelled,
        // A balance enquiry's words, or MPGS not knowing: ask the order again.
        "UNKNOWN" | "BALANCE_AVAILABLE" | "BALANCE_UNKNOWN" => RailOutcome::Unknown {
            raw: gateway_code.to_owned(),
        },
        other => RailOutcome::Unknown {
            raw: other.to_owned(),
        },
    }
}

/// `1500.00` for KES 1,500: MPGS writes amounts as decimals in the currency's digits.
pub fn decimal(m: Money) -> String {
    let exp = m.currency().exponent();
    if exp == 0 {
        return m.minor().to_string();
    }
    let unit = 10_i64.pow(exp);
    format!(
        "{}.{:0width$}",
        m.minor() / unit,
        m.minor() % unit,
        width = exp as usize
    )
}

/// An MPGS decimal amount in `currency` back to money: `None` for anything that is not
/// exactly that many digits.
pub fn money(value: &serde_json::Value, currency: &serde_json::Value) -> Option<Money> {
    let currency = Currency::parse(currency.as_str()?)?;
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let exp = currency.exponent() as usize;
    if whole.is_empty()
        || frac.len() > exp
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let minor: i64 = format!("{whole}{frac:0<exp$}").parse().ok()?;
    Money::new(minor, currency).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_outcomes() {
        assert_eq!(outcome("APPROVED"), RailOutcome::Succeeded);
        assert_eq!(
            outcome("INSUFFICIENT_FUNDS"),
            RailOutcome::Failed {
                code: FailureCode::InsufficientFunds
            }
        );
        assert_eq!(
            outcome("PARTIALLY_APPROVED"),
            RailOutcome::Failed {
                code: FailureCode::CardDeclined
            }
        );
        assert!(matches!(outcome("UNKNOWN"), RailOutcome::Unknown { .. }));
        assert!(matches!(
            outcome("SOMETHING_NEW"),
            RailOutcome::Unknown { .. }
        ));
        assert_eq!(outcome("SUBMITTED"), RailOutcome::Pending);
    }

    #[test]
    fn amounts_round_trip_exactly() {
        let kes = Money::new(150_050, Currency::Kes).unwrap();
        assert_eq!(decimal(kes), "1500.50");
        assert_eq!(money(&"1500.50".into(), &"KES".into()), Some(kes));
        assert_eq!(money(&"1500.5".into(), &"KES".into()), Some(kes));
        assert_eq!(money(&"1500.505".into(), &"KES".into()), None);
        let ugx = Money::new(75_000, Currency::Ugx).unwrap();
        assert_eq!(decimal(ugx), "75000");
        assert_eq!(money(&"75000".into(), &"UGX".into()), Some(ugx));
        assert_eq!(money(&"75000.5".into(), &"UGX".into()), None);
    }
}
