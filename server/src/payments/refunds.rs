//! Refunds: money of a payment that succeeded returned to its payer, whole or in part,
//! on the rail it was paid with. The refund is opened (pending) under the payment's lock
//! — so refunds never add up to more than was paid, however many requests race — and
//! only then sent, with its own id as the operator's idempotency key. An answer that is
//! lost leaves it pending; it is sent again (the same refund) until the operator says.

use std::sync::Arc;

use super::Payments;
use crate::{
    connectors::{Connector, ConnectorError, RefundAnswer, RefundRequest},
    domain::{AttemptId, MerchantId, Mode, money::Currency},
    store::{AttemptRecord, OpenedRefund, RefundRecord, RefundStatus, StoreError},
    time::now_ms,
};

/// Pending refunds are sent again after this long without an answer.
const REFUND_RETRY_MS: i64 = 60_000;

/// Why a refund was not made.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no such payment")]
    NotFound,
    #[error("the payment did not succeed")]
    NotPaid,
    #[error("more than is left to refund ({available} minor units)")]
    Exceeds { available: i64, currency: Currency },
    #[error("the rail has no refund")]
    NotSupported(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Payments {
    /// Refunds `amount` (all that is left: `None`) of payment `payment` (`pa_…`), which
    /// must be `merchant`'s in `mode`. The refund as it stands after the operator's
    /// answer: `succeeded`, `failed`, or `pending` (confirmed later, or sent again).
    pub async fn refund_payment(
        &self,
        merchant: &MerchantId,
        mode: Mode,
        payment: &str,
        amount: Option<i64>,
        reason: Option<&str>,
    ) -> Result<RefundRecord, RefundError> {
        let id = AttemptId::parse(payment).ok_or(RefundError::NotFound)?;
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
        let connector = self
            .connector(attempt.rail, mode)
            .filter(|c| c.refunds())
            .cloned()
            .ok_or(RefundError::NotSupported(attempt.rail.label()))?;
        let refund = match self
            .store
            .open_refund(&id, amount, reason, now_ms())
            .await?
        {
            OpenedRefund::Opened(refund) => refund,
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
        Ok(self.send_refund(&connector, &attempt, refund, mode).await?)
    }

    /// Sends a pending refund to the operator and records its answer.
    async fn send_refund(
        &self,
        connector: &Arc<dyn Connector>,
        attempt: &AttemptRecord,
        refund: RefundRecord,
        mode: Mode,
    ) -> Result<RefundRecord, StoreError> {
        let answer = connector
            .refund(RefundRequest {
                refund_id: refund.id.as_str(),
                operator_request_id: attempt.operator_request_id.as_deref(),
                receipt: attempt.operator_receipt.as_deref(),
                amount: refund.amount,
                whole: refund.amount == attempt.amount,
            })
            .await;
        let live = mode == Mode::Live;
        let now = now_ms();
        match answer {
            Ok(RefundAnswer::Done { operator_refund_id }) => {
                self.store
                    .finish_refund(
                        &refund.id,
                        RefundStatus::Succeeded,
                        operator_refund_id.as_deref(),
                        None,
                        live,
                        now,
                    )
                    .await?;
            }
            Ok(RefundAnswer::Accepted { operator_refund_id }) => {
                if let Some(op) = operator_refund_id {
                    self.store
                        .set_operator_refund_id(&refund.id, &op, now)
                        .await?;
                }
            }
            Ok(RefundAnswer::Refused { code }) | Err(ConnectorError::Rejected { code, .. }) => {
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
                    .await?;
            }
            Err(e) => {
                tracing::warn!(refund = %refund.id, error = %e, "refund's answer not known; it is sent again");
            }
        }
        Ok(self.store.refund(&refund.id).await?.unwrap_or(refund))
    }

    /// Sends again every refund pending without an answer for a minute (the operator
    /// takes it as the same refund, by its id). Returns how many were sent.
    pub async fn redrive_refunds(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let stale = self.store.stale_refunds(now - REFUND_RETRY_MS, 20).await?;
        let mut sent = 0;
        for refund in stale {
            self.store.touch_refund(&refund.id, now).await?;
            let Some(attempt) = self.store.attempt(&refund.attempt_id).await? else {
                continue;
            };
            let Some(session) = self.store.session(&attempt.session_id).await? else {
                continue;
            };
            let Some(connector) = self.connector(attempt.rail, session.mode).cloned() else {
                continue;
            };
            self.send_refund(&connector, &attempt, refund, session.mode)
                .await?;
            sent += 1;
        }
        Ok(sent)
    }
}
