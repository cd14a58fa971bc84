//! The delivery worker: posts due deliveries, logs every attempt, and reschedules
//! failures with exponential backoff and jitter until the retry window closes.
//!
//! Everything it needs is in the database, so deliveries resume after a restart. A
//! delivery is claimed with a lease before it is posted: a worker that dies mid-post
//! leaves it due again when the lease runs out, so it is sent at least once (a receiver
//! de-duplicates by the event id, which never changes).
//!
//! Fairness: live and test deliveries have separate slots (a test key's dead endpoints
//! never delay a live `checkout.session.completed`); within a mode merchants take turns
//! (the store lists every merchant's oldest before anyone's second) and one merchant
//! holds at most a quarter of the slots; one endpoint has at most
//! `endpoint_concurrency` posts in flight; and an endpoint that keeps timing out has
//! its circuit opened ([`crate::breaker`]): its deliveries wait out a cool-down instead
//! of holding slots, then one probe goes.

use secrecy::ExposeSecret;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    sync::{Notify, Semaphore, broadcast},
    task::JoinSet,
};

use super::signature;
use crate::{
    breaker::{Breaker, BreakerPolicy, Gate},
    config::WebhooksConfig,
    domain::{MerchantId, Mode, WebhookEndpointId},
    store::{DeliveryAttempt, DeliveryNext, DueDelivery, Store, StoreError},
    time::now_ms,
};

/// How often the worker looks for due deliveries when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The longest an endpoint's circuit stays open before a probe.
const MAX_COOLDOWN_MS: i64 = 10 * 60 * 1000;

/// One mode's share of the worker: its own slots.
struct Lane {
    mode: Mode,
    slots: Arc<Semaphore>,
    /// Most slots one merchant may hold.
    per_merchant: usize,
}

/// Who holds slots now, and which endpoints' circuits are open.
#[derive(Default)]
struct Turns {
    endpoints: HashMap<WebhookEndpointId, usize>,
    merchants: HashMap<MerchantId, usize>,
    breakers: HashMap<WebhookEndpointId, Breaker>,
}

fn bump<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, usize>, key: &K, up: bool) {
    if up {
        *map.entry(key.clone()).or_default() += 1;
    } else if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// A delivery's turn: taken when made, given back when dropped (however the task that
/// holds it ends, a panic included).
struct TurnHeld {
    turns: Arc<Mutex<Turns>>,
    d: DueDelivery,
}

impl TurnHeld {
    fn take(turns: &Arc<Mutex<Turns>>, d: &DueDelivery) -> TurnHeld {
        turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hold(d, true);
        TurnHeld {
            turns: turns.clone(),
            d: d.clone(),
        }
    }
}

impl Drop for TurnHeld {
    fn drop(&mut self) {
        self.turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hold(&self.d, false);
    }
}

/// Whether a due delivery may be posted now.
enum Turn {
    Go,
    /// Not now (its endpoint or merchant has its share in flight): a later pass.
    Wait,
    /// Its endpoint's circuit is open until then: held in the database till then, so
    /// it stops taking a place in every pass's list.
    Hold(i64),
}

impl Turns {
    fn turn(
        &self,
        d: &DueDelivery,
        lane: &Lane,
        per_endpoint: usize,
        policy: &BreakerPolicy,
        now: i64,
    ) -> Turn {
        let at_endpoint = self.endpoints.get(&d.endpoint_id).copied().unwrap_or(0);
        let breaker = self.breakers.get(&d.endpoint_id);
        let endpoint_cap = match breaker.map(|b| b.gate(policy, now)) {
            Some(Gate::Open) => {
                return Turn::Hold(breaker.map_or(now, Breaker::open_until));
            }
            Some(Gate::Probe) => 1,
            _ => per_endpoint,
        };
        if at_endpoint < endpoint_cap
            && self.merchants.get(&d.merchant_id).copied().unwrap_or(0) < lane.per_merchant
        {
            Turn::Go
        } else {
            Turn::Wait
        }
    }

    fn hold(&mut self, d: &DueDelivery, up: bool) {
        bump(&mut self.endpoints, &d.endpoint_id, up);
        bump(&mut self.merchants, &d.merchant_id, up);
    }
}

/// The deliverer. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    config: WebhooksConfig,
    client: reqwest::Client,
    allow: super::egress::AllowList,
    wake: Arc<Notify>,
    lanes: Arc<[Lane; 2]>,
    turns: Arc<Mutex<Turns>>,
    breaker: BreakerPolicy,
}

impl Webhooks {
    pub fn new(store: Store, config: WebhooksConfig) -> Result<Self, reqwest::Error> {
        let allow = super::egress::AllowList::new(config.allow_hosts.iter().cloned());
        let client = reqwest::Client::builder()
            // Only public addresses, checked when connecting (see `egress`).
            .dns_resolver(Arc::new(super::egress::EgressResolver {
                allow: allow.clone(),
            }))
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.timeout_secs.min(5)))
            // A redirect is not a 2xx: the merchant must fix the URL, and following it
            // could send signed payloads somewhere nobody registered.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Malipo-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let lane = |mode, slots: usize| Lane {
            mode,
            slots: Arc::new(Semaphore::new(slots)),
            per_merchant: (slots / 4).max(1),
        };
        Ok(Webhooks {
            store,
            client,
            allow,
            wake: Arc::new(Notify::new()),
            lanes: Arc::new([
                lane(Mode::Live, config.live_concurrency),
                lane(Mode::Test, config.test_concurrency),
            ]),
            turns: Arc::default(),
            breaker: BreakerPolicy {
                threshold: config.breaker_failures,
                cooldown_ms: crate::time::secs_to_ms(config.breaker_cooldown_secs),
                max_cooldown_ms: MAX_COOLDOWN_MS,
            },
            config,
        })
    }

    /// Asks the worker to look for due deliveries now (after a redelivery, say).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delay after the `failures`-th failed attempt: `base · 2^(failures-1)`, capped,
    /// then drawn uniformly from its upper half so receivers coming back up are not hit
    /// by every retry at once.
    pub fn backoff_ms(&self, failures: i64) -> i64 {
        let exp = u32::try_from(failures.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
        let full = self
            .config
            .retry_base_ms
            .saturating_mul(1u64 << exp.min(40))
            .min(self.config.retry_max_ms);
        let half = full / 2;
        let mut r = [0u8; 8];
        let jitter = match getrandom::fill(&mut r) {
            Ok(()) => u64::from_le_bytes(r) % (full - half + 1),
            Err(_) => 0,
        };
        i64::try_from(half + jitter).unwrap_or(i64::MAX)
    }

    /// What happens after a failed attempt made at `now`.
    fn after_failure(&self, d: &DueDelivery, now: i64) -> DeliveryNext {
        let window_ms = crate::time::secs_to_ms(self.config.retry_window_secs);
        let deadline = d.retry_from.saturating_add(window_ms);
        if now >= deadline {
            DeliveryNext::GiveUp
        } else {
            // The last retry lands on the deadline rather than past it.
            DeliveryNext::RetryAt((now + self.backoff_ms(d.attempt_count + 1)).min(deadline))
        }
    }

    /// Runs until aborted: delivers whatever is due, then waits for a state change, a
    /// wake-up or the idle poll.
    pub async fn run(self, mut changes: broadcast::Receiver<String>) {
        let mut tasks = JoinSet::new();
        loop {
            if let Err(e) = self.dispatch_due(&mut tasks).await {
                tracing::warn!(error = %e, "webhook dispatch failed; retrying shortly");
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = self.wake.notified() => {}
                // Lagged or closed both just mean "look now".
                _ = changes.recv() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }

    /// One pass over both modes: claims due deliveries and starts posting them, within
    /// each lane's slots and the fairness limits. Returns how many it started.
    async fn dispatch_due(&self, tasks: &mut JoinSet<()>) -> Result<usize, StoreError> {
        let mut started = 0;
        let mut failed = None;
        // Each lane on its own: one failing never keeps the other from its turn.
        for i in 0..self.lanes.len() {
            match self.dispatch_lane(i, tasks).await {
                Ok(n) => started += n,
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) if started == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "webhook dispatch failed in one lane");
                Ok(started)
            }
            None => Ok(started),
        }
    }

    async fn dispatch_lane(&self, i: usize, tasks: &mut JoinSet<()>) -> Result<usize, StoreError> {
        let lane = &self.lanes[i];
        let free = lane.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = now_ms();
        let per_endpoint = self.config.endpoint_concurrency;
        // More than there are slots: some may have to wait their turn.
        let due = self
            .store
            .due_deliveries(
                now,
                lane.mode,
                i64::try_from(per_endpoint).unwrap_or(4),
                i64::try_from(free.saturating_mul(4)).unwrap_or(128),
            )
            .await?;
        let lease_ms = i64::try_from(self.config.timeout_secs).unwrap_or(10) * 1000 + 30_000;
        let mut started = 0;
        let mut held: Vec<WebhookEndpointId> = Vec::new();
        for mut d in due {
            let turn = self.turns.lock().unwrap_or_else(|p| p.into_inner()).turn(
                &d,
                lane,
                per_endpoint,
                &self.breaker,
                now,
            );
            match turn {
                Turn::Go => {}
                Turn::Wait => continue, // its turn comes on a later pass
                Turn::Hold(until) => {
                    if !held.contains(&d.endpoint_id) {
                        self.store
                            .hold_endpoint_deliveries(&d.endpoint_id, now, until)
                            .await?;
                        held.push(d.endpoint_id.clone());
                    }
                    continue;
                }
            }
            let Ok(permit) = lane.slots.clone().try_acquire_owned() else {
                break;
            };
            if !self.store.claim_delivery(&d, now + lease_ms).await? {
                continue; // another worker has it
            }
            // Ours until then; the outcome is recorded only if still so (a redelivery
            // requested meanwhile resets it, and must not be swallowed).
            d.next_attempt_at = now + lease_ms;
            let turn = TurnHeld::take(&self.turns, &d);
            let me = self.clone();
            tasks.spawn(async move {
                let unreachable = me.deliver(&d).await;
                me.finished(&d, unreachable).await;
                drop(turn);
                drop(permit);
            });
            started += 1;
        }
        Ok(started)
    }

    /// Feeds `d`'s endpoint's breaker (`unreachable`: the
    /// endpoint timed out or refused the connection; otherwise it answered, or was
    /// never tried).
    async fn finished(&self, d: &DueDelivery, unreachable: Option<bool>) {
        let now = now_ms();
        let opened = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            match unreachable {
                Some(true) => turns
                    .breakers
                    .entry(d.endpoint_id.clone())
                    .or_default()
                    .failure(&self.breaker, now),
                Some(false) => {
                    turns.breakers.remove(&d.endpoint_id);
                    None
                }
                None => None,
            }
        };
        if let Some(until) = opened {
            match self
                .store
                .hold_endpoint_deliveries(&d.endpoint_id, now, until)
                .await
            {
                Ok(held) => tracing::warn!(
                    endpoint = %d.endpoint_id,
                    held,
                    cooldown_ms = until - now,
                    "webhook endpoint keeps failing; circuit open, its deliveries wait"
                ),
                // They stay due; the breaker still keeps them from being posted.
                Err(e) => tracing::warn!(error = %e, "could not hold an endpoint's deliveries"),
            }
        }
    }

    /// Delivers everything due now and waits for the posts to finish (tests, CLI).
    pub async fn deliver_due_now(&self) -> Result<usize, StoreError> {
        let mut tasks = JoinSet::new();
        let n = self.dispatch_due(&mut tasks).await?;
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    /// Posts `d` and records the attempt. Returns whether the endpoint was unreachable
    /// (timed out, refused the connection), for its breaker: `None` when it was not
    /// contacted at all (blocked by the egress policy).
    #[tracing::instrument(skip_all, fields(delivery = %d.id, event = %d.event_id, endpoint = %d.endpoint_id))]
    async fn deliver(&self, d: &DueDelivery) -> Option<bool> {
        let started = std::time::Instant::now();
        let attempted_at = now_ms();
        let mut secrets = vec![d.secret.expose_secret()];
        if let (Some(prev), Some(until)) = (&d.previous_secret, d.previous_expires_at)
            && until > attempted_at
        {
            secrets.push(prev.expose_secret());
        }
        let t = attempted_at / 1000;
        let header = signature::header_value(&secrets, t, d.payload.as_bytes());
        let blocked = !super::egress::allowed_url(&d.url, &self.allow);
        let result = if blocked {
            None
        } else {
            Some(
                self.client
                    .post(&d.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(signature::HEADER, header)
                    .body(d.payload.clone())
                    .send()
                    .await,
            )
        };
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        // Only a coarse class is kept and shown: raw error chains name URLs and
        // addresses, and would turn the delivery log into a network scanner's report.
        let (status_code, error) = match &result {
            // A private address, literal or resolved: never contacted.
            None => (None, Some("blocked")),
            Some(Err(e)) if is_blocked(e) => (None, Some("blocked")),
            Some(Ok(resp)) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
            Some(Ok(resp)) => (Some(resp.status().as_u16()), Some("http_status")),
            Some(Err(e)) if e.is_timeout() => (None, Some("timeout")),
            Some(Err(e)) if e.is_connect() => (None, Some("connect_failed")),
            Some(Err(e)) if e.is_redirect() => (None, Some("redirect_refused")),
            Some(Err(e)) => {
                // The causes only: reqwest's own message names the URL.
                if let Some(cause) = std::error::Error::source(e) {
                    tracing::debug!(error = %error_chain(cause), "webhook request failed");
                }
                (None, Some("request_failed"))
            }
        };
        let unreachable = match error {
            Some("blocked") => None,
            Some("timeout" | "connect_failed") => Some(true),
            _ => Some(false),
        };
        if let Some(class) = error {
            crate::metrics::webhook_failed(class);
        }
        let error = error.map(str::to_owned);
        let next = if error.is_none() {
            DeliveryNext::Delivered
        } else {
            self.after_failure(d, now_ms())
        };
        match next {
            DeliveryNext::Delivered => tracing::info!(latency_ms, "webhook delivered"),
            DeliveryNext::RetryAt(at) => {
                tracing::info!(latency_ms, error = ?error, retry_in_ms = at - now_ms(), "webhook failed; will retry");
            }
            DeliveryNext::GiveUp => {
                tracing::warn!(error = ?error, "webhook failed; retry window closed, giving up");
            }
        }
        let attempt = DeliveryAttempt {
            attempted_at,
            status_code: status_code.map(i64::from),
            latency_ms,
            error,
        };
        if let Err(e) = self
            .store
            .record_delivery_attempt(&d.id, d.next_attempt_at, &attempt, next)
            .await
        {
            // The lease runs out and the delivery is tried again: at least once.
            tracing::error!(error = %e, "could not record a webhook attempt");
        }
        unreachable
    }
}

/// Whether the egress policy refused the connection.
fn is_blocked(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<super::egress::Blocked>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error and its causes on one line (reqwest hides the useful part in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn worker(base: u64, max: u64) -> Webhooks {
        let store = Store::connect(&secrecy::SecretString::from("sqlite::memory:"), 1)
            .await
            .unwrap();
        Webhooks::new(
            store,
            WebhooksConfig {
                retry_base_ms: base,
                retry_max_ms: max,
                ..WebhooksConfig::default()
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn backoff_doubles_within_jitter_and_caps() {
        let w = worker(10_000, 6 * 3600 * 1000).await;
        for (failures, full) in [(1, 10_000), (2, 20_000), (3, 40_000), (6, 320_000)] {
            for _ in 0..50 {
                let d = w.backoff_ms(failures);
                assert!((full / 2..=full).contains(&d), "{failures}: {d}");
            }
        }
        for _ in 0..50 {
            let d = w.backoff_ms(60);
            assert!((3 * 3600 * 1000..=6 * 3600 * 1000).contains(&d), "{d}");
        }
        // Over 5 days the default schedule makes a few dozen attempts, not thousands.
        let (mut t, mut n) = (0i64, 0);
        while t < 5 * 24 * 3600 * 1000 {
            n += 1;
            t += w.backoff_ms(n);
        }
        assert!((20..=60).contains(&n), "{n} attempts in 5 days");
    }
}
