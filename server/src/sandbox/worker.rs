//! Decides scripted and timed-out pushes and delivers callbacks, as Daraja would: one
//! POST per callback, no retry, sometimes never, sometimes twice, sometimes late.

use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};

use super::{Sandbox, behaviour};
use crate::{
    connectors::mpesa::daraja_timestamp,
    domain::ids::random_base62,
    store::{SandboxDecision, SandboxPush, Store, StoreError},
    time::now_ms,
};

/// How often the worker looks for work.
const TICK: Duration = Duration::from_millis(200);

/// Decides a pending push with `code` (and a receipt when it is a success). False if it
/// was decided already (by the handset, the script or the time-out).
pub async fn decide(
    store: &Store,
    push: &SandboxPush,
    code: &str,
    desc: &str,
    sandbox: &Sandbox,
) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    let b = sandbox.behaviour(&push.phone);
    let receipt = (code == "0").then(|| random_base62(10).to_uppercase());
    let decided = store
        .sandbox_decide(
            &push.checkout_request_id,
            &SandboxDecision {
                result_code: code,
                result_desc: desc,
                receipt: receipt.as_deref(),
                callback_at: (b.callbacks > 0).then_some(now + b.callback_delay_ms),
                query_hidden_until: (b.query_hidden_ms > 0).then_some(now + b.query_hidden_ms),
            },
            now,
        )
        .await?;
    Ok(decided.then(|| receipt.unwrap_or_default()))
}

/// The callback body Daraja would POST for a decided push.
pub fn callback_body(p: &SandboxPush) -> Value {
    let code: Value = p
        .result_code
        .as_deref()
        .and_then(|c| c.parse::<i64>().ok())
        .map(Value::from)
        .unwrap_or_else(|| json!(p.result_code));
    let mut cb = json!({
        "MerchantRequestID": p.merchant_request_id,
        "CheckoutRequestID": p.checkout_request_id,
        "ResultCode": code,
        "ResultDesc": p.result_desc,
    });
    if p.result_code.as_deref() == Some("0") {
        let date: i64 = daraja_timestamp(p.decided_at.unwrap_or(p.created_at))
            .parse()
            .unwrap_or(0);
        let phone: i64 = p.phone.parse().unwrap_or(0);
        cb["CallbackMetadata"] = json!({ "Item": [
            { "Name": "Amount", "Value": p.amount as f64 },
            { "Name": "MpesaReceiptNumber", "Value": p.receipt },
            { "Name": "Balance" },
            { "Name": "TransactionDate", "Value": date },
            { "Name": "PhoneNumber", "Value": phone },
        ]});
    }
    json!({ "Body": { "stkCallback": cb } })
}

/// Decided pushes are forgotten this long after their last callback went out: the
/// sandbox keeps no history, so nobody can fill the database through it.
pub const KEEP_DECIDED_MS: i64 = 3_600_000;

/// One pass: scripted outcomes, then due callbacks, then old decided pushes.
pub async fn tick(store: &Store, sandbox: &Sandbox) -> Result<(), StoreError> {
    store.sandbox_purge(now_ms() - KEEP_DECIDED_MS).await?;
    for push in store.sandbox_due_outcomes(now_ms()).await? {
        // The scripted code, or Daraja's time-out for a prompt nobody answered.
        let code = push
            .auto_result_code
            .clone()
            .unwrap_or_else(|| "1037".to_owned());
        let desc = behaviour::for_phone(&push.phone)
            .auto
            .filter(|(c, _, _)| *c == code)
            .map_or("DS timeout user cannot be reached", |(_, d, _)| d);
        decide(store, &push, &code, desc, sandbox).await?;
    }
    for push in store.sandbox_due_callbacks(now_ms()).await? {
        let next = (push.callbacks_sent + 1 < push.callbacks_due).then(|| now_ms() + 1_000);
        // Claim before sending, so a slow receiver never gets the same delivery twice.
        if !store
            .sandbox_callback_sent(&push.checkout_request_id, push.callbacks_sent, next)
            .await?
        {
            continue;
        }
        let body = callback_body(&push);
        let http = sandbox.http.clone();
        let url = push.callback_url.clone();
        tokio::spawn(async move {
            match http.post(&url).json(&body).send().await {
                Ok(res) => tracing::debug!(
                    status = res.status().as_u16(),
                    "sandbox daraja: callback delivered"
                ),
                // Daraja does not retry, and neither do we.
                // Without the URL: it carries the attempt's callback token.
                Err(e) => {
                    tracing::info!(error = %e.without_url(), "sandbox daraja: callback not delivered")
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
