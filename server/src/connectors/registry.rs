//! Which connector serves each rail in each mode. Built at start-up from the
//! configuration; live mode gets only rails configured for live (never a sandbox).

use std::{collections::HashMap, sync::Arc};

use super::{Connector, RailId};
use crate::{
    config::{Config, Rails},
    domain::Mode,
};

/// (rail, mode) → the configured connector. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    rails: HashMap<(RailId, Mode), Arc<dyn Connector>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Serves `mode` with `connector` (for the rail it names).
    pub fn with(mut self, mode: Mode, connector: Arc<dyn Connector>) -> Registry {
        self.rails.insert((connector.rail(), mode), connector);
        self
    }

    /// A connector for `rail` in either mode, for what does not depend on the mode
    /// (reading the operator's callback, its expected answer).
    pub fn any(&self, rail: RailId) -> Option<&Arc<dyn Connector>> {
        self.get(rail, Mode::Test)
            .or_else(|| self.get(rail, Mode::Live))
    }

    /// The connector for `rail` in `mode`, if that rail is on there.
    pub fn get(&self, rail: RailId, mode: Mode) -> Option<&Arc<dyn Connector>> {
        self.rails.get(&(rail, mode))
    }
}

impl Registry {
    /// Every rail's connector in each mode it is on: test mode on the configured (or
    /// this server's own) sandbox; live mode only for rails given live settings (which
    /// the configuration checked are no sandbox).
    pub fn from_config(config: &Config) -> Result<Registry, String> {
        let mut registry = Registry::new();
        for rail in RailId::ALL {
            // The sandbox card gateway has its own origin (set as the base URL when it
            // runs): without it, and with none configured, cards are off in test mode.
            if rail == RailId::Card && config.rails.card.base_url.is_empty() {
                continue;
            }
            // Likewise the sandbox PayPal.
            if rail == RailId::Paypal && config.rails.paypal.base_url.is_empty() {
                continue;
            }
            let url = config.rail_base_url(rail);
            registry = registry.with(Mode::Test, connector(rail, url, &config.rails)?);
        }
        for (rail, url) in config.live_rails() {
            registry = registry.with(Mode::Live, connector(rail, url, &config.rails_live)?);
        }
        Ok(registry)
    }
}

/// A rail's connector at `base_url` with its settings: the one line each rail adds.
fn connector(
    rail: RailId,
    base_url: String,
    settings: &Rails,
) -> Result<Arc<dyn Connector>, String> {
    let http = |e: reqwest::Error| format!("{rail} HTTP client: {e}");
    Ok(match rail {
        RailId::Mpesa => {
            Arc::new(super::mpesa::Daraja::new(base_url, &settings.mpesa).map_err(http)?)
        }
        RailId::MtnMomo => {
            Arc::new(super::mtn::MtnMomo::new(base_url, &settings.mtn_momo).map_err(http)?)
        }
        RailId::Airtel => {
            Arc::new(super::airtel::Airtel::new(base_url, &settings.airtel).map_err(http)?)
        }
        RailId::Tigo => Arc::new(super::tigo::Tigo::new(base_url, &settings.tigo).map_err(http)?),
        RailId::Card => {
            Arc::new(super::card::Mpgs::from_config(base_url, &settings.card).map_err(http)?)
        }
        RailId::Paypal => {
            Arc::new(super::paypal::Paypal::new(base_url, &settings.paypal).map_err(http)?)
        }
        RailId::Vodacom => {
            let vodacom = super::vodacom::Vodacom::new(base_url, &settings.vodacom)?;
            vodacom.keep_sessions_warm();
            Arc::new(vodacom)
        }
    })
}
