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
    /// Kept; settled once M-PESA confirms it ([`Store::settle_verified_paybill`]).
    Verifying,
    /// Settled on the session as its own payment.
    Settled {
        session_id: SessionId,
        attempt_id: AttemptId,
        credited: Credited,
    },
}

/// How a `verifying` Pay Bill payment ends without settling ([`Store::close_paybill`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaybillClosed {
    /// M-PESA named another payment (amount, business number, receipt), or answered
    /// for a day without confirming it.
    Refused,
    /// M-PESA could not be asked about it, or never answered, for a day.
    Unverified,
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
             currency, body, status, received_at) VALUES ($1, $2, '', '', 0, '', $3, 'unreadable', $4)",
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

    /// Pay Bill payments no session took (a mistyped account number, one M-PESA did not
    /// confirm, an unreadable confirmation, one still being checked), newest first:
    /// (receipt, account, amount in minor units, currency, masked payer, received at,
    /// status).
    #[allow(clippy::type_complexity)]
    pub async fn unmatched_paybill(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String, i64, String, Option<String>, i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT receipt, account, amount_minor, currency, payer, received_at, status \
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
                    r.try_get("status")?,
                ))
            })
            .collect()
    }

    /// Keeps a payment the operator confirmed (`body` as it came), once per receipt; on
    /// `session` (already matched by the caller: its account number, business number and
    /// currency), settles it as a payment of its own in the same transaction — or, with
    /// `verify`, leaves it `verifying` until M-PESA confirms it
    /// ([`Store::settle_verified_paybill`]).
    pub async fn record_paybill(
        &self,
        rail: RailId,
        p: &PaybillPayment,
        session: Option<&SessionId>,
        body: &str,
        verify: bool,
        now: i64,
    ) -> Result<PaybillRecorded, StoreError> {
        let status = match (session, verify) {
            (None, _) => "unmatched",
            (Some(_), true) => "verifying",
            (Some(_), false) => "settling",
        };
        let asked = (status == "verifying").then_some(now);
        let mut tx = self.pool.begin().await?;
        let kept = sqlx::query(
            "INSERT INTO paybill_payments (receipt, rail, business, account, amount_minor, \
             currency, payer, session_id, body, status, received_at, checked_at, asking_since) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (receipt) DO NOTHING",
        )
        .bind(&p.receipt)
        .bind(rail.as_str())
        .bind(&p.business)
        .bind(&p.account)
        .bind(p.amount.minor())
        .bind(p.amount.currency().code())
        .bind(p.payer.as_deref())
        .bind(session.map(SessionId::as_str))
        .bind(body)
        .bind(status)
        .bind(now)
        // Asked about from now on (checked_at, asking_since).
        .bind(asked)
        .bind(asked)
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
        if verify {
            tx.commit().await?;
            return Ok(PaybillRecorded::Verifying);
        }
        let settled = settle_in(&mut tx, &self.public_url, rail, p, session_id, now).await?;
        tx.commit().await?;
        Ok(settled)
    }

    /// Settles a `verifying` payment M-PESA confirmed; `None` when it is not verifying
    /// (settled or refused already: a repeated answer).
    pub async fn settle_verified_paybill(
        &self,
        receipt: &str,
        now: i64,
    ) -> Result<Option<PaybillRecorded>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE paybill_payments SET status = 'settling' \
             WHERE receipt = $1 AND status = 'verifying' AND session_id IS NOT NULL",
        )
        .bind(receipt)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            tx.rollback().await?;
            return Ok(None);
        }
        let Some((p, rail, session_id)) = paybill_in(&mut tx, receipt).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let settled = settle_in(&mut tx, &self.public_url, rail, &p, &session_id, now).await?;
        tx.commit().await?;
        Ok(Some(settled))
    }

    /// A `verifying` payment M-PESA did not confirm (`refused`), or could not be asked
    /// about (`unverified`): closed, kept for a person with `detail`. False when it was
    /// not verifying (settled meanwhile: a late answer).
    pub async fn close_paybill(
        &self,
        receipt: &str,
        verdict: PaybillClosed,
        detail: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE paybill_payments SET status = $2, detail = $3 \
             WHERE receipt = $1 AND status = 'verifying'",
        )
        .bind(receipt)
        .bind(match verdict {
            PaybillClosed::Refused => "refused",
            PaybillClosed::Unverified => "unverified",
        })
        .bind(detail)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// M-PESA answered without confirming the payment (it may lag behind its own
    /// confirmation, or fail inside): counted, with its words. The count so far, `None`
    /// when the payment is not verifying.
    pub async fn paybill_missed(
        &self,
        receipt: &str,
        detail: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE paybill_payments SET misses = misses + 1, detail = $2 \
             WHERE receipt = $1 AND status = 'verifying' RETURNING misses",
        )
        .bind(receipt)
        .bind(detail)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Marks a `verifying` payment as asked about again, `now`.
    pub async fn paybill_checked(&self, receipt: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE paybill_payments SET checked_at = $2 WHERE receipt = $1 AND status = 'verifying'",
        )
        .bind(receipt)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A kept payment's status, how many times M-PESA said it knew no such completed
    /// payment, and why it was not settled (if it was not).
    pub async fn paybill_status(
        &self,
        receipt: &str,
    ) -> Result<Option<(String, i64, Option<String>)>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT status, misses, detail FROM paybill_payments WHERE receipt = $1",
            )
            .bind(receipt)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// `verifying` payments due to be asked about again, oldest ask first: last asked
    /// before `before` and asked about since after `young_since`, or last asked before
    /// `slow_before`. (receipt, asked about since, misses).
    pub async fn paybill_unanswered(
        &self,
        before: i64,
        young_since: i64,
        slow_before: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT receipt, asking_since, misses FROM paybill_payments \
             WHERE status = 'verifying' AND checked_at < $1 \
             AND (asking_since > $2 OR checked_at < $3) ORDER BY checked_at LIMIT $4",
        )
        .bind(before)
        .bind(young_since)
        .bind(slow_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Puts a closed payment (`refused`, `unverified`) back to be checked with M-PESA
    /// again (`malipo reconcile --recheck`: after fixing the initiator's credentials).
    /// False when it is not closed that way.
    pub async fn recheck_paybill(&self, receipt: &str, now: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE paybill_payments SET status = 'verifying', misses = 0, checked_at = 0, \
             asking_since = $2 WHERE receipt = $1 AND status IN ('refused', 'unverified') \
             AND session_id IS NOT NULL",
        )
        .bind(receipt)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// A kept payment: what it was, its rail and the session it names.
    pub async fn paybill(
        &self,
        receipt: &str,
    ) -> Result<Option<(PaybillPayment, RailId, SessionId)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        paybill_in(&mut conn, receipt).await
    }
}

/// A kept payment with a session, read through `conn`.
async fn paybill_in(
    conn: &mut sqlx::AnyConnection,
    receipt: &str,
) -> Result<Option<(PaybillPayment, RailId, SessionId)>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT rail, business, account, amount_minor, currency, payer, session_id \
         FROM paybill_payments WHERE receipt = $1",
    )
    .bind(receipt)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let corrupt = |what: String| StoreError::Corrupt {
        table: "paybill_payments",
        id: receipt.to_owned(),
        what,
    };
    let rail = super::parse_column(&row, "rail", "paybill_payments", RailId::parse)?;
    let currency = super::parse_column(
        &row,
        "currency",
        "paybill_payments",
        crate::domain::money::Currency::parse,
    )?;
    let amount = crate::domain::Money::new(row.try_get("amount_minor")?, currency)
        .map_err(|e| corrupt(e.to_string()))?;
    let Some(session_id) = row.try_get::<Option<String>, _>("session_id")? else {
        return Ok(None);
    };
    Ok(Some((
        PaybillPayment {
            receipt: receipt.to_owned(),
            amount,
            business: row.try_get("business")?,
            account: row.try_get("account")?,
            payer: row.try_get("payer")?,
            from_menu: true,
        },
        rail,
        SessionId::from_db(session_id),
    )))
}

/// Settles a kept payment on `session_id` as a payment of its own, in `conn`'s
/// transaction: a receipt some payment already has (a prompt's payment reported here
/// too) is only tied to it; otherwise a succeeded attempt counts towards the session.
async fn settle_in(
    conn: &mut sqlx::AnyConnection,
    public_url: &str,
    rail: RailId,
    p: &PaybillPayment,
    session_id: &SessionId,
    now: i64,
) -> Result<PaybillRecorded, StoreError> {
    let known: Option<(String, String)> = sqlx::query_as(
        "SELECT id, session_id FROM payment_attempts WHERE rail = $1 AND operator_receipt = $2",
    )
    .bind(rail.as_str())
    .bind(&p.receipt)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((attempt_id, known_session)) = known {
        sqlx::query(
            "UPDATE paybill_payments SET session_id = $2, attempt_id = $3, status = 'settled' \
             WHERE receipt = $1",
        )
        .bind(&p.receipt)
        .bind(&known_session)
        .bind(&attempt_id)
        .execute(&mut *conn)
        .await?;
        return Ok(PaybillRecorded::Seen);
    }
    // The session's row first, as every attempt change locks it.
    sqlx::query("UPDATE checkout_sessions SET updated_at = updated_at WHERE id = $1")
        .bind(session_id.as_str())
        .execute(&mut *conn)
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
    .execute(&mut *conn)
    .await?;
    for (kind, to) in [
        ("attempt.created", None),
        ("attempt.succeeded", Some("succeeded")),
    ] {
        insert_event(
            conn,
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
    let attempt = attempt_in(conn, &id)
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            table: "payment_attempts",
            id: id.to_string(),
            what: "vanished after insert".into(),
        })?;
    let credited = settled_in(
        conn,
        public_url,
        &attempt,
        super::AttemptStatus::Succeeded,
        Some(&p.receipt),
        now,
    )
    .await?
    .unwrap_or(Credited::Part);
    sqlx::query(
        "UPDATE paybill_payments SET session_id = $2, attempt_id = $3, status = 'settled' \
         WHERE receipt = $1",
    )
    .bind(&p.receipt)
    .bind(session_id.as_str())
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    crate::metrics::started(rail);
    crate::metrics::settled(rail, "succeeded");
    Ok(PaybillRecorded::Settled {
        session_id: session_id.clone(),
        attempt_id: id,
        credited,
    })
}
