//! Background housekeeping: expires open sessions whose time is up (writing
//! `session.expired` events), and forgets idempotency keys older than 7 days.

use std::time::Duration;

use crate::{
    domain::SessionId,
    payments::Payments,
    store::{Expiry, Store},
    time::now_ms,
};

/// How often the sweeper wakes.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Idempotency keys are kept at least this long.
pub const IDEMPOTENCY_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// One pass: expires every due session (in batches) and purges old keys. Returns the
/// sessions it expired.
pub async fn sweep_once(store: &Store) -> Result<Vec<SessionId>, crate::store::StoreError> {
    let mut expired = Vec::new();
    loop {
        let now = now_ms();
        let due = store.sessions_due_to_expire(now, 100).await?;
        let mut progressed = false;
        for id in &due {
            match store.expire_session(id, now, "timeout").await {
                Ok(Expiry::Expired) => {
                    tracing::info!(session = %id, "checkout session expired");
                    expired.push(id.clone());
                    progressed = true;
                }
                Ok(Expiry::NotOpen | Expiry::PaymentPending) => {}
                // The database is not answering: the whole pass waits for the next tick.
                Err(e @ crate::store::StoreError::Database(_)) => return Err(e),
                // One session that cannot be read (a damaged row) must not stop every
                // other session from expiring: it is skipped, for a human.
                Err(e) => {
                    tracing::error!(session = %id, error = %e, "this session cannot be expired; skipped")
                }
            }
        }
        // A full batch of sessions that cannot be expired: the rest waits for the next
        // pass rather than spinning here.
        if due.len() < 100 || !progressed {
            break;
        }
    }
    store
        .idempotency_purge(now_ms() - IDEMPOTENCY_RETENTION_MS)
        .await?;
    Ok(expired)
}

/// Runs [`sweep_once`] every [`INTERVAL`] until the task is aborted, telling live pages
/// about each expiry. Errors are logged and retried on the next tick: a database blip
/// must not stop expiry for good.
pub async fn run(store: Store, payments: Payments) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep_once(&store).await {
            Ok(expired) => expired.iter().for_each(|id| payments.changed(id)),
            Err(e) => tracing::warn!(error = %e, "sweep failed; retrying next tick"),
        }
    }
}
