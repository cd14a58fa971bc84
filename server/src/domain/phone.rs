//! Phone numbers (MSISDNs) as operators want them: international digits, no `+`.
//!
//! Shoppers type numbers many ways: `0712 345 678`, `+254712345678`, `254712345678`,
//! `712345678`. [`Msisdn::parse`] accepts those for a home country and refuses anything
//! that is not a mobile number there, so no push is ever sent to a mistyped number.

use std::fmt;

/// Countries Malipo's mobile-money rails serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    Kenya,
    Tanzania,
    Uganda,
    Rwanda,
    Zambia,
}

impl Country {
    /// Country calling code.
    pub fn calling_code(self) -> &'static str {
        match self {
            Country::Kenya => "254",
            Country::Tanzania => "255",
            Country::Uganda => "256",
            Country::Rwanda => "250",
            Country::Zambia => "260",
        }
    }

    /// Whether a national significant number (9 digits here) is a mobile number.
    /// Kenya: 7XX and 1XX (Safaricom's newer 011x ranges). Elsewhere: 6X/7X/9X mobile
    /// ranges.
    fn is_mobile(self, nsn: &str) -> bool {
        let first = nsn.as_bytes()[0];
        match self {
            Country::Kenya => matches!(first, b'7' | b'1'),
            Country::Tanzania => matches!(first, b'6' | b'7'),
            Country::Uganda => first == b'7',
            Country::Rwanda => first == b'7',
            Country::Zambia => matches!(first, b'7' | b'9'),
        }
    }

    fn all() -> [Country; 5] {
        [
            Country::Kenya,
            Country::Tanzania,
            Country::Uganda,
            Country::Rwanda,
            Country::Zambia,
        ]
    }
}

/// A mobile number in international form: `254712345678`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Msisdn(String);

impl Msisdn {
    /// Parses what a shopper typed, with `home` the country assumed for local forms.
    /// Spaces, dashes, dots and brackets are ignored; an international number of any of
    /// the supported countries is accepted whatever `home` is.
    pub fn parse(input: &str, home: Country) -> Option<Msisdn> {
        let trimmed = input.trim();
        let plus = trimmed.starts_with('+');
        let mut digits = String::with_capacity(trimmed.len());
        for (i, ch) in trimmed.chars().enumerate() {
            match ch {
                '0'..='9' => digits.push(ch),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return None,
            }
        }
        let digits = digits
            .strip_prefix("00")
            .map(str::to_owned)
            .unwrap_or(digits);
        for country in Country::all() {
            if let Some(nsn) = digits.strip_prefix(country.calling_code())
                && nsn.len() == 9
                && country.is_mobile(nsn)
            {
                return Some(Msisdn(digits));
            }
        }
        if plus {
            return None;
        }
        let nsn = match digits.len() {
            10 if digits.starts_with('0') => &digits[1..],
            9 => &digits[..],
            _ => return None,
        };
        home.is_mobile(nsn)
            .then(|| Msisdn(format!("{}{nsn}", home.calling_code())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs and pages: `2547•••••678`. Never log a full number.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// `0712345678` for a Kenyan number (how Kenyans write it); others as they are.
    pub fn local(&self) -> String {
        local_form(&self.0)
    }
}

/// `254712345678` → `0712345678`; other countries' numbers unchanged.
pub fn local_form(msisdn: &str) -> String {
    match msisdn.strip_prefix("254") {
        Some(nsn) if nsn.len() == 9 => format!("0{nsn}"),
        _ => msisdn.to_owned(),
    }
}

/// Masks the middle of a stored MSISDN: `2547•••••678`.
pub fn mask(s: &str) -> String {
    if !s.is_ascii() || s.len() < 8 {
        return "•".repeat(s.chars().count());
    }
    let (head, tail) = (4, 3);
    format!(
        "{}{}{}",
        &s[..head],
        "•".repeat(s.len() - head - tail),
        &s[s.len() - tail..]
    )
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_ways_kenyans_type_numbers() {
        for input in [
            "0712 345 678",
            "+254712345678",
            "254712345678",
            "712345678",
            "0712-345-678",
            "00254712345678",
            " (0712) 345 678 ",
        ] {
            assert_eq!(
                Msisdn::parse(input, Country::Kenya).map(|m| m.to_string()),
                Some("254712345678".into()),
                "{input}"
            );
        }
        assert_eq!(
            Msisdn::parse("0110 123 456", Country::Kenya)
                .unwrap()
                .as_str(),
            "254110123456"
        );
        // Another country's international number is fine whatever the home country.
        assert_eq!(
            Msisdn::parse("+255 754 123 456", Country::Kenya)
                .unwrap()
                .as_str(),
            "255754123456"
        );
        assert_eq!(
            Msisdn::parse("0754123456", Country::Tanzania)
                .unwrap()
                .as_str(),
            "255754123456"
        );
    }

    #[test]
    fn refuses_what_is_not_a_mobile_number() {
        for input in [
            "",
            "0712",
            "07123456789",
            "0202345678",
            "+254212345678",
            "+44 7700 900123",
            "0712a45678",
            "712 345 67",
            "254712345678;DROP",
        ] {
            assert_eq!(Msisdn::parse(input, Country::Kenya), None, "{input:?}");
        }
    }

    #[test]
    fn masks_the_middle() {
        assert_eq!(
            Msisdn::parse("0712345678", Country::Kenya)
                .unwrap()
                .masked(),
            "2547•••••678"
        );
    }
}
