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
    /// The caller holds the key now, as `claim`: run the request (extending the lease
    /// while it runs), then finish or abandon with the same claim.
    Started { claim: String },
    /// Done before with the same request: send this again.
    Replay { status: u16, body: String },
    /// The same request is still running elsewhere.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

impl Store {
    /// Claims `scope` for a request hashing to `request_hash`. A claim neither finished
    /// nor extended by `now + lock_ms` (the process died) may be taken over; the old
    /// holder's claim id then no longer matches, so it cannot finish or abandon it.
    pub async fn idempotency_begin(
        &self,
        scope: KeyScope<'_>,
        request_hash: &str,
        now: i64,
        lock_ms: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let claim = crate::domain::ids::random_base62(22);
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
             (merchant_id, mode, idem_key, request_hash, state, locked_until, created_at, claim_id) \
             VALUES ($1, $2, $3, $4, 'in_flight', $5, $6, $7) \
             ON CONFLICT (merchant_id, mode, idem_key) DO NOTHING",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .bind(request_hash)
        .bind(now + lock_ms)
        .bind(now)
        .bind(&claim)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(IdempotencyBegin::Started { claim });
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
                "UPDATE idempotency_keys SET locked_until = $4, claim_id = $6 \
                 WHERE merchant_id = $1 AND mode = $2 AND idem_key = $3 \
                 AND state = 'in_flight' AND locked_until = $5",
            )
            .bind(scope.merchant_id.as_str())
            .bind(scope.mode.as_str())
            .bind(scope.key)
            .bind(now + lock_ms)
            .bind(locked_until)
            .bind(&claim)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(IdempotencyBegin::Started { claim });
            }
        }
        Ok(IdempotencyBegin::InFlight)
    }

    /// Keeps holding a claim until `until` while its request still runs. False when the
    /// claim is no longer ours (taken over, finished or abandoned).
    pub async fn idempotency_extend(
        &self,
        scope: KeyScope<'_>,
        claim: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $5 WHERE merchant_id = $1 AND mode = $2 \
             AND idem_key = $3 AND state = 'in_flight' AND claim_id = $4",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .bind(claim)
        .bind(until)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Stores the response to replay for this key, if `claim` still holds it. False
    /// when it does not (the claim was taken over): nothing is written.
    pub async fn idempotency_finish(
        &self,
        scope: KeyScope<'_>,
        claim: &str,
        status: u16,
        body: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $5, response_body = $6 \
             WHERE merchant_id = $1 AND mode = $2 AND idem_key = $3 AND state = 'in_flight' \
             AND claim_id = $4",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .bind(claim)
        .bind(i64::from(status))
        .bind(body)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Releases a claim whose request failed on our side, so a retry runs it again;
    /// only the holder's `claim` can.
    pub async fn idempotency_abandon(
        &self,
        scope: KeyScope<'_>,
        claim: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND mode = $2 \
             AND idem_key = $3 AND state = 'in_flight' AND claim_id = $4",
        )
        .bind(scope.merchant_id.as_str())
        .bind(scope.mode.as_str())
        .bind(scope.key)
        .bind(claim)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
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
