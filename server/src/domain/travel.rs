//! What a travel booking's session says about the trip: its line items (a flight, a
//! bus seat, nights at a lodge), each with a description, a service date and, for
//! transport, where from and to; and the travellers. Shown on the page, returned on the
//! session and its payment, and in their webhooks (as DPO's `Services` and `Travelers`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// At most this many line items on one session.
pub const MAX_LINE_ITEMS: usize = 20;
/// At most this many travellers.
pub const MAX_TRAVELERS: u32 = 999;

/// One service of the booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineItem {
    /// What it is, as the shopper should read it (1–200 characters): `Flight NBO → UKA`,
    /// `2 nights, Diani Reef, full board`.
    pub description: String,
    /// The service date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// For transport: where from, an IATA code or a town (`NBO`, `Arusha`); the page
    /// shows `from → to`, or whichever is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For transport: where to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Who travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Travelers {
    /// How many (1–999).
    pub count: u32,
    /// The lead traveller's name, as booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_name: Option<String>,
}

/// A session's trip, as stored (one JSON column).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Travel {
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub travelers: Option<Travelers>,
}

impl Travel {
    /// `None` when it says nothing.
    pub fn non_empty(self) -> Option<Travel> {
        (!self.line_items.is_empty() || self.travelers.is_some()).then_some(self)
    }
}

/// `(year, month, day)` of a valid `YYYY-MM-DD` calendar date.
pub fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=9999).contains(&y) && (1..=days).contains(&d)).then_some((y as i32, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_real_calendar_days() {
        assert_eq!(parse_date("2026-12-20"), Some((2026, 12, 20)));
        assert_eq!(parse_date("2028-02-29"), Some((2028, 2, 29)));
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "26-12-20",
            "2026/12/20",
            "2026-12-2x",
            "2026-12-20T10:00",
            "0000-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_empty_trip_is_none() {
        assert_eq!(Travel::default().non_empty(), None);
        let t = Travel {
            line_items: vec![],
            travelers: Some(Travelers {
                count: 2,
                lead_name: None,
            }),
        };
        assert_eq!(t.clone().non_empty(), Some(t));
    }
}
