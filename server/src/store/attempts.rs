//! Payment attempts: one try at paying a session on one rail.
//!
//! An attempt starts `pending` and is settled by whichever of the callback or the status
//! poller gets there first. Every change locks the attempt's row, reads its status and
//! moves it only along [`AttemptStatus::may_become`], so racing writers cannot both win.
//!
//! The operator's word on money outranks our own verdicts: a success reported after we
//! gave up on an attempt (`failed`, `cancelled`, `expired` or `unknown`) still settles it,
//! is recorded as late, and completes the session, or, when another attempt already paid
//! it, is recorded as a duplicate for the merchant to refund. Nothing is ever dropped.

use serde_json::json;
use sqlx::{Row, any::AnyRow};

use super::{NewEvent, Store, StoreError, insert_event, parse_column};
use crate::resources::EventType;
use crate::{
    connectors::RailId,
    domain::{AttemptId, Mode, Money, SessionId, money::Currency},
};

/// The ~6 states every rail's result codes map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    /// Sent to the operator; the shopper has not answered yet.
    Pending,
    /// We could not learn the outcome (the push's answer was lost, queries failed, or the
    /// operator used a code we do not know) and the prompt has lapsed. The shopper may
    /// have paid: never shown as failed, still settled by a callback or a query.
    Unknown,
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
            AttemptStatus::Unknown => "unknown",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(AttemptStatus::Pending),
            "unknown" => Some(AttemptStatus::Unknown),
            "succeeded" => Some(AttemptStatus::Succeeded),
            "failed" => Some(AttemptStatus::Failed),
            "cancelled" => Some(AttemptStatus::Cancelled),
            "expired" => Some(AttemptStatus::Expired),
            _ => None,
        }
    }

    /// True once the operator (or our timeout on a definite answer) has decided; a
    /// `pending` or `unknown` attempt may still go either way.
    pub fn is_final(self) -> bool {
        !matches!(self, AttemptStatus::Pending | AttemptStatus::Unknown)
    }

    /// Whether an attempt in this state may move to `to`. A success is final. The
    /// operator's success outranks every other verdict; anything else settles only an
    /// attempt that is still open (`pending` or `unknown`).
    pub fn may_become(self, to: AttemptStatus) -> bool {
        use AttemptStatus::*;
        match (self, to) {
            (Succeeded, _) | (_, Pending) => false,
            (Pending, _) => true,
            (Unknown, Unknown) => false,
            (Unknown, _) => true,
            (Failed | Cancelled | Expired, Succeeded) => true,
            (Failed | Cancelled | Expired, _) => false,
        }
    }
}

/// An attempt to create.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub session_id: SessionId,
    pub rail: RailId,
    /// What the rail charges: the session's price, or its quote's target.
    pub amount: Money,
    /// The quote `amount` is at, when the rail charges another currency than the price.
    pub quote: Option<crate::fx::Quote>,
    /// What it counts towards the session's price once paid, in the price's currency:
    /// `amount` itself, or the quoted price. `None`: whatever the price still lacks.
    pub credit_minor: Option<i64>,
    /// The payer's MSISDN, international digits only.
    pub payer: Option<String>,
    pub callback_token_hash: Option<String>,
    pub next_poll_at: Option<i64>,
}

/// Caps a new attempt must respect (see [`Store::insert_attempt_capped`]).
#[derive(Debug, Clone, Copy)]
pub struct AttemptCaps {
    /// Attempts one session may have.
    pub per_session: i64,
    /// Attempts (prompts) one payer may get since `payer_since`, across all sessions.
    pub per_payer: i64,
    pub payer_since: i64,
}

/// What [`Store::insert_attempt_capped`] did.
#[derive(Debug, Clone)]
pub enum Inserted {
    Attempt(Box<AttemptRecord>),
    /// Expired, paid, or past its expiry.
    SessionNotOpen,
    /// The session has had its attempts.
    SessionCap,
    /// The payer has had their prompts; the oldest in the window was sent then.
    PayerCap {
        oldest: i64,
    },
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
    pub rail: RailId,
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
    /// What the attempt was when the operator's success arrived after we had closed it.
    pub late_from: Option<AttemptStatus>,
    /// It paid a session another attempt had already paid: the merchant owes a refund.
    pub duplicate: bool,
    /// The quote `amount` is at, when the rail charged another currency than the price.
    pub quote: Option<crate::fx::Quote>,
    /// What a card attempt keeps between the shopper's steps (a JSON object).
    pub rail_data: Option<serde_json::Value>,
    /// What it counts towards the session's price once paid, in the price's currency
    /// (`None`: made before parts existed, for the whole price).
    pub credit_minor: Option<i64>,
    /// What it brought beyond the price (the session's currency): the merchant owes it back.
    pub overpaid_minor: Option<i64>,
}

pub(super) const ATTEMPT_COLUMNS: &str = "id, session_id, rail, status, amount_minor, currency, payer, \
     operator_request_id, operator_receipt, failure_code, failure_detail, next_poll_at, \
     poll_count, created_at, updated_at, finalized_at, late_from, duplicate, quote, rail_data, \
     credit_minor, overpaid_minor";

/// A person's resolution of an attempt left for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub at: i64,
    pub note: String,
}

impl AttemptRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
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
            rail: parse_column(row, "rail", "payment_attempts", RailId::parse)?,
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
            late_from: row
                .try_get::<Option<String>, _>("late_from")?
                .as_deref()
                .and_then(AttemptStatus::parse),
            duplicate: row.try_get::<i64, _>("duplicate")? != 0,
            // What the quote said is for display: one that cannot be read never stops an
            // attempt from being settled (the charged amount is in its own columns).
            quote: row.try_get::<Option<String>, _>("quote")?.and_then(|raw| {
                let quote = crate::fx::Quote::from_json(&raw);
                if quote.is_none() {
                    tracing::error!(attempt = %id, "unreadable quote on an attempt");
                }
                quote
            }),
            rail_data: row
                .try_get::<Option<String>, _>("rail_data")?
                .and_then(|raw| serde_json::from_str(&raw).ok()),
            credit_minor: row.try_get("credit_minor")?,
            overpaid_minor: row.try_get("overpaid_minor")?,
            id: AttemptId::from_db(id),
        })
    }
}

/// Locks an attempt's session row, then the attempt's row, for the rest of the
/// transaction (no-op writes: on SQLite the first takes the write lock before anything
/// is read, so the read cannot go stale; on PostgreSQL they row-lock), then reads it.
/// Session first, as `insert_attempt` does, so the two never deadlock.
pub(super) async fn lock_attempt(
    conn: &mut sqlx::AnyConnection,
    id: &AttemptId,
) -> Result<Option<AttemptRecord>, StoreError> {
    sqlx::query(
        "UPDATE checkout_sessions SET updated_at = updated_at \
         WHERE id = (SELECT session_id FROM payment_attempts WHERE id = $1)",
    )
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE payment_attempts SET updated_at = updated_at WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    attempt_in(conn, id).await
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

/// The attempt that paid a session (its last success that is no duplicate: the one
/// payment, or the part that completed it), read through `conn`.
pub(crate) async fn paying_attempt_in(
    conn: &mut sqlx::AnyConnection,
    session_id: &SessionId,
) -> Result<Option<AttemptRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts \
         WHERE session_id = $1 AND status = 'succeeded' AND duplicate = 0 \
         ORDER BY finalized_at DESC, id DESC LIMIT 1"
    ))
    .bind(session_id.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(AttemptRecord::from_row).transpose()
}

/// What follows an attempt's settling to `to`, in its transaction (the session's row
/// locked): a success counts towards the session ([`credit_session`]); the `payment.*`
/// event (and `payment.duplicate`), and once the session is paid, `session.completed`
/// and `checkout.session.completed`, join the outbox.
pub(crate) async fn settled_in(
    conn: &mut sqlx::AnyConnection,
    public_url: &str,
    attempt: &AttemptRecord,
    to: AttemptStatus,
    receipt: Option<&str>,
    now: i64,
) -> Result<Option<Credited>, StoreError> {
    let id = &attempt.id;
    let credited = if to == AttemptStatus::Succeeded {
        Some(credit_session(conn, attempt, receipt, now).await?)
    } else {
        None
    };
    super::outbox::enqueue_payment_event(conn, id, now).await?;
    if credited == Some(Credited::Duplicate) {
        super::outbox::enqueue_attempt_event(conn, id, EventType::PaymentDuplicate, now).await?;
    }
    if credited == Some(Credited::Completed) {
        insert_event(
            conn,
            NewEvent {
                session_id: attempt.session_id.as_str(),
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
            conn,
            public_url,
            &attempt.session_id,
            EventType::CheckoutSessionCompleted,
            now,
        )
        .await?;
    }
    Ok(credited)
}

/// What a success did to its session ([`credit_session`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credited {
    /// It brought the session to its price: paid and complete (perhaps overpaid).
    Completed,
    /// A part: the session has received more, and waits for the rest.
    Part,
    /// The session was paid already: this payment is owed back whole.
    Duplicate,
}

/// Counts a payment that just succeeded towards its session, whose row the caller holds
/// locked (see [`lock_attempt`]): what the session received grows by the payment's
/// credit; reaching the price completes it (even if it expired meanwhile: the shopper
/// paid), and what went beyond the price is recorded on this payment as owed back. A
/// session paid already makes this payment a duplicate, owed back whole. Its events are
/// logged in the same transaction.
pub(crate) async fn credit_session(
    conn: &mut sqlx::AnyConnection,
    attempt: &AttemptRecord,
    receipt: Option<&str>,
    now: i64,
) -> Result<Credited, StoreError> {
    let session_id = attempt.session_id.as_str();
    let row = sqlx::query(
        "SELECT amount_minor, amount_received_minor, payment_status FROM checkout_sessions \
         WHERE id = $1",
    )
    .bind(session_id)
    .fetch_one(&mut *conn)
    .await?;
    let price: i64 = row.try_get("amount_minor")?;
    let received: i64 = row.try_get("amount_received_minor")?;
    let paid = row.try_get::<String, _>("payment_status")? == "paid";
    if paid {
        // Paid twice: the second payment is real money the merchant must return.
        sqlx::query(
            "UPDATE payment_attempts SET duplicate = 1, reconciled_at = NULL, \
             reconciled_note = NULL WHERE id = $1",
        )
        .bind(attempt.id.as_str())
        .execute(&mut *conn)
        .await?;
        insert_event(
            conn,
            NewEvent {
                session_id,
                attempt_id: Some(attempt.id.as_str()),
                kind: "attempt.duplicate",
                from_status: None,
                to_status: None,
                detail: json!({ "receipt": receipt }),
                at: now,
            },
        )
        .await?;
        return Ok(Credited::Duplicate);
    }
    let credit = attempt.credit_minor.unwrap_or(price - received).max(0);
    let total = received.saturating_add(credit);
    if total < price {
        sqlx::query(
            "UPDATE checkout_sessions SET amount_received_minor = $2, updated_at = $3 \
             WHERE id = $1",
        )
        .bind(session_id)
        .bind(total)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        insert_event(
            conn,
            NewEvent {
                session_id,
                attempt_id: Some(attempt.id.as_str()),
                kind: "session.part_paid",
                from_status: None,
                to_status: None,
                detail: json!({ "received": total, "remaining": price - total }),
                at: now,
            },
        )
        .await?;
        return Ok(Credited::Part);
    }
    sqlx::query(
        "UPDATE checkout_sessions SET status = 'complete', payment_status = 'paid', \
         amount_received_minor = $2, updated_at = $3 WHERE id = $1",
    )
    .bind(session_id)
    .bind(total)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if total > price {
        sqlx::query(
            "UPDATE payment_attempts SET overpaid_minor = $2, reconciled_at = NULL, \
             reconciled_note = NULL WHERE id = $1",
        )
        .bind(attempt.id.as_str())
        .bind(total - price)
        .execute(&mut *conn)
        .await?;
        insert_event(
            conn,
            NewEvent {
                session_id,
                attempt_id: Some(attempt.id.as_str()),
                kind: "attempt.overpaid",
                from_status: None,
                to_status: None,
                detail: json!({ "overpaid": total - price }),
                at: now,
            },
        )
        .await?;
    }
    Ok(Credited::Completed)
}

impl Store {
    /// Replaces what a card attempt keeps between the shopper's steps.
    pub async fn set_rail_data(
        &self,
        id: &AttemptId,
        data: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE payment_attempts SET rail_data = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(data.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces what an open (pending or unknown) card or PayPal attempt keeps, only if
    /// it still is `old`: false when another request changed it first, or the attempt
    /// is closed.
    pub async fn swap_rail_data(
        &self,
        id: &AttemptId,
        old: Option<&serde_json::Value>,
        new: &serde_json::Value,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = match old {
            Some(old) => sqlx::query(
                "UPDATE payment_attempts SET rail_data = $2, updated_at = $4 \
                 WHERE id = $1 AND rail_data = $3 AND status IN ('pending', 'unknown')",
            )
            .bind(id.as_str())
            .bind(new.to_string())
            .bind(old.to_string())
            .bind(now),
            None => sqlx::query(
                "UPDATE payment_attempts SET rail_data = $2, updated_at = $3 \
                 WHERE id = $1 AND rail_data IS NULL AND status IN ('pending', 'unknown')",
            )
            .bind(id.as_str())
            .bind(new.to_string())
            .bind(now),
        }
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The attempt that paid a session, if it is paid.
    pub async fn paying_attempt(
        &self,
        session_id: &SessionId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        paying_attempt_in(&mut conn, session_id).await
    }

    /// Creates a pending attempt and logs `attempt.created`, in one transaction, only if
    /// the session is open and unexpired at `now`: `None` otherwise. See
    /// [`Store::insert_attempt_capped`].
    pub async fn insert_attempt(
        &self,
        new: &NewAttempt,
        now: i64,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        Ok(match self.insert_attempt_capped(new, now, None).await? {
            Inserted::Attempt(a) => Some(*a),
            _ => None,
        })
    }

    /// Creates a pending attempt, in one transaction, only if the session is open and
    /// unexpired at `now` and the `caps` hold. The session's row is locked first, so an
    /// expiry or a payment racing with this insert either happens before (and the insert
    /// is refused) or waits for it (and sees the pending attempt); on PostgreSQL the
    /// payer's number is locked too (an advisory lock), so parallel requests for one
    /// phone on different sessions are counted one after another (SQLite's single
    /// writer already serialises them). A second pending attempt for the session fails
    /// with a unique violation.
    pub async fn insert_attempt_capped(
        &self,
        new: &NewAttempt,
        now: i64,
        caps: Option<&AttemptCaps>,
    ) -> Result<Inserted, StoreError> {
        let id = AttemptId::generate();
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query(
            "UPDATE checkout_sessions SET updated_at = $2 \
             WHERE id = $1 AND status = 'open' AND expires_at > $2",
        )
        .bind(new.session_id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !open {
            tx.rollback().await?;
            return Ok(Inserted::SessionNotOpen);
        }
        if let Some(caps) = caps {
            let tried: i64 =
                // Parts that paid do not count: a booking paid in many parts is not
                // refused its last one.
                sqlx::query(
                    "SELECT COUNT(*) AS n FROM payment_attempts \
                     WHERE session_id = $1 AND status <> 'succeeded'",
                )
                    .bind(new.session_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
            if tried >= caps.per_session {
                tx.rollback().await?;
                return Ok(Inserted::SessionCap);
            }
            if let Some(payer) = new.payer.as_deref() {
                if self.backend == super::Backend::Postgres {
                    sqlx::query(
                        "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS l",
                    )
                    .bind(payer)
                    .execute(&mut *tx)
                    .await?;
                }
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM payment_attempts \
                     WHERE payer = $1 AND created_at > $2",
                )
                .bind(payer)
                .bind(caps.payer_since)
                .fetch_one(&mut *tx)
                .await?;
                let sent: i64 = row.try_get("n")?;
                if sent >= caps.per_payer {
                    let oldest: Option<i64> = row.try_get("oldest")?;
                    tx.rollback().await?;
                    return Ok(Inserted::PayerCap {
                        oldest: oldest.unwrap_or(now),
                    });
                }
            }
        }
        sqlx::query(
            "INSERT INTO payment_attempts (id, session_id, rail, status, amount_minor, currency, \
             payer, callback_token_hash, next_poll_at, created_at, updated_at, quote, \
             credit_minor) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id.as_str())
        .bind(new.session_id.as_str())
        .bind(new.rail.as_str())
        .bind(new.amount.minor())
        .bind(new.amount.currency().code())
        .bind(new.payer.as_deref())
        .bind(new.callback_token_hash.as_deref())
        .bind(new.next_poll_at)
        .bind(now)
        .bind(now)
        .bind(new.quote.as_ref().map(crate::fx::Quote::to_json))
        .bind(new.credit_minor)
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
                detail: json!({ "rail": new.rail.as_str() }),
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        crate::metrics::started(new.rail);
        self.attempt(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                table: "payment_attempts",
                id: id.to_string(),
                what: "vanished after insert".into(),
            })
            .map(|a| Inserted::Attempt(Box::new(a)))
    }

    pub async fn attempt(&self, id: &AttemptId) -> Result<Option<AttemptRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        attempt_in(&mut conn, id).await
    }

    /// The attempt `rail`'s operator knows by `operator_request_id` (unique per rail).
    pub async fn attempt_by_operator_request_id(
        &self,
        rail: RailId,
        operator_request_id: &str,
    ) -> Result<Option<AttemptId>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM payment_attempts WHERE rail = $1 AND operator_request_id = $2",
        )
        .bind(rail.as_str())
        .bind(operator_request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(AttemptId::from_db(r.try_get("id")?)))
            .transpose()
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
    ) -> Result<Option<(RailId, String)>, StoreError> {
        let row =
            sqlx::query("SELECT id, rail, callback_token_hash FROM payment_attempts WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let rail = parse_column(&r, "rail", "payment_attempts", RailId::parse)?;
        Ok(r.try_get::<Option<String>, _>("callback_token_hash")?
            .map(|hash| (rail, hash)))
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

    /// Settles an attempt at a final status, once, along [`AttemptStatus::may_become`]:
    /// returns false when the attempt may not move there (already succeeded, or a
    /// failure for an attempt that is closed already).
    ///
    /// On success, in the same transaction: the session becomes complete and paid if it
    /// is still unpaid (even if it expired meanwhile: the shopper paid); if another
    /// attempt had paid it already, this one is marked `duplicate`. A success after we
    /// had closed the attempt keeps what it was in `late_from`. The webhook events
    /// (`payment.*`, `payment.duplicate`, `checkout.session.completed`) join the outbox in
    /// the same transaction.
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
        let Some(current) = lock_attempt(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let from = current.status;
        if !from.may_become(to) {
            tx.rollback().await?;
            return Ok(false);
        }
        let late_from = (to == AttemptStatus::Succeeded && from != AttemptStatus::Pending)
            .then_some(from.as_str());
        sqlx::query(
            "UPDATE payment_attempts SET status = $2, \
             operator_receipt = COALESCE($3, operator_receipt), failure_code = $4, \
             failure_detail = COALESCE($5, failure_detail), updated_at = $6, finalized_at = $6, \
             next_poll_at = NULL, late_from = $7, reconciled_at = NULL, reconciled_note = NULL \
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(to.as_str())
        .bind(outcome.operator_receipt.as_deref())
        .bind(outcome.failure_code.as_deref())
        .bind(outcome.failure_detail.as_deref())
        .bind(now)
        .bind(late_from)
        .execute(&mut *tx)
        .await?;
        let session_id = current.session_id.as_str();
        insert_event(
            &mut tx,
            NewEvent {
                session_id,
                attempt_id: Some(id.as_str()),
                kind: &format!("attempt.{}", to.as_str()),
                from_status: Some(from.as_str()),
                to_status: Some(to.as_str()),
                detail: json!({
                    "source": source,
                    "receipt": outcome.operator_receipt,
                    "failure_code": outcome.failure_code,
                    "late": late_from.is_some(),
                }),
                at: now,
            },
        )
        .await?;
        settled_in(
            &mut tx,
            &self.public_url,
            &current,
            to,
            outcome.operator_receipt.as_deref(),
            now,
        )
        .await?;
        tx.commit().await?;
        crate::metrics::settled(current.rail, to.as_str());
        Ok(true)
    }

    /// Marks a `pending` attempt whose outcome we could not learn as `unknown` (or
    /// re-marks an `unknown` one). With `next_poll_at` the poller keeps asking; without
    /// it, asking is over: the attempt is left for reconciliation and the merchant is
    /// told (`payment.unknown`). A callback or query can still settle it at any time.
    /// Returns false when the attempt was neither pending nor unknown.
    pub async fn mark_unknown(
        &self,
        id: &AttemptId,
        detail: &str,
        next_poll_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = lock_attempt(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // Pending, or unknown and still being asked about: once left for reconciliation
        // an attempt is announced (`payment.unknown`) once, not again.
        let open = match current.status {
            AttemptStatus::Pending => true,
            AttemptStatus::Unknown => current.next_poll_at.is_some(),
            _ => false,
        };
        if !open {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE payment_attempts SET status = 'unknown', failure_code = NULL, \
             failure_detail = $2, next_poll_at = $3, poll_count = poll_count + 1, \
             updated_at = $4, reconciled_at = NULL, reconciled_note = NULL WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(detail)
        .bind(next_poll_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let reconcile = next_poll_at.is_none();
        insert_event(
            &mut tx,
            NewEvent {
                session_id: current.session_id.as_str(),
                attempt_id: Some(id.as_str()),
                kind: if reconcile {
                    "attempt.needs_reconciliation"
                } else {
                    "attempt.unknown"
                },
                from_status: Some(current.status.as_str()),
                to_status: Some("unknown"),
                detail: json!({ "detail": detail }),
                at: now,
            },
        )
        .await?;
        if reconcile {
            super::outbox::enqueue_attempt_event(&mut tx, id, EventType::PaymentUnknown, now)
                .await?;
        }
        tx.commit().await?;
        if current.status == AttemptStatus::Pending {
            crate::metrics::settled(current.rail, "unknown");
        }
        Ok(true)
    }

    /// Keeps an operator's callback body exactly as it came (append-only), before it is
    /// acted on, so a human can always reconcile from what the operator said.
    pub async fn record_callback(
        &self,
        rail: &str,
        attempt_id: &AttemptId,
        body: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO operator_callbacks (rail, attempt_id, body, received_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(rail)
        .bind(attempt_id.as_str())
        .bind(String::from_utf8_lossy(body).into_owned())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stored callbacks since `since` that may carry a success, for attempts that have
    /// not succeeded, oldest first: candidates for being applied again. `markers` holds,
    /// per rail, a text every success callback of that rail contains (Daraja's
    /// `MpesaReceiptNumber`); the body is parsed by the rail's connector, and this only
    /// narrows the search.
    pub async fn unapplied_success_callbacks(
        &self,
        since: i64,
        limit: i64,
        markers: &[(RailId, &str)],
    ) -> Result<Vec<(AttemptId, String)>, StoreError> {
        if markers.is_empty() {
            return Ok(Vec::new());
        }
        // Placeholders only: the rails and markers are bound, never spliced in.
        let by_rail = (0..markers.len())
            .map(|i| format!("(a.rail = ${} AND c.body LIKE ${})", 3 + 2 * i, 4 + 2 * i))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT c.attempt_id, c.body FROM operator_callbacks c \
             JOIN payment_attempts a ON a.id = c.attempt_id \
             WHERE c.received_at > $1 AND a.status <> 'succeeded' AND ({by_rail}) \
             ORDER BY c.id LIMIT $2"
        );
        let mut query = sqlx::query(&sql).bind(since).bind(limit);
        for (rail, marker) in markers {
            query = query.bind(rail.as_str()).bind(format!("%{marker}%"));
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    AttemptId::from_db(r.try_get("attempt_id")?),
                    r.try_get("body")?,
                ))
            })
            .collect()
    }

    /// The callback bodies received for an attempt, oldest first.
    pub async fn callbacks(&self, attempt_id: &AttemptId) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT body FROM operator_callbacks WHERE attempt_id = $1 ORDER BY id")
                .bind(attempt_id.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("body")?))
            .collect()
    }

    /// Records that a pay request for the session was refused by a limit: in the
    /// session's log and, for the merchant, as a `payment.refused` event.
    pub async fn record_refusal(
        &self,
        session_id: &SessionId,
        refusal: &crate::resources::PaymentRefusalObject,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_event(
            &mut tx,
            NewEvent {
                session_id: session_id.as_str(),
                attempt_id: None,
                kind: "attempt.refused",
                from_status: None,
                to_status: None,
                detail: json!({ "reason": refusal.reason, "retry_after": refusal.retry_after }),
                at: now,
            },
        )
        .await?;
        let object = serde_json::to_value(refusal).map_err(|e| StoreError::Corrupt {
            table: "events",
            id: String::new(),
            what: e.to_string(),
        })?;
        super::outbox::enqueue_event(
            &mut tx,
            session_id.as_str(),
            EventType::PaymentRefused,
            object,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether this payer has an `unknown` attempt since `since` at the session's
    /// merchant (on this session or another one the shopper started again): they may
    /// have paid it.
    pub async fn has_unknown_attempt_for_payer(
        &self,
        session_id: &SessionId,
        payer: &str,
        since: i64,
    ) -> Result<bool, StoreError> {
        // One row at most: only whether there is one matters.
        let found = sqlx::query(
            "SELECT 1 AS one FROM payment_attempts WHERE payer = $2 \
             AND status = 'unknown' AND created_at > $3 AND session_id IN \
             (SELECT id FROM checkout_sessions WHERE merchant_id = \
              (SELECT merchant_id FROM checkout_sessions WHERE id = $1)) LIMIT 1",
        )
        .bind(session_id.as_str())
        .bind(payer)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Attempts a human must look at, newest first: outcomes still unknown, and
    /// duplicate payments to refund; with `resolved`, also those already resolved.
    pub async fn attempts_to_reconcile(
        &self,
        resolved: bool,
        limit: i64,
    ) -> Result<Vec<(AttemptRecord, Option<Reconciled>)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS}, reconciled_at, reconciled_note FROM payment_attempts \
             WHERE (status = 'unknown' OR duplicate = 1 OR overpaid_minor IS NOT NULL \
             OR (status = 'succeeded' AND session_id IN (SELECT id FROM checkout_sessions \
             WHERE status = 'expired' AND payment_status = 'unpaid'))) \
             AND ($1 = 1 OR reconciled_at IS NULL) \
             ORDER BY created_at DESC LIMIT $2"
        ))
        .bind(i64::from(resolved))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let done = match r.try_get::<Option<i64>, _>("reconciled_at")? {
                    Some(at) => Some(Reconciled {
                        at,
                        note: r
                            .try_get::<Option<String>, _>("reconciled_note")?
                            .unwrap_or_default(),
                    }),
                    None => None,
                };
                Ok((AttemptRecord::from_row(r)?, done))
            })
            .collect()
    }

    /// Records that a person resolved an attempt left for reconciliation, with what
    /// they found (logged in `payment_events` too). False when the attempt is not one
    /// to reconcile, or was resolved already.
    pub async fn resolve_reconciliation(
        &self,
        id: &AttemptId,
        note: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locked as every transition locks it, so a callback settling it meanwhile
        // either comes first (and it is no longer to reconcile) or after (and clears
        // the resolution if it makes it a duplicate).
        let Some(current) = lock_attempt(&mut tx, id).await? else {
            return Ok(false);
        };
        // A part of a session that expired before the rest came is owed back too.
        let stranded_part = current.status == AttemptStatus::Succeeded
            && super::sessions::session_in(&mut tx, &current.session_id)
                .await?
                .is_some_and(|s| {
                    s.status == super::SessionStatus::Expired
                        && s.payment_status == super::PaymentStatus::Unpaid
                });
        let reconcilable = current.duplicate
            || current.overpaid_minor.is_some()
            || stranded_part
            || (current.status == AttemptStatus::Unknown && current.next_poll_at.is_none());
        let resolved: Option<i64> =
            sqlx::query_scalar("SELECT reconciled_at FROM payment_attempts WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if !reconcilable || resolved.is_some() {
            return Ok(false);
        }
        let changed = sqlx::query(
            "UPDATE payment_attempts SET reconciled_at = $2, reconciled_note = $3 \
             WHERE id = $1 AND reconciled_at IS NULL",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(note)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        insert_event(
            &mut tx,
            NewEvent {
                session_id: current.session_id.as_str(),
                attempt_id: Some(id.as_str()),
                kind: "attempt.reconciled",
                from_status: Some(current.status.as_str()),
                to_status: Some(current.status.as_str()),
                detail: json!({ "note": note }),
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Pending and unknown attempts of one mode whose next status query is due, taking
    /// turns: every merchant's oldest before anyone's second, so one merchant's backlog
    /// never holds up another's shopper.
    pub async fn attempts_due_for_poll(
        &self,
        now: i64,
        mode: Mode,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let columns: Vec<String> = ATTEMPT_COLUMNS
            .split(',')
            .map(|c| format!("a.{}", c.trim()))
            .collect();
        let rows = sqlx::query(&format!(
            "WITH due AS ( \
                SELECT a.id, a.next_poll_at, \
                ROW_NUMBER() OVER (PARTITION BY s.merchant_id ORDER BY a.next_poll_at, a.id) AS turn \
                FROM payment_attempts a JOIN checkout_sessions s ON s.id = a.session_id \
                WHERE a.status IN ('pending', 'unknown') AND a.next_poll_at IS NOT NULL \
                AND a.next_poll_at <= $1 AND s.mode = $2 \
             ) \
             SELECT {} FROM due JOIN payment_attempts a ON a.id = due.id \
             ORDER BY due.turn, due.next_poll_at, due.id LIMIT $3",
            columns.join(", ")
        ))
        .bind(now)
        .bind(mode.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AttemptRecord::from_row).collect()
    }

    /// Takes those of `due` (read by [`Store::attempts_due_for_poll`]) still due at
    /// `now` until `lease_until` (a lease): the next status query is moved there, so
    /// another instance's poller passes over them, and if this one dies mid-query each
    /// is due again when the lease ends. The poller always sets the next query itself
    /// once it has asked. On PostgreSQL the rows are taken `FOR UPDATE SKIP LOCKED`:
    /// instances racing for the same attempts never wait on each other. The others
    /// (taken meanwhile by another instance, or settled) are left out. Returns the
    /// attempts taken, as they are now, in `due`'s order.
    pub async fn claim_attempts_for_poll(
        &self,
        due: Vec<AttemptRecord>,
        mode: Mode,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        if due.is_empty() {
            return Ok(due);
        }
        let ids: Vec<String> = (0..due.len()).map(|i| format!("${}", i + 3)).collect();
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE payment_attempts SET next_poll_at = $1 WHERE id IN ( \
                SELECT id FROM payment_attempts WHERE id IN ({}) \
                AND next_poll_at IS NOT NULL AND next_poll_at <= $2 \
                AND status IN ('pending', 'unknown'){lock} \
             ) RETURNING {ATTEMPT_COLUMNS}",
            ids.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(lease_until).bind(now);
        for a in &due {
            query = query.bind(a.id.as_str());
        }
        let mut taken: std::collections::HashMap<String, AttemptRecord> = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| AttemptRecord::from_row(row).map(|a| (a.id.to_string(), a)))
            .collect::<Result<_, _>>()?;
        let lag = due
            .iter()
            .filter(|a| taken.contains_key(a.id.as_str()))
            .map(|a| now - a.next_poll_at.unwrap_or(now))
            .max()
            .unwrap_or(0);
        crate::metrics::poller_lag(mode, lag);
        Ok(due
            .into_iter()
            .filter_map(|a| taken.remove(a.id.as_str()))
            .collect())
    }

    /// Resumes asking about an attempt left for reconciliation: it had no operator id to
    /// ask with and now has one (the push's answer came late), or the operator's
    /// authentic word says it moved (a PayPal capture held past the reconciliation
    /// time, now completed).
    pub async fn resume_polling(&self, id: &AttemptId, at: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE payment_attempts SET next_poll_at = $2 WHERE id = $1 \
             AND status = 'unknown' AND next_poll_at IS NULL AND operator_request_id IS NOT NULL",
        )
        .bind(id.as_str())
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Brings an open attempt's next status query forward to now (an operator's
    /// callback said something), unless one is due within 5 s anyway: a flood of
    /// callbacks never becomes a flood of queries. Not counted as a poll.
    pub async fn poll_soon(&self, id: &AttemptId, now: i64) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE payment_attempts SET next_poll_at = $2, updated_at = $2 \
             WHERE id = $1 AND (next_poll_at IS NULL OR next_poll_at > $2 + 5000) \
             AND (status = 'pending' OR (status = 'unknown' AND next_poll_at IS NOT NULL))",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Pushes a pending attempt's next poll back and counts the poll; an unknown one
    /// only while it is still being asked about (a reconciled one stays reconciled).
    pub async fn reschedule_poll(
        &self,
        id: &AttemptId,
        next_poll_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE payment_attempts SET next_poll_at = $2, poll_count = poll_count + 1, \
             updated_at = $3 WHERE id = $1 AND (status = 'pending' \
             OR (status = 'unknown' AND next_poll_at IS NOT NULL))",
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
