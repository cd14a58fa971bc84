//! Configuration: built-in defaults, then an optional TOML file, then `MALIPO_*`
//! environment variables, each layer overriding the one before.
//!
//! The file is the one named by `--config FILE` or `MALIPO_CONFIG`; its keys are the
//! field names below (`database_url = "postgres://…"`). Unknown keys are an error, so a
//! typo never silently falls back to a default.

mod rails;

pub use rails::{
    AirtelConfig, MpesaConfig, MtnConfig, PaypalConfig, RailSettings, Rails, SANDBOX_PASSKEY,
    TigoConfig, VodacomConfig,
};

use crate::connectors::RailId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Human-readable or JSON log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Everything Malipo reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Database URL. `sqlite://PATH` (the file is created and migrated on start) or
    /// `postgres://USER:PASS@HOST:PORT/DB`.
    /// Env `MALIPO_DATABASE_URL`; default `sqlite://malipo.db`.
    #[serde(deserialize_with = "secret")]
    pub database_url: SecretString,
    /// Most database connections in the pool.
    /// Env `MALIPO_DATABASE_MAX_CONNECTIONS`; default 10.
    pub database_max_connections: u32,
    /// Address and port to listen on; port 0 picks a free one.
    /// Env `MALIPO_LISTEN`; default `127.0.0.1:3000`.
    pub listen: SocketAddr,
    /// The URL shoppers, merchants and operators reach Malipo at, without a trailing
    /// slash: checkout links and operator callback URLs are built from it. Empty means
    /// `http://{the bound address}`.
    /// Env `MALIPO_PUBLIC_URL`; default `http://127.0.0.1:3000`.
    pub public_url: String,
    /// `human` or `json` log lines on stderr.
    /// Env `MALIPO_LOG_FORMAT`; default `human`.
    pub log_format: LogFormat,
    /// Which logs to keep, in `RUST_LOG` syntax (`RUST_LOG` itself wins if set).
    /// Env `MALIPO_LOG`; default `info,sqlx=warn`.
    pub log: String,
    /// Directory holding the built site: `pkg/` (CSS, JS, WASM) and `favicon.svg`, as
    /// written by `cargo leptos build`.
    /// Env `MALIPO_SITE_ROOT`; default `target/site`.
    pub site_root: PathBuf,
    /// Serve the sandbox operators (test mode only; live mode never reaches them).
    /// Env `MALIPO_SANDBOX`; default `true`.
    pub sandbox: bool,
    /// Every sandbox operator's scripted delay and time-out at this percentage of the
    /// documented one (an unanswered prompt's minute, a test number's 12 s, a late
    /// callback's 10 s): tests and demos need not wait real minutes. 100 = as documented.
    /// Env `MALIPO_SANDBOX_DELAY_PERCENT`; default 100.
    pub sandbox_delay_percent: u32,
    /// Where the sandbox merchant site ("Maasai Mara Safaris", `/sandbox/merchant`)
    /// listens: its own origin, to show the embedded checkout working across origins.
    /// Only with `sandbox` on; empty or `off` turns it off.
    /// Env `MALIPO_SANDBOX_MERCHANT_LISTEN`; default `127.0.0.1:3001`.
    #[serde(deserialize_with = "optional_addr")]
    pub sandbox_merchant_listen: Option<SocketAddr>,
    /// Where the sandbox card gateway (an MPGS-style processor: its `session.js`, card
    /// frames, 3-D Secure pages and REST API) listens: its own origin, as a real
    /// processor's is. Only with `sandbox` on; empty or `off` turns it off. Test mode's
    /// `[rails.card]` uses it unless given a `base_url`.
    /// Env `MALIPO_SANDBOX_CARD_LISTEN`; default `127.0.0.1:3002`.
    #[serde(deserialize_with = "optional_addr")]
    pub sandbox_card_listen: Option<SocketAddr>,
    /// Where the sandbox PayPal (Orders v2 API, OAuth, its buyer approval page, signed
    /// webhooks and the certificate they are signed with) listens: its own origin, as
    /// PayPal's is. Only with `sandbox` on; empty or `off` turns it off. Test mode's
    /// `[rails.paypal]` uses it unless given a `base_url`.
    /// Env `MALIPO_SANDBOX_PAYPAL_LISTEN`; default `127.0.0.1:3003`.
    #[serde(deserialize_with = "optional_addr")]
    pub sandbox_paypal_listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after SIGTERM or Ctrl-C.
    /// Env `MALIPO_SHUTDOWN_GRACE_SECS`; default 10.
    pub shutdown_grace_secs: u64,
    /// The operator's own reverse proxies: from these peers, the shopper's address for
    /// the per-address limits is read from `X-Forwarded-For`; from anyone else the
    /// header is ignored.
    /// Env `MALIPO_TRUSTED_PROXIES` (comma-separated addresses); default none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds a client may take to send a request's headers (slowloris).
    /// Env `MALIPO_HEADER_READ_TIMEOUT_SECS`; default 10.
    pub header_read_timeout_secs: u64,
    /// Most client connections open at once; past it new clients wait in the kernel's
    /// backlog. Keep it below the process's open-files limit (`ulimit -n`), which the
    /// database and outgoing requests need too.
    /// Must leave a quarter for other requests above `[limits] streams_total`.
    /// Env `MALIPO_MAX_CONNECTIONS`; default 16384.
    pub max_connections: usize,
    /// The master key that webhook signing secrets and per-install secrets are sealed
    /// under in the database: 64 hex digits (`openssl rand -hex 32`). Wins over
    /// `master_key_file`.
    /// Env `MALIPO_MASTER_KEY`; default none.
    #[serde(deserialize_with = "secret")]
    pub master_key: SecretString,
    /// A file holding the master key (64 hex digits), used when `master_key` is empty.
    /// If it does not exist and live mode is off, a new key is written there on start;
    /// with live mode on (any `[rails_live.<rail>]` set), Malipo refuses to start without a key.
    /// Keep it out of database backups: it is what makes them useless to a thief.
    /// Env `MALIPO_MASTER_KEY_FILE`; default `malipo-master.key`.
    pub master_key_file: PathBuf,
    /// Every rail's settings for test mode: `[rails.<rail>]` (e.g. `[rails.mpesa]`), env
    /// `MALIPO_RAILS_<RAIL>_<FIELD>`. By default each rail uses this server's sandbox
    /// operator; a rail may point at the operator's own sandbox instead.
    pub rails: Rails,
    /// Every rail's settings for live mode: `[rails_live.<rail>]`, env
    /// `MALIPO_RAILS_LIVE_<RAIL>_<FIELD>`. A rail with an empty `base_url` (the default)
    /// is off in live mode. When set, it must be an `https://` URL that is not a sandbox,
    /// with real credentials — start-up fails otherwise, so live money never reaches a
    /// sandbox.
    #[serde(default = "Rails::live_default")]
    pub rails_live: Rails,
    /// The old names of `[rails.mpesa]` and `[rails_live.mpesa]`, still read (and their
    /// `MALIPO_MPESA_*` / `MALIPO_MPESA_LIVE_*` variables) for one release.
    #[serde(rename = "mpesa")]
    legacy_mpesa: Option<MpesaConfig>,
    #[serde(rename = "mpesa_live")]
    legacy_mpesa_live: Option<MpesaConfig>,
    /// Webhook delivery: the `[webhooks]` table.
    pub webhooks: WebhooksConfig,
    /// Abuse limits on payment prompts: the `[limits]` table.
    pub limits: LimitsConfig,
    /// The payment engine's patience: the `[payments]` table.
    pub payments: PaymentsConfig,
    /// Paying in another currency than the price: the `[fx]` table.
    pub fx: FxConfig,
    /// The dashboard's mail (address checks, password resets, invitations): `[mail]`.
    pub mail: MailConfig,
    /// The merchant's dashboard: `[dashboard]`.
    pub dashboard: DashboardConfig,
    /// `/metrics`: `[metrics]`.
    pub metrics: MetricsConfig,
}

/// Who may read `/metrics` besides a scraper on this machine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A bearer token a remote scraper presents (`Authorization: Bearer …`); empty: only
    /// loopback peers not behind a proxy. Env `MALIPO_METRICS_TOKEN`.
    #[serde(deserialize_with = "secret")]
    pub token: SecretString,
}

/// The merchant's dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// A refund from the dashboard larger than this many minor units (of the payment's
    /// currency) needs the password again, unless it was given in the last ten minutes.
    /// Default 1,000,000 (KES 10,000.00; UGX 1,000,000).
    pub refund_reauth_minor: i64,
    /// Seconds between confirming a mass action (resend many webhooks) and its start,
    /// during which it can be cancelled. Env `MALIPO_DASHBOARD_MASS_ACTION_DELAY_SECS`;
    /// default 30.
    pub mass_action_delay_secs: u64,
    /// Mails (sign-ups, confirmation and reset links, invitations) one client address
    /// may cause per hour. Env `MALIPO_DASHBOARD_MAILS_PER_IP_PER_HOUR`; default 10.
    pub mails_per_ip_per_hour: i64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            refund_reauth_minor: 1_000_000,
            mass_action_delay_secs: 30,
            mails_per_ip_per_hour: crate::accounts::MAILS_PER_IP_PER_HOUR,
        }
    }
}

/// Where the dashboard's mail goes. With no `smtp_url`, mail is kept for the sandbox
/// mailbox page instead (test installs only: live mode refuses to start without SMTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server: `smtps://USER:PASS@HOST:465` (TLS from the start),
    /// `smtp://USER:PASS@HOST:587?tls=required` (STARTTLS), or `smtp://HOST:PORT` (no TLS:
    /// only for a relay on the same machine). rustls only.
    /// Env `MALIPO_SMTP_URL`; default none (the sandbox mailbox).
    #[serde(deserialize_with = "secret")]
    pub smtp_url: SecretString,
    /// The sender: `Name <address>`.
    /// Env `MALIPO_MAIL_FROM`; default `Malipo <no-reply@malipo.invalid>`.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: SecretString::from(""),
            from: "Malipo <no-reply@malipo.invalid>".into(),
        }
    }
}

impl MailConfig {
    /// Whether mail goes out over SMTP (else to the sandbox mailbox).
    pub fn smtp(&self) -> bool {
        !self.smtp_url.expose_secret().trim().is_empty()
    }
}

/// Where exchange rates come from and how long a quote holds. A merchant's own rates
/// (`malipo rates set`) always come first.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FxConfig {
    /// Live mode's rates provider (`https://…`; Malipo adds `?base=USD` and reads
    /// `{"base": "USD", "rates": {"KES": 129.0}}`). Empty: only the merchants' own rates.
    /// Env `MALIPO_FX_PROVIDER_URL`.
    pub provider_url: String,
    /// Test mode's rates provider. Empty: this server's sandbox, with its fixed rates.
    /// Env `MALIPO_FX_TEST_PROVIDER_URL`.
    pub test_provider_url: String,
    /// How long a quote shown to a shopper holds, in seconds. Env
    /// `MALIPO_FX_QUOTE_TTL_SECS`; default 900 (15 minutes).
    pub quote_ttl_secs: u64,
    /// How long a provider's rates are used before asking again, in seconds. Env
    /// `MALIPO_FX_PROVIDER_CACHE_SECS`; default 300.
    pub provider_cache_secs: u64,
}

impl Default for FxConfig {
    fn default() -> Self {
        FxConfig {
            provider_url: String::new(),
            test_provider_url: String::new(),
            quote_ttl_secs: 900,
            provider_cache_secs: 300,
        }
    }
}

/// How long the engine waits before it calls an outcome unknown, and how long it keeps
/// asking. The defaults suit M-PESA; tests and the fault suite shorten them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// A push whose answer was lost waits this long for a callback, then is `unknown`.
    /// Env `MALIPO_PAYMENTS_UNCONFIRMED_PUSH_MS`; default 120000.
    pub unconfirmed_push_ms: i64,
    /// Queries may say "still processing" (or fail) this long after the push before the
    /// attempt is `unknown`.
    /// Env `MALIPO_PAYMENTS_UNKNOWN_AFTER_MS`; default 180000.
    pub unknown_after_ms: i64,
    /// Unknown attempts are queried until this long after the push; then the merchant
    /// gets `payment.unknown` and a human reconciles.
    /// Env `MALIPO_PAYMENTS_RECONCILE_AFTER_MS`; default 900000 (15 min).
    pub reconcile_after_ms: i64,
    /// How long a poller holds the attempts it took for a status query (a lease): with
    /// several instances, another asks about them only after this, if the one that took
    /// them died. Env `MALIPO_PAYMENTS_POLL_LEASE_MS`; default 120000.
    pub poll_lease_ms: i64,
    /// How long an operator that failed five pushes (or status queries) in a row is left
    /// alone before one probe; doubles on each trip, up to ten times this.
    /// Env `MALIPO_PAYMENTS_BREAKER_COOLDOWN_MS`; default 30000.
    pub breaker_cooldown_ms: i64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            unconfirmed_push_ms: crate::payments::UNCONFIRMED_PUSH_MS,
            unknown_after_ms: crate::payments::UNKNOWN_AFTER_MS,
            reconcile_after_ms: crate::payments::RECONCILE_AFTER_MS,
            poll_lease_ms: crate::payments::POLL_LEASE_MS,
            breaker_cooldown_ms: 30_000,
        }
    }
}

/// How many payment prompts may be sent, so nobody can push-bomb a phone through a
/// checkout link. Each is counted in its own sliding window.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Prompts to one phone number, across every session and merchant, per window.
    /// Env `MALIPO_LIMITS_PROMPTS_PER_PHONE`; default 3.
    pub prompts_per_phone: u32,
    /// Env `MALIPO_LIMITS_PHONE_WINDOW_SECS`; default 600 (10 min).
    pub phone_window_secs: u64,
    /// Attempts on one checkout session, ever.
    /// Env `MALIPO_LIMITS_ATTEMPTS_PER_SESSION`; default 5.
    pub attempts_per_session: u32,
    /// Pay requests from one client address (an IPv6 /64 counts as one), per window.
    /// Env `MALIPO_LIMITS_REQUESTS_PER_IP`; default 20.
    pub requests_per_ip: u32,
    /// Env `MALIPO_LIMITS_IP_WINDOW_SECS`; default 600 (10 min).
    pub ip_window_secs: u64,
    /// Open `/pay/{id}/events` streams, in all.
    /// Env `MALIPO_LIMITS_STREAMS_TOTAL`; default 10000.
    pub streams_total: usize,
    /// Open streams of one session (a shopper's tabs and devices).
    /// Env `MALIPO_LIMITS_STREAMS_PER_SESSION`; default 10.
    pub streams_per_session: usize,
    /// Open streams from one client address.
    /// Env `MALIPO_LIMITS_STREAMS_PER_IP`; default 40.
    pub streams_per_ip: usize,
    /// STK pushes the sandbox Daraja accepts from one address per minute.
    /// Env `MALIPO_LIMITS_SANDBOX_PUSHES_PER_MINUTE`; default 120.
    pub sandbox_pushes_per_minute: u32,
    /// Taking a database connection waiting longer than this makes the instance shed
    /// API calls and pay forms for a few seconds (see [`crate::shed`]).
    /// Env `MALIPO_LIMITS_BUSY_WAIT_MS`; default 250.
    pub busy_wait_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            prompts_per_phone: 3,
            phone_window_secs: 600,
            attempts_per_session: 5,
            requests_per_ip: 20,
            ip_window_secs: 600,
            streams_total: 10_000,
            streams_per_session: 10,
            streams_per_ip: 40,
            sandbox_pushes_per_minute: 120,
            busy_wait_ms: 250,
        }
    }
}

/// How webhooks are delivered and retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Seconds to wait for the merchant's answer before counting the attempt as failed.
    /// Env `MALIPO_WEBHOOKS_TIMEOUT_SECS`; default 10.
    pub timeout_secs: u64,
    /// Delay before the first retry; each later one doubles it (with jitter).
    /// Env `MALIPO_WEBHOOKS_RETRY_BASE_MS`; default 10000 (10 s).
    pub retry_base_ms: u64,
    /// The longest delay between two attempts.
    /// Env `MALIPO_WEBHOOKS_RETRY_MAX_MS`; default 21600000 (6 h).
    pub retry_max_ms: u64,
    /// How long after the first attempt (or a redelivery) a failing delivery keeps being
    /// retried before it is marked `failed`.
    /// Env `MALIPO_WEBHOOKS_RETRY_WINDOW_SECS`; default 432000 (5 days).
    pub retry_window_secs: u64,
    /// Hosts webhooks may be delivered to although they are not public, for local
    /// development only: `127.0.0.1`, `localhost` (any port) or `127.0.0.1:8080`.
    /// Everything else must resolve to public addresses.
    /// Env `MALIPO_WEBHOOKS_ALLOW_HOSTS` (comma-separated); default none.
    pub allow_hosts: Vec<String>,
    /// Most live-mode POSTs in flight at once. Live and test deliveries have separate
    /// slots, so test traffic never delays a live `checkout.session.completed`; within
    /// a mode, merchants take turns and one merchant holds at most a quarter of the
    /// slots.
    /// Env `MALIPO_WEBHOOKS_LIVE_CONCURRENCY`; default 32.
    pub live_concurrency: usize,
    /// Most test-mode POSTs in flight at once.
    /// Env `MALIPO_WEBHOOKS_TEST_CONCURRENCY`; default 8.
    pub test_concurrency: usize,
    /// Most POSTs in flight to one endpoint.
    /// Env `MALIPO_WEBHOOKS_ENDPOINT_CONCURRENCY`; default 4.
    pub endpoint_concurrency: usize,
    /// Timeouts or refused connections in a row after which an endpoint's circuit opens:
    /// its deliveries wait out a cool-down (doubling per trip, at most 10 min), then one
    /// probe goes; a probe answered (any status) closes it.
    /// Env `MALIPO_WEBHOOKS_BREAKER_FAILURES`; default 5.
    pub breaker_failures: u32,
    /// The first cool-down of an open circuit.
    /// Env `MALIPO_WEBHOOKS_BREAKER_COOLDOWN_SECS`; default 60.
    pub breaker_cooldown_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            timeout_secs: 10,
            retry_base_ms: 10_000,
            retry_max_ms: 6 * 3600 * 1000,
            retry_window_secs: 5 * 24 * 3600,
            allow_hosts: Vec::new(),
            live_concurrency: 32,
            test_concurrency: 8,
            endpoint_concurrency: 4,
            breaker_failures: 5,
            breaker_cooldown_secs: 60,
        }
    }
}

impl Config {
    /// The master key: `master_key` if set, else the one in `master_key_file`, which a
    /// test-only install creates on first start. Live mode never runs on a key it made
    /// up itself: it must be given one.
    pub fn load_master_key(&self) -> Result<crate::sealing::MasterKey, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid {
            field: "master_key",
            why,
        };
        if !self.master_key.expose_secret().is_empty() {
            return crate::sealing::MasterKey::from_hex(self.master_key.expose_secret())
                .map_err(|e| invalid(e.to_string()));
        }
        let live = self.live_rails().next().is_some();
        if live && !self.master_key_file.exists() {
            return Err(invalid(format!(
                "live mode is on but there is no master key: set MALIPO_MASTER_KEY, or put \
                 one in {} (64 hex digits, e.g. from `openssl rand -hex 32`)",
                self.master_key_file.display()
            )));
        }
        let (key, created) =
            crate::sealing::MasterKey::load_or_create(&self.master_key_file, !live)
                .map_err(|e| invalid(e.to_string()))?;
        if created {
            tracing::warn!(
                path = %self.master_key_file.display(),
                key = key.id(),
                "no master key configured: made a new one for this test-mode install; \
                 keep the file, or the secrets in the database cannot be read"
            );
        }
        Ok(key)
    }

    /// Where `rail`'s connector sends requests in test mode: its configured base URL,
    /// or this server's own sandbox operator.
    pub fn rail_base_url(&self, rail: RailId) -> String {
        let settings = self.rails.get(rail);
        let url = settings.base_url().trim_end_matches('/');
        if url.is_empty() {
            format!("{}/sandbox/{}", self.public_url, settings.sandbox_path())
        } else {
            url.to_owned()
        }
    }

    /// Rates providers are URLs; live mode's is https and no sandbox; a quote holds
    /// between a minute and a day.
    fn check_fx(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid { field: "fx", why });
        // Never echoed: a provider URL may carry its API key.
        for (field, url) in [
            ("provider_url", &self.fx.provider_url),
            ("test_provider_url", &self.fx.test_provider_url),
        ] {
            if !url.trim().is_empty() && url::Url::parse(url.trim()).is_err() {
                return invalid(format!("{field} is not a URL"));
            }
        }
        if let Some(url) = self.fx_live_provider() {
            let host = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            if !url.starts_with("https://") {
                return invalid("provider_url must be an https:// URL".into());
            }
            if url.contains("/sandbox") || host.contains("sandbox") {
                return invalid(
                    "provider_url points at a sandbox; live mode never reaches one".into(),
                );
            }
        }
        if !(60..=86_400).contains(&self.fx.quote_ttl_secs) {
            return invalid("quote_ttl_secs must be between 60 and 86400".into());
        }
        if !(1..=3_600).contains(&self.fx.provider_cache_secs) {
            return invalid("provider_cache_secs must be between 1 and 3600".into());
        }
        Ok(())
    }

    /// Mail must be deliverable: a parseable sender, an SMTP URL lettre accepts, and in
    /// live mode SMTP itself (a live install never keeps sign-in links in a page).
    fn check_mail(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid { field: "mail", why });
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return invalid(format!(
                "from {:?} is not a mailbox (Name <address>)",
                self.mail.from
            ));
        }
        if self.mail.smtp() {
            if let Err(e) = crate::mail::smtp_transport(&self.mail.smtp_url) {
                return invalid(format!("smtp_url: {e}"));
            }
        } else if self.live_rails().next().is_some() {
            return invalid(
                "live mode is on (a [rails_live.<rail>] is set) but no SMTP server is: set \
                 [mail] smtp_url (MALIPO_SMTP_URL), so sign-in and password-reset mail reaches \
                 people instead of the sandbox mailbox"
                    .into(),
            );
        }
        Ok(())
    }

    /// Test mode's rates provider, and whether it is this server's own sandbox.
    pub fn fx_test_provider(&self) -> (String, bool) {
        let url = self.fx.test_provider_url.trim();
        if url.is_empty() {
            (format!("{}/sandbox/fx/rates", self.public_url), true)
        } else {
            (url.to_owned(), false)
        }
    }

    /// Live mode's rates provider, if one is configured.
    pub fn fx_live_provider(&self) -> Option<String> {
        let url = self.fx.provider_url.trim();
        (!url.is_empty()).then(|| url.to_owned())
    }

    /// The rails switched on for live mode, with their base URLs.
    pub fn live_rails(&self) -> impl Iterator<Item = (RailId, String)> + '_ {
        self.rails_live.each().into_iter().filter_map(|(rail, s)| {
            let url = s.base_url().trim_end_matches('/');
            (!url.is_empty()).then(|| (rail, url.to_owned()))
        })
    }

    /// A live rail, when switched on, must be a real operator with real credentials:
    /// one check for every rail.
    fn check_live_rails(&self) -> Result<(), ConfigError> {
        for (field, rails) in [("rails", &self.rails), ("rails_live", &self.rails_live)] {
            for (rail, settings) in rails.each() {
                if let Err(why) = settings.check() {
                    return Err(ConfigError::Invalid {
                        field,
                        why: format!("{rail}: {why}"),
                    });
                }
            }
        }
        for (rail, settings) in self.rails_live.each() {
            let url = settings.base_url().trim_end_matches('/');
            if url.is_empty() {
                continue;
            }
            let invalid = |why: &str| {
                Err(ConfigError::Invalid {
                    field: "rails_live",
                    why: format!("{rail}: {why}"),
                })
            };
            let parsed = url::Url::parse(url).ok();
            let host = parsed.as_ref().and_then(|u| u.host_str()).unwrap_or("");
            if parsed.as_ref().is_none_or(|u| u.scheme() != "https") {
                return invalid("base_url must be an https:// URL");
            }
            if url.contains("/sandbox")
                || host.contains("sandbox")
                || (!self.public_url.is_empty() && url.starts_with(&self.public_url))
            {
                return invalid("base_url points at a sandbox; live mode never reaches one");
            }
            // No secret at all: the rail serves merchants' own credentials only.
            if settings.has_secrets()
                && let Err(why) = settings.check_live_credentials()
            {
                return invalid(&why);
            }
        }
        Ok(())
    }
}

fn optional_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "" | "off" => Ok(None),
        _ => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: SecretString::from("sqlite://malipo.db"),
            database_max_connections: 10,
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: "http://127.0.0.1:3000".into(),
            log_format: LogFormat::Human,
            log: "info,sqlx=warn".into(),
            site_root: PathBuf::from("target/site"),
            sandbox: true,
            sandbox_delay_percent: 100,
            sandbox_merchant_listen: Some(SocketAddr::from(([127, 0, 0, 1], 3001))),
            sandbox_card_listen: Some(SocketAddr::from(([127, 0, 0, 1], 3002))),
            sandbox_paypal_listen: Some(SocketAddr::from(([127, 0, 0, 1], 3003))),
            shutdown_grace_secs: 10,
            header_read_timeout_secs: 10,
            max_connections: 16_384,
            trusted_proxies: Vec::new(),
            master_key: SecretString::from(""),
            master_key_file: PathBuf::from("malipo-master.key"),
            rails: Rails::default(),
            rails_live: Rails::live_default(),
            legacy_mpesa: None,
            legacy_mpesa_live: None,
            webhooks: WebhooksConfig::default(),
            limits: LimitsConfig::default(),
            payments: PaymentsConfig::default(),
            fx: FxConfig::default(),
            mail: MailConfig::default(),
            dashboard: DashboardConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid {var}={value:?}: {why}")]
    Env {
        var: &'static str,
        value: String,
        why: String,
    },
    #[error("invalid {field}: {why}")]
    Invalid { field: &'static str, why: String },
}

impl Config {
    /// Defaults, then `file` (or `MALIPO_CONFIG`), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, |var| std::env::var(var).ok())
    }

    /// As [`Config::load`], reading variables through `env` (so tests need not touch the
    /// process environment).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env("MALIPO_CONFIG").map(PathBuf::from));
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => Config::default(),
        };
        config.apply_env(&env)?;
        config.rails_live.mpesa.clear_sandbox_initiator();
        config.rails_live.mtn_momo.clear_sandbox_disbursement();
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                why: e.to_string(),
                value,
            })
        }
        if let Some(v) = env("MALIPO_DATABASE_URL") {
            self.database_url = SecretString::from(v);
        }
        if let Some(v) = env("MALIPO_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections = parse("MALIPO_DATABASE_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = env("MALIPO_SANDBOX_DELAY_PERCENT") {
            self.sandbox_delay_percent = parse("MALIPO_SANDBOX_DELAY_PERCENT", v)?;
        }
        if let Some(v) = env("MALIPO_MAX_CONNECTIONS") {
            self.max_connections = parse("MALIPO_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = env("MALIPO_MASTER_KEY") {
            self.master_key = SecretString::from(v);
        }
        if let Some(v) = env("MALIPO_DASHBOARD_MASS_ACTION_DELAY_SECS") {
            self.dashboard.mass_action_delay_secs =
                parse("MALIPO_DASHBOARD_MASS_ACTION_DELAY_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_DASHBOARD_MAILS_PER_IP_PER_HOUR") {
            self.dashboard.mails_per_ip_per_hour =
                parse("MALIPO_DASHBOARD_MAILS_PER_IP_PER_HOUR", v)?;
        }
        if let Some(v) = env("MALIPO_SMTP_URL") {
            self.mail.smtp_url = SecretString::from(v);
        }
        if let Some(v) = env("MALIPO_MAIL_FROM") {
            self.mail.from = v;
        }
        if let Some(v) = env("MALIPO_LIMITS_BUSY_WAIT_MS") {
            self.limits.busy_wait_ms = parse("MALIPO_LIMITS_BUSY_WAIT_MS", v)?;
        }
        if let Some(v) = env("MALIPO_METRICS_TOKEN") {
            self.metrics.token = SecretString::from(v);
        }
        if let Some(v) = env("MALIPO_MASTER_KEY_FILE") {
            self.master_key_file = PathBuf::from(v);
        }
        if let Some(v) = env("MALIPO_LISTEN") {
            self.listen = parse("MALIPO_LISTEN", v)?;
        }
        if let Some(v) = env("MALIPO_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = env("MALIPO_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        var: "MALIPO_LOG_FORMAT",
                        value: v,
                        why: "expected human or json".into(),
                    });
                }
            };
        }
        if let Some(v) = env("MALIPO_LOG") {
            self.log = v;
        }
        if let Some(v) = env("MALIPO_SITE_ROOT") {
            self.site_root = PathBuf::from(v);
        }
        if let Some(v) = env("MALIPO_SANDBOX") {
            self.sandbox = match v.as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::Env {
                        var: "MALIPO_SANDBOX",
                        value: v,
                        why: "expected true or false".into(),
                    });
                }
            };
        }
        if let Some(v) = env("MALIPO_SANDBOX_MERCHANT_LISTEN") {
            self.sandbox_merchant_listen = match v.as_str() {
                "" | "off" => None,
                _ => Some(parse("MALIPO_SANDBOX_MERCHANT_LISTEN", v)?),
            };
        }
        if let Some(v) = env("MALIPO_SANDBOX_CARD_LISTEN") {
            self.sandbox_card_listen = match v.as_str() {
                "" | "off" => None,
                _ => Some(parse("MALIPO_SANDBOX_CARD_LISTEN", v)?),
            };
        }
        if let Some(v) = env("MALIPO_SANDBOX_PAYPAL_LISTEN") {
            self.sandbox_paypal_listen = match v.as_str() {
                "" | "off" => None,
                _ => Some(parse("MALIPO_SANDBOX_PAYPAL_LISTEN", v)?),
            };
        }
        if let Some(v) = env("MALIPO_SHUTDOWN_GRACE_SECS") {
            self.shutdown_grace_secs = parse("MALIPO_SHUTDOWN_GRACE_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| parse("MALIPO_TRUSTED_PROXIES", a.to_owned()))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("MALIPO_HEADER_READ_TIMEOUT_SECS") {
            self.header_read_timeout_secs = parse("MALIPO_HEADER_READ_TIMEOUT_SECS", v)?;
        }
        // The old tables, then every rail's variables, from the one shape.
        // The old tables only where the new ones were not written: both is an error.
        let both = |field: &'static str| ConfigError::Invalid {
            field,
            why: "set in both the old and the new table; keep only the new one".into(),
        };
        if let Some(old) = self.legacy_mpesa.take() {
            if !self.rails.mpesa.same_as(&MpesaConfig::default()) {
                return Err(both("rails.mpesa"));
            }
            self.rails.mpesa = old;
        }
        if let Some(old) = self.legacy_mpesa_live.take() {
            if !self.rails_live.mpesa.same_as(&MpesaConfig::off()) {
                return Err(both("rails_live.mpesa"));
            }
            self.rails_live.mpesa = old;
        }
        // The old M-PESA names, for one release (the new names win).
        for field in self.rails.mpesa.fields() {
            let upper = field.to_ascii_uppercase();
            if let Some(v) = env(&format!("MALIPO_MPESA_{upper}")) {
                self.rails.mpesa.set(field, v);
            }
            if let Some(v) = env(&format!("MALIPO_MPESA_LIVE_{upper}")) {
                self.rails_live.mpesa.set(field, v);
            }
        }
        self.rails.apply_env("MALIPO_RAILS_", env);
        self.rails_live.apply_env("MALIPO_RAILS_LIVE_", env);
        if let Some(v) = env("MALIPO_FX_PROVIDER_URL") {
            self.fx.provider_url = v;
        }
        if let Some(v) = env("MALIPO_FX_TEST_PROVIDER_URL") {
            self.fx.test_provider_url = v;
        }
        if let Some(v) = env("MALIPO_FX_QUOTE_TTL_SECS") {
            self.fx.quote_ttl_secs = parse("MALIPO_FX_QUOTE_TTL_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_FX_PROVIDER_CACHE_SECS") {
            self.fx.provider_cache_secs = parse("MALIPO_FX_PROVIDER_CACHE_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_LIVE_CONCURRENCY") {
            self.webhooks.live_concurrency = parse("MALIPO_WEBHOOKS_LIVE_CONCURRENCY", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_TEST_CONCURRENCY") {
            self.webhooks.test_concurrency = parse("MALIPO_WEBHOOKS_TEST_CONCURRENCY", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_ENDPOINT_CONCURRENCY") {
            self.webhooks.endpoint_concurrency = parse("MALIPO_WEBHOOKS_ENDPOINT_CONCURRENCY", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_BREAKER_FAILURES") {
            self.webhooks.breaker_failures = parse("MALIPO_WEBHOOKS_BREAKER_FAILURES", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_BREAKER_COOLDOWN_SECS") {
            self.webhooks.breaker_cooldown_secs =
                parse("MALIPO_WEBHOOKS_BREAKER_COOLDOWN_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_TIMEOUT_SECS") {
            self.webhooks.timeout_secs = parse("MALIPO_WEBHOOKS_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_RETRY_BASE_MS") {
            self.webhooks.retry_base_ms = parse("MALIPO_WEBHOOKS_RETRY_BASE_MS", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_RETRY_MAX_MS") {
            self.webhooks.retry_max_ms = parse("MALIPO_WEBHOOKS_RETRY_MAX_MS", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_RETRY_WINDOW_SECS") {
            self.webhooks.retry_window_secs = parse("MALIPO_WEBHOOKS_RETRY_WINDOW_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_WEBHOOKS_ALLOW_HOSTS") {
            self.webhooks.allow_hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = env("MALIPO_LIMITS_PROMPTS_PER_PHONE") {
            self.limits.prompts_per_phone = parse("MALIPO_LIMITS_PROMPTS_PER_PHONE", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_PHONE_WINDOW_SECS") {
            self.limits.phone_window_secs = parse("MALIPO_LIMITS_PHONE_WINDOW_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_ATTEMPTS_PER_SESSION") {
            self.limits.attempts_per_session = parse("MALIPO_LIMITS_ATTEMPTS_PER_SESSION", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_REQUESTS_PER_IP") {
            self.limits.requests_per_ip = parse("MALIPO_LIMITS_REQUESTS_PER_IP", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_IP_WINDOW_SECS") {
            self.limits.ip_window_secs = parse("MALIPO_LIMITS_IP_WINDOW_SECS", v)?;
        }
        if let Some(v) = env("MALIPO_PAYMENTS_UNCONFIRMED_PUSH_MS") {
            self.payments.unconfirmed_push_ms = parse("MALIPO_PAYMENTS_UNCONFIRMED_PUSH_MS", v)?;
        }
        if let Some(v) = env("MALIPO_PAYMENTS_UNKNOWN_AFTER_MS") {
            self.payments.unknown_after_ms = parse("MALIPO_PAYMENTS_UNKNOWN_AFTER_MS", v)?;
        }
        if let Some(v) = env("MALIPO_PAYMENTS_RECONCILE_AFTER_MS") {
            self.payments.reconcile_after_ms = parse("MALIPO_PAYMENTS_RECONCILE_AFTER_MS", v)?;
        }
        if let Some(v) = env("MALIPO_PAYMENTS_BREAKER_COOLDOWN_MS") {
            self.payments.breaker_cooldown_ms = parse("MALIPO_PAYMENTS_BREAKER_COOLDOWN_MS", v)?;
        }
        if let Some(v) = env("MALIPO_PAYMENTS_POLL_LEASE_MS") {
            self.payments.poll_lease_ms = parse("MALIPO_PAYMENTS_POLL_LEASE_MS", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_SANDBOX_PUSHES_PER_MINUTE") {
            self.limits.sandbox_pushes_per_minute =
                parse("MALIPO_LIMITS_SANDBOX_PUSHES_PER_MINUTE", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_STREAMS_TOTAL") {
            self.limits.streams_total = parse("MALIPO_LIMITS_STREAMS_TOTAL", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_STREAMS_PER_SESSION") {
            self.limits.streams_per_session = parse("MALIPO_LIMITS_STREAMS_PER_SESSION", v)?;
        }
        if let Some(v) = env("MALIPO_LIMITS_STREAMS_PER_IP") {
            self.limits.streams_per_ip = parse("MALIPO_LIMITS_STREAMS_PER_IP", v)?;
        }
        Ok(())
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        if crate::store::Backend::from_url(self.database_url.expose_secret()).is_none() {
            return Err(ConfigError::Invalid {
                field: "database_url",
                why: "must start with sqlite:// or postgres://".into(),
            });
        }
        let url = self.public_url.trim_end_matches('/').to_owned();
        // Empty: derived from the bound address at start-up (tests on port 0).
        if !url.is_empty()
            && (!(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10)
        {
            return Err(ConfigError::Invalid {
                field: "public_url",
                why: format!("{url:?} is not an http(s) URL"),
            });
        }
        self.public_url = url;
        if !(10..=60_000).contains(&self.limits.busy_wait_ms) {
            return Err(ConfigError::Invalid {
                field: "limits",
                why: "busy_wait_ms must be between 10 and 60000".into(),
            });
        }
        if !(100..=3_600_000).contains(&self.payments.breaker_cooldown_ms) {
            return Err(ConfigError::Invalid {
                field: "payments",
                why: "breaker_cooldown_ms must be between 100 and 3600000".into(),
            });
        }
        if !(1_000..=3_600_000).contains(&self.payments.poll_lease_ms) {
            return Err(ConfigError::Invalid {
                field: "payments",
                why: "poll_lease_ms must be between 1000 and 3600000".into(),
            });
        }
        self.check_live_rails()?;
        self.check_fx()?;
        self.check_mail()?;
        if !self.master_key.expose_secret().is_empty()
            && crate::sealing::MasterKey::from_hex(self.master_key.expose_secret()).is_err()
        {
            return Err(ConfigError::Invalid {
                field: "master_key",
                why: "must be 64 hex digits (32 bytes)".into(),
            });
        }
        // Open event streams must not be able to take every connection place: callbacks
        // and pay requests need some.
        if self.limits.streams_total.saturating_mul(4) > self.max_connections.saturating_mul(3) {
            return Err(ConfigError::Invalid {
                field: "max_connections",
                why: format!(
                    "must be at least 4/3 of [limits] streams_total ({}), so event streams \
                     cannot take every connection",
                    self.limits.streams_total
                ),
            });
        }
        let w = &self.webhooks;
        if w.live_concurrency == 0
            || w.test_concurrency == 0
            || w.endpoint_concurrency == 0
            || w.breaker_failures == 0
        {
            return Err(ConfigError::Invalid {
                field: "webhooks",
                why: "the concurrency limits and breaker_failures must be at least 1".into(),
            });
        }
        if w.timeout_secs == 0 || w.retry_base_ms == 0 || w.retry_max_ms < w.retry_base_ms {
            return Err(ConfigError::Invalid {
                field: "webhooks",
                why: "timeout_secs and retry_base_ms must be positive, retry_max_ms at least \
                      retry_base_ms"
                    .into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_without_file_or_env() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.database_url.expose_secret(), "sqlite://malipo.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url, "http://127.0.0.1:3000");
        assert!(c.sandbox);
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("malipo.toml");
        std::fs::write(
            &path,
            "database_url = \"postgres://file@localhost/malipo\"\nlisten = \"127.0.0.1:4000\"\n\
             public_url = \"https://pay.example.co.ke/\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), env(&[("MALIPO_LISTEN", "127.0.0.1:0")])).unwrap();
        assert_eq!(
            c.database_url.expose_secret(),
            "postgres://file@localhost/malipo"
        );
        assert_eq!(c.listen.port(), 0, "env wins over the file");
        assert_eq!(
            c.public_url, "https://pay.example.co.ke",
            "trailing slash trimmed"
        );
        assert_eq!(c.shutdown_grace_secs, 10, "default kept where neither says");

        let via_env =
            Config::load_from(None, env(&[("MALIPO_CONFIG", path.to_str().unwrap())])).unwrap();
        assert_eq!(via_env.listen.port(), 4000);
    }

    #[test]
    fn bad_values_are_reported_not_ignored() {
        let err = Config::load_from(None, env(&[("MALIPO_LISTEN", "nonsense")])).unwrap_err();
        assert!(err.to_string().contains("MALIPO_LISTEN"), "{err}");
        let err =
            Config::load_from(None, env(&[("MALIPO_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database_url"), "{err}");
        let err = Config::load_from(None, env(&[("MALIPO_SANDBOX", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("MALIPO_SANDBOX"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.toml");
        std::fs::write(&path, "databse_url = \"sqlite://x.db\"\n").unwrap();
        let err = Config::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("databse_url"), "{err}");
    }

    #[test]
    fn live_rails_are_off_by_default_and_never_a_sandbox() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.live_rails().count(), 0);
        assert_eq!(
            c.rail_base_url(RailId::Mpesa),
            "http://127.0.0.1:3000/sandbox/daraja"
        );
        let live = [
            ("MALIPO_RAILS_LIVE_MPESA_CONSUMER_KEY", "ck-live"),
            ("MALIPO_RAILS_LIVE_MPESA_CONSUMER_SECRET", "cs-live"),
            ("MALIPO_RAILS_LIVE_MPESA_SHORTCODE", "600100"),
            ("MALIPO_RAILS_LIVE_MPESA_PASSKEY", "live-passkey"),
            ("MALIPO_SMTP_URL", "smtps://malipo:pw@mail.example:465"),
        ];
        // Live mode without an SMTP server does not start: its sign-in mail would go
        // to the sandbox mailbox page.
        let no_smtp: Vec<_> = live
            .iter()
            .filter(|(k, _)| *k != "MALIPO_SMTP_URL")
            .copied()
            .chain([(
                "MALIPO_RAILS_LIVE_MPESA_BASE_URL",
                "https://api.safaricom.co.ke",
            )])
            .collect();
        let err = Config::load_from(None, env(&no_smtp)).unwrap_err();
        assert!(err.to_string().contains("SMTP"), "{err}");
        let with = |url: &'static str| {
            let mut pairs = live.to_vec();
            pairs.push(("MALIPO_RAILS_LIVE_MPESA_BASE_URL", url));
            Config::load_from(None, env(&pairs))
        };
        let c = with("https://api.safaricom.co.ke/").unwrap();
        assert_eq!(
            c.live_rails().collect::<Vec<_>>(),
            [(RailId::Mpesa, "https://api.safaricom.co.ke".to_owned())]
        );
        assert_eq!(c.rails_live.mpesa.shortcode, "600100");
        for bad in [
            "https://sandbox.safaricom.co.ke",
            "http://api.safaricom.co.ke",
            "http://127.0.0.1:3000/sandbox/daraja",
            "https://127.0.0.1:3000/sandbox/daraja",
        ] {
            let err = with(bad).unwrap_err();
            assert!(err.to_string().contains("rails_live"), "{bad}: {err}");
        }
        // A live URL with the sandbox's credentials is refused too.
        let err = Config::load_from(
            None,
            env(&[
                (
                    "MALIPO_RAILS_LIVE_MPESA_BASE_URL",
                    "https://api.safaricom.co.ke",
                ),
                ("MALIPO_RAILS_LIVE_MPESA_PASSKEY", SANDBOX_PASSKEY),
                ("MALIPO_SMTP_URL", "smtps://malipo:pw@mail.example:465"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("credentials"), "{err}");
        // A live URL with no secret at all: open to merchants' own credentials only
        // (saved on the dashboard); live mode is on, so SMTP is needed.
        let open = [(
            "MALIPO_RAILS_LIVE_MPESA_BASE_URL",
            "https://api.safaricom.co.ke",
        )];
        let err = Config::load_from(None, env(&open)).unwrap_err();
        assert!(err.to_string().contains("SMTP"), "{err}");
        let mut open = open.to_vec();
        open.push(("MALIPO_SMTP_URL", "smtps://malipo:pw@mail.example:465"));
        let c = Config::load_from(None, env(&open)).unwrap();
        assert_eq!(c.live_rails().count(), 1);
        let registry = crate::connectors::Registry::from_config(&c).unwrap();
        assert!(
            registry
                .get(RailId::Mpesa, crate::domain::Mode::Live)
                .is_none()
        );
    }

    #[test]
    fn rail_settings_come_from_one_shape_and_the_old_names_still_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("malipo.toml");
        std::fs::write(
            &path,
            "[rails.mpesa]\nshortcode = \"600000\"\n\n[rails_live.mpesa]\nbase_url = \"\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(c.rails.mpesa.shortcode, "600000");
        // The old table and variables, for one release; the new names win.
        std::fs::write(&path, "[mpesa]\nshortcode = \"600111\"\n").unwrap();
        let c = Config::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(c.rails.mpesa.shortcode, "600111");
        let c = Config::load_from(None, env(&[("MALIPO_MPESA_SHORTCODE", "600222")])).unwrap();
        assert_eq!(c.rails.mpesa.shortcode, "600222");
        let c = Config::load_from(
            None,
            env(&[
                ("MALIPO_MPESA_SHORTCODE", "600222"),
                ("MALIPO_RAILS_MPESA_SHORTCODE", "600333"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rails.mpesa.shortcode, "600333");
        // Both the old and the new table: an error, not a silent choice.
        std::fs::write(
            &path,
            "[mpesa]\nshortcode = \"600111\"\n\n[rails.mpesa]\nshortcode = \"600000\"\n",
        )
        .unwrap();
        let err = Config::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
        // A live rail with the sandbox's shortcode is refused like the sandbox's passkey.
        let err = Config::load_from(
            None,
            env(&[
                (
                    "MALIPO_RAILS_LIVE_MPESA_BASE_URL",
                    "https://api.safaricom.co.ke",
                ),
                ("MALIPO_RAILS_LIVE_MPESA_CONSUMER_KEY", "ck-live"),
                ("MALIPO_RAILS_LIVE_MPESA_CONSUMER_SECRET", "cs-live"),
                ("MALIPO_RAILS_LIVE_MPESA_SHORTCODE", "174379"),
                ("MALIPO_RAILS_LIVE_MPESA_PASSKEY", "live-passkey"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("credentials"), "{err}");
        // A key no rail has is an error, as everywhere in the file.
        std::fs::write(&path, "[rails.mpesa]\nshort_code = \"1\"\n").unwrap();
        assert!(Config::load_from(Some(&path), env(&[])).is_err());
    }

    #[test]
    fn live_mode_needs_a_master_key_test_mode_makes_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.key");
        let file_s = file.display().to_string();
        let live = [
            ("MALIPO_MPESA_LIVE_BASE_URL", "https://api.safaricom.co.ke"),
            ("MALIPO_MPESA_LIVE_CONSUMER_KEY", "ck-live"),
            ("MALIPO_MPESA_LIVE_CONSUMER_SECRET", "cs-live"),
            ("MALIPO_MPESA_LIVE_SHORTCODE", "600100"),
            ("MALIPO_MPESA_LIVE_PASSKEY", "live-passkey"),
            ("MALIPO_MASTER_KEY_FILE", file_s.as_str()),
            ("MALIPO_SMTP_URL", "smtps://malipo:pw@mail.example:465"),
        ];
        // Live, no key anywhere: refused, and no key is made up.
        let c = Config::load_from(None, env(&live)).unwrap();
        let err = c.load_master_key().unwrap_err();
        assert!(err.to_string().contains("master key"), "{err}");
        assert!(!file.exists());
        // Test mode: made on first start, the same one afterwards.
        let c = Config::load_from(None, env(&[("MALIPO_MASTER_KEY_FILE", &file_s)])).unwrap();
        let made = c.load_master_key().unwrap();
        assert!(file.exists());
        assert_eq!(c.load_master_key().unwrap().id(), made.id());
        // Live with that file (or a key in the environment): runs.
        let c = Config::load_from(None, env(&live)).unwrap();
        assert_eq!(c.load_master_key().unwrap().id(), made.id());
        let hex_key = "11".repeat(32);
        let mut with_key = live.to_vec();
        with_key[5] = ("MALIPO_MASTER_KEY_FILE", "/nonexistent/master.key");
        with_key.push(("MALIPO_MASTER_KEY", &hex_key));
        let c = Config::load_from(None, env(&with_key)).unwrap();
        assert_ne!(c.load_master_key().unwrap().id(), made.id());
        // A malformed key is a configuration error, and is never echoed.
        let err =
            Config::load_from(None, env(&[("MALIPO_MASTER_KEY", "not-hex-secret")])).unwrap_err();
        assert!(err.to_string().contains("master_key"), "{err}");
        assert!(!err.to_string().contains("not-hex-secret"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_database_url() {
        let c = Config::load_from(
            None,
            env(&[("MALIPO_DATABASE_URL", "postgres://u:hunter2@h/db")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
