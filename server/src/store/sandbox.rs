//! The sandbox Daraja's pushes (see `crate::sandbox`).

use sqlx::{Row, any::AnyRow};

use super::{Store, StoreError};

/// One STK push the sandbox accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxPush {
    pub checkout_request_id: String,
    pub merchant_request_id: String,
    pub short_code: String,
    pub amount: i64,
    pub phone: String,
    pub account_reference: String,
    pub transaction_desc: String,
    pub callback_url: String,
    pub decided: bool,
    pub result_code: Option<String>,
    pub result_desc: Option<String>,
    pub receipt: Option<String>,
    pub auto_result_code: Option<String>,
    pub auto_at: Option<i64>,
    pub callbacks_due: i64,
    pub callbacks_sent: i64,
    pub callback_at: Option<i64>,
    pub query_hidden_until: Option<i64>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

const COLUMNS: &str = "checkout_request_id, merchant_request_id, short_code, amount, phone, \
     account_reference, transaction_desc, callback_url, state, result_code, result_desc, receipt, \
     auto_result_code, auto_at, callbacks_due, callbacks_sent, callback_at, query_hidden_until, \
     created_at, decided_at";

impl SandboxPush {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let state: String = row.try_get("state")?;
        Ok(SandboxPush {
            checkout_request_id: row.try_get("checkout_request_id")?,
            merchant_request_id: row.try_get("merchant_request_id")?,
            short_code: row.try_get("short_code")?,
            amount: row.try_get("amount")?,
            phone: row.try_get("phone")?,
            account_reference: row.try_get("account_reference")?,
            transaction_desc: row.try_get("transaction_desc")?,
            callback_url: row.try_get("callback_url")?,
            decided: state == "decided",
            result_code: row.try_get("result_code")?,
            result_desc: row.try_get("result_desc")?,
            receipt: row.try_get("receipt")?,
            auto_result_code: row.try_get("auto_result_code")?,
            auto_at: row.try_get("auto_at")?,
            callbacks_due: row.try_get("callbacks_due")?,
            callbacks_sent: row.try_get("callbacks_sent")?,
            callback_at: row.try_get("callback_at")?,
            query_hidden_until: row.try_get("query_hidden_until")?,
            created_at: row.try_get("created_at")?,
            decided_at: row.try_get("decided_at")?,
        })
    }
}

/// How a push was decided.
pub struct SandboxDecision<'a> {
    pub result_code: &'a str,
    pub result_desc: &'a str,
    pub receipt: Option<&'a str>,
    /// When the (first) callback goes out; `None` when it is never delivered.
    pub callback_at: Option<i64>,
    pub query_hidden_until: Option<i64>,
}

impl Store {
    pub async fn insert_sandbox_push(&self, p: &SandboxPush) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO sandbox_daraja_pushes ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', NULL, NULL, NULL, $9, $10, $11, 0, NULL, NULL, $12, NULL)"
        ))
        .bind(&p.checkout_request_id)
        .bind(&p.merchant_request_id)
        .bind(&p.short_code)
        .bind(p.amount)
        .bind(&p.phone)
        .bind(&p.account_reference)
        .bind(&p.transaction_desc)
        .bind(&p.callback_url)
        .bind(p.auto_result_code.as_deref())
        .bind(p.auto_at)
        .bind(p.callbacks_due)
        .bind(p.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn sandbox_push(
        &self,
        checkout_request_id: &str,
    ) -> Result<Option<SandboxPush>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_daraja_pushes WHERE checkout_request_id = $1"
        ))
        .bind(checkout_request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SandboxPush::from_row).transpose()
    }

    /// Prompts waiting on a handset, oldest first.
    pub async fn sandbox_pending_for_phone(
        &self,
        phone: &str,
    ) -> Result<Vec<SandboxPush>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_daraja_pushes WHERE phone = $1 AND state = 'pending' \
             ORDER BY created_at, checkout_request_id"
        ))
        .bind(phone)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SandboxPush::from_row).collect()
    }

    /// Decides a pending push, once. False if it was already decided.
    pub async fn sandbox_decide(
        &self,
        id: &str,
        d: &SandboxDecision<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE sandbox_daraja_pushes SET state = 'decided', result_code = $2, result_desc = $3, \
             receipt = $4, callback_at = $5, query_hidden_until = $6, decided_at = $7, auto_at = NULL \
             WHERE checkout_request_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(d.result_code)
        .bind(d.result_desc)
        .bind(d.receipt)
        .bind(d.callback_at)
        .bind(d.query_hidden_until)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Pending pushes whose scripted (or time-out) outcome is due.
    pub async fn sandbox_due_outcomes(&self, now: i64) -> Result<Vec<SandboxPush>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_daraja_pushes \
             WHERE state = 'pending' AND auto_at IS NOT NULL AND auto_at <= $1 ORDER BY auto_at LIMIT 100"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SandboxPush::from_row).collect()
    }

    /// Decided pushes with a callback due.
    pub async fn sandbox_due_callbacks(&self, now: i64) -> Result<Vec<SandboxPush>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_daraja_pushes \
             WHERE callback_at IS NOT NULL AND callback_at <= $1 ORDER BY callback_at LIMIT 100"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SandboxPush::from_row).collect()
    }

    /// Counts a delivered callback and schedules the next one (a duplicate) or none.
    /// Conditional on the count read, so two workers never deliver the same one twice.
    pub async fn sandbox_callback_sent(
        &self,
        id: &str,
        sent_before: i64,
        next_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE sandbox_daraja_pushes SET callbacks_sent = callbacks_sent + 1, callback_at = $3 \
             WHERE checkout_request_id = $1 AND callbacks_sent = $2",
        )
        .bind(id)
        .bind(sent_before)
        .bind(next_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Forgets decided pushes older than `before` whose callbacks are done (a pending
    /// push or a callback still to send is kept). Returns how many went.
    pub async fn sandbox_purge(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM sandbox_daraja_pushes WHERE state = 'decided' \
             AND callback_at IS NULL AND decided_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// How many pushes to `phone` are still waiting for an answer.
    pub async fn sandbox_pending_count(&self, phone: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM sandbox_daraja_pushes WHERE phone = $1 AND state = 'pending'",
        )
        .bind(phone)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }
}
