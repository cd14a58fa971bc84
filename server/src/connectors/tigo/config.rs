//! `[rails.tigo]` / `[rails_live.tigo]`: Mixx by Yas (Tigo Pesa) push bill-pay settings.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{RailSettings, secret};

/// What Tigo issues each merchant: a username and password, the biller's number and
/// code, and the paths of its token and push endpoints on Tigo's access gateway (they
/// carry the merchant's name). The defaults are Malipo's own sandbox's.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TigoConfig {
    /// Tigo's access gateway (`https://accessgw.tigo.co.tz:8443`). Empty: this server's
    /// own sandbox at `{public_url}/sandbox/tigo` (test), or off (live).
    pub base_url: String,
    /// The merchant's Get-Token path (`/Malipo2DM-GetToken`).
    pub token_path: String,
    /// The merchant's Push-Billpay path (`/Malipo2DM-PushBillpay`).
    pub push_path: String,
    pub username: String,
    /// Default (test) random per install with the built-in sandbox.
    #[serde(deserialize_with = "secret")]
    pub password: SecretString,
    /// The biller's (merchant's) Tigo number, `2556…`.
    pub biller_msisdn: String,
    /// The biller code Tigo issued; every `ReferenceID` starts with it.
    pub biller_code: String,
    /// The secret last segment of the callback URL given to Tigo,
    /// `{public_url}/callbacks/tigo/{callback_key}` (Tigo's callbacks are unsigned; this
    /// is what authenticates them). Empty: derived from the password (test mode).
    #[serde(deserialize_with = "secret")]
    pub callback_key: SecretString,
}

pub const SANDBOX_USERNAME: &str = "malipo-sandbox";
pub const SANDBOX_PASSWORD: &str = "malipo-sandbox-tigo-password";

impl Default for TigoConfig {
    fn default() -> Self {
        TigoConfig {
            base_url: String::new(),
            token_path: "/Malipo2DM-GetToken".into(),
            push_path: "/Malipo2DM-PushBillpay".into(),
            username: SANDBOX_USERNAME.into(),
            password: SecretString::from(SANDBOX_PASSWORD),
            biller_msisdn: "255650000000".into(),
            biller_code: "MLP".into(),
            callback_key: SecretString::from(""),
        }
    }
}

impl TigoConfig {
    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        TigoConfig {
            base_url: String::new(),
            token_path: String::new(),
            push_path: String::new(),
            username: String::new(),
            password: SecretString::from(""),
            biller_msisdn: String::new(),
            biller_code: String::new(),
            callback_key: SecretString::from(""),
        }
    }

    /// The callback URL's key: the configured one, or one derived from the password.
    pub fn callback_key(&self) -> String {
        let configured = self.callback_key.expose_secret();
        if !configured.is_empty() {
            return configured.to_owned();
        }
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(self.password.expose_secret().as_bytes())
                .expect("HMAC takes any key");
        mac.update(b"malipo-tigo-callback-key");
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

impl RailSettings for TigoConfig {
    fn fields(&self) -> &'static [&'static str] {
        &[
            "base_url",
            "token_path",
            "push_path",
            "username",
            "password",
            "biller_msisdn",
            "biller_code",
            "callback_key",
        ]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "token_path" => self.token_path = value,
            "push_path" => self.push_path = value,
            "username" => self.username = value,
            "password" => self.password = SecretString::from(value),
            "biller_msisdn" => self.biller_msisdn = value,
            "biller_code" => self.biller_code = value,
            "callback_key" => self.callback_key = SecretString::from(value),
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        "tigo"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "password" => &self.password,
                "callback_key" => &self.callback_key,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.password.expose_secret() == SANDBOX_PASSWORD)
            .then_some(("sandbox_tigo_password", &mut self.password))
    }

    fn check(&self) -> Result<(), String> {
        if self.base_url.is_empty() && self.username.is_empty() {
            return Ok(());
        }
        let path_ok = |p: &str| p.starts_with('/') && !p.contains("..") && !p.contains('?');
        if !path_ok(&self.token_path) || !path_ok(&self.push_path) {
            return Err("token_path and push_path must be paths starting with /".into());
        }
        if !self.biller_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("biller_code must be letters and digits".into());
        }
        Ok(())
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        let password = self.password.expose_secret();
        if self.username.is_empty()
            || self.username == SANDBOX_USERNAME
            || password.is_empty()
            || password == SANDBOX_PASSWORD
            || self.biller_msisdn.is_empty()
            || self.biller_code.is_empty()
            || self.callback_key.expose_secret().len() < 16
        {
            return Err(
                "username, password, biller_msisdn, biller_code and callback_key (16 characters \
                 or more) must all be set to live values"
                    .into(),
            );
        }
        Ok(())
    }
}
