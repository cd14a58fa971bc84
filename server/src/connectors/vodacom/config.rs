//! `[rails.vodacom]` / `[rails_live.vodacom]`: Vodacom M-Pesa Tanzania (OpenAPI) settings.

use rsa::{RsaPublicKey, pkcs8::DecodePublicKey};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{RailSettings, secret};

/// What the M-Pesa OpenAPI portal issues a merchant: an API key, the market's RSA public
/// key (to encrypt the key and the session id with), and the service provider (short)
/// code. The defaults are Malipo's own sandbox's.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VodacomConfig {
    /// The OpenAPI's host (`https://openapi.m-pesa.com`). Empty: this server's own
    /// sandbox at `{public_url}/sandbox/vodacom` (test), or off (live).
    pub base_url: String,
    /// The market's path under it: `/openapi/ipg/v2/vodacomTZN` (production) or
    /// `/sandbox/ipg/v2/vodacomTZN` (Vodafone's own sandbox).
    pub market_path: String,
    /// The application's API key. Default (test) random per install with the built-in
    /// sandbox.
    #[serde(deserialize_with = "secret")]
    pub api_key: SecretString,
    /// The market's public key, as the portal shows it: base64 of the DER
    /// SubjectPublicKeyInfo (no PEM armour). Default: the built-in sandbox's.
    pub public_key: String,
    /// `input_ServiceProviderCode`: the merchant's short code (5–10 digits).
    pub service_provider_code: String,
    /// The `Origin` header every call carries (the OpenAPI requires one).
    pub origin: String,
}

/// The built-in sandbox operator's public key (public test data: its private half is in
/// `sandbox/operators/vodacom.rs`). 2048-bit; Vodafone's own sandbox key is 4096-bit.
pub const SANDBOX_PUBLIC_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvh3yy/fJJJoNHkz3ZldV2wUhYS3oqCjFUsxPpG4U98+0hFP3vxwEc8SnjzerQQ7JA786bzPp9sEyyGPBBPac9U4hMztFtUgfsXbnxn5QwQyvOrMG8Q+YJhncRg9m1+9X0chL5eJrvX5VXsGxI8IMNnt3+g8F4O/MebrdMDrWQdjiktcKQVBzTrU12GfZQ/AYvQsXuZdMfR6nps/vSL4eDlr3lPhbBRBHa+GW7mgH5xk9pLt6OjPgieC6rWjVpuF8e7wSIzRfozi5n8Mk64045HD39tvFUCAHPwDtUB2vZtVvHeiihdsj7ZtFvo31dLGq7T8FifELWn2Wgx8io3kXbwIDAQAB";
pub const SANDBOX_API_KEY: &str = "malipo-sandbox-vodacom-api-key";
pub const SANDBOX_SERVICE_PROVIDER_CODE: &str = "000000";

impl Default for VodacomConfig {
    fn default() -> Self {
        VodacomConfig {
            base_url: String::new(),
            market_path: "/openapi/ipg/v2/vodacomTZN".into(),
            api_key: SecretString::from(SANDBOX_API_KEY),
            public_key: SANDBOX_PUBLIC_KEY.into(),
            service_provider_code: SANDBOX_SERVICE_PROVIDER_CODE.into(),
            origin: "*".into(),
        }
    }
}

impl VodacomConfig {
    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        VodacomConfig {
            base_url: String::new(),
            market_path: "/openapi/ipg/v2/vodacomTZN".into(),
            api_key: SecretString::from(""),
            public_key: String::new(),
            service_provider_code: String::new(),
            origin: "*".into(),
        }
    }

    /// The configured public key, read.
    pub fn key(&self) -> Result<RsaPublicKey, String> {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(self.public_key.trim())
            .map_err(|_| "public_key is not base64".to_owned())?;
        RsaPublicKey::from_public_key_der(&der).map_err(|_| {
            "public_key is not an RSA public key (base64 DER SubjectPublicKeyInfo)".into()
        })
    }
}

impl RailSettings for VodacomConfig {
    fn fields(&self) -> &'static [&'static str] {
        &[
            "base_url",
            "market_path",
            "api_key",
            "public_key",
            "service_provider_code",
            "origin",
        ]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "market_path" => self.market_path = value,
            "api_key" => self.api_key = SecretString::from(value),
            "public_key" => self.public_key = value,
            "service_provider_code" => self.service_provider_code = value,
            "origin" => self.origin = value,
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        "vodacom"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "api_key" => &self.api_key,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.api_key.expose_secret() == SANDBOX_API_KEY)
            .then_some(("sandbox_vodacom_api_key", &mut self.api_key))
    }

    fn check(&self) -> Result<(), String> {
        if self.base_url.is_empty() && self.api_key.expose_secret().is_empty() {
            return Ok(());
        }
        let path = &self.market_path;
        if !path.starts_with('/')
            || path.ends_with('/')
            || path.contains("..")
            || path.contains('?')
        {
            return Err("market_path must be a path like /openapi/ipg/v2/vodacomTZN".into());
        }
        let code = &self.service_provider_code;
        if !(5..=10).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("service_provider_code must be 5 to 10 digits".into());
        }
        if self.origin.is_empty() || !self.origin.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("origin must be set (the OpenAPI requires an Origin header)".into());
        }
        self.key().map(|_| ())
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        let key = self.api_key.expose_secret();
        if key.is_empty()
            || key == SANDBOX_API_KEY
            || self.public_key.trim() == SANDBOX_PUBLIC_KEY
            || self.service_provider_code == SANDBOX_SERVICE_PROVIDER_CODE
        {
            return Err(
                "api_key, public_key and service_provider_code must all be set to live values"
                    .into(),
            );
        }
        if self.market_path.starts_with("/sandbox") {
            return Err("market_path is Vodafone's sandbox".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_key_reads_and_a_bad_one_is_refused() {
        let config = VodacomConfig::default();
        assert!(config.check().is_ok());
        assert!(config.check_live_credentials().is_err());
        let bad = VodacomConfig {
            public_key: "bm90IGEga2V5".into(),
            ..VodacomConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("not an RSA public key"));
        let path = VodacomConfig {
            market_path: "/openapi/../x".into(),
            ..VodacomConfig::default()
        };
        assert!(path.check().is_err());
    }
}
