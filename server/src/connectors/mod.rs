//! Connectors to payment rails. One folder per rail; `wire.rs` holds the operator's own
//! types and the mapping from its result codes to [`RailOutcome`].

pub mod mpesa;

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
        }
    }
}
