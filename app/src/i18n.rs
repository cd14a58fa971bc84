//! The shopper's language: the texts (generated from `app/locales/*.toml` by
//! `build.rs`: one function per text on [`Locale`], and a words type per island), and
//! how a request's language is chosen.
//!
//! The order, highest first: `?lang=` (the switcher's links), the `malipo_lang` cookie
//! (set by a `?lang=` choice), `Accept-Language`, then the merchant's default. The first
//! three are the request's ([`requested`]); the merchant's default only applies when
//! none of them names a language Malipo speaks.

include!(concat!(env!("OUT_DIR"), "/text.rs"));

/// The cookie that keeps a shopper's choice of language.
pub const COOKIE: &str = "malipo_lang";

/// `template` with each `{name}` replaced by its value. Unknown names stay as written
/// (the build checks every language uses English's names). Runs in the browser too:
/// written with `split` rather than slicing, whose bounds checks would bring panic
/// formatting into the WASM.
#[inline(never)]
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut parts = template.split('{');
    out.push_str(parts.next().unwrap_or(""));
    for part in parts {
        let value = part
            .split_once('}')
            .and_then(|(name, rest)| Some((args.iter().find(|(n, _)| *n == name)?.1, rest)));
        match value {
            Some((value, rest)) => {
                out.push_str(value);
                out.push_str(rest);
            }
            None => {
                out.push('{');
                out.push_str(part);
            }
        }
    }
    out
}

/// `text` split around `marker`, for a value the page wraps in markup: `fill` the
/// template with the marker in the value's place, then split (`("We sent a prompt to ",
/// ".")`). Without the marker, all of it comes first. (A `char`, not a `&str`: a string
/// pattern brings a substring searcher into the WASM.)
pub fn around(text: &str, marker: char) -> (String, String) {
    match text.split_once(marker) {
        Some((a, b)) => (a.to_owned(), b.to_owned()),
        None => (text.to_owned(), String::new()),
    }
}

impl Locale {
    /// `sw`, `SW`, `sw-KE`, `fr_FR` → the language; anything else → `None`.
    pub fn parse(tag: &str) -> Option<Locale> {
        let primary = tag.split(['-', '_']).next()?.trim();
        Locale::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }
}

/// The request's own choice of language, if it names one Malipo speaks: the `lang`
/// query parameter, then the cookie, then the best of `Accept-Language`.
pub fn requested(
    query: Option<&str>,
    cookie: Option<&str>,
    accept_language: Option<&str>,
) -> Option<Locale> {
    query
        .and_then(Locale::parse)
        .or_else(|| cookie.and_then(Locale::parse))
        .or_else(|| accept_language.and_then(best_accepted))
}

/// The language the browser prefers most among Malipo's (`fr-CA,fr;q=0.9,sw;q=0.8` →
/// French); `q=0` means "not this one". Ties keep the header's order.
pub fn best_accepted(header: &str) -> Option<Locale> {
    let mut best: Option<(u16, Locale)> = None;
    for item in header.split(',').take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1000), quality);
        let (Some(q), Some(locale)) = (q, Locale::parse(tag)) else {
            continue;
        };
        if q > 0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, locale));
        }
    }
    best.map(|(_, l)| l)
}

/// A quality value (`0.8`) in thousandths; `None` if malformed.
fn quality(q: &str) -> Option<u16> {
    let q = q.trim();
    let (whole, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    (whole + frac <= 1000).then_some(whole + frac)
}

/// The language the request wants, as the page and its handlers pass it around
/// (`None`: the request named none Malipo speaks; the merchant's default applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requested {
    pub locale: Option<Locale>,
    /// Chosen by the shopper (`?lang=` or the cookie), not inferred from the browser:
    /// the page's forms then carry it, so a framed page (where cookies may not
    /// survive) keeps it across their redirects.
    pub chosen: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_by_name() {
        assert_eq!(
            fill(
                "Pay {amount} to {merchant}",
                &[("merchant", "Lodge"), ("amount", "KES 5")]
            ),
            "Pay KES 5 to Lodge"
        );
        assert_eq!(fill("{x} and {y}", &[("x", "1")]), "1 and {y}");
        assert_eq!(fill("no braces", &[]), "no braces");
        assert_eq!(fill("{open", &[("open", "x")]), "{open");
        assert_eq!(around("to \u{1}.", '\u{1}'), ("to ".into(), ".".into()));
    }

    #[test]
    fn the_query_beats_the_cookie_beats_the_browser() {
        use Locale::*;
        assert_eq!(requested(Some("sw"), Some("fr"), Some("en")), Some(Sw));
        assert_eq!(requested(Some("de"), Some("fr"), Some("en")), Some(Fr));
        assert_eq!(requested(None, None, Some("sw-KE,en;q=0.5")), Some(Sw));
        assert_eq!(requested(None, Some("xx"), Some("de,fr;q=0.3")), Some(Fr));
        assert_eq!(requested(None, None, Some("de-DE,de")), None);
        assert_eq!(requested(None, None, None), None);
    }

    #[test]
    fn accept_language_is_read_by_quality() {
        use Locale::*;
        assert_eq!(best_accepted("en;q=0.5, sw;q=0.9"), Some(Sw));
        assert_eq!(best_accepted("fr-CA, sw;q=1"), Some(Fr), "ties keep order");
        assert_eq!(
            best_accepted("sw;q=0, en;q=0.1"),
            Some(En),
            "q=0 is a refusal"
        );
        assert_eq!(best_accepted("sw;q=2, fr;q=0.5"), Some(Fr), "bad q ignored");
        assert_eq!(best_accepted("*"), None);
        assert_eq!(best_accepted(""), None);
    }

    #[test]
    fn every_language_has_its_code_and_name() {
        for l in Locale::ALL {
            assert_eq!(Locale::parse(l.code()), Some(l));
            assert!(!l.name().is_empty());
        }
        assert_eq!(Locale::parse("SW-ke"), Some(Locale::Sw));
        assert_eq!(Locale::parse(""), None);
    }
}
