//! Refunds of payments: opened under the paid attempt's lock, so the amounts of a
//! payment's refunds that did not fail never add up to more than it paid, however many
//! requests race; closed once the operator answers, with their `refund.*` event in the
//! same transaction.

use sqlx::{Row, any::AnyRow};

use super::{
    Store, StoreError,
    attempts::{AttemptStatus, lock_attempt},
    outbox::enqueue_event,
    parse_column,
};
use crate::{
    domain::{AttemptId, Money, SessionId, ids::RefundId, money::Currency},
    resources::{EventType, RefundObject},
};

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Sent (or about to be); the operator has not said it is done.
    Pending,
    Succeeded,
    /// Refused, or never sent: nothing was returned, and its amount is free again.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A refund as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRecord {
    pub id: RefundId,
    pub attempt_id: AttemptId,
    pub session_id: SessionId,
    pub amount: Money,
    pub status: RefundStatus,
    pub reason: Option<String>,
    pub operator_refund_id: Option<String>,
    pub failure_code: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// How many times it was sent (a resend after a lost answer counts).
    pub sends: i64,
}

const REFUND_COLUMNS: &str = "id, attempt_id, session_id, amount_minor, currency, status, reason, \
     operator_refund_id, failure_code, created_at, updated_at, sends";

impl RefundRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let currency = parse_column(row, "currency", "refunds", Currency::parse)?;
        let amount = Money::new(row.try_get("amount_minor")?, currency).map_err(|e| {
            StoreError::Corrupt {
                table: "refunds",
                id: id.clone(),
                what: e.to_string(),
            }
        })?;
        Ok(RefundRecord {
            attempt_id: AttemptId::from_db(row.try_get("attempt_id")?),
            session_id: SessionId::from_db(row.try_get("session_id")?),
            amount,
            status: parse_column(row, "status", "refunds", RefundStatus::parse)?,
            reason: row.try_get("reason")?,
            operator_refund_id: row.try_get("operator_refund_id")?,
            failure_code: row.try_get("failure_code")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            sends: row.try_get("sends")?,
            id: RefundId::from_db(id),
        })
    }
}

/// What opening a refund came to.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenedRefund {
    Opened(RefundRecord),
    /// A refund of this payment was opened with the same idempotency key already: that
    /// one, as it stands (a retried request is never a second refund).
    Existing(RefundRecord),
    /// The payment did not succeed (or does not exist): nothing to refund.
    NotPaid,
    /// More than is left to refund: `available` minor units of `currency` are (after
    /// earlier refunds that did not fail; 0 when nothing is).
    Exceeds {
        available: i64,
        currency: Currency,
    },
}

impl Store {
    /// Opens a refund of `amount` (all that is left: `None`) of succeeded attempt
    /// `attempt_id`, pending, under the attempt's lock.
    pub async fn open_refund(
        &self,
        attempt_id: &AttemptId,
        amount: Option<i64>,
        reason: Option<&str>,
        idempotency_key: Option<&str>,
        now: i64,
    ) -> Result<OpenedRefund, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(attempt) = lock_attempt(&mut tx, attempt_id).await? else {
            tx.rollback().await?;
            return Ok(OpenedRefund::NotPaid);
        };
        if let Some(key) = idempotency_key {
            let row = sqlx::query(&format!(
                "SELECT {REFUND_COLUMNS} FROM refunds WHERE attempt_id = $1 AND idempotency_key = $2"
            ))
            .bind(attempt_id.as_str())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                let existing = RefundRecord::from_row(&row)?;
                tx.rollback().await?;
                return Ok(OpenedRefund::Existing(existing));
            }
        }
        if attempt.status != AttemptStatus::Succeeded {
            tx.rollback().await?;
            return Ok(OpenedRefund::NotPaid);
        }
        let taken: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS taken FROM refunds \
             WHERE attempt_id = $1 AND status <> 'failed'",
        )
        .bind(attempt_id.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get("taken")?;
        let currency = attempt.amount.currency();
        let left = (attempt.amount.minor() - taken).max(0);
        let wanted = amount.unwrap_or(left);
        let amount = match Money::new(wanted, currency) {
            Ok(m) if wanted > 0 && wanted <= left => m,
            _ => {
                tx.rollback().await?;
                return Ok(OpenedRefund::Exceeds {
                    available: left,
                    currency,
                });
            }
        };
        let record = RefundRecord {
            id: RefundId::generate(),
            attempt_id: attempt_id.clone(),
            session_id: attempt.session_id.clone(),
            amount,
            status: RefundStatus::Pending,
            reason: reason.map(str::to_owned),
            operator_refund_id: None,
            failure_code: None,
            created_at: now,
            updated_at: now,
            sends: 1,
        };
        sqlx::query(
            "INSERT INTO refunds (id, attempt_id, session_id, amount_minor, currency, status, \
             reason, idempotency_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $8)",
        )
        .bind(record.id.as_str())
        .bind(attempt_id.as_str())
        .bind(record.session_id.as_str())
        .bind(amount.minor())
        .bind(currency.code())
        .bind(reason)
        .bind(idempotency_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::insert_event(
            &mut tx,
            super::NewEvent {
                session_id: record.session_id.as_str(),
                attempt_id: Some(attempt_id.as_str()),
                kind: "refund.created",
                from_status: None,
                to_status: Some("pending"),
                detail: serde_json::json!({"refund": record.id.as_str(), "amount": amount.minor()}),
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(OpenedRefund::Opened(record))
    }

    /// Closes pending refund `id` as `to` (succeeded or failed), with the operator's id
    /// or our failure code, and its `refund.*` event: false when it was not pending.
    pub async fn finish_refund(
        &self,
        id: &RefundId,
        to: RefundStatus,
        operator_refund_id: Option<&str>,
        failure_code: Option<&str>,
        livemode: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE refunds SET status = $2, operator_refund_id = COALESCE($3, operator_refund_id), \
             failure_code = $4, updated_at = $5 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.as_str())
        .bind(to.as_str())
        .bind(operator_refund_id)
        .bind(failure_code)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            tx.rollback().await?;
            return Ok(false);
        }
        let row = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let record = RefundRecord::from_row(&row)?;
        super::insert_event(
            &mut tx,
            super::NewEvent {
                session_id: record.session_id.as_str(),
                attempt_id: Some(record.attempt_id.as_str()),
                kind: &format!("refund.{}", to.as_str()),
                from_status: Some("pending"),
                to_status: Some(to.as_str()),
                detail: serde_json::json!({"refund": id.as_str(), "failure_code": failure_code}),
                at: now,
            },
        )
        .await?;
        let kind = match to {
            RefundStatus::Succeeded => Some(EventType::RefundSucceeded),
            RefundStatus::Failed => Some(EventType::RefundFailed),
            RefundStatus::Pending => None,
        };
        if let Some(kind) = kind {
            let object =
                serde_json::to_value(RefundObject::new(&record, livemode)).map_err(|e| {
                    StoreError::Corrupt {
                        table: "refunds",
                        id: id.to_string(),
                        what: e.to_string(),
                    }
                })?;
            enqueue_event(&mut tx, record.session_id.as_str(), kind, object, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records the operator's id for a refund still pending (its answer said "accepted").
    pub async fn set_operator_refund_id(
        &self,
        id: &RefundId,
        operator_refund_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refunds SET operator_refund_id = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.as_str())
        .bind(operator_refund_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn refund(&self, id: &RefundId) -> Result<Option<RefundRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(RefundRecord::from_row).transpose()
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds_of(
        &self,
        attempt_id: &AttemptId,
    ) -> Result<Vec<RefundRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE attempt_id = $1 ORDER BY created_at, id"
        ))
        .bind(attempt_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RefundRecord::from_row).collect()
    }

    /// Refunds still pending, opened after `since` and untouched since before `before`
    /// (their answer was lost: sent again, which the operator takes as the same refund),
    /// oldest first.
    pub async fn stale_refunds(
        &self,
        since: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<RefundRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE status = 'pending' AND created_at > $1 \
             AND updated_at < $2 ORDER BY updated_at LIMIT $3"
        ))
        .bind(since)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RefundRecord::from_row).collect()
    }

    /// Claims a pending refund for sending again: true for the one caller (of any
    /// instance) whose view of it is still current (`seen`: its `updated_at`).
    pub async fn claim_refund(
        &self,
        id: &RefundId,
        seen: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE refunds SET updated_at = $3, sends = sends + 1 WHERE id = $1 \
             AND status = 'pending' AND updated_at = $2",
        )
        .bind(id.as_str())
        .bind(seen)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }
}
