//! The scheduler every sandbox operator shares: decides scripted and timed-out requests,
//! and delivers callbacks as the operators do: one request per callback, no retry,
//! sometimes never, sometimes twice, sometimes late.

use std::{sync::Arc, time::Duration};

use super::{Answer, Sandbox, SandboxDecision, SandboxRequest, operator};
use crate::{
    store::{Store, StoreError},
    time::now_ms,
};

/// How often the worker looks for work.
const TICK: Duration = Duration::from_millis(200);

/// Decides a pending request with `code` and `desc` (and a new receipt when `code` is
/// the operator's approval). `None` if it was decided already (by the handset, the
/// script or the time-out); else the receipt (empty unless approved).
pub async fn decide(
    store: &Store,
    req: &SandboxRequest,
    code: &str,
    desc: &str,
    sandbox: &Sandbox,
) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    let op = operator(req.operator);
    let b = sandbox.behaviour(req.operator, &req.phone);
    let receipt = (code == op.answer(Answer::Approved).0).then(|| op.receipt());
    // As many callbacks as were due when it was taken (a refund may lose its own).
    let sends = req.callback_url.is_some() && req.callbacks_due > 0;
    let decided = store
        .sandbox_decide(
            req.operator,
            &req.id,
            &SandboxDecision {
                result_code: code,
                result_desc: desc,
                receipt: receipt.as_deref(),
                callback_at: sends.then_some(now + b.callback_delay_ms),
                query_hidden_until: (b.query_hidden_ms > 0).then_some(now + b.query_hidden_ms),
            },
            now,
        )
        .await?;
    if decided {
        sandbox.decided();
    }
    Ok(decided.then(|| receipt.unwrap_or_default()))
}

/// Decides a pending request as the shopper (or the clock) answered it, in the
/// operator's words.
pub async fn answer(
    store: &Store,
    req: &SandboxRequest,
    answer: Answer,
    sandbox: &Sandbox,
) -> Result<Option<String>, StoreError> {
    let (code, desc) = operator(req.operator).answer(answer);
    decide(store, req, code, desc, sandbox).await
}

/// Decided requests are forgotten this long after their last callback went out: the
/// sandbox keeps no history, so nobody can fill the database through it.
pub const KEEP_DECIDED_MS: i64 = 3_600_000;
/// Paid pushes (and refunds made) are kept for a month, as refundable as at the operator.
pub const KEEP_PAID_MS: i64 = 30 * 24 * 3_600_000;

/// One pass: scripted outcomes, then due callbacks, then old decided requests.
pub async fn tick(store: &Store, sandbox: &Sandbox) -> Result<(), StoreError> {
    store
        .sandbox_purge(now_ms() - KEEP_DECIDED_MS, now_ms() - KEEP_PAID_MS)
        .await?;
    for req in store.sandbox_due_outcomes(now_ms()).await? {
        // The scripted outcome, or the operator's time-out for a prompt nobody answered.
        if req.refund_of.is_some() {
            // A refund: decided as it was scripted when taken.
            let code = req.auto_result_code.clone().unwrap_or_default();
            let desc = req.wire_str("refund_desc").to_owned();
            decide(store, &req, &code, &desc, sandbox).await?;
            continue;
        }
        let script = sandbox.behaviour(req.operator, &req.phone).auto;
        let timeout = operator(req.operator).answer(Answer::TimedOut);
        let (code, desc) = match (req.auto_result_code.as_deref(), script) {
            (Some(code), Some((c, d, _))) if c == code => (c, d),
            _ => timeout,
        };
        decide(store, &req, code, desc, sandbox).await?;
    }
    for req in store.sandbox_due_callbacks(now_ms()).await? {
        let b = sandbox.behaviour(req.operator, &req.phone);
        let next =
            (req.callbacks_sent + 1 < req.callbacks_due).then(|| now_ms() + b.duplicate_after_ms);
        // Claim before sending, so a slow receiver never gets the same delivery twice.
        if !store
            .sandbox_callback_sent(req.operator, &req.id, req.callbacks_sent, next)
            .await?
        {
            continue;
        }
        let (Some(url), Some(callback)) = (
            req.callback_url.clone(),
            operator(req.operator).callback(&req),
        ) else {
            continue;
        };
        let http = sandbox.http.clone();
        let rail = req.operator;
        tokio::spawn(async move {
            match http
                .request(callback.method, &url)
                .json(&callback.body)
                .send()
                .await
            {
                Ok(res) => tracing::debug!(
                    %rail,
                    status = res.status().as_u16(),
                    "sandbox: callback delivered"
                ),
                // The operators do not retry, and neither do we.
                // Without the URL: it carries the attempt's callback token.
                Err(e) => {
                    tracing::info!(%rail, error = %e.without_url(), "sandbox: callback not delivered")
                }
            }
        });
    }
    Ok(())
}

/// Runs [`tick`] until aborted; errors are logged and retried.
pub async fn run(store: Store, sandbox: Arc<Sandbox>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = tick(&store, &sandbox).await {
            tracing::warn!(error = %e, "sandbox worker failed; retrying");
        }
    }
}
