//! Test cards: what the sandbox card gateway decides for a card, from Mastercard
//! Gateway's published test table (outcome by expiry date, CVV result by code) and the
//! common test numbers as aliases. Card numbers live here in memory only.

/// A card as typed into the gateway's frames (never stored by Malipo).
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    pub number: String,
    pub expiry_month: u32,
    /// Two digits (`39` for 2039).
    pub expiry_year: u32,
    pub security_code: String,
}

impl std::fmt::Debug for Card {
    /// Masked: a card number never reaches a log, even the sandbox's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Card({})", masked(&self.number))
    }
}

/// Whether `digits` pass the Luhn check (and are 12–19 digits long).
pub fn luhn_valid(digits: &str) -> bool {
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The card's scheme, MPGS-style (`VISA`, `MASTERCARD`, `AMEX`, …).
pub fn brand(number: &str) -> &'static str {
    let prefix = |p: &str| number.starts_with(p);
    let two: u32 = number.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let four: u32 = number.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    if prefix("4") {
        "VISA"
    } else if (51..=55).contains(&two) || (2221..=2720).contains(&four) {
        "MASTERCARD"
    } else if prefix("34") || prefix("37") {
        "AMEX"
    } else if (3528..=3589).contains(&four) {
        "JCB"
    } else if prefix("30") || prefix("36") || prefix("38") {
        "DINERS_CLUB"
    } else {
        "UNKNOWN"
    }
}

/// MPGS's masked form: the first 6 and last 4 digits (`424242xxxxxx4242`).
pub fn masked(number: &str) -> String {
    if number.len() < 10 {
        return "x".repeat(number.len());
    }
    format!(
        "{}{}{}",
        &number[..6],
        "x".repeat(number.len() - 10),
        &number[number.len() - 4..]
    )
}

/// What 3-D Secure does for a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreeDs {
    /// Not enrolled: paid without authentication.
    NotEnrolled,
    /// Enrolled; the issuer authenticates without the shopper (frictionless).
    Frictionless,
    /// Enrolled; the shopper must pass a challenge at the issuer's page.
    Challenge,
    /// Enrolled; the challenge is passed but the payment is then declined.
    ChallengeThenDecline,
}

/// How a card is treated: its 3-D Secure and the `gatewayCode` a payment gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub three_ds: ThreeDs,
    pub gateway_code: &'static str,
}

/// The test table. Aliases first (any future expiry, any CVV):
/// `4242 4242 4242 4242` approves (frictionless 3-D Secure), `4000 0000 0000 3220`
/// needs a challenge then approves, `4000 0084 0000 1629` needs a challenge then is
/// declined, `4000 0000 0000 0002` is declined, `4000 0000 0000 9995` has insufficient
/// funds, `4000 0000 0000 0069` is expired, `4000 0000 0000 0119` fails in processing.
/// Any other valid number follows MPGS's table by expiry — 01/39 APPROVED, 05/39
/// DECLINED, 04/27 EXPIRED_CARD, 08/28 TIMED_OUT, 01/37 ACQUIRER_SYSTEM_ERROR, 02/37
/// UNSPECIFIED_FAILURE, 05/37 UNKNOWN, anything else APPROVED — and by CVV: 100 (1000
/// on Amex) matches, 101 (1010) is not processed, 102 (1020) does not match and is
/// declined. MPGS's 3-D Secure test cards (5123 4500 0000 0008, 4508 7500 1574 1019)
/// are challenged; 5111 1111 1111 1118 is not enrolled.
pub fn script(card: &Card) -> Script {
    let alias = |three_ds, gateway_code| Script {
        three_ds,
        gateway_code,
    };
    match card.number.as_str() {
        "4242424242424242" => return alias(ThreeDs::Frictionless, "APPROVED"),
        "4000000000003220" => return alias(ThreeDs::Challenge, "APPROVED"),
        "4000008400001629" => return alias(ThreeDs::ChallengeThenDecline, "DECLINED"),
        "4000000000000002" => return alias(ThreeDs::Frictionless, "DECLINED"),
        "4000000000009995" => return alias(ThreeDs::Frictionless, "INSUFFICIENT_FUNDS"),
        "4000000000000069" => return alias(ThreeDs::Frictionless, "EXPIRED_CARD"),
        "4000000000000119" => return alias(ThreeDs::Frictionless, "SYSTEM_ERROR"),
        _ => {}
    }
    let three_ds = match card.number.as_str() {
        "5123450000000008" | "4508750015741019" | "2223000000000007" => ThreeDs::Challenge,
        "5111111111111118" => ThreeDs::NotEnrolled,
        _ => ThreeDs::Frictionless,
    };
    let by_expiry = match (card.expiry_month, card.expiry_year) {
        (5, 39) => "DECLINED",
        (4, 27) => "EXPIRED_CARD",
        (8, 28) => "TIMED_OUT",
        (1, 37) => "ACQUIRER_SYSTEM_ERROR",
        (2, 37) => "UNSPECIFIED_FAILURE",
        (5, 37) => "UNKNOWN",
        _ => "APPROVED",
    };
    let cvv_declines = matches!(card.security_code.as_str(), "102" | "1020");
    Script {
        three_ds,
        gateway_code: if by_expiry == "APPROVED" && cvv_declines {
            "DECLINED"
        } else {
            by_expiry
        },
    }
}

/// The CVV check's own code (`MATCH`, `NOT_PROCESSED`, `NO_MATCH`).
pub fn security_code_result(code: &str) -> &'static str {
    match code {
        "101" | "1010" => "NOT_PROCESSED",
        "102" | "1020" => "NO_MATCH",
        _ => "MATCH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str, month: u32, year: u32, cvv: &str) -> Card {
        Card {
            number: number.into(),
            expiry_month: month,
            expiry_year: year,
            security_code: cvv.into(),
        }
    }

    #[test]
    fn luhn_brand_and_mask() {
        assert!(luhn_valid("4242424242424242"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(luhn_valid("5123450000000008"));
        assert!(!luhn_valid("42424242"));
        assert_eq!(brand("4242424242424242"), "VISA");
        assert_eq!(brand("5123450000000008"), "MASTERCARD");
        assert_eq!(brand("2223000000000007"), "MASTERCARD");
        assert_eq!(brand("378282246310005"), "AMEX");
        assert_eq!(masked("4242424242424242"), "424242xxxxxx4242");
        assert_eq!(
            format!("{:?}", card("4242424242424242", 1, 39, "100")),
            "Card(424242xxxxxx4242)"
        );
    }

    #[test]
    fn the_test_table() {
        let s = |n, m, y, c| script(&card(n, m, y, c));
        assert_eq!(
            s("4242424242424242", 12, 30, "123").gateway_code,
            "APPROVED"
        );
        assert_eq!(
            s("4000000000003220", 12, 30, "123").three_ds,
            ThreeDs::Challenge
        );
        assert_eq!(
            s("4000000000000002", 12, 30, "123").gateway_code,
            "DECLINED"
        );
        assert_eq!(
            s("4000000000009995", 12, 30, "123").gateway_code,
            "INSUFFICIENT_FUNDS"
        );
        assert_eq!(s("5111111111111118", 1, 39, "100").gateway_code, "APPROVED");
        assert_eq!(
            s("5111111111111118", 1, 39, "100").three_ds,
            ThreeDs::NotEnrolled
        );
        assert_eq!(s("5111111111111118", 5, 39, "100").gateway_code, "DECLINED");
        assert_eq!(
            s("5111111111111118", 4, 27, "100").gateway_code,
            "EXPIRED_CARD"
        );
        assert_eq!(
            s("5111111111111118", 8, 28, "100").gateway_code,
            "TIMED_OUT"
        );
        assert_eq!(s("5111111111111118", 1, 39, "102").gateway_code, "DECLINED");
        assert_eq!(security_code_result("101"), "NOT_PROCESSED");
    }
}
