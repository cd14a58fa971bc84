//! Sandbox operators: real HTTP servers in the binary that speak the operators' own wire
//! formats, so merchants can test offline and Malipo's real connectors reach them by base
//! URL only. Test mode only; live mode never reaches them.
//!
//! One framework serves every operator: one table of requests ([`requests`]), one
//! scheduler and callback worker ([`worker`]), scripted behaviours by test number
//! ([`behaviour`]), and one simulated phone per number ([`handset`]) that shows every
//! operator's prompts in that operator's words. An operator supplies only what is its
//! own ([`SandboxOperator`]): its routes and wire types, its codes and words, its
//! callback body.
//!
//! - [`operators`]: one file per operator (Safaricom Daraja, MTN MoMo, …).
//! - [`merchant`]: a merchant's booking site on its own origin, integrating Malipo as a
//!   real merchant would (API with a secret key, `checkout.js`, verified webhooks).

pub mod behaviour;
pub mod cardgw;
pub mod fx;
mod handset;
pub mod merchant;
pub mod operators;
pub mod paybill;
pub mod paypal;
pub mod refunds;
pub mod requests;
pub mod worker;

use axum::Router;
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use requests::{NewRequest, SandboxDecision, SandboxRequest};

use crate::{config::Rails, connectors::RailId, domain::ids::random_base62, startup::AppState};

/// What the shopper (or the clock) did with a prompt, before the operator words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Approved with the PIN.
    Approved,
    /// Cancelled on the handset.
    Declined,
    /// Nobody answered in time.
    TimedOut,
}

/// A callback an operator sends for a decided request.
pub struct OutgoingCallback {
    pub method: reqwest::Method,
    pub body: Value,
}

/// What one sandbox operator supplies; the framework does the rest.
pub trait SandboxOperator: Send + Sync + 'static {
    fn rail(&self) -> RailId;
    /// Its own paths (token, push, status…), nested at `/sandbox/{path}`.
    fn router(&self) -> Router<AppState>;
    /// The network on the handset's status bar ("Safaricom").
    fn network(&self) -> &'static str;
    /// The wallet, as the prompt names it ("M-PESA").
    fn wallet(&self) -> &'static str;
    /// How many digits its PIN has.
    fn pin_digits(&self) -> usize;
    /// What a request to `phone` does, before the sandbox scales its delays.
    fn script(&self, phone: &str) -> behaviour::Behaviour;
    /// The scripted test numbers and what each does (handset page, README).
    fn scripted(&self) -> &'static [(&'static str, &'static str)];
    /// Its result code and words for an answer.
    fn answer(&self, answer: Answer) -> (&'static str, &'static str);
    /// A new receipt (transaction id) in its format.
    fn receipt(&self) -> String {
        random_base62(10).to_uppercase()
    }
    /// The prompt's text, in its words.
    fn prompt(&self, req: &SandboxRequest) -> String;
    /// The callback it sends for a decided request (`None`: it sends none). A refund
    /// (`req.refund_of`) has the operator's refund result.
    fn callback(&self, req: &SandboxRequest) -> Option<OutgoingCallback>;
    /// Its code and words refusing a refund of a payment from `payer`, when the number
    /// scripts a refusal (`None`: refunds are made).
    fn refund_refusal(&self, _payer: &str) -> Option<(&'static str, &'static str)> {
        None
    }
    /// Whether the result of a refund of a payment from `payer` is never delivered
    /// (beside the payer's number's own callback behaviour).
    fn refund_result_lost(&self, _payer: &str) -> bool {
        false
    }
}

/// The sandbox operator for a mobile-money rail: the one line each sandbox operator
/// adds. (Cards and PayPal have their own sites on their own origins: [`cardgw`],
/// [`paypal`]; asked for one, this answers with M-PESA's, which never sees their
/// requests.)
pub fn operator(rail: RailId) -> &'static dyn SandboxOperator {
    match rail {
        RailId::Mpesa | RailId::Card | RailId::Paypal => &operators::daraja::Daraja,
        RailId::MtnMomo => &operators::mtn::Mtn,
        RailId::Airtel => &operators::airtel::Airtel,
        RailId::Tigo => &operators::tigo::Tigo,
        RailId::Vodacom => &operators::vodacom::Vodacom,
    }
}

/// State the sandbox keeps in memory (tokens, like the operators', do not survive a
/// restart; requests live in the database and do).
pub struct Sandbox {
    /// The test-mode settings of every rail: the credentials the operators accept.
    pub(crate) rails: Rails,
    /// Bearer tokens issued, with the operator that issued them, and when they go live
    /// and expire.
    tokens: Mutex<HashMap<String, (RailId, Instant, Instant)>>,
    http: reqwest::Client,
    /// Callbacks go only under this: `{public_url}/callbacks/`.
    callback_prefix: String,
    /// Pushes per client address, across operators.
    pushes: crate::limits::RateLimiter,
    /// Every scripted delay and time-out at this percentage (100: as documented).
    delay_percent: u32,
    /// Set when the server stops: calls held open until the handset answers (Vodacom's
    /// synchronous payment) give up at once instead of holding up the shutdown.
    closing: std::sync::atomic::AtomicBool,
    /// Woken whenever a request is decided: calls held open until then (Vodacom's
    /// synchronous payment) wait on it instead of polling the database.
    decisions: tokio::sync::Notify,
    /// Daraja's registered C2B URLs, per shortcode (like tokens, lost on a restart; the
    /// server registers them again when it starts).
    pub(crate) paybill_urls: Mutex<HashMap<String, paybill::Registered>>,
}

/// Bearer tokens the sandbox keeps at once, across operators.
pub const MAX_TOKENS: usize = 10_000;

/// Prompts one sandbox phone may have waiting at once.
pub const PENDING_PER_PHONE: i64 = 20;
/// The longest request body a sandbox operator reads.
pub const BODY_LIMIT: usize = 16 * 1024;

impl Sandbox {
    /// `public_url`: this instance's own, the only place callbacks may go.
    pub fn new(
        rails: Rails,
        public_url: &str,
        pushes_per_minute: u32,
        delay_percent: u32,
    ) -> Result<Arc<Sandbox>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent("malipo-sandbox")
            // A callback URL is ours (checked on push); a redirect could send the POST
            // anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Arc::new(Sandbox {
            rails,
            tokens: Mutex::new(HashMap::new()),
            http,
            callback_prefix: format!("{}/callbacks/", public_url.trim_end_matches('/')),
            pushes: crate::limits::RateLimiter::new(pushes_per_minute, 60),
            delay_percent,
            closing: std::sync::atomic::AtomicBool::new(false),
            decisions: tokio::sync::Notify::new(),
            paybill_urls: Mutex::new(HashMap::new()),
        }))
    }

    /// What `operator` does with a request to `phone`, its delays scaled.
    pub fn behaviour(&self, operator: RailId, phone: &str) -> behaviour::Behaviour {
        self::operator(operator)
            .script(phone)
            .scaled(self.delay_percent)
    }

    /// Stores a request an operator took, scripted by its phone number. False if the
    /// operator already has one with this id.
    pub async fn take(
        &self,
        store: &crate::store::Store,
        new: NewRequest,
    ) -> Result<bool, crate::store::StoreError> {
        let b = self.behaviour(new.operator, &new.phone);
        let request = SandboxRequest::pending(new, &b, crate::time::now_ms());
        store.insert_sandbox_request(&request).await
    }

    /// The server is stopping: calls held open give up.
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.decisions.notify_waiters();
    }

    /// Wakes every call waiting for a decision.
    pub fn decided(&self) {
        self.decisions.notify_waiters();
    }

    /// Resolves at the next decision (or when the server stops, via [`Sandbox::close`]).
    pub fn next_decision(&self) -> tokio::sync::futures::Notified<'_> {
        self.decisions.notified()
    }

    /// Whether the server is stopping.
    pub fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A delay of the operator's own (a time-out, a slow answer) at the sandbox's scale.
    pub fn scaled_ms(&self, ms: i64) -> i64 {
        ms.saturating_mul(i64::from(self.delay_percent)) / 100
    }

    /// The HTTP client the operators call out with (callbacks, C2B).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether the sandbox may send a callback to `url`: only this instance's own
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

    /// Counts a push from `client`; `false` when it is over the sandbox's quota.
    pub fn push_allowed(&self, client: std::net::IpAddr, now_ms: i64) -> bool {
        self.pushes.check(client, now_ms).is_ok()
    }

    /// Issues `operator`'s bearer token for `lifetime` (`len` characters). At most
    /// [`MAX_TOKENS`] live at once: beyond that, the oldest go first.
    pub fn issue_token(&self, operator: RailId, len: usize, lifetime: Duration) -> String {
        self.issue_token_live_after(operator, len, Duration::ZERO, lifetime)
    }

    /// [`Sandbox::issue_token`], for a token that is refused until `live_after` has
    /// passed (Vodacom's sessions: "up to 30 seconds to become live"; scaled here like
    /// every scripted delay).
    pub fn issue_token_live_after(
        &self,
        operator: RailId,
        len: usize,
        live_after: Duration,
        lifetime: Duration,
    ) -> String {
        let token = random_base62(len);
        if let Ok(mut tokens) = self.tokens.lock() {
            let now = Instant::now();
            if tokens.len() >= MAX_TOKENS {
                tokens.retain(|_, (_, _, until)| *until > now);
            }
            while tokens.len() >= MAX_TOKENS {
                let Some(oldest) = tokens
                    .iter()
                    .min_by_key(|(_, (_, _, until))| *until)
                    .map(|(t, _)| t.clone())
                else {
                    break;
                };
                tokens.remove(&oldest);
            }
            let live = now + live_after.mul_f64(f64::from(self.delay_percent) / 100.0);
            tokens.insert(token.clone(), (operator, live, now + lifetime));
        }
        token
    }

    /// Whether the request's `Authorization: Bearer …` is a live token `operator`
    /// issued (the scheme's case as operators accept it).
    pub fn bearer_valid(&self, operator: RailId, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .is_some_and(|t| self.token_valid(operator, t.trim()))
    }

    /// Whether `token` is a live bearer token `operator` issued.
    pub fn token_valid(&self, operator: RailId, token: &str) -> bool {
        self.tokens
            .lock()
            .map(|tokens| {
                tokens.get(token).is_some_and(|(rail, live, until)| {
                    let now = Instant::now();
                    *rail == operator && *live <= now && *until > now
                })
            })
            .unwrap_or(false)
    }
}

/// Every operator's routes at `/sandbox/{path}`, the handset's at `/sandbox/phone(s)/…`
/// and the rates provider's at `/sandbox/fx/rates`.
pub fn router() -> Router<AppState> {
    let defaults = Rails::default();
    let mut router = handset::router()
        .merge(paybill::router())
        .merge(fx::router());
    for rail in RailId::MOBILE_MONEY {
        let path = format!("/sandbox/{}", defaults.get(rail).sandbox_path());
        router = router.nest(&path, operator(rail).router());
    }
    router.layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

/// A request header as text, if present and readable.
pub(crate) fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
