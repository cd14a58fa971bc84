//! Every rail's settings in one shape: `[rails.<rail>]` for test mode and
//! `[rails_live.<rail>]` for live mode, each a rail's own struct, with environment
//! variables generated from its field names (`MALIPO_RAILS_MPESA_SHORTCODE`,
//! `MALIPO_RAILS_LIVE_MPESA_PASSKEY`). One live check serves every rail
//! (`Config::check_live_rails`); each rail says only what "real credentials" means.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::secret;

use crate::connectors::RailId;
pub use crate::connectors::{
    airtel::AirtelConfig, card::config::CardConfig, mtn::MtnConfig, paypal::PaypalConfig,
    tigo::TigoConfig, vodacom::VodacomConfig,
};

/// What the configuration needs to know of a rail's settings.
pub trait RailSettings {
    /// Its fields, as file keys; upper-cased, they end its environment variables.
    fn fields(&self) -> &'static [&'static str];
    /// Sets a field from an environment variable.
    fn set(&mut self, field: &str, value: String);
    /// The operator's base URL; empty: this server's sandbox (test), off (live).
    fn base_url(&self) -> &str;
    /// Where this server's sandbox operator for the rail lives, under `/sandbox/`.
    fn sandbox_path(&self) -> &'static str;
    /// A secret field's value (`None`: the field is no secret, or not this rail's). A
    /// form never shows a secret again.
    fn expose(&self, field: &str) -> Option<&str>;
    /// Whether any secret is set: a live rail with none (only its base URL) serves only
    /// merchants' own credentials, saved on the dashboard.
    fn has_secrets(&self) -> bool {
        self.fields()
            .iter()
            .any(|f| self.expose(f).is_some_and(|v| !v.is_empty()))
    }
    /// Whether these are real credentials (for live mode): `Err` says what is missing.
    fn check_live_credentials(&self) -> Result<(), String>;
    /// Whether the settings make sense at all, in either mode: `Err` says why not.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// The secret the built-in sandbox operator checks, while it is still the published
    /// default, with the name it is kept under: each install then uses a random one of
    /// its own (kept, sealed, in the database), so the default opens nothing.
    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        None
    }
}

/// Every rail's settings for one mode: one line per rail (its field, its id, its
/// settings type, which has `Default` for test mode and `off()` for live).
macro_rules! rails {
    ($($(#[$doc:meta])* $field:ident: $rail:ident => $ty:ty,)+) => {
        /// Every rail's settings for one mode.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Rails {
            $($(#[$doc])* pub $field: $ty,)+
        }

        impl Default for Rails {
            /// Test mode: every rail on this server's sandbox.
            fn default() -> Self {
                Rails { $($field: <$ty>::default(),)+ }
            }
        }

        impl Rails {
            /// Live mode: every rail off until configured.
            pub fn live_default() -> Self {
                Rails { $($field: <$ty>::off(),)+ }
            }

            /// Each rail's settings.
            pub fn each(&self) -> Vec<(RailId, &dyn RailSettings)> {
                vec![$((RailId::$rail, &self.$field as &dyn RailSettings),)+]
            }

            pub fn each_mut(&mut self) -> Vec<(RailId, &mut dyn RailSettings)> {
                vec![$((RailId::$rail, &mut self.$field as &mut dyn RailSettings),)+]
            }

            pub fn get(&self, rail: RailId) -> &dyn RailSettings {
                match rail {
                    $(RailId::$rail => &self.$field,)+
                }
            }
        }
    };
}

rails! {
    /// `[rails.mpesa]`: Safaricom Daraja (M-PESA Express), Kenya.
    mpesa: Mpesa => MpesaConfig,
    /// `[rails.mtn_momo]`: MTN MoMo Collection (Uganda, Rwanda or Zambia).
    mtn_momo: MtnMomo => MtnConfig,
    /// `[rails.airtel]`: Airtel Money Open API (Kenya, Uganda, Tanzania, Rwanda, Zambia).
    airtel: Airtel => AirtelConfig,
    /// `[rails.tigo]`: Mixx by Yas (formerly Tigo Pesa) push bill-pay, Tanzania.
    tigo: Tigo => TigoConfig,
    /// `[rails.vodacom]`: Vodacom M-Pesa Tanzania (the M-Pesa OpenAPI).
    vodacom: Vodacom => VodacomConfig,
    /// `[rails.card]`: a Mastercard Gateway (MPGS) card processor.
    card: Card => CardConfig,
    /// `[rails.paypal]`: a PayPal REST app (Orders v2).
    paypal: Paypal => PaypalConfig,
}

impl Rails {
    /// `{prefix}{RAIL}_{FIELD}` for every rail and field (`MALIPO_RAILS_MPESA_SHORTCODE`).
    pub fn apply_env(&mut self, prefix: &str, env: &impl Fn(&str) -> Option<String>) {
        for (rail, settings) in self.each_mut() {
            let rail = rail.as_str().to_ascii_uppercase();
            for field in settings.fields() {
                let var = format!("{prefix}{rail}_{}", field.to_ascii_uppercase());
                if let Some(v) = env(&var) {
                    settings.set(field, v);
                }
            }
        }
    }
}

/// Daraja credentials. The defaults are those of Malipo's own sandbox Daraja (and
/// Safaricom's public sandbox shortcode and passkey), so test mode works out of the box;
/// a merchant going live sets all of these in `[rails_live.mpesa]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MpesaConfig {
    /// Daraja's base URL, e.g. `https://api.safaricom.co.ke`. Empty means this server's
    /// own sandbox at `{public_url}/sandbox/daraja` (test), or off (live).
    pub base_url: String,
    /// Default (test) `malipo-sandbox-key`.
    pub consumer_key: String,
    /// Default (test) `malipo-sandbox-secret` (the built-in sandbox then uses a random
    /// per-install one).
    #[serde(deserialize_with = "secret")]
    pub consumer_secret: SecretString,
    /// The paybill or store number (`BusinessShortCode`). Default (test) `174379`.
    pub shortcode: String,
    /// The Lipa Na M-PESA Online passkey. Default (test) Safaricom's public sandbox one.
    #[serde(deserialize_with = "secret")]
    pub passkey: SecretString,
    /// The API initiator's user name (Daraja's `Initiator`), for reversals (refunds).
    /// Empty: M-PESA payments are refunded by hand. Default (test) `malipo-initiator`.
    pub initiator: String,
    /// The initiator's password encrypted with Safaricom's certificate, as the Daraja
    /// portal generates it (`SecurityCredential`). Default (test) the sandbox's.
    #[serde(deserialize_with = "secret")]
    pub security_credential: SecretString,
    /// Offer Pay Bill (paying from the M-PESA menu) for this shortcode: its C2B URLs are
    /// registered when the server starts. Default `true`.
    pub paybill: bool,
}

/// The built-in sandbox's reversal initiator and its credential (public test data).
pub const SANDBOX_INITIATOR: &str = "malipo-initiator";
pub const SANDBOX_SECURITY_CREDENTIAL: &str = "malipo-sandbox-security-credential";

/// Safaricom's published sandbox passkey for shortcode 174379 (public test data).
pub const SANDBOX_PASSKEY: &str =
    "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

impl Default for MpesaConfig {
    fn default() -> Self {
        MpesaConfig {
            base_url: String::new(),
            consumer_key: "malipo-sandbox-key".into(),
            consumer_secret: SecretString::from("malipo-sandbox-secret"),
            shortcode: "174379".into(),
            passkey: SecretString::from(SANDBOX_PASSKEY),
            initiator: SANDBOX_INITIATOR.into(),
            security_credential: SecretString::from(SANDBOX_SECURITY_CREDENTIAL),
            paybill: true,
        }
    }
}

impl MpesaConfig {
    /// Whether every field equals `other`'s.
    pub fn same_as(&self, other: &MpesaConfig) -> bool {
        self.base_url == other.base_url
            && self.consumer_key == other.consumer_key
            && self.consumer_secret.expose_secret() == other.consumer_secret.expose_secret()
            && self.shortcode == other.shortcode
            && self.passkey.expose_secret() == other.passkey.expose_secret()
            && self.initiator == other.initiator
            && self.security_credential.expose_secret() == other.security_credential.expose_secret()
            && self.paybill == other.paybill
    }

    /// For live mode: the sandbox's reversal initiator left as it was (a live section
    /// written before reversals existed) means refunds by hand.
    pub fn clear_sandbox_initiator(&mut self) {
        if self.initiator == SANDBOX_INITIATOR
            && self.security_credential.expose_secret() == SANDBOX_SECURITY_CREDENTIAL
        {
            self.initiator.clear();
            self.security_credential = SecretString::from("");
        }
    }

    /// Nothing set: the rail is off (live mode's default).
    pub fn off() -> Self {
        MpesaConfig {
            base_url: String::new(),
            consumer_key: String::new(),
            consumer_secret: SecretString::from(""),
            shortcode: String::new(),
            passkey: SecretString::from(""),
            initiator: String::new(),
            security_credential: SecretString::from(""),
            paybill: true,
        }
    }
}

impl RailSettings for MpesaConfig {
    fn fields(&self) -> &'static [&'static str] {
        &[
            "base_url",
            "consumer_key",
            "consumer_secret",
            "shortcode",
            "passkey",
            "initiator",
            "security_credential",
        ]
    }

    fn set(&mut self, field: &str, value: String) {
        match field {
            "base_url" => self.base_url = value,
            "consumer_key" => self.consumer_key = value,
            "consumer_secret" => self.consumer_secret = SecretString::from(value),
            "shortcode" => self.shortcode = value,
            "passkey" => self.passkey = SecretString::from(value),
            "initiator" => self.initiator = value,
            "security_credential" => self.security_credential = SecretString::from(value),
            _ => {}
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn sandbox_path(&self) -> &'static str {
        "daraja"
    }

    fn expose(&self, field: &str) -> Option<&str> {
        Some(
            match field {
                "consumer_secret" => &self.consumer_secret,
                "passkey" => &self.passkey,
                "security_credential" => &self.security_credential,
                _ => return None,
            }
            .expose_secret(),
        )
    }

    fn sandbox_secret(&mut self) -> Option<(&'static str, &mut SecretString)> {
        (self.consumer_secret.expose_secret()
            == MpesaConfig::default().consumer_secret.expose_secret())
        .then_some(("sandbox_daraja_consumer_secret", &mut self.consumer_secret))
    }

    fn check_live_credentials(&self) -> Result<(), String> {
        let sandbox = MpesaConfig::default();
        if self.consumer_key.is_empty()
            || self.consumer_key == sandbox.consumer_key
            || self.consumer_secret.expose_secret().is_empty()
            || self.consumer_secret.expose_secret() == sandbox.consumer_secret.expose_secret()
            || self.shortcode.is_empty()
            || self.shortcode == sandbox.shortcode
            || self.passkey.expose_secret().is_empty()
            || self.passkey.expose_secret() == SANDBOX_PASSKEY
        {
            return Err(
                "consumer_key, consumer_secret, shortcode and passkey must all be set \
                        to live credentials"
                    .into(),
            );
        }
        // Reversals are optional (without them, refunds are made by hand), but the
        // sandbox's initiator is never a live one.
        if self.initiator == SANDBOX_INITIATOR
            || self.security_credential.expose_secret() == SANDBOX_SECURITY_CREDENTIAL
            || self.initiator.is_empty() != self.security_credential.expose_secret().is_empty()
        {
            return Err(
                "initiator and security_credential must both be live credentials, or both \
                 empty (refunds by hand)"
                    .into(),
            );
        }
        Ok(())
    }
}
