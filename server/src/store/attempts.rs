//! Payment attempts: one try at paying a session on one rail.
//!
//! An attempt starts `pending` and is finalised once, by whichever of the callback, the
//! status poller or the expiry sweep gets there first: the update is conditional on
//! `status = 'pending'`, so the others see `false` and do nothing.

use serde_json::json;
use sqlx::{Row, any::AnyRow};

use super::{NewEvent, Store, StoreError, insert_event, parse_column};
use crate::domain::{AttemptId, Money, SessionId, money::Currency};
use crate::resources::EventType;

/// The ~6 states every rail's result codes map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    /// Sent to the operator; the shopper has not answered yet (or we do not know yet).
    Pending,
    /// Money received and confirmed.
    Succeeded,
    /// Refused: insufficient funds, wrong PIN, push not deliverable, …
    Failed,
    /// The shopper cancelled on the handset.
    Cancelled,
    /// No answer in time.
    Expired,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Pending => "pending",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(AttemptStatus::Pending),
            "succeeded" => Some(AttemptStatus::Succeeded),
            "failed" => Some(AttemptStatus::Failed),
            "cancelled" => Some(AttemptStatus::Cancelled),
            "expired" => Some(AttemptStatus::Expired),
            _ => None,
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, AttemptStatus::Pending)
    }
}

/// An attempt to create.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub session_id: SessionId,
    pub rail: String,
    pub amount: Money,
    /// The payer's MSISDN, international digits only.
    pub payer: Option<String>,
    pub callback_token_hash: Option<String>,
    pub next_poll_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct AttemptOutcome {
    pub operator_receipt: Option<String>,
    pub failure_code: Option<String>,
    pub failure_detail: Option<String>,
}

/// An attempt as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub session_id: SessionId,
    pub rail: String,
    pub status: AttemptStatus,
    pub amount: Money,
    pub payer: Option<String>,
    pub operator_request_id: Option<String>,
    pub operator_receipt: Option<String>,
    pub failure_code: Option<String>,
    pub failure_detail: Option<String>,
    pub next_poll_at: Option<i64>,
    pub poll_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finalized_at: Option<i64>,
}

const ATTEMPT_COLUMNS: &str = "id, session_id, rail, status, amount_minor, currency, payer, \
     operator_request_id, operator_receipt, failure_code, failure_detail, next_poll_at, \
     poll_count, created_at, updated_at, finalized_at";

impl AttemptRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let currency = parse_column(row, "currency", "payment_attempts", Currency::parse)?;
        let amount = Money::new(row.try_get("amount_minor")?, currency).map_err(|e| {
            StoreError::Corrupt {
                table: "payment_attempts",
                id: id.clone(),
                what: e.to_string(),
            }
        })?;
        Ok(AttemptRecord {
            session_id: SessionId::from_db(row.try_get("session_id")?),
            rail: row.try_get("rail")?,
            status: parse_column(row, "status", "payment_attempts", AttemptStatus::parse)?,
            amount,
            payer: row.try_get("payer")?,
            operator_request_id: row.try_get("operator_request_id")?,
            operator_receipt: row.try_get("operator_receipt")?,
            failure_code: row.try_get("failure_code")?,
            failure_detail: row.try_get("failure_detail")?,
            next_poll_at: row.try_get("next_poll_at")?,
            poll_count: row.try_get("poll_count")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            finalized_at: row.try_get("finalized_at")?,
            id: AttemptId::from_db(id),
        })
    }
}

/// An attempt read through `conn` (inside a transaction, it sees its own writes).
pub(crate) async fn attempt_in(
    conn: &mut sqlx::AnyConnection,
    id: &AttemptId,
) -> Result<Option<AttemptRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(AttemptRecord::from_row).transpose()
}

impl Store {
    /// Creates a pending attempt and logs `attempt.created`, in one transaction.
    pub async fn insert_attempt(
        &self,
        new: &NewAttempt,
        now: i64,
    ) -> Result<AttemptRecord, StoreError> {
        let id = AttemptId::generate();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO payment_attempts (id, session_id, rail, status, amount_minor, currency, \
             payer, callback_token_hash, next_poll_at, created_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.as_str())
        .bind(new.session_id.as_str())
        .bind(&new.rail)
        .bind(new.amount.minor())
        .bind(new.amount.currency().code())
        .bind(new.payer.as_deref())
        .bind(new.callback_token_hash.as_deref())
        .bind(new.next_poll_at)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            NewEvent {
                session_id: new.session_id.as_str(),
                attempt_id: Some(id.as_str()),
                kind: "attempt.created",
                from_status: None,
                to_status: Some("pending"),
                detail: json!({ "rail": new.rail }),
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        self.attempt(&id).await?.ok_or_else(|| StoreError::Corrupt {
            table: "payment_attempts",
            id: id.to_string(),
            what: "vanished after insert".into(),
        })
    }

    pub async fn attempt(&self, id: &AttemptId) -> Result<Option<AttemptRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        attempt_in(&mut conn, id).await
    }

    /// The session's pending attempt, if any (there is at most one).
    pub async fn pending_attempt(
        &self,
        session_id: &SessionId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE session_id = $1 AND status = 'pending'"
        ))
        .bind(session_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(AttemptRecord::from_row).transpose()
    }

    /// The session's most recent attempt.
    pub async fn latest_attempt(
        &self,
        session_id: &SessionId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE session_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(session_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(AttemptRecord::from_row).transpose()
    }

    /// The hash of an attempt's callback token (never the token).
    pub async fn attempt_callback_hash(
        &self,
        id: &AttemptId,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT callback_token_hash FROM payment_attempts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("callback_token_hash")?,
            None => None,
        })
    }

    /// Records the operator's id for a pending attempt (e.g. Daraja's CheckoutRequestID).
    pub async fn set_operator_request_id(
        &self,
        id: &AttemptId,
        operator_request_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE payment_attempts SET operator_request_id = $2, updated_at = $3 \
             WHERE id = $1 AND operator_request_id IS NULL",
        )
        .bind(id.as_str())
        .bind(operator_request_id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Moves a pending attempt to a final status, exactly once. On success the session
    /// becomes complete and paid in the same transaction, and the webhook events
    /// (`payment.*`, `checkout.session.completed`) join the outbox in it too. Returns
    /// false when the attempt was not pending any more (someone else finalised it first).
    pub async fn finalize_attempt(
        &self,
        id: &AttemptId,
        to: AttemptStatus,
        outcome: &AttemptOutcome,
        source: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        debug_assert!(to.is_final(), "finalize_attempt needs a final status");
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE payment_attempts SET status = $2, operator_receipt = $3, failure_code = $4, \
             failure_detail = $5, updated_at = $6, finalized_at = $6, next_poll_at = NULL \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.as_str())
        .bind(to.as_str())
        .bind(outcome.operator_receipt.as_deref())
        .bind(outcome.failure_code.as_deref())
        .bind(outcome.failure_detail.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            tx.rollback().await?;
            return Ok(false);
        }
        let session_id: String =
            sqlx::query("SELECT session_id FROM payment_attempts WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("session_id")?;
        insert_event(
            &mut tx,
            NewEvent {
                session_id: &session_id,
                attempt_id: Some(id.as_str()),
                kind: &format!("attempt.{}", to.as_str()),
                from_status: Some("pending"),
                to_status: Some(to.as_str()),
                detail: json!({
                    "source": source,
                    "receipt": outcome.operator_receipt,
                    "failure_code": outcome.failure_code,
                }),
                at: now,
            },
        )
        .await?;
        super::outbox::enqueue_payment_event(&mut tx, id, now).await?;
        if to == AttemptStatus::Succeeded {
            // Money that arrives after expiry still completes the session: the shopper
            // paid, and the merchant must hear about it rather than lose it.
            let completed = sqlx::query(
                "UPDATE checkout_sessions SET status = 'complete', payment_status = 'paid', \
                 updated_at = $2 WHERE id = $1 AND payment_status = 'unpaid'",
            )
            .bind(&session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if completed {
                insert_event(
                    &mut tx,
                    NewEvent {
                        session_id: &session_id,
                        attempt_id: Some(id.as_str()),
                        kind: "session.completed",
                        from_status: None,
                        to_status: Some("complete"),
                        detail: json!({}),
                        at: now,
                    },
                )
                .await?;
                super::outbox::enqueue_session_event(
                    &mut tx,
                    &self.public_url,
                    &SessionId::from_db(session_id.clone()),
                    EventType::CheckoutSessionCompleted,
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Pending attempts whose next status query is due, oldest first.
    pub async fn attempts_due_for_poll(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts \
             WHERE status = 'pending' AND next_poll_at IS NOT NULL AND next_poll_at <= $1 \
             ORDER BY next_poll_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AttemptRecord::from_row).collect()
    }

    /// Pushes a pending attempt's next poll back and counts the poll.
    pub async fn reschedule_poll(
        &self,
        id: &AttemptId,
        next_poll_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE payment_attempts SET next_poll_at = $2, poll_count = poll_count + 1, \
             updated_at = $3 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.as_str())
        .bind(next_poll_at)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }
}
