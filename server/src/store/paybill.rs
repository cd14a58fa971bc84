//! Payments made from the wallet's own menu to the business number (M-PESA's Pay Bill):
//! each session's short account number, and every payment the operator reported, kept
//! once per receipt and, when its account number names a session, settled on it as a
//! payment of its own (a part, the whole, or more: see `attempts::credit_session`).

use serde_json::json;
use sqlx::Row;

use super::{
    NewEvent, Store, StoreError,
    attempts::{Credited, attempt_in, settled_in},
    insert_event,
    sessions::SessionRecord,
};
use crate::{
    connectors::{PaybillPayment, RailId},
    domain::{AttemptId, SessionId},
};

/// What [`Store::record_paybill`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaybillRecorded {
    /// This receipt was reported before (a repeated confirmation): nothing new.
    Seen,
    /// Kept, but it names no session (a mistyped account number): for a person to match.
    Unmatched,
    /// Settled on the session as its own payment.
    Settled {
        session_id: SessionId,
        attempt_id: AttemptId,
        credited: Credited,
    },
}

/// The account numbers' letters: no 0/O, 1/I/L, which a shopper would confuse on a phone.
const CODE_LETTERS: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Seven of them: 27 billion codes, short enough to type on a feature phone.
const CODE_LEN: usize = 7;

fn new_code() -> String {
    crate::domain::ids::random_base62(CODE_LEN * 2)
        .bytes()
        .map(|b| CODE_LETTERS[usize::from(b) % CODE_LETTERS.len()] as char)
        .take(CODE_LEN)
        .collect()
}

/// An account number as a shopper may have typed it: trimmed, upper case, no spaces.
pub fn normalise_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

impl Store {
    /// The session's account number for paying from the menu, given out on first ask.
    pub async fn pay_code(&self, id: &SessionId) -> Result<Option<String>, StoreError> {
        for _ in 0..3 {
            let set = sqlx::query(
                "UPDATE checkout_sessions SET pay_code = $2 WHERE id = $1 AND pay_code IS NULL",
            )
            .bind(id.as_str())
            .bind(new_code())
            .execute(&self.pool)
            .await;
            match set {
                Ok(_) => break,
                // Another session has that code: another draw.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let row = sqlx::query("SELECT pay_code FROM checkout_sessions WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("pay_code")?,
            None => None,
        })
    }

    /// The session an account number names, if any.
    pub async fn session_by_pay_code(
        &self,
        typed: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let code = normalise_code(typed);
        if code.len() != CODE_LEN {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            super::sessions::session_columns_text!(),
            " FROM checkout_sessions s WHERE s.pay_code = $1"
        ))
        .bind(&code)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SessionRecord::from_row).transpose()
    }

    /// Keeps a confirmation that could not be read, as it came (under a made-up key):
    /// money may stand behind it, for a person to match.
    pub async fn keep_unreadable_paybill(
        &self,
        rail: RailId,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO paybill_payments (receipt, rail, business, account, amount_minor, \
             currency, body, received_at) VALUES ($1, $2, '', '', 0, '', $3, $4)",
        )
        .bind(format!(
            "unreadable:{}",
            crate::domain::ids::random_base62(16)
        ))
        .bind(rail.as_str())
        .bind(body.chars().take(16_384).collect::<String>())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pay Bill payments no session took (a mistyped account number, an unreadable
    /// confirmation), newest first: (receipt, account, amount in minor units, currency,
    /// masked payer, received at).
    pub async fn unmatched_paybill(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String, i64, String, Option<String>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT receipt, account, amount_minor, currency, payer, received_at \
             FROM paybill_payments WHERE attempt_id IS NULL ORDER BY received_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("receipt")?,
                    r.try_get("account")?,
                    r.try_get("amount_minor")?,
                    r.try_get("currency")?,
                    r.try_get::<Option<String>, _>("payer")?
                        .as_deref()
                        .map(crate::domain::phone::mask),
                    r.try_get("received_at")?,
                ))
            })
            .collect()
    }

    /// Keeps a payment the operator confirmed (`body` as it came), once per receipt; on
    /// `session` (already matched by the caller: its account number, business number and
    /// currency), settles it as a payment of its own, in the same transaction.
    pub async fn record_paybill(
        &self,
        rail: RailId,
        p: &PaybillPayment,
        session: Option<&SessionId>,
        body: &str,
        now: i64,
    ) -> Result<PaybillRecorded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let kept = sqlx::query(
            "INSERT INTO paybill_payments (receipt, rail, business, account, amount_minor, \
             currency, payer, body, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (receipt) DO NOTHING",
        )
        .bind(&p.receipt)
        .bind(rail.as_str())
        .bind(&p.business)
        .bind(&p.account)
        .bind(p.amount.minor())
        .bind(p.amount.currency().code())
        .bind(p.payer.as_deref())
        .bind(body)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !kept {
            tx.rollback().await?;
            return Ok(PaybillRecorded::Seen);
        }
        let Some(session_id) = session else {
            tx.commit().await?;
            return Ok(PaybillRecorded::Unmatched);
        };
        // A receipt some payment already has (a prompt's payment reported here too):
        // kept, tied to it, nothing settled twice.
        let known: Option<(String, String)> = sqlx::query_as(
            "SELECT id, session_id FROM payment_attempts WHERE rail = $1 AND operator_receipt = $2",
        )
        .bind(rail.as_str())
        .bind(&p.receipt)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((attempt_id, known_session)) = known {
            sqlx::query(
                "UPDATE paybill_payments SET session_id = $2, attempt_id = $3 WHERE receipt = $1",
            )
            .bind(&p.receipt)
            .bind(&known_session)
            .bind(&attempt_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(PaybillRecorded::Seen);
        }
        // The session's row first, as every attempt change locks it.
        sqlx::query("UPDATE checkout_sessions SET updated_at = updated_at WHERE id = $1")
            .bind(session_id.as_str())
            .execute(&mut *tx)
            .await?;
        let id = AttemptId::generate();
        sqlx::query(
            "INSERT INTO payment_attempts (id, session_id, rail, status, amount_minor, currency, \
             payer, operator_request_id, operator_receipt, created_at, updated_at, finalized_at, \
             credit_minor) VALUES ($1, $2, $3, 'succeeded', $4, $5, $6, $7, $7, $8, $8, $8, $4)",
        )
        .bind(id.as_str())
        .bind(session_id.as_str())
        .bind(rail.as_str())
        .bind(p.amount.minor())
        .bind(p.amount.currency().code())
        .bind(p.payer.as_deref())
        .bind(&p.receipt)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (kind, to) in [
            ("attempt.created", None),
            ("attempt.succeeded", Some("succeeded")),
        ] {
            insert_event(
                &mut tx,
                NewEvent {
                    session_id: session_id.as_str(),
                    attempt_id: Some(id.as_str()),
                    kind,
                    from_status: None,
                    to_status: to,
                    detail: json!({ "rail": rail.as_str(), "source": "paybill", "receipt": p.receipt }),
                    at: now,
                },
            )
            .await?;
        }
        let attempt = attempt_in(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                table: "payment_attempts",
                id: id.to_string(),
                what: "vanished after insert".into(),
            })?;
        let credited = settled_in(
            &mut tx,
            &self.public_url,
            &attempt,
            super::AttemptStatus::Succeeded,
            Some(&p.receipt),
            now,
        )
        .await?
        .unwrap_or(Credited::Part);
        sqlx::query(
            "UPDATE paybill_payments SET session_id = $2, attempt_id = $3 WHERE receipt = $1",
        )
        .bind(&p.receipt)
        .bind(session_id.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        crate::metrics::started(rail);
        crate::metrics::settled(rail, "succeeded");
        Ok(PaybillRecorded::Settled {
            session_id: session_id.clone(),
            attempt_id: id,
            credited,
        })
    }
}
