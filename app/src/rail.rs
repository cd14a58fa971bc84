//! The payment rails Malipo speaks to, by the name stored in the database, used in URLs
//! (`/pay/{id}/{rail}`, `/callbacks/{rail}/…`) and shown to merchants. Shared by the
//! server and the page (WASM-safe: no dependencies).

use std::fmt;

/// A payment rail. The list grows one rail at a time; every `match` on it is
/// exhaustive, so adding one shows every place that must learn about it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RailId {
    /// Safaricom M-PESA, Kenya (Daraja's M-PESA Express).
    Mpesa,
}

impl RailId {
    pub const ALL: [RailId; 1] = [RailId::Mpesa];

    /// The stored and URL form: `mpesa`.
    pub fn as_str(self) -> &'static str {
        match self {
            RailId::Mpesa => "mpesa",
        }
    }

    pub fn parse(s: &str) -> Option<RailId> {
        RailId::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The name shoppers know it by.
    pub fn label(self) -> &'static str {
        match self {
            RailId::Mpesa => "M-PESA",
        }
    }

    /// The name with its article, as in "an M-PESA SMS".
    pub fn a_label(self) -> &'static str {
        match self {
            RailId::Mpesa => "an M-PESA",
        }
    }

    /// How long its prompt stays on the phone, in seconds (the page's countdown).
    pub fn prompt_secs(self) -> i64 {
        match self {
            RailId::Mpesa => 60,
        }
    }

    /// Whose numbers it takes, as an adjective: "Kenyan".
    pub fn country_adjective(self) -> &'static str {
        match self {
            RailId::Mpesa => "Kenyan",
        }
    }

    /// A number in the local form shoppers type, for the field's placeholder.
    pub fn number_example(self) -> &'static str {
        match self {
            RailId::Mpesa => "0712 345 678",
        }
    }

    /// The same number in international form.
    pub fn international_example(self) -> &'static str {
        match self {
            RailId::Mpesa => "+254712345678",
        }
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
        for r in RailId::ALL {
            assert_eq!(RailId::parse(r.as_str()), Some(r));
        }
        assert_eq!(RailId::parse("MPESA"), None);
    }
}
