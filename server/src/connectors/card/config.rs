//! `[rails.card]` / `[rails_live.card]`: the card processor (an MPGS gateway).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{config::RailSettings, domain::money::Currency};

/// A Mastercard Gateway merchant account, as the acquiring bank hands it over.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CardConfig {
    /// The gateway's origin, e.g. `https://ap-gateway.mastercard.com` or the bank's own
    /// host. Empty: this server's sandbox card gateway, on its own port (test), or off
    /// (live).
    pub base_url: String,
    /// The merchant id on the gateway (`TESTMALIPO` in the sandbox; live ids do not
    /// start with `TEST`).
    pub merchant_id: String,
    /// The API password (from the gateway's Merchant Administration). Default (test)
    /// random per install with the built-in sandbox.
    #[serde(deserialize_with = "crate::config::secret")]
    pub api_password: SecretString,
    /// The currencies the merchant account settles in, comma-separated (`KES,USD`).
    pub currencies: String,
}

pub const SANDBOX_MERCHANT_ID: &str = "TESTMALIPO";
pub const SANDBOX_PASSWORD: &str = "malipo-sandbox-card-password";

impl Default for CardConfig {
    fn default() -> Self {
        CardConfig {
            base_url: String::new(),
            merchant_id: SANDBOX_MERCHANT_ID.into(),
            api_password: SecretString::from(SANDBOX_PASSWORD),
            currencies: "KES,USD,EUR,GBP".into(),
        }
    }
}

impl CardConfig {
    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        CardConfig {
            base_url: String::new(),
            merchant_id: String::new(),
            api_password: SecretString::from(""),
            currencies: "KES,USD".into(),
        }
    }

    /// The currencies it takes, in the order given.
    pub fn currencies(&self) -> Vec<Currency> {
        self.currencies
            .split(',')
            .filter_map(Currency::parse)
            .collect()
    }
}

impl RailSettings for CardConfig {
    fn fields(&self) -> &'static [&'static str] {
        &["base_url", "merchant_id", "api_password", "currencies"]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "merchant_id" => self.merchant_id = value,
            "api_password" => self.api_password = SecretString::from(value),
            "currencies" => self.currencies = value,
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        // The sandbox gateway has its own origin (see `Config::sandbox_card_listen`);
        // this path is only what an empty `base_url` falls back to without it.
        "card"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "api_password" => &self.api_password,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.api_password.expose_secret() == SANDBOX_PASSWORD)
            .then_some(("sandbox_card_api_password", &mut self.api_password))
    }

    fn check(&self) -> Result<(), String> {
        let bad: Vec<&str> = self
            .currencies
            .split(',')
            .filter(|c| Currency::parse(c).is_none())
            .collect();
        if !bad.is_empty() || self.currencies().is_empty() {
            return Err(format!(
                "currencies must be ISO 4217 codes Malipo knows, comma-separated (got {:?})",
                self.currencies
            ));
        }
        Ok(())
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        if self.merchant_id.is_empty()
            || self.merchant_id.starts_with("TEST")
            || self.api_password.expose_secret().is_empty()
            || self.api_password.expose_secret() == SANDBOX_PASSWORD
        {
            return Err("merchant_id (a live one: not TEST…) and api_password must be set".into());
        }
        Ok(())
    }
}
