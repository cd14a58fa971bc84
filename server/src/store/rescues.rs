//! Rescues: a shopper's receipt code checked with the operator, for one attempt.

use sqlx::Row;

use super::{Store, StoreError};
use crate::{
    connectors::RailId,
    domain::{AttemptId, SessionId},
};

/// A rescue as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RescueRecord {
    pub id: String,
    pub session_id: SessionId,
    pub attempt_id: AttemptId,
    pub rail: RailId,
    pub receipt: String,
    /// `checking`, `confirmed` or `refused`.
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

impl Store {
    pub async fn rescue(&self, id: &str) -> Result<Option<RescueRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, session_id, attempt_id, rail, receipt, status, detail, created_at \
             FROM rescues WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// The session's newest rescue.
    pub async fn latest_rescue(
        &self,
        session_id: &SessionId,
    ) -> Result<Option<RescueRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, session_id, attempt_id, rail, receipt, status, detail, created_at \
             FROM rescues WHERE session_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(session_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// Records a rescue unless the session had `cap` since `since`: false then. The
    /// session's row is locked first, so parallel requests are counted one after another
    /// (on PostgreSQL as on SQLite) and never pass the cap together.
    pub async fn insert_rescue_capped(
        &self,
        r: &RescueRecord,
        since: i64,
        cap: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE checkout_sessions SET updated_at = updated_at WHERE id = $1")
            .bind(r.session_id.as_str())
            .execute(&mut *tx)
            .await?;
        if rescues_since(&mut tx, &r.session_id, since).await? >= cap {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO rescues (id, session_id, attempt_id, rail, receipt, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.id)
        .bind(r.session_id.as_str())
        .bind(r.attempt_id.as_str())
        .bind(r.rail.as_str())
        .bind(&r.receipt)
        .bind(&r.status)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How many rescues the session had since `since` (its limit).
    pub async fn count_rescues(
        &self,
        session_id: &SessionId,
        since: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        rescues_since(&mut conn, session_id, since).await
    }

    /// Records the operator's answer, once: false when it was decided already.
    pub async fn decide_rescue(
        &self,
        id: &str,
        status: &str,
        detail: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE rescues SET status = $2, detail = $3, decided_at = $4 \
             WHERE id = $1 AND status = 'checking'",
        )
        .bind(id)
        .bind(status)
        .bind(detail)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Other attempts (any session) on `attempt`'s rail, from its payer, of its amount,
    /// pushed within `window_ms` of it, that are pending, unknown, or succeeded without
    /// a receipt: any of them could be the payment a receipt is for.
    pub async fn similar_unsettled(
        &self,
        attempt: &crate::store::AttemptRecord,
        window_ms: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM payment_attempts WHERE rail = $1 AND payer = $2 \
             AND amount_minor = $3 AND currency = $4 AND id <> $5 \
             AND created_at BETWEEN $6 AND $7 \
             AND (status IN ('pending', 'unknown') \
                  OR (status = 'succeeded' AND operator_receipt IS NULL))",
        )
        .bind(attempt.rail.as_str())
        .bind(attempt.payer.as_deref().unwrap_or(""))
        .bind(attempt.amount.minor())
        .bind(attempt.amount.currency().code())
        .bind(attempt.id.as_str())
        .bind(attempt.created_at - window_ms)
        .bind(attempt.created_at + window_ms)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Whether any attempt already carries `receipt` on `rail` (a receipt pays once).
    pub async fn receipt_taken(&self, rail: RailId, receipt: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 AS one FROM payment_attempts WHERE rail = $1 AND operator_receipt = $2",
        )
        .bind(rail.as_str())
        .bind(receipt)
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<RescueRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let rail: String = row.try_get("rail")?;
    Ok(RescueRecord {
        session_id: SessionId::from_db(row.try_get("session_id")?),
        attempt_id: AttemptId::from_db(row.try_get("attempt_id")?),
        rail: RailId::parse(&rail).ok_or_else(|| StoreError::Corrupt {
            table: "rescues",
            id: id.clone(),
            what: format!("rail {rail:?}"),
        })?,
        receipt: row.try_get("receipt")?,
        status: row.try_get("status")?,
        detail: row.try_get("detail")?,
        created_at: row.try_get("created_at")?,
        id,
    })
}

/// How many rescues `session_id` had since `since`, read through `conn`.
async fn rescues_since(
    conn: &mut sqlx::AnyConnection,
    session_id: &SessionId,
    since: i64,
) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM rescues WHERE session_id = $1 AND created_at >= $2")
            .bind(session_id.as_str())
            .bind(since)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?,
    )
}
