//! Where rates come from: the merchant's own table first, then an HTTP rates provider.
//!
//! The provider is asked `GET {url}?base=USD` and answers the shape most rate APIs share
//! (`{"base": "USD", "rates": {"KES": 129.0, …}}`, numbers or decimal strings). Answers
//! are kept for [`crate::config::FxConfig::provider_cache_secs`], and a provider that is
//! down is asked again only after [`RETRY_DOWN_MS`], so a page view never waits on it
//! twice. In test mode, with no provider configured, this server's own sandbox answers
//! with fixed, documented rates (`/sandbox/fx/rates`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{Decimal, Rate, RateSource};
use crate::{
    domain::{MerchantId, Mode, money::Currency},
    store::{Store, StoreError},
};

/// A provider that failed is not asked again for this long.
const RETRY_DOWN_MS: i64 = 30_000;
/// How long one provider request may take (a page may wait on it once per cache period).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest provider answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// A provider, per mode.
#[derive(Debug, Clone)]
struct Provider {
    url: String,
    source: RateSource,
}

type Table = HashMap<Currency, Decimal>;

/// One lock per (mode, base) a provider is being asked about.
type Gates = HashMap<(Mode, Currency), Arc<tokio::sync::Mutex<()>>>;

struct Cached {
    at: i64,
    /// `None`: the provider could not be read then.
    rates: Option<Arc<Table>>,
}

/// The rates service. Cheap to clone.
#[derive(Clone)]
pub struct Rates {
    store: Store,
    http: reqwest::Client,
    test: Option<Provider>,
    live: Option<Provider>,
    cache_ms: i64,
    cache: Arc<Mutex<HashMap<(Mode, Currency), Cached>>>,
    /// One fetch per (mode, base) at a time: page views arriving while it runs wait for
    /// its answer instead of asking the provider too.
    fetching: Arc<Mutex<Gates>>,
}

impl Rates {
    /// `test_url`: test mode's provider (`sandbox`: it is this server's own sandbox);
    /// `live_url`: live mode's, if any.
    pub fn new(
        store: Store,
        test_url: Option<(String, bool)>,
        live_url: Option<String>,
        cache_ms: i64,
    ) -> Result<Rates, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Rates {
            store,
            http,
            test: test_url.map(|(url, sandbox)| Provider {
                url,
                source: if sandbox {
                    RateSource::Sandbox
                } else {
                    RateSource::Provider
                },
            }),
            live: live_url.map(|url| Provider {
                url,
                source: RateSource::Provider,
            }),
            cache_ms,
            cache: Arc::default(),
            fetching: Arc::default(),
        })
    }

    /// The rate between `from` and `to` for a merchant's session in `mode`, and where it
    /// came from: the merchant's table, else the mode's provider; either way round.
    /// `None`: nobody has one.
    pub async fn rate(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        from: Currency,
        to: Currency,
        now: i64,
    ) -> Result<Option<(Rate, RateSource)>, StoreError> {
        if let Some(rate) = self
            .store
            .merchant_rate(merchant_id, mode, from, to)
            .await?
        {
            return Ok(Some((rate, RateSource::Merchant)));
        }
        let Some(provider) = (match mode {
            Mode::Test => &self.test,
            Mode::Live => &self.live,
        }) else {
            return Ok(None);
        };
        for (base, quote) in [(from, to), (to, from)] {
            let Some(table) = self.table(provider, mode, base, now).await else {
                continue;
            };
            if let Some(value) = table.get(&quote) {
                let rate = Rate {
                    base,
                    quote,
                    value: *value,
                };
                return Ok(Some((rate, provider.source)));
            }
        }
        Ok(None)
    }

    /// The provider's rates from `base`, cached.
    async fn table(
        &self,
        provider: &Provider,
        mode: Mode,
        base: Currency,
        now: i64,
    ) -> Option<Arc<Table>> {
        if let Some(hit) = self.cached(mode, base, now) {
            return hit;
        }
        let gate = {
            let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
            fetching.entry((mode, base)).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        // Answered while this request waited its turn.
        if let Some(hit) = self.cached(mode, base, now) {
            return hit;
        }
        let rates = match self.fetch(&provider.url, base).await {
            Ok(table) => Some(Arc::new(table)),
            Err(why) => {
                // The host only: a provider URL may carry a key in its query.
                let host = url::Url::parse(&provider.url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                tracing::warn!(%host, base = base.code(), %why, "rates provider unreadable; not converting for now");
                None
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            (mode, base),
            Cached {
                at: now,
                rates: rates.clone(),
            },
        );
        rates
    }

    /// The cached answer for `base`, while it is fresh (`Some(None)`: the provider was
    /// down, recently).
    fn cached(&self, mode: Mode, base: Currency, now: i64) -> Option<Option<Arc<Table>>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let hit = cache.get(&(mode, base))?;
        let fresh_for = if hit.rates.is_some() {
            self.cache_ms
        } else {
            RETRY_DOWN_MS
        };
        (now - hit.at < fresh_for).then(|| hit.rates.clone())
    }

    async fn fetch(&self, url: &str, base: Currency) -> Result<Table, String> {
        let mut url = url::Url::parse(url).map_err(|e| e.to_string())?;
        url.query_pairs_mut().append_pair("base", base.code());
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER as u64)
        {
            return Err("answer too large".into());
        }
        // Read no more than the limit, whatever the provider sends.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading failed: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err("answer too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        parse_table(&body, base)
    }
}

/// A provider's answer: `{"base": "USD", "rates": {"KES": 129.0}}`. Currencies Malipo does
/// not know, and rates it cannot read, are skipped.
pub fn parse_table(body: &[u8], base: Currency) -> Result<Table, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_string())?;
    if let Some(said) = v.get("base").and_then(|b| b.as_str())
        && Currency::parse(said) != Some(base)
    {
        return Err(format!("asked for base {base}, got {said:?}"));
    }
    let rates = v
        .get("rates")
        .and_then(|r| r.as_object())
        .ok_or("no rates object")?;
    Ok(rates
        .iter()
        .filter_map(|(code, value)| Some((Currency::parse(code)?, Decimal::from_json(value)?)))
        .filter(|(c, _)| *c != base)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_providers_answer_is_read_leniently_but_never_misread() {
        let table = parse_table(
            br#"{"base":"USD","timestamp":1,"rates":{"KES":129.0,"TZS":"2450.00","XAU":0.0004,"UGX":-3,"USD":1}}"#,
            Currency::Usd,
        )
        .unwrap();
        assert_eq!(table.len(), 2, "{table:?}");
        assert_eq!(table[&Currency::Kes].to_string(), "129.0");
        assert_eq!(table[&Currency::Tzs].to_string(), "2450.00");
        assert!(parse_table(br#"{"base":"EUR","rates":{}}"#, Currency::Usd).is_err());
        assert!(parse_table(b"<html>", Currency::Usd).is_err());
        assert!(parse_table(br#"{"base":"USD"}"#, Currency::Usd).is_err());
    }
}
