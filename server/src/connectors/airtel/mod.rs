//! Airtel Money — the Open API's collection ("USSD push"), Kenya, Uganda, Tanzania,
//! Rwanda and Zambia with one app.
//!
//! Facts it is built on (RAILS.md §2): a JSON client-credentials token whose
//! `expires_in` is a string ("180"); `X-Country`/`X-Currency` on every call and the
//! subscriber's number **without** its country code; `DP00800001006` on the payment
//! request means "in process", never paid; the enquiry's `data.transaction.status`
//! (TS/TF/TA/TIP/TE) is the verdict. Airtel posts callbacks to one URL configured on its
//! portal (`/callbacks/airtel`), optionally with a `hash` (Base64 HMAC-SHA256 with the
//! app's key), which is checked; a callback is never believed on its own: it only makes
//! the engine ask Airtel at once.

pub mod config;
pub mod wire;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;

use self::wire::{Answer, Callback, PaymentRequest, PaymentTransaction, Subscriber};
use crate::{
    connectors::{
        BadCallback, BoxFuture, CallbackReport, Capabilities, Connector, ConnectorError,
        InitiateRequest, Initiated, PaidFacts, Queried, QueryRequest, RailId, RefundAnswer,
        RefundRequest,
        shared::{TokenCache, bad_response, http_client, unreachable},
    },
    domain::money::Currency,
};
pub use config::AirtelConfig;

const RAIL: RailId = RailId::Airtel;

/// Airtel's tokens live 3 minutes: refresh 30 s early.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// An Airtel Money client for one app.
pub struct Airtel {
    base_url: String,
    client_id: String,
    client_secret: SecretString,
    callback_key: SecretString,
    /// (currency, Airtel's country code) for each country the app serves.
    countries: Vec<(Currency, &'static str)>,
    capabilities: Capabilities,
    http: reqwest::Client,
    token: TokenCache,
}

/// The raw bytes of the top-level `"transaction": {…}` member's object, as sent.
fn transaction_member(body: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(body).ok()?;
    let key = text.find("\"transaction\"")?;
    let after = &text[key + "\"transaction\"".len()..];
    let colon = after.find(':')?;
    let rest = after[colon + 1..].trim_start();
    let start = text.len() - rest.len();
    if !rest.starts_with('{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in rest.bytes().enumerate() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(&body[start..start + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The `hash` Airtel adds to a callback: Base64 HMAC-SHA256 of `payload` with the app's
/// key.
pub fn callback_hash(key: &str, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(payload);
    B64.encode(mac.finalize().into_bytes())
}

impl Airtel {
    pub fn new(base_url: String, config: &AirtelConfig) -> Result<Airtel, reqwest::Error> {
        let markets = config.markets();
        Ok(Airtel {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            callback_key: config.callback_key.clone(),
            countries: markets.iter().map(|(c, _, code)| (*c, *code)).collect(),
            // Whole units: decimals are not confirmed for any of Airtel's markets.
            capabilities: Capabilities {
                markets: markets
                    .iter()
                    .map(|(c, country, _)| (*c, *country))
                    .collect(),
                whole_units: true,
                per_payment: Vec::new(),
            },
            http: http_client(Duration::from_secs(15))?,
            token: TokenCache::default(),
        })
    }

    /// Airtel's country code for `currency`, if the app serves it.
    fn country_code(&self, currency: Currency) -> Option<&'static str> {
        self.countries
            .iter()
            .find(|(c, _)| *c == currency)
            .map(|(_, code)| *code)
    }

    async fn token(&self) -> Result<String, ConnectorError> {
        self.token
            .get(TOKEN_MARGIN, || async {
                let res = self
                    .http
                    .post(format!("{}/auth/oauth2/token", self.base_url))
                    .json(&wire::TokenRequest {
                        client_id: self.client_id.clone(),
                        client_secret: self.client_secret.expose_secret().to_owned(),
                        grant_type: "client_credentials".into(),
                    })
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

    /// Sends `req` with the bearer token and the country headers, retrying once with a
    /// fresh token on 401.
    async fn send(
        &self,
        currency: Currency,
        country: &str,
        req: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, bytes::Bytes), ConnectorError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let res = req()
                .bearer_auth(&token)
                .header("X-Country", country)
                .header("X-Currency", currency.code())
                .header(reqwest::header::ACCEPT, "*/*")
                .send()
                .await
                .map_err(unreachable(RAIL))?;
            let status = res.status().as_u16();
            let bytes = res.bytes().await.map_err(unreachable(RAIL))?;
            if status == 401 && attempt == 0 {
                self.token.forget().await;
                continue;
            }
            return Ok((status, bytes));
        }
        unreachable!("the loop returns on its second pass")
    }

    fn refused(currency: Currency) -> ConnectorError {
        ConnectorError::Rejected {
            rail: RAIL,
            code: "currency".into(),
            message: format!("this Airtel app does not serve {}", currency.code()),
        }
    }

    /// [`Connector::portal_callback`]'s answer for `body`.
    fn portal_body(&self, _key: Option<&str>, body: &[u8]) -> Option<Result<String, BadCallback>> {
        Some((|| {
            let cb: Callback = serde_json::from_slice(body).map_err(|_| BadCallback)?;
            let key = self.callback_key.expose_secret();
            if !key.is_empty() {
                // What exactly Airtel hashes is documented two ways: the `transaction`
                // object as sent, or the `{"transaction":…}` wrapper. Either matches.
                let hash = cb.hash.as_deref().ok_or(BadCallback)?;
                let member = transaction_member(body).ok_or(BadCallback)?;
                let wrapped = [b"{\"transaction\":".as_slice(), member, b"}"].concat();
                let matches = |payload: &[u8]| {
                    crate::connectors::shared::same(&callback_hash(key, payload), hash)
                };
                if !matches(member) && !matches(&wrapped) {
                    return Err(BadCallback);
                }
            }
            Ok(cb.transaction.id)
        })())
    }
}

impl Connector for Airtel {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn portal_request_id(&self, body: &[u8]) -> Option<String> {
        serde_json::from_slice::<Callback>(body)
            .ok()
            .map(|cb| cb.transaction.id)
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn chosen_request_id(&self, req: &InitiateRequest<'_>) -> Option<String> {
        // `transaction.id` is ours: the attempt's id.
        Some(req.attempt_id.to_string())
    }

    fn initiate<'a>(
        &'a self,
        req: InitiateRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>> {
        Box::pin(async move {
            let currency = req.amount.currency();
            let country = self
                .country_code(currency)
                .ok_or_else(|| Airtel::refused(currency))?;
            let calling = self
                .capabilities
                .country(currency)
                .map_or("", |c| c.calling_code());
            let body = PaymentRequest {
                reference: req.reference.chars().take(64).collect(),
                subscriber: Subscriber {
                    country: country.into(),
                    currency: currency.code().into(),
                    // "Do not send country code in msisdn".
                    msisdn: req
                        .payer
                        .as_str()
                        .strip_prefix(calling)
                        .unwrap_or(req.payer.as_str())
                        .to_owned(),
                },
                transaction: PaymentTransaction {
                    amount: req.amount.minor() / 10i64.pow(currency.exponent()),
                    country: country.into(),
                    currency: currency.code().into(),
                    id: req.attempt_id.to_string(),
                },
            };
            let url = format!("{}/merchant/v1/payments/", self.base_url);
            let (status, bytes) = self
                .send(currency, country, || self.http.post(&url).json(&body))
                .await?;
            let answer: Answer =
                serde_json::from_slice(&bytes).map_err(|_| bad_response(RAIL, status, &bytes))?;
            let gateway = answer.status.result_code.as_deref().unwrap_or("");
            // ESB000041: "External Transaction ID already exists" — a retry of ours.
            if answer.status.success || gateway == "ESB000041" {
                return Ok(Initiated {
                    operator_request_id: req.attempt_id.to_string(),
                    answer: None,
                });
            }
            // Airtel failing inside (500 "Something Went Wrong", ESB000001/ESB000004):
            // whether the prompt went out is unknown, so it is not a refusal: the attempt
            // stays pending and is asked about by our own id, and the push circuit
            // counts it.
            if status >= 500 {
                return Err(bad_response(RAIL, status, &bytes));
            }
            Err(ConnectorError::Rejected {
                rail: RAIL,
                code: answer
                    .status
                    .response_code
                    .unwrap_or_else(|| gateway.to_owned()),
                message: answer.status.message,
            })
        })
    }

    fn refunds(&self) -> bool {
        true
    }

    /// Airtel's refund has no amount: the whole payment, once.
    fn partial_refunds(&self) -> bool {
        false
    }

    /// `POST /standard/v1/payments/refund` with Airtel's id for the payment; answered at
    /// once. Sent again after a lost answer, Airtel refuses a refunded payment, and that
    /// refund stays pending for a person (the engine never fails a resent refund).
    fn refund<'a>(
        &'a self,
        req: RefundRequest<'a>,
    ) -> BoxFuture<'a, Result<RefundAnswer, ConnectorError>> {
        Box::pin(async move {
            let currency = req.amount.currency();
            let country = self
                .country_code(currency)
                .ok_or_else(|| Airtel::refused(currency))?;
            let receipt = req.receipt.ok_or_else(|| ConnectorError::Rejected {
                rail: RAIL,
                code: "no_receipt".into(),
                message: "the payment has no Airtel Money id".into(),
            })?;
            let body = wire::RefundRequest {
                transaction: wire::RefundTransaction {
                    airtel_money_id: receipt.to_owned(),
                },
            };
            let url = format!("{}/standard/v1/payments/refund", self.base_url);
            let (status, bytes) = self
                .send(currency, country, || self.http.post(&url).json(&body))
                .await?;
            let answer: wire::RefundAnswer =
                serde_json::from_slice(&bytes).map_err(|_| bad_response(RAIL, status, &bytes))?;
            let code = answer
                .status
                .response_code
                .clone()
                .or(answer.status.result_code.clone())
                .unwrap_or(answer.status.code.clone());
            // Only a definite answer decides: made (SUCCESS/TS), or refused (FAILED/TF,
            // or the request itself refused with a 4xx). Anything else — in process,
            // ambiguous, Airtel failing inside — leaves it unknown: sent again.
            match answer.data.as_ref().map(|d| d.transaction.status.as_str()) {
                Some("SUCCESS" | "SUCCESSFUL" | "TS") if answer.status.success => {
                    Ok(RefundAnswer::Done {
                        operator_refund_id: answer.data.and_then(|d| d.transaction.airtel_money_id),
                    })
                }
                Some("FAILED" | "TF") if status < 500 => Ok(RefundAnswer::Refused { code }),
                None if (400..500).contains(&status) && !answer.status.success => {
                    Ok(RefundAnswer::Refused { code })
                }
                _ => Err(bad_response(RAIL, status, &bytes)),
            }
        })
    }

    fn query<'a>(
        &'a self,
        req: QueryRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>> {
        Box::pin(async move {
            let currency = req.amount.currency();
            let country = self
                .country_code(currency)
                .ok_or_else(|| Airtel::refused(currency))?;
            let url = format!(
                "{}/standard/v1/payments/{}",
                self.base_url, req.operator_request_id
            );
            let (status, bytes) = self.send(currency, country, || self.http.get(&url)).await?;
            let answer: Answer =
                serde_json::from_slice(&bytes).map_err(|_| bad_response(RAIL, status, &bytes))?;
            Ok(Queried {
                outcome: answer.outcome(),
                receipt: answer.data.and_then(|d| d.transaction.airtel_money_id),
            })
        })
    }

    fn parse_callback(&self, body: &[u8]) -> Result<CallbackReport, BadCallback> {
        let cb: Callback = serde_json::from_slice(body).map_err(|_| BadCallback)?;
        Ok(CallbackReport {
            operator_request_id: Some(cb.transaction.id),
            outcome: wire::outcome(&cb.transaction.status_code, ""),
            detail: format!("{} {}", cb.transaction.status_code, cb.transaction.message),
            // No amount and no payer: never enough to settle on; the enquiry decides.
            paid: PaidFacts {
                amount: None,
                payer: None,
                receipt: cb.transaction.airtel_money_id,
            },
        })
    }

    fn portal_callback<'a>(
        &'a self,
        _key: Option<&'a str>,
        _headers: &'a axum::http::HeaderMap,
        body: &'a [u8],
    ) -> BoxFuture<'a, Option<Result<String, BadCallback>>> {
        Box::pin(std::future::ready(self.portal_body(_key, body)))
    }

    fn rejection_failure(&self, code: &str) -> Option<crate::connectors::FailureCode> {
        (code == "DP00800001005").then_some(crate::connectors::FailureCode::NotRegistered)
    }

    fn success_marker(&self) -> Option<&'static str> {
        // Airtel's callbacks are never applied, only a cue to ask: nothing to re-drive.
        None
    }

    fn callback_ack(&self, accepted: bool, _body: &[u8]) -> (u16, String) {
        (if accepted { 200 } else { 401 }, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_member_is_found_as_sent() {
        let body = br#"{ "transaction" : {"id":"a}b","message":"x \"{\" y","status_code":"TS"}, "hash":"h"}"#;
        assert_eq!(
            transaction_member(body).unwrap(),
            br#"{"id":"a}b","message":"x \"{\" y","status_code":"TS"}"#
        );
        assert!(transaction_member(b"{\"transaction\": 5}").is_none());
        assert!(transaction_member(b"{\"transaction\": {").is_none());
    }

    #[test]
    fn callbacks_with_a_wrong_or_missing_hash_are_refused() {
        let airtel = Airtel::new("http://x".into(), &AirtelConfig::default()).unwrap();
        let tx = br#"{"id":"pa_1","message":"ok","status_code":"TS","airtel_money_id":"MP1"}"#;
        let good = callback_hash(config::SANDBOX_CALLBACK_KEY, tx);
        let body = |hash: &str| {
            format!(
                r#"{{"transaction":{},"hash":"{hash}"}}"#,
                std::str::from_utf8(tx).unwrap()
            )
        };
        assert_eq!(
            airtel
                .portal_body(None, body(&good).as_bytes())
                .unwrap()
                .unwrap(),
            "pa_1"
        );
        let wrapped = callback_hash(
            config::SANDBOX_CALLBACK_KEY,
            format!(r#"{{"transaction":{}}}"#, std::str::from_utf8(tx).unwrap()).as_bytes(),
        );
        assert!(
            airtel
                .portal_body(None, body(&wrapped).as_bytes())
                .unwrap()
                .is_ok()
        );
        assert!(
            airtel
                .portal_body(None, body("AAAA").as_bytes())
                .unwrap()
                .is_err()
        );
        let unsigned = format!(r#"{{"transaction":{}}}"#, std::str::from_utf8(tx).unwrap());
        assert!(
            airtel
                .portal_body(None, unsigned.as_bytes())
                .unwrap()
                .is_err()
        );
        // Without a key configured, unsigned callbacks are read (and still only cue an
        // enquiry).
        let open = Airtel::new(
            "http://x".into(),
            &AirtelConfig {
                callback_key: SecretString::from(""),
                ..AirtelConfig::default()
            },
        )
        .unwrap();
        assert!(open.portal_body(None, unsigned.as_bytes()).unwrap().is_ok());
    }

    #[test]
    fn one_app_serves_its_countries() {
        let airtel = Airtel::new(
            "http://x".into(),
            &AirtelConfig {
                countries: "KE, UG".into(),
                ..AirtelConfig::default()
            },
        )
        .unwrap();
        let caps = airtel.capabilities();
        assert_eq!(
            caps.country(Currency::Kes),
            Some(crate::domain::phone::Country::Kenya)
        );
        assert_eq!(
            caps.country(Currency::Ugx),
            Some(crate::domain::phone::Country::Uganda)
        );
        assert_eq!(caps.country(Currency::Tzs), None);
    }
}
