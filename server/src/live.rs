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
    store::{AttemptRecord, SessionRecord, Store, StoreError},
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

/// One followed session: its channel, its streams, and the newest refresh applied.
struct Followed {
    tx: watch::Sender<Line>,
    streams: usize,
    /// The ticket of the newest reading applied: an older reading that finishes later
    /// (a slow database read) never overwrites a newer one. Tickets come from one
    /// hub-wide counter, so a refresh begun before the session was last unfollowed is
    /// older than any begun since.
    applied: u64,
}

#[derive(Default)]
struct Counts {
    total: usize,
    sessions: HashMap<String, Followed>,
    /// Per client address (an IPv6 /64 counts as one).
    ips: HashMap<u128, usize>,
}

/// Every live session being followed, and who follows it.
pub struct LiveHub {
    store: Store,
    limits: StreamLimits,
    counts: Mutex<Counts>,
    /// Numbers refreshes in the order they begin.
    tickets: std::sync::atomic::AtomicU64,
    /// Followed sessions changed and not yet re-read, each once however many changes
    /// came (see [`LiveHub::run`]).
    dirty: Mutex<Dirty>,
    /// Wakes the readers when `dirty` gains a session.
    wake: tokio::sync::Notify,
}

/// Sessions waiting to be re-read, in the order their first change came.
#[derive(Default)]
struct Dirty {
    order: std::collections::VecDeque<String>,
    queued: std::collections::HashSet<String>,
}

/// Sessions re-read at once after changes, at most: a burst of callbacks (hundreds a
/// second on one instance) is turned into page updates by several readers, not one
/// after another — never more than half the database pool, so the callbacks themselves
/// (and the API) keep connections.
const READERS: usize = 8;

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
        if let Some(f) = c.sessions.get_mut(&self.session) {
            f.streams -= 1;
            if f.streams == 0 {
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
            tickets: std::sync::atomic::AtomicU64::new(0),
            dirty: Mutex::new(Dirty::default()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Queues a re-read of `session` if anyone follows it and it is not queued already.
    fn mark(&self, session: &str) {
        if !self.lock().sessions.contains_key(session) {
            return; // nobody watches it here: nothing to read
        }
        let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if d.queued.insert(session.to_owned()) {
            d.order.push_back(session.to_owned());
            drop(d);
            self.wake.notify_one();
        }
    }

    /// The next session to re-read. It leaves the queue before it is read, so a change
    /// that lands during the read queues it again (a second, harmless read) rather than
    /// being lost.
    fn next_dirty(&self) -> Option<String> {
        let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        let id = d.order.pop_front()?;
        d.queued.remove(&id);
        Some(id)
    }

    fn nothing_dirty(&self) -> bool {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .is_empty()
    }

    /// One reader: re-reads queued sessions until aborted. It waits for a wake-up only
    /// when the queue is empty (registered before the last look, so none is missed),
    /// and is not registered while it reads, so a wake-up goes to an idle reader.
    async fn read_changes(self: Arc<Self>) {
        loop {
            if let Some(id) = self.next_dirty() {
                if !self.nothing_dirty() {
                    self.wake.notify_one(); // more waiting: another reader takes it
                }
                let Some(sid) = SessionId::parse(&id) else {
                    continue;
                };
                if let Err(e) = self.refresh(&sid).await {
                    // A database hiccup: this reader rests a second, then the session
                    // is queued again rather than left to the 30 s sweep. Resting, not
                    // a timer per session: in an outage with thousands of pages open,
                    // the readers try (and log) a few times a second, not thousands.
                    tracing::warn!(error = %e, "live state refresh failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.mark(&id);
                }
                continue;
            }
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.nothing_dirty() {
                woken.await;
            }
        }
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
            let per_session = c.sessions.get(session.as_str()).map_or(0, |f| f.streams);
            if per_session >= self.limits.per_session {
                return Ok(Err(Refused::Session));
            }
            c.total += 1;
            *c.ips.entry(ip).or_default() += 1;
            let entry = c
                .sessions
                .entry(session.to_string())
                .or_insert_with(|| Followed {
                    tx: watch::channel(None).0,
                    streams: 0,
                    applied: 0,
                });
            entry.streams += 1;
            (entry.tx.subscribe(), entry.streams == 1)
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
    /// Refreshes of one session may overlap (a stream opening while a change arrives);
    /// only a reading newer than the last one applied is applied.
    async fn refresh(&self, session: &SessionId) -> Result<(), StoreError> {
        let Some(ticket) = self.begin_refresh(session) else {
            return Ok(()); // nobody follows it any more
        };
        let line = current(&self.store, session).await?;
        self.apply(session, ticket, &line);
        Ok(())
    }

    /// Numbers a refresh of `session` about to read; `None` if it is not followed.
    fn begin_refresh(&self, session: &SessionId) -> Option<u64> {
        let c = self.lock();
        c.sessions.get(session.as_str())?;
        Some(
            self.tickets
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1,
        )
    }

    /// Applies refresh `ticket`'s reading, unless a newer one was applied already.
    fn apply(&self, session: &SessionId, ticket: u64, line: &Line) {
        let mut c = self.lock();
        if let Some(f) = c.sessions.get_mut(session.as_str())
            && ticket > f.applied
        {
            f.applied = ticket;
            f.tx.send_if_modified(|old| {
                let changed = old != line;
                if changed {
                    old.clone_from(line);
                }
                changed
            });
        }
    }

    /// Follows the engine's change signal until aborted. A change to a followed session
    /// queues it once (many changes before it is read cost one read); up to
    /// [`READERS`] tasks re-read queued sessions side by side; a separate task re-reads
    /// every followed session now and then (a few at a time), so that sweep never
    /// delays a change reaching its page.
    pub async fn run(self: Arc<Self>, mut changes: broadcast::Receiver<String>) {
        let pool = self.store.pool().options().get_max_connections() as usize;
        let _readers: Vec<_> = (0..(pool / 2).clamp(1, READERS))
            .map(|_| crate::startup::AbortOnDrop(tokio::spawn(self.clone().read_changes())))
            .collect();
        let sweeper = {
            let hub = self.clone();
            crate::startup::AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(REFRESH);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    hub.refresh_all().await;
                }
            }))
        };
        loop {
            match changes.recv().await {
                Ok(id) => self.mark(&id),
                // Fell behind: re-read everything followed (queued, so changes that
                // come meanwhile are not held up behind a sweep).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for id in self.followed() {
                        self.mark(id.as_str());
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        drop(sweeper);
    }

    /// Re-reads every followed session, [`SWEEP_CHUNK`] at a time: two queries a chunk,
    /// not two a session (with 10,000 pages waiting, a sweep was 20,000 queries).
    async fn refresh_all(self: &Arc<Self>) {
        for chunk in self.followed().chunks(SWEEP_CHUNK) {
            // Numbered before reading, as one refresh each: a change read meanwhile
            // is newer and wins.
            let tickets: Vec<(&SessionId, u64)> = chunk
                .iter()
                .filter_map(|id| Some((id, self.begin_refresh(id)?)))
                .collect();
            let ids: Vec<SessionId> = tickets.iter().map(|(id, _)| (*id).clone()).collect();
            let read = match self.store.sessions_with_latest_attempts(&ids).await {
                Ok(read) => read,
                Err(e) => {
                    // One unreadable row must not stall the rest of its chunk: those
                    // are read one by one instead.
                    tracing::warn!(error = %e, "live state sweep failed; reading one by one");
                    for id in &ids {
                        if let Err(e) = self.refresh(id).await {
                            tracing::warn!(error = %e, "live state refresh failed");
                        }
                    }
                    continue;
                }
            };
            let now = now_ms();
            let mut lines: std::collections::HashMap<&str, Line> = read
                .iter()
                .map(|(s, latest)| (s.id.as_str(), line(s, latest.as_ref(), now)))
                .collect();
            for (id, ticket) in tickets {
                // A session no longer there reads as `None`, as one by one.
                let line = lines.remove(id.as_str()).unwrap_or(None);
                self.apply(id, ticket, &line);
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

/// Followed sessions one sweep query reads at once.
const SWEEP_CHUNK: usize = 500;

/// The live state now, encoded; `None` if the session does not exist.
pub async fn current(store: &Store, sid: &SessionId) -> Result<Line, StoreError> {
    let Some(session) = store.session(sid).await? else {
        return Ok(None);
    };
    let latest = store.latest_attempt(sid).await?;
    Ok(line(&session, latest.as_ref(), now_ms()))
}

/// A session's live state at `now`, encoded.
fn line(session: &SessionRecord, latest: Option<&AttemptRecord>, now: i64) -> Line {
    let live = live_state(session, latest, now);
    Some((live.encode(), live.is_final()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_changes_queues_a_followed_session_once_and_others_never() {
        let store = Store::connect(&secrecy::SecretString::from("sqlite::memory:"), 1)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let limits = StreamLimits {
            total: 10,
            per_session: 10,
            per_ip: 10,
        };
        let hub = LiveHub::new(store, limits);
        let (followed, other) = (SessionId::generate(), SessionId::generate());
        let _guard = hub
            .open(&followed, "127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        for _ in 0..5 {
            hub.mark(followed.as_str());
            hub.mark(other.as_str());
        }
        assert_eq!(hub.next_dirty().as_deref(), Some(followed.as_str()));
        assert_eq!(
            hub.next_dirty(),
            None,
            "queued once; the unfollowed one never"
        );
        // Taken off the queue before it is read: a change during the read queues it again.
        hub.mark(followed.as_str());
        assert_eq!(hub.next_dirty().as_deref(), Some(followed.as_str()));
    }

    #[tokio::test]
    async fn an_older_reading_never_overwrites_a_newer_one() {
        let store = Store::connect(&secrecy::SecretString::from("sqlite::memory:"), 1)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let hub = LiveHub::new(
            store,
            StreamLimits {
                total: 10,
                per_session: 10,
                per_ip: 10,
            },
        );
        let sid = SessionId::generate();
        // Following a session that does not exist reads `None`; then two refreshes
        // overlap, and the older reading comes back last.
        let (_guard, rx) = hub
            .open(&sid, "127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let waiting = hub.begin_refresh(&sid).unwrap();
        let paid = hub.begin_refresh(&sid).unwrap();
        hub.apply(&sid, paid, &Some(("paid".into(), true)));
        hub.apply(&sid, waiting, &Some(("waiting".into(), false)));
        assert_eq!(*rx.borrow(), Some(("paid".to_owned(), true)));
        // Nobody follows it any more: nothing to refresh.
        drop(_guard);
        assert_eq!(hub.begin_refresh(&sid), None);
        // Followed again (a reload): a reading begun before is older than any since.
        let (_again, rx) = hub
            .open(&sid, "127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let fresh = hub.begin_refresh(&sid).unwrap();
        hub.apply(&sid, fresh, &Some(("paid".into(), true)));
        hub.apply(&sid, paid, &Some(("waiting".into(), false)));
        assert_eq!(*rx.borrow(), Some(("paid".to_owned(), true)));
    }
}
