//! View models: what a page needs, already decided by the server. Wasm-safe: no
//! database types here.

use serde::{Deserialize, Serialize};

use crate::money::{Currency, format_amount};

/// Where a checkout session stands, as the shopper should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutState {
    /// Waiting for the shopper to pay.
    Open,
    /// Paid; nothing more to do.
    Paid,
    /// Past its expiry (or expired by the merchant) without being paid.
    Expired,
}

/// Everything the hosted checkout page shows for one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutView {
    pub id: String,
    pub merchant_name: String,
    pub description: String,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub state: CheckoutState,
    /// Expiry as unix milliseconds (UTC).
    pub expires_at_ms: i64,
    /// Seconds left until expiry when the page was rendered (0 once expired). The
    /// countdown island ticks down from this, so a phone with a wrong clock still
    /// shows the right time left.
    pub seconds_left: i64,
    /// Expiry as the shopper reads it, in East Africa Time, e.g. "14:05 EAT, 23 Nov".
    pub expires_at_label: String,
    pub cancel_url: String,
}

impl CheckoutView {
    /// "KES 1,500".
    pub fn amount_label(&self) -> String {
        format_amount(self.amount_minor, self.currency)
    }
}
