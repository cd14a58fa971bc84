//! The payment rails Malipo speaks to, by the name stored in the database, used in URLs
//! (`/pay/{id}/{rail}`, `/callbacks/{rail}/…`) and shown to merchants. Shared by the
//! server and the page (WASM-safe: no dependencies).

use std::fmt;

/// A payment rail. The list grows one rail at a time: a variant here and its line in
/// [`INFO`]; every `match` on it is exhaustive, so adding one shows every place that must
/// learn about it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RailId {
    /// Safaricom M-PESA, Kenya (Daraja's M-PESA Express).
    Mpesa,
    /// MTN Mobile Money (MoMo), Uganda (the Collection API's request to pay).
    MtnMomo,
    /// Airtel Money, Kenya, Uganda, Tanzania, Rwanda, Zambia (the Open API's USSD push).
    Airtel,
    /// Mixx by Yas (formerly Tigo Pesa), Tanzania (push bill-pay).
    Tigo,
    /// Vodacom M-Pesa, Tanzania (the M-Pesa OpenAPI's synchronous C2B single stage).
    Vodacom,
    /// Cards (Visa, Mastercard, …) through a Mastercard Gateway (MPGS) processor: the
    /// card is typed only into the processor's frames or page.
    Card,
    /// PayPal (Orders v2): the shopper approves on PayPal's own pages, and Malipo takes
    /// the approved payment.
    Paypal,
}

/// What the page and the server say about a rail. (How numbers are written depends on
/// the country, not the rail: [`crate::operators::number_style`].)
pub struct RailInfo {
    /// The stored and URL form: `mpesa`.
    pub id: &'static str,
    /// The name shoppers know it by.
    pub label: &'static str,
    /// How long its prompt stays on the phone, in seconds (the page's countdown).
    pub prompt_secs: i64,
}

/// One line per rail, in the order of [`RailId`]'s variants.
const INFO: [RailInfo; 7] = [
    RailInfo {
        id: "mpesa",
        label: "M-PESA",
        prompt_secs: 60,
    },
    RailInfo {
        id: "mtn_momo",
        label: "MTN MoMo",
        // MTN: "approve a transaction within the given time frame (5 minutes)".
        prompt_secs: 300,
    },
    RailInfo {
        id: "airtel",
        label: "Airtel Money",
        prompt_secs: 60,
    },
    RailInfo {
        id: "tigo",
        label: "Mixx by Yas",
        prompt_secs: 60,
    },
    RailInfo {
        id: "vodacom",
        label: "Vodacom M-Pesa",
        prompt_secs: 60,
    },
    RailInfo {
        id: "card",
        label: "Card",
        // The issuer's 3-D Secure page, at the shopper's pace.
        prompt_secs: 600,
    },
    RailInfo {
        id: "paypal",
        label: "PayPal",
        // PayPal's own pages, at the shopper's pace (log in, choose how to pay).
        prompt_secs: 900,
    },
];

impl RailId {
    pub const ALL: [RailId; 7] = [
        RailId::Mpesa,
        RailId::MtnMomo,
        RailId::Airtel,
        RailId::Tigo,
        RailId::Vodacom,
        RailId::Card,
        RailId::Paypal,
    ];

    /// The mobile-money rails: a push to the shopper's phone, answered with the PIN on
    /// the handset.
    pub const MOBILE_MONEY: [RailId; 5] = [
        RailId::Mpesa,
        RailId::MtnMomo,
        RailId::Airtel,
        RailId::Tigo,
        RailId::Vodacom,
    ];

    /// Whether it is paid by a push to a phone (else on the processor's own pages).
    pub fn is_mobile_money(self) -> bool {
        !matches!(self, RailId::Card | RailId::Paypal)
    }

    pub fn info(self) -> &'static RailInfo {
        &INFO[self as usize]
    }

    /// The stored and URL form: `mpesa`.
    pub fn as_str(self) -> &'static str {
        self.info().id
    }

    pub fn parse(s: &str) -> Option<RailId> {
        RailId::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The name shoppers know it by.
    pub fn label(self) -> &'static str {
        self.info().label
    }

    /// How long its prompt stays on the phone, in seconds (the page's countdown).
    pub fn prompt_secs(self) -> i64 {
        self.info().prompt_secs
    }
}

impl fmt::Display for RailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (i, r) in RailId::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "ALL is in variant order");
            assert_eq!(RailId::parse(r.as_str()), Some(r));
        }
        assert_eq!(RailId::parse("MPESA"), None);
    }
}
