//! Which connector serves each rail in each mode. Built at start-up from the
//! configuration; live mode gets only rails configured for live (never a sandbox).

use std::{collections::HashMap, sync::Arc};

use super::{Connector, RailId};
use crate::domain::Mode;

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
