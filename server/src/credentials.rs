//! A merchant's own live operator credentials. One Malipo install may serve many
//! merchants, each with its own paybill, MTN app or PayPal app: an owner saves them on
//! the dashboard (Settings → Live credentials), and that merchant's live payments on the
//! rail then go through a connector of its own. Test mode is always this server's
//! sandbox.
//!
//! - Whoever runs Malipo opens a rail to merchants' own credentials by setting its live
//!   base URL (`[rails_live.<rail>] base_url`, with no credentials of the server's own,
//!   or with them): live mode is then on, so the server has a master key it was given and
//!   an SMTP server. A merchant never chooses where this server sends requests.
//! - The form is every field of the rail's settings (the same as `[rails_live.<rail>]`)
//!   but the base URL.
//! - They are checked as the configuration's live credentials are (no sandbox value),
//!   then sealed under the master key ([`crate::sealing`]) as JSON. What a page shows
//!   again is a summary: no secret, identifiers cut to their last four characters.
//! - Every instance builds the connectors at start and looks for changes every
//!   [`REFRESH`] ([`run`]); the instance that saved them uses them at once.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    config::{Config, Rails},
    connectors::{Connector, RailId, Registry},
    domain::MerchantId,
    store::{Store, StoreError},
};

/// How often an instance looks for credentials another instance saved.
pub const REFRESH: Duration = Duration::from_secs(15);

/// Identifiers that are not secrets but are not shown whole again either.
const CUT: &[&str] = &[
    "consumer_key",
    "initiator",
    "client_id",
    "api_user",
    "disbursement_api_user",
    "username",
    "merchant_id",
    "webhook_id",
    "public_key",
];

/// One field of a rail's credentials form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// As in `[rails_live.<rail>]` (`consumer_secret`).
    pub name: &'static str,
    /// Never shown again once saved.
    pub secret: bool,
}

/// Why credentials were not saved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// They are not live credentials for the rail (a sandbox value, one missing): the
    /// rail's own words.
    #[error("{0}")]
    Invalid(String),
    /// This server knows no live API to use them at.
    #[error(
        "live {} is not available on this server: whoever runs it sets [rails_live.{}] base_url first",
        .0.label(),
        .0.as_str()
    )]
    Unavailable(RailId),
    /// Live payments on the rail are still open or of unknown outcome: they are asked
    /// about (and refunded) with the credentials they were made with.
    #[error(
        "{0} live payment(s) on this rail are still open or of unknown outcome: their operator is asked about them with the credentials they were made with. Try again once they are settled (Payments, \"needs attention\")."
    )]
    PaymentsOpen(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest value a field takes (a Vodacom public key is about 400 characters).
const MAX_VALUE_CHARS: usize = 4096;

/// `rail`'s form: every field of its settings but the base URL.
pub fn fields(rail: RailId) -> Vec<Field> {
    let live = Rails::live_default();
    let settings = live.get(rail);
    settings
        .fields()
        .iter()
        .filter(|f| **f != "base_url")
        .map(|name| Field {
            name,
            secret: settings.expose(name).is_some(),
        })
        .collect()
}

/// Where merchants' own credentials for `rail` are used: this server's live base URL
/// for it (`None`: live `rail` is not open here).
pub fn base_url(config: &Config, rail: RailId) -> Option<String> {
    let configured = config
        .rails_live
        .get(rail)
        .base_url()
        .trim()
        .trim_end_matches('/');
    (!configured.is_empty()).then(|| configured.to_owned())
}

/// A connector for `rail` with `values` (field → value; a field left empty keeps live
/// mode's default), checked as live credentials.
pub fn connector(
    config: &Config,
    rail: RailId,
    values: &BTreeMap<String, String>,
) -> Result<Arc<dyn Connector>, CredentialsError> {
    let url = base_url(config, rail).ok_or(CredentialsError::Unavailable(rail))?;
    let mut rails = Rails::live_default();
    let Some((_, settings)) = rails.each_mut().into_iter().find(|(r, _)| *r == rail) else {
        unreachable!("every rail has settings");
    };
    let known = fields(rail);
    for (field, value) in values {
        let Some(f) = known.iter().find(|f| f.name == field) else {
            return Err(CredentialsError::Invalid(format!(
                "{rail} has no setting {field}"
            )));
        };
        let value = value.trim();
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(CredentialsError::Invalid(format!(
                "{rail}: {field} is longer than {MAX_VALUE_CHARS} characters"
            )));
        }
        if !value.is_empty() {
            settings.set(f.name, value.to_owned());
        }
    }
    settings.set("base_url", url.clone());
    let checked = settings
        .check()
        .and_then(|()| settings.check_live_credentials());
    checked.map_err(|why| CredentialsError::Invalid(format!("{rail}: {why}")))?;
    crate::connectors::registry::connector(rail, url, &rails).map_err(CredentialsError::Invalid)
}

/// What a page may show of `values` again: no secret, identifiers cut.
pub fn summary(rail: RailId, values: &BTreeMap<String, String>) -> String {
    fields(rail)
        .into_iter()
        .filter(|f| !f.secret)
        .filter_map(|f| {
            let value = values.get(f.name)?.trim();
            if value.is_empty() {
                return None;
            }
            let shown = if CUT.contains(&f.name) {
                let chars: Vec<char> = value.chars().collect();
                let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
                format!("…{tail}")
            } else {
                value.chars().take(64).collect()
            };
            Some(format!("{}: {shown}", f.name))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Checks and saves `merchant`'s credentials for `rail`, and uses them at once.
/// Returns what a page may show of them.
pub async fn save(
    store: &Store,
    config: &Config,
    registry: &Registry,
    merchant: &MerchantId,
    rail: RailId,
    values: BTreeMap<String, String>,
    set_by: &str,
) -> Result<String, CredentialsError> {
    let values: BTreeMap<String, String> = values
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_owned()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let connector = connector(config, rail, &values)?;
    let open = store.open_live_attempts(merchant, rail).await?;
    if open > 0 {
        return Err(CredentialsError::PaymentsOpen(open));
    }
    let summary = summary(rail, &values);
    let plain = SecretString::from(serde_json::to_string(&values).expect("a map of strings"));
    store
        .save_rail_credentials(
            merchant,
            rail,
            &plain,
            &summary,
            set_by,
            crate::time::now_ms(),
        )
        .await?;
    registry.set_own(merchant, rail, Some(connector));
    Ok(summary)
}

/// Forgets `merchant`'s credentials for `rail`: its live payments there go back to this
/// server's own (or off). Whether there were any.
pub async fn remove(
    store: &Store,
    registry: &Registry,
    merchant: &MerchantId,
    rail: RailId,
) -> Result<bool, CredentialsError> {
    let open = store.open_live_attempts(merchant, rail).await?;
    if open > 0 {
        return Err(CredentialsError::PaymentsOpen(open));
    }
    let removed = store.remove_rail_credentials(merchant, rail).await?;
    registry.set_own(merchant, rail, None);
    Ok(removed)
}

/// What an instance has built, by when each was saved.
#[derive(Default)]
pub struct Loaded {
    versions: HashMap<(MerchantId, String), i64>,
}

impl Loaded {
    /// Builds the connectors of credentials saved (or changed, or removed) since the last
    /// call; returns how many changed. Credentials that no longer build (this server's
    /// live base URL for the rail was removed) serve nothing, and say so in the log.
    pub async fn refresh(
        &mut self,
        store: &Store,
        config: &Config,
        registry: &Registry,
    ) -> Result<usize, StoreError> {
        let versions: HashMap<(MerchantId, String), i64> = store
            .rail_credentials_versions()
            .await?
            .into_iter()
            .map(|(m, r, at)| ((m, r), at))
            .collect();
        if versions == self.versions {
            return Ok(0);
        }
        let mut changed = 0;
        let all = store.all_rail_credentials().await?;
        for (merchant, rail, updated_at, plain) in &all {
            if self
                .versions
                .get(&(merchant.clone(), rail.as_str().to_owned()))
                == Some(updated_at)
            {
                continue;
            }
            changed += 1;
            let values: BTreeMap<String, String> =
                serde_json::from_str(plain.expose_secret()).unwrap_or_default();
            match connector(config, *rail, &values) {
                Ok(c) => registry.set_own(merchant, *rail, Some(c)),
                Err(e) => {
                    tracing::error!(%merchant, %rail, error = %e, "a merchant's saved credentials do not build a connector; its live payments there are off");
                    registry.set_own(merchant, *rail, None);
                }
            }
        }
        for (merchant, rail) in registry.own_keys() {
            if !all.iter().any(|(m, r, _, _)| *m == merchant && *r == rail) {
                changed += 1;
                registry.set_own(&merchant, rail, None);
            }
        }
        self.versions = versions;
        Ok(changed)
    }
}

/// Keeps this instance's merchants' connectors up to date with the database.
pub async fn run(store: Store, config: Arc<Config>, registry: Registry, mut loaded: Loaded) {
    loop {
        tokio::time::sleep(REFRESH).await;
        if let Err(e) = loaded.refresh(&store, &config, &registry).await {
            tracing::warn!(error = %e, "reading merchants' credentials failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_summary_shows_no_secret_and_cuts_identifiers() {
        let v = values(&[
            ("consumer_key", "ck-live-ABCDEFGH1234"),
            ("consumer_secret", "cs-very-secret"),
            ("shortcode", "600100"),
            ("passkey", "pk-very-secret"),
        ]);
        let s = summary(RailId::Mpesa, &v);
        assert_eq!(s, "consumer_key: …1234 · shortcode: 600100");
        assert!(!s.contains("secret"));
    }

    #[test]
    fn every_rail_has_a_form_whose_secrets_are_marked() {
        for rail in RailId::ALL {
            let fields = fields(rail);
            assert!(!fields.is_empty(), "{rail}");
            assert!(fields.iter().any(|f| f.secret), "{rail} has a secret");
            assert!(fields.iter().all(|f| f.name != "base_url"));
            // Live mode's defaults hold no secret.
            assert!(!Rails::live_default().get(rail).has_secrets(), "{rail}");
        }
    }

    #[test]
    fn credentials_are_checked_as_live_ones() {
        let mut config = Config::load_from(None, |_| None).unwrap();
        // Not open here until this server has a live base URL for the rail.
        let live = values(&[
            ("consumer_key", "ck-live"),
            ("consumer_secret", "cs-live"),
            ("shortcode", "600100"),
            ("passkey", "live-passkey"),
        ]);
        let err = connector(&config, RailId::Mpesa, &live).err().unwrap();
        assert!(matches!(err, CredentialsError::Unavailable(..)), "{err}");
        config.rails_live.mpesa.base_url = "https://api.safaricom.co.ke/".into();
        // The sandbox's own values are no live credentials.
        let sandbox = values(&[
            ("consumer_key", "malipo-sandbox-key"),
            ("consumer_secret", "malipo-sandbox-secret"),
            ("shortcode", "174379"),
            ("passkey", crate::config::SANDBOX_PASSKEY),
        ]);
        let err = connector(&config, RailId::Mpesa, &sandbox).err().unwrap();
        assert!(matches!(err, CredentialsError::Invalid(_)), "{err}");
        // A field the rail does not have is refused, the base URL included.
        let err = connector(
            &config,
            RailId::Mpesa,
            &values(&[("base_url", "http://127.0.0.1:1/")]),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no setting base_url"), "{err}");
        // Real-looking ones build a connector at the live base URL.
        assert_eq!(
            base_url(&config, RailId::Mpesa).as_deref(),
            Some("https://api.safaricom.co.ke")
        );
        assert!(connector(&config, RailId::Mpesa, &live).is_ok());
    }
}
