//! Vodacom M-Pesa Tanzania — the M-Pesa OpenAPI's C2B single stage.
//!
//! Facts it is built on (RAILS.md §3): the API key, encrypted with the market's RSA
//! public key (PKCS#1 v1.5) and base64'd, is the bearer of `getSession`; the session id,
//! encrypted the same way, is the bearer of every other call; a new session may take up
//! to 30 s to go live; every call carries an `Origin` header. The single stage is
//! **synchronous**: its HTTP answer comes only once the shopper has answered the prompt
//! on the handset (or the operator gave up), minutes later. So:
//!
//! - [`Connector::initiate`] returns at once, with the `ThirdPartyConversationID` (ours,
//!   the attempt's id, chosen before sending) and the call itself as
//!   [`Initiated::answer`]: the engine runs it off the request path, and the page shows
//!   "waiting" meanwhile;
//! - the call's answer is the outcome (its INS code, [`wire::Ins`]); an ambiguous one
//!   (time-out, internal error, duplicate) is settled by `queryTransactionStatus`;
//! - a restart mid-call loses only the call: the engine's status queries, by our
//!   `ThirdPartyConversationID`, find the outcome.
//!
//! Vodacom sends no callback for it.

pub mod config;
pub mod wire;

use base64::Engine;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use secrecy::{ExposeSecret, SecretString};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use self::wire::{C2bRequest, C2bResponse, Ins, QueryResponse, SessionResponse};
use crate::{
    connectors::{
        BadCallback, BoxFuture, CallbackReport, Capabilities, Connector, ConnectorError,
        InitiateRequest, Initiated, Queried, QueryRequest, RailId, RailOutcome, RefundAnswer,
        RefundRequest,
        shared::{bad_response, exchange, http_client, unreadable_token},
    },
    domain::{AttemptId, ids::random_base62, money::Currency, phone::Country},
};
pub use config::VodacomConfig;

const RAIL: RailId = RailId::Vodacom;

/// How long a session is used before a new one is fetched (clients default to an hour;
/// the real lifetime is the account's setting).
const SESSION_LIFETIME: Duration = Duration::from_secs(50 * 60);
/// How long before then the next one is fetched, so it is live when it is needed.
const RENEW_AHEAD: Duration = Duration::from_secs(5 * 60);
/// How often the background task looks whether a new session is due.
const RENEW_CHECK: Duration = Duration::from_secs(30);
/// How long a new session may take to go live ("up to 30 seconds"), with a margin.
const SESSION_WARMUP: Duration = Duration::from_secs(45);
/// The single stage's time-out: its answer waits for the shopper (samples use 300 s).
const PAY_TIMEOUT: Duration = Duration::from_secs(300);

/// A Vodacom M-Pesa Tanzania OpenAPI client for one service provider code.
pub struct Vodacom {
    inner: Arc<Inner>,
    capabilities: Capabilities,
}

struct Inner {
    session_url: String,
    pay_url: String,
    query_url: String,
    reversal_url: String,
    api_key: SecretString,
    key: RsaPublicKey,
    service_provider_code: String,
    origin: String,
    http: reqwest::Client,
    sessions: tokio::sync::Mutex<Sessions>,
}

/// What a call with the session as bearer came to.
enum Called {
    Answered(u16, bytes::Bytes),
    /// The session is new and not live yet (only for a caller that would not wait).
    NotLiveYet,
}

#[derive(Clone)]
struct Session {
    id: String,
    obtained: Instant,
}

impl Session {
    fn expired(&self) -> bool {
        self.obtained.elapsed() >= SESSION_LIFETIME
    }
}

/// The session in use, and the next one, fetched ahead and going live meanwhile.
#[derive(Default)]
struct Sessions {
    current: Option<Session>,
    next: Option<Session>,
}

impl Vodacom {
    /// Fails when the configured public key cannot be read (the configuration's check
    /// says so first) or the HTTP client cannot be built.
    pub fn new(base_url: String, config: &VodacomConfig) -> Result<Vodacom, String> {
        let base = format!("{}{}", base_url.trim_end_matches('/'), config.market_path);
        Ok(Vodacom {
            inner: Arc::new(Inner {
                session_url: format!("{base}/getSession/"),
                pay_url: format!("{base}/c2bPayment/singleStage/"),
                query_url: format!("{base}/queryTransactionStatus/"),
                reversal_url: format!("{base}/reversal/"),
                api_key: config.api_key.clone(),
                key: config.key()?,
                service_provider_code: config.service_provider_code.clone(),
                origin: config.origin.clone(),
                http: http_client(Duration::from_secs(15)).map_err(|e| e.to_string())?,
                sessions: tokio::sync::Mutex::default(),
            }),
            // Whole Tanzanian shillings from Tanzanian numbers.
            capabilities: Capabilities {
                markets: vec![(Currency::Tzs, Country::Tanzania)],
                whole_units: true,
                per_payment: Vec::new(),
            },
        })
    }

    /// Keeps a live session ready in the background (fetched at once, and the next one
    /// five minutes before it is due), so a shopper's payment does not wait the 30 s a new
    /// session takes to go live. Ends when the connector is dropped.
    pub fn keep_sessions_warm(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(me) = inner.upgrade() else { return };
                let pause = match me.renew_if_due().await {
                    Ok(()) => {
                        failures = 0;
                        RENEW_CHECK
                    }
                    Err(e) => {
                        failures += 1;
                        // The first failures may be this server still starting (its own
                        // sandbox not serving yet): retried soon, and only then a warning.
                        if failures >= 3 {
                            tracing::warn!(error = %e, "fetching a Vodacom session ahead failed; retrying");
                        }
                        Duration::from_secs(1 << failures.min(5)).min(RENEW_CHECK)
                    }
                };
                drop(me);
                tokio::time::sleep(pause).await;
            }
        });
    }

    /// The `ThirdPartyConversationID` of an attempt's payment: its id (unique, at most
    /// 40 letters, digits and underscores, the same on a retry).
    pub fn conversation_id(attempt: &AttemptId) -> String {
        attempt.as_str().to_owned()
    }
}

/// Letters, digits and spaces only, at most `max` of them (the OpenAPI's fields allow
/// nothing else).
fn plain(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `secret` encrypted with the market's public `key` (PKCS#1 v1.5, randomised) and
/// base64'd: the OpenAPI's bearer. `None` if the key is too short for it.
pub fn seal(key: &RsaPublicKey, secret: &str) -> Option<String> {
    let sealed = key
        .encrypt(
            &mut rsa::rand_core::OsRng,
            Pkcs1v15Encrypt,
            secret.as_bytes(),
        )
        .ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(sealed))
}

impl Inner {
    fn bearer(&self, secret: &str) -> Result<String, ConnectorError> {
        seal(&self.key, secret).ok_or_else(|| ConnectorError::BadResponse {
            rail: RAIL,
            status: 0,
            body: "the public key cannot encrypt the bearer".into(),
        })
    }

    /// A new session from `getSession` (not live for up to 30 s).
    async fn new_session(&self) -> Result<Session, ConnectorError> {
        let (status, body) = exchange(
            RAIL,
            self.http
                .get(&self.session_url)
                .bearer_auth(self.bearer(self.api_key.expose_secret())?)
                .header(reqwest::header::ORIGIN, &self.origin),
        )
        .await?;
        let answer: SessionResponse =
            serde_json::from_slice(&body).map_err(|_| unreadable_token(RAIL, status))?;
        if answer.response_code != Ins::Ok.code() || answer.session_id.is_empty() {
            return Err(ConnectorError::Rejected {
                rail: RAIL,
                code: answer.response_code,
                message: answer.response_desc,
            });
        }
        Ok(Session {
            id: answer.session_id,
            obtained: Instant::now(),
        })
    }

    /// The session to use: the next one once it is surely live (or the current one has
    /// aged out), else the current one, else a new one.
    async fn session(&self) -> Result<Session, ConnectorError> {
        let mut sessions = self.sessions.lock().await;
        let promote = sessions.next.as_ref().is_some_and(|next| {
            next.obtained.elapsed() >= SESSION_WARMUP
                || sessions.current.as_ref().is_none_or(Session::expired)
        });
        if promote {
            sessions.current = sessions.next.take();
        }
        if let Some(current) = sessions.current.as_ref().filter(|s| !s.expired()) {
            return Ok(current.clone());
        }
        let fresh = self.new_session().await?;
        sessions.current = Some(fresh.clone());
        Ok(fresh)
    }

    /// Fetches the next session when the current one is missing or nearly due.
    async fn renew_if_due(&self) -> Result<(), ConnectorError> {
        let due = {
            let sessions = self.sessions.lock().await;
            sessions.next.is_none()
                && sessions
                    .current
                    .as_ref()
                    .is_none_or(|c| c.obtained.elapsed() + RENEW_AHEAD >= SESSION_LIFETIME)
        };
        if !due {
            return Ok(());
        }
        let fresh = self.new_session().await?;
        let mut sessions = self.sessions.lock().await;
        if sessions.current.is_none() {
            sessions.current = Some(fresh);
        } else {
            sessions.next = Some(fresh);
        }
        Ok(())
    }

    /// Drops `stale` (the operator no longer takes it), unless another call already has.
    async fn forget(&self, stale: &Session) {
        let mut sessions = self.sessions.lock().await;
        if sessions.current.as_ref().is_some_and(|s| s.id == stale.id) {
            sessions.current = sessions.next.take();
        }
    }

    /// Sends the request `build` makes for a bearer, with the session as that bearer.
    /// A session refused while new is not live yet: a `patient` caller (the payment,
    /// off the request path) waits for it; a status query fails, to be asked again. A
    /// session refused once past its warm-up is replaced once.
    async fn call(
        &self,
        build: impl Fn(String) -> reqwest::RequestBuilder,
        patient: bool,
    ) -> Result<Called, ConnectorError> {
        let mut pause = Duration::from_millis(250);
        let mut renewed = false;
        loop {
            let session = self.session().await?;
            let (status, body) = exchange(
                RAIL,
                build(self.bearer(&session.id)?).header(reqwest::header::ORIGIN, &self.origin),
            )
            .await?;
            let code = serde_json::from_slice::<SessionResponse>(&body)
                .ok()
                .and_then(|r| Ins::parse(&r.response_code));
            let session_refused = status == 401
                && matches!(
                    code,
                    Some(Ins::InvalidApiKey | Ins::NotAuthorized | Ins::SessionCreationFailed)
                );
            if !session_refused {
                return Ok(Called::Answered(status, body));
            }
            let age = session.obtained.elapsed();
            if age < SESSION_WARMUP {
                if !patient {
                    return Ok(Called::NotLiveYet);
                }
                tokio::time::sleep(pause.min(SESSION_WARMUP - age)).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
            if renewed {
                return Ok(Called::Answered(status, body));
            }
            self.forget(&session).await;
            renewed = true;
        }
    }

    /// The single stage: returns once the shopper has answered (or Vodacom gave up).
    async fn pay(self: Arc<Self>, body: C2bRequest) -> Result<Queried, ConnectorError> {
        let called = self
            .call(
                |bearer| {
                    self.http
                        .post(&self.pay_url)
                        .bearer_auth(bearer)
                        .timeout(PAY_TIMEOUT)
                        .json(&body)
                },
                true,
            )
            .await?;
        let Called::Answered(status, bytes) = called else {
            // A patient call waits for its session; should it not, the query decides.
            return Err(bad_response(RAIL, 0, b"the session is not live"));
        };
        let answer: C2bResponse =
            serde_json::from_slice(&bytes).map_err(|_| bad_response(RAIL, status, &bytes))?;
        if !answer.third_party_conversation_id.is_empty()
            && answer.third_party_conversation_id != body.third_party_conversation_id
        {
            // Not the answer to this payment: the status query decides.
            return Err(bad_response(
                RAIL,
                status,
                b"an answer naming another payment",
            ));
        }
        let outcome = wire::c2b_outcome(&answer.response_code);
        match &outcome {
            RailOutcome::Unknown { raw } => {
                tracing::warn!(code = %raw, desc = %answer.response_desc, "Vodacom answered the payment with an unknown code; asking")
            }
            _ => {
                tracing::info!(code = %answer.response_code, desc = %answer.response_desc, "Vodacom answered the payment")
            }
        }
        let receipt = (outcome == RailOutcome::Succeeded && !answer.transaction_id.is_empty())
            .then_some(answer.transaction_id);
        Ok(Queried { outcome, receipt })
    }

    /// Reverses `amount` of payment `receipt`, as reversal `refund_id`; answered at once.
    /// Sent again (its answer was lost), the OpenAPI refuses the duplicate, and the
    /// status query says how the first one ended.
    async fn reverse(
        &self,
        refund_id: &str,
        receipt: &str,
        amount: crate::domain::Money,
    ) -> Result<RefundAnswer, ConnectorError> {
        let body = wire::ReversalRequest {
            country: "TZN".into(),
            transaction_id: receipt.to_owned(),
            service_provider_code: self.service_provider_code.clone(),
            third_party_conversation_id: refund_id.to_owned(),
            reversal_amount: (amount.minor() / 10i64.pow(amount.currency().exponent())).to_string(),
        };
        let called = self
            .call(
                |bearer| {
                    self.http
                        .put(&self.reversal_url)
                        .bearer_auth(bearer)
                        .json(&body)
                },
                true,
            )
            .await?;
        let Called::Answered(status, bytes) = called else {
            return Err(bad_response(RAIL, 0, b"the session is not live"));
        };
        let answer: C2bResponse =
            serde_json::from_slice(&bytes).map_err(|_| bad_response(RAIL, status, &bytes))?;
        match Ins::parse(&answer.response_code) {
            Some(Ins::Ok) => Ok(RefundAnswer::Done {
                operator_refund_id: Some(answer.transaction_id).filter(|t| !t.is_empty()),
            }),
            Some(Ins::DuplicateTransaction) => {
                let asked = self.query(refund_id).await?;
                Ok(match asked.outcome {
                    RailOutcome::Succeeded => RefundAnswer::Done {
                        operator_refund_id: asked.receipt,
                    },
                    RailOutcome::Pending | RailOutcome::Unknown { .. } => RefundAnswer::Accepted {
                        operator_refund_id: None,
                    },
                    _ => RefundAnswer::Refused {
                        code: answer.response_code,
                    },
                })
            }
            // A definite refusal: nothing was reversed.
            Some(
                Ins::TransactionFailed
                | Ins::InsufficientBalance
                | Ins::InvalidAmount
                | Ins::InvalidTransactionId
                | Ins::InvalidShortcode
                | Ins::InvalidReference
                | Ins::InvalidTransactionReference
                | Ins::InvalidThirdPartyReference
                | Ins::ParametersMissing
                | Ins::ValidationFailed
                | Ins::InvalidOperationType
                | Ins::InvalidInitiator
                | Ins::InvalidSecurityCredential
                | Ins::InitiatorAuthentication
                | Ins::AccountNotActive
                | Ins::CustomerProfileProblem
                | Ins::ReceiverInvalid
                | Ins::MsisdnInvalid
                | Ins::UserNotActive
                | Ins::InvalidMarket
                | Ins::LinkingTransactionNotFound,
            ) => Ok(RefundAnswer::Refused {
                code: answer.response_code,
            }),
            // Failed inside, overloaded, timed out, "unknown status", not indexed yet, or a
            // code we do not know: whether it was reversed is not known; sent again.
            _ => Err(bad_response(RAIL, status, &bytes)),
        }
    }

    async fn query(&self, conversation_id: &str) -> Result<Queried, ConnectorError> {
        // Each query has its own id, as the OpenAPI asks.
        let query_id = format!("q{}", random_base62(24));
        let called = self
            .call(
                |bearer| {
                    self.http.get(&self.query_url).bearer_auth(bearer).query(&[
                        ("input_QueryReference", conversation_id),
                        ("input_ServiceProviderCode", &self.service_provider_code),
                        ("input_ThirdPartyConversationID", &query_id),
                        ("input_Country", "TZN"),
                    ])
                },
                false,
            )
            .await?;
        let Called::Answered(status, bytes) = called else {
            // The session is still going live: nothing to learn yet, and no failure of
            // the operator's (its status-query breaker stays closed).
            return Ok(RailOutcome::Pending.into());
        };
        let answer: QueryResponse =
            serde_json::from_slice(&bytes).map_err(|_| bad_response(RAIL, status, &bytes))?;
        let Some(outcome) = answer.outcome() else {
            return Err(ConnectorError::Rejected {
                rail: RAIL,
                code: answer.response_code,
                message: answer.response_desc,
            });
        };
        let receipt = (outcome == RailOutcome::Succeeded
            && !answer.original_transaction_id.is_empty())
        .then_some(answer.original_transaction_id);
        Ok(Queried { outcome, receipt })
    }
}

impl Connector for Vodacom {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn chosen_request_id(&self, req: &InitiateRequest<'_>) -> Option<String> {
        Some(Vodacom::conversation_id(req.attempt_id))
    }

    fn initiate<'a>(
        &'a self,
        req: InitiateRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>> {
        let conversation_id = Vodacom::conversation_id(req.attempt_id);
        let reference = match plain(req.reference, 20) {
            r if r.is_empty() => "Malipo".to_owned(),
            r => r,
        };
        let body = C2bRequest {
            amount: (req.amount.minor() / 10i64.pow(req.amount.currency().exponent())).to_string(),
            country: "TZN".into(),
            currency: "TZS".into(),
            customer_msisdn: req.payer.to_string(),
            service_provider_code: self.inner.service_provider_code.clone(),
            transaction_reference: reference,
            third_party_conversation_id: conversation_id.clone(),
            purchased_items_desc: match plain(req.description, 256) {
                d if d.is_empty() => "Payment".to_owned(),
                d => d,
            },
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            Ok(Initiated {
                operator_request_id: conversation_id,
                answer: Some(Box::pin(inner.pay(body))),
            })
        })
    }

    fn query<'a>(
        &'a self,
        req: QueryRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>> {
        Box::pin(self.inner.query(req.operator_request_id))
    }

    fn refunds(&self) -> bool {
        true
    }

    /// `PUT reversal/` of the payment's transaction id, whole or in part.
    fn refund<'a>(
        &'a self,
        req: RefundRequest<'a>,
    ) -> BoxFuture<'a, Result<RefundAnswer, ConnectorError>> {
        Box::pin(async move {
            let receipt = req.receipt.ok_or_else(|| ConnectorError::Rejected {
                rail: RAIL,
                code: "no_receipt".into(),
                message: "the payment has no M-Pesa transaction id".into(),
            })?;
            self.inner.reverse(req.refund_id, receipt, req.amount).await
        })
    }

    fn answers_within_ms(&self) -> i64 {
        // The call's own time-out, after waiting for up to two sessions to go live.
        i64::try_from((PAY_TIMEOUT + 2 * SESSION_WARMUP).as_millis()).unwrap_or(i64::MAX)
    }

    fn parse_callback(&self, _body: &[u8]) -> Result<CallbackReport, BadCallback> {
        // Vodacom sends no callback for the single stage: its answer is the call's.
        Err(BadCallback)
    }

    fn success_marker(&self) -> Option<&'static str> {
        None
    }

    fn callback_ack(&self, accepted: bool, _body: &[u8]) -> (u16, String) {
        (if accepted { 200 } else { 400 }, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_to_the_openapis_characters() {
        assert_eq!(plain("BK-2031/ä safari!", 20), "BK2031 safari");
        assert_eq!(plain("x".repeat(30).as_str(), 20).len(), 20);
        let a = AttemptId::generate();
        let id = Vodacom::conversation_id(&a);
        assert!(id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }

    #[test]
    fn the_bearer_is_the_secret_encrypted_with_the_public_key() {
        let v = Vodacom::new("http://x".into(), &VodacomConfig::default()).unwrap();
        let a = v.inner.bearer("secret").unwrap();
        let b = v.inner.bearer("secret").unwrap();
        assert_ne!(a, b, "PKCS#1 v1.5 is randomised");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 256, "one 2048-bit block");
        let decrypted = crate::sandbox::operators::vodacom::open_bearer(&a);
        assert_eq!(decrypted.as_deref(), Some("secret"));
    }
}
