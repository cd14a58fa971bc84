//! The webhook outbox: merchant-facing events and what is owed to each endpoint.
//!
//! [`enqueue_event`] runs inside the transaction of the state change that causes the
//! event, so the change, the event and its deliveries commit or vanish together. The
//! delivery worker then claims due deliveries with a conditional update (a lease), so
//! two workers never post the same delivery at once, and records every attempt.

use secrecy::SecretString;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Store, StoreError, parse_column};
use crate::{
    domain::{
        DeliveryId, EventId, MerchantId, Mode, WebhookEndpointId,
        ids::{AttemptId, SessionId},
    },
    resources::{CheckoutSessionObject, EventData, EventObject, EventType, PaymentObject},
};

/// Writes one event and a pending delivery for every endpoint of the session's merchant
/// and mode that subscribes to it. Must run inside the caller's transaction.
pub(crate) async fn enqueue_event(
    conn: &mut AnyConnection,
    session_id: &str,
    kind: EventType,
    object: serde_json::Value,
    now: i64,
) -> Result<EventId, StoreError> {
    // Bumping the counter also locks the session row until commit, so the sequence of
    // one session's events has no gaps and no duplicates even across backends.
    let row = sqlx::query(
        "UPDATE checkout_sessions SET event_seq = event_seq + 1 WHERE id = $1 \
         RETURNING event_seq, merchant_id, mode",
    )
    .bind(session_id)
    .fetch_one(&mut *conn)
    .await?;
    let sequence: i64 = row.try_get("event_seq")?;
    let merchant_id: String = row.try_get("merchant_id")?;
    let mode = parse_column(&row, "mode", "checkout_sessions", Mode::parse)?;

    let id = EventId::generate();
    let event = EventObject {
        id: id.to_string(),
        object: "event".into(),
        kind: kind.as_str().into(),
        created: now / 1000,
        livemode: mode == Mode::Live,
        sequence,
        data: EventData { object },
    };
    let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt {
        table: "events",
        id: id.to_string(),
        what: e.to_string(),
    })?;
    sqlx::query(
        "INSERT INTO events (id, merchant_id, mode, type, session_id, sequence, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(&merchant_id)
    .bind(mode.as_str())
    .bind(kind.as_str())
    .bind(session_id)
    .bind(sequence)
    .bind(&payload)
    .bind(now)
    .execute(&mut *conn)
    .await?;

    deliver_to_subscribers(conn, &id, &merchant_id, mode, kind, now).await?;
    Ok(id)
}

/// Gives the event a pending delivery for every live endpoint of its merchant and mode
/// that subscribes to `kind` and does not have one yet. Returns how many it added.
async fn deliver_to_subscribers(
    conn: &mut AnyConnection,
    event_id: &EventId,
    merchant_id: &str,
    mode: Mode,
    kind: EventType,
    now: i64,
) -> Result<usize, StoreError> {
    let endpoints = sqlx::query(
        "SELECT w.id, w.enabled_events FROM webhook_endpoints w \
         WHERE w.merchant_id = $1 AND w.mode = $2 AND w.deleted_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                         WHERE d.event_id = $3 AND d.endpoint_id = w.id)",
    )
    .bind(merchant_id)
    .bind(mode.as_str())
    .bind(event_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut added = 0;
    for endpoint in endpoints {
        let endpoint_id: String = endpoint.try_get("id")?;
        let enabled: String = endpoint.try_get("enabled_events")?;
        if subscribes(&enabled, kind) {
            insert_delivery(conn, event_id, &endpoint_id, now).await?;
            added += 1;
        }
    }
    Ok(added)
}

/// Whether an endpoint's `enabled_events` (a JSON array) includes `kind`.
fn subscribes(enabled_events: &str, kind: EventType) -> bool {
    serde_json::from_str::<Vec<String>>(enabled_events)
        .map(|list| list.iter().any(|e| e == "*" || e == kind.as_str()))
        .unwrap_or(false)
}

async fn insert_delivery(
    conn: &mut AnyConnection,
    event_id: &EventId,
    endpoint_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempt_count, \
         next_attempt_at, retry_from, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4, $4)",
    )
    .bind(DeliveryId::generate().as_str())
    .bind(event_id.as_str())
    .bind(endpoint_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The session's event for its new state, built from the row as it is now in `conn`.
pub(crate) async fn enqueue_session_event(
    conn: &mut AnyConnection,
    public_url: &str,
    session_id: &SessionId,
    kind: EventType,
    now: i64,
) -> Result<EventId, StoreError> {
    let session = super::sessions::session_in(conn, session_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            table: "checkout_sessions",
            id: session_id.to_string(),
            what: "vanished inside its own transaction".into(),
        })?;
    let paid_by = super::attempts::paying_attempt_in(conn, session_id).await?;
    let object =
        CheckoutSessionObject::new(public_url, &session, now).with_payment(paid_by.as_ref());
    enqueue_event(conn, session_id.as_str(), kind, to_value(&object)?, now).await
}

/// The attempt's event for its new (final) state.
pub(crate) async fn enqueue_payment_event(
    conn: &mut AnyConnection,
    attempt_id: &AttemptId,
    now: i64,
) -> Result<Option<EventId>, StoreError> {
    let attempt = attempt_now(conn, attempt_id).await?;
    let Some(kind) = PaymentObject::event_for(attempt.status) else {
        return Ok(None);
    };
    enqueue_attempt_event(conn, attempt_id, kind, now)
        .await
        .map(Some)
}

/// A `payment.*` event carrying the attempt as it is now in `conn`.
pub(crate) async fn enqueue_attempt_event(
    conn: &mut AnyConnection,
    attempt_id: &AttemptId,
    kind: EventType,
    now: i64,
) -> Result<EventId, StoreError> {
    let attempt = attempt_now(conn, attempt_id).await?;
    let row = sqlx::query("SELECT mode, travel, amount_minor FROM checkout_sessions WHERE id = $1")
        .bind(attempt.session_id.as_str())
        .fetch_one(&mut *conn)
        .await?;
    let mode: String = row.try_get("mode")?;
    let mode = Mode::parse(&mode).unwrap_or(Mode::Test);
    // The trip it paid for; a stored trip that no longer reads is left out, not fatal
    // to the payment's event.
    let travel = row
        .try_get::<Option<String>, _>("travel")?
        .and_then(|t| serde_json::from_str(&t).ok());
    let price: i64 = row.try_get("amount_minor")?;
    let object = PaymentObject::new(&attempt, mode)
        .with_price(&attempt, price)
        .with_travel(travel);
    enqueue_event(
        conn,
        attempt.session_id.as_str(),
        kind,
        to_value(&object)?,
        now,
    )
    .await
}

async fn attempt_now(
    conn: &mut AnyConnection,
    attempt_id: &AttemptId,
) -> Result<super::AttemptRecord, StoreError> {
    super::attempts::attempt_in(conn, attempt_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            table: "payment_attempts",
            id: attempt_id.to_string(),
            what: "vanished inside its own transaction".into(),
        })
}

fn to_value(object: &impl serde::Serialize) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(object).map_err(|e| StoreError::Corrupt {
        table: "events",
        id: String::new(),
        what: e.to_string(),
    })
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub kind: String,
    pub session_id: Option<String>,
    pub sequence: i64,
    /// The exact JSON body every delivery sends.
    pub payload: String,
    pub created_at: i64,
}

const EVENT_COLUMNS: &str =
    "id, merchant_id, mode, type, session_id, sequence, payload, created_at";

impl StoredEvent {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(StoredEvent {
            id: EventId::from_db(row.try_get("id")?),
            merchant_id: MerchantId::from_db(row.try_get("merchant_id")?),
            mode: parse_column(row, "mode", "events", Mode::parse)?,
            kind: row.try_get("type")?,
            session_id: row.try_get("session_id")?,
            sequence: row.try_get("sequence")?,
            payload: row.try_get("payload")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// The payload, parsed.
    pub fn object(&self) -> Result<EventObject, StoreError> {
        serde_json::from_str(&self.payload).map_err(|e| StoreError::Corrupt {
            table: "events",
            id: self.id.to_string(),
            what: e.to_string(),
        })
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub session_id: Option<String>,
    /// Only events older than this one (newest-first pagination).
    pub starting_after: Option<EventId>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    /// The retry window closed (or the endpoint was deleted) without a 2xx.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// A delivery that is due, with everything needed to post it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub url: String,
    pub payload: String,
    pub attempt_count: i64,
    pub next_attempt_at: i64,
    pub retry_from: i64,
    pub secret: SecretString,
    pub previous_secret: Option<SecretString>,
    pub previous_expires_at: Option<i64>,
}

/// One POST, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    /// A 2xx came back.
    Delivered,
    /// Try again at this time.
    RetryAt(i64),
    /// The retry window is closed.
    GiveUp,
}

/// A delivery with its log, for `GET /v1/events/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempt_count: i64,
    pub next_attempt_at: Option<i64>,
    pub attempts: Vec<DeliveryAttempt>,
}

impl Store {
    pub async fn event(&self, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(StoredEvent::from_row).transpose()
    }

    /// A merchant's events in one mode, newest first.
    pub async fn events(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // The cursor is resolved to its (created_at, sequence, id), the total order:
        // events of one transaction share a time, and their sequence orders them.
        let cursor = match &filter.starting_after {
            Some(id) => match self.event(id).await? {
                Some(e) if e.merchant_id == *merchant_id && e.mode == mode => {
                    Some((e.created_at, e.sequence, e.id.to_string()))
                }
                _ => return Ok(Vec::new()),
            },
            None => None,
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND mode = $2 \
             AND ($3 IS NULL OR type = $3) AND ($4 IS NULL OR session_id = $4) \
             AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND \
                  (sequence < $6 OR (sequence = $6 AND id < $7)))) \
             ORDER BY created_at DESC, sequence DESC, id DESC LIMIT $8"
        ))
        .bind(merchant_id.as_str())
        .bind(mode.as_str())
        .bind(filter.kind.as_deref())
        .bind(filter.session_id.as_deref())
        .bind(cursor.as_ref().map(|c| c.0))
        .bind(cursor.as_ref().map(|c| c.1))
        .bind(cursor.as_ref().map(|c| c.2.as_str()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(StoredEvent::from_row).collect()
    }

    /// Due deliveries of one mode, taking turns: at most `per_endpoint` of any one
    /// endpoint (the oldest), then ordered so that every merchant's oldest comes before
    /// anyone's second — one merchant's backlog never holds up another's first event.
    /// Events of one change go out in their `sequence` order.
    pub async fn due_deliveries(
        &self,
        now: i64,
        mode: Mode,
        per_endpoint: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(
            "WITH due AS ( \
                SELECT d.id, w.merchant_id, d.next_attempt_at, e.sequence, \
                ROW_NUMBER() OVER (PARTITION BY d.endpoint_id \
                    ORDER BY d.next_attempt_at, e.sequence, d.id) AS endpoint_turn \
                FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                JOIN events e ON e.id = d.event_id \
                WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
                AND w.deleted_at IS NULL AND w.mode = $2 \
             ), turns AS ( \
                SELECT id, next_attempt_at, sequence, \
                ROW_NUMBER() OVER (PARTITION BY merchant_id \
                    ORDER BY next_attempt_at, sequence, id) AS merchant_turn \
                FROM due WHERE endpoint_turn <= $3 \
             ) \
             SELECT d.id, d.event_id, d.endpoint_id, w.merchant_id, d.attempt_count, d.next_attempt_at, \
             d.retry_from, e.payload, w.url, w.secret, w.previous_secret, w.previous_expires_at \
             FROM turns t \
             JOIN webhook_deliveries d ON d.id = t.id \
             JOIN events e ON e.id = d.event_id \
             JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             ORDER BY t.merchant_turn, t.next_attempt_at, t.sequence, t.id LIMIT $4",
        )
        .bind(now)
        .bind(mode.as_str())
        .bind(per_endpoint)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in &rows {
            let endpoint_id: String = r.try_get("endpoint_id")?;
            let place = super::webhooks::endpoint_secret_place(&endpoint_id);
            // One secret that cannot be opened (damaged, sealed under another key) holds
            // up that endpoint only, never everyone's deliveries.
            let secret = match self.master.open(&place, &r.try_get::<String, _>("secret")?) {
                Ok(s) => SecretString::from(s),
                Err(e) => {
                    tracing::error!(endpoint = %endpoint_id, error = %e, "cannot open a webhook signing secret; its deliveries wait");
                    continue;
                }
            };
            let previous_expires_at: Option<i64> = r.try_get("previous_expires_at")?;
            // The previous secret only while it still signs.
            let previous_secret = match r.try_get::<Option<String>, _>("previous_secret")? {
                Some(v) if previous_expires_at.is_some_and(|until| until > now) => {
                    match self.master.open(&place, &v) {
                        Ok(s) => Some(SecretString::from(s)),
                        Err(e) => {
                            tracing::error!(endpoint = %endpoint_id, error = %e, "cannot open a previous webhook signing secret; signing with the current one only");
                            None
                        }
                    }
                }
                _ => None,
            };
            due.push(DueDelivery {
                id: DeliveryId::from_db(r.try_get("id")?),
                event_id: EventId::from_db(r.try_get("event_id")?),
                endpoint_id: WebhookEndpointId::from_db(endpoint_id),
                merchant_id: MerchantId::from_db(r.try_get("merchant_id")?),
                url: r.try_get("url")?,
                payload: r.try_get("payload")?,
                attempt_count: r.try_get("attempt_count")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                retry_from: r.try_get("retry_from")?,
                secret,
                previous_secret,
                previous_expires_at,
            });
        }
        Ok(due)
    }

    /// Holds an endpoint's due deliveries until `until` (its circuit is open). Those
    /// being posted right now hold a lease in the future and are left alone. Returns
    /// how many were held.
    pub async fn hold_endpoint_deliveries(
        &self,
        endpoint_id: &WebhookEndpointId,
        now: i64,
        until: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $3 \
             WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2",
        )
        .bind(endpoint_id.as_str())
        .bind(now)
        .bind(until)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Takes a due delivery for `until` (a lease: if this worker dies mid-post, the
    /// delivery becomes due again then). False when another worker took it first.
    pub async fn claim_delivery(&self, d: &DueDelivery, until: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $3 \
             WHERE id = $1 AND status = 'pending' AND next_attempt_at = $2",
        )
        .bind(d.id.as_str())
        .bind(d.next_attempt_at)
        .bind(until)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Logs one POST and moves the delivery on, in one transaction. The move happens
    /// only while the delivery still holds the lease this worker took (`leased_until`):
    /// a redelivery asked for during the POST resets the delivery, and it stays reset.
    pub async fn record_delivery_attempt(
        &self,
        id: &DeliveryId,
        leased_until: i64,
        attempt: &DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_delivery_attempts \
             (delivery_id, attempted_at, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(attempt.attempted_at)
        .bind(attempt.status_code)
        .bind(attempt.latency_ms)
        .bind(attempt.error.as_deref())
        .execute(&mut *tx)
        .await?;
        let (status, next_at) = match next {
            DeliveryNext::Delivered => (DeliveryStatus::Succeeded, None),
            DeliveryNext::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
            DeliveryNext::GiveUp => (DeliveryStatus::Failed, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, updated_at = $2 \
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(attempt.attempted_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3 \
             WHERE id = $1 AND status = 'pending' AND next_attempt_at = $4",
        )
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(next_at)
        .bind(leased_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An event's deliveries with every attempt, oldest first.
    pub async fn deliveries(&self, event_id: &EventId) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.event_id, d.endpoint_id, d.status, d.attempt_count, \
             d.next_attempt_at, w.url FROM webhook_deliveries d \
             JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.event_id = $1 ORDER BY d.created_at, d.id",
        )
        .bind(event_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id")?;
            let attempts = sqlx::query(
                "SELECT attempted_at, status_code, latency_ms, error \
                 FROM webhook_delivery_attempts WHERE delivery_id = $1 ORDER BY id",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|a| {
                Ok(DeliveryAttempt {
                    attempted_at: a.try_get("attempted_at")?,
                    status_code: a.try_get("status_code")?,
                    latency_ms: a.try_get("latency_ms")?,
                    error: a.try_get("error")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(DeliveryRecord {
                event_id: EventId::from_db(r.try_get("event_id")?),
                endpoint_id: WebhookEndpointId::from_db(r.try_get("endpoint_id")?),
                url: r.try_get("url")?,
                status: parse_column(r, "status", "webhook_deliveries", DeliveryStatus::parse)?,
                attempt_count: r.try_get("attempt_count")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                attempts,
                id: DeliveryId::from_db(id),
            });
        }
        Ok(out)
    }

    /// Sends an event again to every current endpoint of its merchant and mode that
    /// subscribes to it: existing deliveries go back to pending now with a fresh retry
    /// window, new endpoints get one. The event keeps its id.
    pub async fn redeliver(&self, event: &StoredEvent, now: i64) -> Result<usize, StoreError> {
        let kind = EventType::parse(&event.kind).ok_or_else(|| StoreError::Corrupt {
            table: "events",
            id: event.id.to_string(),
            what: format!("type {:?}", event.kind),
        })?;
        let mut tx = self.pool.begin().await?;
        // Write first: on SQLite a transaction that reads and then writes can fail with
        // "database is locked" if another writer committed in between (its read snapshot
        // is stale); starting with the write takes the lock up front, and waits for it.
        // A delivery exists only for an endpoint that subscribed when the event was
        // written (subscriptions never change), so these need no subscription check.
        let reset = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, \
             retry_from = $2, updated_at = $2 WHERE event_id = $1 AND endpoint_id IN \
             (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL)",
        )
        .bind(event.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Endpoints registered since the event: they get it too, if they subscribe.
        let added = deliver_to_subscribers(
            &mut tx,
            &event.id,
            event.merchant_id.as_str(),
            event.mode,
            kind,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(usize::try_from(reset).unwrap_or(usize::MAX) + added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_exact_types_or_everything() {
        assert!(subscribes(r#"["*"]"#, EventType::PaymentFailed));
        assert!(subscribes(
            r#"["payment.failed","checkout.session.completed"]"#,
            EventType::CheckoutSessionCompleted
        ));
        assert!(!subscribes(
            r#"["payment.failed"]"#,
            EventType::PaymentSucceeded
        ));
        assert!(!subscribes("not json", EventType::PaymentSucceeded));
    }
}
