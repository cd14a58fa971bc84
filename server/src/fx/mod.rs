//! Paying in another currency than the price: exchange rates, quotes and their rounding.
//!
//! A session priced in dollars can be paid from a shilling wallet. The rail's amount is
//! then a [`Quote`]: the rate, where it came from, both amounts and an expiry. The page
//! shows it beside the rail, the pay form carries it back signed ([`Quote::token`]), and
//! the attempt stores it, so the shopper never pays at a rate they did not see and the
//! merchant reads both amounts on the payment and in its webhooks.
//!
//! Rounding is always **up**, to the target currency's minor unit and then to the rail's
//! own unit (whole shillings on M-PESA): never to the merchant's loss. Arithmetic is on
//! integers (`i128`), never floats.

pub mod rates;

pub use rates::Rates;

use std::{fmt, sync::Arc};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    connectors::{Capabilities, RailId},
    domain::{
        MerchantId, Mode, Money,
        money::{Currency, MAX_MINOR},
    },
    store::{SessionRecord, Store, StoreError},
};

/// A positive decimal number exactly as written (`129.00`): its digits and its scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    digits: u64,
    scale: u32,
}

/// Digits a rate may have in all: plenty for any real rate, far from overflow.
const MAX_DIGITS: usize = 15;
/// Digits a rate may have after the point.
const MAX_SCALE: usize = 9;

impl Decimal {
    /// `129`, `129.00`, `0.0077519`: digits with at most one point, greater than zero.
    pub fn parse(s: &str) -> Option<Decimal> {
        let s = s.trim();
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let ok = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !ok(whole) || !ok(frac) || frac.len() > MAX_SCALE {
            return None;
        }
        if s.ends_with('.') {
            return None;
        }
        let all = format!("{whole}{frac}");
        let significant = all.trim_start_matches('0');
        if significant.is_empty() || significant.len() > MAX_DIGITS {
            return None;
        }
        Some(Decimal {
            digits: significant.parse().ok()?,
            scale: frac.len() as u32,
        })
    }

    /// A JSON number as a provider writes it (`129.0`, `0.00775`): its shortest form.
    pub fn from_json(v: &serde_json::Value) -> Option<Decimal> {
        match v {
            serde_json::Value::String(s) => Decimal::parse(s),
            serde_json::Value::Number(n) => Decimal::parse(&n.to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = format!("{:0>width$}", self.digits, width = self.scale as usize + 1);
        let (whole, frac) = digits.split_at(digits.len() - self.scale as usize);
        if frac.is_empty() {
            f.write_str(whole)
        } else {
            write!(f, "{whole}.{frac}")
        }
    }
}

/// An exchange rate: one `base` buys `value` of `quote` (the pair `base/quote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub base: Currency,
    pub quote: Currency,
    pub value: Decimal,
}

impl Rate {
    /// `USD/KES`.
    pub fn pair(&self) -> String {
        format!("{}/{}", self.base, self.quote)
    }

    /// `amount` in `target`, at this rate taken whichever way round it is given, rounded
    /// **up** to a whole `unit` of `target`'s minor units (1, or 100 for whole shillings
    /// in a currency of two decimals). `None`: the rate is not between the two
    /// currencies, or the result is beyond what Malipo takes.
    pub fn convert(&self, amount: Money, target: Currency, unit: i64) -> Option<Money> {
        let source = amount.currency();
        let pow = |e: u32| 10_i128.checked_pow(e);
        let minor = i128::from(amount.minor());
        let digits = i128::from(self.value.digits);
        let (num, den) = if (self.base, self.quote) == (source, target) {
            (
                minor * digits * pow(target.exponent())?,
                pow(self.value.scale)? * pow(source.exponent())?,
            )
        } else if (self.base, self.quote) == (target, source) {
            (
                minor * pow(self.value.scale)? * pow(target.exponent())?,
                digits * pow(source.exponent())?,
            )
        } else {
            return None;
        };
        let unit = i128::from(unit.max(1));
        let rounded = num.div_euclid(den) + i128::from(num.rem_euclid(den) != 0);
        let rounded = (rounded + unit - 1) / unit * unit;
        if rounded > i128::from(MAX_MINOR) {
            return None;
        }
        Money::new(i64::try_from(rounded).ok()?, target).ok()
    }
}

impl fmt::Display for Rate {
    /// `129.00 KES per USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} per {}", self.value, self.quote, self.base)
    }
}

/// Where a rate came from, as the merchant reads it on the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSource {
    /// The merchant's own table (`malipo rates set`, `malipo rates import`).
    Merchant,
    /// The configured HTTP rates provider.
    Provider,
    /// The sandbox's fixed rates (test mode, with no provider configured).
    Sandbox,
}

impl RateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RateSource::Merchant => "merchant",
            RateSource::Provider => "provider",
            RateSource::Sandbox => "sandbox",
        }
    }

    pub fn parse(s: &str) -> Option<RateSource> {
        [
            RateSource::Merchant,
            RateSource::Provider,
            RateSource::Sandbox,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The price in another currency, fixed for a while: what a rail charges for a session
/// priced in a currency it does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The session's price.
    pub source: Money,
    /// What the rail charges.
    pub target: Money,
    pub rate: Rate,
    pub rate_source: RateSource,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms: after this the quote is made again before a push.
    pub expires_at: i64,
}

impl Quote {
    /// Makes a quote for `source` in `target` at `rate`, rounded up to the rail's `unit`.
    pub fn make(
        source: Money,
        target: Currency,
        unit: i64,
        rate: Rate,
        rate_source: RateSource,
        now: i64,
        ttl_ms: i64,
    ) -> Option<Quote> {
        Some(Quote {
            source,
            target: rate.convert(source, target, unit)?,
            rate,
            rate_source,
            created_at: now,
            expires_at: now + ttl_ms,
        })
    }

    /// Same amounts at the same rate (whatever the times): a shopper who saw one has
    /// seen the other.
    pub fn same_terms(&self, other: &Quote) -> bool {
        self.source == other.source && self.target == other.target && self.rate == other.rate
    }

    /// `USD 350 = KES 45,150 at 129.00 KES per USD, valid until 14:05 EAT`, in `locale`.
    pub fn label(&self, locale: app::i18n::Locale) -> String {
        locale.quote(
            &self.source.to_string(),
            &self.target.to_string(),
            &self.rate.value.to_string(),
            self.rate.quote.code(),
            self.rate.base.code(),
            &crate::time::eat_clock(self.expires_at, locale),
        )
    }

    /// The quote as the pay form carries it back: its terms, readable, and an HMAC over
    /// them, the session and the rail under the install's `key`, so a page can neither
    /// make one up nor move one to another session or rail.
    pub fn token(&self, key: &[u8], session: &str, rail: &str) -> String {
        let terms = self.terms();
        format!(
            "{terms}.{}",
            quote_mac(key, session, rail, self.source, &terms)
        )
    }

    /// The quote `token` stands for, if it was made by [`Quote::token`] with `key` for
    /// this session, rail and price.
    pub fn from_token(
        token: &str,
        key: &[u8],
        session: &str,
        rail: &str,
        source: Money,
    ) -> Option<Quote> {
        let (terms, mac) = token.rsplit_once('.')?;
        let want = quote_mac(key, session, rail, source, terms);
        if !crate::connectors::shared::same(&want, mac) {
            return None;
        }
        let mut parts = terms.split('~');
        let mut next = || parts.next();
        let target_currency = Currency::parse(next()?)?;
        let target = Money::new(next()?.parse().ok()?, target_currency).ok()?;
        let rate = Rate {
            base: Currency::parse(next()?)?,
            quote: Currency::parse(next()?)?,
            value: Decimal::parse(next()?)?,
        };
        let rate_source = RateSource::parse(next()?)?;
        let created_at = next()?.parse().ok()?;
        let expires_at = next()?.parse().ok()?;
        Some(Quote {
            source,
            target,
            rate,
            rate_source,
            created_at,
            expires_at,
        })
    }

    /// `KES~4515000~USD~KES~129.00~sandbox~1700000000000~1700000900000`.
    fn terms(&self) -> String {
        format!(
            "{}~{}~{}~{}~{}~{}~{}~{}",
            self.target.currency(),
            self.target.minor(),
            self.rate.base,
            self.rate.quote,
            self.rate.value,
            self.rate_source.as_str(),
            self.created_at,
            self.expires_at
        )
    }

    /// As stored on the attempt.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "source_minor": self.source.minor(),
            "source_currency": self.source.currency().code(),
            "target_minor": self.target.minor(),
            "target_currency": self.target.currency().code(),
            "rate": self.rate.value.to_string(),
            "base": self.rate.base.code(),
            "quote": self.rate.quote.code(),
            "rate_source": self.rate_source.as_str(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        })
        .to_string()
    }

    /// The stored form back; `None` if it is not one.
    pub fn from_json(raw: &str) -> Option<Quote> {
        let v: serde_json::Value = serde_json::from_str(raw).ok()?;
        let money = |minor: &str, currency: &str| {
            Money::new(v[minor].as_i64()?, Currency::parse(v[currency].as_str()?)?).ok()
        };
        Some(Quote {
            source: money("source_minor", "source_currency")?,
            target: money("target_minor", "target_currency")?,
            rate: Rate {
                base: Currency::parse(v["base"].as_str()?)?,
                quote: Currency::parse(v["quote"].as_str()?)?,
                value: Decimal::parse(v["rate"].as_str()?)?,
            },
            rate_source: RateSource::parse(v["rate_source"].as_str()?)?,
            created_at: v["created_at"].as_i64()?,
            expires_at: v["expires_at"].as_i64()?,
        })
    }
}

/// Why a session cannot be paid at a quote.
#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    /// The merchant takes no other currency in this mode, or no rate is known.
    #[error("no quote can be made for this rail")]
    Unavailable,
    /// The shopper has not seen these terms: the quote they saw expired and the rate
    /// moved since (or they saw none). The page shows the new one.
    #[error("the quote changed")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes quotes for the page and checks the one a pay form brings back. Cheap to clone.
#[derive(Clone)]
pub struct Quoter {
    store: Store,
    rates: Rates,
    /// Signs the quotes the page carries ([`Quote::token`]): the install's own key.
    key: Arc<SecretString>,
    ttl_ms: i64,
}

impl Quoter {
    pub fn new(store: Store, rates: Rates, key: SecretString, ttl_ms: i64) -> Quoter {
        Quoter {
            store,
            rates,
            key: Arc::new(key),
            ttl_ms,
        }
    }

    /// The quote for paying `session` on a rail with `caps` that does not take the
    /// price's currency: see [`Quoter::quote_price`].
    pub async fn quote(
        &self,
        session: &SessionRecord,
        caps: &Capabilities,
        now: i64,
    ) -> Result<Option<Quote>, StoreError> {
        self.quote_price(
            &session.merchant_id,
            session.mode,
            session.amount,
            caps,
            now,
        )
        .await
    }

    /// The quote for paying `source`, a merchant's price in `mode`, on a rail with
    /// `caps`: in the first of the rail's currencies with a known rate, rounded up to
    /// the rail's unit. `None`: the merchant takes no other currency in that mode, or
    /// nobody has a rate.
    pub async fn quote_price(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        source: Money,
        caps: &Capabilities,
        now: i64,
    ) -> Result<Option<Quote>, StoreError> {
        if !self.store.conversion(merchant_id, mode).await? {
            return Ok(None);
        }
        for (target, _) in &caps.markets {
            if *target == source.currency() {
                continue;
            }
            let Some((rate, rate_source)) = self
                .rates
                .rate(merchant_id, mode, source.currency(), *target, now)
                .await?
            else {
                continue;
            };
            let unit = if caps.whole_units {
                10_i64.pow(target.exponent())
            } else {
                1
            };
            if let Some(q) = Quote::make(source, *target, unit, rate, rate_source, now, self.ttl_ms)
            {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }

    /// The pay form's token for `quote` on `rail`.
    pub fn token(&self, quote: &Quote, session: &SessionRecord, rail: RailId) -> String {
        quote.token(
            self.key.expose_secret().as_bytes(),
            session.id.as_str(),
            rail.as_str(),
        )
    }

    /// The quote a push on `rail` goes out at, given the `token` of the one the shopper
    /// saw: that one while it is valid (even if the rate has moved since: a quote is a
    /// promise), else a new one on the same terms. New terms are never taken unseen.
    pub async fn confirm(
        &self,
        session: &SessionRecord,
        rail: RailId,
        caps: &Capabilities,
        token: Option<&str>,
        now: i64,
    ) -> Result<Quote, QuoteError> {
        let seen = token.and_then(|t| {
            Quote::from_token(
                t,
                self.key.expose_secret().as_bytes(),
                session.id.as_str(),
                rail.as_str(),
                session.amount,
            )
        });
        let still_served = |q: &Quote| caps.markets.iter().any(|(c, _)| *c == q.target.currency());
        if let Some(seen) = &seen
            && seen.expires_at > now
            && still_served(seen)
            && self
                .store
                .conversion(&session.merchant_id, session.mode)
                .await?
        {
            return Ok(seen.clone());
        }
        let fresh = self
            .quote(session, caps, now)
            .await?
            .ok_or(QuoteError::Unavailable)?;
        match seen {
            Some(seen) if seen.same_terms(&fresh) => Ok(fresh),
            _ => Err(QuoteError::Changed),
        }
    }
}

fn quote_mac(key: &[u8], session: &str, rail: &str, source: Money, terms: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    for part in [
        "fx-quote",
        session,
        rail,
        &source.minor().to_string(),
        source.currency().code(),
        terms,
    ] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    hex::encode(&mac.finalize().into_bytes()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, c: Currency) -> Money {
        Money::new(minor, c).unwrap()
    }

    fn rate(base: Currency, quote: Currency, value: &str) -> Rate {
        Rate {
            base,
            quote,
            value: Decimal::parse(value).unwrap(),
        }
    }

    #[test]
    fn decimals_are_read_and_written_as_given() {
        for s in ["129.00", "129", "0.0077519", "3700.5", "1"] {
            assert_eq!(Decimal::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Decimal::parse("0.05").unwrap().to_string(), "0.05");
        for bad in [
            "",
            "0",
            "0.000",
            "-1",
            "1e3",
            "1.",
            ".5",
            "1.2.3",
            "12a",
            "1.0000000001",
            "1234567890123456",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Decimal::from_json(&serde_json::json!(129.0))
                .unwrap()
                .to_string(),
            "129.0"
        );
        assert_eq!(
            Decimal::from_json(&serde_json::json!("0.00775"))
                .unwrap()
                .to_string(),
            "0.00775"
        );
        assert_eq!(Decimal::from_json(&serde_json::json!(null)), None);
    }

    #[test]
    fn converts_up_never_to_the_merchants_loss() {
        let usd_kes = rate(Currency::Usd, Currency::Kes, "129.00");
        // USD 350 at 129 = KES 45,150 exactly.
        assert_eq!(
            usd_kes.convert(money(35_000, Currency::Usd), Currency::Kes, 1),
            Some(money(4_515_000, Currency::Kes))
        );
        // USD 0.01 = KES 1.29; in whole shillings, KES 2.
        assert_eq!(
            usd_kes.convert(money(1, Currency::Usd), Currency::Kes, 1),
            Some(money(129, Currency::Kes))
        );
        assert_eq!(
            usd_kes.convert(money(1, Currency::Usd), Currency::Kes, 100),
            Some(money(200, Currency::Kes))
        );
        // The other way round: KES 1,000 at 129 KES per USD = USD 7.751… → USD 7.76.
        assert_eq!(
            usd_kes.convert(money(100_000, Currency::Kes), Currency::Usd, 1),
            Some(money(776, Currency::Usd))
        );
        // No minor unit: USD 10.01 at 3,700.5 UGX per USD = UGX 37,042.005 → 37,043.
        let usd_ugx = rate(Currency::Usd, Currency::Ugx, "3700.5");
        assert_eq!(
            usd_ugx.convert(money(1_001, Currency::Usd), Currency::Ugx, 1),
            Some(money(37_043, Currency::Ugx))
        );
        // Not between these currencies.
        assert_eq!(
            usd_kes.convert(money(1, Currency::Eur), Currency::Kes, 1),
            None
        );
        // Beyond what Malipo takes.
        let huge = rate(Currency::Usd, Currency::Kes, "999999999");
        assert_eq!(
            huge.convert(money(MAX_MINOR, Currency::Usd), Currency::Kes, 1),
            None
        );
    }

    #[test]
    fn every_conversion_covers_the_price() {
        // Whatever the amount, converting back at the same rate never comes out short.
        let usd_kes = rate(Currency::Usd, Currency::Kes, "128.37");
        for minor in [1, 7, 99, 101, 12_345, 999_999, 35_000] {
            let usd = money(minor, Currency::Usd);
            let kes = usd_kes.convert(usd, Currency::Kes, 100).unwrap();
            assert_eq!(kes.minor() % 100, 0, "whole shillings");
            // kes / 128.37 ≥ usd, in integers: kes_minor * 100 ≥ usd_minor * 12837.
            assert!(
                i128::from(kes.minor()) * 100 >= i128::from(minor) * 12_837,
                "{minor}"
            );
        }
    }

    fn quote() -> Quote {
        Quote::make(
            money(35_000, Currency::Usd),
            Currency::Kes,
            100,
            rate(Currency::Usd, Currency::Kes, "129.00"),
            RateSource::Sandbox,
            1_700_000_000_000,
            900_000,
        )
        .unwrap()
    }

    #[test]
    fn a_quote_reads_as_the_shopper_sees_it() {
        let q = quote();
        assert_eq!(q.target, money(4_515_000, Currency::Kes));
        let en = q.label(app::i18n::Locale::En);
        assert!(
            en.starts_with("USD 350 = KES 45,150 at 129.00 KES per USD, valid until "),
            "{en}"
        );
        let sw = q.label(app::i18n::Locale::Sw);
        assert!(
            sw.starts_with("USD 350 = KES 45,150 kwa kiwango cha 129.00 KES kwa USD 1, "),
            "{sw}"
        );
        assert_eq!(Quote::from_json(&q.to_json()), Some(q));
    }

    #[test]
    fn a_token_is_good_only_for_its_session_rail_and_price() {
        let q = quote();
        let key = b"install key";
        let token = q.token(key, "cs_1", "mpesa");
        assert_eq!(
            Quote::from_token(&token, key, "cs_1", "mpesa", q.source),
            Some(q.clone())
        );
        assert_eq!(
            Quote::from_token(&token, key, "cs_2", "mpesa", q.source),
            None
        );
        assert_eq!(
            Quote::from_token(&token, key, "cs_1", "airtel", q.source),
            None
        );
        assert_eq!(
            Quote::from_token(&token, key, "cs_1", "mpesa", money(35_001, Currency::Usd)),
            None
        );
        assert_eq!(
            Quote::from_token(&token, b"other key", "cs_1", "mpesa", q.source),
            None
        );
        // A better rate written in by hand is refused.
        let forged = token.replace("~129.00~", "~100.00~");
        assert_eq!(
            Quote::from_token(&forged, key, "cs_1", "mpesa", q.source),
            None
        );
        assert_eq!(
            Quote::from_token("garbage", key, "cs_1", "mpesa", q.source),
            None
        );
    }
}
