//! Checkout sessions.

use serde_json::json;
use sqlx::{Row, any::AnyRow};
use std::collections::BTreeMap;

use super::{NewEvent, Store, StoreError, insert_event, parse_column};
use crate::connectors::RailId;
use crate::domain::{MerchantId, Mode, Money, SessionId, money::Currency, travel::Travel};
use crate::resources::EventType;

/// What [`Store::expire_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The session is expired now.
    Expired,
    /// It was not open (paid, or expired already), or does not exist.
    NotOpen,
    /// A payment attempt is pending: not expired, try again once it settles.
    PaymentPending,
}

/// Whether the session can still be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Complete => "complete",
            SessionStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(SessionStatus::Open),
            "complete" => Some(SessionStatus::Complete),
            "expired" => Some(SessionStatus::Expired),
            _ => None,
        }
    }
}

/// Whether the money is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Unpaid,
    Paid,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Unpaid => "unpaid",
            PaymentStatus::Paid => "paid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unpaid" => Some(PaymentStatus::Unpaid),
            "paid" => Some(PaymentStatus::Paid),
            _ => None,
        }
    }
}

/// A session to create; already validated.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub amount: Money,
    pub reference: String,
    pub description: String,
    pub success_url: String,
    pub cancel_url: String,
    pub customer_phone: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub expires_at: i64,
    /// The rails it may be paid with; `None`: every rail that takes it.
    pub payment_method_types: Option<Vec<RailId>>,
    /// The trip a travel booking pays for, if the merchant said.
    pub travel: Option<Travel>,
}

/// A paid session whose receipt is due by mail.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptDue {
    pub id: SessionId,
    pub email: String,
    /// The language the shopper paid in, if known.
    pub locale: Option<String>,
    pub tries: i64,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub amount: Money,
    pub reference: String,
    pub description: String,
    pub status: SessionStatus,
    pub payment_status: PaymentStatus,
    pub success_url: String,
    pub cancel_url: String,
    pub customer_phone: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The rails it may be paid with, fixed at creation; `None`: every rail that takes
    /// its currency and amount.
    pub payment_method_types: Option<Vec<RailId>>,
    /// The trip a travel booking pays for, if the merchant said.
    pub travel: Option<Travel>,
    /// What its payments have brought so far, in its currency (several parts, or one
    /// payment: the price once paid; more when overpaid).
    pub received_minor: i64,
}

impl SessionRecord {
    /// What is still to pay, in the price's currency (0 once paid).
    pub fn remaining_minor(&self) -> i64 {
        (self.amount.minor() - self.received_minor).max(0)
    }
}

macro_rules! session_columns {
    () => {
        "s.id, s.merchant_id, s.mode, s.amount_minor, s.currency, \
         s.reference, s.description, s.status, s.payment_status, s.success_url, s.cancel_url, \
         s.customer_phone, s.customer_email, s.metadata, s.expires_at, s.created_at, \
         s.updated_at, s.payment_method_types, s.travel, s.amount_received_minor"
    };
}
pub(super) use session_columns as session_columns_text;

/// Every column [`SessionRecord::from_row`] reads (a macro too, so the queries read
/// on every API call and page view are `concat!`ed once, not formatted per call).
pub(super) const SESSION_COLUMNS: &str = session_columns!();

impl SessionRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let corrupt = |what: String| StoreError::Corrupt {
            table: "checkout_sessions",
            id: id.clone(),
            what,
        };
        let currency = parse_column(row, "currency", "checkout_sessions", Currency::parse)?;
        let amount = Money::new(row.try_get("amount_minor")?, currency)
            .map_err(|e| corrupt(e.to_string()))?;
        let metadata: String = row.try_get("metadata")?;
        Ok(SessionRecord {
            merchant_id: MerchantId::from_db(row.try_get("merchant_id")?),
            mode: parse_column(row, "mode", "checkout_sessions", Mode::parse)?,
            amount,
            reference: row.try_get("reference")?,
            description: row.try_get("description")?,
            status: parse_column(row, "status", "checkout_sessions", SessionStatus::parse)?,
            payment_status: parse_column(
                row,
                "payment_status",
                "checkout_sessions",
                PaymentStatus::parse,
            )?,
            success_url: row.try_get("success_url")?,
            cancel_url: row.try_get("cancel_url")?,
            customer_phone: row.try_get("customer_phone")?,
            customer_email: row.try_get("customer_email")?,
            metadata: serde_json::from_str(&metadata).map_err(|e| corrupt(e.to_string()))?,
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            payment_method_types: row
                .try_get::<Option<String>, _>("payment_method_types")?
                .map(|list| {
                    rails_from_json(&list)
                        .ok_or_else(|| corrupt(format!("payment_method_types {list:?}")))
                })
                .transpose()?,
            // An unreadable trip is left out (and logged), never a reason the session
            // itself cannot be read by payments and callbacks.
            travel: row
                .try_get::<Option<String>, _>("travel")?
                .and_then(|t| match serde_json::from_str(&t) {
                    Ok(travel) => Some(travel),
                    Err(e) => {
                        tracing::error!(session = %id, error = %e, "a stored trip does not read; left out");
                        None
                    }
                }),
            received_minor: row.try_get("amount_received_minor")?,
            id: SessionId::from_db(id.clone()),
        })
    }
}

/// A session read through `conn` (inside a transaction, it sees the transaction's own
/// writes).
pub(crate) async fn session_in(
    conn: &mut sqlx::AnyConnection,
    id: &SessionId,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM checkout_sessions s WHERE s.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(SessionRecord::from_row).transpose()
}

/// Runs `statements` — a whole SQLite transaction, `BEGIN; …; COMMIT` — in one trip to
/// the connection's thread, so the write lock is never held while this task waits to
/// be scheduled again. The trip runs in a task of its own: a request dropped midway
/// (its client gone) would otherwise stop reading the statements' results, and SQLite's
/// worker stops at the first result nobody reads, leaving the transaction open on a
/// connection the pool hands out again. For the same reason a connection whose
/// statements failed is closed, not pooled (closing rolls back whatever ran).
async fn one_trip(
    pool: &sqlx::AnyPool,
    statements: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments<'static>>,
) -> Result<(), StoreError> {
    let pool = pool.clone();
    let trip = tokio::spawn(async move {
        let mut conn = pool.acquire().await?;
        if let Err(e) = statements.execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(())
    });
    match trip.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(_) => Err(sqlx::Error::PoolClosed.into()),
    }
}

impl Store {
    /// Creates a session and logs `session.created`, atomically, in one trip to the
    /// database: creating sessions is the API's busiest write, and on SQLite every trip
    /// taken while holding the write lock keeps every other writer waiting.
    /// PostgreSQL: one statement (the event row is inserted from the session's
    /// `RETURNING`). SQLite, which has no inserting `WITH`: the whole transaction as one
    /// statement list, run to its end on the connection's thread ([`one_trip`]). The
    /// event is the one [`insert_event`] would write.
    pub async fn insert_session(
        &self,
        new: &NewSession,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        /// `INSERT … VALUES` of a session; `$18` is its event's detail, and the event's
        /// time is the session's (`$16`).
        macro_rules! insert_session_row {
            () => {
                "INSERT INTO checkout_sessions (id, merchant_id, mode, amount_minor, currency, \
                 reference, description, status, payment_status, success_url, cancel_url, \
                 customer_phone, customer_email, metadata, expires_at, created_at, \
                 updated_at, payment_method_types, travel) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $16, $17, $19)"
            };
        }
        const POSTGRES: &str = concat!(
            "WITH s AS (",
            insert_session_row!(),
            " RETURNING id) \
             INSERT INTO payment_events (session_id, kind, to_status, detail, created_at) \
             SELECT id, 'session.created', 'open', $18, $16 FROM s"
        );
        const SQLITE: &str = concat!(
            "BEGIN; ",
            insert_session_row!(),
            "; INSERT INTO payment_events (session_id, kind, to_status, detail, created_at) \
             VALUES ($1, 'session.created', 'open', $18, $16); COMMIT"
        );
        let record = SessionRecord {
            id: SessionId::generate(),
            merchant_id: new.merchant_id.clone(),
            mode: new.mode,
            amount: new.amount,
            reference: new.reference.clone(),
            description: new.description.clone(),
            status: SessionStatus::Open,
            payment_status: PaymentStatus::Unpaid,
            success_url: new.success_url.clone(),
            cancel_url: new.cancel_url.clone(),
            customer_phone: new.customer_phone.clone(),
            customer_email: new.customer_email.clone(),
            metadata: new.metadata.clone(),
            expires_at: new.expires_at,
            created_at: now,
            updated_at: now,
            payment_method_types: new.payment_method_types.clone(),
            travel: new.travel.clone(),
            received_minor: 0,
        };
        let insert = sqlx::query(match self.backend {
            super::Backend::Postgres => POSTGRES,
            super::Backend::Sqlite => SQLITE,
        })
        .bind(record.id.as_str().to_owned())
        .bind(record.merchant_id.as_str().to_owned())
        .bind(record.mode.as_str())
        .bind(record.amount.minor())
        .bind(record.amount.currency().code())
        .bind(record.reference.clone())
        .bind(record.description.clone())
        .bind(record.status.as_str())
        .bind(record.payment_status.as_str())
        .bind(record.success_url.clone())
        .bind(record.cancel_url.clone())
        .bind(record.customer_phone.clone())
        .bind(record.customer_email.clone())
        .bind(serde_json::to_string(&record.metadata).unwrap_or_else(|_| "{}".into()))
        .bind(record.expires_at)
        .bind(record.created_at)
        .bind(record.payment_method_types.as_deref().map(rails_to_json))
        .bind(
            json!({
                "amount": record.amount.minor(),
                "currency": record.amount.currency().code(),
                "expires_at": record.expires_at,
            })
            .to_string(),
        )
        .bind(
            record
                .travel
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
        );
        match self.backend {
            super::Backend::Postgres => {
                insert.execute(&self.pool).await?;
            }
            super::Backend::Sqlite => one_trip(&self.pool, insert).await?,
        }
        Ok(record)
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        session_in(&mut conn, id).await
    }

    /// Sessions `ids`, each with its latest attempt, as [`Store::session`] and
    /// [`Store::latest_attempt`] read them one at a time, in two queries: the live hub's
    /// sweep over every followed page. Ids with no session are left out.
    pub async fn sessions_with_latest_attempts(
        &self,
        ids: &[SessionId],
    ) -> Result<Vec<(SessionRecord, Option<super::AttemptRecord>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let marks = marks.join(", ");
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM checkout_sessions s WHERE s.id IN ({marks})");
        let mut sessions = sqlx::query(&sql);
        for id in ids {
            sessions = sessions.bind(id.as_str());
        }
        let sessions = sessions.fetch_all(&self.pool).await?;
        let cols = super::attempts::ATTEMPT_COLUMNS;
        let sql = format!(
            "SELECT {cols} FROM (SELECT {cols}, ROW_NUMBER() OVER ( \
                PARTITION BY session_id ORDER BY created_at DESC, id DESC) AS newest \
                FROM payment_attempts WHERE session_id IN ({marks})) latest WHERE newest = 1"
        );
        let mut attempts = sqlx::query(&sql);
        for id in ids {
            attempts = attempts.bind(id.as_str());
        }
        let mut latest: std::collections::HashMap<String, super::AttemptRecord> = attempts
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| super::AttemptRecord::from_row(row).map(|a| (a.session_id.to_string(), a)))
            .collect::<Result<_, _>>()?;
        sessions
            .iter()
            .map(|row| {
                let session = SessionRecord::from_row(row)?;
                let attempt = latest.remove(session.id.as_str());
                Ok((session, attempt))
            })
            .collect()
    }

    /// A session with its merchant's display name, for the hosted page.
    pub async fn session_for_page(
        &self,
        id: &SessionId,
    ) -> Result<Option<(SessionRecord, String)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", m.name AS merchant_name FROM checkout_sessions s \
             JOIN merchants m ON m.id = s.merchant_id WHERE s.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok((
                SessionRecord::from_row(&row)?,
                row.try_get("merchant_name")?,
            ))
        })
        .transpose()
    }

    /// Expires one open session (the merchant asked, or its time ran out), unless a
    /// payment attempt is pending: its prompt may still be answered, so the shopper must
    /// not read "expired" while they can type their PIN. Writes
    /// `checkout.session.expired` to the webhook outbox in the same transaction.
    pub async fn expire_session(
        &self,
        id: &SessionId,
        now: i64,
        reason: &str,
    ) -> Result<Expiry, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the session row first: an attempt being inserted holds it until it
        // commits, so the pending check below sees that attempt (see `insert_attempt`).
        let exists =
            sqlx::query("UPDATE checkout_sessions SET updated_at = updated_at WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if !exists {
            tx.rollback().await?;
            return Ok(Expiry::NotOpen);
        }
        let pending = sqlx::query(
            "SELECT 1 AS one FROM payment_attempts WHERE session_id = $1 AND status = 'pending'",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if pending {
            tx.rollback().await?;
            return Ok(Expiry::PaymentPending);
        }
        let changed = sqlx::query(
            "UPDATE checkout_sessions SET status = 'expired', updated_at = $2 \
             WHERE id = $1 AND status = 'open'",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            tx.rollback().await?;
            return Ok(Expiry::NotOpen);
        }
        insert_event(
            &mut tx,
            NewEvent {
                session_id: id.as_str(),
                attempt_id: None,
                kind: "session.expired",
                from_status: Some("open"),
                to_status: Some("expired"),
                detail: json!({ "reason": reason }),
                at: now,
            },
        )
        .await?;
        super::outbox::enqueue_session_event(
            &mut tx,
            &self.public_url,
            id,
            EventType::CheckoutSessionExpired,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Expiry::Expired)
    }

    /// Remembers the language the shopper paid in (for their receipt); a write only
    /// when it changed.
    pub async fn set_session_locale(&self, id: &SessionId, locale: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE checkout_sessions SET locale = $2 \
             WHERE id = $1 AND (locale IS NULL OR locale <> $2)",
        )
        .bind(id.as_str())
        .bind(locale)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Paid sessions whose receipt should be mailed now (to `customer_email`): each
    /// with its tries so far and the language the shopper paid in, oldest first.
    pub async fn receipts_due(
        &self,
        now: i64,
        max_tries: i64,
        limit: i64,
    ) -> Result<Vec<ReceiptDue>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, customer_email, locale, receipt_mail_tries FROM checkout_sessions \
             WHERE payment_status = 'paid' AND customer_email IS NOT NULL \
             AND receipt_mailed_at IS NULL AND receipt_mail_tries < $2 \
             AND (receipt_mail_next IS NULL OR receipt_mail_next <= $1) \
             ORDER BY updated_at LIMIT $3",
        )
        .bind(now)
        .bind(max_tries)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ReceiptDue {
                    id: SessionId::from_db(row.try_get("id")?),
                    email: row.try_get("customer_email")?,
                    locale: row.try_get("locale")?,
                    tries: row.try_get("receipt_mail_tries")?,
                })
            })
            .collect()
    }

    /// Takes a due receipt for one try (`tries` as read), not to be tried again before
    /// `next`: false when another instance took it first.
    pub async fn claim_receipt_mail(
        &self,
        id: &SessionId,
        tries: i64,
        next: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE checkout_sessions SET receipt_mail_tries = receipt_mail_tries + 1, \
             receipt_mail_next = $3 \
             WHERE id = $1 AND receipt_mail_tries = $2 AND receipt_mailed_at IS NULL",
        )
        .bind(id.as_str())
        .bind(tries)
        .bind(next)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A receipt whose try failed waits until `next` for another.
    pub async fn hold_receipt_mail(&self, id: &SessionId, next: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE checkout_sessions SET receipt_mail_next = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(next)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The receipt went out.
    pub async fn receipt_mailed(&self, id: &SessionId, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE checkout_sessions SET receipt_mailed_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many sessions a merchant has in a mode.
    pub async fn count_sessions(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM checkout_sessions WHERE merchant_id = $1 AND mode = $2",
        )
        .bind(merchant_id.as_str())
        .bind(mode.as_str())
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Ids of open sessions whose time is up, oldest first, except those with a pending
    /// attempt (they expire once it settles unpaid).
    pub async fn sessions_due_to_expire(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<SessionId>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id FROM checkout_sessions s WHERE s.status = 'open' \
             AND s.expires_at <= $1 AND NOT EXISTS (SELECT 1 FROM payment_attempts a \
             WHERE a.session_id = s.id AND a.status = 'pending') \
             ORDER BY s.expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(SessionId::from_db(r.try_get("id")?)))
            .collect()
    }
}

/// A list of rails as stored: a JSON array of their names (`["mpesa","airtel"]`).
pub(crate) fn rails_to_json(rails: &[RailId]) -> String {
    serde_json::Value::from(rails.iter().map(|r| r.as_str()).collect::<Vec<_>>()).to_string()
}

/// A stored list of rails; `None` if it is not a list of names. A name this build does
/// not know (written by a newer one) is left out, and logged: the list only narrows.
pub(crate) fn rails_from_json(list: &str) -> Option<Vec<RailId>> {
    let names = serde_json::from_str::<Vec<String>>(list).ok()?;
    Some(
        names
            .iter()
            .filter_map(|name| {
                let rail = RailId::parse(name);
                if rail.is_none() {
                    tracing::warn!(%name, "a stored list names a rail this build does not know; left out");
                }
                rail
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rail_lists_round_trip_and_unknown_names_only_narrow() {
        let list = [RailId::Mpesa, RailId::Airtel];
        assert_eq!(rails_from_json(&rails_to_json(&list)), Some(list.to_vec()));
        assert_eq!(
            rails_from_json(r#"["mpesa","a_rail_from_a_newer_build"]"#),
            Some(vec![RailId::Mpesa])
        );
        assert_eq!(
            rails_from_json(r#"["a_rail_from_a_newer_build"]"#),
            Some(vec![])
        );
        assert_eq!(rails_from_json("mpesa"), None);
    }
}
