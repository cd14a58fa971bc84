//! Which mobile operator a number belongs to, from its prefix, to **pre-select** the
//! shopper's wallet on the page. Only to pre-select: numbers are portable in Kenya
//! (since 2011) and Tanzania (since 2017), so the shopper can always pick another, and an
//! operator's "not our customer" answer offers the other rails.
//!
//! The tables are the national significant numbers' prefixes (9-digit numbers in all
//! five countries) from libphonenumber's carrier data (see `../shared/RAILS.md` §7);
//! the longest matching prefix wins. WASM-safe, so the page's island can use it as the
//! shopper types.

use crate::rail::RailId;

/// A mobile network, as far as paying from its wallet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Kenya: M-PESA.
    Safaricom,
    /// Kenya, Tanzania, Uganda, Rwanda, Zambia: Airtel Money.
    Airtel,
    /// Kenya: T-Kash.
    Telkom,
    /// Kenya: Equitel.
    Equitel,
    /// Tanzania: M-Pesa (Vodacom).
    Vodacom,
    /// Tanzania: Mixx by Yas (formerly Tigo Pesa).
    Yas,
    /// Tanzania: HaloPesa.
    Halotel,
    /// Tanzania: T-Pesa.
    Ttcl,
    /// Uganda, Rwanda, Zambia: MoMo.
    Mtn,
    /// Zambia: Zamtel Kwacha.
    Zamtel,
    /// A network with no wallet Malipo takes (UTL, Smile, Lyca, data-only ranges, …).
    Other,
}

impl Operator {
    /// The rail that takes this operator's wallet, once Malipo speaks it.
    pub fn rail(self) -> Option<RailId> {
        match self {
            Operator::Safaricom => Some(RailId::Mpesa),
            Operator::Mtn => Some(RailId::MtnMomo),
            Operator::Airtel => Some(RailId::Airtel),
            Operator::Yas => Some(RailId::Tigo),
            Operator::Vodacom => Some(RailId::Vodacom),
            Operator::Telkom
            | Operator::Equitel
            | Operator::Halotel
            | Operator::Ttcl
            | Operator::Zamtel
            | Operator::Other => None,
        }
    }
}

/// The operator a number typed on a page paying in `currency` belongs to, if it reads
/// as a mobile number there (`0733 123 456`, `+254733123456`, `733123456`): to
/// pre-select the shopper's wallet as they type.
pub fn operator_typed(input: &str, currency: &str) -> Option<Operator> {
    let calling = match currency {
        "TZS" => "255",
        "UGX" => "256",
        "RWF" => "250",
        "ZMW" => "260",
        _ => "254",
    };
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    let international = match digits.len() {
        9 => format!("{calling}{digits}"),
        10 if digits.starts_with('0') => format!("{calling}{}", &digits[1..]),
        _ => digits.to_owned(),
    };
    operator_of(&international)
}

/// A country whose mobile numbers the page reads (its name is the catalogue's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    Ke,
    Tz,
    Ug,
    Rw,
    Zm,
}

/// How mobile numbers are written where `currency` is spent: the country, a number in
/// the local form shoppers type, and the same in international form (for the field's
/// placeholder and the "doesn't look like a number" message).
pub fn number_style(currency: &str) -> (Country, &'static str, &'static str) {
    match currency {
        "TZS" => (Country::Tz, "0754 123 456", "+255754123456"),
        "UGX" => (Country::Ug, "0772 123 456", "+256772123456"),
        "RWF" => (Country::Rw, "0788 123 456", "+250788123456"),
        "ZMW" => (Country::Zm, "0971 234 567", "+260971234567"),
        _ => (Country::Ke, "0712 345 678", "+254712345678"),
    }
}

use Operator::*;

/// Kenya (+254).
const KENYA: &[(&str, Operator)] = &[
    ("70", Safaricom),
    ("71", Safaricom),
    ("72", Safaricom),
    ("74", Safaricom),
    ("744", Other), // Homeland Media
    ("747", Other), // JTL
    ("757", Safaricom),
    ("758", Safaricom),
    ("759", Safaricom),
    ("768", Safaricom),
    ("769", Safaricom),
    ("79", Safaricom),
    ("11", Safaricom),
    ("140", Safaricom),
    ("141", Safaricom),
    ("142", Safaricom),
    ("143", Safaricom),
    ("144", Safaricom),
    ("145", Safaricom),
    ("18", Safaricom),
    ("73", Airtel),
    ("750", Airtel),
    ("751", Airtel),
    ("752", Airtel),
    ("753", Airtel),
    ("754", Airtel),
    ("755", Airtel),
    ("756", Airtel),
    ("761", Airtel),
    ("762", Airtel),
    ("78", Airtel),
    ("100", Airtel),
    ("101", Airtel),
    ("102", Airtel),
    ("103", Airtel),
    ("104", Airtel),
    ("105", Airtel),
    ("106", Airtel),
    ("107", Airtel),
    ("108", Airtel),
    ("77", Telkom),
    ("120", Telkom),
    ("763", Equitel),
    ("764", Equitel),
    ("765", Equitel),
    ("766", Equitel),
    ("124", Equitel),
    ("121", Other),
    ("13", Other),
    ("760", Other),
    ("767", Other),
];

/// Tanzania (+255).
const TANZANIA: &[(&str, Operator)] = &[
    ("74", Vodacom),
    ("75", Vodacom),
    ("76", Vodacom),
    ("79", Vodacom),
    ("72", Vodacom),
    ("65", Yas),
    ("67", Yas),
    ("71", Yas),
    ("77", Yas),
    ("70", Yas),
    ("66", Airtel),
    ("68", Airtel),
    ("69", Airtel),
    ("78", Airtel),
    ("61", Halotel),
    ("62", Halotel),
    ("63", Halotel),
    ("73", Ttcl),
];

/// Uganda (+256).
const UGANDA: &[(&str, Operator)] = &[
    ("76", Mtn),
    ("77", Mtn),
    ("78", Mtn),
    ("790", Mtn),
    ("791", Mtn),
    ("792", Mtn),
    ("793", Mtn),
    ("794", Mtn),
    ("724", Mtn),
    ("7240", Other), // Hamilton
    ("737", Mtn),
    ("70", Airtel),
    ("74", Airtel),
    ("75", Airtel),
    ("730", Airtel),
    ("731", Airtel),
    ("795", Airtel),
    ("71", Other), // UTL
    ("720", Other),
    ("721", Other),
    ("726", Other),
    ("727", Other),
    ("728", Other),
    ("736", Other),
    ("798", Other),
    ("799", Other),
];

/// Rwanda (+250).
const RWANDA: &[(&str, Operator)] = &[
    ("78", Mtn),
    ("79", Mtn),
    ("72", Airtel),
    ("73", Airtel),
    ("77", Other), // KtRN, data only
];

/// Zambia (+260).
const ZAMBIA: &[(&str, Operator)] = &[
    ("96", Mtn),
    ("76", Mtn),
    ("56", Mtn),
    ("97", Airtel),
    ("77", Airtel),
    ("57", Airtel),
    ("95", Zamtel),
    ("75", Zamtel),
    ("55", Zamtel),
    ("98", Other), // Beeline
    ("78", Other),
    ("58", Other),
];

/// The operator of an international number (`254712345678`: digits, country code
/// first), by the longest matching prefix; `None` for other countries, other lengths,
/// or a range no table knows.
pub fn operator_of(msisdn: &str) -> Option<Operator> {
    if !msisdn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (table, nsn) = [
        ("254", KENYA),
        ("255", TANZANIA),
        ("256", UGANDA),
        ("250", RWANDA),
        ("260", ZAMBIA),
    ]
    .into_iter()
    .find_map(|(code, table)| msisdn.strip_prefix(code).map(|nsn| (table, nsn)))?;
    if nsn.len() != 9 {
        return None;
    }
    table
        .iter()
        .filter(|(prefix, _)| nsn.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, operator)| *operator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kenyan_numbers_go_to_their_networks_longest_prefix_first() {
        for (n, op) in [
            ("254712345678", Safaricom),
            ("254110345678", Safaricom),
            ("254768123456", Safaricom),
            ("254744123456", Other),
            ("254733123456", Airtel),
            ("254755123456", Airtel),
            ("254757123456", Safaricom),
            ("254105123456", Airtel),
        ] {
            assert_eq!(operator_of(n), Some(op), "{n}");
        }
        // Airtel's 010x stops at 0108: 0109 is in no table.
        assert_eq!(operator_of("254109123456"), None);
        assert_eq!(operator_of("254765123456"), Some(Equitel));
        assert_eq!(operator_of("254770123456"), Some(Telkom));
        assert_eq!(Safaricom.rail(), Some(RailId::Mpesa));
        assert_eq!(Mtn.rail(), Some(RailId::MtnMomo));
        assert_eq!(Airtel.rail(), Some(RailId::Airtel));
        assert_eq!(Yas.rail(), Some(RailId::Tigo));
        assert_eq!(Vodacom.rail(), Some(RailId::Vodacom));
        assert_eq!(operator_typed("0713 123 456", "TZS"), Some(Yas));
        assert_eq!(operator_typed("0754 123 456", "TZS"), Some(Vodacom));
        assert_eq!(operator_typed("0733 123 456", "KES"), Some(Airtel));
        assert_eq!(operator_typed("+254 712 345 678", "KES"), Some(Safaricom));
        assert_eq!(operator_typed("772123456", "UGX"), Some(Mtn));
        assert_eq!(operator_typed("0750 123 456", "UGX"), Some(Airtel));
        assert_eq!(operator_typed("07", "KES"), None);
    }

    #[test]
    fn the_other_countries_tables() {
        assert_eq!(operator_of("255754123456"), Some(Vodacom));
        assert_eq!(operator_of("255654123456"), Some(Yas));
        assert_eq!(operator_of("255684123456"), Some(Airtel));
        assert_eq!(operator_of("256772123456"), Some(Mtn));
        assert_eq!(operator_of("256724123456"), Some(Mtn));
        assert_eq!(
            operator_of("256724012345"),
            Some(Other),
            "07240 is Hamilton"
        );
        assert_eq!(operator_of("256701123456"), Some(Airtel));
        assert_eq!(operator_of("250788123456"), Some(Mtn));
        assert_eq!(operator_of("250728123456"), Some(Airtel));
        assert_eq!(operator_of("260966123456"), Some(Mtn));
        assert_eq!(operator_of("260977123456"), Some(Airtel));
        assert_eq!(operator_of("260955123456"), Some(Zamtel));
    }

    #[test]
    fn anything_else_is_unknown() {
        for n in [
            "",
            "2547123456789",
            "25471234567",
            "447912345678",
            "+254712345678",
            "254 712 345 678",
        ] {
            assert_eq!(operator_of(n), None, "{n:?}");
        }
    }
}
