//! Every sandbox operator's requests, in one table (`sandbox_requests`). The core store
//! does not know about them: this module adds the sandbox's own queries to [`Store`],
//! on the same pool.

use serde_json::{Map, Value};
use sqlx::{Row, any::AnyRow};

use crate::{
    connectors::RailId,
    domain::money::Currency,
    store::{Store, StoreError, parse_column},
};

/// One request an operator accepted (an STK push, a request to pay, …).
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRequest {
    pub operator: RailId,
    /// The operator's id for it (Daraja's CheckoutRequestID, MTN's X-Reference-Id).
    pub id: String,
    /// International digits.
    pub phone: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    /// Whom the prompt says is paid.
    pub payee: String,
    /// The account number or note the prompt shows.
    pub reference: String,
    /// Where callbacks go; `None`: the operator sends none.
    pub callback_url: Option<String>,
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
    /// What only this operator has (Daraja's `MerchantRequestID`, MTN's `externalId`).
    pub wire: Map<String, Value>,
    /// For a refund (a reversal): the id of the payment it returns. `None`: a push.
    pub refund_of: Option<String>,
}

impl SandboxRequest {
    /// A field of the operator's own, as text.
    pub fn wire_str(&self, key: &str) -> &str {
        self.wire.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The amount in whole units (the sandbox's operators never take fractions).
    pub fn whole_amount(&self) -> i64 {
        self.amount / 10i64.pow(self.currency.exponent())
    }
}

const COLUMNS: &str = "operator, id, phone, amount, currency, payee, reference, callback_url, \
     state, result_code, result_desc, receipt, auto_result_code, auto_at, callbacks_due, \
     callbacks_sent, callback_at, query_hidden_until, created_at, decided_at, wire, refund_of";

fn from_row(row: &AnyRow) -> Result<SandboxRequest, StoreError> {
    const TABLE: &str = "sandbox_requests";
    let state: String = row.try_get("state")?;
    let id: String = row.try_get("id")?;
    let wire: String = row.try_get("wire")?;
    Ok(SandboxRequest {
        operator: parse_column(row, "operator", TABLE, RailId::parse)?,
        wire: serde_json::from_str(&wire).map_err(|e| StoreError::Corrupt {
            table: TABLE,
            id: id.clone(),
            what: format!("wire: {e}"),
        })?,
        id,
        phone: row.try_get("phone")?,
        amount: row.try_get("amount")?,
        currency: parse_column(row, "currency", TABLE, Currency::parse)?,
        payee: row.try_get("payee")?,
        reference: row.try_get("reference")?,
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
        refund_of: row.try_get("refund_of")?,
    })
}

/// What an operator took: the framework adds the scripted behaviour and the state.
pub struct NewRequest {
    pub operator: RailId,
    pub id: String,
    pub phone: String,
    pub amount: i64,
    pub currency: Currency,
    pub payee: String,
    pub reference: String,
    pub callback_url: Option<String>,
    pub wire: Map<String, Value>,
    /// For a refund: the payment's request id.
    pub refund_of: Option<String>,
}

impl SandboxRequest {
    /// A new request, pending, with what the phone number scripts (`b`), made `now`.
    pub fn pending(new: NewRequest, b: &super::behaviour::Behaviour, now: i64) -> SandboxRequest {
        SandboxRequest {
            operator: new.operator,
            id: new.id,
            phone: new.phone,
            amount: new.amount,
            currency: new.currency,
            payee: new.payee,
            reference: new.reference,
            callback_url: new.callback_url,
            decided: false,
            result_code: None,
            result_desc: None,
            receipt: None,
            auto_result_code: b.auto.map(|(code, _, _)| code.to_owned()),
            auto_at: b.auto.map(|(_, _, ms)| now + ms),
            callbacks_due: b.callbacks,
            callbacks_sent: 0,
            callback_at: None,
            query_hidden_until: None,
            created_at: now,
            decided_at: None,
            wire: new.wire,
            refund_of: new.refund_of,
        }
    }
}

/// How a request was decided.
pub struct SandboxDecision<'a> {
    pub result_code: &'a str,
    pub result_desc: &'a str,
    pub receipt: Option<&'a str>,
    /// When the (first) callback goes out; `None` when it is never delivered.
    pub callback_at: Option<i64>,
    pub query_hidden_until: Option<i64>,
}

impl Store {
    /// Stores a new request (pending, or already decided when the operator took the money
    /// without a prompt: a menu payment). False if the operator already has one with this id (MTN's
    /// reused `X-Reference-Id`).
    pub async fn insert_sandbox_request(&self, p: &SandboxRequest) -> Result<bool, StoreError> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO sandbox_requests ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $15, $16, $17, $18, $9, $10, $11, 0, NULL, NULL, $12, $19, $13, $14) \
             ON CONFLICT (operator, id) DO NOTHING"
        ))
        .bind(p.operator.as_str())
        .bind(&p.id)
        .bind(&p.phone)
        .bind(p.amount)
        .bind(p.currency.code())
        .bind(&p.payee)
        .bind(&p.reference)
        .bind(p.callback_url.as_deref())
        .bind(p.auto_result_code.as_deref())
        .bind(p.auto_at)
        .bind(p.callbacks_due)
        .bind(p.created_at)
        .bind(Value::Object(p.wire.clone()).to_string())
        .bind(p.refund_of.as_deref())
        .bind(if p.decided { "decided" } else { "pending" })
        .bind(p.result_code.as_deref())
        .bind(p.result_desc.as_deref())
        .bind(p.receipt.as_deref())
        .bind(p.decided_at)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// One operator's request by its id.
    pub async fn sandbox_request(
        &self,
        operator: RailId,
        id: &str,
    ) -> Result<Option<SandboxRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests WHERE operator = $1 AND id = $2"
        ))
        .bind(operator.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A request shown on `phone`'s handset, by its id (from any operator).
    pub async fn sandbox_request_on_phone(
        &self,
        phone: &str,
        id: &str,
    ) -> Result<Option<SandboxRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests WHERE phone = $1 AND id = $2 \
             AND refund_of IS NULL ORDER BY created_at LIMIT 1"
        ))
        .bind(phone)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Prompts waiting on a handset, oldest first, from every operator.
    pub async fn sandbox_pending_for_phone(
        &self,
        phone: &str,
    ) -> Result<Vec<SandboxRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests WHERE phone = $1 AND state = 'pending' \
             AND refund_of IS NULL ORDER BY created_at, id"
        ))
        .bind(phone)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Decides a pending request, once. False if it was already decided.
    pub async fn sandbox_decide(
        &self,
        operator: RailId,
        id: &str,
        d: &SandboxDecision<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE sandbox_requests SET state = 'decided', result_code = $3, result_desc = $4, \
             receipt = $5, callback_at = $6, query_hidden_until = $7, decided_at = $8, auto_at = NULL \
             WHERE operator = $1 AND id = $2 AND state = 'pending'",
        )
        .bind(operator.as_str())
        .bind(id)
        .bind(d.result_code)
        .bind(d.result_desc)
        .bind(d.receipt)
        .bind(d.callback_at)
        .bind(d.query_hidden_until)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Pending requests whose scripted (or time-out) outcome is due.
    pub async fn sandbox_due_outcomes(&self, now: i64) -> Result<Vec<SandboxRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests \
             WHERE state = 'pending' AND auto_at IS NOT NULL AND auto_at <= $1 ORDER BY auto_at LIMIT 100"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Requests with a callback due.
    pub async fn sandbox_due_callbacks(&self, now: i64) -> Result<Vec<SandboxRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests \
             WHERE callback_at IS NOT NULL AND callback_at <= $1 ORDER BY callback_at LIMIT 100"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Counts a delivered callback and schedules the next one (a duplicate) or none.
    /// Conditional on the count read, so two workers never deliver the same one twice.
    pub async fn sandbox_callback_sent(
        &self,
        operator: RailId,
        id: &str,
        sent_before: i64,
        next_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE sandbox_requests SET callbacks_sent = callbacks_sent + 1, callback_at = $4 \
             WHERE operator = $1 AND id = $2 AND callbacks_sent = $3",
        )
        .bind(operator.as_str())
        .bind(id)
        .bind(sent_before)
        .bind(next_at)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Forgets decided requests older than `before` whose callbacks are done (a pending
    /// one or a callback still to send is kept); those that moved money (a paid push, a
    /// refund made) are kept until `paid_before`, so a payment can still be refunded
    /// days later. Returns how many went.
    pub async fn sandbox_purge(&self, before: i64, paid_before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM sandbox_requests WHERE state = 'decided' \
             AND callback_at IS NULL AND decided_at < $1 \
             AND (receipt IS NULL OR decided_at < $2)",
        )
        .bind(before)
        .bind(paid_before)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// How many requests to `phone` are still waiting for an answer, from any operator.
    pub async fn sandbox_pending_count(&self, phone: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM sandbox_requests WHERE phone = $1 AND state = 'pending' \
             AND refund_of IS NULL",
        )
        .bind(phone)
        .fetch_one(self.pool())
        .await?
        .try_get("n")?)
    }

    /// A paid push, by the operator's receipt for it (Daraja's `TransactionID`, Airtel's
    /// `airtel_money_id`).
    pub async fn sandbox_paid_by_receipt(
        &self,
        operator: RailId,
        receipt: &str,
    ) -> Result<Option<SandboxRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests WHERE operator = $1 AND receipt = $2 \
             AND refund_of IS NULL"
        ))
        .bind(operator.as_str())
        .bind(receipt)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The refunds an operator took of payment `of` (its request id), oldest first.
    pub async fn sandbox_refunds_of(
        &self,
        operator: RailId,
        of: &str,
    ) -> Result<Vec<SandboxRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandbox_requests WHERE operator = $1 AND refund_of = $2 \
             ORDER BY created_at, id"
        ))
        .bind(operator.as_str())
        .bind(of)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
