//! Payments: the list (filters, search, pages, CSV), a payment's whole timeline, its
//! refunds (confirmed, acting once), and webhook deliveries sent again.

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use serde::Deserialize;

use super::{
    CsrfForm, DashForm, Signed, Web,
    auth::{nav, needs_reauth},
    forbidden, store_failed,
    views::{Csrf, FormError, Notice, document, message_page},
};
use crate::{
    accounts::Permission,
    connectors::RailId,
    domain::{
        AttemptId, EventId, SessionId,
        money::{Currency, format_amount, parse_major},
    },
    payments::{RefundAsk, RefundError},
    startup::AppState,
    store::{
        AttemptRecord, AttemptStatus, EventFilter, ListStatus, PaymentFilter, PaymentRow,
        SessionRecord, SignedIn,
    },
    time::{format_utc, now_ms, parse_date},
};

/// Payments per page.
const PAGE: i64 = 50;
/// Rows in one CSV export.
const CSV_ROWS: i64 = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/payments", get(list))
        .route("/dashboard/payments.csv", get(csv))
        .route("/dashboard/payments/try", post(try_checkout))
        .route("/dashboard/payments/{id}", get(detail))
        .route("/dashboard/payments/{id}/refund", get(confirm_refund))
        .route("/dashboard/payments/{id}/refund", post(refund))
        .route(
            "/dashboard/payments/{id}/events/{event}/resend",
            post(resend),
        )
}

// --- the list -----------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct ListQuery {
    status: String,
    rail: String,
    from: String,
    to: String,
    q: String,
    page: String,
}

impl ListQuery {
    /// The filters as a form posts them back (the bulk refund's confirmation).
    pub(super) fn of(status: &str, rail: &str, from: &str, to: &str, q: &str) -> ListQuery {
        ListQuery {
            status: status.to_owned(),
            rail: rail.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            q: q.to_owned(),
            page: String::new(),
        }
    }

    /// The filters set, as (name, value) pairs.
    pub(super) fn fields(&self) -> Vec<(&'static str, String)> {
        [
            ("status", &self.status),
            ("rail", &self.rail),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect()
    }

    pub(super) fn filter(&self) -> PaymentFilter {
        PaymentFilter {
            status: ListStatus::parse(&self.status),
            rail: RailId::parse(&self.rail),
            from: parse_date(&self.from),
            // The whole "to" day is included.
            to: parse_date(&self.to).map(|t| t + 86_400_000),
            query: Some(self.q.trim().chars().take(100).collect::<String>())
                .filter(|q| !q.is_empty()),
        }
    }

    fn page(&self) -> i64 {
        self.page
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=10_000).contains(p))
            .unwrap_or(1)
    }

    /// The query string for another page (or the CSV), keeping the filters.
    pub(super) fn with_page(&self, page: Option<i64>) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields() {
            out.append_pair(k, &v);
        }
        if let Some(p) = page {
            out.append_pair("page", &p.to_string());
        }
        out.finish()
    }
}

/// `POST /dashboard/payments/try` (test mode): a KES 1,500 checkout of the business,
/// opened as the API would, and the hosted page to pay it on.
async fn try_checkout(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let session = &signed.0;
    if session.mode != crate::domain::Mode::Test || !signed.may(Permission::ManageKeys) {
        return forbidden(&web, "open test checkouts");
    }
    let reference = format!(
        "TRY-{}",
        crate::domain::ids::random_base62(6).to_uppercase()
    );
    let back = format!(
        "{}/dashboard/payments",
        state.config.public_url.trim_end_matches('/')
    );
    let created = state
        .checkout
        .create(crate::checkout::CreateSession {
            merchant_id: session.merchant.id.clone(),
            mode: crate::domain::Mode::Test,
            amount: crate::domain::Money::new(150_000, Currency::Kes)
                .expect("KES 1,500 is an amount"),
            reference,
            description: "A test checkout from the dashboard".into(),
            success_url: back.clone(),
            cancel_url: back,
            customer_phone: None,
            customer_email: None,
            metadata: Default::default(),
            expires_in_secs: 3600,
            payment_method_types: None,
            travel: None,
        })
        .await;
    match created {
        Ok(checkout) => web.finish(Redirect::to(&format!("/pay/{}", checkout.id))),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard test checkout not opened");
            web.page(
                StatusCode::CONFLICT,
                message_page(
                    "No test checkout",
                    "checkout_not_opened",
                    "A test checkout could not be opened just now (is any way to pay switched on in Settings?).",
                    Some(("/dashboard/payments", "Back to payments")),
                ),
            )
        }
    }
}

/// What a payment is now, in one word, and its status code.
fn payment_status(row: &PaymentRow) -> (&'static str, &'static str) {
    let paid: i64 = row.paid_by.iter().map(|a| a.amount.minor()).sum();
    if row.refunded_minor > 0 && row.refunded_minor >= paid {
        ("Refunded", "refunded")
    } else if row.refunded_minor > 0 {
        ("Partly refunded", "partially_refunded")
    } else if !row.paid_by.is_empty()
        && row.session.payment_status == crate::store::PaymentStatus::Paid
    {
        ("Paid", "paid")
    } else if !row.paid_by.is_empty() {
        // Parts in, the rest not (yet): not paid.
        ("Part paid", "part_paid")
    } else {
        match row.session.status {
            crate::store::SessionStatus::Open => ("Open", "open"),
            crate::store::SessionStatus::Expired => ("Expired", "expired"),
            crate::store::SessionStatus::Complete => ("Paid", "paid"),
        }
    }
}

fn payer(row: &PaymentRow) -> Option<String> {
    row.paid_by
        .first()
        .and_then(|a| a.payer.clone())
        .or_else(|| row.session.customer_phone.clone())
        .map(|p| format!("+{}", p.trim_start_matches('+')))
}

async fn list(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let session = &signed.0;
    let page = q.page();
    let rows = match state
        .store
        .dashboard_payments(
            &session.merchant.id,
            session.mode,
            &q.filter(),
            PAGE + 1,
            (page - 1) * PAGE,
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return store_failed(e),
    };
    let more = rows.len() as i64 > PAGE;
    let rows: Vec<PaymentRow> = rows.into_iter().take(PAGE as usize).collect();
    let empty = rows.is_empty();
    let lines = rows
        .into_iter()
        .map(|row| {
            let (status, code) = payment_status(&row);
            let href = format!("/dashboard/payments/{}", row.session.id);
            let rail = row.paid_by.first().map(|a| a.rail.label());
            let receipt = row.paid_by.first().and_then(|a| a.operator_receipt.clone());
            let payer = payer(&row);
            view! {
                <tr>
                    <td>{format_utc(row.session.created_at)}</td>
                    <td><a href=href>{row.session.reference.clone()}</a></td>
                    <td class="amount">{row.session.amount.to_string()}</td>
                    <td><span class="status" data-status=code>{status}</span>
                        {row.attention.then(|| view! { " " <span class="flag">"Needs attention"</span> })}</td>
                    <td>{rail}</td>
                    <td>{payer}</td>
                    <td>{receipt}</td>
                </tr>
            }
        })
        .collect_view();
    let status_options = ListStatus::ALL
        .into_iter()
        .map(|s| view! { <option value=s.as_str() selected=q.status == s.as_str()>{s.label()}</option> })
        .collect_view();
    let rail_options = RailId::ALL
        .into_iter()
        .map(|r| view! { <option value=r.as_str() selected=q.rail == r.as_str()>{r.label()}</option> })
        .collect_view();
    let csv_href = format!("/dashboard/payments.csv?{}", q.with_page(None));
    let try_it = signed.0.mode == crate::domain::Mode::Test && signed.may(Permission::ManageKeys);
    let bulk_href = signed
        .may(Permission::Refund)
        .then(|| format!("/dashboard/mass/refund?{}", q.with_page(None)));
    let prev = (page > 1).then(|| format!("/dashboard/payments?{}", q.with_page(Some(page - 1))));
    let next = more.then(|| format!("/dashboard/payments?{}", q.with_page(Some(page + 1))));
    let body = view! {
        <h1>"Payments"</h1>
        <form method="get" action="/dashboard/payments" class="card filters" role="search">
            <div><label for="q">"Search"</label>
                <input id="q" type="search" name="q" value=q.q.clone() placeholder="Reference, receipt, cs_… or last digits of the phone" /></div>
            <div><label for="status">"Status"</label>
                <select id="status" name="status"><option value="">"Any"</option>{status_options}</select></div>
            <div><label for="rail">"Paid with"</label>
                <select id="rail" name="rail"><option value="">"Any"</option>{rail_options}</select></div>
            <div><label for="from">"From"</label><input id="from" type="date" name="from" value=q.from.clone() /></div>
            <div><label for="to">"To"</label><input id="to" type="date" name="to" value=q.to.clone() /></div>
            <div><button type="submit">"Filter"</button></div>
            <div><a href=csv_href>"Export CSV"</a></div>
            {bulk_href.map(|href| view! { <div><a href=href>"Refund all shown…"</a></div> })}
        </form>
        {try_it.then(|| view! {
            <form method="post" action="/dashboard/payments/try" class="card">
                <Csrf token=web.csrf.clone() />
                <p>"Try it: open a test checkout of KES 1,500 for your business and pay it as a shopper would — M-PESA on the sandbox phone, card 4242 4242 4242 4242, or PayPal (buyer@example.com, sandbox-buyer). It appears here, ready to refund."</p>
                <button type="submit">"Open a test checkout"</button>
            </form>
        })}
        {if empty {
            view! { <p class="card" data-code="no_payments">"No payments match."</p> }.into_any()
        } else {
            view! {
                <table>
                    <thead><tr><th>"Created (UTC)"</th><th>"Reference"</th><th>"Amount"</th><th>"Status"</th><th>"Paid with"</th><th>"Payer"</th><th>"Receipt"</th></tr></thead>
                    <tbody>{lines}</tbody>
                </table>
            }.into_any()
        }}
        <p class="pager">
            {prev.map(|href| view! { <a href=href rel="prev">"Newer"</a> })}
            {next.map(|href| view! { <a href=href rel="next">"Older"</a> })}
        </p>
    };
    web.page(
        StatusCode::OK,
        document(
            "Payments",
            Some(nav(session, &web, "payments")),
            body.into_any(),
        ),
    )
}

/// A CSV cell: quoted, and never read as a formula by a spreadsheet.
fn cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

async fn csv(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let session = &signed.0;
    let rows = match state
        .store
        .dashboard_payments(&session.merchant.id, session.mode, &q.filter(), CSV_ROWS, 0)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return store_failed(e),
    };
    let mut out = String::from(
        "created_utc,session_id,reference,description,amount_minor,currency,amount,status,paid_with,payment_id,payer,receipt,refunded_minor,needs_attention\r\n",
    );
    for row in &rows {
        let (_, status) = payment_status(row);
        let first = row.paid_by.first();
        let fields = [
            format_utc(row.session.created_at),
            row.session.id.to_string(),
            row.session.reference.clone(),
            row.session.description.clone(),
            row.session.amount.minor().to_string(),
            row.session.amount.currency().code().to_owned(),
            row.session.amount.to_string(),
            status.to_owned(),
            first
                .map(|a| a.rail.as_str().to_owned())
                .unwrap_or_default(),
            first.map(|a| a.id.to_string()).unwrap_or_default(),
            payer(row).unwrap_or_default(),
            first
                .and_then(|a| a.operator_receipt.clone())
                .unwrap_or_default(),
            row.refunded_minor.to_string(),
            row.attention.to_string(),
        ];
        out.push_str(&fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let name = format!("malipo-payments-{}.csv", session.mode.as_str());
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        out,
    )
        .into_response()
}

// --- one payment --------------------------------------------------------------------

/// The session if it is this merchant's in the session's mode; anything else is 404.
async fn owned(
    state: &AppState,
    session: &SignedIn,
    id: &str,
) -> Result<Option<SessionRecord>, Response> {
    let Some(id) = SessionId::parse(id) else {
        return Ok(None);
    };
    match state.store.session(&id).await {
        Ok(Some(s)) if s.merchant_id == session.merchant.id && s.mode == session.mode => {
            Ok(Some(s))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(store_failed(e)),
    }
}

fn not_found(web: &Web) -> Response {
    web.page(
        StatusCode::NOT_FOUND,
        message_page(
            "No such payment",
            "payment_not_found",
            "There is no such payment in this mode. (Test and live payments are apart: check the switch at the top.)",
            Some(("/dashboard/payments", "Back to payments")),
        ),
    )
}

/// How to refund by hand on a rail Malipo cannot refund through.
fn manual_refund(rail: RailId) -> &'static str {
    match rail {
        RailId::Mpesa => {
            "Reverse it from your M-PESA organisation portal (Transaction Reversal), quoting the receipt number above, or send the money back with a B2C payment."
        }
        RailId::Airtel => {
            "Ask Airtel Money's merchant support to refund the transaction, quoting the receipt above, or send the money back to the payer's wallet."
        }
        RailId::MtnMomo => {
            "Refund it from your MTN MoMo partner portal, quoting the receipt above, or send the money back with a disbursement."
        }
        RailId::Vodacom => {
            "Reverse it from your Vodacom M-Pesa organisation portal, quoting the receipt above."
        }
        RailId::Tigo => {
            "Mixx by Yas (Tigo Pesa) has no refund API: send the money back to the payer's wallet from your merchant account, and note the receipt above."
        }
        RailId::Card | RailId::Paypal => {
            "Refund it from your processor's portal, quoting the receipt above."
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DetailQuery {
    refunded: String,
    resent: String,
    error: String,
}

async fn detail(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let session_rec = &signed.0;
    let checkout = match owned(&state, session_rec, &id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let loaded = async {
        let attempts = state.store.session_attempts(&checkout.id).await?;
        let mut callbacks = Vec::new();
        let mut refunds = Vec::new();
        for a in &attempts {
            callbacks.push(state.store.callbacks(&a.id).await?);
            refunds.extend(state.store.refunds_of(&a.id).await?);
        }
        let history = state.store.session_events(checkout.id.as_str()).await?;
        let filter = EventFilter {
            session_id: Some(checkout.id.to_string()),
            ..EventFilter::default()
        };
        let events = state
            .store
            .events(&checkout.merchant_id, checkout.mode, &filter, 100)
            .await?;
        let mut deliveries = Vec::new();
        for e in &events {
            deliveries.push(state.store.deliveries(&e.id).await?);
        }
        Ok::<_, crate::store::StoreError>((
            attempts, callbacks, refunds, history, events, deliveries,
        ))
    };
    let (attempts, callbacks, refunds, history, events, deliveries) = match loaded.await {
        Ok(v) => v,
        Err(e) => return store_failed(e),
    };
    let may_refund = signed.may(Permission::Refund);
    let may_resend = signed.may(Permission::ResendWebhooks);
    let notice = if !q.refunded.is_empty() {
        Some(format!(
            "Refund {} sent. Its state is below.",
            q.refunded.chars().take(40).collect::<String>()
        ))
    } else if q.resent == "1" {
        Some("The event will be delivered again in a moment.".to_owned())
    } else {
        None
    };
    let error = match q.error.as_str() {
        "rate_limited" => Some((
            "Too many resends this minute: wait a minute and try again.".to_owned(),
            "rate_limited",
        )),
        _ => None,
    };

    let attempt_items = attempts
        .iter()
        .zip(&callbacks)
        .map(|(a, raw)| {
            let left: i64 = a.amount.minor()
                - refunds
                    .iter()
                    .filter(|r| r.attempt_id == a.id && r.status != crate::store::RefundStatus::Failed)
                    .map(|r| r.amount.minor())
                    .sum::<i64>();
            let refundable = a.status == AttemptStatus::Succeeded && left > 0;
            let supported =
                state.payments.refunds_supported(&checkout.merchant_id, a.rail, checkout.mode);
            let partial = state.payments.partial_refunds_supported(
                &checkout.merchant_id,
                a.rail,
                checkout.mode,
            );
            let raw_items = raw.iter().map(|r| view! { <pre>{r.clone()}</pre> }).collect_view();
            let instructions = if a.duplicate {
                Some("This paid a session that was already paid: the payer was charged twice. Refund this payment.")
            } else if a.status == AttemptStatus::Unknown {
                Some("The operator has not said whether this went through. Malipo keeps asking; if the money is in your statement, it will show as paid. If it is still unknown after a day, look the receipt up with the operator and resolve it with `malipo reconcile resolve`.")
            } else {
                None
            };
            let amount_left = format_amount(left, a.amount.currency());
            let refund_action = format!("/dashboard/payments/{}/refund", checkout.id);
            view! {
                <section class="card" data-attempt=a.id.to_string()>
                    <h2>{format!("{} · {}", a.rail.label(), a.amount)} " " <span class="status" data-status=a.status.as_str()>{a.status.as_str()}</span>
                        {a.duplicate.then(|| view! { " " <span class="flag">"Duplicate payment"</span> })}</h2>
                    {instructions.map(|t| view! { <p class="error" data-code="needs_attention">{t}</p> })}
                    <dl class="facts">
                        <dt>"Payment"</dt><dd><code>{a.id.to_string()}</code></dd>
                        <dt>"Started"</dt><dd>{format_utc(a.created_at)}</dd>
                        <dt>"Payer"</dt><dd>{a.payer.clone().map(|p| format!("+{p}"))}</dd>
                        <dt>"Operator's request"</dt><dd>{a.operator_request_id.clone()}</dd>
                        <dt>"Receipt"</dt><dd>{a.operator_receipt.clone()}</dd>
                        <dt>"Failure"</dt><dd>{a.failure_code.clone()} " " {a.failure_detail.clone()}</dd>
                        <dt>"Ended"</dt><dd>{a.finalized_at.map(format_utc)}</dd>
                    </dl>
                    {(!raw.is_empty()).then(|| view! { <h3>"Operator callbacks, as received"</h3> {raw_items} })}
                    {(refundable && may_refund && supported && partial).then(|| view! {
                        <form method="get" action=refund_action.clone()>
                            <input type="hidden" name="payment" value=a.id.to_string() />
                            <label for=format!("amount-{}", a.id)>{format!("Refund amount ({} at most)", amount_left)}</label>
                            <input id=format!("amount-{}", a.id) type="text" name="amount" inputmode="decimal" placeholder="All that is left" />
                            <button type="submit">"Refund…"</button>
                        </form>
                    })}
                    {(refundable && may_refund && supported && !partial).then(|| view! {
                        <form method="get" action=refund_action.clone()>
                            <input type="hidden" name="payment" value=a.id.to_string() />
                            <input type="hidden" name="amount" value="" />
                            <p class="hint" data-code="whole_refund_only">{format!("{} returns a payment whole: a refund cannot be partial.", a.rail.label())}</p>
                            <button type="submit">{format!("Refund all {}…", amount_left)}</button>
                        </form>
                    })}
                    {(refundable && !supported).then(|| view! {
                        <p class="hint" data-code="refund_not_supported">{format!("Malipo cannot refund {} payments yet. ", a.rail.label())}{manual_refund(a.rail)}</p>
                    })}
                    {(refundable && supported && !may_refund).then(|| view! {
                        <p class="hint" data-code="forbidden">"Your role cannot refund: ask an owner or admin."</p>
                    })}
                </section>
            }
        })
        .collect_view();

    let refund_rows = refunds
        .iter()
        .map(|r| view! {
            <tr data-refund=r.id.to_string()>
                <td>{format_utc(r.created_at)}</td>
                <td><code>{r.id.to_string()}</code></td>
                <td class="amount">{r.amount.to_string()}</td>
                <td><span class="status" data-status=r.status.as_str()>{r.status.as_str()}</span></td>
                <td>{r.reason.clone()}</td>
                <td>{r.failure_code.clone()}</td>
            </tr>
        })
        .collect_view();
    let has_refunds = !refunds.is_empty();

    let timeline = history
        .iter()
        .map(|e| {
            let change = match (&e.from_status, &e.to_status) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                (None, Some(t)) => t.clone(),
                _ => String::new(),
            };
            view! {
                <li><time>{format_utc(e.created_at)}</time><strong>{e.kind.clone()}</strong> " " {change}
                    {e.attempt_id.clone().map(|a| view! { " · " <code>{a}</code> })}</li>
            }
        })
        .collect_view();

    let webhook_items = events
        .iter()
        .zip(&deliveries)
        .map(|(e, ds)| {
            let resend_action = format!("/dashboard/payments/{}/events/{}/resend", checkout.id, e.id);
            let rows = ds
                .iter()
                .map(|d| {
                    let last = d.attempts.last();
                    view! {
                        <tr>
                            <td>{d.url.clone()}</td>
                            <td><span class="status" data-status=d.status.as_str()>{d.status.as_str()}</span></td>
                            <td>{d.attempt_count}</td>
                            <td>{last.and_then(|a| a.status_code).map(|c| c.to_string())} " " {last.and_then(|a| a.error.clone())}</td>
                            <td>{last.map(|a| format_utc(a.attempted_at))}</td>
                        </tr>
                    }
                })
                .collect_view();
            let none = ds.is_empty();
            view! {
                <section class="card" data-event=e.id.to_string()>
                    <h3><code>{e.kind.clone()}</code> " · " {format_utc(e.created_at)} " · " <code>{e.id.to_string()}</code></h3>
                    {if none {
                        view! { <p class="hint">"No webhook endpoint took this event."</p> }.into_any()
                    } else {
                        view! {
                            <table><thead><tr><th>"Endpoint"</th><th>"Status"</th><th>"Tries"</th><th>"Last answer"</th><th>"Last try (UTC)"</th></tr></thead>
                            <tbody>{rows}</tbody></table>
                        }.into_any()
                    }}
                    {may_resend.then(|| view! {
                        <form method="post" action=resend_action>
                            <Csrf token=web.csrf.clone() />
                            <button type="submit">"Resend"</button>
                        </form>
                    })}
                </section>
            }
        })
        .collect_view();

    let title = format!("{} · {}", checkout.reference, checkout.amount);
    let body = view! {
        <p><a href="/dashboard/payments">"← Payments"</a></p>
        <h1>{title.clone()}</h1>
        <Notice notice />
        <FormError error />
        <section class="card">
            <dl class="facts">
                <dt>"Session"</dt><dd><code>{checkout.id.to_string()}</code></dd>
                <dt>"Description"</dt><dd>{checkout.description.clone()}</dd>
                <dt>"Amount"</dt><dd>{checkout.amount.to_string()}</dd>
                <dt>"Status"</dt><dd>{checkout.status.as_str()} " · " {checkout.payment_status.as_str()}</dd>
                <dt>"Created"</dt><dd>{format_utc(checkout.created_at)} " UTC"</dd>
                <dt>"Customer"</dt><dd>{checkout.customer_phone.clone()} " " {checkout.customer_email.clone()}</dd>
            </dl>
        </section>
        <h2>"Payment attempts"</h2>
        {attempt_items}
        {has_refunds.then(|| view! {
            <h2>"Refunds"</h2>
            <table><thead><tr><th>"Created (UTC)"</th><th>"Refund"</th><th>"Amount"</th><th>"Status"</th><th>"Reason"</th><th>"Failure"</th></tr></thead>
            <tbody>{refund_rows}</tbody></table>
        })}
        <h2>"Timeline"</h2>
        <ol class="timeline">{timeline}</ol>
        <h2>"Webhook deliveries"</h2>
        {webhook_items}
    };
    web.page(
        StatusCode::OK,
        document(
            &title,
            Some(nav(session_rec, &web, "payments")),
            body.into_any(),
        ),
    )
}

// --- refunds ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct RefundQuery {
    payment: String,
    amount: String,
    error: String,
}

/// The paying attempt of this session that the form names.
async fn refundable_attempt(
    state: &AppState,
    checkout: &SessionRecord,
    payment: &str,
) -> Result<Option<AttemptRecord>, Response> {
    let Some(id) = AttemptId::parse(payment) else {
        return Ok(None);
    };
    match state.store.attempt(&id).await {
        Ok(Some(a)) if a.session_id == checkout.id && a.status == AttemptStatus::Succeeded => {
            Ok(Some(a))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(store_failed(e)),
    }
}

/// How much is left to refund of a payment (pending refunds count as taken).
async fn refundable_left(state: &AppState, attempt: &AttemptRecord) -> Result<i64, Response> {
    let refunds = state
        .store
        .refunds_of(&attempt.id)
        .await
        .map_err(store_failed)?;
    Ok(attempt.amount.minor()
        - refunds
            .iter()
            .filter(|r| r.status != crate::store::RefundStatus::Failed)
            .map(|r| r.amount.minor())
            .sum::<i64>())
}

/// The amount a refund form asks for: typed in major units, or all that is left.
fn asked_amount(text: &str, currency: Currency, left: i64) -> Option<i64> {
    if text.trim().is_empty() {
        return (left > 0).then_some(left);
    }
    parse_major(text, currency).filter(|a| *a <= left)
}

/// The confirmation page: amount, rail and payer, and one button that acts once.
async fn confirm_refund(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<RefundQuery>,
) -> Response {
    if !signed.may(Permission::Refund) {
        return forbidden(&web, "refund payments");
    }
    let session = &signed.0;
    let checkout = match owned(&state, session, &id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let attempt = match refundable_attempt(&state, &checkout, &q.payment).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let left = match refundable_left(&state, &attempt).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let currency = attempt.amount.currency();
    let back = format!("/dashboard/payments/{}", checkout.id);
    let Some(amount) = asked_amount(&q.amount, currency, left) else {
        return web.page(
            StatusCode::BAD_REQUEST,
            message_page(
                "Check the amount",
                "refund_exceeds_payment",
                &format!(
                    "Enter an amount greater than zero and at most {} (what is left to refund).",
                    format_amount(left, currency)
                ),
                Some((&back, "Back to the payment")),
            ),
        );
    };
    // One key per confirmation page: however often its button is pressed, one refund.
    let key = crate::domain::ids::random_base62(24);
    let reauth = amount > state.config.dashboard.refund_reauth_minor;
    if !reauth && !signed.recently_authenticated() {
        // Back to this confirmation once the password (or a code) is given again.
        let amount_q: String = url::form_urlencoded::byte_serialize(q.amount.as_bytes()).collect();
        let here = format!(
            "/dashboard/payments/{}/refund?payment={}&amount={amount_q}",
            checkout.id, attempt.id
        );
        if let Some(r) = needs_reauth(&signed, &here) {
            return r;
        }
    }
    let label = format!("Refund {}", format_amount(amount, currency));
    let action = format!("/dashboard/payments/{}/refund", checkout.id);
    let error = match q.error.as_str() {
        "unavailable" => Some((
            "The refund could not be sent just now. Try again.".to_owned(),
            "unavailable",
        )),
        _ => None,
    };
    let body = view! {
        <section class="card narrow">
            <h1>"Confirm the refund"</h1>
            <FormError error />
            <dl class="facts">
                <dt>"Amount"</dt><dd data-amount=amount.to_string()>{format_amount(amount, currency)}</dd>
                <dt>"Of"</dt><dd>{attempt.amount.to_string()} " paid"</dd>
                <dt>"Rail"</dt><dd>{attempt.rail.label()}</dd>
                <dt>"Payer"</dt><dd>{attempt.payer.clone().map(|p| format!("+{p}"))}</dd>
                <dt>"Receipt"</dt><dd>{attempt.operator_receipt.clone()}</dd>
                <dt>"Reference"</dt><dd>{checkout.reference.clone()}</dd>
            </dl>
            <p class="hint">"Money sent back cannot be taken back."
                {reauth.then_some(" Refunds this large need your password, every time.")}</p>
            <form method="post" action=action>
                <Csrf token=web.csrf.clone() />
                <input type="hidden" name="payment" value=attempt.id.to_string() />
                <input type="hidden" name="amount_minor" value=amount.to_string() />
                <input type="hidden" name="key" value=key />
                <label for="reason">"Reason (optional, shown to no one but you)"</label>
                <input id="reason" type="text" name="reason" maxlength="200" />
                {reauth.then(|| view! {
                    <label for="password">"Your password"</label>
                    <input id="password" type="password" name="password" autocomplete="current-password" required />
                })}
                <button type="submit" class="danger">{label}</button>
            </form>
            <p><a href=back>"Cancel"</a></p>
        </section>
    };
    web.page(
        StatusCode::OK,
        document(
            "Confirm the refund",
            Some(nav(session, &web, "payments")),
            body.into_any(),
        ),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RefundForm {
    csrf: String,
    payment: String,
    amount_minor: String,
    key: String,
    reason: String,
    password: String,
}

async fn refund(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(id): Path<String>,
    DashForm(form): DashForm<RefundForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::Refund) {
        return forbidden(&web, "refund payments");
    }
    let session = &signed.0;
    let checkout = match owned(&state, session, &id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let back = format!("/dashboard/payments/{}", checkout.id);
    let amount = form.amount_minor.parse::<i64>().ok().filter(|a| *a > 0);
    let key_ok = form.key.len() == 24 && form.key.bytes().all(|b| b.is_ascii_alphanumeric());
    let (Some(amount), true) = (amount, key_ok) else {
        return web.page(
            StatusCode::BAD_REQUEST,
            message_page(
                "Check the refund",
                "parameter_invalid",
                "This refund form is incomplete: start again from the payment.",
                Some((&back, "Back to the payment")),
            ),
        );
    };
    // The payment named in the form must be one of this page's.
    let attempt = match refundable_attempt(&state, &checkout, &form.payment).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    if amount > state.config.dashboard.refund_reauth_minor {
        // Above the threshold: the password on the confirmation form, every time.
        if let Err(e) = state
            .accounts
            .reauthenticate(
                session,
                secrecy::SecretString::from(form.password.clone()),
                "",
            )
            .await
        {
            return web.page(
                super::auth::status_of(&e),
                message_page(
                    "Refund not sent",
                    e.code(),
                    &e.to_string(),
                    Some((&back, "Back to the payment")),
                ),
            );
        }
    } else if let Some(r) = needs_reauth(&signed, &back) {
        // Any refund: a password or code given in the last ten minutes.
        return r;
    }
    let reason: String = form
        .reason
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let idempotency_key = format!("dashboard:{}", form.key);
    let result = state
        .payments
        .refund_payment(
            &session.merchant.id,
            session.mode,
            RefundAsk {
                payment: attempt.id.as_str(),
                amount: Some(amount),
                currency: None,
                reason: (!reason.is_empty()).then_some(reason.as_str()),
                idempotency_key: Some(&idempotency_key),
            },
        )
        .await;
    match result {
        Ok(refund) => {
            signed
                .audit(
                    &state,
                    &web,
                    "refund.created",
                    &format!(
                        "{} of {} on {} ({})",
                        refund.amount, form.payment, checkout.reference, refund.id
                    ),
                )
                .await;
            web.finish(Redirect::to(&format!("{back}?refunded={}", refund.id)))
        }
        Err(e) => {
            let (status, code, text) = match &e {
                RefundError::NotFound | RefundError::NotPaid => (
                    StatusCode::NOT_FOUND,
                    "payment_not_found",
                    "This payment cannot be refunded.".to_owned(),
                ),
                RefundError::PartOfOpenSession => (
                    StatusCode::CONFLICT,
                    "payment_not_refundable",
                    "This is a part of a booking still being paid: refund it once the \
                     booking is paid or has expired."
                        .to_owned(),
                ),
                RefundError::Exceeds {
                    available,
                    currency,
                } => (
                    StatusCode::BAD_REQUEST,
                    "refund_exceeds_payment",
                    format!(
                        "Only {} is left to refund.",
                        format_amount(*available, *currency)
                    ),
                ),
                RefundError::NotSupported(rail) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "refund_not_supported",
                    format!("Malipo cannot refund {rail} payments yet."),
                ),
                RefundError::WholeUnits(currency) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_amount",
                    format!("This rail refunds whole {} only.", currency.code()),
                ),
                RefundError::PartialNotSupported(paid, currency) => (
                    StatusCode::BAD_REQUEST,
                    "partial_refund_not_supported",
                    format!(
                        "This rail refunds only the whole payment ({}).",
                        format_amount(*paid, *currency)
                    ),
                ),
                RefundError::Currency(_) => (
                    StatusCode::BAD_REQUEST,
                    "parameter_invalid",
                    "The refund's currency is not the payment's.".to_owned(),
                ),
                RefundError::Store(e) => {
                    tracing::error!(error = %e, "dashboard refund failed");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "The refund could not be sent just now. Try again.".to_owned(),
                    )
                }
            };
            web.page(
                status,
                message_page(
                    "Refund not sent",
                    code,
                    &text,
                    Some((&back, "Back to the payment")),
                ),
            )
        }
    }
}

// --- webhooks -----------------------------------------------------------------------

async fn resend(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path((id, event)): Path<(String, String)>,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ResendWebhooks) {
        return forbidden(&web, "resend webhooks");
    }
    let session = &signed.0;
    let checkout = match owned(&state, session, &id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(&web),
        Err(r) => return r,
    };
    let back = format!("/dashboard/payments/{}", checkout.id);
    let Some(event_id) = EventId::parse(&event) else {
        return not_found(&web);
    };
    let event = match state.store.event(&event_id).await {
        Ok(Some(e))
            if e.merchant_id == session.merchant.id
                && e.mode == session.mode
                && e.session_id.as_deref() == Some(checkout.id.as_str()) =>
        {
            e
        }
        Ok(_) => return not_found(&web),
        Err(e) => return store_failed(e),
    };
    if state
        .redeliveries
        .check_key(
            (session.merchant.id.to_string(), session.mode.as_str()),
            now_ms(),
        )
        .is_err()
    {
        return web.finish(Redirect::to(&format!("{back}?error=rate_limited")));
    }
    if let Err(e) = state.store.redeliver(&event, now_ms()).await {
        return store_failed(e);
    }
    state.webhooks.wake();
    signed
        .audit(
            &state,
            &web,
            "webhook.resent",
            &format!("{} ({})", event.id, event.kind),
        )
        .await;
    web.finish(Redirect::to(&format!("{back}?resent=1")))
}
