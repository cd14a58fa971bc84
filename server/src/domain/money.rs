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

/// An amount typed in major units (`1500`, `1,500.50`) in `currency`'s minor units:
/// `None` for anything else (more decimals than the currency has, signs, words, zero).
pub fn parse_major(text: &str, currency: Currency) -> Option<i64> {
    let text: String = text.trim().chars().filter(|c| *c != ',').collect();
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let exp = currency.exponent() as usize;
    if whole.is_empty()
        || whole.len() > 15
        || frac.len() > exp
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = 10_i64.pow(exp as u32);
    let frac_minor: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<exp$}").parse().ok()?
    };
    let minor = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(frac_minor)?;
    (minor > 0).then_some(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_amounts_parse_to_minor_units() {
        let kes = Currency::parse("KES").unwrap();
        let ugx = Currency::parse("UGX").unwrap();
        assert_eq!(parse_major("1500", kes), Some(150_000));
        assert_eq!(parse_major(" 1,500.5 ", kes), Some(150_050));
        assert_eq!(parse_major("0.01", kes), Some(1));
        assert_eq!(parse_major("75000", ugx), Some(75_000));
        for bad in ["", "0", "-5", "1.234", "abc", "1e3", ".5", "75000.5"] {
            let c = if bad == "75000.5" { ugx } else { kes };
            assert_eq!(parse_major(bad, c), None, "{bad:?}");
        }
    }

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
