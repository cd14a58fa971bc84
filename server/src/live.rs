//! Live payment state for the hosted pages' event streams, served from memory.
//!
//! Each session that someone is watching has one `watch` channel holding its current
//! live-state line. The engine's change signal (and a slow safety refresh) recompute it
//! once per change, however many pages follow the session, so an open stream costs no
//! database reads. Streams are capped in total, per session and per client address.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{broadcast, watch};

use crate::{
    checkout::live_state,
    domain::SessionId,
    store::{Store, StoreError},
    time::now_ms,
};

/// A live-state line (`LiveState::encode`) and whether nothing more can happen.
pub type Line = Option<(String, bool)>;

/// How many event streams may be open.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub total: usize,
    pub per_session: usize,
    pub per_ip: usize,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    Session,
    Ip,
}

#[derive(Default)]
struct Counts {
    total: usize,
    sessions: HashMap<String, (watch::Sender<Line>, usize)>,
    /// Per client address (an IPv6 /64 counts as one).
    ips: HashMap<u128, usize>,
}

/// Every live session being followed, and who follows it.
pub struct LiveHub {
    store: Store,
    limits: StreamLimits,
    counts: Mutex<Counts>,
}

/// Holds one stream's place; dropping it (the client went away) frees it.
pub struct StreamGuard {
    hub: Arc<LiveHub>,
    session: String,
    ip: u128,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut c = self.hub.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.ips.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.ips.remove(&self.ip);
            }
        }
        if let Some((_, n)) = c.sessions.get_mut(&self.session) {
            *n -= 1;
            if *n == 0 {
                c.sessions.remove(&self.session);
            }
        }
    }
}

/// How often every followed session is re-read even without a change signal (a safety
/// net; the signal carries every change the engine and the sweeper make).
const REFRESH: Duration = Duration::from_secs(30);

impl LiveHub {
    pub fn new(store: Store, limits: StreamLimits) -> Arc<LiveHub> {
        Arc::new(LiveHub {
            store,
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a stream for `session` from `ip`: its place, and the session's state
    /// channel. The first stream of a session reads the state once; later ones share it.
    pub async fn open(
        self: &Arc<Self>,
        session: &SessionId,
        ip: IpAddr,
    ) -> Result<Result<(StreamGuard, watch::Receiver<Line>), Refused>, StoreError> {
        let ip = crate::limits::key(ip);
        let (rx, first) = {
            let mut c = self.lock();
            if c.total >= self.limits.total {
                return Ok(Err(Refused::Total));
            }
            if c.ips.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip {
                return Ok(Err(Refused::Ip));
            }
            let per_session = c.sessions.get(session.as_str()).map_or(0, |(_, n)| *n);
            if per_session >= self.limits.per_session {
                return Ok(Err(Refused::Session));
            }
            c.total += 1;
            *c.ips.entry(ip).or_default() += 1;
            let entry = c
                .sessions
                .entry(session.to_string())
                .or_insert_with(|| (watch::channel(None).0, 0));
            entry.1 += 1;
            (entry.0.subscribe(), entry.1 == 1)
        };
        let guard = StreamGuard {
            hub: self.clone(),
            session: session.to_string(),
            ip,
        };
        // Registered before reading: a change after this point is picked up by `run`.
        if first {
            self.refresh(session).await?;
        }
        Ok(Ok((guard, rx)))
    }

    /// Re-reads one followed session and tells its streams if the line changed.
    async fn refresh(&self, session: &SessionId) -> Result<(), StoreError> {
        let line = current(&self.store, session).await?;
        let c = self.lock();
        if let Some((tx, _)) = c.sessions.get(session.as_str()) {
            tx.send_if_modified(|old| {
                let changed = *old != line;
                if changed {
                    old.clone_from(&line);
                }
                changed
            });
        }
        Ok(())
    }

    /// Follows the engine's change signal (and refreshes everything now and then)
    /// until aborted.
    pub async fn run(self: Arc<Self>, mut changes: broadcast::Receiver<String>) {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due: Vec<SessionId> = tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(id) => SessionId::parse(&id).into_iter().collect(),
                    // Fell behind: re-read everything followed.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.followed(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => self.followed(),
            };
            for id in due {
                let followed = self.lock().sessions.contains_key(id.as_str());
                if followed && let Err(e) = self.refresh(&id).await {
                    tracing::warn!(error = %e, "live state refresh failed");
                }
            }
        }
    }

    fn followed(&self) -> Vec<SessionId> {
        self.lock()
            .sessions
            .keys()
            .filter_map(|k| SessionId::parse(k))
            .collect()
    }

    /// Streams open now (for tests and metrics).
    pub fn open_streams(&self) -> usize {
        self.lock().total
    }
}

/// The live state now, encoded; `None` if the session does not exist.
pub async fn current(store: &Store, sid: &SessionId) -> Result<Line, StoreError> {
    let Some(session) = store.session(sid).await? else {
        return Ok(None);
    };
    let latest = store.latest_attempt(sid).await?;
    let live = live_state(&session, latest.as_ref(), now_ms());
    Ok(Some((live.encode(), live.is_final())))
}
