//! `[rails.airtel]` / `[rails_live.airtel]`: Airtel Money Open API settings.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    config::{RailSettings, secret},
    domain::{money::Currency, phone::Country},
};

/// Airtel Money credentials (one app serves every country it is enabled for). The
/// defaults are those of Malipo's own sandbox Airtel, so test mode works out of the box.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AirtelConfig {
    /// `https://openapi.airtel.africa` (or a country's host). Empty: this server's own
    /// sandbox at `{public_url}/sandbox/airtel` (test), or off (live).
    pub base_url: String,
    pub client_id: String,
    /// Default (test) random per install with the built-in sandbox.
    #[serde(deserialize_with = "secret")]
    pub client_secret: SecretString,
    /// The app's private key for callback authentication (Airtel adds a `hash`, the
    /// Base64 HMAC-SHA256 of the payload, when it is switched on). Empty: Airtel's
    /// callbacks are unsigned. Either way a callback is only a cue to ask Airtel.
    #[serde(deserialize_with = "secret")]
    pub callback_key: SecretString,
    /// The countries the app is enabled for, comma-separated: `KE,UG,TZ,RW,ZM`.
    pub countries: String,
}

pub const SANDBOX_CLIENT_ID: &str = "malipo-sandbox-airtel-client";
pub const SANDBOX_CLIENT_SECRET: &str = "malipo-sandbox-airtel-secret";
pub const SANDBOX_CALLBACK_KEY: &str = "malipo-sandbox-airtel-callback-key";

impl Default for AirtelConfig {
    fn default() -> Self {
        AirtelConfig {
            base_url: String::new(),
            client_id: SANDBOX_CLIENT_ID.into(),
            client_secret: SecretString::from(SANDBOX_CLIENT_SECRET),
            callback_key: SecretString::from(SANDBOX_CALLBACK_KEY),
            countries: "KE,UG,TZ,RW,ZM".into(),
        }
    }
}

impl AirtelConfig {
    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        AirtelConfig {
            base_url: String::new(),
            client_id: String::new(),
            client_secret: SecretString::from(""),
            callback_key: SecretString::from(""),
            countries: String::new(),
        }
    }

    /// The markets the app serves: (currency, country, Airtel's country code).
    pub fn markets(&self) -> Vec<(Currency, Country, &'static str)> {
        self.countries
            .split(',')
            .filter_map(|c| market(c.trim()))
            .collect()
    }
}

/// An Airtel country code's currency and country.
pub fn market(code: &str) -> Option<(Currency, Country, &'static str)> {
    Some(match code {
        "KE" => (Currency::Kes, Country::Kenya, "KE"),
        "UG" => (Currency::Ugx, Country::Uganda, "UG"),
        "TZ" => (Currency::Tzs, Country::Tanzania, "TZ"),
        "RW" => (Currency::Rwf, Country::Rwanda, "RW"),
        "ZM" => (Currency::Zmw, Country::Zambia, "ZM"),
        _ => return None,
    })
}

impl RailSettings for AirtelConfig {
    fn fields(&self) -> &'static [&'static str] {
        &[
            "base_url",
            "client_id",
            "client_secret",
            "callback_key",
            "countries",
        ]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "client_id" => self.client_id = value,
            "client_secret" => self.client_secret = SecretString::from(value),
            "callback_key" => self.callback_key = SecretString::from(value),
            "countries" => self.countries = value,
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        "airtel"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "client_secret" => &self.client_secret,
                "callback_key" => &self.callback_key,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.client_secret.expose_secret() == SANDBOX_CLIENT_SECRET)
            .then_some(("sandbox_airtel_client_secret", &mut self.client_secret))
    }

    fn check(&self) -> Result<(), String> {
        match self
            .countries
            .split(',')
            .map(str::trim)
            .find(|c| !c.is_empty() && market(c).is_none())
        {
            Some(bad) => Err(format!(
                "countries: {bad:?} is not one of KE, UG, TZ, RW, ZM"
            )),
            None => Ok(()),
        }
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        let secret = self.client_secret.expose_secret();
        if self.client_id.is_empty()
            || self.client_id == SANDBOX_CLIENT_ID
            || secret.is_empty()
            || secret == SANDBOX_CLIENT_SECRET
            || self.callback_key.expose_secret() == SANDBOX_CALLBACK_KEY
            || self.markets().is_empty()
        {
            return Err(
                "client_id, client_secret and countries must be set to live values \
                 (and callback_key, if set, to the app's own key)"
                    .into(),
            );
        }
        Ok(())
    }
}
