//! Mass actions (resend every failed webhook delivery at once; refund every payment
//! shown: [`super::mass_refund`]), after Kopo Kopo's
//! duplicate-SMS incident: a confirmation page with the count, the password again, a
//! record in the audit log, and a delay (30 s by default) during which the action can
//! be cancelled. The action runs once, by whichever instance claims it first.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

use super::{
    CsrfForm, DashForm, Signed, Web,
    auth::{nav, shown, status_of},
    forbidden, store_failed,
    views::{Csrf, FormError, document, message_page},
};
use crate::{
    accounts::Permission,
    domain::EventId,
    startup::AppState,
    store::{MassAction, Store},
    time::{format_utc, now_ms},
};

/// The kinds of mass action.
pub const RESEND: &str = "resend_webhooks";
pub const REFUND: &str = "refund";

/// Events one mass resend takes at most.
const MAX_ITEMS: i64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/mass/resend", get(confirm).post(schedule))
        .route(
            "/dashboard/mass/refund",
            get(super::mass_refund::confirm).post(super::mass_refund::schedule),
        )
        .route("/dashboard/mass/{id}", get(status))
        .route("/dashboard/mass/{id}/cancel", post(cancel))
}

fn confirm_view(
    web: &Web,
    signed: &Signed,
    count: usize,
    error: Option<(String, &'static str)>,
) -> String {
    let session = &signed.0;
    let body = view! {
        <section class="card narrow">
            <h1>"Resend failed webhooks"</h1>
            <FormError error />
            {if count == 0 {
                view! { <p data-code="nothing_to_resend">"No delivery has failed in this mode: nothing to resend."</p> }.into_any()
            } else {
                view! {
                    <p data-count=count.to_string()>{format!("{count} events whose delivery failed will be sent again to your endpoints in {} mode.", session.mode.as_str())}</p>
                    <p class="hint">"Nothing is sent for a short while after you confirm: you can still cancel."</p>
                    <form method="post" action="/dashboard/mass/resend">
                        <Csrf token=web.csrf.clone() />
                        <input type="hidden" name="count" value=count.to_string() />
                        <label for="password">"Your password"</label>
                        <input id="password" type="password" name="password" autocomplete="current-password" required />
                        <button type="submit" class="danger">{format!("Resend {count} events")}</button>
                    </form>
                }.into_any()
            }}
            <p><a href="/dashboard/developers">"Back"</a></p>
        </section>
    };
    document(
        "Resend failed webhooks",
        Some(nav(session, web, "developers")),
        body.into_any(),
    )
}

async fn confirm(State(state): State<AppState>, web: Web, signed: Signed) -> Response {
    if !signed.may(Permission::ResendWebhooks) {
        return forbidden(&web, "resend webhooks");
    }
    let session = &signed.0;
    match state
        .store
        .failed_delivery_events(&session.merchant.id, session.mode, MAX_ITEMS)
        .await
    {
        Ok(items) => web.page(
            StatusCode::OK,
            confirm_view(&web, &signed, items.len(), None),
        ),
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ScheduleForm {
    csrf: String,
    password: String,
    count: String,
}

async fn schedule(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<ScheduleForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ResendWebhooks) {
        return forbidden(&web, "resend webhooks");
    }
    let session = &signed.0;
    let items = match state
        .store
        .failed_delivery_events(&session.merchant.id, session.mode, MAX_ITEMS)
        .await
    {
        Ok(items) => items,
        Err(e) => return store_failed(e),
    };
    // Always the password again for a mass action, however recent the last one.
    if let Err(e) = state
        .accounts
        .reauthenticate(session, SecretString::from(form.password), "")
        .await
    {
        return web.page(
            status_of(&e),
            confirm_view(&web, &signed, items.len(), Some(shown(&e))),
        );
    }
    if items.is_empty() {
        return web.page(StatusCode::OK, confirm_view(&web, &signed, 0, None));
    }
    // One at a time per business and mode: a second press (a double click, a resubmit)
    // lands on the action already waiting, which one Cancel stops.
    match state
        .store
        .active_mass_action(&session.merchant.id, session.mode)
        .await
    {
        Ok(Some(id)) => return web.finish(Redirect::to(&format!("/dashboard/mass/{id}"))),
        Ok(None) => {}
        Err(e) => return store_failed(e),
    }
    // What was confirmed is what is sent: a count that changed meanwhile is shown again.
    if form.count != items.len().to_string() {
        let e = (
            format!(
                "The number of failed deliveries changed to {}: check and confirm again.",
                items.len()
            ),
            "count_changed",
        );
        return web.page(
            StatusCode::CONFLICT,
            confirm_view(&web, &signed, items.len(), Some(e)),
        );
    }
    let id = format!("ma_{}", crate::domain::ids::random_base62(24));
    let now = now_ms();
    let run_at = now + crate::time::secs_to_ms(state.config.dashboard.mass_action_delay_secs);
    if let Err(e) = state
        .store
        .insert_mass_action(
            &id,
            &session.merchant.id,
            session.mode,
            RESEND,
            &items,
            &session.user.email,
            run_at,
            now,
        )
        .await
    {
        return store_failed(e);
    }
    signed
        .audit(
            &state,
            &web,
            "webhooks.mass_resend_scheduled",
            &format!("{id}: {} events at {} UTC", items.len(), format_utc(run_at)),
        )
        .await;
    web.finish(Redirect::to(&format!("/dashboard/mass/{id}")))
}

/// The action if it is this merchant's in this mode.
async fn owned(
    state: &AppState,
    signed: &Signed,
    id: &str,
) -> Result<Option<MassAction>, Response> {
    match state.store.mass_action(id).await {
        Ok(Some(a)) if a.merchant_id == signed.0.merchant.id && a.mode == signed.0.mode => {
            Ok(Some(a))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(store_failed(e)),
    }
}

fn not_found(web: &Web) -> Response {
    web.page(
        StatusCode::NOT_FOUND,
        message_page(
            "No such action",
            "not_found",
            "There is no such mass action in this mode.",
            Some(("/dashboard/developers", "Back")),
        ),
    )
}

async fn status(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let action = match owned(&state, &signed, &id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let scheduled = action.status == "scheduled";
    let left = ((action.run_at - now_ms()).max(0) + 999) / 1000;
    let cancel = format!("/dashboard/mass/{}/cancel", action.id);
    let refund = action.kind == REFUND;
    let (title, back, back_label) = if refund {
        ("Refund payments", "/dashboard/payments", "Payments")
    } else {
        (
            "Resend failed webhooks",
            "/dashboard/developers",
            "Developers",
        )
    };
    let text = match action.status.as_str() {
        "scheduled" if refund => format!(
            "{} payments will be refunded in {left} s (at {} UTC). Cancel now if this was a mistake.",
            action.items.len(),
            format_utc(action.run_at)
        ),
        "scheduled" => format!(
            "{} events will be sent again in {left} s (at {} UTC). Cancel now if this was a mistake.",
            action.items.len(),
            format_utc(action.run_at)
        ),
        "cancelled" => "Cancelled: nothing was sent.".to_owned(),
        "running" => "Sending…".to_owned(),
        _ => format!("Done: {}.", action.outcome.clone().unwrap_or_default()),
    };
    let body = view! {
        <section class="card narrow">
            <h1>{title}</h1>
            <p data-code=format!("mass_{}", action.status)>{text}</p>
            <p class="hint">{format!("Confirmed by {}.", action.actor)}</p>
            {scheduled.then(|| view! {
                <form method="post" action=cancel>
                    <Csrf token=web.csrf.clone() />
                    <button type="submit" class="danger">"Cancel"</button>
                </form>
            })}
            <p><a href=format!("/dashboard/mass/{}", action.id)>"Refresh"</a> " · " <a href=back>{back_label}</a></p>
        </section>
    };
    let mut response = web.page(
        StatusCode::OK,
        document(
            title,
            Some(nav(
                &signed.0,
                &web,
                if refund { "payments" } else { "developers" },
            )),
            body.into_any(),
        ),
    );
    if scheduled || action.status == "running" {
        // The page refreshes itself (no script needed) until the action has run.
        response
            .headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("5"));
    }
    response
}

async fn cancel(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(id): Path<String>,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let action = match owned(&state, &signed, &id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let refund = action.kind == REFUND;
    if refund && !signed.may(Permission::Refund) {
        return forbidden(&web, "refund");
    }
    if !refund && !signed.may(Permission::ResendWebhooks) {
        return forbidden(&web, "resend webhooks");
    }
    match state.store.cancel_mass_action(&action.id, now_ms()).await {
        Ok(cancelled) => {
            if cancelled {
                signed
                    .audit(
                        &state,
                        &web,
                        if refund {
                            "refunds.mass_refund_cancelled"
                        } else {
                            "webhooks.mass_resend_cancelled"
                        },
                        &action.id,
                    )
                    .await;
            }
            web.finish(Redirect::to(&format!("/dashboard/mass/{}", action.id)))
        }
        Err(e) => store_failed(e),
    }
}

/// How often due actions are looked for.
const TICK: Duration = Duration::from_secs(1);

/// Runs due mass actions, and once an hour forgets expired sign-in records.
pub async fn run(
    store: Store,
    webhooks: crate::webhooks::Webhooks,
    payments: crate::payments::Payments,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = 0;
    loop {
        tick.tick().await;
        let now = now_ms();
        if now - last_prune > 3_600_000 {
            last_prune = now;
            // Kept a week past expiry (the audit log keeps the story for good).
            if let Err(e) = store.prune_auth(now - 7 * 24 * 3_600_000).await {
                tracing::warn!(error = %e, "pruning sign-in records failed");
            }
        }
        let due = match store
            .claim_due_mass_actions(now, now - super::mass_refund::STALE_MS)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "mass actions: claim failed; retrying");
                continue;
            }
        };
        for action in due {
            let (outcome, ran) = if action.kind == REFUND {
                (
                    super::mass_refund::run(&store, &payments, &action).await,
                    "refunds.mass_refund_ran",
                )
            } else {
                (
                    resend(&store, &webhooks, &action).await,
                    "webhooks.mass_resend_ran",
                )
            };
            tracing::info!(action = %action.id, %outcome, "{ran}");
            if let Err(e) = store
                .finish_mass_action(&action.id, &outcome, now_ms())
                .await
            {
                tracing::warn!(error = %e, "mass action finished but not recorded");
            }
            let _ = store
                .audit(
                    Some(&action.merchant_id),
                    None,
                    &action.actor,
                    ran,
                    &format!("{}: {outcome}", action.id),
                    None,
                    now_ms(),
                )
                .await;
        }
    }
}

/// Runs a due mass resend: each event's deliveries scheduled again. The outcome, in
/// words.
async fn resend(
    store: &Store,
    webhooks: &crate::webhooks::Webhooks,
    action: &MassAction,
) -> String {
    let mut sent = 0usize;
    let mut missing = 0usize;
    for id in &action.items {
        let event = match EventId::parse(id) {
            Some(id) => store.event(&id).await,
            None => Ok(None),
        };
        match event {
            Ok(Some(e)) if e.merchant_id == action.merchant_id && e.mode == action.mode => {
                match store.redeliver(&e, now_ms()).await {
                    Ok(n) => sent += n,
                    Err(err) => {
                        tracing::warn!(error = %err, "mass resend: one event failed");
                        missing += 1;
                    }
                }
            }
            _ => missing += 1,
        }
    }
    webhooks.wake();
    format!(
        "{} events, {sent} deliveries scheduled{}",
        action.items.len(),
        if missing > 0 {
            format!(", {missing} skipped")
        } else {
            String::new()
        }
    )
}
