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
}

impl Sandbox {
    pub fn new(mpesa: MpesaConfig) -> Result<Arc<Sandbox>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("malipo-sandbox-daraja")
            .build()?;
        Ok(Arc::new(Sandbox {
            mpesa,
            tokens: Mutex::new(HashMap::new()),
            http,
        }))
    }
}

/// `/sandbox/daraja/…` and `/sandbox/phones/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/sandbox/daraja", daraja::router())
        .merge(handset::router())
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
