//! Refunds: money of a payment that succeeded returned to its payer, whole or in part,
//! on the rail it was paid with. The refund is opened (pending) under the payment's lock
//! — so refunds never add up to more than was paid, however many requests race — and
//! only then sent, with its own id as the operator's idempotency key. An answer that is
//! lost leaves it pending; it is sent again (the same refund) until the operator says.

use std::sync::Arc;

use super::{CallbackError, Payments};
use crate::{
    connectors::{Connector, ConnectorError, RailId, RefundAnswer, RefundRequest},
    domain::{AttemptId, MerchantId, Mode, ids::RefundId, keys::hash_token, money::Currency},
    store::{AttemptRecord, OpenedRefund, RefundRecord, RefundStatus, StoreError},
    time::now_ms,
};

/// Pending refunds are sent again after this long without an answer: longer than any
/// one send can take (a token and a call, each retried once), so a refund is never
/// sent twice at once.
const REFUND_RETRY_MS: i64 = 5 * 60_000;
/// Refunds are sent again for a day; one still pending after that is for a person to
/// check at the operator (it stays `pending`, and is logged).
const REFUND_RETRY_FOR_MS: i64 = 24 * 3600 * 1000;

/// The purpose a refund's callback token is derived for.
const REFUND_CALLBACK: &str = "refund-callback";

/// Why a refund was not made.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no such payment")]
    NotFound,
    #[error("the payment did not succeed")]
    NotPaid,
    /// A part of a session still being paid: refunding it would leave the session
    /// short of what it counts as received. Refundable once the session is paid or
    /// expired.
    #[error("a part of a session still being paid")]
    PartOfOpenSession,
    #[error("more than is left to refund ({available} minor units)")]
    Exceeds { available: i64, currency: Currency },
    #[error("the rail has no refund")]
    NotSupported(&'static str),
    /// The rail moves whole units of the currency only (Daraja, MTN, Vodacom, Airtel).
    #[error("this rail refunds whole units of {0} only")]
    WholeUnits(Currency),
    /// The rail returns a payment whole, once (Airtel's refund, Daraja's reversal).
    #[error("this rail refunds only the whole payment ({0} minor units)")]
    PartialNotSupported(i64, Currency),
    #[error("the payment was charged in {0}")]
    Currency(Currency),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Payments {
    /// Refunds `amount` (all that is left: `None`) of payment `payment` (`pa_…`), which
    /// must be `merchant`'s in `mode`; `currency`, when given, must be the one the payment
    /// was charged in. The refund as it stands after the operator's answer: `succeeded`,
    /// `failed`, or `pending` (confirmed later, or sent again). With an idempotency key
    /// seen before for this payment: that refund, never a second one. Once opened, the
    /// refund is sent to the end even if the caller goes away, and only its state is
    /// answered (never an error).
    pub async fn refund_payment(
        &self,
        merchant: &MerchantId,
        mode: Mode,
        request: RefundAsk<'_>,
    ) -> Result<RefundRecord, RefundError> {
        let id = AttemptId::parse(request.payment).ok_or(RefundError::NotFound)?;
        let attempt = self
            .store
            .attempt(&id)
            .await?
            .ok_or(RefundError::NotFound)?;
        let session = self
            .store
            .session(&attempt.session_id)
            .await?
            .ok_or(RefundError::NotFound)?;
        if session.merchant_id != *merchant || session.mode != mode {
            return Err(RefundError::NotFound);
        }
        if attempt
            .credit_minor
            .is_some_and(|c| c < session.amount.minor())
            && session.payment_status == crate::store::PaymentStatus::Unpaid
            && session.status == crate::store::SessionStatus::Open
        {
            return Err(RefundError::PartOfOpenSession);
        }
        if request
            .currency
            .is_some_and(|c| c != attempt.amount.currency())
        {
            return Err(RefundError::Currency(attempt.amount.currency()));
        }
        let connector = self
            .connector(merchant, attempt.rail, mode)
            .filter(|c| c.refunds())
            .ok_or(RefundError::NotSupported(attempt.rail.label()))?;
        if !connector.partial_refunds()
            && request.amount.is_some_and(|a| a != attempt.amount.minor())
        {
            return Err(RefundError::PartialNotSupported(
                attempt.amount.minor(),
                attempt.amount.currency(),
            ));
        }
        let unit = 10i64.pow(attempt.amount.currency().exponent());
        if connector.capabilities().whole_units && request.amount.is_some_and(|a| a % unit != 0) {
            return Err(RefundError::WholeUnits(attempt.amount.currency()));
        }
        let refund = match self
            .store
            .open_refund(
                &id,
                request.amount,
                request.reason,
                request.idempotency_key,
                now_ms(),
            )
            .await?
        {
            OpenedRefund::Opened(refund) => refund,
            OpenedRefund::Existing(refund) => return Ok(refund),
            OpenedRefund::NotPaid => return Err(RefundError::NotPaid),
            OpenedRefund::Exceeds {
                available,
                currency,
            } => {
                return Err(RefundError::Exceeds {
                    available,
                    currency,
                });
            }
        };
        tracing::info!(refund = %refund.id, payment = %id, amount = %refund.amount, "refund");
        // Its own task: a caller that goes away does not stop a refund half-sent.
        let payments = self.clone();
        let opened = refund.clone();
        let sent = tokio::spawn(async move {
            payments
                .send_refund(&connector, &attempt, opened, mode, true)
                .await
        })
        .await;
        Ok(sent.unwrap_or(refund))
    }

    /// Sends a pending refund to the operator and records its answer; the refund as it
    /// stands after (as it was, if that cannot be recorded now: still pending, so it is
    /// sent again). Only a first send's refusal fails it: a refusal of a refund sent
    /// again may be the operator refusing a duplicate of one it made, so that refund
    /// stays pending for a person to check.
    async fn send_refund(
        &self,
        connector: &Arc<dyn Connector>,
        attempt: &AttemptRecord,
        refund: RefundRecord,
        mode: Mode,
        first: bool,
    ) -> RefundRecord {
        let callback_url = format!(
            "{}/callbacks/{}/{}/{}",
            self.public_url,
            attempt.rail,
            refund.id,
            self.store
                .derived_token(REFUND_CALLBACK, refund.id.as_str())
        );
        let answer = connector
            .refund(RefundRequest {
                refund_id: refund.id.as_str(),
                operator_request_id: attempt.operator_request_id.as_deref(),
                receipt: attempt.operator_receipt.as_deref(),
                amount: refund.amount,
                paid: attempt.amount,
                whole: refund.amount == attempt.amount,
                payer: attempt.payer.as_deref(),
                callback_url: &callback_url,
            })
            .await;
        let live = mode == Mode::Live;
        let now = now_ms();
        let recorded = match answer {
            Ok(RefundAnswer::Done { operator_refund_id }) => self
                .store
                .finish_refund(
                    &refund.id,
                    RefundStatus::Succeeded,
                    operator_refund_id.as_deref(),
                    None,
                    live,
                    now,
                )
                .await
                .map(drop),
            Ok(RefundAnswer::Accepted {
                operator_refund_id: Some(op),
            }) => {
                self.store
                    .set_operator_refund_id(&refund.id, &op, now)
                    .await
            }
            Ok(RefundAnswer::Accepted { .. }) => Ok(()),
            Ok(RefundAnswer::Refused { code }) | Err(ConnectorError::Rejected { code, .. })
                if first =>
            {
                tracing::warn!(refund = %refund.id, %code, "refund refused");
                self.store
                    .finish_refund(
                        &refund.id,
                        RefundStatus::Failed,
                        None,
                        Some(&code.chars().take(64).collect::<String>()),
                        live,
                        now,
                    )
                    .await
                    .map(drop)
            }
            Ok(RefundAnswer::Refused { code }) | Err(ConnectorError::Rejected { code, .. }) => {
                tracing::error!(refund = %refund.id, %code, "a refund sent again was refused: check it at the operator");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(refund = %refund.id, error = %e, "refund's answer not known; it is sent again");
                Ok(())
            }
        };
        if let Err(e) = recorded {
            tracing::error!(refund = %refund.id, error = %e, "refund's answer not recorded; it is sent again");
            return refund;
        }
        match self.store.refund(&refund.id).await {
            Ok(Some(now)) => now,
            _ => refund,
        }
    }

    /// Handles an operator's result for a refund, posted to
    /// `/callbacks/{rail}/{refund}/{token}` (Daraja's reversal result). The token is the
    /// refund's own (derived from the master key), and the rail the payment's. The body
    /// is kept as evidence on the payment before it is read; a refund already closed
    /// stays as it is (a duplicate result changes nothing).
    pub async fn refund_callback(
        &self,
        rail: RailId,
        refund_id: &str,
        token: &str,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        let id = RefundId::parse(refund_id).ok_or(CallbackError::Forbidden)?;
        let expected = self.store.derived_token(REFUND_CALLBACK, id.as_str());
        // Compared as hashes (as attempts' tokens are): no timing oracle worth having.
        if hash_token(&expected) != hash_token(token) {
            return Err(CallbackError::Forbidden);
        }
        let refund = self
            .store
            .refund(&id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        let attempt = self
            .store
            .attempt(&refund.attempt_id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        if attempt.rail != rail {
            return Err(CallbackError::Forbidden);
        }
        let session = self
            .store
            .session(&attempt.session_id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        // Evidence first, readable or not; kept apart from the payment's own callbacks
        // (`mpesa:refund`), which are never applied again as payments.
        self.store
            .record_callback(&format!("{rail}:refund"), &attempt.id, body, now_ms())
            .await?;
        let connector = self
            .connector(&session.merchant_id, rail, session.mode)
            .ok_or(CallbackError::Forbidden)?;
        let report = connector
            .parse_refund_callback(body)
            .map_err(|_| CallbackError::BadBody)?;
        let live = session.mode == Mode::Live;
        let now = now_ms();
        match report.answer {
            RefundAnswer::Done { operator_refund_id } => {
                let made = self
                    .store
                    .finish_refund(
                        &id,
                        RefundStatus::Succeeded,
                        operator_refund_id.as_deref(),
                        None,
                        live,
                        now,
                    )
                    .await?;
                if made {
                    tracing::info!(refund = %id, "refund made");
                } else if refund.status == RefundStatus::Failed {
                    // Its amount was freed, yet the operator says the money went back:
                    // a person must look (the result is kept with the payment).
                    tracing::error!(refund = %id, detail = %report.detail, "a refund recorded as failed was made by the operator: check it");
                }
            }
            // Sent more than once, a refusal may be of a later send while an earlier one
            // went through: it stays pending for a person, as a refused resend does.
            RefundAnswer::Refused { code } if refund.sends > 1 => {
                tracing::error!(refund = %id, %code, detail = %report.detail, "a refund sent again was refused: check it at the operator");
            }
            RefundAnswer::Refused { code } => {
                tracing::warn!(refund = %id, detail = %report.detail, "refund refused by the operator");
                self.store
                    .finish_refund(
                        &id,
                        RefundStatus::Failed,
                        None,
                        Some(&code.chars().take(64).collect::<String>()),
                        live,
                        now,
                    )
                    .await?;
            }
            RefundAnswer::Accepted {
                operator_refund_id: Some(op),
            } => self.store.set_operator_refund_id(&id, &op, now).await?,
            RefundAnswer::Accepted { .. } => {}
        }
        Ok(())
    }

    /// Sends again every refund pending without an answer for five minutes, for a day
    /// after it was opened (the operator takes it as the same refund, by its id); each
    /// is claimed first, so two pollers never send one at once. Returns how many were
    /// sent.
    pub async fn redrive_refunds(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let stale = self
            .store
            .stale_refunds(now - REFUND_RETRY_FOR_MS, now - REFUND_RETRY_MS, 20)
            .await?;
        let mut sent = 0;
        for refund in stale {
            if !self
                .store
                .claim_refund(&refund.id, refund.updated_at, now)
                .await?
            {
                continue;
            }
            let Some(attempt) = self.store.attempt(&refund.attempt_id).await? else {
                continue;
            };
            let Some(session) = self.store.session(&attempt.session_id).await? else {
                continue;
            };
            let Some(connector) = self.connector(&session.merchant_id, attempt.rail, session.mode)
            else {
                tracing::error!(refund = %refund.id, "pending refund's rail is off: check it at the operator");
                continue;
            };
            self.send_refund(&connector, &attempt, refund, session.mode, false)
                .await;
            sent += 1;
        }
        Ok(sent)
    }
}

/// A refund asked for.
#[derive(Debug, Clone, Copy)]
pub struct RefundAsk<'a> {
    /// `pa_…`
    pub payment: &'a str,
    /// Minor units; `None`: all that is left.
    pub amount: Option<i64>,
    /// What the amount is in, when the caller says (it must be the payment's).
    pub currency: Option<Currency>,
    pub reason: Option<&'a str>,
    /// The API request's `Idempotency-Key`: a retry is the same refund.
    pub idempotency_key: Option<&'a str>,
}
