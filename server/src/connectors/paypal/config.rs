//! `[rails.paypal]` / `[rails_live.paypal]`: a PayPal REST app (Orders v2).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{config::RailSettings, domain::money::Currency};

/// A PayPal REST app's credentials and its webhook, as the PayPal developer dashboard
/// shows them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaypalConfig {
    /// PayPal's API origin: `https://api-m.paypal.com` (live) or
    /// `https://api-m.sandbox.paypal.com`. Empty: this server's sandbox PayPal, on its own
    /// port (test), or off (live).
    pub base_url: String,
    /// The REST app's client id.
    pub client_id: String,
    /// The REST app's secret. Default (test) random per install with the built-in
    /// sandbox.
    #[serde(deserialize_with = "crate::config::secret")]
    pub client_secret: SecretString,
    /// The id PayPal gave the webhook subscribed to `{public_url}/callbacks/paypal`: it is
    /// part of every event's signature, so events for another app's webhook are refused.
    pub webhook_id: String,
    /// The currencies the PayPal account receives, comma-separated (`USD,EUR`). PayPal
    /// takes no East African currency: prices in those are paid at a quote.
    pub currencies: String,
}

pub const SANDBOX_CLIENT_ID: &str = "malipo-sandbox-paypal-client";
pub const SANDBOX_SECRET: &str = "malipo-sandbox-paypal-secret";
/// The webhook id the sandbox PayPal signs its events for.
pub const SANDBOX_WEBHOOK_ID: &str = "WH-MALIPO-SANDBOX-0000000000";

/// The currencies PayPal's REST API takes that Malipo knows (PayPal's list has no
/// KES, TZS, UGX, RWF or ZMW).
const PAYPAL_CURRENCIES: [Currency; 3] = [Currency::Usd, Currency::Eur, Currency::Gbp];

impl Default for PaypalConfig {
    fn default() -> Self {
        PaypalConfig {
            base_url: String::new(),
            client_id: SANDBOX_CLIENT_ID.into(),
            client_secret: SecretString::from(SANDBOX_SECRET),
            webhook_id: SANDBOX_WEBHOOK_ID.into(),
            currencies: "USD,EUR,GBP".into(),
        }
    }
}

impl PaypalConfig {
    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        PaypalConfig {
            base_url: String::new(),
            client_id: String::new(),
            client_secret: SecretString::from(""),
            webhook_id: String::new(),
            currencies: "USD".into(),
        }
    }

    /// The currencies it takes, in the order given.
    pub fn currencies(&self) -> Vec<Currency> {
        self.currencies
            .split(',')
            .filter_map(|c| Currency::parse(c.trim()))
            .collect()
    }
}

impl RailSettings for PaypalConfig {
    fn fields(&self) -> &'static [&'static str] {
        &[
            "base_url",
            "client_id",
            "client_secret",
            "webhook_id",
            "currencies",
        ]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "client_id" => self.client_id = value,
            "client_secret" => self.client_secret = SecretString::from(value),
            "webhook_id" => self.webhook_id = value,
            "currencies" => self.currencies = value,
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        // The sandbox PayPal has its own origin (see `Config::sandbox_paypal_listen`);
        // this path is only what an empty `base_url` falls back to without it.
        "paypal"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "client_secret" => &self.client_secret,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.client_secret.expose_secret() == SANDBOX_SECRET)
            .then_some(("sandbox_paypal_client_secret", &mut self.client_secret))
    }

    fn check(&self) -> Result<(), String> {
        let all: Vec<&str> = self.currencies.split(',').map(str::trim).collect();
        let bad: Vec<&str> = all
            .iter()
            .copied()
            .filter(|c| Currency::parse(c).is_none_or(|c| !PAYPAL_CURRENCIES.contains(&c)))
            .collect();
        if !bad.is_empty() || self.currencies().is_empty() {
            return Err(format!(
                "currencies must be ones PayPal takes (USD, EUR, GBP), comma-separated (got {:?})",
                self.currencies
            ));
        }
        if self.webhook_id.len() > 64 {
            return Err("webhook_id is at most 64 characters".into());
        }
        Ok(())
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        if self.client_id.is_empty()
            || self.client_id == SANDBOX_CLIENT_ID
            || self.client_secret.expose_secret().is_empty()
            || self.client_secret.expose_secret() == SANDBOX_SECRET
            || self.webhook_id.is_empty()
            || self.webhook_id == SANDBOX_WEBHOOK_ID
        {
            return Err(
                "client_id, client_secret and webhook_id (the live REST app's) must be set".into(),
            );
        }
        Ok(())
    }
}
