//! Mixx by Yas (formerly Tigo Pesa), Tanzania — push bill-pay.
//!
//! Facts it is built on (RAILS.md §4; third-party clients only): a password-grant token
//! from a merchant-specific URL; the push carries `Username`/`Password` headers beside
//! the bearer token and is acknowledged synchronously with `BILLER-18-0000-S`; the
//! outcome comes only by a callback to the one URL the merchant gave Tigo
//! (`/callbacks/tigo`), unsigned, which must be answered `BILLER-30-0000-S`. There is
//! **no status query**. So:
//!
//! - the `ReferenceID` is the biller code and an HMAC of the attempt's id (keyed with
//!   the merchant's password): unguessable, it is what authenticates a callback, and it
//!   is the same on a retry;
//! - a callback is believed when its `ReferenceID` names an open attempt and its amount
//!   is the attempt's (it names no payer);
//! - when no callback comes, the attempt becomes `unknown`: the shopper reads that we
//!   could not confirm the payment (and not to pay again if Tigo's SMS came), and the
//!   merchant gets `payment.unknown` for reconciliation. A late callback still settles it.

pub mod config;
pub mod wire;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;

use self::wire::{Callback, PushRequest, Response};
use crate::{
    connectors::{
        BadCallback, BoxFuture, CallbackReport, Capabilities, Connector, ConnectorError,
        InitiateRequest, Initiated, PaidFacts, Queried, QueryRequest, RailId, RailOutcome,
        shared::{TokenCache, bad_response, http_client, unreachable},
    },
    domain::{AttemptId, Money, money::Currency, phone::Country},
};
pub use config::TigoConfig;

const RAIL: RailId = RailId::Tigo;

const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// A Mixx by Yas push bill-pay client for one biller.
pub struct Tigo {
    token_url: String,
    push_url: String,
    username: String,
    password: SecretString,
    biller_msisdn: String,
    biller_code: String,
    callback_key: String,
    capabilities: Capabilities,
    http: reqwest::Client,
    token: TokenCache,
}

impl Tigo {
    pub fn new(base_url: String, config: &TigoConfig) -> Result<Tigo, reqwest::Error> {
        let base = base_url.trim_end_matches('/');
        Ok(Tigo {
            token_url: format!("{base}{}", config.token_path),
            push_url: format!("{base}{}", config.push_path),
            username: config.username.clone(),
            password: config.password.clone(),
            biller_msisdn: config.biller_msisdn.clone(),
            biller_code: config.biller_code.clone(),
            callback_key: config.callback_key(),
            // Whole Tanzanian shillings from Tanzanian numbers.
            capabilities: Capabilities {
                markets: vec![(Currency::Tzs, Country::Tanzania)],
                whole_units: true,
                per_payment: Vec::new(),
            },
            http: http_client(Duration::from_secs(15))?,
            token: TokenCache::default(),
        })
    }

    /// The `ReferenceID` for an attempt: the biller code, then 24 hex digits of an HMAC
    /// of the attempt's id keyed with the password (unguessable; the same on a retry).
    pub fn reference_id(&self, attempt: &AttemptId) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.password.expose_secret().as_bytes())
            .expect("HMAC takes any key");
        mac.update(attempt.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{}{}", self.biller_code, hex::encode(&digest[..12]))
    }

    async fn token(&self) -> Result<String, ConnectorError> {
        self.token
            .get(TOKEN_MARGIN, || async {
                let res = self
                    .http
                    .post(&self.token_url)
                    .form(&[
                        ("username", self.username.as_str()),
                        ("password", self.password.expose_secret()),
                        ("grant_type", "password"),
                    ])
                    .send()
                    .await
                    .map_err(unreachable(RAIL))?;
                let status = res.status().as_u16();
                let body = res.bytes().await.map_err(unreachable(RAIL))?;
                let token: wire::TokenResponse = serde_json::from_slice(&body)
                    .map_err(|_| crate::connectors::shared::unreadable_token(RAIL, status))?;
                Ok((token.access_token, Duration::from_secs(token.expires_in)))
            })
            .await
    }

    /// [`Connector::portal_callback`]'s answer for `body`.
    fn portal_body(&self, key: Option<&str>, body: &[u8]) -> Option<Result<String, BadCallback>> {
        // Unsigned: the URL's secret key authenticates it (the ReferenceID may be seen
        // by the payer, so it is no secret).
        if !key.is_some_and(|k| crate::connectors::shared::same(k, &self.callback_key)) {
            return Some(Err(BadCallback));
        }
        Some(
            serde_json::from_slice::<Callback>(body)
                .map(|cb| cb.reference_id)
                .map_err(|_| BadCallback),
        )
    }
}

impl Connector for Tigo {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn portal_request_id(&self, body: &[u8]) -> Option<String> {
        serde_json::from_slice::<Callback>(body)
            .ok()
            .map(|cb| cb.reference_id)
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn chosen_request_id(&self, req: &InitiateRequest<'_>) -> Option<String> {
        Some(self.reference_id(req.attempt_id))
    }

    fn initiate<'a>(
        &'a self,
        req: InitiateRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>> {
        Box::pin(async move {
            let reference_id = self.reference_id(req.attempt_id);
            let body = PushRequest {
                customer_msisdn: req.payer.to_string(),
                biller_msisdn: self.biller_msisdn.clone(),
                amount: req.amount.minor() / 10i64.pow(req.amount.currency().exponent()),
                remarks: req
                    .description
                    .chars()
                    .chain(" ".chars())
                    .chain(req.reference.chars())
                    .take(100)
                    .collect(),
                reference_id: reference_id.clone(),
            };
            for attempt in 0..2 {
                let token = self.token().await?;
                let res = self
                    .http
                    .post(&self.push_url)
                    .bearer_auth(&token)
                    .header("Username", &self.username)
                    .header("Password", self.password.expose_secret())
                    .json(&body)
                    .send()
                    .await
                    .map_err(unreachable(RAIL))?;
                let status = res.status().as_u16();
                let bytes = res.bytes().await.map_err(unreachable(RAIL))?;
                if status == 401 && attempt == 0 {
                    self.token.forget().await;
                    continue;
                }
                let answer: Response = serde_json::from_slice(&bytes)
                    .map_err(|_| bad_response(RAIL, status, &bytes))?;
                if answer.response_status && answer.response_code == wire::PUSH_ACCEPTED {
                    return Ok(Initiated {
                        operator_request_id: reference_id,
                        answer: None,
                    });
                }
                return Err(ConnectorError::Rejected {
                    rail: RAIL,
                    code: answer.response_code,
                    message: answer.response_description,
                });
            }
            unreachable!("the loop returns on its second pass")
        })
    }

    fn has_status_query(&self) -> bool {
        false
    }

    fn query<'a>(
        &'a self,
        _req: QueryRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>> {
        // Tigo has no status query: only its callback can tell. The engine's schedule
        // still runs, so an attempt whose callback never comes becomes `unknown`.
        Box::pin(async { Ok(RailOutcome::Pending.into()) })
    }

    fn parse_callback(&self, body: &[u8]) -> Result<CallbackReport, BadCallback> {
        let cb: Callback = serde_json::from_slice(body).map_err(|_| BadCallback)?;
        Ok(CallbackReport {
            operator_request_id: Some(cb.reference_id.clone()),
            outcome: cb.outcome(),
            detail: format!(
                "{} {}",
                if cb.status {
                    "Status true"
                } else {
                    "Status false"
                },
                cb.description
            ),
            paid: PaidFacts {
                amount: cb
                    .amount
                    .and_then(|shillings| shillings.checked_mul(100))
                    .and_then(|minor| Money::new(minor, Currency::Tzs).ok()),
                payer: None,
                receipt: cb.mfs_transaction_id,
            },
        })
    }

    fn portal_callback<'a>(
        &'a self,
        key: Option<&'a str>,
        _headers: &'a axum::http::HeaderMap,
        body: &'a [u8],
    ) -> BoxFuture<'a, Option<Result<String, BadCallback>>> {
        Box::pin(std::future::ready(self.portal_body(key, body)))
    }

    fn rejection_failure(&self, code: &str) -> Option<crate::connectors::FailureCode> {
        (code == "DebitMandate-10-2005-E").then_some(crate::connectors::FailureCode::NotRegistered)
    }

    fn success_marker(&self) -> Option<&'static str> {
        // In every success, however spaced.
        Some("MFSTransactionID")
    }

    fn callback_ack(&self, accepted: bool, body: &[u8]) -> (u16, String) {
        let reference_id = serde_json::from_slice::<Callback>(body)
            .map(|cb| cb.reference_id)
            .unwrap_or_default();
        let answer = Response {
            response_code: if accepted {
                wire::CALLBACK_TAKEN
            } else {
                wire::CALLBACK_REFUSED
            }
            .into(),
            response_status: accepted,
            response_description: if accepted {
                "Callback successful"
            } else {
                "Callback failed"
            }
            .into(),
            reference_id,
        };
        (
            if accepted { 200 } else { 400 },
            serde_json::to_string(&answer).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_ids_are_the_biller_code_and_an_unguessable_stable_part() {
        let t = Tigo::new("http://x".into(), &TigoConfig::default()).unwrap();
        let a = AttemptId::generate();
        let id = t.reference_id(&a);
        assert!(id.starts_with("MLP") && id.len() == 27, "{id}");
        assert_eq!(id, t.reference_id(&a), "the same on a retry");
        let other = Tigo::new(
            "http://x".into(),
            &TigoConfig {
                password: SecretString::from("another"),
                ..TigoConfig::default()
            },
        )
        .unwrap();
        assert_ne!(id, other.reference_id(&a), "keyed with the password");
    }

    #[test]
    fn the_callback_is_answered_in_tigos_words() {
        let t = Tigo::new("http://x".into(), &TigoConfig::default()).unwrap();
        let body = br#"{"Status":true,"Description":"ok","MFSTransactionID":"7A1","ReferenceID":"MLPx","Amount":"5000"}"#;
        let (status, ack) = t.callback_ack(true, body);
        assert_eq!(status, 200);
        let ack: serde_json::Value = serde_json::from_str(&ack).unwrap();
        assert_eq!(ack["ResponseCode"], "BILLER-30-0000-S");
        assert_eq!(ack["ReferenceID"], "MLPx");
        let r = t.parse_callback(body).unwrap();
        assert_eq!(
            r.paid.amount,
            Some(Money::new(500_000, Currency::Tzs).unwrap())
        );
        assert_eq!(r.paid.payer, None, "Tigo's callback names no payer");
    }
}
