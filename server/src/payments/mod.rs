//! The payment engine: starts attempts on a rail, settles them from operator callbacks
//! and status queries, exactly once.
//!
//! - One pending attempt per session (a unique index), so a double-tapped Pay sends one
//!   push; the second tap gets the first attempt back.
//! - The callback URL carries an unguessable per-attempt token; only its hash is stored.
//! - A success is accepted from a callback only when its amount, phone and receipt match
//!   the attempt; otherwise the status query decides.
//! - A poller queries pending attempts with backoff (5/15/30/60/90 s, then every 90 s),
//!   so lost callbacks never leave a payment hanging, and the schedule is in the database,
//!   so it survives a restart.
//! - Nothing the operator says about money is dropped: every callback body is kept, and
//!   a success outranks any verdict of ours (see `store::attempts`). When we cannot learn
//!   the outcome, the attempt is `unknown`, never "failed": the page says so, a new push
//!   to the same phone needs the shopper's word that no M-PESA SMS came, and after
//!   [`RECONCILE_AFTER_MS`] of asking the merchant is told (`payment.unknown`).
//! - Queries are fair: live and test attempts are polled in separate lanes (a hung test
//!   operator never delays a live shopper's green page), merchants take turns within a
//!   lane, a few queries run at once, and an operator (rail and mode) that keeps failing
//!   has its circuit opened ([`crate::breaker`]) so its lane stops spending slots on
//!   timeouts; other operators in the lane are still asked.

mod card;
pub mod paybill;
mod paypal;
mod redirect;
mod refunds;
pub mod rescue;

pub use card::{CARD_SESSIONS_PER_CHECKOUT, CardNext};
pub use paypal::PaypalNext;
pub use refunds::{RefundAsk, RefundError};

use std::sync::{Arc, Mutex};

use crate::{
    connectors::{
        Connector, ConnectorError, FailureCode, InitiateRequest, Queried, QueryRequest, RailId,
        RailOutcome, Registry,
    },
    domain::{
        AttemptId, MerchantId, Mode, SessionId, ids::random_base62, keys::hash_token, phone::Msisdn,
    },
    store::{
        AttemptCaps, AttemptOutcome, AttemptRecord, AttemptStatus, Inserted, NewAttempt,
        SessionStatus, Store, StoreError,
    },
    time::now_ms,
};

/// Seconds after the push at which the poller queries, then every last interval.
pub const POLL_SCHEDULE_SECS: [i64; 5] = [5, 15, 30, 60, 90];
/// How long an attempt whose push got no readable answer waits for a callback before it
/// is marked `unknown` (the prompt itself lasts about a minute).
pub const UNCONFIRMED_PUSH_MS: i64 = 120_000;
/// How long after the push the status query may keep saying "still processing" (or fail,
/// or answer a code we do not know) before the attempt is marked `unknown`.
pub const UNKNOWN_AFTER_MS: i64 = 180_000;
/// How far back an unconfirmed payment from the same number (at the same merchant, on
/// any session) makes a new push wait for the shopper's "no SMS came".
pub const UNCONFIRMED_LOOKBACK_MS: i64 = 24 * 3600 * 1000;
/// How long after the push an unknown attempt is still queried; then it is left for
/// reconciliation and the merchant gets `payment.unknown`.
pub const RECONCILE_AFTER_MS: i64 = 15 * 60_000;

/// A PayPal attempt with no order id this long after it began never had an order the
/// shopper could approve (its creation's answer is stored before the redirect).
const PAYPAL_NO_ORDER_MS: i64 = 120_000;

/// How long a PayPal capture PayPal holds (`PENDING`) is asked about before it is left
/// for reconciliation.
const PAYPAL_HELD_CAPTURE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Why a payment could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("no such checkout session")]
    SessionNotFound,
    #[error("the checkout session is no longer open")]
    SessionNotOpen,
    /// An earlier push to this number for this session has an unknown outcome: the
    /// shopper may have paid. They must say no M-PESA SMS came before we push again.
    #[error("an earlier payment from this number is not confirmed yet")]
    PreviousUnconfirmed,
    #[error("not a mobile number this rail serves")]
    InvalidPhone,
    /// The session's currency or amount is not one the rail takes (M-PESA: whole Kenyan
    /// shillings).
    #[error("this rail cannot take the session's amount")]
    NotPayable,
    /// The part the shopper asked to pay now is not one this rail can take: nothing,
    /// more than is left to pay, or more than one payment on the rail may be.
    #[error("not an amount this part can be")]
    InvalidPart,
    /// An abuse limit refused the push (see [`crate::config::LimitsConfig`]).
    #[error("refused by the {} limit", .limit.as_str())]
    Limited {
        limit: Limit,
        /// Seconds until a retry can succeed; `None`: never, for this session.
        retry_after: Option<i64>,
    },
    /// The rail charges another currency than the price's, and the quote the shopper
    /// saw has expired at a rate that has moved since (or they saw none): the page shows
    /// the new one, and nothing is sent until they pay at it.
    #[error("the quote changed; the shopper must see the new one")]
    QuoteChanged,
    /// The card processor did not answer (or refused to open a session): the shopper
    /// may try again, or pay another way.
    #[error("the card processor is unavailable")]
    ProcessorUnavailable,
    /// The rail is not on in the session's mode (live mode with no live credentials):
    /// live payments never fall back to a sandbox.
    #[error("this rail is not configured for this mode")]
    RailNotConfigured,
    /// The operator keeps failing pushes: its circuit is open, nothing was sent (and
    /// nothing written). The page offers the session's other rails.
    #[error("the operator is not answering pushes just now")]
    OperatorDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Payments::ready`] found.
#[allow(
    clippy::large_enum_variant,
    reason = "lives for one call on the stack, never stored"
)]
enum Ready {
    /// A payment is under way on the session: that one.
    Pending(Box<AttemptRecord>),
    /// What the rail is to charge (`quote`: when another currency than the price's).
    Charge {
        session: crate::store::SessionRecord,
        capabilities: crate::connectors::Capabilities,
        quote: Option<crate::fx::Quote>,
        charge: crate::domain::Money,
        /// What the payment counts towards the price once paid (the price's currency).
        credit: i64,
    },
}

/// Which abuse limit refused a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Too many prompts to one number, across every session and merchant.
    Phone,
    /// Too many attempts on one session.
    Session,
    /// Too many pay requests from one client address.
    Ip,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Phone => "phone_limit",
            Limit::Session => "session_limit",
            Limit::Ip => "ip_limit",
        }
    }
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("unknown attempt or wrong token")]
    Forbidden,
    #[error("unreadable callback body")]
    BadBody,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    store: Store,
    /// The connector for each rail in each mode. Live ones are never sandboxes (the
    /// config refuses one).
    rails: Registry,
    public_url: String,
    limits: crate::config::LimitsConfig,
    timing: crate::config::PaymentsConfig,
    /// Ids of sessions whose payment state just changed (for the live page).
    changes: tokio::sync::broadcast::Sender<String>,
    /// A breaker per operator (rail and mode) on its status queries: one operator
    /// failing never pauses another's.
    query_breakers: Circuits,
    /// Likewise on pushes: an operator that keeps failing them (no answer, 5xx) is not
    /// pushed to for a while, and the page offers the session's other rails.
    push_breakers: Circuits,
    /// Wakes the poller's lanes for a pass now (an attempt was just made due: an
    /// operator's cue, an ambiguous answer), instead of at their next tick.
    wake: Arc<tokio::sync::Notify>,
    /// Quotes for rails that charge another currency than the price's; `None`: no
    /// conversion at all.
    fx: Option<crate::fx::Quoter>,
    /// This instance's name in change notices, so it skips its own.
    instance: Arc<str>,
    /// Keys the Pay Bill URLs' secret segment (an install secret, shared by instances
    /// and kept across credential changes); `None`: no Pay Bill.
    paybill_secret: Option<Arc<secrecy::SecretString>>,
}

/// Status queries in flight at once, per lane.
const QUERIES_AT_ONCE: usize = 8;
/// Due attempts one pass of a lane reads, in their fair order (taken a slot at a time).
const POLL_BATCH: i64 = 50;
/// How long a lane holds an attempt it took, by default (see
/// [`Store::claim_attempts_for_poll`]): each is taken just before its query, which
/// gives up after 15 s, so this is ample. Another instance asks about an attempt again
/// only after this, if the one that took it died.
pub const POLL_LEASE_MS: i64 = 120_000;
/// An operator failing this many pushes or queries in a row opens that circuit, for
/// `cooldown_ms` (`[payments] breaker_cooldown_ms`), doubling on each trip up to ten
/// times that.
fn breaker_policy(cooldown_ms: i64) -> crate::breaker::BreakerPolicy {
    crate::breaker::BreakerPolicy {
        threshold: 5,
        cooldown_ms,
        max_cooldown_ms: cooldown_ms * 10,
    }
}

/// A circuit as `/metrics` names it: its kind (`push`, `query`), rail, mode, and
/// whether it guards a merchant's own credentials.
pub type CircuitName = (&'static str, RailId, Mode, bool);

/// Whose calls a breaker guards: a rail in a mode, with this server's credentials
/// (`None`) or a merchant's own.
type BreakerKey = (RailId, Mode, Option<MerchantId>);

/// One kind of circuit (pushes, or status queries) for every operator and set of
/// credentials. Cheap to clone; clones share the circuits.
#[derive(Clone)]
struct Circuits {
    kind: &'static str,
    policy: crate::breaker::BreakerPolicy,
    /// What the log says when one opens.
    opened: &'static str,
    map: Arc<Mutex<std::collections::HashMap<BreakerKey, QueryBreaker>>>,
}

impl Circuits {
    fn new(
        kind: &'static str,
        policy: crate::breaker::BreakerPolicy,
        opened: &'static str,
    ) -> Circuits {
        Circuits {
            kind,
            policy,
            opened,
            map: Arc::default(),
        }
    }

    /// Whether the operator may be called now: `Some` when its circuit is closed, or
    /// when this is the one probe after the cool-down (then `Some(Some(n))`, the
    /// probe's number, for [`Circuits::hand_back`]).
    fn may(&self, key: &BreakerKey, now: i64) -> Option<Option<u64>> {
        let mut map = self.map.lock().expect("breaker lock");
        let b = map.entry(key.clone()).or_default();
        match b.breaker.gate(&self.policy, now) {
            crate::breaker::Gate::Closed => Some(None),
            crate::breaker::Gate::Open => None,
            crate::breaker::Gate::Probe
                if b.probing_since.is_some_and(|t| now - t < PROBE_EXPIRES_MS) =>
            {
                None
            }
            crate::breaker::Gate::Probe => {
                b.probing_since = Some(now);
                b.probes += 1;
                Some(Some(b.probes))
            }
        }
    }

    /// Probe number `probe` was never sent (the tap stopped before calling the
    /// operator: a cap, a race, a store error): the next call may probe at once instead
    /// of waiting out [`PROBE_EXPIRES_MS`]. Counts as neither answer nor failure; a
    /// later probe under way is left alone.
    fn hand_back(&self, key: &BreakerKey, probe: u64) {
        let mut map = self.map.lock().expect("breaker lock");
        if let Some(b) = map.get_mut(key)
            && b.probes == probe
        {
            b.probing_since = None;
        }
    }

    /// Whether the call was answered (a refusal is an answer) or failed.
    fn answered(&self, key: &BreakerKey, answered: bool, now: i64) {
        let (rail, mode, _) = key;
        let mut map = self.map.lock().expect("breaker lock");
        let b = map.entry(key.clone()).or_default();
        b.probing_since = None;
        if answered {
            b.breaker.success();
        } else if let Some(until) = b.breaker.failure(&self.policy, now) {
            tracing::warn!(
                %rail,
                mode = mode.as_str(),
                cooldown_ms = until - now,
                "{}",
                self.opened
            );
        }
    }

    /// A circuit's state as a number: 0 closed, 1 open, 2 half-open.
    fn level(&self, b: &QueryBreaker, now: i64) -> i64 {
        match b.breaker.gate(&self.policy, now) {
            crate::breaker::Gate::Closed => 0,
            crate::breaker::Gate::Open => 1,
            crate::breaker::Gate::Probe => 2,
        }
    }

    /// One circuit's state ([`Circuits::level`]); one never used is closed.
    fn state(&self, key: &BreakerKey, now: i64) -> i64 {
        let map = self.map.lock().expect("breaker lock");
        map.get(key).map_or(0, |b| self.level(b, now))
    }

    /// Every circuit's state; merchants' own told together (the worst of them).
    fn states(&self, now: i64) -> Vec<((RailId, Mode, bool), i64)> {
        let map = self.map.lock().expect("breaker lock");
        let mut states: std::collections::HashMap<(RailId, Mode, bool), i64> =
            std::collections::HashMap::new();
        for ((rail, mode, owner), b) in map.iter() {
            let worst = states.entry((*rail, *mode, owner.is_some())).or_default();
            *worst = (*worst).max(self.level(b, now));
        }
        states.into_iter().collect()
    }
}

/// Hands a push probe back ([`Circuits::hand_back`]) when dropped before the push was
/// sent (`probe` is cleared just before it is: a push cut off mid-way may have reached
/// the operator, so its probe stands until answered or [`PROBE_EXPIRES_MS`]).
struct UnsentProbe<'a> {
    circuits: &'a Circuits,
    key: &'a BreakerKey,
    probe: Option<u64>,
}

impl Drop for UnsentProbe<'_> {
    fn drop(&mut self) {
        if let Some(probe) = self.probe {
            self.circuits.hand_back(self.key, probe);
        }
    }
}

#[derive(Default)]
struct QueryBreaker {
    breaker: crate::breaker::Breaker,
    /// When the probe under way began (only one while the cool-down is over). A probe
    /// whose answer never came back (its task died) no longer counts after
    /// [`PROBE_EXPIRES_MS`].
    probing_since: Option<i64>,
    /// Probes let through so far (the last one's number).
    probes: u64,
}

/// Longer than any status query may take (the connector gives up after 15 s).
const PROBE_EXPIRES_MS: i64 = 60_000;

/// When the next query is due after `polls_done` queries of an attempt created at
/// `created_at`.
pub fn next_poll_at(created_at: i64, polls_done: i64) -> i64 {
    let i = usize::try_from(polls_done).unwrap_or(usize::MAX);
    let last = POLL_SCHEDULE_SECS[POLL_SCHEDULE_SECS.len() - 1];
    let at = match POLL_SCHEDULE_SECS.get(i) {
        Some(s) => *s,
        None => last + last * (polls_done - POLL_SCHEDULE_SECS.len() as i64 + 1),
    };
    created_at + at * 1000
}

/// How much longer than a minute `rail`'s prompt stays on the phone, in ms.
fn longer_prompt_ms(rail: RailId) -> i64 {
    (rail.prompt_secs() - 60).max(0) * 1000
}

fn outcome_to_status(o: &RailOutcome) -> Option<(AttemptStatus, AttemptOutcome)> {
    let failure = |code: &str| AttemptOutcome {
        failure_code: Some(code.to_owned()),
        ..Default::default()
    };
    match o {
        RailOutcome::Succeeded => Some((AttemptStatus::Succeeded, AttemptOutcome::default())),
        RailOutcome::Failed { code } => Some((AttemptStatus::Failed, failure(code.as_str()))),
        RailOutcome::Cancelled => Some((AttemptStatus::Cancelled, failure("cancelled_by_user"))),
        RailOutcome::Expired { code } => Some((AttemptStatus::Expired, failure(code.as_str()))),
        RailOutcome::Pending | RailOutcome::Unknown { .. } => None,
    }
}

impl Payments {
    pub fn new(
        store: Store,
        rails: Registry,
        public_url: String,
        limits: crate::config::LimitsConfig,
        timing: crate::config::PaymentsConfig,
    ) -> Self {
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let cooldown_ms = timing.breaker_cooldown_ms;
        Payments {
            store,
            rails,
            public_url,
            limits,
            timing,
            changes,
            query_breakers: Circuits::new(
                "query",
                breaker_policy(cooldown_ms),
                "the operator keeps failing status queries; pausing them (callbacks still settle payments)",
            ),
            push_breakers: Circuits::new(
                "push",
                breaker_policy(cooldown_ms),
                "the operator keeps failing pushes; not pushing to it for a while (the page offers other rails)",
            ),
            wake: Arc::default(),
            fx: None,
            instance: random_base62(12).into(),
            paybill_secret: None,
        }
    }

    /// Offers Pay Bill (payments from the M-PESA menu), its URLs keyed by `secret`.
    pub fn with_paybill_secret(mut self, secret: secrecy::SecretString) -> Self {
        self.paybill_secret = Some(Arc::new(secret));
        self
    }

    /// Lets sessions be paid on rails in another currency, at `quoter`'s quotes.
    pub fn with_fx(mut self, quoter: crate::fx::Quoter) -> Self {
        self.fx = Some(quoter);
        self
    }

    /// The connector serving `merchant` on `rail` in `mode`: objects never cross modes,
    /// so neither do rails; in live mode, the merchant's own credentials come first.
    pub(crate) fn connector(
        &self,
        merchant: &MerchantId,
        rail: RailId,
        mode: Mode,
    ) -> Option<Arc<dyn Connector>> {
        self.rails.for_merchant(merchant, rail, mode)
    }

    /// The connector for an attempt: its merchant's (see [`Payments::connector`]), and
    /// whose credentials it holds (`Some`: that merchant's own; `None`: this server's).
    pub(crate) async fn attempt_connector(
        &self,
        attempt: &AttemptRecord,
        mode: Mode,
    ) -> Result<(Option<Arc<dyn Connector>>, Option<MerchantId>), StoreError> {
        if mode == Mode::Live && self.rails.has_own(attempt.rail) {
            let merchant = self
                .store
                .session(&attempt.session_id)
                .await?
                .map(|s| s.merchant_id);
            if let Some(merchant) = merchant
                && let Some(own) = self.rails.own(&merchant, attempt.rail)
            {
                return Ok((Some(own), Some(merchant)));
            }
        }
        Ok((self.rails.get(attempt.rail, mode).cloned(), None))
    }

    /// Every connector, this server's and merchants' own.
    pub fn registry(&self) -> &Registry {
        &self.rails
    }

    /// Whether `rail` is on for `merchant` in `mode` (configured, with its connector).
    pub fn rail_on(&self, merchant: &MerchantId, rail: RailId, mode: Mode) -> bool {
        self.connector(merchant, rail, mode).is_some()
    }

    /// Whether `merchant`'s payments on `rail` in `mode` can be refunded through Malipo.
    pub fn refunds_supported(&self, merchant: &MerchantId, rail: RailId, mode: Mode) -> bool {
        self.connector(merchant, rail, mode)
            .is_some_and(|c| c.refunds())
    }

    /// Whether a refund on `rail` in `mode` may return part of a payment (Daraja's
    /// reversals and Airtel's refunds return all of it).
    pub fn partial_refunds_supported(
        &self,
        merchant: &MerchantId,
        rail: RailId,
        mode: Mode,
    ) -> bool {
        self.connector(merchant, rail, mode)
            .is_some_and(|c| c.partial_refunds())
    }

    /// Whose numbers `rail` takes for a price in `currency` (for reading what a shopper
    /// typed): that currency's country on the rail, else (paid at a quote) its first.
    pub fn payer_country(
        &self,
        merchant: &MerchantId,
        mode: Mode,
        rail: RailId,
        currency: crate::domain::money::Currency,
    ) -> Option<crate::domain::phone::Country> {
        let connector = self.rails.describing(merchant, rail, mode)?;
        let caps = connector.capabilities();
        caps.country(currency)
            .or_else(|| caps.markets.first().map(|(_, country)| *country))
    }

    /// What `rail`'s operator expects back from a callback (taken, or unreadable).
    pub fn callback_ack(&self, rail: RailId, accepted: bool, body: &[u8]) -> (u16, String) {
        match self.rails.any(rail) {
            Some(c) => c.callback_ack(accepted, body),
            None => (if accepted { 200 } else { 400 }, String::new()),
        }
    }

    /// Session ids, as their payment state changes.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// Tells live pages (and the webhook worker) that a session's payment state changed:
    /// this instance's at once, and every other instance on the same PostgreSQL through
    /// `NOTIFY` ([`Payments::run_change_listener`] there).
    pub fn changed(&self, session_id: &SessionId) {
        // No receivers is fine: nobody is watching that page.
        let _ = self.changes.send(session_id.to_string());
        if self.store.shared() {
            let store = self.store.clone();
            let payload = format!("{}:{session_id}", self.instance);
            tokio::spawn(async move {
                // Lost, another instance's page still catches up at its next refresh.
                if let Err(e) = store.notify_change(&payload).await {
                    tracing::warn!(error = %e, "telling other instances of a change failed");
                }
            });
        }
    }

    /// Feeds other instances' changes (PostgreSQL's `NOTIFY`) to this instance's change
    /// signal, so a page connected here turns green when a callback lands elsewhere.
    /// Reconnects after a second when the connection drops; on SQLite, returns at once.
    pub async fn run_change_listener(self) {
        loop {
            match self.store.listen_changes().await {
                Ok(None) => return,
                Ok(Some(mut listener)) => loop {
                    match listener.recv().await {
                        Ok(n) => {
                            if let Some((from, session)) = n.payload().split_once(':')
                                && from != &*self.instance
                            {
                                let _ = self.changes.send(session.to_owned());
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listening to other instances' changes failed; reconnecting");
                            break;
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to other instances' changes; retrying");
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Starts (or, on a double tap, returns) the M-PESA attempt for a session.
    pub async fn start_mpesa(
        &self,
        session_id: &SessionId,
        phone_input: &str,
    ) -> Result<AttemptRecord, PayError> {
        self.start(session_id, RailId::Mpesa, phone_input, false)
            .await
    }

    /// [`Payments::start_mpesa`], where `no_sms_arrived` is the shopper's word that no
    /// M-PESA confirmation came for an earlier, unconfirmed push to the same number.
    pub async fn start_mpesa_confirming(
        &self,
        session_id: &SessionId,
        phone_input: &str,
        no_sms_arrived: bool,
    ) -> Result<AttemptRecord, PayError> {
        self.start(session_id, RailId::Mpesa, phone_input, no_sms_arrived)
            .await
    }

    /// Starts a payment of `session_id` on `rail` from the number the shopper typed:
    /// one push, or the pending attempt back if there is one (a double tap). With
    /// `no_sms_arrived`, the shopper's word that no confirmation came for an earlier,
    /// unconfirmed push to the same number; without it, such a push blocks a new one
    /// ([`PayError::PreviousUnconfirmed`]).
    pub async fn start(
        &self,
        session_id: &SessionId,
        rail: RailId,
        phone_input: &str,
        no_sms_arrived: bool,
    ) -> Result<AttemptRecord, PayError> {
        self.start_at_quote(session_id, rail, phone_input, no_sms_arrived, None, None)
            .await
    }

    /// [`Payments::start`] on a rail that may charge another currency than the price's,
    /// at the quote the shopper saw (`quote`: its token from the page, see
    /// [`crate::fx::Quoter::confirm`]). A rail that takes the price's currency ignores it.
    /// `part`: the amount to pay now (minor units of the price's currency) when paying in
    /// parts; `None`: all that is left.
    pub async fn start_at_quote(
        &self,
        session_id: &SessionId,
        rail: RailId,
        phone_input: &str,
        no_sms_arrived: bool,
        quote: Option<&str>,
        part: Option<i64>,
    ) -> Result<AttemptRecord, PayError> {
        if !rail.is_mobile_money() {
            return Err(PayError::RailNotConfigured);
        }
        let now = now_ms();
        let (session, capabilities, quote, charge, credit) =
            match self.ready(session_id, rail, quote, part, now).await? {
                Ready::Pending(pending) => return Ok(*pending),
                Ready::Charge {
                    session,
                    capabilities,
                    quote,
                    charge,
                    credit,
                } => (session, capabilities, quote, charge, credit),
            };
        let Some(country) = capabilities.country(charge.currency()) else {
            return Err(PayError::NotPayable);
        };
        let msisdn = Msisdn::parse(phone_input, country).ok_or(PayError::InvalidPhone)?;
        if !msisdn.as_str().starts_with(country.calling_code()) {
            return Err(PayError::InvalidPhone);
        }
        if !capabilities.accepts(charge) {
            return Err(PayError::NotPayable);
        }
        let connector = self
            .connector(&session.merchant_id, rail, session.mode)
            .ok_or(PayError::RailNotConfigured)?;
        // An operator that keeps failing pushes is left alone for a while: the shopper
        // hears at once (nothing sent, nothing written) and can pay another way.
        let breaker: BreakerKey = (
            rail,
            session.mode,
            self.rails.owner(&session.merchant_id, rail, session.mode),
        );
        let Some(probe) = self.push_breakers.may(&breaker, now) else {
            return Err(PayError::OperatorDown);
        };
        // A probe this tap took goes back if the tap stops before the push is sent.
        let mut unsent = UnsentProbe {
            circuits: &self.push_breakers,
            key: &breaker,
            probe,
        };
        if !no_sms_arrived
            && self
                .store
                .has_unknown_attempt_for_payer(
                    session_id,
                    msisdn.as_str(),
                    now - UNCONFIRMED_LOOKBACK_MS,
                )
                .await?
        {
            return Err(PayError::PreviousUnconfirmed);
        }
        let token = random_base62(32);
        let window_ms = crate::time::secs_to_ms(self.limits.phone_window_secs);
        let caps = AttemptCaps {
            per_session: i64::from(self.limits.attempts_per_session),
            per_payer: i64::from(self.limits.prompts_per_phone),
            payer_since: now.saturating_sub(window_ms),
        };
        let inserted = self
            .store
            .insert_attempt_capped(
                &NewAttempt {
                    credit_minor: Some(credit),
                    session_id: session_id.clone(),
                    rail,
                    amount: charge,
                    quote: quote.clone(),
                    payer: Some(msisdn.to_string()),
                    callback_token_hash: Some(hash_token(&token)),
                    next_poll_at: Some(next_poll_at(now, 0)),
                },
                now,
                Some(&caps),
            )
            .await;
        let attempt = match inserted {
            Ok(Inserted::Attempt(a)) => *a,
            // Expired or paid since we looked: the conditional insert refused it.
            Ok(Inserted::SessionNotOpen) => return Err(PayError::SessionNotOpen),
            Ok(Inserted::SessionCap) => {
                return Err(PayError::Limited {
                    limit: Limit::Session,
                    retry_after: None,
                });
            }
            Ok(Inserted::PayerCap { oldest }) => {
                // The window frees a place when its oldest prompt leaves it.
                return Err(PayError::Limited {
                    limit: Limit::Phone,
                    retry_after: Some(((oldest + window_ms - now) / 1000).max(1)),
                });
            }
            // Lost a race with a concurrent tap: theirs is the one.
            Err(e) if e.is_unique_violation() => {
                return self
                    .store
                    .pending_attempt(session_id)
                    .await?
                    .ok_or(PayError::Store(e));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(attempt = %attempt.id, session = %session_id, %rail, payer = %msisdn.masked(), "sending push");
        let callback_url = format!(
            "{}/callbacks/{rail}/{}/{token}",
            self.public_url, attempt.id
        );
        let description = self.merchant_label(&session.merchant_id).await;
        let request = InitiateRequest {
            attempt_id: &attempt.id,
            amount: charge,
            payer: &msisdn,
            reference: &session.reference,
            description: &description,
            callback_url: &callback_url,
        };
        if let Some(chosen) = connector.chosen_request_id(&request) {
            self.store
                .set_operator_request_id(&attempt.id, &chosen, now)
                .await?;
        }
        unsent.probe = None;
        let sent = connector.initiate(request, now).await;
        // A refusal is an answer (unless it says the operator is failing or busy, as
        // Daraja's `500.003.1001` does), and so is a 4xx (what we sent, which a
        // merchant's data may shape: never enough to stop pushes for everyone); no
        // answer, or a 5xx, is a failure.
        let answered = match &sent {
            Ok(_) => true,
            Err(ConnectorError::Rejected { code, .. }) => !matches!(
                connector.rejection_failure(code),
                Some(FailureCode::OperatorError | FailureCode::OperatorBusy)
            ),
            Err(ConnectorError::BadResponse { status, .. }) => (400..500).contains(status),
            Err(_) => false,
        };
        self.push_breakers.answered(&breaker, answered, now_ms());
        match sent {
            Ok(initiated) => {
                self.store
                    .set_operator_request_id(&attempt.id, &initiated.operator_request_id, now_ms())
                    .await?;
                // If the answer was so slow that the attempt was already given up as
                // unknown (no id to ask with), ask again now that there is one.
                self.store.resume_polling(&attempt.id, now_ms()).await?;
                if let Some(answer) = initiated.answer {
                    // The operator answers the push call itself once the shopper has
                    // (Vodacom): off the request path, so the page shows "waiting" now.
                    let me = self.clone();
                    let attempt = attempt.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.take_answer(&attempt, connector, answer).await {
                            tracing::error!(attempt = %attempt.id, error = %e, "recording the operator's answer failed; asking the status query");
                            let _ = me.ask_soon(&attempt.id).await;
                        }
                    });
                }
            }
            // The operator said no: nothing reached the phone.
            Err(ConnectorError::Rejected { code, message, .. }) => {
                self.refused(&attempt.id, connector.as_ref(), &code, &message)
                    .await?;
            }
            // No answer, or one we cannot read: the prompt may still be on the phone, and
            // the shopper may pay. The attempt stays pending; a callback carrying its token
            // settles it, and after `unconfirmed_push_ms` the poller marks it unknown.
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "push outcome unknown; waiting for a callback");
            }
        }
        self.changed(session_id);
        Ok(self.store.attempt(&attempt.id).await?.unwrap_or(attempt))
    }

    /// What every payment checks first: the session is open, offers `rail`, has no
    /// payment under way (else that one: a double tap), and what the rail charges for
    /// it — what is left of the price (or the `part` of it the shopper chose to pay
    /// now), or the price's quote in a currency the rail takes (the one the shopper saw,
    /// `quote` being its token from the page).
    async fn ready(
        &self,
        session_id: &SessionId,
        rail: RailId,
        quote: Option<&str>,
        part: Option<i64>,
        now: i64,
    ) -> Result<Ready, PayError> {
        let session = self
            .store
            .session(session_id)
            .await?
            .ok_or(PayError::SessionNotFound)?;
        if session.status != SessionStatus::Open || session.expires_at <= now {
            return Err(PayError::SessionNotOpen);
        }
        // What the rail takes does not depend on the mode: the shopper hears about the
        // number and the amount first, then whether the rail is on for this shop.
        let capabilities = self
            .rails
            .describing(&session.merchant_id, rail, session.mode)
            .ok_or(PayError::RailNotConfigured)?
            .capabilities()
            .clone();
        // The session (or the merchant's account) does not offer this rail.
        if session
            .payment_method_types
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&rail))
        {
            return Err(PayError::RailNotConfigured);
        }
        // A double tap gets the payment already on its way, whatever the quote has done
        // since.
        if let Some(pending) = self.store.pending_attempt(session_id).await? {
            // A card or PayPal payment the shopper left before any money could move (no
            // payment sent on the card's order; the PayPal order never approved) does
            // not hold up another way to pay.
            let left = match pending.rail {
                r if r == rail => false,
                RailId::Card => self.card_left(&session, &pending).await?,
                RailId::Paypal => self.paypal_left(&session, &pending).await?,
                _ => false,
            };
            if !left {
                return Ok(Ready::Pending(Box::new(pending)));
            }
        }
        let remaining = session.remaining_minor();
        let quote = if capabilities.country(session.amount.currency()).is_some() {
            None
        } else if part.is_some() || session.received_minor > 0 {
            // Parts are paid in the price's currency: a quote is for the whole price.
            return Err(PayError::NotPayable);
        } else {
            let fx = self.fx.as_ref().ok_or(PayError::NotPayable)?;
            match fx.confirm(&session, rail, &capabilities, quote, now).await {
                Ok(q) => Some(q),
                Err(crate::fx::QuoteError::Unavailable) => return Err(PayError::NotPayable),
                Err(crate::fx::QuoteError::Changed) => return Err(PayError::QuoteChanged),
                Err(crate::fx::QuoteError::Store(e)) => return Err(e.into()),
            }
        };
        let (charge, credit) = match &quote {
            Some(q) => (q.target, session.amount.minor()),
            None => {
                let minor = match part {
                    Some(p) if p <= 0 || p > remaining => return Err(PayError::InvalidPart),
                    Some(p) => p,
                    // More than one payment may be: the most one may be, as a part.
                    None => capabilities
                        .most(session.amount.currency())
                        .map_or(remaining, |most| remaining.min(most)),
                };
                let charge = crate::domain::Money::new(minor, session.amount.currency())
                    .map_err(|_| PayError::InvalidPart)?;
                if part.is_some() && !capabilities.accepts(charge) {
                    return Err(PayError::InvalidPart);
                }
                (charge, minor)
            }
        };
        Ok(Ready::Charge {
            session,
            capabilities,
            quote,
            charge,
            credit,
        })
    }

    /// Records that the operator refused the push with `code`: nothing reached the phone.
    pub(crate) async fn refused(
        &self,
        id: &AttemptId,
        connector: &dyn Connector,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        tracing::warn!(attempt = %id, %code, "push refused");
        let failure = connector
            .rejection_failure(code)
            .map_or("push_rejected", |f| f.as_str());
        let outcome = AttemptOutcome {
            failure_code: Some(failure.into()),
            failure_detail: Some(format!("{code} {message}")),
            ..Default::default()
        };
        self.store
            .finalize_attempt(id, AttemptStatus::Failed, &outcome, "push", now_ms())
            .await?;
        Ok(())
    }

    /// Takes the answer of a push call that answers with the outcome
    /// ([`crate::connectors::Initiated::answer`]) as a status query's. Not final (an
    /// ambiguous code), unreadable or unreachable: the status query is asked at once.
    async fn take_answer(
        &self,
        attempt: &AttemptRecord,
        connector: Arc<dyn Connector>,
        answer: crate::connectors::BoxFuture<'static, Result<Queried, ConnectorError>>,
    ) -> Result<(), StoreError> {
        match answer.await {
            Ok(queried) => {
                if self.settle(attempt, queried, "push").await?.is_some() {
                    return Ok(());
                }
            }
            Err(ConnectorError::Rejected { code, message, .. }) => {
                self.refused(&attempt.id, connector.as_ref(), &code, &message)
                    .await?;
                self.changed(&attempt.session_id);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "the push call's answer was lost; asking");
            }
        }
        self.ask_soon(&attempt.id).await
    }

    /// Records what the operator said about an attempt (a status query's answer, or a
    /// push call's): `None` when it is not final yet, else whether the attempt changed.
    pub(crate) async fn settle(
        &self,
        attempt: &AttemptRecord,
        queried: Queried,
        source: &str,
    ) -> Result<Option<bool>, StoreError> {
        let Some((status, mut result)) = outcome_to_status(&queried.outcome) else {
            return Ok(None);
        };
        if status == AttemptStatus::Succeeded {
            result.operator_receipt = queried.receipt;
        }
        let changed = match self
            .store
            .finalize_attempt(&attempt.id, status, &result, source, now_ms())
            .await
        {
            Ok(changed) => changed,
            // The operator says paid, with a receipt another attempt already has: not
            // settled on it; a human decides (and the poller stops asking).
            Err(e) if e.is_unique_violation() => {
                tracing::error!(attempt = %attempt.id, "the operator's receipt belongs to another attempt; left for reconciliation");
                self.store
                    .mark_unknown(
                        &attempt.id,
                        "the operator's receipt is already another attempt's",
                        None,
                        now_ms(),
                    )
                    .await?
            }
            Err(e) => return Err(e),
        };
        if changed {
            self.changed(&attempt.session_id);
        }
        Ok(Some(changed))
    }

    /// The name the prompt shows (Daraja's `TransactionDesc`).
    pub(crate) async fn merchant_label(&self, merchant_id: &crate::domain::MerchantId) -> String {
        match self.store.merchant(merchant_id).await {
            Ok(Some(m)) => m.name,
            _ => "Payment".into(),
        }
    }

    /// Handles Daraja's POST to `/callbacks/mpesa/{attempt}/{token}`.
    pub async fn mpesa_callback(
        &self,
        attempt_id: &str,
        token: &str,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        self.callback(RailId::Mpesa, attempt_id, token, body).await
    }

    /// Handles an operator's POST to `/callbacks/{rail}/{attempt}/{token}`.
    pub async fn callback(
        &self,
        rail: RailId,
        attempt_id: &str,
        token: &str,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        let id = AttemptId::parse(attempt_id).ok_or(CallbackError::Forbidden)?;
        // Comparing hashes of a 190-bit token: no timing oracle worth having.
        // The token, and the rail it was issued for: a token posted under another rail's
        // route is as good as none.
        match self.store.attempt_callback_hash(&id).await? {
            Some((issued_for, stored)) if issued_for == rail && stored == hash_token(token) => {}
            _ => return Err(CallbackError::Forbidden),
        }
        // Kept before anything else, readable or not: what the operator said is evidence,
        // and `redrive_callbacks` applies it again if applying it now fails midway.
        self.store
            .record_callback(rail.as_str(), &id, body, now_ms())
            .await?;
        self.apply_callback(&id, body).await
    }

    /// Handles an operator's POST to its one portal-configured URL, `/callbacks/{rail}`
    /// (Airtel). The body is authenticated by the connector (the operator's own
    /// signature, when configured), kept as evidence, and never believed: the attempt it
    /// names is asked about at once (the poller's next pass, within a second).
    pub async fn portal_callback(
        &self,
        rail: RailId,
        key: Option<&str>,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        // A merchant's own app first (its keys, for its own payments only); then this
        // server's live and test connectors, which have their own secrets. The body must
        // be authentic to one of them, and then name an attempt that connector serves.
        let mut offers_portal = false;
        let mut authentic = self.own_portal_callback(rail, key, headers, body).await?;
        for mode in [Mode::Live, Mode::Test] {
            if authentic.is_some() {
                break;
            }
            let Some(connector) = self.rails.get(rail, mode) else {
                continue;
            };
            match connector.portal_callback(key, headers, body).await {
                None => {}
                Some(Err(_)) => offers_portal = true,
                Some(Ok(request_id)) => {
                    authentic = Some((mode, connector.clone(), request_id));
                    break;
                }
            }
        }
        let Some((mode, connector, request_id)) = authentic else {
            if !offers_portal {
                return Err(CallbackError::Forbidden);
            }
            tracing::warn!(%rail, "portal callback refused: unreadable or not authentic");
            return Err(CallbackError::BadBody);
        };
        let attempt = match self
            .store
            .attempt_by_operator_request_id(rail, &request_id)
            .await?
        {
            Some(id) => self.store.attempt(&id).await?,
            None => None,
        };
        let session = match &attempt {
            Some(a) => self.store.session(&a.session_id).await?,
            None => None,
        };
        let (Some(attempt), Some(session)) = (attempt, session) else {
            // Authentic, but for nothing of ours: refused, so the operator can tell.
            tracing::warn!(%rail, "portal callback names no attempt of ours; refused");
            return Err(CallbackError::BadBody);
        };
        if session.mode != mode {
            tracing::warn!(attempt = %attempt.id, %rail, "portal callback authentic for the other mode; refused");
            return Err(CallbackError::BadBody);
        }
        // This server's keys never vouch for a payment a merchant's own app made, nor
        // one merchant's for another's.
        let serves = self.connector(&session.merchant_id, rail, mode);
        if !serves.is_some_and(|c| Arc::ptr_eq(&c, &connector)) {
            tracing::warn!(attempt = %attempt.id, %rail, "portal callback authentic to credentials that do not serve the payment; refused");
            return Err(CallbackError::BadBody);
        }
        self.store
            .record_callback(rail.as_str(), &attempt.id, body, now_ms())
            .await?;
        if !connector.has_status_query() {
            // Nothing to ask (Tigo): its callback, found authentic by the connector, is
            // the operator's word.
            return self.apply_callback(&attempt.id, body).await;
        }
        // A cue, not a verdict: ask now, unless a query is due within seconds anyway (a
        // flood of cues never turns into a flood of queries). An authentic cue about an
        // attempt already left for reconciliation (a PayPal capture held for days)
        // resumes asking about it.
        tracing::info!(attempt = %attempt.id, %rail, "callback received; asking the operator");
        if attempt.status == AttemptStatus::Unknown {
            self.store.resume_polling(&attempt.id, now_ms()).await?;
        }
        self.ask_soon(&attempt.id).await?;
        Ok(())
    }

    /// A portal callback for a merchant's own app (its own credentials): the attempt the
    /// body names says whose credentials must find it authentic. `None`: not one.
    async fn own_portal_callback(
        &self,
        rail: RailId,
        key: Option<&str>,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Option<(Mode, Arc<dyn Connector>, String)>, StoreError> {
        if !self.rails.has_own(rail) {
            return Ok(None);
        }
        let Some(named) = self.rails.any(rail).and_then(|c| c.portal_request_id(body)) else {
            return Ok(None);
        };
        let Some(id) = self
            .store
            .attempt_by_operator_request_id(rail, &named)
            .await?
        else {
            return Ok(None);
        };
        let Some(attempt) = self.store.attempt(&id).await? else {
            return Ok(None);
        };
        let Some(session) = self.store.session(&attempt.session_id).await? else {
            return Ok(None);
        };
        let Some(own) = self.rails.own(&session.merchant_id, rail) else {
            return Ok(None);
        };
        if session.mode != Mode::Live {
            return Ok(None);
        }
        Ok(match own.portal_callback(key, headers, body).await {
            Some(Ok(request_id)) if request_id == named => Some((Mode::Live, own, request_id)),
            _ => None,
        })
    }

    /// Acts on a callback body already stored for attempt `id`. Idempotent: a body
    /// applied twice changes nothing the second time.
    async fn apply_callback(&self, id: &AttemptId, body: &[u8]) -> Result<(), CallbackError> {
        let mut attempt = self
            .store
            .attempt(id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        let connector = self
            .rails
            .any(attempt.rail)
            .ok_or(CallbackError::Forbidden)?;
        let report = connector
            .parse_callback(body)
            .map_err(|_| CallbackError::BadBody)?;
        if let Some(reported) = &report.operator_request_id {
            // The push's answer was lost, but the operator did send it: the token proves
            // the callback is for this attempt, so learn the operator's id for it now.
            if attempt.operator_request_id.is_none() {
                self.store
                    .set_operator_request_id(id, reported, now_ms())
                    .await?;
                attempt = self
                    .store
                    .attempt(id)
                    .await?
                    .ok_or(CallbackError::Forbidden)?;
            }
            if attempt.operator_request_id.as_deref() != Some(reported.as_str()) {
                tracing::warn!(attempt = %id, "callback for another operator request id; ignored");
                return Ok(());
            }
        }
        if attempt.status == AttemptStatus::Succeeded {
            tracing::info!(attempt = %id, "duplicate callback; already settled");
            return Ok(());
        }
        if report.outcome == RailOutcome::Succeeded {
            let paid = &report.paid;
            let amount_ok = paid.amount == Some(attempt.amount);
            // The payer must match where the operator names one. Tigo's callback names
            // none and Tigo cannot be asked: there the unguessable reference and the
            // amount are all there is.
            let phone_ok = (paid.payer.is_some() && paid.payer == attempt.payer)
                || (paid.payer.is_none() && !connector.has_status_query());
            // A receipt is required where the operator can be asked (a success without
            // one is checked by query); where it cannot (Tigo), the amount and the
            // authenticated callback are all there is, and a missing receipt is noted.
            let receipt_ok = paid.receipt.is_some() || !connector.has_status_query();
            if !(amount_ok && phone_ok && receipt_ok) {
                if attempt.status.is_final() {
                    // Closed, and this "success" does not match it: kept (above) for a
                    // human, not believed.
                    tracing::error!(attempt = %id, amount_ok, phone_ok, "success callback for a closed attempt does not match; kept for reconciliation");
                } else {
                    tracing::warn!(attempt = %id, amount_ok, phone_ok, "success callback does not match; confirming by query");
                    self.store.reschedule_poll(id, now_ms(), now_ms()).await?;
                }
                return Ok(());
            }
            if paid.receipt.is_none() {
                tracing::warn!(attempt = %id, "success without the operator's receipt; settled on the authenticated callback and its amount");
            }
            let result = AttemptOutcome {
                operator_receipt: paid.receipt.clone(),
                ..Default::default()
            };
            match self
                .store
                .finalize_attempt(id, AttemptStatus::Succeeded, &result, "callback", now_ms())
                .await
            {
                Ok(true) => {
                    if attempt.status != AttemptStatus::Pending {
                        tracing::warn!(attempt = %id, was = attempt.status.as_str(), "late success: the operator's word settles it");
                    }
                    self.changed(&attempt.session_id);
                }
                Ok(false) => {}
                // The receipt is already another attempt's (a shopper's rescue took it, or
                // an operator error): not settled, and not left for the poller either,
                // whose receipt-less "paid" would settle it twice; a person decides.
                Err(e) if e.is_unique_violation() => {
                    tracing::error!(attempt = %id, "receipt already used by another attempt; left for reconciliation");
                    self.store
                        .mark_unknown(
                            id,
                            "the operator's receipt is already another attempt's",
                            None,
                            now_ms(),
                        )
                        .await?;
                    self.changed(&attempt.session_id);
                }
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        match outcome_to_status(&report.outcome) {
            Some((status, mut result)) => {
                result.failure_detail = Some(report.detail);
                if self
                    .store
                    .finalize_attempt(id, status, &result, "callback", now_ms())
                    .await?
                {
                    self.changed(&attempt.session_id);
                }
            }
            None => {
                tracing::warn!(attempt = %id, detail = %report.detail, "unrecognised result code; kept open, will query");
                self.store.reschedule_poll(id, now_ms(), now_ms()).await?;
            }
        }
        Ok(())
    }

    /// Queries every pending or unknown attempt whose time has come, in both lanes at
    /// once; returns how many changed state.
    pub async fn poll_due(&self) -> Result<usize, StoreError> {
        let (live, test) = tokio::join!(self.poll_lane(Mode::Live), self.poll_lane(Mode::Test));
        Ok(live? + test?)
    }

    /// One pass of one mode's lane: its due attempts, merchants taking turns, a few
    /// queries at once. Attempts are taken as query slots free up, not a whole batch at
    /// once: none waits in this instance's queue, leased, while another instance has a
    /// slot for it, and each lease starts when its query is about to.
    pub async fn poll_lane(&self, mode: Mode) -> Result<usize, StoreError> {
        // The pass's due attempts in their fair order, read once, then taken in that
        // order a few at a time.
        let mut due = self
            .store
            .attempts_due_for_poll(now_ms(), mode, POLL_BATCH)
            .await?
            .into_iter();
        let slots = Arc::new(tokio::sync::Semaphore::new(QUERIES_AT_ONCE));
        let mut tasks = tokio::task::JoinSet::new();
        let mut failed = None;
        while due.len() > 0 {
            // A free slot, then every other one free now: that many attempts.
            let Ok(first) = slots.clone().acquire_owned().await else {
                break;
            };
            let mut permits = vec![first];
            while let Ok(more) = slots.clone().try_acquire_owned() {
                permits.push(more);
            }
            let next: Vec<AttemptRecord> = due.by_ref().take(permits.len()).collect();
            let now = now_ms();
            let taken = match self
                .store
                .claim_attempts_for_poll(next, mode, now, now + self.timing.poll_lease_ms)
                .await
            {
                Ok(taken) => taken,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            // Slots left over (attempts another instance took meanwhile) go back as
            // `permits` is dropped.
            for (attempt, permit) in taken.into_iter().zip(permits) {
                let me = self.clone();
                tasks.spawn(async move {
                    let settled = me.poll_one(attempt, mode).await;
                    drop(permit);
                    settled
                });
            }
        }
        let mut settled = 0;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(true)) => settled += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => failed = Some(e),
                Err(e) => tracing::error!(error = %e, "a status query task failed"),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(settled),
        }
    }

    /// Each operator circuit: (kind — `push` or `query` —, rail, mode, whether a
    /// merchant's own credentials) → 0 closed, 1 open, 2 half-open (for `/metrics`).
    pub fn breaker_states(&self) -> Vec<(CircuitName, i64)> {
        let now = now_ms();
        let mut all = Vec::new();
        for circuits in [&self.push_breakers, &self.query_breakers] {
            all.extend(
                circuits
                    .states(now)
                    .into_iter()
                    .map(|((rail, mode, own), s)| ((circuits.kind, rail, mode, own), s)),
            );
        }
        all
    }

    /// This server's operators (not merchants' own credentials), each rail on in each
    /// mode, with the state of its push and status-query circuits: for `/readyz`.
    pub fn operator_states(&self) -> Vec<serde_json::Value> {
        let now = now_ms();
        let word = |s: i64| match s {
            1 => "open",
            2 => "half_open",
            _ => "closed",
        };
        let mut out = Vec::new();
        for mode in [Mode::Live, Mode::Test] {
            for rail in RailId::ALL {
                if self.rails.get(rail, mode).is_none() {
                    continue;
                }
                let key = (rail, mode, None);
                out.push(serde_json::json!({
                    "rail": rail.as_str(),
                    "mode": mode.as_str(),
                    "pushes": word(self.push_breakers.state(&key, now)),
                    "status_queries": word(self.query_breakers.state(&key, now)),
                }));
            }
        }
        out
    }

    /// Queries one due attempt (or, without an operator id, decides what its silence
    /// means); true when it changed state.
    async fn poll_one(&self, attempt: AttemptRecord, mode: Mode) -> Result<bool, StoreError> {
        let now = now_ms();
        // The configured waits assume a one-minute prompt (M-PESA's); a rail whose
        // prompt stays up longer (MTN's five minutes) gets the difference on top, so a
        // shopper still looking at the prompt is never told "we couldn't confirm".
        // A rail whose push call answers only after the shopper (Vodacom) may answer as
        // late as that call's time-out: never given up as unknown before then.
        let (connector, owner) = self.attempt_connector(&attempt, mode).await?;
        // One breaker per set of credentials: a merchant whose own fail pauses nobody else.
        let breaker: BreakerKey = (attempt.rail, mode, owner);
        let answer_window = connector
            .as_ref()
            .map_or(0, |c| c.answers_within_ms() - 60_000);
        let age = now - attempt.created_at - longer_prompt_ms(attempt.rail).max(answer_window);
        let rail_name = attempt.rail.label();
        let Some(request_id) = attempt.operator_request_id.as_deref() else {
            // A PayPal attempt whose order was never recorded (the process stopped
            // between creating it and storing its id): no approval link was ever shown,
            // so nothing can be taken. It closes instead of holding up the session.
            if attempt.rail == RailId::Paypal && now - attempt.created_at > PAYPAL_NO_ORDER_MS {
                self.close_unpaid(
                    &attempt,
                    AttemptStatus::Failed,
                    "operator_error",
                    "PayPal made no order",
                )
                .await?;
                return Ok(true);
            }
            if age < self.timing.unconfirmed_push_ms {
                // Being sent right now, or its answer was lost: a callback may still
                // come. Look again shortly.
                self.store
                    .reschedule_poll(&attempt.id, now + 2_000, now)
                    .await?;
                return Ok(false);
            }
            let changed = self
                .store
                .mark_unknown(
                    &attempt.id,
                    &format!("no answer from {rail_name} to the push: nothing to query"),
                    None,
                    now,
                )
                .await?;
            if changed {
                // Without the operator's id there is nothing to ask: only a callback can
                // settle it now, so it goes to reconciliation at once.
                tracing::warn!(attempt = %attempt.id, "STK push never confirmed; outcome unknown, left for reconciliation");
                self.changed(&attempt.session_id);
            }
            return Ok(changed);
        };
        let queried: Queried = match connector {
            Some(_) if self.query_breakers.may(&breaker, now).is_none() => {
                // The operator keeps failing: its circuit is open. The schedule below
                // still runs, so the attempt goes unknown on time.
                RailOutcome::Pending.into()
            }
            Some(connector) => {
                let answer = match connector.paypal() {
                    // PayPal: the engine captures an approved order, for an open attempt.
                    Some(paypal) => self.paypal_query(&attempt, paypal, request_id, now).await,
                    None => {
                        connector
                            .query(
                                QueryRequest {
                                    operator_request_id: request_id,
                                    amount: attempt.amount,
                                    started_at: attempt.created_at,
                                },
                                now,
                            )
                            .await
                    }
                };
                self.query_breakers
                    .answered(&breaker, answer.is_ok(), now_ms());
                match answer {
                    Ok(q) => q,
                    Err(e) => {
                        tracing::warn!(attempt = %attempt.id, error = %e, "status query failed; will retry");
                        RailOutcome::Pending.into()
                    }
                }
            }
            None => {
                tracing::error!(attempt = %attempt.id, rail = %attempt.rail, "open attempt but its rail is not configured in its mode");
                RailOutcome::Pending.into()
            }
        };
        let outcome = queried.outcome.clone();
        if let Some(changed) = self.settle(&attempt, queried, "query").await? {
            return Ok(changed);
        }
        if let RailOutcome::Unknown { raw } = &outcome {
            tracing::warn!(attempt = %attempt.id, code = %raw, "unrecognised query answer; still open");
        }
        let next = next_poll_at(attempt.created_at, attempt.poll_count + 1).max(now + 1_000);
        let changed = if age >= self.timing.reconcile_after_ms
            && Self::paypal_capture_claimed(&attempt)
            && now - attempt.created_at < PAYPAL_HELD_CAPTURE_MS
        {
            // A capture PayPal holds: asked about hourly for a week before a person is.
            self.store
                .mark_unknown(
                    &attempt.id,
                    "PayPal holds the capture",
                    Some(now + 3_600_000),
                    now,
                )
                .await?
        } else if age >= self.timing.reconcile_after_ms {
            tracing::warn!(attempt = %attempt.id, "outcome still unknown; left for reconciliation");
            self.store
                .mark_unknown(
                    &attempt.id,
                    &format!("{rail_name} never gave a final answer"),
                    None,
                    now,
                )
                .await?
        } else if age >= self.timing.unknown_after_ms && attempt.status == AttemptStatus::Pending {
            self.store
                .mark_unknown(
                    &attempt.id,
                    &format!("no final answer from {rail_name} yet"),
                    Some(next),
                    now,
                )
                .await?
        } else {
            self.store.reschedule_poll(&attempt.id, next, now).await?;
            false
        };
        if changed {
            self.changed(&attempt.session_id);
        }
        Ok(changed)
    }

    /// Applies again every stored success callback of the last day whose attempt has not
    /// succeeded: its first application may have failed midway (the database refused a
    /// write, the process died), and operators rarely send a callback twice. Returns how
    /// many attempts it settled.
    pub async fn redrive_callbacks(&self) -> Result<usize, StoreError> {
        let since = now_ms() - 24 * 3600 * 1000;
        let mut settled = 0;
        let markers: Vec<(RailId, &str)> = RailId::ALL
            .into_iter()
            .filter_map(|rail| Some((rail, self.rails.any(rail)?.success_marker()?)))
            .collect();
        for (id, body) in self
            .store
            .unapplied_success_callbacks(since, 100, &markers)
            .await?
        {
            let before = self.store.attempt(&id).await?.map(|a| a.status);
            match self.apply_callback(&id, body.as_bytes()).await {
                Ok(()) => {}
                Err(CallbackError::Store(e)) => return Err(e),
                Err(_) => continue,
            }
            let after = self.store.attempt(&id).await?.map(|a| a.status);
            if after == Some(AttemptStatus::Succeeded) && before != after {
                tracing::warn!(attempt = %id, "a stored success callback settled its attempt on re-drive");
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Runs until aborted: each lane polls every second on its own (a lane stuck on a
    /// hung operator never holds up the other), and stored callbacks that never took
    /// effect are re-driven every 30 s (and at start-up), with refunds
    /// not yet sent; Pay Bill payments M-PESA has not confirmed are asked about again on
    /// their own tick.
    pub async fn run_poller(self) {
        let lane = |mode: Mode| {
            let me = self.clone();
            async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = me.wake.notified() => {}
                    }
                    if let Err(e) = me.poll_lane(mode).await {
                        tracing::warn!(mode = mode.as_str(), error = %e, "poller failed; retrying");
                    }
                }
            }
        };
        let redrive = async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.redrive_callbacks().await {
                    tracing::warn!(error = %e, "re-driving callbacks failed; retrying");
                }
                if let Err(e) = self.redrive_refunds().await {
                    tracing::warn!(error = %e, "sending pending refunds again failed; retrying");
                }
            }
        };
        // On its own: a slow Daraja never holds up callbacks and refunds.
        let paybills = async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.recheck_paybills().await {
                    tracing::warn!(error = %e, "asking M-PESA again about Paybill payments failed; retrying");
                }
            }
        };
        tokio::join!(lane(Mode::Live), lane(Mode::Test), redrive, paybills);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_never_sent_is_handed_back_and_another_tap_may_probe() {
        let circuits = Circuits::new("push", breaker_policy(1_000), "opened");
        let key: BreakerKey = (RailId::Mpesa, Mode::Test, None);
        for _ in 0..5 {
            assert_eq!(circuits.may(&key, 0), Some(None));
            circuits.answered(&key, false, 0);
        }
        assert_eq!(circuits.may(&key, 500), None, "open during the cool-down");
        // The cool-down is over: one probe, and only one.
        assert_eq!(circuits.may(&key, 1_000), Some(Some(1)));
        assert_eq!(circuits.may(&key, 1_001), None);
        // That tap stopped before sending (a cap, a race): its probe goes back…
        drop(UnsentProbe {
            circuits: &circuits,
            key: &key,
            probe: Some(1),
        });
        // …so the next tap probes at once, not a minute later.
        assert_eq!(circuits.may(&key, 1_000), Some(Some(2)));
        // A stale hand-back (an earlier probe's) leaves the new probe alone.
        circuits.hand_back(&key, 1);
        assert_eq!(circuits.may(&key, 1_003), None);
        // A sent probe answered closes the circuit.
        let sent = UnsentProbe {
            circuits: &circuits,
            key: &key,
            probe: None,
        };
        drop(sent);
        circuits.answered(&key, true, 1_010);
        assert_eq!(circuits.may(&key, 1_011), Some(None));
    }

    #[test]
    fn polls_back_off_then_repeat_every_90_seconds() {
        let t0 = 1_000_000;
        let secs: Vec<i64> = (0..8).map(|i| (next_poll_at(t0, i) - t0) / 1000).collect();
        assert_eq!(secs, [5, 15, 30, 60, 90, 180, 270, 360]);
    }
}
