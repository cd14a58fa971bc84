//! What the merchant's dashboard reads: payments (checkout sessions with their
//! attempts and refunds), filtered and searched.

use sqlx::Row;

use super::{
    AttemptRecord, SessionRecord, Store, StoreError, attempts::ATTEMPT_COLUMNS,
    sessions::SESSION_COLUMNS,
};
use crate::{
    connectors::RailId,
    domain::{MerchantId, Mode, SessionId},
};

/// The status filter of the payments list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStatus {
    Paid,
    Open,
    Expired,
    /// Some of it (or all) refunded.
    Refunded,
    /// Needs a person: an unknown outcome or a duplicate payment.
    Attention,
}

impl ListStatus {
    pub const ALL: [ListStatus; 5] = [
        ListStatus::Paid,
        ListStatus::Open,
        ListStatus::Expired,
        ListStatus::Refunded,
        ListStatus::Attention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListStatus::Paid => "paid",
            ListStatus::Open => "open",
            ListStatus::Expired => "expired",
            ListStatus::Refunded => "refunded",
            ListStatus::Attention => "attention",
        }
    }

    pub fn parse(s: &str) -> Option<ListStatus> {
        ListStatus::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            ListStatus::Paid => "Paid",
            ListStatus::Open => "Open",
            ListStatus::Expired => "Expired",
            ListStatus::Refunded => "Refunded",
            ListStatus::Attention => "Needs attention",
        }
    }
}

/// Which payments to list.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub status: Option<ListStatus>,
    pub rail: Option<RailId>,
    /// Created at or after (unix ms).
    pub from: Option<i64>,
    /// Created before (unix ms).
    pub to: Option<i64>,
    /// A session id, a reference, an operator's receipt, or the last digits (3 to 12) of
    /// the payer's phone number.
    pub query: Option<String>,
}

/// One line of the payments list.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub session: SessionRecord,
    /// The attempts that paid it (more than one: a duplicate payment), oldest first.
    pub paid_by: Vec<AttemptRecord>,
    /// Refunded so far (succeeded refunds), in the paying attempts' minor units.
    pub refunded_minor: i64,
    /// An unknown outcome or a duplicate payment a person must look at.
    pub attention: bool,
}

const ATTENTION: &str = "EXISTS (SELECT 1 FROM payment_attempts x WHERE x.session_id = s.id \
     AND ((x.status = 'unknown' AND x.reconciled_at IS NULL) OR x.duplicate = 1 \
     OR (x.overpaid_minor IS NOT NULL AND x.reconciled_at IS NULL) \
     OR (x.status = 'succeeded' AND s.status = 'expired' AND s.payment_status = 'unpaid' \
     AND x.reconciled_at IS NULL)))";

impl Store {
    /// A page of a merchant's payments in one mode, newest first.
    pub async fn dashboard_payments(
        &self,
        merchant: &MerchantId,
        mode: Mode,
        filter: &PaymentFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let mut sql = format!(
            "SELECT {SESSION_COLUMNS}, CASE WHEN {ATTENTION} THEN 1 ELSE 0 END AS attention \
             FROM checkout_sessions s WHERE s.merchant_id = $1 AND s.mode = $2"
        );
        // Values in placeholder order ($1, $2, …).
        enum Bind {
            Text(String),
            Int(i64),
        }
        let mut binds = vec![
            Bind::Text(merchant.to_string()),
            Bind::Text(mode.as_str().to_owned()),
        ];
        let mut next = 3;
        match filter.status {
            Some(ListStatus::Paid) => sql.push_str(" AND s.payment_status = 'paid'"),
            Some(ListStatus::Open) => sql.push_str(" AND s.status = 'open'"),
            Some(ListStatus::Expired) => sql.push_str(" AND s.status = 'expired'"),
            Some(ListStatus::Refunded) => sql.push_str(
                " AND EXISTS (SELECT 1 FROM refunds r WHERE r.session_id = s.id \
                 AND r.status = 'succeeded')",
            ),
            Some(ListStatus::Attention) => sql.push_str(&format!(" AND {ATTENTION}")),
            None => {}
        }
        if let Some(rail) = filter.rail {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM payment_attempts a WHERE a.session_id = s.id \
                 AND a.rail = ${next})"
            ));
            binds.push(Bind::Text(rail.as_str().to_owned()));
            next += 1;
        }
        if let Some(from) = filter.from {
            sql.push_str(&format!(" AND s.created_at >= ${next}"));
            binds.push(Bind::Int(from));
            next += 1;
        }
        if let Some(to) = filter.to {
            sql.push_str(&format!(" AND s.created_at < ${next}"));
            binds.push(Bind::Int(to));
            next += 1;
        }
        if let Some(q) = filter
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            let digits = q.len() >= 3 && q.len() <= 12 && q.bytes().all(|b| b.is_ascii_digit());
            if digits {
                // Digits only (no LIKE wildcards): the end of the payer's number.
                sql.push_str(&format!(
                    " AND (s.reference = ${next} OR s.customer_phone LIKE '%' || ${next} \
                     OR EXISTS (SELECT 1 FROM payment_attempts a WHERE a.session_id = s.id \
                     AND a.payer LIKE '%' || ${next}))"
                ));
            } else {
                sql.push_str(&format!(
                    " AND (s.id = ${next} OR s.reference = ${next} OR EXISTS (SELECT 1 FROM \
                     payment_attempts a WHERE a.session_id = s.id \
                     AND (a.id = ${next} OR UPPER(a.operator_receipt) = UPPER(${next}))))"
                ));
            }
            binds.push(Bind::Text(q.to_owned()));
            next += 1;
        }
        sql.push_str(&format!(
            " ORDER BY s.created_at DESC, s.id DESC LIMIT ${} OFFSET ${}",
            next,
            next + 1
        ));
        binds.push(Bind::Int(limit));
        binds.push(Bind::Int(offset));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let session = SessionRecord::from_row(row)?;
            let attention: i64 = row.try_get("attention")?;
            let paid_by: Vec<AttemptRecord> = self
                .session_attempts(&session.id)
                .await?
                .into_iter()
                .filter(|a| a.status == super::AttemptStatus::Succeeded)
                .collect();
            let refunded_minor: i64 = sqlx::query(
                "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS n FROM refunds \
                 WHERE session_id = $1 AND status = 'succeeded'",
            )
            .bind(session.id.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
            out.push(PaymentRow {
                session,
                paid_by,
                refunded_minor,
                attention: attention != 0,
            });
        }
        Ok(out)
    }

    /// Every attempt of a session, oldest first.
    pub async fn session_attempts(
        &self,
        session: &SessionId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE session_id = $1 \
             ORDER BY created_at, id"
        ))
        .bind(session.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AttemptRecord::from_row).collect()
    }
}
