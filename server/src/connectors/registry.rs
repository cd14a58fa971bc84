//! Which connector serves each rail in each mode. Built at start-up from the
//! configuration; live mode gets only rails configured for live (never a sandbox).
//! Over that, in live mode, a merchant's own credentials (saved on the dashboard, see
//! [`crate::credentials`]) give that merchant a connector of its own for the rail.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::{Connector, RailId};
use crate::{
    config::{Config, Rails},
    domain::{MerchantId, Mode},
};

/// (rail, mode) → the configured connector, and (merchant, rail) → a merchant's own live
/// connector. Cheap to clone; clones share the merchants' connectors, so one saved on
/// the dashboard serves the page and the engine at once.
#[derive(Clone, Default)]
pub struct Registry {
    rails: HashMap<(RailId, Mode), Arc<dyn Connector>>,
    own: Arc<RwLock<OwnConnectors>>,
}

/// (merchant, rail) → the merchant's own live connector.
type OwnConnectors = HashMap<(MerchantId, RailId), Arc<dyn Connector>>;

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Serves `mode` with `connector` (for the rail it names).
    pub fn with(mut self, mode: Mode, connector: Arc<dyn Connector>) -> Registry {
        self.rails.insert((connector.rail(), mode), connector);
        self
    }

    /// A connector for `rail` in either mode, for what does not depend on the mode or
    /// the credentials (reading the operator's callback, its expected answer).
    pub fn any(&self, rail: RailId) -> Option<Arc<dyn Connector>> {
        self.get(rail, Mode::Test)
            .or_else(|| self.get(rail, Mode::Live))
            .cloned()
            .or_else(|| {
                let own = self.own.read().expect("registry lock");
                own.iter()
                    .find(|((_, r), _)| *r == rail)
                    .map(|(_, c)| c.clone())
            })
    }

    /// This server's own connector for `rail` in `mode`, if that rail is on there.
    pub fn get(&self, rail: RailId, mode: Mode) -> Option<&Arc<dyn Connector>> {
        self.rails.get(&(rail, mode))
    }

    /// The connector that serves `merchant` on `rail` in `mode`: in live mode its own
    /// (its saved credentials), else this server's. Test mode is always this server's
    /// (its sandbox).
    pub fn for_merchant(
        &self,
        merchant: &MerchantId,
        rail: RailId,
        mode: Mode,
    ) -> Option<Arc<dyn Connector>> {
        if mode == Mode::Live
            && let Some(own) = self.own(merchant, rail)
        {
            return Some(own);
        }
        self.get(rail, mode).cloned()
    }

    /// A connector for what `rail` takes for `merchant` in `mode` (its capabilities: the
    /// currencies, amounts and numbers): the one that serves it, else this server's in
    /// either mode (what a rail takes does not depend on the mode).
    pub fn describing(
        &self,
        merchant: &MerchantId,
        rail: RailId,
        mode: Mode,
    ) -> Option<Arc<dyn Connector>> {
        self.for_merchant(merchant, rail, mode)
            .or_else(|| self.any(rail))
    }

    /// Whose credentials serve `merchant` on `rail` in `mode`: `Some(merchant)` for its
    /// own (live mode only), `None` for this server's.
    pub fn owner(&self, merchant: &MerchantId, rail: RailId, mode: Mode) -> Option<MerchantId> {
        (mode == Mode::Live && self.own(merchant, rail).is_some()).then(|| merchant.clone())
    }

    /// `merchant`'s own live connector for `rail`, if it saved credentials for it.
    pub fn own(&self, merchant: &MerchantId, rail: RailId) -> Option<Arc<dyn Connector>> {
        let own = self.own.read().expect("registry lock");
        own.get(&(merchant.clone(), rail)).cloned()
    }

    /// Whether some merchant has credentials of its own for `rail`.
    pub fn has_own(&self, rail: RailId) -> bool {
        let own = self.own.read().expect("registry lock");
        own.keys().any(|(_, r)| *r == rail)
    }

    /// Serves `merchant`'s live payments on `rail` with `connector` (`None`: with this
    /// server's again).
    pub fn set_own(
        &self,
        merchant: &MerchantId,
        rail: RailId,
        connector: Option<Arc<dyn Connector>>,
    ) {
        let mut own = self.own.write().expect("registry lock");
        match connector {
            Some(c) => own.insert((merchant.clone(), rail), c),
            None => own.remove(&(merchant.clone(), rail)),
        };
    }

    /// Which (merchant, rail) pairs have connectors of their own.
    pub fn own_keys(&self) -> Vec<(MerchantId, RailId)> {
        self.own
            .read()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect()
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
            // Without credentials of this server's own, the rail serves only merchants'
            // own (see `crate::credentials`); the configuration checked any it has.
            let own = config.rails_live.get(rail);
            if !own.has_secrets() || own.check_live_credentials().is_err() {
                continue;
            }
            registry = registry.with(Mode::Live, connector(rail, url, &config.rails_live)?);
        }
        Ok(registry)
    }
}

/// A rail's connector at `base_url` with its settings: the one line each rail adds.
pub(crate) fn connector(
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
