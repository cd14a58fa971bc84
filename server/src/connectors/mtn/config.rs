//! `[rails.mtn_momo]` / `[rails_live.mtn_momo]`: MTN MoMo Collection settings.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    config::{RailSettings, secret},
    domain::{money::Currency, phone::Country},
};

/// MTN MoMo Collection credentials. The defaults are those of Malipo's own sandbox MTN,
/// so test mode works out of the box; a merchant going live sets all of these in
/// `[rails_live.mtn_momo]` (from MTN's partner portal for their country).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtnConfig {
    /// The API's base URL (`https://proxy.momoapi.mtn.com`). Empty: this server's own
    /// sandbox at `{public_url}/sandbox/mtn` (test), or off (live).
    pub base_url: String,
    /// The Collection product's `Ocp-Apim-Subscription-Key`.
    #[serde(deserialize_with = "secret")]
    pub subscription_key: SecretString,
    /// The API user (a UUID).
    pub api_user: String,
    /// The API user's key. Default (test) random per install with the built-in sandbox.
    #[serde(deserialize_with = "secret")]
    pub api_key: SecretString,
    /// `X-Target-Environment`: `mtnuganda` (UGX), `mtnrwanda` (RWF), `mtnzambia` (ZMW),
    /// or `sandbox` (MTN's own sandbox, EUR only), or several, comma-separated, when one
    /// API user serves several markets (`mtnuganda,mtnrwanda`): each session's currency
    /// picks its environment.
    pub target_environment: String,
    /// Refunds go through MTN's Disbursement product, which has its own subscription
    /// key and API user. Empty API user: MTN payments are refunded by hand.
    #[serde(deserialize_with = "secret")]
    pub disbursement_subscription_key: SecretString,
    pub disbursement_api_user: String,
    /// Empty: the Collection API key (the built-in sandbox's way; MTN issues one per
    /// product).
    #[serde(deserialize_with = "secret")]
    pub disbursement_api_key: SecretString,
}

/// The built-in sandbox's subscription key and API user (public test data).
pub const SANDBOX_SUBSCRIPTION_KEY: &str = "malipo-sandbox-collection-key";
pub const SANDBOX_API_USER: &str = "7c1f4b2e-9d3a-4e8f-b6a1-2f5c8d9e0a13";
pub const SANDBOX_API_KEY: &str = "malipo-sandbox-api-key";
pub const SANDBOX_DISBURSEMENT_KEY: &str = "malipo-sandbox-disbursement-key";
pub const SANDBOX_DISBURSEMENT_USER: &str = "3b7e2d9a-5c41-4f0e-9a8b-6d2c1e0f4a57";

impl Default for MtnConfig {
    fn default() -> Self {
        MtnConfig {
            base_url: String::new(),
            subscription_key: SecretString::from(SANDBOX_SUBSCRIPTION_KEY),
            api_user: SANDBOX_API_USER.into(),
            api_key: SecretString::from(SANDBOX_API_KEY),
            target_environment: "mtnuganda,mtnrwanda".into(),
            disbursement_subscription_key: SecretString::from(SANDBOX_DISBURSEMENT_KEY),
            disbursement_api_user: SANDBOX_DISBURSEMENT_USER.into(),
            disbursement_api_key: SecretString::from(""),
        }
    }
}

impl MtnConfig {
    /// The target environments named, trimmed.
    pub fn environments(&self) -> impl Iterator<Item = &str> {
        self.target_environment
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    /// For live mode: the sandbox's Disbursement user left as it was (a live section
    /// written before refunds existed) means refunds by hand.
    pub fn clear_sandbox_disbursement(&mut self) {
        if self.disbursement_api_user == SANDBOX_DISBURSEMENT_USER
            && self.disbursement_subscription_key.expose_secret() == SANDBOX_DISBURSEMENT_KEY
        {
            self.disbursement_api_user.clear();
            self.disbursement_subscription_key = SecretString::from("");
            self.disbursement_api_key = SecretString::from("");
        }
    }

    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        MtnConfig {
            base_url: String::new(),
            subscription_key: SecretString::from(""),
            api_user: String::new(),
            api_key: SecretString::from(""),
            target_environment: String::new(),
            disbursement_subscription_key: SecretString::from(""),
            disbursement_api_user: String::new(),
            disbursement_api_key: SecretString::from(""),
        }
    }
}

/// What an `X-Target-Environment` charges in, and whose numbers it serves.
pub fn environment(name: &str) -> Option<(Currency, Country)> {
    match name {
        "mtnuganda" => Some((Currency::Ugx, Country::Uganda)),
        "mtnrwanda" => Some((Currency::Rwf, Country::Rwanda)),
        "mtnzambia" => Some((Currency::Zmw, Country::Zambia)),
        // MTN's own sandbox takes EUR only; its test numbers are Swedish-looking.
        "sandbox" => Some((Currency::Eur, Country::Uganda)),
        _ => None,
    }
}

impl RailSettings for MtnConfig {
    fn fields(&self) -> &'static [&'static str] {
        &[
            "base_url",
            "subscription_key",
            "api_user",
            "api_key",
            "target_environment",
            "disbursement_subscription_key",
            "disbursement_api_user",
            "disbursement_api_key",
        ]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "subscription_key" => self.subscription_key = SecretString::from(value),
            "api_user" => self.api_user = value,
            "api_key" => self.api_key = SecretString::from(value),
            "target_environment" => self.target_environment = value,
            "disbursement_subscription_key" => {
                self.disbursement_subscription_key = SecretString::from(value)
            }
            "disbursement_api_user" => self.disbursement_api_user = value,
            "disbursement_api_key" => self.disbursement_api_key = SecretString::from(value),
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        "mtn"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "subscription_key" => &self.subscription_key,
                "api_key" => &self.api_key,
                "disbursement_subscription_key" => &self.disbursement_subscription_key,
                "disbursement_api_key" => &self.disbursement_api_key,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.api_key.expose_secret() == SANDBOX_API_KEY)
            .then_some(("sandbox_mtn_api_key", &mut self.api_key))
    }

    fn check(&self) -> Result<(), String> {
        if self.base_url.is_empty() && self.target_environment.is_empty() {
            return Ok(());
        }
        let mut currencies = Vec::new();
        for name in self.environments() {
            let (currency, _) = environment(name).ok_or_else(|| {
                format!(
                    "target_environment {name:?} is not one of mtnuganda, mtnrwanda, mtnzambia, \
                     sandbox"
                )
            })?;
            if currencies.contains(&currency) {
                return Err(format!(
                    "two target environments charge in {}",
                    currency.code()
                ));
            }
            currencies.push(currency);
        }
        if currencies.is_empty() {
            return Err("target_environment must name at least one environment".into());
        }
        Ok(())
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        let key = self.subscription_key.expose_secret();
        let api_key = self.api_key.expose_secret();
        if key.is_empty()
            || key == SANDBOX_SUBSCRIPTION_KEY
            || self.api_user.is_empty()
            || self.api_user == SANDBOX_API_USER
            || api_key.is_empty()
            || api_key == SANDBOX_API_KEY
        {
            return Err(
                "subscription_key, api_user and api_key must all be set to live credentials".into(),
            );
        }
        // Refunds are optional; when on, never through the sandbox's Disbursement user.
        if !self.disbursement_api_user.is_empty()
            && (self.disbursement_api_user == SANDBOX_DISBURSEMENT_USER
                || self
                    .disbursement_subscription_key
                    .expose_secret()
                    .is_empty()
                || self.disbursement_subscription_key.expose_secret() == SANDBOX_DISBURSEMENT_KEY)
        {
            return Err(
                "disbursement_api_user and disbursement_subscription_key (for refunds) must be \
                 live credentials, or disbursement_api_user empty (refunds by hand)"
                    .into(),
            );
        }
        if self.environments().any(|e| e == "sandbox") {
            return Err("target_environment is MTN's sandbox".into());
        }
        Ok(())
    }
}
