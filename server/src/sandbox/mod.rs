//! Sandbox operators: real HTTP servers in the binary that speak the operators' own wire
//! formats, so merchants can test offline and Malipo's real connectors reach them by base
//! URL only. Test mode only; live mode never reaches them.
//!
//! - [`daraja`]: Safaricom Daraja (token, STK push, STK query, callbacks).
//! - [`handset`]: the shopper's phone: pending prompts, accept with a PIN, decline.
//! - [`worker`]: scripted outcomes and callback delivery (lost, duplicated, delayed).
//! - [`merchant`]: a merchant's booking site on its own origin, integrating Malipo as a
//!   real merchant would (API with a secret key, `checkout.js`, verified webhooks).

pub mod behaviour;
mod daraja;
mod handset;
pub mod merchant;
pub mod worker;

use axum::Router;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::{config::MpesaConfig, startup::AppState};

/// State the sandbox keeps in memory (tokens, like Daraja's, do not survive a restart;
/// pushes live in the database and do).
pub struct Sandbox {
    pub(crate) mpesa: MpesaConfig,
    tokens: Mutex<HashMap<String, Instant>>,
    http: reqwest::Client,
    /// Callbacks go only under this: `{public_url}/callbacks/`.
    callback_prefix: String,
    /// STK pushes per client address.
    pushes: crate::limits::RateLimiter,
    /// Every scripted delay and time-out at this percentage (100: as documented).
    delay_percent: u32,
}

/// Prompts one sandbox phone may have waiting at once.
pub const PENDING_PER_PHONE: i64 = 20;
/// The longest request body a sandbox operator reads.
pub const BODY_LIMIT: usize = 16 * 1024;

impl Sandbox {
    /// `public_url`: this instance's own, the only place callbacks may go.
    pub fn new(
        mpesa: MpesaConfig,
        public_url: &str,
        pushes_per_minute: u32,
        delay_percent: u32,
    ) -> Result<Arc<Sandbox>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("malipo-sandbox-daraja")
            // A callback URL is ours (checked on push); a redirect could send the POST
            // anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Arc::new(Sandbox {
            mpesa,
            tokens: Mutex::new(HashMap::new()),
            http,
            callback_prefix: format!("{}/callbacks/", public_url.trim_end_matches('/')),
            pushes: crate::limits::RateLimiter::new(pushes_per_minute, 60),
            delay_percent,
        }))
    }

    /// What the sandbox does with a push to `phone`, its delays scaled.
    pub fn behaviour(&self, phone: &str) -> behaviour::Behaviour {
        behaviour::for_phone(phone).scaled(self.delay_percent)
    }

    /// Whether the sandbox may POST a callback to `url`: only this instance's own
    /// callback routes, so the sandbox is never a way to make Malipo call anything else
    /// (blind SSRF).
    pub fn callback_allowed(&self, url: &str) -> bool {
        url.len() <= 512
            && url.starts_with(&self.callback_prefix)
            && url::Url::parse(url).is_ok_and(|u| {
                u.as_str().starts_with(&self.callback_prefix)
                    && u.query().is_none()
                    && u.fragment().is_none()
            })
    }
}

/// `/sandbox/daraja/…` and `/sandbox/phones/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/sandbox/daraja", daraja::router())
        .merge(handset::router())
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
