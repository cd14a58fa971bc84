//! The payment rails Malipo speaks to, by the name stored in the database, used in URLs
//! (`/pay/{id}/{rail}`, `/callbacks/{rail}/…`) and shown to merchants. Shared by the
//! server and the page (WASM-safe: no dependencies).

use std::fmt;

/// A payment rail. The list grows one rail at a time; every `match` on it is
/// exhaustive, so adding one shows every place that must learn about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
