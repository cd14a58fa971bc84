//! Wall-clock helpers. Times are stored as unix milliseconds (UTC) in both databases;
//! shoppers and Daraja see East Africa Time (UTC+3, no daylight saving).

use std::time::{SystemTime, UNIX_EPOCH};

use app::i18n::Locale;

/// East Africa Time offset from UTC, in seconds.
pub const EAT_OFFSET_SECS: i64 = 3 * 3600;

/// Now, as unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A configured number of seconds as milliseconds, saturating instead of overflowing.
pub fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// A civil date-time, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Breaks unix milliseconds down into a civil time at `offset_secs` from UTC.
/// (Howard Hinnant's days-from-civil inverse; exact for the proleptic Gregorian calendar.)
pub fn civil(ms: i64, offset_secs: i64) -> Civil {
    let secs = ms.div_euclid(1000) + offset_secs;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        minute: ((sod % 3600) / 60) as u32,
        second: (sod % 60) as u32,
    }
}

/// Unix milliseconds of a UTC time written `2026-12-02T10:00:00Z` (fractions of a
/// second ignored, as are offsets other than `Z`: `None`).
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let (h, min, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || h > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's), the inverse of [`civil`].
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60 + sec) * 1000)
}

/// A month's short name in `locale` (1 = January).
fn month(locale: Locale, m: u32) -> &'static str {
    match m {
        1 => locale.month_1(),
        2 => locale.month_2(),
        3 => locale.month_3(),
        4 => locale.month_4(),
        5 => locale.month_5(),
        6 => locale.month_6(),
        7 => locale.month_7(),
        8 => locale.month_8(),
        9 => locale.month_9(),
        10 => locale.month_10(),
        11 => locale.month_11(),
        _ => locale.month_12(),
    }
}

/// "14:05 EAT": a time later today, as a shopper reads it in `locale`.
pub fn eat_clock(ms: i64, locale: Locale) -> String {
    let c = civil(ms, EAT_OFFSET_SECS);
    locale.clock(&format!("{:02}:{:02}", c.hour, c.minute))
}

/// "14:05 EAT, 23 Nov 2026": how the page shows a time to a shopper, in `locale`.
pub fn eat_label(ms: i64, locale: Locale) -> String {
    let c = civil(ms, EAT_OFFSET_SECS);
    locale.time_label(
        &format!("{:02}:{:02}", c.hour, c.minute),
        &if c.day == 1 {
            locale.first_day().to_owned()
        } else {
            c.day.to_string()
        },
        month(locale, c.month),
        &c.year.to_string(),
    )
}

/// "20 Dec 2026" for a service date (`YYYY-MM-DD`, already checked), in `locale`.
pub fn date_label(year: i32, month_number: u32, day: u32, locale: Locale) -> String {
    locale.date(
        &if day == 1 {
            locale.first_day().to_owned()
        } else {
            day.to_string()
        },
        month(locale, month_number),
        &year.to_string(),
    )
}

/// "2026-12-02 10:00:05": a UTC time in the dashboard and its exports.
pub fn format_utc(ms: i64) -> String {
    let c = civil(ms, 0);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Unix milliseconds of the start of a UTC day written `2026-12-02`.
pub fn parse_date(text: &str) -> Option<i64> {
    parse_utc(&format!("{}T00:00:00Z", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_matches_known_instants() {
        // 2019-12-19T07:21:15Z = 10:21:15 in Nairobi (the Daraja docs' sample callback).
        let c = civil(1_576_740_075_000, EAT_OFFSET_SECS);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2019, 12, 19, 10, 21, 15)
        );
        assert_eq!(
            civil(0, 0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // A leap day, and the day rolling over in EAT but not in UTC.
        let leap = 1_709_229_600_000; // 2024-02-29T18:00:00Z
        assert_eq!(eat_label(leap, Locale::En), "21:00 EAT, 29 Feb 2024");
        assert_eq!(eat_label(leap, Locale::Sw), "saa 21:00 EAT, 29 Feb 2024");
        assert_eq!(
            eat_label(leap + 86_400_000 * 170, Locale::Fr),
            "21:00 EAT, le 17 août 2024"
        );
        assert_eq!(
            eat_label(leap + 86_400_000, Locale::Fr),
            "21:00 EAT, le 1er mars 2024"
        );
        let c = civil(leap + 3 * 3_600_000, EAT_OFFSET_SECS);
        assert_eq!((c.month, c.day, c.hour), (3, 1, 0));
        // Before the epoch.
        assert_eq!(civil(-1_000, 0).year, 1969);
    }
}
