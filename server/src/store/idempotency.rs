//! Idempotency keys: claim, replay, finish, abandon.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{MerchantId, Mode};

/// Who the key belongs to: keys are scoped per merchant and mode.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub merchant_id: &'a MerchantId,
    pub mode: Mode,
    pub key: &'a str,
}

/// What [`Store::idempotency_begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// The caller holds the key now: run the request, then finish or abandon.
    Started,
    /// Done before with the same request: send this again.
    Replay { status: u16, body: String },
    /// The same request is still running elsewhere.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

impl Store {
    /// Claims `scope` for a request hashing to `request_hash`. A claim not finished by
    /// `now + lock_ms` (the process died, the client vanished) may be taken over.
    pub async fn idempotency_begin(
        &self,
        scope: KeyScope<'_>,
        request_hash: &str,
        now: i64,
        lock_ms: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
             (merchant_id, mode, idem_key, request_hash, state, locked_until, created_at) \
             VALUES ($1, $2, $3, $4, 'in_flight', $5, $6) \
             ON CONFLICT (merchant_id, mode, idem_key) DO NOTHING",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .bind(request_hash)
        .bind(now + lock_ms)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = sqlx::query(
            "SELECT request_hash, state, response_status, response_body, locked_until \
             FROM idempotency_keys WHERE merchant_id = $1 AND mode = $2 AND idem_key = $3",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Abandoned and deleted between our insert and select: claim it afresh.
            return Box::pin(self.idempotency_begin(scope, request_hash, now, lock_ms)).await;
        };
        let stored_hash: String = row.try_get("request_hash")?;
        if stored_hash != request_hash {
            return Ok(IdempotencyBegin::Mismatch);
        }
        let state: String = row.try_get("state")?;
        if state == "done" {
            let status: Option<i64> = row.try_get("response_status")?;
            let body: Option<String> = row.try_get("response_body")?;
            return Ok(IdempotencyBegin::Replay {
                status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(500),
                body: body.unwrap_or_default(),
            });
        }
        let locked_until: i64 = row.try_get("locked_until")?;
        if locked_until < now {
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET locked_until = $4 \
                 WHERE merchant_id = $1 AND mode = $2 AND idem_key = $3 \
                 AND state = 'in_flight' AND locked_until = $5",
            )
            .bind(scope.merchant_id.as_str())
            .bind(scope.mode.as_str())
            .bind(scope.key)
            .bind(now + lock_ms)
            .bind(locked_until)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(IdempotencyBegin::Started);
            }
        }
        Ok(IdempotencyBegin::InFlight)
    }

    /// Stores the response to replay for this key.
    pub async fn idempotency_finish(
        &self,
        scope: KeyScope<'_>,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $4, response_body = $5 \
             WHERE merchant_id = $1 AND mode = $2 AND idem_key = $3 AND state = 'in_flight'",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .bind(i64::from(status))
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Releases a claim whose request failed on our side, so a retry runs it again.
    pub async fn idempotency_abandon(&self, scope: KeyScope<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE merchant_id = $1 AND mode = $2 AND idem_key = $3 AND state = 'in_flight'",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets keys created before `before` (the API keeps them at least 7 days).
    pub async fn idempotency_purge(&self, before: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
