//! Background housekeeping: expires open sessions whose time is up (writing
//! `session.expired` events), and forgets idempotency keys older than 7 days.

use std::time::Duration;

use crate::{store::Store, time::now_ms};

/// How often the sweeper wakes.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Idempotency keys are kept at least this long.
pub const IDEMPOTENCY_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// One pass: expires every due session (in batches) and purges old keys. Returns how
/// many sessions it expired.
pub async fn sweep_once(store: &Store) -> Result<usize, crate::store::StoreError> {
    let mut expired = 0;
    loop {
        let now = now_ms();
        let due = store.sessions_due_to_expire(now, 100).await?;
        for id in &due {
            if store.expire_session(id, now, "timeout").await? {
                tracing::info!(session = %id, "checkout session expired");
                expired += 1;
            }
        }
        if due.len() < 100 {
            break;
        }
    }
    store
        .idempotency_purge(now_ms() - IDEMPOTENCY_RETENTION_MS)
        .await?;
    Ok(expired)
}

/// Runs [`sweep_once`] every [`INTERVAL`] until the task is aborted. Errors are logged
/// and retried on the next tick: a database blip must not stop expiry for good.
pub async fn run(store: Store) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sweep_once(&store).await {
            tracing::warn!(error = %e, "sweep failed; retrying next tick");
        }
    }
}
