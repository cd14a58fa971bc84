//! Amounts: integer minor units plus an ISO 4217 currency. Never floats.

pub use app::money::{CURRENCIES, Currency, format_amount};
use std::fmt;

/// The largest amount Malipo accepts, in minor units (10¹³ ≈ KES 100 billion): far above
/// any real booking, far below where arithmetic could overflow.
pub const MAX_MINOR: i64 = 10_000_000_000_000;

/// A positive amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must be a positive whole number of minor units")]
    NotPositive,
    #[error("amount is larger than Malipo accepts")]
    TooLarge,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        if minor > MAX_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self { minor, currency })
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_amount(self.minor, self.currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_bounded_amounts() {
        assert_eq!(Money::new(0, Currency::Kes), Err(MoneyError::NotPositive));
        assert_eq!(Money::new(-5, Currency::Kes), Err(MoneyError::NotPositive));
        assert_eq!(
            Money::new(MAX_MINOR + 1, Currency::Kes),
            Err(MoneyError::TooLarge)
        );
        let m = Money::new(150_000, Currency::Kes).unwrap();
        assert_eq!(m.to_string(), "KES 1,500");
    }
}
