//! The shopper's receipt, `/pay/{id}/receipt`: for a paid session, what was paid, to
//! whom, for what, how and when, in the shopper's language. Plain and printable: no
//! island, no script of its own.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::{Language, NotFound, PageTitle, Unavailable};
use crate::model::ReceiptView;

/// Loads the receipt (a public endpoint like every server function: it only returns
/// what the page shows, for an id the caller already has, and only once paid).
#[server]
pub async fn load_receipt(id: String) -> Result<Option<ReceiptView>, ServerFnError> {
    use crate::service::SharedPageService;
    let service = use_context::<SharedPageService>()
        .ok_or_else(|| ServerFnError::new("page service not in context"))?;
    let wanted = use_context::<crate::i18n::Requested>()
        .unwrap_or_default()
        .locale;
    service
        .receipt_view(&id, wanted)
        .await
        .map_err(|_| ServerFnError::new("receipt temporarily unavailable"))
}

/// `/pay/{id}/receipt`: the receipt, or the not-found page (no such session, or not
/// paid yet).
#[component]
pub fn ReceiptPage() -> impl IntoView {
    let params = use_params_map();
    let receipt = Resource::new_blocking(
        move || params.read().get("id").unwrap_or_default(),
        load_receipt,
    );
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                match receipt.await {
                    Ok(Some(r)) => view! { <Receipt r /> }.into_any(),
                    Ok(None) => view! { <NotFound /> }.into_any(),
                    Err(_) => view! { <Unavailable /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Receipt(r: ReceiptView) -> impl IntoView {
    let l = r.locale;
    let row = |term: &'static str, value: String| {
        view! {
            <dt>{term}</dt>
            <dd>{value}</dd>
        }
    };
    let trip = r.trip.clone().map(|t| super::checkout::trip_list(l, t));
    let brand = super::checkout::brand_style(r.brand_color.clone());
    // Paid in parts: each part on its own lines, below.
    let single = r.parts.is_empty();
    view! {
        <PageTitle text=l.receipt_title(&r.merchant_name) />
        <Language locale=l />
        {brand}
        <main class="page receipt" data-page="receipt" data-session=r.id.clone()>
            {(!r.livemode).then(|| view! {
                <p class="test-banner" role="note" data-test-mode="true">{l.receipt_test()}</p>
            })}
            <header class="merchant">
                {r.logo_url.clone().map(|src| view! { <img class="logo" src=src alt="" height="40" /> })}
                <h1>{l.receipt_heading()}</h1>
            </header>
            <section class="summary">
                <p class="description">{r.description.clone()}</p>
                <p class="amount">{r.amount_label.clone()}</p>
                {trip}
                <dl class="receipt-lines">
                    {row(l.receipt_paid_to(), r.merchant_name.clone())}
                    {r.charged_label.clone().map(|c| row(l.receipt_charged(), c))}
                    {single.then(|| view! {
                        {row(l.receipt_method(), r.rail_label.clone())}
                        {r.receipt.clone().map(|n| view! {
                            <dt>{l.receipt_number()}</dt>
                            <dd class="receipt-number">{n}</dd>
                        })}
                        {r.payer.clone().map(|p| row(l.receipt_payer(), p))}
                        {row(l.receipt_date(), r.paid_at_label.clone())}
                    })}
                    {row(l.receipt_reference(), r.reference.clone())}
                </dl>
                {(!single).then(|| view! {
                    <h2>{l.receipt_parts(&r.parts.len().to_string())}</h2>
                    {r.parts.clone().into_iter().map(|p| view! {
                        <dl class="receipt-lines" data-part="true">
                            {row(l.receipt_amount(), p.amount_label)}
                            {row(l.receipt_method(), p.rail_label)}
                            {p.receipt.map(|n| view! {
                                <dt>{l.receipt_number()}</dt>
                                <dd class="receipt-number">{n}</dd>
                            })}
                            {p.payer.map(|x| row(l.receipt_payer(), x))}
                            {row(l.receipt_date(), p.paid_at_label)}
                        </dl>
                    }).collect_view()}
                })}
                {r.refunded.clone().map(|x| view! { <p class="refunded" data-refunded="true">{x}</p> })}
            </section>
            <p class="fine">{l.receipt_keep()}</p>
            {r.support.clone().map(|s| super::checkout::support_line(l.support(&r.merchant_name), s))}
        </main>
    }
}
