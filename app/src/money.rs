//! Currencies and amount formatting. Amounts are always integer minor units.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The ISO 4217 currencies Malipo settles in. Adding one means adding its exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// Kenyan shilling.
    Kes,
    /// Tanzanian shilling.
    Tzs,
    /// Ugandan shilling (no minor unit).
    Ugx,
    /// Rwandan franc (no minor unit).
    Rwf,
    /// Zambian kwacha.
    Zmw,
    /// Ghanaian cedi.
    Ghs,
    /// Congolese franc.
    Cdf,
    /// Malawian kwacha.
    Mwk,
    /// US dollar (airlines and lodges often price in it).
    Usd,
    /// Euro.
    Eur,
    /// Pound sterling.
    Gbp,
}

/// All supported currencies, for validation messages and tests.
pub const CURRENCIES: [Currency; 11] = [
    Currency::Kes,
    Currency::Tzs,
    Currency::Ugx,
    Currency::Rwf,
    Currency::Zmw,
    Currency::Ghs,
    Currency::Cdf,
    Currency::Mwk,
    Currency::Usd,
    Currency::Eur,
    Currency::Gbp,
];

impl Currency {
    /// The ISO 4217 alphabetic code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Kes => "KES",
            Currency::Tzs => "TZS",
            Currency::Ugx => "UGX",
            Currency::Rwf => "RWF",
            Currency::Zmw => "ZMW",
            Currency::Ghs => "GHS",
            Currency::Cdf => "CDF",
            Currency::Mwk => "MWK",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
        }
    }

    /// Digits after the decimal point (ISO 4217 minor unit exponent).
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Ugx | Currency::Rwf => 0,
            Currency::Kes
            | Currency::Tzs
            | Currency::Zmw
            | Currency::Ghs
            | Currency::Cdf
            | Currency::Mwk
            | Currency::Usd
            | Currency::Eur
            | Currency::Gbp => 2,
        }
    }

    /// Parses an ISO 4217 code, case-insensitively.
    pub fn parse(code: &str) -> Option<Currency> {
        CURRENCIES
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(code.trim()))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Formats an amount the way a shopper reads it: `KES 1,500`, `KES 1,500.50`,
/// `UGX 75,000`, `USD 12.05`. Whole amounts drop the minor digits, because mobile money
/// prompts show whole shillings and "1,500.00" reads as noise on a small screen.
pub fn format_amount(minor: i64, currency: Currency) -> String {
    let exp = currency.exponent();
    let scale = 10_i64.pow(exp);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let major = abs / scale as u64;
    let frac = abs % scale as u64;
    let mut out = format!("{} {sign}{}", currency.code(), group_thousands(major));
    if frac != 0 {
        out.push_str(&format!(".{frac:0width$}", width = exp as usize));
    }
    out
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_and_fractional_amounts() {
        assert_eq!(format_amount(150_000, Currency::Kes), "KES 1,500");
        assert_eq!(format_amount(150_050, Currency::Kes), "KES 1,500.50");
        assert_eq!(format_amount(1_205, Currency::Usd), "USD 12.05");
        assert_eq!(format_amount(75_000, Currency::Ugx), "UGX 75,000");
        assert_eq!(format_amount(0, Currency::Tzs), "TZS 0");
        assert_eq!(format_amount(99, Currency::Kes), "KES 0.99");
        assert_eq!(
            format_amount(123_456_789_00, Currency::Tzs),
            "TZS 123,456,789"
        );
        assert_eq!(format_amount(-1_500, Currency::Rwf), "RWF -1,500");
    }

    #[test]
    fn parses_codes_case_insensitively() {
        assert_eq!(Currency::parse("kes"), Some(Currency::Kes));
        assert_eq!(Currency::parse(" UGX "), Some(Currency::Ugx));
        assert_eq!(Currency::parse("XXX"), None);
        for c in CURRENCIES {
            assert_eq!(Currency::parse(c.code()), Some(c));
        }
    }
}
