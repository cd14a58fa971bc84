//! MTN Mobile Money — the Collection API's request to pay (Uganda, Rwanda, Zambia).
//!
//! [`MtnMomo`] speaks MTN's wire format to whatever base URL it is given: Malipo's own
//! sandbox in test mode, `https://proxy.momoapi.mtn.com` (or a country's proxy) live.
//! Facts it is built on (RAILS.md §1): the token's `expires_in` is a number and is
//! refreshed 10 minutes early; the request's id is an `X-Reference-Id` UUID v4 *we*
//! choose, so we derive it from the attempt: a retried push reuses it and MTN's `409
//! RESOURCE_ALREADY_EXIST` means "already have it", not failure; `202` has an empty body;
//! the status GET always answers 200 and carries `reason` as a string or an object;
//! bodyless POSTs must send `Content-Length: 0` (MTN's gateway answers 411 otherwise);
//! the callback is unsigned, has no reference id (the per-attempt URL ties it), and
//! comes once or twice or never, so every attempt is polled too.

pub mod config;
pub mod wire;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::time::Duration;

use self::wire::{ErrorBody, Party, RequestToPay, RequestToPayResult, TokenResponse};
use crate::{
    connectors::{
        BadCallback, BoxFuture, CallbackReport, Capabilities, Connector, ConnectorError,
        FailureCode, InitiateRequest, Initiated, PaidFacts, Queried, QueryRequest, RailId,
        RailOutcome, RefundAnswer, RefundReport, RefundRequest,
        shared::{TokenCache, bad_response, http_client, unreachable},
    },
    domain::{AttemptId, Money, money::Currency, phone::Country},
};
pub use config::MtnConfig;

/// MTN: "refresh 10 min before expiry; never create a token per transaction".
const TOKEN_MARGIN: Duration = Duration::from_secs(600);

const RAIL: RailId = RailId::MtnMomo;

/// An MTN MoMo Collection client for one API user in one or more target environments
/// (one per currency: `mtnuganda` for UGX, `mtnrwanda` for RWF, …).
pub struct MtnMomo {
    base_url: String,
    /// The Collection product (requests to pay).
    collection: Product,
    /// Each `X-Target-Environment` with the currency it charges in.
    environments: Vec<(String, Currency)>,
    capabilities: Capabilities,
    http: reqwest::Client,
    /// The Disbursement product, for refunds; `None`: refunded by hand.
    disbursement: Option<Product>,
}

/// One of MTN's products (Collection, Disbursement): its path, its own subscription
/// key, API user and key, and its token.
struct Product {
    /// `collection`, `disbursement`: the first segment of its paths.
    path: &'static str,
    subscription_key: SecretString,
    api_user: String,
    api_key: SecretString,
    token: TokenCache,
}

/// The `X-Reference-Id` for an attempt: a UUID v4 (version and variant bits set) made
/// from a hash of the attempt id, so the same attempt always sends the same one.
pub fn reference_id(attempt: &AttemptId) -> String {
    uuid_for(&format!("malipo-mtn-reference:{attempt}"))
}

/// The `X-Reference-Id` of a refund: a UUIDv4 made from its id, the same on a resend.
pub fn refund_reference_id(refund: &str) -> String {
    uuid_for(&format!("malipo-mtn-refund:{refund}"))
}

fn uuid_for(seed: &str) -> String {
    let digest = Sha256::digest(seed);
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl MtnMomo {
    pub fn new(base_url: String, config: &MtnConfig) -> Result<MtnMomo, reqwest::Error> {
        // The configuration checked the environments; an unknown one takes nothing.
        let known: Vec<(String, Currency, Country)> = config
            .environments()
            .filter_map(|name| {
                config::environment(name)
                    .map(|(currency, country)| (name.to_owned(), currency, country))
            })
            .collect();
        let markets = known
            .iter()
            .map(|(_, cur, country)| (*cur, *country))
            .collect();
        Ok(MtnMomo {
            base_url: base_url.trim_end_matches('/').to_owned(),
            collection: Product {
                path: "collection",
                subscription_key: config.subscription_key.clone(),
                api_user: config.api_user.clone(),
                api_key: config.api_key.clone(),
                token: TokenCache::default(),
            },
            environments: known
                .into_iter()
                .map(|(name, cur, _)| (name, cur))
                .collect(),
            // MTN's amounts are whole units (UGX and RWF have no minor unit; for ZMW
            // and EUR decimals are not confirmed, so we never send them).
            capabilities: Capabilities {
                markets,
                whole_units: true,
                per_payment: Vec::new(),
            },
            http: http_client(Duration::from_secs(15))?,
            disbursement: (!config.disbursement_api_user.is_empty()).then(|| Product {
                path: "disbursement",
                subscription_key: config.disbursement_subscription_key.clone(),
                api_user: config.disbursement_api_user.clone(),
                api_key: if config.disbursement_api_key.expose_secret().is_empty() {
                    config.api_key.clone()
                } else {
                    config.disbursement_api_key.clone()
                },
                token: TokenCache::default(),
            }),
        })
    }

    /// A valid access token for `product`, from its cache or freshly fetched.
    async fn token(&self, product: &Product) -> Result<String, ConnectorError> {
        product
            .token
            .get(TOKEN_MARGIN, || async {
                let res = self
                    .http
                    .post(format!("{}/{}/token/", self.base_url, product.path))
                    .basic_auth(&product.api_user, Some(product.api_key.expose_secret()))
                    .header(
                        "Ocp-Apim-Subscription-Key",
                        product.subscription_key.expose_secret(),
                    )
                    // MTN's gateway refuses a bodyless POST without it (411).
                    .header(reqwest::header::CONTENT_LENGTH, "0")
                    .send()
                    .await
                    .map_err(unreachable(RAIL))?;
                let status = res.status().as_u16();
                let body = res.bytes().await.map_err(unreachable(RAIL))?;
                if status == 401 {
                    return Err(ConnectorError::Rejected {
                        rail: RAIL,
                        code: "401".into(),
                        message: format!(
                            "MTN refused the {} API user, key or subscription key",
                            product.path
                        ),
                    });
                }
                let token: TokenResponse = serde_json::from_slice(&body)
                    .map_err(|_| crate::connectors::shared::unreadable_token(RAIL, status))?;
                Ok((token.access_token, Duration::from_secs(token.expires_in)))
            })
            .await
    }

    /// The target environment that charges in `currency` (the first one configured,
    /// when none does: MTN then refuses the request, and says so).
    fn environment_for(&self, currency: Option<Currency>) -> &str {
        self.environments
            .iter()
            .find(|(_, c)| Some(*c) == currency)
            .or(self.environments.first())
            .map_or("", |(name, _)| name.as_str())
    }

    /// Sends `req` to `environment` through `product` with the headers every call
    /// carries, retrying once with a fresh token if MTN says the token is no longer
    /// valid (401).
    async fn send(
        &self,
        product: &Product,
        environment: &str,
        req: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, bytes::Bytes), ConnectorError> {
        for attempt in 0..2 {
            let token = self.token(product).await?;
            let res = req()
                .bearer_auth(&token)
                .header("X-Target-Environment", environment)
                .header(
                    "Ocp-Apim-Subscription-Key",
                    product.subscription_key.expose_secret(),
                )
                .send()
                .await
                .map_err(unreachable(RAIL))?;
            let status = res.status().as_u16();
            let bytes = res.bytes().await.map_err(unreachable(RAIL))?;
            if status == 401 && attempt == 0 {
                product.token.forget().await;
                continue;
            }
            return Ok((status, bytes));
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Sends the request to pay. `Ok` means MTN took it (202, or 409: it already has
    /// this reference id from an earlier try).
    pub async fn request_to_pay(
        &self,
        reference_id: &str,
        body: &RequestToPay,
        callback_url: &str,
    ) -> Result<(), ConnectorError> {
        let url = format!("{}/collection/v1_0/requesttopay", self.base_url);
        let environment = self.environment_for(Currency::parse(&body.currency));
        let (status, bytes) = self
            .send(&self.collection, environment, || {
                let req = self
                    .http
                    .post(&url)
                    .header("X-Reference-Id", reference_id)
                    .json(body);
                // Without it MTN sends no callback at all (the status GET still knows).
                if callback_url.is_empty() {
                    req
                } else {
                    req.header("X-Callback-Url", callback_url)
                }
            })
            .await?;
        match status {
            202 => Ok(()),
            _ => match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(err) if err.code == "RESOURCE_ALREADY_EXIST" => Ok(()),
                // MTN down (`SERVICE_UNAVAILABLE`; a bare 503 has no body we can read,
                // and is not a refusal either): whether the request was taken is unknown,
                // and our reference id can ask, so it is not a refusal. MTN answers its
                // refusals with a 500 too (`INVALID_CURRENCY`, `PAYER_NOT_FOUND`,
                // `INTERNAL_PROCESSING_ERROR` — mostly the payer's insufficient funds):
                // those are.
                Ok(err) if err.code == "SERVICE_UNAVAILABLE" => {
                    Err(bad_response(RAIL, status, &bytes))
                }
                Ok(err) => Err(ConnectorError::Rejected {
                    rail: RAIL,
                    code: err.code,
                    message: err.message.unwrap_or_default(),
                }),
                Err(_) => Err(bad_response(RAIL, status, &bytes)),
            },
        }
    }

    /// Refunds `req.amount` of a request to pay: taken (202, or 409 for a resend of the
    /// same reference id), then asked about at once — MTN decides a refund in moments,
    /// and reports it to the callback URL too.
    async fn refund_payment(
        &self,
        req: &RefundRequest<'_>,
    ) -> Result<RefundAnswer, ConnectorError> {
        let Some(d) = &self.disbursement else {
            return Err(ConnectorError::Rejected {
                rail: RAIL,
                code: "refund_not_supported".into(),
                message: "no Disbursement API user is configured".into(),
            });
        };
        let paid_by = req
            .operator_request_id
            .ok_or_else(|| ConnectorError::Rejected {
                rail: RAIL,
                code: "no_reference".into(),
                message: "the payment has no MTN reference id".into(),
            })?;
        let currency = req.amount.currency();
        let environment = self.environment_for(Some(currency)).to_owned();
        let reference = refund_reference_id(req.refund_id);
        let body = wire::Refund {
            amount: (req.amount.minor() / 10i64.pow(currency.exponent())).to_string(),
            currency: currency.code().to_owned(),
            external_id: req.refund_id.to_owned(),
            payer_message: "Refund".into(),
            payee_note: cut(req.refund_id, 160),
            reference_id_to_refund: paid_by.to_owned(),
        };
        let url = format!("{}/disbursement/v1_0/refund", self.base_url);
        let (status, bytes) = self
            .send(d, &environment, || {
                self.http
                    .post(&url)
                    .header("X-Reference-Id", &reference)
                    .header("X-Callback-Url", req.callback_url)
                    .json(&body)
            })
            .await?;
        if status != 202 {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(err) if err.code == "RESOURCE_ALREADY_EXIST" => {}
                Ok(err) if status < 500 => {
                    return Err(ConnectorError::Rejected {
                        rail: RAIL,
                        code: err.code,
                        message: err.message.unwrap_or_default(),
                    });
                }
                _ => return Err(bad_response(RAIL, status, &bytes)),
            }
        }
        // MTN took it: from here on nothing is a refusal. A status that cannot be read
        // leaves it taken (its callback, or the next send's 409 and status, says).
        let taken = RefundAnswer::Accepted {
            operator_refund_id: None,
        };
        let url = format!("{}/disbursement/v1_0/refund/{reference}", self.base_url);
        let Ok((status, bytes)) = self.send(d, &environment, || self.http.get(&url)).await else {
            return Ok(taken);
        };
        Ok(match status {
            200 => serde_json::from_slice::<wire::RefundResult>(&bytes)
                .map(|r| r.answer())
                .unwrap_or(taken),
            _ => taken,
        })
    }

    /// Asks MTN how a request to pay in `currency` stands.
    pub async fn status(
        &self,
        reference_id: &str,
        currency: Currency,
    ) -> Result<RailOutcome, ConnectorError> {
        self.status_report(reference_id, currency)
            .await
            .map(|q| q.outcome)
    }

    /// How a request to pay stands, with MTN's `financialTransactionId` once paid.
    async fn status_report(
        &self,
        reference_id: &str,
        currency: Currency,
    ) -> Result<Queried, ConnectorError> {
        let url = format!(
            "{}/collection/v1_0/requesttopay/{reference_id}",
            self.base_url
        );
        let environment = self.environment_for(Some(currency));
        let (status, bytes) = self
            .send(&self.collection, environment, || self.http.get(&url))
            .await?;
        match status {
            200 => serde_json::from_slice::<RequestToPayResult>(&bytes)
                .map(|r| Queried {
                    outcome: r.outcome(),
                    receipt: r.financial_transaction_id,
                })
                .map_err(|_| bad_response(RAIL, status, &bytes)),
            // Moments after a 202 it may not be visible yet: not a verdict.
            404 => Ok(RailOutcome::Pending.into()),
            _ => Err(bad_response(RAIL, status, &bytes)),
        }
    }
}

impl Connector for MtnMomo {
    fn rail(&self) -> RailId {
        RAIL
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn chosen_request_id(&self, req: &InitiateRequest<'_>) -> Option<String> {
        Some(reference_id(req.attempt_id))
    }

    /// A payer MTN does not know has no wallet there: the page suggests another.
    /// (`SERVICE_UNAVAILABLE`, MTN down, is not a refusal at all: see `request_to_pay`.
    /// `INTERNAL_PROCESSING_ERROR`, despite its name and its HTTP 500, is mostly the
    /// payer's insufficient funds, so it is not the operator's failing.)
    fn rejection_failure(&self, code: &str) -> Option<FailureCode> {
        (code == "PAYER_NOT_FOUND").then_some(FailureCode::NotRegistered)
    }

    fn initiate<'a>(
        &'a self,
        req: InitiateRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Initiated, ConnectorError>> {
        Box::pin(async move {
            let currency = req.amount.currency();
            // Whole units: the engine checked `capabilities().accepts` first.
            let units = req.amount.minor() / 10i64.pow(currency.exponent());
            let reference_id = reference_id(req.attempt_id);
            let body = RequestToPay {
                amount: units.to_string(),
                currency: currency.code().to_owned(),
                external_id: req.attempt_id.to_string(),
                payer: Party {
                    party_id_type: "MSISDN".into(),
                    party_id: req.payer.to_string(),
                },
                payer_message: cut(req.description, 160),
                payee_note: cut(req.reference, 160),
            };
            self.request_to_pay(&reference_id, &body, req.callback_url)
                .await?;
            Ok(Initiated {
                operator_request_id: reference_id,
                answer: None,
            })
        })
    }

    fn query<'a>(
        &'a self,
        req: QueryRequest<'a>,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Queried, ConnectorError>> {
        Box::pin(self.status_report(req.operator_request_id, req.amount.currency()))
    }

    fn refunds(&self) -> bool {
        self.disbursement.is_some()
    }

    /// A Disbursement refund of the request to pay, whole or in part.
    fn refund<'a>(
        &'a self,
        req: RefundRequest<'a>,
    ) -> BoxFuture<'a, Result<RefundAnswer, ConnectorError>> {
        Box::pin(async move { self.refund_payment(&req).await })
    }

    fn parse_refund_callback(&self, body: &[u8]) -> Result<RefundReport, BadCallback> {
        let r: wire::RefundResult = serde_json::from_slice(body).map_err(|_| BadCallback)?;
        let detail = match &r.reason {
            Some(reason) => format!("{} {}", r.status, reason.code()),
            None => r.status.clone(),
        };
        Ok(RefundReport {
            answer: r.answer(),
            detail,
        })
    }

    fn parse_callback(&self, body: &[u8]) -> Result<CallbackReport, BadCallback> {
        let cb: RequestToPayResult = serde_json::from_slice(body).map_err(|_| BadCallback)?;
        let currency = cb
            .currency
            .as_deref()
            .and_then(crate::domain::money::Currency::parse);
        let amount = match (cb.amount.as_deref(), currency) {
            (Some(units), Some(currency)) => units
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|u| u.checked_mul(10i64.pow(currency.exponent())))
                .and_then(|minor| Money::new(minor, currency).ok()),
            _ => None,
        };
        Ok(CallbackReport {
            // MTN's callback names no reference id: the attempt's own URL (and its
            // token) ties it; `externalId` is ours and is not trusted for that.
            operator_request_id: None,
            outcome: cb.outcome(),
            detail: cb.detail(),
            paid: PaidFacts {
                amount,
                payer: cb
                    .payer
                    .as_ref()
                    .filter(|p| p.party_id_type == "MSISDN")
                    .map(|p| p.party_id.trim_start_matches('+').to_owned()),
                receipt: cb.financial_transaction_id,
            },
        })
    }

    fn success_marker(&self) -> Option<&'static str> {
        Some("SUCCESSFUL")
    }

    fn callback_ack(&self, accepted: bool, _body: &[u8]) -> (u16, String) {
        // MTN reads only the status and never retries.
        (if accepted { 200 } else { 400 }, String::new())
    }
}

/// At most `max` characters.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_id_is_a_stable_uuid_v4_per_attempt() {
        let a = AttemptId::from_db("pa_abc".into());
        let id = reference_id(&a);
        assert_eq!(id, reference_id(&a), "a retry sends the same id");
        assert_ne!(id, reference_id(&AttemptId::from_db("pa_abd".into())));
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
            "RFC 4122 variant: {id}"
        );
    }

    #[test]
    fn the_environment_decides_the_currency() {
        let m = |env: &str| {
            MtnMomo::new(
                "http://x".into(),
                &MtnConfig {
                    target_environment: env.into(),
                    ..MtnConfig::default()
                },
            )
            .unwrap()
        };
        let ugx = Money::new(50_000, crate::domain::money::Currency::Ugx).unwrap();
        assert!(m("mtnuganda").capabilities().accepts(ugx));
        assert!(!m("mtnrwanda").capabilities().accepts(ugx));
        assert!(!m("bogus").capabilities().accepts(ugx));
        let eur = Money::new(500, crate::domain::money::Currency::Eur).unwrap();
        assert!(m("sandbox").capabilities().accepts(eur));
        let both = m("mtnuganda, mtnrwanda");
        let rwf = Money::new(50_000, crate::domain::money::Currency::Rwf).unwrap();
        assert!(both.capabilities().accepts(ugx) && both.capabilities().accepts(rwf));
        assert_eq!(
            both.environment_for(Some(crate::domain::money::Currency::Rwf)),
            "mtnrwanda"
        );
        assert_eq!(
            both.environment_for(Some(crate::domain::money::Currency::Ugx)),
            "mtnuganda"
        );
        let cents = Money::new(550, crate::domain::money::Currency::Eur).unwrap();
        assert!(!m("sandbox").capabilities().accepts(cents), "whole units");
    }

    #[test]
    fn a_callback_reads_amount_payer_and_transaction_id() {
        let m = MtnMomo::new("http://x".into(), &MtnConfig::default()).unwrap();
        let r = m
            .parse_callback(
                br#"{"financialTransactionId":"600198217","externalId":"pa_1","amount":"50000","currency":"UGX",
                     "payer":{"partyIdType":"MSISDN","partyId":"256772123456"},"status":"SUCCESSFUL"}"#,
            )
            .unwrap();
        assert_eq!(r.outcome, RailOutcome::Succeeded);
        assert_eq!(r.operator_request_id, None);
        assert_eq!(
            r.paid,
            PaidFacts {
                amount: Some(Money::new(50_000, crate::domain::money::Currency::Ugx).unwrap()),
                payer: Some("256772123456".into()),
                receipt: Some("600198217".into()),
            }
        );
        assert!(m.parse_callback(b"<html>").is_err());
    }
}
