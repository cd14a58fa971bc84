//! The bulk refund (a trip cancelled, every seat paid back): every payment the payments
//! list shows with its filters, each refunded in whole (all that is left of it). Like
//! every mass action, after Kopo Kopo's lesson: a confirmation page with the count and
//! the total, the password again, a record in the audit log, and a delay during which it
//! can be cancelled. It runs once, one refund at a time, each with the action's id as its
//! idempotency key: should it run again, it is the same refunds, never second ones.

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{Redirect, Response},
};
use leptos::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;

use super::{
    DashForm, Signed, Web,
    auth::{nav, shown, status_of},
    forbidden,
    payments::ListQuery,
    store_failed,
    views::{Csrf, FormError, document},
};
use crate::{
    accounts::Permission,
    domain::{
        MerchantId, Mode,
        money::{Currency, format_amount},
    },
    payments::{RefundAsk, RefundError},
    startup::AppState,
    store::{MassAction, PaymentFilter, RefundStatus, StoreError},
    time::{format_utc, now_ms},
};

/// A bulk refund whose runner has not said it was alive for this long died midway (a
/// restart): it is taken up again. Each refund says so, and one takes at most two
/// operator calls of 15 s each.
pub const STALE_MS: i64 = 5 * 60_000;

/// Payments one bulk refund takes at most (a bus, a flight; a larger one is split by
/// date or reference).
pub const MAX_PAYMENTS: usize = 200;

/// What a bulk refund would refund.
#[derive(Debug, Default)]
pub struct Selection {
    /// Payments (`pa_…`) with something left to refund, on rails Malipo refunds through.
    pub items: Vec<String>,
    /// What is left to refund of them, per currency (by code, for a stable order).
    totals: BTreeMap<&'static str, (Currency, i64)>,
    /// Paid payments left out: on a rail Malipo cannot refund (refund those by hand).
    pub by_hand: usize,
    /// More matched than one bulk refund takes.
    pub truncated: bool,
}

impl Selection {
    /// The total, per currency: `KES 3,000 + UGX 75,000`.
    pub fn total(&self) -> String {
        if self.totals.is_empty() {
            return "nothing".into();
        }
        self.totals
            .values()
            .map(|(currency, minor)| format_amount(*minor, *currency))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// The payments `filter` shows that a bulk refund would refund.
pub async fn select(
    state: &AppState,
    merchant: &MerchantId,
    mode: Mode,
    filter: &PaymentFilter,
) -> Result<Selection, StoreError> {
    const PAGE: i64 = 50;
    let mut sel = Selection::default();
    let mut offset = 0;
    'pages: loop {
        let rows = state
            .store
            .dashboard_payments(merchant, mode, filter, PAGE, offset)
            .await?;
        offset += PAGE;
        for row in &rows {
            for a in &row.paid_by {
                if !state.payments.refunds_supported(merchant, a.rail, mode) {
                    sel.by_hand += 1;
                    continue;
                }
                let taken: i64 = state
                    .store
                    .refunds_of(&a.id)
                    .await?
                    .iter()
                    .filter(|r| r.status != RefundStatus::Failed)
                    .map(|r| r.amount.minor())
                    .sum();
                let left = a.amount.minor() - taken;
                if left <= 0 {
                    continue;
                }
                if sel.items.len() == MAX_PAYMENTS {
                    sel.truncated = true;
                    break 'pages;
                }
                sel.items.push(a.id.to_string());
                let currency = a.amount.currency();
                sel.totals.entry(currency.code()).or_insert((currency, 0)).1 += left;
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(sel)
}

fn confirm_view(
    web: &Web,
    signed: &Signed,
    q: &ListQuery,
    sel: &Selection,
    error: Option<(String, &'static str)>,
) -> String {
    let session = &signed.0;
    let count = sel.items.len();
    let total = sel.total();
    let back = format!("/dashboard/payments?{}", q.with_page(None));
    let hidden = q
        .fields()
        .into_iter()
        .map(|(k, v)| view! { <input type="hidden" name=k value=v /> })
        .collect_view();
    let body = view! {
        <section class="card narrow">
            <h1>"Refund payments"</h1>
            <FormError error />
            {(sel.by_hand > 0).then(|| view! {
                <p class="hint" data-code="refund_not_supported">{format!("{} paid payments shown are on a rail Malipo cannot refund through: they are left out (refund them by hand, from their pages).", sel.by_hand)}</p>
            })}
            {sel.truncated.then(|| view! {
                <p class="hint" data-code="too_many">{format!("Only the first {MAX_PAYMENTS} are taken: narrow the filters (a date, a reference) for the rest.")}</p>
            })}
            {if count == 0 {
                view! { <p data-code="nothing_to_refund">"Nothing shown is left to refund."</p> }.into_any()
            } else {
                view! {
                    <p data-count=count.to_string() data-total=total.clone()>{format!("{count} payments will be refunded in whole (all that is left of each): {total}, in {} mode.", session.mode.as_str())}</p>
                    <p class="hint">"Money sent back cannot be taken back. Nothing is sent for a short while after you confirm: you can still cancel."</p>
                    <form method="post" action="/dashboard/mass/refund">
                        <Csrf token=web.csrf.clone() />
                        {hidden}
                        <input type="hidden" name="count" value=count.to_string() />
                        <input type="hidden" name="total" value=total.clone() />
                        <label for="password">"Your password"</label>
                        <input id="password" type="password" name="password" autocomplete="current-password" required />
                        <button type="submit" class="danger">{format!("Refund {count} payments ({total})")}</button>
                    </form>
                }.into_any()
            }}
            <p><a href=back>"Back to payments"</a></p>
        </section>
    };
    document(
        "Refund payments",
        Some(nav(session, web, "payments")),
        body.into_any(),
    )
}

/// `GET /dashboard/mass/refund?{the list's filters}`: what would be refunded.
pub async fn confirm(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    if !signed.may(Permission::Refund) {
        return forbidden(&web, "refund");
    }
    let session = &signed.0;
    match select(&state, &session.merchant.id, session.mode, &q.filter()).await {
        Ok(sel) => web.page(StatusCode::OK, confirm_view(&web, &signed, &q, &sel, None)),
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ScheduleForm {
    csrf: String,
    password: String,
    count: String,
    total: String,
    status: String,
    rail: String,
    from: String,
    to: String,
    q: String,
}

/// `POST /dashboard/mass/refund`: scheduled after the password, if what is refunded is
/// still what was confirmed.
pub async fn schedule(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<ScheduleForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::Refund) {
        return forbidden(&web, "refund");
    }
    let session = &signed.0;
    let q = ListQuery::of(&form.status, &form.rail, &form.from, &form.to, &form.q);
    let sel = match select(&state, &session.merchant.id, session.mode, &q.filter()).await {
        Ok(sel) => sel,
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
            confirm_view(&web, &signed, &q, &sel, Some(shown(&e))),
        );
    }
    if sel.items.is_empty() {
        return web.page(StatusCode::OK, confirm_view(&web, &signed, &q, &sel, None));
    }
    // One at a time per business and mode: a second press lands on the one waiting.
    match state
        .store
        .active_mass_action(&session.merchant.id, session.mode)
        .await
    {
        Ok(Some(id)) => return web.finish(Redirect::to(&format!("/dashboard/mass/{id}"))),
        Ok(None) => {}
        Err(e) => return store_failed(e),
    }
    // What was confirmed is what is refunded: anything changed meanwhile is shown again.
    if form.count != sel.items.len().to_string() || form.total != sel.total() {
        let e = (
            format!(
                "What is left to refund changed to {} payments ({}): check and confirm again.",
                sel.items.len(),
                sel.total()
            ),
            "count_changed",
        );
        return web.page(
            StatusCode::CONFLICT,
            confirm_view(&web, &signed, &q, &sel, Some(e)),
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
            super::mass::REFUND,
            &sel.items,
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
            "refunds.mass_refund_scheduled",
            &format!(
                "{id}: {} payments, {} at {} UTC ({})",
                sel.items.len(),
                sel.total(),
                format_utc(run_at),
                q.with_page(None)
            ),
        )
        .await;
    web.finish(Redirect::to(&format!("/dashboard/mass/{id}")))
}

/// Runs a due bulk refund: each payment refunded in whole, one at a time. The outcome,
/// in words.
pub async fn run(
    store: &crate::store::Store,
    payments: &crate::payments::Payments,
    action: &MassAction,
) -> String {
    let (mut made, mut pending, mut refused, mut skipped) = (0, 0, 0, 0);
    let reason = format!("bulk refund {}", action.id);
    for payment in &action.items {
        let asked = payments
            .refund_payment(
                &action.merchant_id,
                action.mode,
                RefundAsk {
                    payment,
                    amount: None,
                    currency: None,
                    reason: Some(&reason),
                    idempotency_key: Some(&action.id),
                },
            )
            .await;
        if let Err(e) = store.mass_action_alive(&action.id, now_ms()).await {
            tracing::warn!(action = %action.id, error = %e, "bulk refund: could not say it is alive");
        }
        match asked {
            Ok(r) => match r.status {
                RefundStatus::Succeeded => made += 1,
                RefundStatus::Pending => pending += 1,
                RefundStatus::Failed => refused += 1,
            },
            // Refunded meanwhile (by hand, by the API), or no longer refundable.
            Err(RefundError::Exceeds { .. } | RefundError::NotPaid | RefundError::NotFound) => {
                skipped += 1
            }
            Err(e) => {
                tracing::warn!(action = %action.id, error = %e, "bulk refund: one payment not refunded");
                skipped += 1;
            }
        }
    }
    format!(
        "{} payments: {made} refunded, {pending} pending, {refused} refused, {skipped} skipped",
        action.items.len()
    )
}
